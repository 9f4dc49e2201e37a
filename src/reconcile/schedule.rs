//! The last step: when to poll next. Pure: the caller draws the jitter.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::Settings;
use super::spec::{self, PollIntervals};
use crate::crd::SolutionVersionWatch;

/// Retry soon while Events wait for a later poll.
pub const DEFERRED_RETRY: Duration = Duration::from_secs(1);

/// When to reconcile a watch again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Requeue {
    /// Only when the watch changes (suspended, or a spec only its author can fix).
    OnChange,
    After(Duration),
}

impl Requeue {
    /// `age` sooner (at once if that is past).
    pub fn sooner_by(self, age: Duration) -> Self {
        match self {
            Requeue::After(d) => Requeue::After(d.saturating_sub(age)),
            on_change => on_change,
        }
    }
}

impl From<Requeue> for kube::runtime::controller::Action {
    fn from(requeue: Requeue) -> Self {
        match requeue {
            Requeue::OnChange => Self::await_change(),
            Requeue::After(d) => Self::requeue(d),
        }
    }
}

/// What decides the next poll after a successful listing.
#[derive(Clone, Copy, Debug)]
pub struct AfterListing {
    pub intervals: PollIntervals,
    /// Any job PENDING or IN PROGRESS, or announcements waiting: poll at the interval for then.
    pub running: bool,
    /// Announcements deferred for room in the outbox, which publishing has just emptied: poll
    /// again soon.
    pub retry_soon: bool,
}

/// Polls due within the same tick start together. A process that wakes for each poll alone
/// spends more CPU going to sleep and waking (a context switch or two per wait, dearer on a VM)
/// than on the listing; woken once for several, it does the same work for about half
/// (docs/performance.md, "Waking once for several polls").
pub const POLL_TICK: Duration = Duration::from_secs(1);

/// The next poll after a successful listing: up to 10% early (`jitter` in 0..=1), never late,
/// so fleets spread out and deadlines hold; and at a whole [`POLL_TICK`] of `uptime`, the time
/// since a process-wide start, so that polls due close together start together. The tick is
/// at most the 10% allowed early.
pub fn next_poll(after: AfterListing, jitter: f64, uptime: Duration) -> Requeue {
    let every = if after.retry_soon {
        DEFERRED_RETRY
    } else if after.running {
        after.intervals.while_running
    } else {
        after.intervals.idle
    };
    let early = every / 10;
    let tick = POLL_TICK.min(early);
    let jittered = every - (early - tick).mul_f64(jitter.clamp(0.0, 1.0));
    Requeue::After(at_tick(jittered, uptime, tick))
}

/// The time since the process's first call: polls start at its whole ticks.
pub fn uptime() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// `delay`, shortened by less than `tick` so that `uptime + delay` is a whole number of ticks.
fn at_tick(delay: Duration, uptime: Duration, tick: Duration) -> Duration {
    let (Some(due), Ok(tick_nanos)) = (uptime.checked_add(delay), u64::try_from(tick.as_nanos()))
    else {
        return delay;
    };
    if tick_nanos == 0 {
        return delay;
    }
    let past_tick = due.as_nanos() % u128::from(tick_nanos);
    // Below `tick_nanos`, a u64.
    delay.saturating_sub(Duration::from_nanos(past_tick as u64))
}

/// Exponential backoff after `failures` failed polls in a row: min * 2^(n-1), capped, then
/// scaled by 0.8..=1.0 (`jitter` in 0..=1).
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// Whether a watch's status has not caught up with its spec: never written, or written for an
/// earlier generation. After a relist the controller reconciles these: it drops a watch it pops
/// before the relist's store swap (kube-runtime's reflector swaps at `InitDone`), and a watch
/// created or edited while the watch stream was down is one of them.
pub fn spec_not_observed(watch: &SolutionVersionWatch) -> bool {
    let generation = watch.metadata.generation;
    watch
        .status
        .as_ref()
        .is_none_or(|s| generation.is_some() && s.observed_generation != generation)
}

/// Whether a watch's poll is late, for the safety resync: its status has not caught up with
/// its spec, or it polls and its last good listing is older than a healthy watch's can be (the
/// status heartbeat plus twice its idle interval). A failing watch is late too: the resync
/// retries it once more. A suspended watch or one whose spec only its author can fix is not.
pub fn late(watch: &SolutionVersionWatch, settings: &Settings, now: Timestamp) -> bool {
    if spec_not_observed(watch) {
        return true;
    }
    let Ok(target) = spec::validate(watch, settings.default_intervals) else {
        return false;
    };
    if target.suspended {
        return false;
    }
    let allowed = settings.status_heartbeat + 2 * target.intervals.idle;
    let allowed = jiff::SignedDuration::try_from(allowed).unwrap_or(jiff::SignedDuration::MAX);
    let last = watch
        .status
        .as_ref()
        .and_then(|s| s.last_sync_time.as_ref());
    last.is_none_or(|t| now.duration_since(t.0) > allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVALS: PollIntervals = PollIntervals {
        idle: Duration::from_secs(300),
        while_running: Duration::from_secs(60),
    };

    fn after(running: bool, retry_soon: bool) -> AfterListing {
        AfterListing {
            intervals: INTERVALS,
            running,
            retry_soon,
        }
    }

    #[test]
    fn idle_active_and_deferred_polls() {
        let on_tick = Duration::ZERO;
        assert_eq!(
            next_poll(after(false, false), 0.0, on_tick),
            Requeue::After(Duration::from_secs(300))
        );
        assert_eq!(
            next_poll(after(true, false), 0.0, on_tick),
            Requeue::After(Duration::from_secs(60))
        );
        assert_eq!(
            next_poll(after(true, true), 0.0, on_tick),
            Requeue::After(DEFERRED_RETRY)
        );
        assert_eq!(
            next_poll(after(false, false), 1.0, on_tick),
            Requeue::After(Duration::from_secs(271)),
            "at most 10% early, a tick kept for the alignment"
        );
        assert_eq!(
            next_poll(after(false, false), 0.0, Duration::from_millis(12_250)),
            Requeue::After(Duration::from_millis(299_750)),
            "to the next whole tick"
        );
    }

    proptest::proptest! {
        /// Whatever the jitter and the uptime: never late, at most 10% early, and due at a
        /// whole tick (of at most POLL_TICK), so that polls due close together start together.
        #[test]
        fn polls_start_on_a_tick_never_late_at_most_a_tenth_early(
            jitter in 0.0f64..=1.0,
            clock_ms in 0u64..10_000_000_000,
            active in proptest::bool::ANY,
            deferred in proptest::bool::ANY,
            idle_ms in 1u64..100_000_000,
            active_ms in 1u64..100_000_000,
        ) {
            let intervals = PollIntervals {
                idle: Duration::from_millis(idle_ms),
                while_running: Duration::from_millis(active_ms),
            };
            let every = if deferred { DEFERRED_RETRY } else if active { intervals.while_running } else { intervals.idle };
            let uptime = Duration::from_millis(clock_ms);
            let Requeue::After(delay) = next_poll(AfterListing { intervals, running: active, retry_soon: deferred }, jitter, uptime) else {
                return Err(proptest::test_runner::TestCaseError::fail("a listing always polls again"));
            };
            proptest::prop_assert!(delay <= every, "{delay:?} later than {every:?}");
            proptest::prop_assert!(delay >= every - every / 10, "{delay:?} more than 10% before {every:?}");
            let tick = POLL_TICK.min(every / 10).as_nanos();
            if tick > 0 {
                proptest::prop_assert_eq!((uptime + delay).as_nanos() % tick, 0);
            }
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let min = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        for (n, base) in [(1, 5), (2, 10), (3, 20), (7, 300), (30, 300)] {
            let base = Duration::from_secs(base);
            assert_eq!(backoff(n, min, max, 0.0), base, "failure {n}");
            assert_eq!(backoff(n, min, max, 1.0), base.mul_f64(0.8), "failure {n}");
        }
    }

    fn watch(
        generation: i64,
        observed: Option<i64>,
        synced_ago: Option<i64>,
        suspend: bool,
    ) -> SolutionVersionWatch {
        use crate::crd::{SolutionVersionWatchSpec, SolutionVersionWatchStatus};
        let mut w = SolutionVersionWatch::new(
            "w",
            SolutionVersionWatchSpec {
                poll_interval: Some("5m".into()),
                suspend,
                ..SolutionVersionWatchSpec::watching(
                    "arn:aws:personalize:us-east-1:123456789012:solution/s/v1",
                )
            },
        );
        w.metadata.generation = Some(generation);
        w.status = observed.map(|g| SolutionVersionWatchStatus {
            observed_generation: Some(g),
            last_sync_time: synced_ago.map(|ago| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    now() - jiff::SignedDuration::from_secs(ago),
                )
            }),
            ..Default::default()
        });
        w
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_relist_reconciles_the_watches_whose_status_is_behind_their_spec() {
        assert!(
            spec_not_observed(&watch(1, None, None, false)),
            "never written: created during the relist"
        );
        assert!(
            spec_not_observed(&watch(2, Some(1), Some(10), true)),
            "edited during the relist"
        );
        assert!(!spec_not_observed(&watch(2, Some(2), Some(10), false)));
    }

    #[test]
    fn the_resync_finds_late_polls_and_leaves_the_rest() {
        let settings = crate::reconcile::Settings::test();
        // Heartbeat 10m plus twice the 5m interval: 20 minutes.
        assert!(!late(
            &watch(1, Some(1), Some(19 * 60), false),
            &settings,
            now()
        ));
        assert!(
            late(&watch(1, Some(1), Some(21 * 60), false), &settings, now()),
            "a lost requeue"
        );
        assert!(
            late(&watch(1, Some(1), None, false), &settings, now()),
            "never listed"
        );
        assert!(
            !late(&watch(1, Some(1), None, true), &settings, now()),
            "suspended"
        );
        assert!(
            late(&watch(2, Some(1), None, true), &settings, now()),
            "edited, not yet seen"
        );
        assert!(
            !late(&watch(1, Some(1), Some(-600), false), &settings, now()),
            "a clock ahead is not late"
        );
    }
}
