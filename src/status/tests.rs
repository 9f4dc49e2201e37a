use super::*;
use crate::crd::AnnouncementKind;
use proptest::prelude::*;
use std::collections::HashMap;

use ConditionType::{Ready as READY, Reconciling as RECONCILING, Stalled as STALLED};

const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/s/v1";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
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

fn observe<'a>(outcome: PollOutcome<'a>, now: i64, max: usize) -> Observation<'a> {
    Observation {
        solution_version_arn: SV,
        generation: 1,
        max_jobs_in_status: max,
        now: t(now),
        outcome,
    }
}

fn outbox(status: &SolutionVersionWatchStatus) -> Vec<PendingEvent> {
    status
        .ledger
        .as_ref()
        .map(|l| l.outbox.clone())
        .unwrap_or_default()
}

fn published(mut status: SolutionVersionWatchStatus) -> SolutionVersionWatchStatus {
    if let Some(l) = status.ledger.as_mut() {
        l.outbox.clear();
    }
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
    let next = next_status(None, &observe(PollOutcome::Listed(&jobs), 10, 50));
    let c = next.status.counts.unwrap();
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
    let next = next_status(None, &observe(PollOutcome::Listed(&jobs), 100, 3));
    let names: Vec<_> = next.status.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["job-9", "job-8", "job-7"]);
    assert!(next.status.jobs_truncated);
    let reason = next.status.jobs[0].failure_reason.as_ref().unwrap();
    assert!(reason.len() <= 1024 && reason.len() >= 1022);
    assert!(reason.chars().all(|c| c == 'é'));
}

#[test]
fn other_solution_versions_and_duplicates_are_ignored() {
    let mut other = job(1, "ACTIVE", 1);
    other.solution_version_arn = Some("arn:aws:personalize:us-east-1:1:solution/x/y".into());
    let jobs = vec![other, job(2, "ACTIVE", 2), job(2, "ACTIVE", 2)];
    let next = next_status(None, &observe(PollOutcome::Listed(&jobs), 10, 50));
    assert_eq!(next.status.counts.unwrap().total, 1);
}

#[test]
fn first_listing_summarises_then_transitions_are_announced_once() {
    let jobs = vec![
        job(1, "ACTIVE", 1),
        job(2, "CREATE FAILED", 2),
        job(3, "PENDING", 3),
    ];
    let first = next_status(None, &observe(PollOutcome::Listed(&jobs), 10, 50));
    assert!(
        outbox(&first.status).is_empty(),
        "nothing announced one by one"
    );
    let summary = first.summary.clone().expect("a summary Event");
    assert_eq!(summary.kind, AnnouncementKind::Discovered);
    assert!(
        summary
            .note
            .contains("3 jobs: 1 active, 1 failed, 1 pending"),
        "{}",
        summary.note
    );
    let prev = published(first.status);

    let mut jobs2 = jobs.clone();
    jobs2[2].status = "CREATE FAILED".into();
    jobs2[2].failure_reason = Some("Input path not found".into());
    let second = next_status(Some(&prev), &observe(PollOutcome::Listed(&jobs2), 70, 50));
    let events = outbox(&second.status);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, AnnouncementKind::Failed);
    assert_eq!(events[0].job_name, "job-3");
    assert!(events[0].note.contains("Input path not found"));
    let prev = published(second.status);

    let third = next_status(Some(&prev), &observe(PollOutcome::Listed(&jobs2), 130, 50));
    assert!(outbox(&third.status).is_empty());
}

#[test]
fn conditions_keep_transition_time_and_status_is_stable() {
    let jobs = vec![job(1, "ACTIVE", 1)];
    let first = published(next_status(None, &observe(PollOutcome::Listed(&jobs), 10, 50)).status);
    let second =
        published(next_status(Some(&first), &observe(PollOutcome::Listed(&jobs), 70, 50)).status);
    let ready1 = condition(&first, READY).unwrap();
    let ready2 = condition(&second, READY).unwrap();
    assert_eq!(ready1.last_transition_time, ready2.last_transition_time);
    // Only lastSyncTime moved.
    let mut a = first.clone();
    a.last_sync_time = second.last_sync_time.clone();
    assert_eq!(a, second);
    // Each condition type once.
    for c in [READY, STALLED, RECONCILING] {
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
    let good = published(next_status(None, &observe(PollOutcome::Listed(&jobs), 10, 50)).status);
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
    let recovered = next_status(Some(&bad), &observe(PollOutcome::Listed(&jobs), 130, 50)).status;
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
fn announcements_over_the_cap_are_deferred_not_lost() {
    let base: Vec<ListedJob> = (0..250).map(|n| job(n, "PENDING", n as i64)).collect();
    let mut prev =
        published(next_status(None, &observe(PollOutcome::Listed(&base), 300, 50)).status);
    let failed: Vec<ListedJob> = base
        .iter()
        .map(|j| ListedJob {
            status: "CREATE FAILED".into(),
            ..j.clone()
        })
        .collect();
    let mut announced = Vec::new();
    for round in 0..3 {
        let next = next_status(
            Some(&prev),
            &observe(PollOutcome::Listed(&failed), 400 + round, 50),
        );
        announced.extend(outbox(&next.status).into_iter().map(|e| e.job_name));
        prev = published(next.status);
    }
    announced.sort();
    announced.dedup();
    assert_eq!(announced.len(), 250);
}

// ---- property test: random job histories, polls, failures, crashes and truncation ----

#[derive(Clone, Debug)]
enum Step {
    Create { status: u8 },
    Advance { index: usize, to_failed: bool },
    Tick { secs: u16 },
    Poll { miss_newest: u8, crash: u8 },
    FailedPoll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(|status| Step::Create { status }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(index, to_failed)| Step::Advance { index, to_failed }),
        2 => (0u16..2000).prop_map(|secs| Step::Tick { secs }),
        3 => (0u8..3, 0u8..4).prop_map(|(miss_newest, crash)| Step::Poll { miss_newest, crash }),
        1 => Just(Step::FailedPoll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Every job that finishes after the first listing saw it unfinished, or that first shows
    /// up already finished after the first listing, is announced exactly once; jobs that were
    /// finished at the first listing are never announced one by one; counts always equal the jobs.
    #[test]
    fn each_job_is_announced_exactly_once(steps in proptest::collection::vec(step(), 1..60), max in 0usize..5) {
        let mut world: Vec<ListedJob> = Vec::new();
        let mut clock: i64 = 0;
        let mut stored: Option<SolutionVersionWatchStatus> = None;
        let mut announced: HashMap<String, Vec<AnnouncementKind>> = HashMap::new();
        let mut baseline: Option<Vec<ListedJob>> = None;

        let mut last_poll: i64 = 0;
        let mut poll = |world: &Vec<ListedJob>, clock: i64, miss: u8, crash: u8,
                        stored: &mut Option<SolutionVersionWatchStatus>,
                        announced: &mut HashMap<String, Vec<AnnouncementKind>>,
                        baseline: &mut Option<Vec<ListedJob>>| {
            // A listing may miss jobs created while it ran (in its last `miss` seconds), never
            // one that existed at the previous listing: Personalize jobs are not deleted.
            let listed: Vec<ListedJob> = world.iter()
                .filter(|j| {
                    let created = j.created.unwrap();
                    created <= t(last_poll) || created < t(clock - i64::from(miss))
                })
                .cloned().collect();
            last_poll = clock;
            let next = next_status(stored.as_ref(), &observe(PollOutcome::Listed(&listed), clock, max));
            let c = next.status.counts.clone().unwrap();
            let by_state = counts(&listed);
            assert_eq!(c, by_state);
            assert_eq!(c.total, c.pending + c.in_progress + c.active + c.failed + c.other);
            assert!(next.status.jobs.len() <= max);
            match crash {
                // Crash before the status write: nothing happened.
                0 => {}
                // Crash after the status write, before publishing: the outbox stays.
                1 => { if baseline.is_none() { *baseline = Some(listed.clone()); } *stored = Some(next.status); }
                // Normal: write, publish the outbox, clear it.
                _ => {
                    if baseline.is_none() { *baseline = Some(listed.clone()); }
                    for e in outbox(&next.status) {
                        if e.kind != AnnouncementKind::Discovered {
                            announced.entry(e.job_name.clone()).or_default().push(e.kind);
                        }
                    }
                    *stored = Some(published(next.status));
                }
            }
        };

        for s in steps {
            match s {
                Step::Create { status } => {
                    let st = ["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"][status as usize];
                    clock += 1;
                    world.push(job(world.len(), st, clock));
                }
                Step::Advance { index, to_failed } => {
                    if world.is_empty() { continue; }
                    let n = world.len();
                    let j = &mut world[index % n];
                    j.status = match (JobState::of(&j.status), to_failed) {
                        (JobState::Pending, _) => "IN PROGRESS".into(),
                        (JobState::InProgress, true) => "CREATE FAILED".into(),
                        (JobState::InProgress, false) => "ACTIVE".into(),
                        _ => j.status.clone(),
                    };
                }
                Step::Tick { secs } => clock += i64::from(secs),
                Step::Poll { miss_newest, crash } => {
                    clock += 1;
                    poll(&world, clock, miss_newest, crash, &mut stored, &mut announced, &mut baseline);
                }
                Step::FailedPoll => {
                    clock += 1;
                    let f = PollFailure { reason: Reason::Throttled, message: "x".into(), stalled: false };
                    if let Some(prev) = stored.as_ref() {
                        let next = next_status(Some(prev), &observe(PollOutcome::Failed(&f), clock, max));
                        assert_eq!(next.status.counts, prev.counts);
                        stored = Some(next.status);
                    }
                }
            }
        }
        // Settle: complete, successful polls until nothing is deferred or waiting.
        for _ in 0..3 {
            clock += 1;
            poll(&world, clock, 0, 2, &mut stored, &mut announced, &mut baseline);
        }

        for (name, kinds) in &announced {
            prop_assert_eq!(kinds.len(), 1, "job {} announced {:?}", name, kinds);
        }
        if let Some(baseline) = baseline {
            let finished_at_baseline: std::collections::HashSet<&str> = baseline.iter()
                .filter(|j| JobState::of(&j.status).finished())
                .map(|j| j.name.as_str()).collect();
            for job in &world {
                let state = JobState::of(&job.status);
                let was = finished_at_baseline.contains(job.name.as_str());
                let got = announced.get(&job.name);
                if was {
                    prop_assert!(got.is_none(), "{} was finished at the first listing but announced", job.name);
                } else if state.finished() {
                    let kind = if state == JobState::Failed { AnnouncementKind::Failed } else { AnnouncementKind::Completed };
                    prop_assert_eq!(got.map(|k| k[0]), Some(kind), "{} finished but was not announced", &job.name);
                } else {
                    prop_assert!(got.is_none());
                }
            }
        }
    }
}
