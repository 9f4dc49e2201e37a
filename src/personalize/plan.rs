//! Which calls a poll makes, chosen from the sizes the last listings showed. Pure: the caller
//! keeps the sizes ([`super::shared`]) and the clock.
//!
//! ListBatchInferenceJobs without `solutionVersionArn` lists every job of the account in the
//! region, 100 a page. When the watches of one account (and credentials) that are due together
//! would make more calls on their own than that one listing takes, one account-wide listing
//! serves them all, each getting exactly its own jobs. A solution watch on its own lists the
//! solution's versions (ListSolutionVersions) and then each version's jobs, or the account's
//! jobs when that takes fewer calls (a solution retrained weekly for a year has 52 versions).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Jobs or versions per page: the most ListBatchInferenceJobs and ListSolutionVersions give.
pub const PAGE_SIZE: usize = 100;

/// Calls to list `items` items: at least one, which may come back empty.
pub fn pages(items: usize) -> usize {
    items.div_ceil(PAGE_SIZE).max(1)
}

/// How a poll lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The watch's own calls: its solution version's jobs, or its solution's versions and
    /// each version's jobs.
    Own,
    /// One listing of the account's jobs, shared by every watch of the group due with it.
    AccountWide,
}

impl Plan {
    /// The `plan` label of `personalize_watch_listings_total`.
    pub const fn label(self) -> &'static str {
        match self {
            Plan::Own => "own",
            Plan::AccountWide => "shared",
        }
    }
}

/// A watch of the group, as its last poll left it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member {
    /// When it last asked for a listing.
    pub asked: Instant,
    /// How often it polls now.
    pub every: Duration,
    /// The calls its own listing takes (or took), from what its last listing held.
    pub own_calls: usize,
    /// How many of the account's jobs are its own.
    pub jobs: usize,
}

/// What a watch asking for a listing now brings.
#[derive(Clone, Copy, Debug)]
pub struct Asking<'a> {
    pub watch: &'a str,
    pub now: Instant,
    /// Its own listing's calls when it has none on record: a version's one page, or a
    /// solution's versions page and at least one page of jobs.
    pub own_calls_unknown: usize,
    /// A solution watch's first poll: it lists on its own unless the account's size is known,
    /// as its solution may be small in an account of many jobs.
    pub first_of_solution: bool,
}

/// The window within which polls count as due together: the 10% early a poll may start
/// ([`crate::reconcile::schedule::next_poll`]), at least a second.
pub fn together(every: Duration) -> Duration {
    (every / 10).max(Duration::from_secs(1))
}

/// The cheaper way to serve the watches due with `asking`. `account_jobs` is the size of the
/// group's last account-wide listing; before there was one, the members' own jobs stand for
/// it (a first try, corrected by what it shows). Ties go to the watches' own listings, which
/// hold no other jobs in memory.
pub fn choose(
    asking: Asking<'_>,
    members: &HashMap<String, Member>,
    account_jobs: Option<usize>,
) -> Plan {
    if asking.first_of_solution && account_jobs.is_none() {
        return Plan::Own;
    }
    let own = members
        .get(asking.watch)
        .map_or(asking.own_calls_unknown, |m| m.own_calls);
    let together_calls: usize = members
        .iter()
        .filter(|(watch, m)| watch.as_str() != asking.watch && due_together(m, asking.now))
        .map(|(_, m)| m.own_calls)
        .sum();
    let known_jobs = || members.values().map(|m| m.jobs).sum();
    let account_calls = pages(account_jobs.unwrap_or_else(known_jobs));
    if account_calls < own + together_calls {
        Plan::AccountWide
    } else {
        Plan::Own
    }
}

/// Whether `member` is due at `now`: its next poll falls within its window of `now`, or it
/// asked within that window (it is polling now).
fn due_together(member: &Member, now: Instant) -> bool {
    let window = together(member.every);
    let next = member.asked + member.every;
    let distance = if next > now { next - now } else { now - next };
    distance <= window || now.saturating_duration_since(member.asked) <= window
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    fn member(asked: Instant, own_calls: usize, jobs: usize) -> Member {
        Member {
            asked,
            every: EVERY,
            own_calls,
            jobs,
        }
    }

    fn asking(watch: &str, now: Instant) -> Asking<'_> {
        Asking {
            watch,
            now,
            own_calls_unknown: 1,
            first_of_solution: false,
        }
    }

    #[test]
    fn a_lone_watch_lists_its_own_jobs() {
        let now = Instant::now();
        let members = HashMap::new();
        assert_eq!(choose(asking("a", now), &members, None), Plan::Own);
        assert_eq!(choose(asking("a", now), &members, Some(0)), Plan::Own);
    }

    #[test]
    fn watches_due_together_share_one_listing_when_it_takes_fewer_calls() {
        let start = Instant::now();
        let now = start + EVERY;
        let members: HashMap<String, Member> = (0..200)
            .map(|i| (format!("w{i}"), member(start, 1, 3)))
            .collect();
        // 600 jobs: 6 pages against 200 own listings.
        assert_eq!(choose(asking("w0", now), &members, None), Plan::AccountWide);
        assert_eq!(
            choose(asking("w0", now), &members, Some(600)),
            Plan::AccountWide
        );
        // An account of 100,000 other jobs: 1,000 pages, dearer than 200 own listings.
        assert_eq!(
            choose(asking("w0", now), &members, Some(100_000)),
            Plan::Own
        );
    }

    #[test]
    fn watches_due_at_other_times_do_not_count() {
        let start = Instant::now();
        let mut members = HashMap::new();
        members.insert("a".to_string(), member(start, 1, 3));
        members.insert("b".to_string(), member(start + EVERY / 2, 1, 3));
        // b is due half an interval later: a alone is due now.
        assert_eq!(
            choose(asking("a", start + EVERY), &members, None),
            Plan::Own
        );
        // A watch that asked a moment ago is polling now.
        members.remove("b");
        assert_eq!(
            choose(
                asking("c", start + Duration::from_millis(300)),
                &members,
                None
            ),
            Plan::AccountWide
        );
    }

    #[test]
    fn a_solution_with_many_versions_lists_the_account_when_that_is_cheaper() {
        let start = Instant::now();
        let mut members = HashMap::new();
        // 52 weekly versions of 2 jobs: 1 ListSolutionVersions and 52 listings on its own.
        members.insert("s".to_string(), member(start, 53, 104));
        let now = start + EVERY;
        assert_eq!(
            choose(asking("s", now), &members, Some(104)),
            Plan::AccountWide
        );
        // The same solution in an account of 20,000 jobs: its own calls are fewer.
        assert_eq!(choose(asking("s", now), &members, Some(20_000)), Plan::Own);
    }

    #[test]
    fn a_new_solution_watch_lists_on_its_own_until_the_account_s_size_is_known() {
        let now = Instant::now();
        let first = Asking {
            watch: "s",
            now,
            own_calls_unknown: 2,
            first_of_solution: true,
        };
        assert_eq!(choose(first, &HashMap::new(), None), Plan::Own);
        assert_eq!(choose(first, &HashMap::new(), Some(104)), Plan::Own);
        assert_eq!(choose(first, &HashMap::new(), Some(50)), Plan::AccountWide);
    }

    #[test]
    fn pages_are_at_least_one() {
        assert_eq!(pages(0), 1);
        assert_eq!(pages(100), 1);
        assert_eq!(pages(101), 2);
        assert_eq!(pages(600), 6);
    }
}
