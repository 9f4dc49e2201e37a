//! The status decision's tests, by topic; the helpers every topic uses are here.

use super::*;
use crate::crd::{AnnouncementKind, EventLedger, ListingSource, PendingEvent};
use crate::events::ledger::{self, CLOCK_ALLOWANCE, MAX_FINISHED, MAX_OPEN, RETENTION};
use crate::events::{Delivery, MAX_OUTBOX, after_publishing};
use crate::personalize::ListedJob;
use jiff::SignedDuration;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

use ConditionType::{Ready as READY, Reconciling as RECONCILING, Stalled as STALLED};

const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/s/v1";

mod announcements;
mod condition_changes;
mod counts_and_list;
mod exactly_once;
mod fits_etcd;
mod timeliness;
mod versions;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn source(region: &str) -> ListingSource {
    ListingSource {
        region: region.into(),
        endpoint: "default".into(),
    }
}

fn job(n: usize, status: &str, created: i64) -> ListedJob {
    ListedJob {
        name: format!("job-{n}"),
        arn: format!("arn:aws:personalize:us-east-1:123456789012:batch-inference-job/job-{n}"),
        status: status.into(),
        mode: Some("BATCH_INFERENCE".into()),
        created: Some(t(created)),
        updated: Some(t(created)),
        failure_reason: (status == "CREATE FAILED").then(|| "bad input".into()),
        solution_version_arn: Some(SV.into()),
    }
}

fn listing(jobs: &[ListedJob]) -> Listing {
    Listing {
        jobs: jobs.to_vec(),
        source: source("us-east-1"),
        started: std::time::Instant::now(),
    }
}

fn observe<'a>(outcome: PollOutcome<'a>, now: i64, max: usize) -> Observation<'a> {
    Observation {
        watched_arn: SV,
        generation: 1,
        max_jobs_in_status: max,
        now: t(now),
        outcome,
        expectations: Expectations::default(),
        watch_created: None,
    }
}

/// The next status after listing `jobs` at `now`.
fn listed(prev: Option<&SolutionVersionWatchStatus>, jobs: &[ListedJob], now: i64) -> Decision {
    next_status(prev, &observe(PollOutcome::Listed(&listing(jobs)), now, 50))
}

/// Jobs running longer than this are stuck, in the tests that say so.
const STUCK_AFTER: SignedDuration = SignedDuration::from_secs(30);

fn expecting() -> Expectations {
    Expectations {
        stuck_after: Some(STUCK_AFTER),
        new_job_within: Some(SignedDuration::from_secs(60)),
    }
}

/// The next status after listing `jobs` at `now`, with spec.stuckAfter 30s and
/// spec.expectNewJobWithin 1m; the watch was created at 0.
fn listed_expecting(
    prev: Option<&SolutionVersionWatchStatus>,
    jobs: &[ListedJob],
    now: i64,
) -> Decision {
    let listing = listing(jobs);
    let obs = Observation {
        expectations: expecting(),
        watch_created: Some(t(0)),
        ..observe(PollOutcome::Listed(&listing), now, 50)
    };
    next_status(prev, &obs)
}

fn outbox(status: &SolutionVersionWatchStatus) -> Vec<PendingEvent> {
    status
        .ledger
        .as_ref()
        .map(|l| l.outbox.iter().cloned().collect())
        .unwrap_or_default()
}

/// Job announcements in the outbox (the baseline summary left out).
fn announced(status: &SolutionVersionWatchStatus) -> Vec<(AnnouncementKind, String)> {
    outbox(status)
        .into_iter()
        .filter(|e| e.kind != AnnouncementKind::Discovered)
        .map(|e| (e.kind, e.job_name))
        .collect()
}

/// Everything in the outbox published.
fn published(mut status: SolutionVersionWatchStatus) -> SolutionVersionWatchStatus {
    let all = outbox(&status).len();
    let delivery = Delivery {
        published: all,
        error: None,
        ..Default::default()
    };
    after_publishing(&mut status, &delivery, 1, t(0));
    status
}
