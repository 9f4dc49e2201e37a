//! The last step: when to poll next. Pure: the caller draws the jitter.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::spec::PollIntervals;

/// Retry soon while Events wait for a later poll.
pub const DEFERRED_RETRY: Duration = Duration::from_secs(1);

/// When to reconcile a watch again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Requeue {
    /// Only when the watch changes (suspended, or a spec only its author can fix).
    OnChange,
    After(Duration),
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
}
