//! The last step: when to poll next. Pure: the caller draws the jitter.

use std::time::Duration;

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
    /// Any job PENDING or IN PROGRESS.
    pub active: bool,
    /// Events that wait for a later poll.
    pub deferred: bool,
}

/// The next poll after a successful listing: up to 10% early (`jitter` in 0..=1), never late,
/// so fleets spread out and deadlines hold.
pub fn next_poll(after: AfterListing, jitter: f64) -> Requeue {
    let every = if after.deferred {
        DEFERRED_RETRY
    } else if after.active {
        after.intervals.active
    } else {
        after.intervals.idle
    };
    Requeue::After(every.mul_f64(1.0 - 0.1 * jitter.clamp(0.0, 1.0)))
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
        active: Duration::from_secs(60),
    };

    #[test]
    fn idle_active_and_deferred_polls() {
        let after = |active, deferred| AfterListing {
            intervals: INTERVALS,
            active,
            deferred,
        };
        assert_eq!(
            next_poll(after(false, false), 0.0),
            Requeue::After(Duration::from_secs(300))
        );
        assert_eq!(
            next_poll(after(true, false), 0.0),
            Requeue::After(Duration::from_secs(60))
        );
        assert_eq!(
            next_poll(after(true, true), 0.0),
            Requeue::After(DEFERRED_RETRY)
        );
        assert_eq!(
            next_poll(after(false, false), 1.0),
            Requeue::After(Duration::from_secs(270)),
            "at most 10% early"
        );
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
