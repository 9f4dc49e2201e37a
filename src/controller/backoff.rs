//! How the operator's watch streams retry after an error: exponential from 800 ms like
//! client-go's reflector, but capped at 5 s rather than 30 s. After an API server outage the
//! streams come back within one short step, and a watch told its resourceVersion expired (410)
//! relists seconds later, not half a minute: new and changed watches are seen promptly. Any event
//! resets it (kube-runtime's StreamBackoff does), so a healthy stream never waits.

use std::time::Duration;

use kube::runtime::utils::Backoff;
use rand::Rng;

const FIRST: Duration = Duration::from_millis(800);
const CAP: Duration = Duration::from_secs(5);

/// The retry delays of one watch stream.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    /// The next delay, jittered to between half and all of the step so that many operators
    /// (or streams) that failed together do not retry together.
    fn next(&mut self) -> Option<Duration> {
        let step = self.next;
        self.next = (step * 2).min(CAP);
        Some(step.mul_f64(rand::rng().random_range(0.5..=1.0)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_five_second_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(8).collect();
        for (d, step) in delays.iter().zip([0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0]) {
            let step = Duration::from_secs_f64(step);
            assert!(*d <= step && *d >= step / 2, "{d:?} for a step of {step:?}");
        }
        b.reset();
        assert!(b.next().is_some_and(|d| d <= FIRST));
    }
}
