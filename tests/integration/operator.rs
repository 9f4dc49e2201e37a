//! The operator end to end: its own process, the real control plane, the emulator.

use std::time::{Duration, Instant};

use kube::api::DeleteParams;

use personalize_emulator::LoggedRequest;
use personalize_emulator::faults::{FaultKind, FaultRule};

use crate::support::{
    self, CommandOutput, Fixture, condition, kubectl, kubectl_with_input, total, wait_for,
};

#[tokio::test]
async fn watch_shows_exact_counts_and_the_50_newest_jobs() {
    let f = Fixture::start("counts").await;
    let sv = support::solution_version_arn("mixed");
    f.emu.generate(&sv, 100, "ACTIVE", "done").await;
    f.emu.generate(&sv, 37, "CREATE FAILED", "failed").await;
    f.emu.generate(&sv, 50, "PENDING", "queued").await;
    f.emu.generate(&sv, 40, "IN PROGRESS", "running").await;
    f.emu.generate(&sv, 10, "CREATE STOPPED", "odd").await;
    f.apply_watch("mixed", &sv, "").await;
    let w = f
        .wait_status("mixed", Duration::from_secs(30), "237 jobs counted", |w| {
            total(w) == Some(237)
        })
        .await;
    let status = w.status.unwrap();
    let c = status.counts.unwrap();
    assert_eq!(
        (
            c.total,
            c.active,
            c.failed,
            c.pending,
            c.in_progress,
            c.other
        ),
        (237, 100, 37, 50, 40, 10)
    );
    assert_eq!(status.jobs.len(), 50);
    assert!(status.jobs_truncated);
    let created: Vec<_> = status
        .jobs
        .iter()
        .map(|j| j.creation_time.clone().unwrap().0)
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // The newest generated batch is the 10 odd ones, then running.
    assert!(
        status.jobs[0].name.starts_with("odd-"),
        "{}",
        status.jobs[0].name
    );
    assert_eq!(status.observed_generation, Some(1));

    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = kubectl(&["get", "svw", "-n", &f.ns]);
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "READY", "TOTAL", "PENDING", "RUNNING", "ACTIVE", "FAILED", "LATEST", "LAST",
            "SYNC", "AGE"
        ]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..7], ["mixed", "True", "237", "50", "40", "100", "37"]);
    let CommandOutput {
        success: ok,
        stdout: wide,
        ..
    } = kubectl(&["get", "svw", "-n", &f.ns, "-o", "wide"]);
    assert!(
        ok && wide.contains("ARN")
            && wide.contains("MESSAGE")
            && wide.contains("STUCK")
            && wide.contains(&sv)
    );

    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "svw/mixed",
        "-n",
        &f.ns,
        "--timeout=30s",
    ]);
    assert!(ok, "kubectl wait: {out}{err}");
    assert!(out.contains("condition met"), "{out}");

    // One summary Event for jobs that had finished before the watch, none one by one.
    assert_eq!(f.events("JobsDiscovered").await.len(), 1);
    assert!(f.events("BatchInferenceJobFailed").await.is_empty());
}

#[tokio::test]
async fn failure_and_completion_give_exactly_one_event_across_restarts() {
    let mut f = Fixture::start("events").await;
    let sv = support::solution_version_arn("evented");
    let arns = f.emu.generate(&sv, 6, "IN PROGRESS", "job").await;
    f.apply_watch("evented", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("evented", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(6)
    })
    .await;

    let failed_at = Instant::now();
    f.emu
        .set_status(
            &arns[1],
            "CREATE FAILED",
            Some("Input path s3://bucket/in not found"),
        )
        .await;
    wait_for(Duration::from_secs(8), "the Warning Event", || async {
        (f.job_events("BatchInferenceJobFailed", "job-2").await > 0).then_some(())
    })
    .await;
    let latency = failed_at.elapsed();
    assert!(
        latency <= Duration::from_secs(7),
        "event after {latency:?}, activePollInterval is 5s"
    );
    let event = f.events("BatchInferenceJobFailed").await.remove(0);
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("job-2") && note.contains("Input path s3://bucket/in not found"),
        "{note}"
    );

    // Two restarts, one a crash, several polls each: still exactly one.
    for _ in 0..2 {
        f.restart_operator(vec![]);
        f.op.wait_ready().await;
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    assert_eq!(f.job_events("BatchInferenceJobFailed", "job-2").await, 1);

    f.emu.set_status(&arns[2], "ACTIVE", None).await;
    wait_for(Duration::from_secs(8), "the Normal Event", || async {
        (f.job_events("BatchInferenceJobCompleted", "job-3").await > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(f.job_events("BatchInferenceJobCompleted", "job-3").await, 1);
    assert_eq!(f.job_events("BatchInferenceJobFailed", "job-2").await, 1);
    let completed = f.events("BatchInferenceJobCompleted").await.remove(0);
    assert_eq!(completed.type_.as_deref(), Some("Normal"));
}

#[tokio::test]
async fn malformed_arn_and_arn_change_are_refused_naming_the_field() {
    let f = Fixture::start("refused").await;
    let bad = support::watch_yaml(&f.ns, "bad", "solutionVersionArn: not-an-arn");
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl_with_input(&["apply", "-f", "-"], Some(&bad));
    assert!(!ok);
    assert!(err.contains("spec.solutionVersionArn"), "{err}");

    let sv = support::solution_version_arn("fixed");
    f.apply_watch("fixed", &sv, "").await;
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&[
        "patch",
        "svw",
        "fixed",
        "-n",
        &f.ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"solutionVersionArn":"arn:aws:personalize:us-east-1:123456789012:solution/other/v2"}}"#,
    ]);
    assert!(!ok);
    assert!(
        err.contains("spec.solutionVersionArn") && err.contains("immutable"),
        "{err}"
    );

    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&[
        "patch",
        "svw",
        "fixed",
        "-n",
        &f.ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"pollInterval":"1s"}}"#,
    ]);
    assert!(!ok && err.contains("spec.pollInterval"), "{err}");
}

#[tokio::test]
async fn access_denied_stalls_keeps_counts_and_recovers_without_restart() {
    let f = Fixture::start("denied").await;
    let sv = support::solution_version_arn("denied");
    f.emu.generate(&sv, 12, "ACTIVE", "job").await;
    f.emu.generate(&sv, 3, "PENDING", "wait").await;
    f.apply_watch("denied", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("denied", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(15)
    })
    .await;

    f.emu
        .fault(
            FaultRule::new(FaultKind::AccessDenied)
                .times(100000)
                .for_subject(&sv),
        )
        .await;
    let w = f
        .wait_status(
            "denied",
            Duration::from_secs(20),
            "Ready=False AccessDenied",
            |w| condition(w, "Ready") == Some(("False".into(), "AccessDenied".into())),
        )
        .await;
    assert_eq!(
        condition(&w, "Stalled"),
        Some(("True".into(), "AccessDenied".into()))
    );
    let status = w.status.unwrap();
    assert_eq!(status.counts.unwrap().total, 15, "last good counts kept");
    assert_eq!(status.jobs.len(), 15);
    assert!(status.stale);
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(
        message.contains("personalize:ListBatchInferenceJobs"),
        "{message}"
    );
    // The Warning Event follows the status write.
    wait_for(
        Duration::from_secs(10),
        "a Warning Event saying what is wrong",
        || async { (!f.events("AccessDenied").await.is_empty()).then_some(()) },
    )
    .await;

    f.emu.clear_faults().await;
    let w = f
        .wait_status("denied", Duration::from_secs(20), "recovery", |w| {
            condition(w, "Ready") == Some(("True".into(), "Synced".into()))
        })
        .await;
    assert_eq!(condition(&w, "Stalled").unwrap().0, "False");
    assert!(!w.status.unwrap().stale);
}

/// A failed poll after a good one keeps the job list (which the operator's cache does not hold)
/// and marks it stale.
#[tokio::test]
async fn a_failed_poll_keeps_the_job_list_and_marks_it_stale() {
    let f = Fixture::start("keepjobs").await;
    let sv = support::solution_version_arn("keepjobs");
    f.emu.generate(&sv, 150, "CREATE FAILED", "job").await;
    f.apply_watch("keep", &sv, "  pollInterval: 5s\n  maxJobsInStatus: 200\n")
        .await;
    let good = f
        .wait_status("keep", Duration::from_secs(30), "first listing", |w| {
            total(w) == Some(150)
        })
        .await
        .status
        .unwrap();
    assert_eq!(good.jobs.len(), 150);
    f.emu
        .fault(
            FaultRule::new(FaultKind::Error500)
                .times(100_000)
                .for_subject(&sv),
        )
        .await;
    let failed = f
        .wait_status("keep", Duration::from_secs(30), "a failed poll", |w| {
            w.status.as_ref().is_some_and(|s| s.stale)
        })
        .await
        .status
        .unwrap();
    assert_eq!(failed.jobs, good.jobs, "the last good job list, intact");
    assert_eq!(failed.counts, good.counts);
    assert_eq!(failed.jobs_digest, good.jobs_digest);
}

#[tokio::test]
async fn deleting_a_watch_stops_its_polling() {
    let f = Fixture::start("deleted").await;
    let sv = support::solution_version_arn("deleted");
    f.emu.generate(&sv, 2, "PENDING", "job").await;
    f.apply_watch("gone", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("gone", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(2)
    })
    .await;
    f.watches()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let deleted_ms = jiff::Timestamp::now().as_millisecond();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let late: Vec<_> = f
        .emu
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r.solution_version_arn.as_deref() == Some(sv.as_str()) && r.time_ms > deleted_ms + 1000
        })
        .collect();
    assert!(late.is_empty(), "calls after deletion: {late:?}");
}

#[tokio::test]
async fn steady_state_polls_write_nothing_until_the_heartbeat() {
    let f = Fixture::start_with("steady", vec!["--status-heartbeat".into(), "20s".into()]).await;
    let sv = support::solution_version_arn("steady");
    f.emu.generate(&sv, 150, "ACTIVE", "job").await;
    f.apply_watch("steady", &sv, "  pollInterval: 5s\n").await;
    f.wait_status("steady", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(150)
    })
    .await;
    let written = f.watches().get("steady").await.unwrap();
    let version = written.metadata.resource_version.clone();
    let synced = written.status.unwrap().last_sync_time.unwrap().0;
    let before = f.op.metrics().await;
    let first_pages = |log: &[LoggedRequest]| {
        log.iter()
            .filter(|r| r.operation == "ListBatchInferenceJobs" && !r.had_next_token)
            .count()
    };
    let polls_before = first_pages(&f.emu.requests().await);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = f.op.metrics().await;
    let log = f.emu.requests().await;
    let polls = (first_pages(&log) - polls_before) as f64;
    let writes = after.sum("personalize_watch_status_writes_total")
        - before.sum("personalize_watch_status_writes_total");
    let events =
        after.sum("personalize_watch_events_total") - before.sum("personalize_watch_events_total");
    assert!(polls >= 2.0, "{polls} polls in 12s at 5s");
    assert_eq!(
        writes, 0.0,
        "{writes} status writes for {polls} quiet polls"
    );
    assert_eq!(events, 0.0);
    let unchanged = f.watches().get("steady").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version, version,
        "the object did not move"
    );
    // The exact time of the last listing is a metric meanwhile.
    let listed_at = after
        .value(&format!(
            "personalize_watch_last_sync_timestamp_seconds{{namespace=\"{}\",name=\"steady\"}}",
            f.ns
        ))
        .unwrap();
    assert!(
        listed_at > synced.as_second() as f64 + 4.0,
        "{listed_at} vs {synced}"
    );
    // The heartbeat: lastSyncTime written again once 20s old, at the next poll.
    let beat = f
        .wait_status(
            "steady",
            Duration::from_secs(20),
            "the heartbeat write",
            |w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.last_sync_time.as_ref())
                    .is_some_and(|t| t.0 > synced)
            },
        )
        .await;
    let gap = beat.status.unwrap().last_sync_time.unwrap().0.as_second() - synced.as_second();
    assert!(
        (20..=27).contains(&gap),
        "heartbeat after {gap}s (20s + at most one 5s poll)"
    );
    // Two pages per poll (150 jobs), the minimum.
    let listing_calls = log
        .iter()
        .filter(|r| r.operation == "ListBatchInferenceJobs")
        .count();
    assert_eq!(
        listing_calls,
        first_pages(&log) * 2,
        "ceil(150/100) calls per listing"
    );
}
