//! What a huge or hostile Personalize can make the operator hold: one listing is bounded by
//! jobs and by bytes (`--max-listing-jobs`, `--max-listing-bytes`), failure reasons are cut as
//! they are read, and past a bound the poll fails with `ListingTooLarge` while the last good
//! status stays, marked stale.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use personalize_emulator::faults::{FaultKind, FaultRule};
use personalize_watch::crd::SolutionVersionWatch;

use crate::support::{self, Fixture, bench::process_usage, condition, total};

const MAX_BYTES_MIB: usize = 4;
const MAX_JOBS: usize = 5_000;
/// What the test allows the operator's peak resident set to grow by while it lists: one
/// listing at its bound, the page being read (at most 4 MiB, held as the body and as the
/// parsed page), and the allocator's slack. Unbounded, the failed listing below would hold its
/// 3,800 reasons of 32 KiB: 119 MiB.
const ALLOWED_GROWTH_MIB: f64 = (MAX_BYTES_MIB + 2 * 4 + 16) as f64;

fn bounded_operator_args() -> Vec<String> {
    [
        "--max-listing-bytes",
        &format!("{MAX_BYTES_MIB}Mi"),
        "--max-listing-jobs",
        &MAX_JOBS.to_string(),
        "--personalize-rate",
        "50",
        "--personalize-burst",
        "50",
    ]
    .map(String::from)
    .to_vec()
}

fn ready(w: &SolutionVersionWatch) -> Option<(String, String)> {
    condition(w, "Ready")
}

/// Applies a watch polled every 5 s over `jobs` finished jobs and waits for its first listing.
async fn listed(f: &Fixture, name: &str, jobs: usize) -> String {
    let sv = support::solution_version_arn(name);
    f.emu.generate(&sv, jobs, "ACTIVE", "done").await;
    f.apply_watch(name, &sv, "  pollInterval: 5s\n").await;
    f.wait_status(name, Duration::from_secs(60), "first listing", |w| {
        total(w) == Some(jobs as i64) && ready(w).is_some_and(|r| r.0 == "True")
    })
    .await;
    sv
}

/// Adds `more` jobs and waits for the poll that fails at a bound; the last good listing stays.
async fn grows_past_the_bound(f: &Fixture, name: &str, sv: &str, more: usize, flag: &str) {
    let before = f.watches().get(name).await.unwrap().status.unwrap();
    f.emu.generate(sv, more, "ACTIVE", "more").await;
    let w = f
        .wait_status(
            name,
            Duration::from_secs(60),
            "Ready=False ListingTooLarge",
            |w| ready(w).map(|r| r.1).as_deref() == Some("ListingTooLarge"),
        )
        .await;
    let status = w.status.clone().unwrap();
    assert!(status.stale, "the last good status is marked stale");
    assert_eq!(status.counts, before.counts, "the last good counts stay");
    assert_eq!(status.jobs, before.jobs, "the last good jobs stay");
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(flag),
        "the message names {flag}: {message}"
    );
    support::wait_for(
        Duration::from_secs(20),
        "a ListingTooLarge Event",
        || async {
            let events = f.events("ListingTooLarge").await;
            let regarding = |r: &ObjectReference| r.name.as_deref() == Some(name);
            events
                .iter()
                .any(|e| e.regarding.as_ref().is_some_and(regarding))
                .then_some(())
        },
    )
    .await;
}

fn peak_rss_mib(f: &Fixture) -> f64 {
    process_usage(f.op.pid().expect("the operator runs")).0
}

fn assert_peak_within_bound(f: &Fixture, at_start: f64, after: &str) {
    let peak = peak_rss_mib(f);
    let growth = peak - at_start;
    println!(
        "peak RSS after {after}: {peak:.1} MiB, {growth:.1} MiB over {at_start:.1} MiB at start \
         (allowed {ALLOWED_GROWTH_MIB} MiB)"
    );
    assert!(
        growth <= ALLOWED_GROWTH_MIB,
        "peak RSS grew {growth:.1} MiB after {after}"
    );
}

#[tokio::test]
async fn a_listing_is_bounded_by_bytes_and_jobs_and_long_reasons_are_cut_as_read() {
    let f = Fixture::start_with("bounds", bounded_operator_args()).await;
    let at_start = peak_rss_mib(&f);

    // Pages of 100 jobs with 32 KiB reasons (3.2 MiB a page): 2,000 of them are 64 MiB as
    // sent, about 2.7 MiB once each reason is cut to 1 KiB, under the 4 MiB bound.
    let long = support::solution_version_arn("long");
    f.emu
        .fault(
            FaultRule::new(FaultKind::LongReasons)
                .times(1_000_000)
                .for_subject(&long),
        )
        .await;
    listed(&f, "long", 2_000).await;
    let w = f.watches().get("long").await.unwrap();
    let shown = w.status.unwrap().jobs;
    assert!(!shown.is_empty());
    for job in &shown {
        let reason = job.failure_reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("Input data in s3://"), "{reason:.80}");
        assert!(reason.len() <= 1024, "{}", reason.len());
    }

    assert_peak_within_bound(&f, at_start, "2,000 jobs with 32 KiB reasons");

    // 3,800 such jobs pass the byte bound (5,000 jobs are allowed).
    grows_past_the_bound(&f, "long", &long, 1_800, "--max-listing-bytes").await;
    assert_peak_within_bound(&f, at_start, "3,800 jobs with 32 KiB reasons");

    // Short reasons: 5,000 jobs fit in the bytes and are allowed; one page more is not.
    let many = listed(&f, "many", MAX_JOBS).await;
    grows_past_the_bound(&f, "many", &many, 100, "--max-listing-jobs").await;
    assert!(f.op.pid().is_some(), "the operator kept running");
}
