//! Beyond the job list, end to end: a job stuck past spec.stuckAfter, a solution version without
//! a new job within spec.expectNewJobWithin, the duration histogram across a restart, and the
//! job table of `kubectl personalize-watch jobs` run through kubectl as a plugin.

use std::time::Duration;

use personalize_emulator::store::Batch as GenerateRequest;

use crate::support::{self, Fixture, condition, total, wait_for};

/// Ends a job: even ones fail, odd ones complete.
async fn finish(f: &Fixture, arn: &str, i: usize) {
    match i % 2 {
        0 => f.emu.set_status(arn, "CREATE FAILED", Some("boom")).await,
        _ => f.emu.set_status(arn, "ACTIVE", None).await,
    }
}

/// Failed and Completed Events so far.
async fn announced(f: &Fixture) -> usize {
    f.events("BatchInferenceJobFailed").await.len()
        + f.events("BatchInferenceJobCompleted").await.len()
}

/// Sum of the duration histogram's counts, over both outcomes.
async fn finished_observed(f: &Fixture) -> f64 {
    f.op.metrics()
        .await
        .sum("personalize_watch_job_duration_seconds_count")
}

#[tokio::test]
async fn a_stuck_job_gets_one_event_across_restarts_and_its_failure_still_comes() {
    let mut f = Fixture::start("stuck").await;
    let sv = support::solution_version_arn("stuck");
    let slow = f.emu.generate(&sv, 1, "IN PROGRESS", "slow").await;
    f.emu.generate(&sv, 2, "ACTIVE", "done").await;
    f.apply_watch(
        "stuck",
        &sv,
        "  activePollInterval: 5s\n  stuckAfter: 10s\n",
    )
    .await;
    wait_for(Duration::from_secs(40), "the Stuck Event", || async {
        (f.job_events("BatchInferenceJobStuck", "slow-1").await > 0).then_some(())
    })
    .await;
    let event = f.events("BatchInferenceJobStuck").await.remove(0);
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("slow-1 has been IN PROGRESS for") && note.contains("stuckAfter 10s"),
        "{note}"
    );
    // Events are published before the status write that records them (docs/reliability.md):
    // the count follows a moment later.
    f.wait_status("stuck", Duration::from_secs(20), "the stuck count", |w| {
        w.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.stuck == 1)
    })
    .await;

    // Several polls and two restarts, one of them a crash: still one.
    for _ in 0..2 {
        f.restart_operator(vec![]);
        f.op.wait_ready().await;
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    assert_eq!(f.job_events("BatchInferenceJobStuck", "slow-1").await, 1);

    f.emu
        .set_status(&slow[0], "CREATE FAILED", Some("gave up"))
        .await;
    wait_for(Duration::from_secs(20), "the Failed Event", || async {
        (f.job_events("BatchInferenceJobFailed", "slow-1").await > 0).then_some(())
    })
    .await;
    f.wait_status("stuck", Duration::from_secs(20), "no stuck job", |w| {
        w.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.stuck == 0 && c.failed == 1)
    })
    .await;
    assert_eq!(f.job_events("BatchInferenceJobStuck", "slow-1").await, 1);
    assert_eq!(f.job_events("BatchInferenceJobFailed", "slow-1").await, 1);
}

#[tokio::test]
async fn an_overdue_watch_says_so_once_and_a_new_job_ends_it() {
    let mut f = Fixture::start("overdue").await;
    let sv = support::solution_version_arn("overdue");
    f.emu
        .generate_batch(&GenerateRequest {
            solution_version_arn: sv.clone(),
            count: 3,
            status: Some("ACTIVE".into()),
            name_prefix: Some("old".into()),
            age_seconds: 600,
            ..Default::default()
        })
        .await;
    f.apply_watch(
        "overdue",
        &sv,
        "  pollInterval: 5s\n  expectNewJobWithin: 1m\n",
    )
    .await;
    let overdue = f
        .wait_status("overdue", Duration::from_secs(30), "Overdue True", |w| {
            condition(w, "Overdue").is_some_and(|(s, _)| s == "True")
        })
        .await;
    let message = overdue
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Overdue"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("No new batch inference job since") && message.contains("old-3"),
        "{message}"
    );
    assert_eq!(
        condition(&overdue, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    f.restart_operator(vec![]);
    f.op.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(f.events("NoRecentBatchInferenceJob").await.len(), 1);

    f.emu.generate(&sv, 1, "PENDING", "fresh").await;
    let ended = f
        .wait_status("overdue", Duration::from_secs(30), "Overdue False", |w| {
            condition(w, "Overdue").is_some_and(|(s, _)| s == "False")
        })
        .await;
    let latest = ended.status.and_then(|s| s.latest_job).unwrap();
    assert_eq!(
        (latest.name.as_str(), latest.status.as_str()),
        ("fresh-1", "PENDING")
    );
    assert_eq!(f.events("NoRecentBatchInferenceJob").await.len(), 1);
}

#[tokio::test]
async fn the_duration_histogram_counts_each_finished_job_once_across_a_restart() {
    let mut f = Fixture::start("durations").await;
    let sv = support::solution_version_arn("durations");
    let arns = f.emu.generate(&sv, 4, "IN PROGRESS", "run").await;
    f.emu.generate(&sv, 3, "ACTIVE", "history").await;
    f.apply_watch("durations", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("durations", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(7)
    })
    .await;
    for (i, arn) in arns[..2].iter().enumerate() {
        finish(&f, arn, i).await;
    }
    wait_for(Duration::from_secs(20), "two Events", || async {
        (announced(&f).await == 2).then_some(())
    })
    .await;
    let before_restart = finished_observed(&f).await;
    assert_eq!(before_restart, 2.0, "the history is not observed");
    let scrape = f.op.metrics().await;
    assert!(scrape.has("personalize_watch_seconds_since_newest_job"));
    assert!(scrape.has("personalize_watch_jobs_stuck"));

    f.restart_operator(vec![]);
    f.op.wait_ready().await;
    for (i, arn) in arns[2..].iter().enumerate() {
        finish(&f, arn, i).await;
    }
    wait_for(Duration::from_secs(20), "four Events", || async {
        (announced(&f).await == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after_restart = finished_observed(&f).await;
    assert_eq!(
        before_restart + after_restart,
        4.0,
        "each of the 4 jobs that finished after the first listing observed once across the restart"
    );
    let scrape = f.op.metrics().await;
    let failed = scrape.value("personalize_watch_job_duration_seconds_count{outcome=\"failed\"}");
    assert_eq!(failed, Some(1.0), "{}", scrape.text());
}
