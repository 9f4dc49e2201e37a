//! Solution watches: every version's jobs, counted by version, and the same decisions from an
//! account-wide listing shared with other watches as from the watch's own listing.

use super::*;
use crate::access::arn::WatchedArn;
use crate::crd::MAX_VERSIONS_IN_STATUS;
use crate::personalize::own_jobs;

const SOLUTION: &str = "arn:aws:personalize:us-east-1:123456789012:solution/recs";

fn of_version(n: usize, version: &str, status: &str, created: i64) -> ListedJob {
    ListedJob {
        solution_version_arn: Some(version.to_string()),
        ..job(n, status, created)
    }
}

fn watching_solution(outcome: PollOutcome<'_>, now: i64) -> Observation<'_> {
    Observation {
        watched_arn: SOLUTION,
        ..observe(outcome, now, 50)
    }
}

#[test]
fn a_solution_watch_counts_every_version_newest_first_and_no_other_solution() {
    let jobs = vec![
        of_version(1, &format!("{SOLUTION}/v1"), "ACTIVE", 10),
        of_version(2, &format!("{SOLUTION}/v1"), "CREATE FAILED", 20),
        of_version(3, &format!("{SOLUTION}/v2"), "ACTIVE", 30),
        of_version(4, &format!("{SOLUTION}/v3"), "IN PROGRESS", 40),
        of_version(5, &format!("{SOLUTION}-2/v1"), "ACTIVE", 50),
    ];
    let listed = listing(&jobs);
    let status = next_status(None, &watching_solution(PollOutcome::Listed(&listed), 60)).status;
    let counts = status.counts.unwrap();
    assert_eq!((counts.total, counts.failed, counts.in_progress), (4, 1, 1));
    let versions: Vec<(&str, i64)> = status
        .versions
        .iter()
        .map(|v| {
            (
                v.solution_version_arn.rsplit('/').next().unwrap(),
                v.counts.total,
            )
        })
        .collect();
    assert_eq!(versions, [("v3", 1), ("v2", 1), ("v1", 2)]);
    assert_eq!(
        (status.versions_shown, status.versions_total),
        (Some(3), Some(3))
    );
    assert!(
        status
            .jobs
            .iter()
            .all(|j| j.solution_version_arn.as_deref() != Some(&format!("{SOLUTION}-2/v1")))
    );
}

#[test]
fn a_year_of_weekly_versions_shows_the_newest_twenty_and_counts_all() {
    let jobs: Vec<ListedJob> = (0..52)
        .flat_map(|week| {
            let version = format!("{SOLUTION}/week{week:02}");
            (0..2)
                .map(move |i| of_version(week * 2 + i, &version, "ACTIVE", (week * 100 + i) as i64))
        })
        .collect();
    let listed = listing(&jobs);
    let status = next_status(None, &watching_solution(PollOutcome::Listed(&listed), 6000)).status;
    assert_eq!(status.counts.unwrap().total, 104);
    assert_eq!(status.versions.len(), MAX_VERSIONS_IN_STATUS);
    assert_eq!(
        (status.versions_shown, status.versions_total),
        (Some(20), Some(52))
    );
    assert!(status.versions[0].solution_version_arn.ends_with("week51"));
    assert!(status.versions[19].solution_version_arn.ends_with("week32"));
}

#[test]
fn a_version_watch_has_no_versions_in_status() {
    let listed = listing(&[job(1, "ACTIVE", 10)]);
    let status = next_status(None, &observe(PollOutcome::Listed(&listed), 20, 50)).status;
    assert!(status.versions.is_empty());
    assert_eq!((status.versions_shown, status.versions_total), (None, None));
}

/// The account's jobs: the watched solution's three versions, a solution whose name starts
/// with the watched one's, and another solution.
const VERSIONS: [&str; 5] = [
    "arn:aws:personalize:us-east-1:123456789012:solution/recs/v1",
    "arn:aws:personalize:us-east-1:123456789012:solution/recs/v2",
    "arn:aws:personalize:us-east-1:123456789012:solution/recs/v3",
    "arn:aws:personalize:us-east-1:123456789012:solution/recs-2/v1",
    "arn:aws:personalize:us-east-1:123456789012:solution/other/v9",
];
const STATES: [&str; 4] = ["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"];

/// One account-wide listing as Personalize might give it: any of 16 jobs (each of a fixed
/// version), each in some state, left out, shown twice or in any order.
fn account_listing() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..16, 0usize..STATES.len()), 0..24)
}

fn account_jobs(view: &[(usize, usize)]) -> Vec<ListedJob> {
    view.iter()
        .map(|&(n, state)| {
            let job = of_version(n, VERSIONS[n % VERSIONS.len()], STATES[state], n as i64);
            ListedJob {
                updated: Some(t(n as i64 + state as i64)),
                ..job
            }
        })
        .collect()
}

/// What the watch's own listing shows of the same view: its version's jobs, or its solution's
/// versions one after another (ListSolutionVersions, then a listing per version).
fn own_listing(all: &[ListedJob], watched: &WatchedArn) -> Vec<ListedJob> {
    let mut own = Vec::new();
    for version in VERSIONS.iter().filter(|v| watched.covers(v)) {
        own.extend(
            all.iter()
                .filter(|j| j.solution_version_arn.as_deref() == Some(*version))
                .cloned(),
        );
    }
    own
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Fed its jobs from an account-wide listing shared with other watches, a watch decides
    /// the same status and the same Events, poll after poll, as from its own listing of the
    /// same view, under omitted, repeated and reordered jobs.
    #[test]
    fn a_watch_fed_from_a_shared_listing_decides_as_from_its_own(
        views in prop::collection::vec(account_listing(), 1..8),
        solution in any::<bool>(),
    ) {
        let watched = if solution {
            WatchedArn::parse_solution(SOLUTION).unwrap()
        } else {
            WatchedArn::parse_version(VERSIONS[1]).unwrap()
        };
        let (mut shared, mut own): (Option<SolutionVersionWatchStatus>, Option<SolutionVersionWatchStatus>) = (None, None);
        for (i, view) in views.iter().enumerate() {
            let all = account_jobs(view);
            let from_shared = listing(&own_jobs(&all, &watched));
            let from_own = listing(&own_listing(&all, &watched));
            prop_assert!(from_shared.jobs.iter().all(|j| watched.covers(j.solution_version_arn.as_deref().unwrap())));
            let now = 100 + 60 * i as i64;
            let observe_with = |listed| Observation {
                watched_arn: watched.as_str(),
                expectations: Expectations { stuck_after: Some(SignedDuration::from_secs(30)), new_job_within: None },
                ..observe(PollOutcome::Listed(listed), now, 5)
            };
            let a = next_status(shared.as_ref(), &observe_with(&from_shared)).status;
            let b = next_status(own.as_ref(), &observe_with(&from_own)).status;
            prop_assert_eq!(&a, &b, "poll {} of {:?}", i, views);
            shared = Some(a);
            own = Some(b);
        }
    }
}
