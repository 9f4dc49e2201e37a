//! The object's size: the largest status the operator can write fits, and an oversized one is cut.

use super::*;

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
    ledger.outbox = crate::events::Outbox::default();
    for n in 0..MAX_OUTBOX {
        let pending = PendingEvent {
            kind: AnnouncementKind::Failed,
            subject: format!(
                "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/{long_name}{n}"
            ),
            job_name: format!("{long_name}{n}"),
            note: "x".repeat(1024),
            duration_seconds: Some(i64::MAX),
            reason: None,
        };
        ledger.outbox.push(pending).unwrap();
    }
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
    let size = size::size(&status);
    assert!(size <= size::STATUS_MAX_BYTES, "{size} bytes");
    assert!(
        size > size::STATUS_MAX_BYTES / 2,
        "the test status is near the worst case: {size}"
    );
    let mut huge = status;
    for j in &mut huge.jobs {
        j.failure_reason = Some("r".repeat(8 * 1024));
    }
    let dropped = size::fit(&mut huge);
    assert!(dropped > 0 && huge.jobs_truncated);
    assert!(size::size(&huge) <= size::STATUS_MAX_BYTES);
    assert_eq!(
        huge.counts.as_ref().unwrap().total,
        300,
        "counts are never cut"
    );
}
