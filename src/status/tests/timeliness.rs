//! Stuck and overdue: spec.stuckAfter and spec.expectNewJobWithin, each announced once.

use super::*;

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
    assert_eq!(outbox(&again)[1].subject, outbox(&first)[1].subject);
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

/// Overdue announcements in a status's outbox.
fn overdue_announcements(s: &SolutionVersionWatchStatus) -> usize {
    outbox(s)
        .iter()
        .filter(|e| e.kind == AnnouncementKind::Overdue)
        .count()
}

#[test]
fn an_announced_overdue_episode_is_recorded_as_data_not_read_from_the_message() {
    let old = job(1, "ACTIVE", 10);
    let first = published(listed_expecting(None, std::slice::from_ref(&old), 100).status);
    let recorded = first.ledger.as_ref().unwrap().overdue_announced.clone();
    assert_eq!(recorded.map(|t| t.0), Some(t(10)));
    // A reworded message (another version, a hand edit) announces nothing again.
    let mut reworded = first.clone();
    for c in &mut reworded.conditions {
        if c.type_ == ConditionType::Overdue.as_str() {
            c.message = "reworded".into();
        }
    }
    let after = listed_expecting(Some(&reworded), std::slice::from_ref(&old), 160).status;
    assert_eq!(overdue_announcements(&after), 0);
    // spec.expectNewJobWithin removed, then added back: the same episode, not announced again.
    let removed = next_status(
        Some(&published(after)),
        &observe(
            PollOutcome::Listed(&listing(std::slice::from_ref(&old))),
            220,
            50,
        ),
    )
    .status;
    assert!(condition(&removed, ConditionType::Overdue).is_none());
    let back = listed_expecting(Some(&removed), std::slice::from_ref(&old), 280).status;
    assert_eq!(
        condition(&back, ConditionType::Overdue).unwrap().status,
        "True"
    );
    assert_eq!(overdue_announcements(&back), 0);
}

#[test]
fn an_overdue_episode_that_finds_the_outbox_full_is_announced_once_there_is_room() {
    let old = job(1, "ACTIVE", 10);
    let mut full = published(listed_expecting(None, std::slice::from_ref(&old), 20).status);
    let ledger = full.ledger.as_mut().unwrap();
    for n in 0..crate::events::MAX_OUTBOX {
        let pending = PendingEvent {
            kind: AnnouncementKind::Failed,
            subject: format!("job-{n}"),
            job_name: format!("job-{n}"),
            note: "n".into(),
            duration_seconds: None,
            reason: None,
        };
        ledger.outbox.push(pending).unwrap();
    }
    let overdue = listed_expecting(Some(&full), std::slice::from_ref(&old), 100).status;
    assert_eq!(
        condition(&overdue, ConditionType::Overdue).unwrap().status,
        "True"
    );
    assert_eq!(overdue_announcements(&overdue), 0, "no room");
    assert_eq!(overdue.ledger.as_ref().unwrap().overdue_announced, None);
    let room = listed_expecting(Some(&published(overdue)), std::slice::from_ref(&old), 110).status;
    assert_eq!(overdue_announcements(&room), 1);
}
