//! Listings shared by the watches of one namespace, account, region and credentials (a group): what each
//! watch's last listing showed, the group's last account-wide listing, and the one in flight,
//! which watches due with it join instead of calling themselves ([`super::plan`] decides).
//!
//! A watch joins a shared listing only when it has listed before, the listing started within
//! the watch's early window ([`plan::together`]) and no earlier than the watch's own last
//! listing, so a watch never decides on older data than it already has, and its first listing
//! is never older than itself. A shared listing that fails, or whose leader is
//! cancelled, leaves every watch waiting for it to list on its own; so does one still running
//! at a waiting watch's deadline ([`wait_until`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::ListedJob;
use super::error::{ListError, ListErrorKind};
use super::plan::{self, Asking, Member, Members, Plan};
use crate::access::RoleRef;

/// After a failed or slow account-wide listing, the group's watches list on their own this long.
pub const ACCOUNT_WIDE_PAUSE: Duration = Duration::from_secs(300);

/// Whose jobs one listing can show: the same account and region, with the same credentials;
/// and who may share it: the watches of one namespace, whose turn at the rate limit its calls
/// take, so that a crowded namespace still slows only itself
/// (`tenancy::a_crowded_namespace_slows_only_itself`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub namespace: String,
    pub region: String,
    pub account: String,
    pub role: Option<RoleRef>,
}

/// The account's jobs, once a shared listing ends; none if it failed.
type Finished = Option<Arc<[ListedJob]>>;

/// A shared listing, in flight or done.
struct Flight {
    started: Instant,
    /// Its leader's interval.
    every: Duration,
    /// `None` until it ends; the channel closes if its leader is cancelled.
    done: watch::Receiver<Option<Finished>>,
}

impl Flight {
    /// Whether a watch may still get its jobs from it.
    fn usable(&self) -> bool {
        match &*self.done.borrow() {
            Some(finished) => finished.is_some(),
            None => self.done.has_changed().is_ok(),
        }
    }
}

#[derive(Default)]
struct Group {
    members: Members,
    /// When gone members were last let go: at most once a second, not on every poll.
    swept: Option<Instant>,
    /// Jobs in the last account-wide listing.
    account_jobs: Option<usize>,
    /// No account-wide listing before this (the last one failed).
    paused_until: Option<Instant>,
    flight: Option<Flight>,
}

impl Group {
    fn pause(&mut self) {
        self.paused_until = Some(Instant::now() + ACCOUNT_WIDE_PAUSE);
    }
}

/// What a watch asking for a listing does.
pub enum Step {
    /// Wait for the shared listing that started at `started`.
    Join {
        started: Instant,
        done: watch::Receiver<Option<Finished>>,
    },
    /// Make the shared listing and hand it to those who join.
    Lead(Leader),
    /// List on its own.
    Own,
}

/// The watch that makes a shared listing.
pub struct Leader {
    pub started: Instant,
    /// The calls the watches' own listings would take: the shared one stops before as many.
    pub fewer_than: usize,
    done: watch::Sender<Option<Finished>>,
}

impl Leader {
    /// Hands the account's jobs (or the failure, as none) to every watch that joined.
    pub fn finish(self, finished: Finished) {
        self.done.send_replace(Some(finished));
    }
}

/// Waits for a shared listing: the account's jobs, or none if it failed or was cancelled.
pub async fn wait(mut done: watch::Receiver<Option<Finished>>) -> Finished {
    loop {
        if let Some(finished) = &*done.borrow_and_update() {
            return finished.clone();
        }
        if done.changed().await.is_err() {
            return done.borrow().clone().flatten();
        }
    }
}

/// [`wait`], until `deadline` at the latest: none after it.
pub async fn wait_until(done: watch::Receiver<Option<Finished>>, deadline: Instant) -> Finished {
    let deadline = tokio::time::Instant::from_std(deadline);
    tokio::time::timeout_at(deadline, wait(done))
        .await
        .ok()
        .flatten()
}

/// Every group's sizes and shared listing; shared by every watch of the process.
#[derive(Default)]
pub struct SharedListings {
    groups: Mutex<HashMap<GroupKey, Group>>,
}

impl SharedListings {
    /// What `asking` does now: join a usable shared listing, lead a new one, or list alone.
    pub fn step(&self, key: &GroupKey, asking: Asking<'_>, every: Duration) -> Step {
        let mut groups = self.groups();
        let group = groups.entry(key.clone()).or_default();
        forget_gone(group, asking.now);
        let own_last = group
            .members
            .get(asking.watch)
            .filter(|m| m.listed)
            .map(|m| m.asked);
        // Asking now makes it due now for the watches that ask while its listing runs.
        let asked = Member {
            asked: asking.now,
            every,
            ..group.members.get(asking.watch).copied().unwrap_or(Member {
                asked: asking.now,
                every,
                own_calls: 1,
                jobs: 0,
                listed: false,
            })
        };
        // Its own cost and jobs stay what its last listing showed, for the plan below.
        group.members.insert(asking.watch, asked);
        if let Some(flight) = &group.flight
            && flight.usable()
            && flight.started + plan::together(every) >= asking.now
            && own_last.is_some_and(|last| flight.started >= last)
        {
            return Step::Join {
                started: flight.started,
                done: flight.done.clone(),
            };
        }
        if group.paused_until.is_some_and(|until| asking.now < until) {
            return Step::Own;
        }
        match plan::choose(asking, &group.members, group.account_jobs) {
            Plan::Own => Step::Own,
            Plan::AccountWide { fewer_than } => {
                let (done, receiver) = watch::channel(None);
                group.flight = Some(Flight {
                    started: asking.now,
                    every,
                    done: receiver,
                });
                Step::Lead(Leader {
                    started: asking.now,
                    fewer_than,
                    done,
                })
            }
        }
    }

    /// An account-wide listing of the group ended: its size, or its failure.
    pub fn account_listed(&self, key: &GroupKey, outcome: Result<usize, &ListError>) {
        let mut groups = self.groups();
        let group = groups.entry(key.clone()).or_default();
        match outcome {
            Ok(jobs) => {
                group.account_jobs = Some(jobs);
                group.paused_until = None;
            }
            // Larger than the listing bounds: the watches' own listings from now on.
            Err(e)
                if matches!(
                    e.kind,
                    ListErrorKind::TooLarge | ListErrorKind::TooManyPages
                ) =>
            {
                group.account_jobs = Some(usize::MAX);
            }
            Err(_) => group.pause(),
        }
    }

    /// The group's watches list on their own for [`ACCOUNT_WIDE_PAUSE`]: its last
    /// account-wide listing took longer than its leader's interval.
    pub fn pause(&self, key: &GroupKey) {
        self.groups().entry(key.clone()).or_default().pause();
    }

    /// A shared listing stopped after `pages` full pages, as dear as the listings it was to
    /// replace: the account holds more jobs than those pages.
    pub fn account_at_least(&self, key: &GroupKey, pages: usize) {
        let mut groups = self.groups();
        let group = groups.entry(key.clone()).or_default();
        let at_least = pages.saturating_mul(plan::PAGE_SIZE).saturating_add(1);
        group.account_jobs = Some(group.account_jobs.unwrap_or(0).max(at_least));
    }

    /// What a watch's listing showed, for the next plans.
    pub fn record(&self, key: &GroupKey, watch: &str, member: Member) {
        let mut groups = self.groups();
        let group = groups.entry(key.clone()).or_default();
        group.members.insert(watch, member);
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<GroupKey, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Watches that have not asked for three of their intervals are gone (deleted, suspended, or
/// moved to another shard); a finished shared listing nobody can join any more is let go, and
/// the account's jobs with it. At most once a second: it looks at every watch of the group.
fn forget_gone(group: &mut Group, now: Instant) {
    let due = group
        .swept
        .is_none_or(|swept| now.saturating_duration_since(swept) >= Duration::from_secs(1));
    if !due {
        return;
    }
    group.swept = Some(now);
    group
        .members
        .retain(|m| now.saturating_duration_since(m.asked) <= 3 * m.every);
    let longest = group.members.longest_interval();
    let stale = group.flight.as_ref().is_some_and(|f| {
        let window = plan::together(longest.unwrap_or(f.every).max(f.every));
        f.done.borrow().is_some() && now.saturating_duration_since(f.started) > window
    });
    if stale {
        group.flight = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    fn key() -> GroupKey {
        GroupKey {
            namespace: "team-a".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            role: None,
        }
    }

    fn asking(watch: &str, now: Instant) -> Asking<'_> {
        Asking { watch, now }
    }

    fn member(asked: Instant) -> Member {
        Member {
            asked,
            every: EVERY,
            own_calls: 1,
            jobs: 3,
            listed: true,
        }
    }

    /// Ten watches that listed one interval ago, and the time they are due again.
    fn ten_watches_listed_an_interval_ago() -> (SharedListings, Instant) {
        let shared = SharedListings::default();
        let start = Instant::now();
        for i in 0..10 {
            shared.record(&key(), &format!("w{i}"), member(start));
        }
        (shared, start + EVERY)
    }

    #[tokio::test]
    async fn watches_due_together_join_one_listing_and_get_its_jobs() {
        let (shared, now) = ten_watches_listed_an_interval_ago();
        let Step::Lead(leader) = shared.step(&key(), asking("w0", now), EVERY) else {
            panic!("ten watches due together should share one listing");
        };
        let Step::Join { started, done } = shared.step(&key(), asking("w1", now), EVERY) else {
            panic!("the second watch should join the first one's listing");
        };
        assert_eq!(started, leader.started);
        let jobs: Arc<[ListedJob]> = vec![ListedJob::default(); 30].into();
        leader.finish(Some(jobs.clone()));
        assert_eq!(wait(done).await.map(|j| j.len()), Some(30));
        // A watch due a little later in the window joins the finished listing.
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            shared.step(&key(), asking("w2", later), EVERY),
            Step::Join { .. }
        ));
    }

    #[tokio::test]
    async fn a_watch_that_never_listed_lists_on_its_own_and_never_joins() {
        let (shared, now) = ten_watches_listed_an_interval_ago();
        let Step::Lead(_leader) = shared.step(&key(), asking("w0", now), EVERY) else {
            panic!("expected a shared listing");
        };
        // Its jobs may be newer than the listing under way: its first listing is its own.
        assert!(matches!(
            shared.step(&key(), asking("new", now), EVERY),
            Step::Own
        ));
    }

    #[tokio::test]
    async fn a_watch_never_joins_a_listing_older_than_its_own_last_one() {
        let (shared, now) = ten_watches_listed_an_interval_ago();
        let Step::Lead(_leader) = shared.step(&key(), asking("w0", now), EVERY) else {
            panic!("expected a shared listing");
        };
        // w1 listed on its own after the shared listing started.
        shared.record(&key(), "w1", member(now + Duration::from_millis(500)));
        assert!(!matches!(
            shared.step(&key(), asking("w1", now + Duration::from_secs(1)), EVERY),
            Step::Join { .. }
        ));
    }

    #[tokio::test]
    async fn a_watch_waits_for_a_shared_listing_until_its_deadline_at_most() {
        let (shared, now) = ten_watches_listed_an_interval_ago();
        let Step::Lead(_leader) = shared.step(&key(), asking("w0", now), EVERY) else {
            panic!("expected a shared listing");
        };
        let Step::Join { done, .. } = shared.step(&key(), asking("w1", now), EVERY) else {
            panic!("expected to join");
        };
        // The leader is still listing: the watch gives up at the deadline and lists on its own.
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(wait_until(done, deadline).await, None);
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn a_failed_or_cancelled_shared_listing_sends_its_watches_to_their_own() {
        let (shared, now) = ten_watches_listed_an_interval_ago();
        let Step::Lead(leader) = shared.step(&key(), asking("w0", now), EVERY) else {
            panic!("expected a shared listing");
        };
        let Step::Join { done, .. } = shared.step(&key(), asking("w1", now), EVERY) else {
            panic!("expected to join");
        };
        drop(leader);
        assert_eq!(wait(done).await, None, "a cancelled leader ends the wait");
        let denied = ListError::new(ListErrorKind::AccessDenied, "denied");
        shared.account_listed(&key(), Err(&denied));
        assert!(matches!(
            shared.step(&key(), asking("w2", now), EVERY),
            Step::Own
        ));
    }
}
