//! Which Events a listing decides: the baseline's summary, transitions once each, the outbox's cap,
//! changes of source, and what waits when publishing fails.

use super::*;

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
    assert_eq!(events[0].subject, jobs2[2].arn);
    assert!(events[0].note.contains("Input path not found"));
    let prev = published(second);

    let third = listed(Some(&prev), &jobs2, 130).status;
    assert!(outbox(&third).is_empty());
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

/// A listing of `jobs` from `endpoint` at `now`; with `stuck`, jobs running longer than
/// [`STUCK_AFTER`] are stuck.
fn listed_from(
    prev: Option<&SolutionVersionWatchStatus>,
    endpoint: &str,
    jobs: &[ListedJob],
    now: i64,
    stuck: bool,
) -> SolutionVersionWatchStatus {
    let listing = Listing {
        jobs: jobs.to_vec(),
        source: ListingSource {
            region: "us-east-1".into(),
            endpoint: endpoint.into(),
        },
        started: std::time::Instant::now(),
    };
    let expectations = Expectations {
        stuck_after: stuck.then_some(STUCK_AFTER),
        new_job_within: None,
    };
    let obs = Observation {
        expectations,
        watch_created: Some(t(0)),
        ..observe(PollOutcome::Listed(&listing), now, 50)
    };
    next_status(prev, &obs).status
}

/// Issue 25, item 3: the operator restarted with the same endpoint plus a trailing slash, and a
/// job that was running before finished in between.
#[test]
fn a_change_of_endpoint_keeps_the_awaited_and_stuck_jobs() {
    let running = vec![job(1, "IN PROGRESS", 15), job(2, "IN PROGRESS", 1)];
    let first = published(listed_from(
        None,
        "http://127.0.0.1:4566",
        &running,
        16,
        true,
    ));
    // job-2 runs past stuckAfter (30 s) and is announced as stuck, once.
    let stuck = listed_from(Some(&first), "http://127.0.0.1:4566", &running, 40, true);
    assert_eq!(
        announced(&stuck),
        [(AnnouncementKind::Stuck, "job-2".to_string())]
    );
    let stuck = published(stuck);
    let mut after = running.clone();
    after[0].status = "CREATE FAILED".into();
    after[0].updated = Some(t(45));
    let next = listed_from(Some(&stuck), "http://127.0.0.1:4566/", &after, 50, true);
    assert_eq!(
        announced(&next),
        [(AnnouncementKind::Failed, "job-1".to_string())],
        "the failure is announced and job-2 is not stuck again"
    );
    assert!(
        outbox(&next)
            .iter()
            .all(|e| e.kind != AnnouncementKind::Discovered),
        "nothing new to sum up"
    );
    assert_eq!(
        next.ledger
            .as_ref()
            .and_then(|l| l.source.as_ref())
            .map(|s| s.endpoint.as_str()),
        Some("http://127.0.0.1:4566/")
    );
}

/// Two writers whose endpoint settings differ take turns: each turn is a change of source, and
/// none decides an Event the other did not.
#[test]
fn two_writers_with_different_endpoints_taking_turns_decide_nothing_twice() {
    let mut jobs = vec![job(1, "ACTIVE", 1), job(2, "IN PROGRESS", 2)];
    let mut prev = published(listed_from(None, "a", &jobs, 10, false));
    let mut decided = Vec::new();
    for round in 0..6 {
        if round == 3 {
            jobs[1].status = "ACTIVE".into();
            jobs[1].updated = Some(t(100));
        }
        let endpoint = if round % 2 == 0 { "b" } else { "a" };
        let status = listed_from(Some(&prev), endpoint, &jobs, 20 + 60 * round, false);
        decided.extend(outbox(&status).into_iter().map(|e| (e.kind, e.job_name)));
        prev = published(status);
    }
    assert_eq!(
        decided,
        [(AnnouncementKind::Completed, "job-2".to_string())]
    );
}

/// A change of source sums up only the finished jobs the ledger never saw, once per change.
#[test]
fn a_change_of_source_sums_up_only_finished_jobs_never_seen() {
    let known = vec![job(1, "ACTIVE", 1)];
    let first = published(listed_from(None, "a", &known, 10, false));
    let mut more = known.clone();
    more.extend([job(2, "ACTIVE", 3), job(3, "ACTIVE", 4)]);
    let next = listed_from(Some(&first), "b", &more, 70, false);
    let summaries: Vec<PendingEvent> = outbox(&next)
        .into_iter()
        .filter(|e| e.kind == AnnouncementKind::Discovered)
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0].subject, "baseline:us-east-1:a->us-east-1:b:2");
    assert!(
        announced(&next).is_empty(),
        "jobs never seen are summed up, not announced"
    );
    let again = listed_from(Some(&published(next)), "b", &more, 130, false);
    assert!(outbox(&again).is_empty());
}

#[test]
fn a_new_region_or_endpoint_is_a_new_baseline_not_a_flood() {
    // The first listing went to the wrong region: nothing there.
    let empty = Listing {
        jobs: vec![],
        source: source("eu-west-1"),
        started: std::time::Instant::now(),
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
        events[0].subject, "name:job-1",
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
        ..Default::default()
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
