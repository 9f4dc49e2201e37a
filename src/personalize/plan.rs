//! Which calls a poll makes, chosen from the sizes the last listings showed. Pure: the caller
//! keeps the sizes ([`super::shared`]) and the clock.
//!
//! ListBatchInferenceJobs without `solutionVersionArn` lists every job of the account in the
//! region, 100 a page. When the watches of one account (and credentials) that are due together
//! would make more calls on their own than that one listing takes, one account-wide listing
//! serves them all, each getting exactly its own jobs. A solution watch on its own lists the
//! solution's versions (ListSolutionVersions) and then each version's jobs, or the account's
//! jobs when that takes fewer calls (a solution retrained weekly for a year has 52 versions).
//!
//! Sizes are learned, never guessed: a watch's first poll lists on its own (which also gives it
//! data no older than itself), and the account's size is the larger of the last account-wide
//! listing's and the members' jobs together. A shared listing stops once it has made as many
//! calls as the own listings it replaces, so one that meets many unwatched jobs costs at most
//! that, once; the group then knows the account is at least that large.

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
    /// One listing of the account's jobs, shared by every watch of the group due with it; it
    /// stops (and they list on their own) before it makes `fewer_than` calls.
    AccountWide { fewer_than: usize },
}

/// How a poll's jobs were listed: the `plan` label of `personalize_watch_listings_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Own,
    Shared,
}

impl Served {
    pub const fn label(self) -> &'static str {
        match self {
            Served::Own => "own",
            Served::Shared => "shared",
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
    /// Whether it has listed (so `own_calls` and `jobs` are known).
    pub listed: bool,
}

/// A group's watches, with what their listings total kept as they change, so that planning a
/// poll costs nothing per watch unless sharing could pay (10,000 watches of one account poll
/// without scanning each other: bench row large-fleet).
#[derive(Clone, Debug, Default)]
pub struct Members {
    by_watch: HashMap<String, Member>,
    /// Over the watches that have listed: their own listings' calls, and their jobs.
    own_calls: usize,
    jobs: usize,
}

impl Members {
    pub fn get(&self, watch: &str) -> Option<&Member> {
        self.by_watch.get(watch)
    }

    /// Every poll records its watch twice: a known watch is updated in place, without a new
    /// key.
    pub fn insert(&mut self, watch: &str, member: Member) {
        self.count(&member, true);
        match self.by_watch.get_mut(watch) {
            Some(slot) => {
                let before = std::mem::replace(slot, member);
                self.count(&before, false);
            }
            None => {
                self.by_watch.insert(watch.to_string(), member);
            }
        }
    }

    pub fn remove(&mut self, watch: &str) {
        if let Some(before) = self.by_watch.remove(watch) {
            self.count(&before, false);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Member) -> bool) {
        let (mut own_calls, mut jobs) = (0, 0);
        self.by_watch.retain(|_, m| keep(m));
        for m in self.by_watch.values().filter(|m| m.listed) {
            own_calls += m.own_calls;
            jobs += m.jobs;
        }
        (self.own_calls, self.jobs) = (own_calls, jobs);
    }

    pub fn longest_interval(&self) -> Option<Duration> {
        self.by_watch.values().map(|m| m.every).max()
    }

    fn count(&mut self, member: &Member, add: bool) {
        if !member.listed {
            return;
        }
        if add {
            self.own_calls += member.own_calls;
            self.jobs += member.jobs;
        } else {
            self.own_calls -= member.own_calls;
            self.jobs -= member.jobs;
        }
    }
}

impl FromIterator<(String, Member)> for Members {
    fn from_iter<I: IntoIterator<Item = (String, Member)>>(iter: I) -> Self {
        let mut members = Members::default();
        for (watch, member) in iter {
            members.insert(&watch, member);
        }
        members
    }
}

/// What a watch asking for a listing now brings.
#[derive(Clone, Copy, Debug)]
pub struct Asking<'a> {
    pub watch: &'a str,
    pub now: Instant,
}

/// The window within which polls count as due together: the 10% early a poll may start
/// ([`crate::reconcile::schedule::next_poll`]), at least a second.
pub fn together(every: Duration) -> Duration {
    (every / 10).max(Duration::from_secs(1))
}

/// The cheaper way to serve the watches due with `asking`, which have listed before (a watch
/// never listed lists on its own). `account_jobs` is what the group knows of the account's
/// size: at least the members' jobs together. Ties go to the watches' own listings, which hold
/// no other jobs in memory.
pub fn choose(asking: Asking<'_>, members: &Members, account_jobs: Option<usize>) -> Plan {
    let Some(own) = members.get(asking.watch).filter(|m| m.listed) else {
        return Plan::Own;
    };
    let account_calls = pages(account_jobs.unwrap_or(0).max(members.jobs));
    // Not even every watch due at once would pay for it: no need to look for those due.
    if account_calls >= members.own_calls {
        return Plan::Own;
    }
    let together_calls: usize = members
        .by_watch
        .iter()
        .filter(|(watch, m)| {
            watch.as_str() != asking.watch && m.listed && due_together(m, asking.now)
        })
        .map(|(_, m)| m.own_calls)
        .sum();
    let own_calls = own.own_calls + together_calls;
    if account_calls < own_calls {
        Plan::AccountWide {
            fewer_than: own_calls,
        }
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
            listed: true,
        }
    }

    fn asking(watch: &str, now: Instant) -> Asking<'_> {
        Asking { watch, now }
    }

    fn shares(plan: Plan) -> bool {
        matches!(plan, Plan::AccountWide { .. })
    }

    #[test]
    fn a_lone_watch_and_a_watch_never_listed_list_their_own_jobs() {
        let start = Instant::now();
        let mut members = Members::default();
        assert_eq!(choose(asking("a", start), &members, None), Plan::Own);
        members.insert("a", member(start, 1, 3));
        assert_eq!(
            choose(asking("a", start + EVERY), &members, Some(0)),
            Plan::Own
        );
        // 200 watches due together, and one that never listed: it lists on its own.
        for i in 0..200 {
            members.insert(&format!("w{i}"), member(start, 1, 3));
        }
        let new = Member {
            listed: false,
            ..member(start + EVERY, 1, 0)
        };
        members.insert("new", new);
        assert_eq!(
            choose(asking("new", start + EVERY), &members, None),
            Plan::Own
        );
        assert!(shares(choose(asking("w0", start + EVERY), &members, None)));
    }

    #[test]
    fn watches_due_together_share_one_listing_when_it_takes_fewer_calls() {
        let start = Instant::now();
        let now = start + EVERY;
        let members: Members = (0..200)
            .map(|i| (format!("w{i}"), member(start, 1, 3)))
            .collect();
        // 600 jobs: 6 pages against 200 own listings; it stops before a 200th call.
        assert_eq!(
            choose(asking("w0", now), &members, None),
            Plan::AccountWide { fewer_than: 200 }
        );
        assert!(shares(choose(asking("w0", now), &members, Some(600))));
        // An account of 100,000 jobs: 1,000 pages, dearer than 200 own listings.
        assert_eq!(
            choose(asking("w0", now), &members, Some(100_000)),
            Plan::Own
        );
    }

    #[test]
    fn watches_due_at_other_times_do_not_count() {
        let start = Instant::now();
        let mut members = Members::default();
        members.insert("a", member(start, 1, 3));
        members.insert("b", member(start + EVERY / 2, 1, 3));
        // b is due half an interval later: a alone is due now.
        assert_eq!(
            choose(asking("a", start + EVERY), &members, None),
            Plan::Own
        );
        // A watch that asked a moment ago is polling now.
        assert!(shares(choose(
            asking("b", start + EVERY / 2 + EVERY),
            &{
                let mut m = members.clone();
                m.insert("c", member(start + EVERY / 2 + EVERY, 1, 3));
                m
            },
            None
        )));
    }

    #[test]
    fn a_solution_with_many_versions_lists_the_account_when_that_is_cheaper() {
        let start = Instant::now();
        let mut members = Members::default();
        // 52 weekly versions of 2 jobs: 1 ListSolutionVersions and 52 listings on its own.
        members.insert("s", member(start, 53, 104));
        let now = start + EVERY;
        assert_eq!(
            choose(asking("s", now), &members, None),
            Plan::AccountWide { fewer_than: 53 }
        );
        // The same solution in an account of 20,000 jobs: its own calls are fewer.
        assert_eq!(choose(asking("s", now), &members, Some(20_000)), Plan::Own);
    }

    #[test]
    fn the_totals_follow_every_change() {
        let start = Instant::now();
        let mut members: Members = (0..10)
            .map(|i| (format!("w{i}"), member(start, 2, 150)))
            .collect();
        assert_eq!((members.own_calls, members.jobs), (20, 1500));
        members.insert("w0", member(start, 1, 3));
        members.insert(
            "new",
            Member {
                listed: false,
                ..member(start, 1, 0)
            },
        );
        members.remove("w1");
        assert_eq!((members.own_calls, members.jobs), (17, 1203));
        members.retain(|m| m.jobs > 100);
        assert_eq!((members.own_calls, members.jobs), (16, 1200));
    }

    #[test]
    fn pages_are_at_least_one() {
        assert_eq!(pages(0), 1);
        assert_eq!(pages(100), 1);
        assert_eq!(pages(101), 2);
        assert_eq!(pages(600), 6);
    }
}
