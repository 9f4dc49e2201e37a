//! The conditions after listings, failures and quiet polls: what kubectl wait, kstatus and Argo CD read.

use super::*;

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

/// Issue 25, item 5: an admin withdrew the namespace's access to the account. What the account
/// told (counts, jobs, the latest job, failure reasons, Events still waiting) leaves the status;
/// the conditions say why.
#[test]
fn a_withdrawn_permission_takes_what_the_account_told_out_of_the_status() {
    let mut jobs = vec![job(1, "IN PROGRESS", 1), job(2, "PENDING", 2)];
    let good = published(listed(None, &jobs, 10).status);
    jobs[0].status = "CREATE FAILED".into();
    jobs[0].failure_reason = Some("s3://secret-bucket/input is not readable".into());
    jobs[0].updated = Some(t(20));
    let waiting = listed(Some(&good), &jobs, 30).status;
    assert_eq!(
        announced(&waiting).len(),
        1,
        "a Failed Event waits in the outbox"
    );
    let failure = PollFailure {
        reason: Reason::NotPermitted,
        message: "the namespace's policy does not allow account 123456789012".into(),
        stalled: true,
    };
    let revoked = next_status(
        Some(&waiting),
        &observe(PollOutcome::Failed(&failure), 40, 50),
    )
    .status;
    assert_eq!(revoked.counts, None);
    assert_eq!(revoked.latest_job, None);
    assert!(revoked.jobs.is_empty() && !revoked.stale);
    let text = serde_json::to_string(&revoked).unwrap();
    assert!(
        !text.contains("secret-bucket") && !text.contains("job-1"),
        "{text}"
    );
    let kinds: Vec<AnnouncementKind> = outbox(&revoked).into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AnnouncementKind::PollFailed],
        "the job's Event is dropped, the refusal announced"
    );
    let ready = condition(&revoked, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NotPermitted")
    );
    assert!(
        !ready.message.contains("counts and jobs are from"),
        "{}",
        ready.message
    );
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

/// The announcements a failed poll decides, as (reason, subject).
fn poll_failures(status: &SolutionVersionWatchStatus) -> Vec<(String, String)> {
    outbox(status)
        .into_iter()
        .filter(|e| e.kind == AnnouncementKind::PollFailed)
        .map(|e| (e.reason.unwrap_or_default(), e.subject))
        .collect()
}

fn failed(
    prev: &SolutionVersionWatchStatus,
    reason: Reason,
    now: i64,
) -> SolutionVersionWatchStatus {
    let failure = PollFailure {
        reason,
        message: format!("{} happened", reason.as_str()),
        stalled: false,
    };
    next_status(Some(prev), &observe(PollOutcome::Failed(&failure), now, 50)).status
}

#[test]
fn a_failed_poll_is_announced_through_the_outbox_once_per_reason_and_episode() {
    let good = published(listed(None, &[job(1, "ACTIVE", 1)], 10).status);
    let first = failed(&good, Reason::Throttled, 70);
    let episode = format!("poll:after:{}", t(10));
    assert_eq!(
        poll_failures(&first),
        vec![("Throttled".to_string(), episode.clone())]
    );
    // Decided again from the same previous status, later (a conflict, a second writer): the
    // same one, whatever the clock.
    assert_eq!(
        poll_failures(&failed(&good, Reason::Throttled, 75)),
        poll_failures(&first)
    );
    // The same reason again: nothing new. Another reason, same episode: one more.
    let same = failed(&published(first), Reason::Throttled, 130);
    assert!(poll_failures(&same).is_empty());
    let other = failed(&published(same), Reason::AccessDenied, 190);
    assert_eq!(
        poll_failures(&other),
        vec![("AccessDenied".to_string(), episode)]
    );
    // A good listing ends the episode; the next failure is a new one.
    let recovered = published(listed(Some(&published(other)), &[job(1, "ACTIVE", 1)], 250).status);
    let again = failed(&recovered, Reason::Throttled, 310);
    assert_eq!(
        poll_failures(&again),
        vec![("Throttled".to_string(), format!("poll:after:{}", t(250)))]
    );
}

#[test]
fn a_failed_first_poll_is_announced_and_the_first_listing_is_still_a_baseline() {
    let failure = PollFailure {
        reason: Reason::Throttled,
        message: "slow down".into(),
        stalled: false,
    };
    let first = next_status(None, &observe(PollOutcome::Failed(&failure), 10, 50)).status;
    assert_eq!(poll_failures(&first).len(), 1);
    let listed_once = listed(Some(&published(first)), &[job(1, "CREATE FAILED", 1)], 70).status;
    let kinds: Vec<AnnouncementKind> = outbox(&listed_once).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![AnnouncementKind::Discovered],
        "history is summed up, not announced job by job"
    );
}
