//! Counts and the job list: exact counts, the newest jobs shown, cut to size, and their digest.

use super::*;

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
    /// Job ids are the first 128 bits of SHA-256 of the job's key, as 32 lowercase hex digits;
    /// the id an earlier version wrote is FNV-1a, 64 bits, as 16.
    #[test]
    fn job_ids_read_as_the_hash_in_hex(arn in "[a-z:/0-9-]{1,80}", name in "[a-z0-9-]{0,20}") {
        use sha2::{Digest, Sha256};
        let job = ListedJob { arn: arn.clone(), name, ..Default::default() };
        let sha: String = Sha256::digest(arn.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = ledger::job_hash(&job).map(|id| id.to_string());
        prop_assert_eq!(id, Some(sha));
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in arn.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        prop_assert_eq!(ledger::legacy_job_hash(&job), Some(format!("{hash:016x}")));
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
    assert!(size::size(&again) <= size::STATUS_MAX_BYTES);
}
