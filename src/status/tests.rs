use super::*;
use crate::crd::{AnnouncementKind, EventLedger, ListingSource, PendingEvent};
use crate::personalize::ListedJob;
use jiff::SignedDuration;
use ledger::{CLOCK_ALLOWANCE, MAX_FINISHED, MAX_OPEN, MAX_OUTBOX, RETENTION};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

use ConditionType::{Ready as READY, Reconciling as RECONCILING, Stalled as STALLED};

const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/s/v1";

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
    }
}

fn observe<'a>(outcome: PollOutcome<'a>, now: i64, max: usize) -> Observation<'a> {
    Observation {
        solution_version_arn: SV,
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
        .map(|l| l.outbox.clone())
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
    };
    after_publishing(&mut status, &delivery, 1, t(0));
    status
}

#[test]
fn counts_are_exact_and_unknown_states_counted_apart() {
    let jobs = vec![
        job(1, "PENDING", 1),
        job(2, "IN PROGRESS", 2),
        job(3, "ACTIVE", 3),
        job(4, "CREATE FAILED", 4),
        job(5, "CREATE STOPPED", 5),
        job(6, "ACTIVE", 6),
    ];
    let c = listed(None, &jobs, 10).status.counts.unwrap();
    assert_eq!(
        (
            c.total,
            c.pending,
            c.in_progress,
            c.active,
            c.failed,
            c.other
        ),
        (6, 1, 1, 2, 1, 1)
    );
}

#[test]
fn jobs_are_newest_first_truncated_and_reasons_cut() {
    let mut jobs: Vec<ListedJob> = (0..10).map(|n| job(n, "ACTIVE", n as i64)).collect();
    jobs[9].status = "CREATE FAILED".into();
    jobs[9].failure_reason = Some("é".repeat(2000));
    let next = next_status(None, &observe(PollOutcome::Listed(&listing(&jobs)), 100, 3));
    let names: Vec<_> = next.status.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["job-9", "job-8", "job-7"]);
    assert!(next.status.jobs_truncated);
    let reason = next.status.jobs[0].failure_reason.as_ref().unwrap();
    assert!(reason.len() <= 1024 && reason.len() >= 1022);
    assert!(reason.chars().all(|c| c == 'é'));
}

#[test]
fn other_solution_versions_and_repeats_are_counted_once() {
    let mut other = job(1, "ACTIVE", 1);
    other.solution_version_arn = Some("arn:aws:personalize:us-east-1:1:solution/x/y".into());
    // Pages shifted during the listing: job-2 shows twice, once before it finished.
    let mut finished = job(2, "CREATE FAILED", 2);
    finished.updated = Some(t(5));
    let jobs = vec![finished, other, job(2, "IN PROGRESS", 2)];
    let status = listed(None, &jobs, 10).status;
    let counts = status.counts.unwrap();
    assert_eq!((counts.total, counts.failed, counts.in_progress), (1, 1, 0));
}

#[test]
fn first_listing_summarises_then_transitions_are_announced_once() {
    let jobs = vec![
        job(1, "ACTIVE", 1),
        job(2, "CREATE FAILED", 2),
        job(3, "PENDING", 3),
    ];
    let first = listed(None, &jobs, 10).status;
    assert!(announced(&first).is_empty(), "nothing announced one by one");
    let summary = outbox(&first).remove(0);
    assert_eq!(summary.kind, AnnouncementKind::Discovered);
    assert!(
        summary
            .note
            .contains("3 jobs: 1 active, 1 failed, 1 pending"),
        "{}",
        summary.note
    );
    let prev = published(first);

    let mut jobs2 = jobs.clone();
    jobs2[2].status = "CREATE FAILED".into();
    jobs2[2].updated = Some(t(60));
    jobs2[2].failure_reason = Some("Input path not found".into());
    let second = listed(Some(&prev), &jobs2, 70).status;
    let events = outbox(&second);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, AnnouncementKind::Failed);
    assert_eq!(events[0].job_name, "job-3");
    assert_eq!(events[0].id, jobs2[2].arn);
    assert!(events[0].note.contains("Input path not found"));
    let prev = published(second);

    let third = listed(Some(&prev), &jobs2, 130).status;
    assert!(outbox(&third).is_empty());
}

#[test]
fn conditions_keep_transition_time_and_status_is_stable() {
    let jobs = vec![job(1, "ACTIVE", 1)];
    let first = published(listed(None, &jobs, 10).status);
    let second = published(listed(Some(&first), &jobs, 70).status);
    let ready1 = condition(&first, READY).unwrap();
    let ready2 = condition(&second, READY).unwrap();
    assert_eq!(ready1.last_transition_time, ready2.last_transition_time);
    // Only lastSyncTime moved; the job list, the same, is left out (its digest stands for it).
    let mut a = first.clone();
    a.last_sync_time = second.last_sync_time.clone();
    a.jobs.clear();
    assert_eq!(a, second);
    // Each condition type once (Overdue only with spec.expectNewJobWithin).
    for c in ConditionType::ALL
        .into_iter()
        .filter(|c| *c != ConditionType::Overdue)
    {
        assert_eq!(
            second
                .conditions
                .iter()
                .filter(|x| x.type_ == c.as_str())
                .count(),
            1
        );
    }
}

#[test]
fn failures_keep_last_good_data_and_mark_it_stale() {
    let jobs = vec![job(1, "ACTIVE", 1), job(2, "PENDING", 2)];
    let good = published(listed(None, &jobs, 10).status);
    let failure = PollFailure {
        reason: Reason::AccessDenied,
        message: "not authorized".into(),
        stalled: true,
    };
    let bad = next_status(Some(&good), &observe(PollOutcome::Failed(&failure), 70, 50)).status;
    assert_eq!(bad.counts, good.counts);
    assert_eq!(bad.jobs, good.jobs);
    assert!(bad.stale);
    let ready = condition(&bad, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "AccessDenied")
    );
    assert_eq!(condition(&bad, STALLED).unwrap().status, "True");
    assert_eq!(condition(&bad, RECONCILING).unwrap().status, "False");
    let recovered = listed(Some(&bad), &jobs, 130).status;
    assert!(!recovered.stale);
    assert_eq!(condition(&recovered, READY).unwrap().status, "True");
    assert_eq!(condition(&recovered, STALLED).unwrap().status, "False");
}

#[test]
fn transient_failure_on_a_new_generation_is_reconciling() {
    let failure = PollFailure {
        reason: Reason::Throttled,
        message: "Rate exceeded".into(),
        stalled: false,
    };
    let next = next_status(None, &observe(PollOutcome::Failed(&failure), 1, 50)).status;
    assert_eq!(condition(&next, RECONCILING).unwrap().status, "True");
    assert_eq!(condition(&next, READY).unwrap().status, "False");
    assert!(!next.stale);
}

#[test]
fn announcements_over_the_outbox_cap_wait_in_the_ledger_not_lost() {
    let base: Vec<ListedJob> = (0..250).map(|n| job(n, "PENDING", n as i64)).collect();
    let mut prev = published(listed(None, &base, 300).status);
    let failed: Vec<ListedJob> = base
        .iter()
        .map(|j| ListedJob {
            status: "CREATE FAILED".into(),
            updated: Some(t(350)),
            ..j.clone()
        })
        .collect();
    let mut names = Vec::new();
    for round in 0..3 {
        let next = listed(Some(&prev), &failed, 400 + round);
        assert!(outbox(&next.status).len() <= MAX_OUTBOX);
        assert_eq!(
            next.deferred,
            250usize.saturating_sub(MAX_OUTBOX * (round as usize + 1))
        );
        names.extend(announced(&next.status).into_iter().map(|(_, name)| name));
        prev = published(next.status);
    }
    let unique: HashSet<_> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (250, 250));
}

#[test]
fn a_running_job_left_out_while_it_fails_is_announced_once() {
    let jobs = vec![job(1, "IN PROGRESS", 1), job(2, "ACTIVE", 2)];
    let mut prev = published(listed(None, &jobs, 10).status);
    // Two listings leave job-1 out; it fails meanwhile.
    for now in [20, 30] {
        let next = listed(Some(&prev), &jobs[1..], now);
        assert_eq!(next.omitted, 1);
        assert!(announced(&next.status).is_empty());
        prev = published(next.status);
    }
    let mut failed = job(1, "CREATE FAILED", 1);
    failed.updated = Some(t(25));
    let next = listed(Some(&prev), &[failed.clone(), jobs[1].clone()], 40).status;
    assert_eq!(
        announced(&next),
        [(AnnouncementKind::Failed, "job-1".to_string())]
    );
    let again = listed(Some(&published(next)), &[failed, jobs[1].clone()], 50).status;
    assert!(announced(&again).is_empty());
}

#[test]
fn a_finished_job_never_listed_unfinished_is_announced_within_the_retention() {
    let mut prev = published(listed(None, &[job(1, "ACTIVE", 1)], 10).status);
    // job-2 ran and failed between two listings: new, so announced.
    let mut quick = job(2, "CREATE FAILED", 11);
    quick.updated = Some(t(15));
    let next = listed(Some(&prev), &[job(1, "ACTIVE", 1), quick], 20).status;
    assert_eq!(announced(&next).len(), 1);
    prev = published(next);
    // job-3 finished, then every listing left it out for longer than the retention (while
    // another job finished much later): it counts as history, the documented bound.
    let mut hidden = job(3, "ACTIVE", 30);
    hidden.updated = Some(t(40));
    let mut later = job(4, "ACTIVE", 50);
    let late = 50 + RETENTION.as_secs() + 100;
    later.updated = Some(t(late));
    let next = listed(
        Some(&prev),
        &[job(1, "ACTIVE", 1), later.clone()],
        late + 10,
    )
    .status;
    assert_eq!(announced(&next).len(), 1, "job-4");
    prev = published(next);
    let next = listed(
        Some(&prev),
        &[job(1, "ACTIVE", 1), later, hidden],
        late + 20,
    )
    .status;
    assert!(announced(&next).is_empty(), "job-3 is past the horizon");
}

/// The summary's id decides its Event's name: it must not depend on when a writer listed.
#[test]
fn two_writers_taking_the_first_listing_seconds_apart_decide_one_summary() {
    let jobs = vec![job(1, "ACTIVE", 1), job(2, "IN PROGRESS", 2)];
    let first = outbox(&listed(None, &jobs, 10).status);
    let second = outbox(&listed(None, &jobs, 13).status);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, AnnouncementKind::Discovered);
    assert_eq!(first, second, "same id, same note");
}

#[test]
fn each_change_of_source_has_its_own_summary_even_back_to_an_earlier_one() {
    let in_region = |region: &str| Listing {
        jobs: vec![job(1, "ACTIVE", 1)],
        source: source(region),
    };
    let mut prev: Option<SolutionVersionWatchStatus> = None;
    let mut ids = Vec::new();
    for (n, region) in ["eu-west-1", "us-east-1", "eu-west-1"]
        .into_iter()
        .enumerate()
    {
        let listing = in_region(region);
        let obs = observe(PollOutcome::Listed(&listing), 10 + 60 * n as i64, 50);
        let status = next_status(prev.as_ref(), &obs).status;
        let summaries: Vec<String> = outbox(&status)
            .into_iter()
            .filter(|e| e.kind == AnnouncementKind::Discovered)
            .map(|e| e.id)
            .collect();
        assert_eq!(summaries.len(), 1, "{region}: {summaries:?}");
        ids.push(summaries[0].clone());
        prev = Some(published(status));
    }
    assert_eq!(ids.len(), 3);
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}

#[test]
fn a_new_region_or_endpoint_is_a_new_baseline_not_a_flood() {
    // The first listing went to the wrong region: nothing there.
    let empty = Listing {
        jobs: vec![],
        source: source("eu-west-1"),
    };
    let first = next_status(None, &observe(PollOutcome::Listed(&empty), 10, 50)).status;
    let prev = published(first);
    // Fixed: the right region holds 150 finished jobs, some finished after the first listing.
    let history: Vec<ListedJob> = (0..150)
        .map(|n| {
            let mut j = job(n, "ACTIVE", n as i64);
            j.updated = Some(t(5 + n as i64));
            j
        })
        .collect();
    let next = listed(Some(&prev), &history, 200).status;
    let events = outbox(&next);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, AnnouncementKind::Discovered);
    assert_eq!(
        next.ledger.unwrap().source,
        Some(source("us-east-1")),
        "the ledger records the new source"
    );
}

#[test]
fn jobs_without_arn_or_timestamps_are_still_told_apart() {
    let mut nameless_arn = job(1, "IN PROGRESS", 1);
    nameless_arn.arn = String::new();
    nameless_arn.created = None;
    nameless_arn.updated = None;
    let mut no_status = job(2, "ACTIVE", 2);
    no_status.status = "UNKNOWN".into();
    let first = published(listed(None, &[nameless_arn.clone(), no_status.clone()], 10).status);
    assert_eq!(first.counts.as_ref().unwrap().other, 1);
    let done = ListedJob {
        status: "ACTIVE".into(),
        ..nameless_arn
    };
    let next = listed(Some(&first), &[done.clone(), no_status.clone()], 20).status;
    let events = outbox(&next);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].id, "name:job-1",
        "named by its name without an ARN"
    );
    let again = listed(Some(&published(next)), &[done, no_status], 30).status;
    assert!(outbox(&again).is_empty());
}

#[test]
fn the_ledger_stays_bounded() {
    let mut prev = published(listed(None, &[], 0).status);
    let running: Vec<ListedJob> = (0..MAX_OPEN + 50)
        .map(|n| job(n, "IN PROGRESS", n as i64))
        .collect();
    prev = published(listed(Some(&prev), &running, 10).status);
    assert_eq!(prev.ledger.as_ref().unwrap().open.len(), MAX_OPEN);
    let finished: Vec<ListedJob> = (0..MAX_FINISHED + 500)
        .map(|n| {
            let mut j = job(n + 10_000, "ACTIVE", 20);
            j.updated = Some(t(30 + n as i64));
            j
        })
        .collect();
    for round in 0..30 {
        prev = published(listed(Some(&prev), &finished, 40 + round).status);
    }
    let ledger = prev.ledger.unwrap();
    assert!(
        ledger.finished.len() <= MAX_FINISHED,
        "{}",
        ledger.finished.len()
    );
    assert!(ledger.open.len() <= MAX_OPEN);
}

#[test]
fn unpublished_events_stay_and_the_condition_says_why() {
    let jobs = vec![job(1, "IN PROGRESS", 1), job(2, "IN PROGRESS", 2)];
    let prev = published(listed(None, &jobs, 10).status);
    let mut failed = jobs.clone();
    for j in &mut failed {
        j.status = "CREATE FAILED".into();
        j.updated = Some(t(15));
    }
    let mut status = listed(Some(&prev), &failed, 20).status;
    let delivery = Delivery {
        published: 1,
        error: Some("admission webhook denied the request".into()),
    };
    after_publishing(&mut status, &delivery, 1, t(20));
    assert_eq!(outbox(&status).len(), 1);
    let c = condition(&status, ConditionType::EventsPublished).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "EventsPending")
    );
    assert!(
        c.message.contains("1 Events wait") && c.message.contains("webhook"),
        "{}",
        c.message
    );
    // Counts moved on regardless.
    assert_eq!(status.counts.as_ref().unwrap().failed, 2);
    let status = published(status);
    let c = condition(&status, ConditionType::EventsPublished).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Published")
    );
}

/// The largest status the operator can write: 200 summaries with 1 KiB failure reasons and the
/// longest names, a full outbox of 1 KiB notes, the ledger at its caps, long condition messages.
fn largest_status() -> SolutionVersionWatchStatus {
    let long_name = "n".repeat(63);
    let jobs: Vec<ListedJob> = (0..300)
        .map(|n| ListedJob {
            name: format!("{long_name}{n}"),
            arn: format!(
                "{}{long_name}{n}",
                "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/"
            ),
            failure_reason: Some("r".repeat(4096)),
            solution_version_arn: Some(SV.into()),
            ..job(n, "CREATE FAILED", n as i64)
        })
        .collect();
    let mut status = next_status(
        None,
        &observe(PollOutcome::Listed(&listing(&jobs)), 1000, 200),
    )
    .status;
    let ledger = status.ledger.get_or_insert_with(EventLedger::default);
    ledger.outbox = (0..MAX_OUTBOX)
        .map(|n| PendingEvent {
            kind: AnnouncementKind::Failed,
            id: format!(
                "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/{long_name}{n}"
            ),
            job_name: format!("{long_name}{n}"),
            note: "x".repeat(1024),
            duration_seconds: Some(i64::MAX),
        })
        .collect();
    ledger.open = (0..MAX_OPEN).map(|n| format!("{n:016x}")).collect();
    ledger.stuck = ledger.open.clone();
    ledger.finished = (0..MAX_FINISHED)
        .map(|n| (format!("{:016x}", (n + 1) << 32), 1_700_000_000 + n as i64))
        .collect();
    for c in &mut status.conditions {
        c.message = "m".repeat(conditions::MAX_MESSAGE_BYTES);
    }
    status
}

#[test]
fn the_largest_status_fits_the_budget_and_an_oversized_one_is_cut() {
    let status = largest_status();
    let size = budget::size(&status);
    assert!(size <= budget::STATUS_BUDGET_BYTES, "{size} bytes");
    assert!(
        size > budget::STATUS_BUDGET_BYTES / 2,
        "the test status is near the worst case: {size}"
    );
    let mut huge = status;
    for j in &mut huge.jobs {
        j.failure_reason = Some("r".repeat(8 * 1024));
    }
    let dropped = budget::fit(&mut huge);
    assert!(dropped > 0 && huge.jobs_truncated);
    assert!(budget::size(&huge) <= budget::STATUS_BUDGET_BYTES);
    assert_eq!(
        huge.counts.as_ref().unwrap().total,
        300,
        "counts are never cut"
    );
}

// ---- property test: imperfect listings, crashes, refused Events, Event expiry ----

/// How long the API server keeps an Event (its --event-ttl default).
const EVENT_TTL: i64 = 3600;

#[derive(Clone, Debug)]
enum Step {
    Create { status: u8 },
    Advance { index: usize, to_failed: bool },
    Tick { secs: u16 },
    Poll(PollShape),
    FailedPoll,
}

/// One listing: which jobs it leaves out or shows twice (one view from before the last change),
/// in what order, and how the reconcile ends.
#[derive(Clone, Debug)]
struct PollShape {
    omit: u64,
    repeat: u64,
    order: u64,
    /// 0: crash before publishing; 1: publish, then crash before the write; 2: publish and
    /// write; 3: the API server refuses Events, the write goes through.
    ending: u8,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(|status| Step::Create { status }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(index, to_failed)| Step::Advance { index, to_failed }),
        2 => (0u16..2400).prop_map(|secs| Step::Tick { secs }),
        4 => (any::<u64>(), any::<u64>(), any::<u64>(), 0u8..4)
            .prop_map(|(omit, repeat, order, ending)| Step::Poll(PollShape { omit, repeat, order, ending })),
        1 => Just(Step::FailedPoll),
    ]
}

/// A job as it is now, and as it was before its last change.
#[derive(Clone, Debug)]
struct WorldJob {
    now: ListedJob,
    before: Option<ListedJob>,
}

/// The world: jobs, a clock, the stored status, and the Events the API server holds.
struct World {
    jobs: Vec<WorldJob>,
    clock: i64,
    stored: Option<SolutionVersionWatchStatus>,
    /// (reason, id) -> when created; creations per job name.
    events: HashMap<(String, String), i64>,
    created: HashMap<String, Vec<(AnnouncementKind, i64)>>,
    /// When the first listing was written (the watch's baseline).
    baseline: Option<i64>,
    /// Per job: the clock of the first poll that listed it finished and could publish.
    first_publishable: HashMap<String, i64>,
    /// Jobs whose Event was published in an attempt that crashed before its status write, and
    /// that no status write has recorded since: when each was published.
    unrecorded: HashMap<String, i64>,
    /// Jobs a written listing showed unfinished (maybe an old view): the ledger awaits them.
    seen_unfinished: HashSet<String>,
    /// Stuck Events created per job (apart from `created`: a stuck job also finishes).
    stuck_created: HashMap<String, usize>,
}

impl World {
    /// Whether eventual consistency may still hide or show an old view of a job: only for a
    /// while after its last change (well within the ledger's retention).
    fn may_lag(&self, j: &WorldJob) -> bool {
        let changed = j.now.updated.unwrap().as_second() - 1_700_000_000;
        self.clock - changed < RETENTION.as_secs() / 2
    }

    fn listing(&self, shape: &PollShape) -> Vec<ListedJob> {
        let mut out = Vec::new();
        for (i, j) in self.jobs.iter().enumerate() {
            let bit = 1u64 << (i % 64);
            let lags = self.may_lag(j);
            if shape.repeat & bit != 0
                && lags
                && let Some(before) = &j.before
            {
                out.push(before.clone());
            }
            if shape.omit & bit == 0 || !lags {
                out.push(j.now.clone());
            }
        }
        // Any order: rotate and maybe reverse.
        if !out.is_empty() {
            let k = (shape.order as usize) % out.len();
            out.rotate_left(k);
            if shape.order & 1 == 1 {
                out.reverse();
            }
        }
        out
    }

    /// Time passes; after a crash between publishing and writing, a status write records the
    /// published Events within their TTL (the documented bound: an Event whose record waits
    /// longer, because writes fail or listings leave its job out, can be published again once
    /// the first expired).
    fn tick(&mut self, secs: i64) {
        let mut to = self.clock + secs;
        if let Some(since) = self.unrecorded.values().min() {
            to = to.min(since + EVENT_TTL / 2);
        }
        self.clock = to.max(self.clock);
    }

    fn publish(&mut self, outbox: &[PendingEvent]) {
        for e in outbox {
            let key = (format!("{:?}", e.kind), e.id.clone());
            let exists = self
                .events
                .get(&key)
                .is_some_and(|at| self.clock - at < EVENT_TTL);
            if !exists {
                self.events.insert(key, self.clock);
                if e.kind == AnnouncementKind::Stuck {
                    *self.stuck_created.entry(e.job_name.clone()).or_default() += 1;
                } else if !matches!(
                    e.kind,
                    AnnouncementKind::Discovered | AnnouncementKind::Overdue
                ) {
                    self.created
                        .entry(e.job_name.clone())
                        .or_default()
                        .push((e.kind, self.clock));
                }
            }
        }
    }

    fn poll(&mut self, shape: &PollShape) {
        self.clock += 1;
        let listed = self.listing(shape);
        let decision = listed_expecting(self.stored.as_ref(), &listed, self.clock);
        let counts = decision.status.counts.clone().unwrap();
        let unique: HashSet<&str> = listed.iter().map(|j| j.arn.as_str()).collect();
        assert_eq!(counts.total as usize, unique.len());
        if shape.ending == 1 || shape.ending == 2 {
            for j in listed.iter().filter(|j| JobState::of(&j.status).finished()) {
                self.first_publishable
                    .entry(j.name.clone())
                    .or_insert(self.clock);
            }
        }
        let mut status = decision.status;
        let outbox = outbox(&status);
        let delivery = match shape.ending {
            0 => return,
            1 | 2 => {
                self.publish(&outbox);
                Delivery {
                    published: outbox.len(),
                    error: None,
                }
            }
            _ => Delivery {
                published: 0,
                error: Some("refused".into()),
            },
        };
        if shape.ending == 1 {
            for e in outbox.iter().filter(|e| !e.job_name.is_empty()) {
                self.unrecorded
                    .entry(unrecorded_key(e))
                    .or_insert(self.clock);
            }
            return;
        }
        after_publishing(&mut status, &delivery, 1, t(self.clock));
        self.baseline.get_or_insert(self.clock);
        let unfinished = listed
            .iter()
            .filter(|j| !JobState::of(&j.status).finished());
        self.seen_unfinished
            .extend(unfinished.map(|j| j.name.clone()));
        // Recorded as published: accounted for in `finished`, and not waiting in the outbox.
        let ledger = status.ledger.clone().unwrap_or_default();
        let jobs = &self.jobs;
        self.unrecorded.retain(|key, _| {
            let pending = ledger.outbox.iter().any(|e| unrecorded_key(e) == *key);
            let (stuck, name) = match key.strip_prefix("stuck:") {
                Some(name) => (true, name),
                None => (false, key.as_str()),
            };
            let id = jobs
                .iter()
                .find(|j| j.now.name == name)
                .and_then(|j| job_id(&j.now))
                .map(|id| id.to_string());
            let accounted = id.is_some_and(|id| match stuck {
                true => ledger.stuck.contains(&id) || ledger.finished.contains_key(&id),
                false => ledger.finished.contains_key(&id),
            });
            pending || !accounted
        });
        self.stored = Some(status);
    }
}

/// What `World::unrecorded` calls an Event: the job's name, prefixed for a stuck Event.
fn unrecorded_key(e: &PendingEvent) -> String {
    match e.kind {
        AnnouncementKind::Stuck => format!("stuck:{}", e.job_name),
        _ => e.job_name.clone(),
    }
}

/// Runs the steps, then complete listings until settled, and checks every job.
fn check_announcements(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut w = World {
        jobs: Vec::new(),
        clock: 0,
        stored: None,
        events: HashMap::new(),
        created: HashMap::new(),
        baseline: None,
        first_publishable: HashMap::new(),
        unrecorded: HashMap::new(),
        seen_unfinished: HashSet::new(),
        stuck_created: HashMap::new(),
    };
    for s in steps {
        match s {
            Step::Create { status } => {
                let st = ["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"][status as usize];
                w.clock += 1;
                let n = w.jobs.len();
                w.jobs.push(WorldJob {
                    now: job(n, st, w.clock),
                    before: None,
                });
            }
            Step::Advance { index, to_failed } => {
                if w.jobs.is_empty() {
                    continue;
                }
                let n = w.jobs.len();
                let clock = w.clock;
                let j = &mut w.jobs[index % n];
                let next = match (JobState::of(&j.now.status), to_failed) {
                    (JobState::Pending, _) => "IN PROGRESS",
                    (JobState::InProgress, true) => "CREATE FAILED",
                    (JobState::InProgress, false) => "ACTIVE",
                    _ => continue,
                };
                j.before = Some(j.now.clone());
                j.now.status = next.into();
                j.now.updated = Some(t(clock));
                j.now.failure_reason = (next == "CREATE FAILED").then(|| "boom".into());
            }
            Step::Tick { secs } => w.tick(i64::from(secs)),
            Step::Poll(shape) => w.poll(&shape),
            Step::FailedPoll => {
                w.clock += 1;
                let f = PollFailure {
                    reason: Reason::Throttled,
                    message: "x".into(),
                    stalled: false,
                };
                if let Some(prev) = w.stored.as_ref() {
                    let next =
                        next_status(Some(prev), &observe(PollOutcome::Failed(&f), w.clock, 50));
                    prop_assert_eq!(&next.status.counts, &prev.counts);
                    w.stored = Some(next.status);
                }
            }
        }
    }
    // Settle: complete listings in order, published and written.
    for _ in 0..3 {
        w.poll(&PollShape {
            omit: 0,
            repeat: 0,
            order: 0,
            ending: 2,
        });
    }
    let baseline = w.baseline.unwrap();
    for j in &w.jobs {
        let stuck = w.stuck_created.get(&j.now.name).copied().unwrap_or(0);
        prop_assert!(stuck <= 1, "{} announced stuck {} times", j.now.name, stuck);
        let created = w.created.get(&j.now.name).cloned().unwrap_or_default();
        prop_assert!(created.len() <= 1, "{} announced {:?}", j.now.name, created);
        let state = JobState::of(&j.now.status);
        let finished_at = j.now.updated.unwrap().as_second() - 1_700_000_000;
        if state.finished() && finished_at > baseline {
            let kind = if state == JobState::Failed {
                AnnouncementKind::Failed
            } else {
                AnnouncementKind::Completed
            };
            prop_assert_eq!(
                created.first().map(|c| c.0),
                Some(kind),
                "{} finished at {} after the baseline {} but was not announced",
                &j.now.name,
                finished_at,
                baseline
            );
            // No later than the first poll that listed it finished and could publish (earlier
            // when an Event refused before went out from the outbox).
            let first = w.first_publishable.get(&j.now.name).copied();
            prop_assert!(
                first.is_some_and(|f| created[0].1 <= f),
                "{} announced at {} but first publishable at {:?}",
                &j.now.name,
                created[0].1,
                first
            );
        } else if !state.finished()
            || (finished_at <= baseline - CLOCK_ALLOWANCE.as_secs()
                && !w.seen_unfinished.contains(&j.now.name))
        {
            prop_assert!(
                created.is_empty(),
                "{} announced: {:?}",
                j.now.name,
                created
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whatever listings leave out, repeat or reorder, and however reconciles end: every job
    /// that finishes after the watch's first listing is announced exactly once (even counting
    /// Events that expired and came back), no later than the first poll that lists it finished
    /// and can publish; no job that had finished well before it is announced; counts equal the
    /// jobs.
    #[test]
    fn each_job_is_announced_exactly_once(steps in proptest::collection::vec(step(), 1..60)) {
        check_announcements(steps)?;
    }
}

#[test]
fn a_quiet_listing_keeps_its_last_sync_until_the_heartbeat() {
    let heartbeat = std::time::Duration::from_secs(600);
    let jobs = vec![job(1, "ACTIVE", 1), job(2, "IN PROGRESS", 2)];
    let first = published(listed(None, &jobs, 10).status);
    // The cache's copy has no job list; the digest stands for it.
    let cached = SolutionVersionWatchStatus {
        jobs: Vec::new(),
        ..first.clone()
    };
    let mut quiet = published(listed(Some(&first), &jobs, 70).status);
    hold_quiet_listing(Some(&cached), &mut quiet, heartbeat, t(70));
    assert_eq!(
        quiet.last_sync_time, first.last_sync_time,
        "nothing to write"
    );
    let mut due = published(listed(Some(&first), &jobs, 611).status);
    hold_quiet_listing(Some(&cached), &mut due, heartbeat, t(611));
    assert_eq!(
        due.last_sync_time.unwrap().0,
        t(611),
        "the heartbeat is due"
    );
    let mut moved = jobs.clone();
    moved[1].status = "ACTIVE".into();
    moved[1].updated = Some(t(60));
    let mut changed = published(listed(Some(&first), &moved, 70).status);
    hold_quiet_listing(Some(&cached), &mut changed, heartbeat, t(70));
    assert_eq!(
        changed.last_sync_time.unwrap().0,
        t(70),
        "a change is written at once"
    );
    assert_ne!(changed.jobs_digest, first.jobs_digest);
}

/// The job Events in the outbox of a decision, as (kind, job name) pairs.
fn decided(status: &SolutionVersionWatchStatus) -> Vec<(AnnouncementKind, String)> {
    announced(status)
        .into_iter()
        .filter(|(kind, _)| *kind != AnnouncementKind::Overdue)
        .collect()
}

#[test]
fn a_stuck_job_is_announced_once_and_its_failure_still_comes() {
    let running = job(1, "IN PROGRESS", 0);
    let first = published(listed_expecting(None, std::slice::from_ref(&running), 20).status);
    assert_eq!(
        first.counts.as_ref().unwrap().stuck,
        0,
        "20s is not past 30s"
    );
    let stuck = listed_expecting(Some(&first), std::slice::from_ref(&running), 45).status;
    assert_eq!(stuck.counts.as_ref().unwrap().stuck, 1);
    assert_eq!(
        decided(&stuck),
        [(AnnouncementKind::Stuck, "job-1".to_string())]
    );
    let note = &outbox(&stuck)[0].note;
    assert!(
        note.contains("job-1 has been IN PROGRESS for 45s") && note.contains("stuckAfter 30s"),
        "{note}"
    );
    // Later listings, also one that leaves the job out, decide nothing more.
    let mut status = published(stuck);
    for (jobs, now) in [
        (vec![running.clone()], 60),
        (vec![], 70),
        (vec![running.clone()], 80),
    ] {
        status = listed_expecting(Some(&status), &jobs, now).status;
        assert!(
            decided(&status).is_empty(),
            "at {now}: {:?}",
            outbox(&status)
        );
        status = published(status);
    }
    let mut failed = job(1, "CREATE FAILED", 0);
    failed.updated = Some(t(90));
    let done = listed_expecting(Some(&status), &[failed], 95).status;
    assert_eq!(
        decided(&done),
        [(AnnouncementKind::Failed, "job-1".to_string())]
    );
    assert_eq!(outbox(&done)[0].duration_seconds, Some(90));
    assert_eq!(done.counts.as_ref().unwrap().stuck, 0);
    assert!(done.ledger.as_ref().unwrap().stuck.is_empty());
}

#[test]
fn without_stuck_after_nothing_is_stuck() {
    let status = listed(None, &[job(1, "PENDING", 0)], 100_000).status;
    assert_eq!(status.counts.as_ref().unwrap().stuck, 0);
    assert!(condition(&status, ConditionType::Overdue).is_none());
}

#[test]
fn an_overdue_episode_is_announced_once_and_a_new_job_ends_it() {
    let old = job(1, "ACTIVE", 10);
    let first = listed_expecting(None, std::slice::from_ref(&old), 100).status;
    let overdue = condition(&first, ConditionType::Overdue).unwrap();
    assert_eq!(
        (overdue.status.as_str(), overdue.reason.as_str()),
        ("True", "NoRecentJob")
    );
    assert!(
        overdue.message.contains(&format!("since {}", t(10))),
        "{}",
        overdue.message
    );
    let episodes = |s: &SolutionVersionWatchStatus| {
        outbox(s)
            .iter()
            .filter(|e| e.kind == AnnouncementKind::Overdue)
            .count()
    };
    assert_eq!(episodes(&first), 1);
    // Decided again (a write conflict, a restart before the write): the same Event.
    let again = listed_expecting(None, std::slice::from_ref(&old), 105).status;
    assert_eq!(outbox(&again)[1].id, outbox(&first)[1].id);
    let mut status = published(first);
    status = listed_expecting(Some(&status), std::slice::from_ref(&old), 130).status;
    assert_eq!(episodes(&status), 0, "the episode goes on");
    let new = job(2, "PENDING", 140);
    status = listed_expecting(Some(&published(status)), &[old.clone(), new], 150).status;
    let c = condition(&status, ConditionType::Overdue).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "RecentJob")
    );
    assert_eq!(
        status.latest_job.as_ref().map(|j| j.name.as_str()),
        Some("job-2")
    );
    assert_eq!(
        condition(&status, ConditionType::Ready).unwrap().status,
        "True",
        "Ready keeps meaning the listing worked"
    );
}

#[test]
fn a_watch_that_never_saw_a_job_is_overdue_from_its_creation() {
    let fresh = listed_expecting(None, &[], 30).status;
    assert_eq!(
        condition(&fresh, ConditionType::Overdue).unwrap().status,
        "False"
    );
    let later = listed_expecting(Some(&published(fresh)), &[], 90).status;
    let c = condition(&later, ConditionType::Overdue).unwrap();
    assert_eq!(c.status, "True");
    assert!(
        c.message.contains("no job was ever listed"),
        "{}",
        c.message
    );
}

#[test]
fn finished_jobs_show_their_duration_and_the_latest_job_is_named() {
    let mut done = job(1, "ACTIVE", 10);
    done.updated = Some(t(3_610));
    let status = listed(None, &[done, job(2, "IN PROGRESS", 20)], 4_000).status;
    let by_name = |n: &str| status.jobs.iter().find(|j| j.name == n).unwrap();
    assert_eq!(by_name("job-1").duration_seconds, Some(3_600));
    assert_eq!(by_name("job-2").duration_seconds, None);
    let latest = status.latest_job.unwrap();
    assert_eq!(
        (latest.name.as_str(), latest.status.as_str()),
        ("job-2", "IN PROGRESS")
    );
}

proptest! {
    /// Job ids are written as they always were: 16 lowercase hex digits of the hash.
    #[test]
    fn job_ids_read_as_the_hash_in_hex(arn in "[a-z:/0-9-]{1,80}", name in "[a-z0-9-]{0,20}") {
        let job = ListedJob { arn: arn.clone(), name, ..Default::default() };
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in arn.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let id = job_id(&job).map(|id| id.to_string());
        prop_assert_eq!(id, Some(format!("{hash:016x}")));
    }
}

/// A failure reason JSON escapes six times over: 1 KiB of it is 6 KiB in the object.
fn escaping_reason() -> String {
    "\u{1}".repeat(jobs::MAX_FAILURE_REASON_BYTES)
}

fn listed_job() -> impl Strategy<Value = ListedJob> {
    (
        0usize..6,
        prop::sample::select(vec![
            "PENDING",
            "IN PROGRESS",
            "ACTIVE",
            "CREATE FAILED",
            "?",
        ]),
        0i64..100,
        prop::option::of(0i64..100),
        prop::option::of("[\\x00-\\x1f\"a-zé]{0,1100}"),
    )
        .prop_map(|(n, status, created, updated, reason)| ListedJob {
            failure_reason: reason,
            updated: updated.map(|u| t(created + u)),
            ..job(n, status, created)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A listing whose job list is the one the previous status shows decides the same status as
    /// one that builds the list, the list aside: the same digest, and no summaries built.
    #[test]
    fn a_repeated_job_list_is_decided_without_building_it(
        jobs in prop::collection::vec(listed_job(), 0..8),
        max in 0usize..6,
        later in 1i64..1000,
    ) {
        let first = next_status(None, &observe(PollOutcome::Listed(&listing(&jobs)), 100, max));
        let stored = published(first.status);
        let quiet = next_status(
            Some(&stored),
            &observe(PollOutcome::Listed(&listing(&jobs)), 100 + later, max),
        )
        .status;
        // Without the digest the list is built as on a first listing.
        let unknown = SolutionVersionWatchStatus { jobs_digest: None, ..stored.clone() };
        let built = next_status(
            Some(&unknown),
            &observe(PollOutcome::Listed(&listing(&jobs)), 100 + later, max),
        )
        .status;
        prop_assert!(quiet.jobs.is_empty(), "a repeated list is not built");
        prop_assert_eq!(&built.jobs, &stored.jobs);
        prop_assert_eq!(&quiet.jobs_digest, &stored.jobs_digest);
        prop_assert_eq!(&built.jobs_digest, &stored.jobs_digest);
        prop_assert_eq!(
            quiet,
            SolutionVersionWatchStatus { jobs: Vec::new(), ..built }
        );
    }
}

#[test]
fn a_repeated_job_list_cut_to_the_budget_is_built_and_cut_again() {
    let jobs: Vec<ListedJob> = (0..200)
        .map(|n| ListedJob {
            failure_reason: Some(escaping_reason()),
            ..job(n, "CREATE FAILED", n as i64)
        })
        .collect();
    let decide = |prev: Option<&SolutionVersionWatchStatus>, now| {
        next_status(
            prev,
            &observe(PollOutcome::Listed(&listing(&jobs)), now, 200),
        )
        .status
    };
    let first = published(decide(None, 1_000));
    assert!(first.jobs_truncated && first.jobs.len() < 200, "cut");
    let again = decide(Some(&first), 1_060);
    assert_eq!(again.jobs, first.jobs, "built and cut the same way");
    assert_eq!(again.jobs_digest, first.jobs_digest);
    assert!(budget::size(&again) <= budget::STATUS_BUDGET_BYTES);
}
