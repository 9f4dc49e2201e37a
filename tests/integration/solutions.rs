//! Solution watches end to end: a watch of a solution follows Personalize's retraining into
//! new versions with no spec edit, a namespace allowed one version cannot watch its solution,
//! and the watches of one account are served by one account-wide listing per tick.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::support::{
    self, CommandOutput, Fixture, condition, kubectl, kubectl_with_input, total, wait_for,
};

fn solution_arn(name: &str) -> String {
    format!(
        "arn:aws:personalize:us-east-1:{}:solution/{name}",
        support::ACCOUNT
    )
}

#[tokio::test]
async fn a_solution_watch_follows_a_new_version_and_announces_its_failure_once() {
    let f = Fixture::start("solution").await;
    let solution = solution_arn("retrained");
    let (v1, v2, v3) = (
        format!("{solution}/v1"),
        format!("{solution}/v2"),
        format!("{solution}/v3"),
    );
    f.emu.generate(&v1, 3, "ACTIVE", "week1").await;
    f.emu.generate(&v2, 2, "ACTIVE", "week2").await;
    // A solution whose name starts with the watched one's: none of its jobs are counted.
    f.emu
        .generate(&format!("{solution}-other/v1"), 4, "ACTIVE", "other")
        .await;
    f.apply_solution_watch(
        "recs",
        &solution,
        "  pollInterval: 5s\n  activePollInterval: 5s\n",
    )
    .await;
    let first = f
        .wait_status(
            "recs",
            Duration::from_secs(30),
            "two versions listed",
            |w| total(w) == Some(5),
        )
        .await;
    assert_eq!(
        first.status.as_ref().and_then(|s| s.versions_total),
        Some(2)
    );

    // Personalize retrains: a new version, and a job against it, after the watch was applied.
    let arns = f.emu.generate(&v3, 1, "IN PROGRESS", "week3").await;
    let third = f
        .wait_status(
            "recs",
            Duration::from_secs(30),
            "the new version counted",
            |w| total(w) == Some(6),
        )
        .await;
    let status = third.status.clone().unwrap_or_default();
    assert_eq!(status.versions_total, Some(3));
    let newest = &status.versions[0];
    assert_eq!(
        (
            newest.solution_version_arn.as_str(),
            newest.counts.in_progress
        ),
        (v3.as_str(), 1)
    );
    let week3 = status
        .jobs
        .iter()
        .find(|j| j.name == "week3-1")
        .expect("the new job shown");
    assert_eq!(week3.solution_version_arn.as_deref(), Some(v3.as_str()));

    f.emu
        .set_status(
            &arns[0],
            "CREATE FAILED",
            Some("the new model's input is missing"),
        )
        .await;
    wait_for(Duration::from_secs(20), "the failure announced", || async {
        (f.job_events("BatchInferenceJobFailed", "week3-1").await > 0).then_some(())
    })
    .await;
    // Three more polls: still one Event, and nobody touched the spec.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(f.job_events("BatchInferenceJobFailed", "week3-1").await, 1);
    let last = f.watches().get("recs").await.expect("the watch");
    assert_eq!(
        last.metadata.generation,
        Some(1),
        "the spec was never edited"
    );
    assert_eq!(last.spec.solution_arn.as_deref(), Some(solution.as_str()));
    let counts = last.status.and_then(|s| s.counts).unwrap_or_default();
    assert_eq!((counts.total, counts.failed), (6, 1));
}

#[tokio::test]
async fn a_namespace_allowed_one_version_cannot_watch_its_solution() {
    let f = Fixture::start("solution-refused").await;
    let solution = solution_arn("recs");
    let patch = serde_json::json!({"metadata": {"annotations": {
        "personalize-watch.dev/allowed-arns": format!("{solution}/v1"),
    }}});
    Api::<Namespace>::all(f.client.clone())
        .patch(&f.ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the namespace");
    f.emu
        .generate(&format!("{solution}/v1"), 2, "ACTIVE", "job")
        .await;
    f.apply_watch("version", &format!("{solution}/v1"), "")
        .await;
    f.wait_status(
        "version",
        Duration::from_secs(30),
        "the allowed version listed",
        |w| total(w) == Some(2),
    )
    .await;
    f.apply_solution_watch("solution", &solution, "").await;
    let refused = f
        .wait_status("solution", Duration::from_secs(30), "NotPermitted", |w| {
            condition(w, "Ready").is_some_and(|(_, reason)| reason == "NotPermitted")
        })
        .await;
    let message = refused
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains(&solution) && message.contains("matches no pattern"),
        "{message}"
    );
    let asked = f.emu.requests().await;
    assert!(
        asked.iter().all(
            |r| r.solution_version_arn.as_deref() != Some(solution.as_str())
                && (r.operation != "ListBatchInferenceJobs" || r.solution_version_arn.is_some())
        ),
        "no call for the refused watch: {asked:?}"
    );
}

#[tokio::test]
async fn two_watches_of_one_account_share_one_listing_per_tick_and_each_gets_its_own_jobs() {
    let f = Fixture::start("shared").await;
    let (a, b, unwatched) = (
        support::solution_version_arn("shared-a"),
        support::solution_version_arn("shared-b"),
        support::solution_version_arn("shared-unwatched"),
    );
    f.emu.generate(&a, 3, "ACTIVE", "a").await;
    f.emu.generate(&b, 2, "CREATE FAILED", "b").await;
    f.emu.generate(&unwatched, 4, "ACTIVE", "u").await;
    let every = "  pollInterval: 5s\n";
    f.apply_watch("a", &a, every).await;
    f.apply_watch("b", &b, every).await;
    for (name, jobs) in [("a", 3), ("b", 2)] {
        f.wait_status(name, Duration::from_secs(30), "listed", |w| {
            total(w) == Some(jobs)
        })
        .await;
    }
    // Past the first polls, which learn the sizes: a window of four ticks.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let listings = |requests: &[personalize_emulator::LoggedRequest]| {
        let of = |account_wide: bool| {
            requests
                .iter()
                .filter(|r| r.operation == "ListBatchInferenceJobs" && r.status == 200)
                .filter(|r| r.solution_version_arn.is_none() == account_wide)
                .count()
        };
        (of(true), of(false))
    };
    let before = listings(&f.emu.requests().await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = listings(&f.emu.requests().await);
    let (account_wide, own) = (after.0 - before.0, after.1 - before.1);
    println!("over 20 s: {account_wide} account-wide listings, {own} listings of one version");
    assert!(
        (3..=5).contains(&account_wide) && own == 0,
        "over 20 s of 5 s polls: {account_wide} account-wide listings (one per tick for both) and {own} of one version"
    );
    for (name, version, jobs, failed) in [("a", &a, 3, 0), ("b", &b, 2, 2)] {
        let w = f.watches().get(name).await.expect("the watch");
        let status = w.status.unwrap_or_default();
        let counts = status.counts.unwrap_or_default();
        assert_eq!((counts.total, counts.failed), (jobs, failed), "{name}");
        assert!(
            status
                .jobs
                .iter()
                .all(|j| j.solution_version_arn.as_deref() == Some(version.as_str())),
            "{name} shows only its own jobs"
        );
    }
}

/// What the schema refuses at `kubectl apply`, naming the field.
#[tokio::test]
async fn the_schema_takes_exactly_one_arn_and_never_a_change_of_kind() {
    let f = Fixture::start("solution-schema").await;
    let solution = solution_arn("recs");
    let refused = |spec: &str| {
        let yaml = support::watch_yaml(&f.ns, "bad", spec);
        let CommandOutput {
            success, stderr, ..
        } = kubectl_with_input(&["apply", "-f", "-"], Some(&yaml));
        assert!(!success, "{spec} was accepted");
        stderr
    };
    let both = refused(&format!(
        "solutionArn: {solution}\nsolutionVersionArn: {solution}/v1"
    ));
    assert!(
        both.contains("exactly one of spec.solutionVersionArn"),
        "{both}"
    );
    let neither = refused("pollInterval: 5m");
    assert!(
        neither.contains("exactly one of spec.solutionVersionArn"),
        "{neither}"
    );
    let version_in_solution = refused(&format!("solutionArn: {solution}/v1"));
    assert!(
        version_in_solution.contains("spec.solutionArn"),
        "{version_in_solution}"
    );
    let partition =
        refused("solutionArn: arn:aws:personalize:cn-north-1:123456789012:solution/recs");
    assert!(partition.contains("partition"), "{partition}");
    let region = refused(&format!("solutionArn: {solution}\nregion: eu-west-1"));
    assert!(region.contains("spec.region"), "{region}");

    f.apply_solution_watch("recs", &solution, "").await;
    let patch = |body: &str| {
        let CommandOutput {
            success, stderr, ..
        } = kubectl(&[
            "patch", "svw", "recs", "-n", &f.ns, "--type", "merge", "-p", body,
        ]);
        assert!(!success, "{body} was accepted");
        stderr
    };
    let other = patch(&format!(r#"{{"spec":{{"solutionArn":"{solution}-2"}}}}"#));
    assert!(other.contains("solutionArn is immutable"), "{other}");
    let kind = patch(&format!(
        r#"{{"spec":{{"solutionArn":null,"solutionVersionArn":"{solution}/v1"}}}}"#
    ));
    assert!(kind.contains("cannot change between"), "{kind}");
}
