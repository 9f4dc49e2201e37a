//! The process-wide Personalize call rate, per AWS region, shared fairly: a GCRA token bucket
//! (governor) per region, and in front of it a queue per namespace served in turn, so a
//! namespace with many or fast watches waits behind itself, never in front of the others.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::flow::turns::{Place, Turns};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// One region's rate, handed out in turn to the keys (namespaces) waiting for it.
pub struct FairBucket {
    bucket: Bucket,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    turns: Turns<()>,
    /// Whether a task is handing out tokens.
    pumping: bool,
}

impl FairBucket {
    /// `rate` calls per second, at most `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        FairBucket {
            bucket: RateLimiter::direct(quota),
            waiting: Mutex::default(),
        }
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call's token if one is free and nobody waits.
    pub fn try_acquire(&self) -> bool {
        self.waiting().turns.is_empty() && self.bucket.check().is_ok()
    }

    /// Waits for a call's token, in `key`'s turn, at `place` among the key's calls.
    pub async fn acquire(self: &Arc<Self>, key: &str, place: Place) {
        let granted = {
            let mut waiting = self.waiting();
            if waiting.turns.is_empty() && self.bucket.check().is_ok() {
                return;
            }
            let granted = waiting.turns.queue(key, place);
            if !waiting.pumping {
                waiting.pumping = true;
                tokio::spawn(self.clone().pump());
            }
            granted
        };
        // An error means the pump is gone (the runtime is shutting down): go ahead.
        if granted.await.is_err() {
            tracing::debug!("the rate limiter stopped while a call waited");
        }
    }

    /// Hands each token to the next key in turn while anyone waits.
    async fn pump(self: Arc<Self>) {
        loop {
            self.bucket.until_ready().await;
            let mut waiting = self.waiting();
            // Err: everyone waiting gave up; the token is spent, which only slows things.
            let _ = waiting.turns.grant(());
            if waiting.turns.is_empty() {
                waiting.pumping = false;
                return;
            }
        }
    }
}

/// One fair bucket per region, made on first use.
pub struct RegionLimiter {
    rate: f64,
    burst: u32,
    buckets: Mutex<HashMap<String, Arc<FairBucket>>>,
}

impl RegionLimiter {
    pub fn new(rate: f64, burst: u32) -> Self {
        RegionLimiter {
            rate,
            burst,
            buckets: Mutex::default(),
        }
    }

    /// The fair bucket of `region`: a call takes its token there, in the turn of its namespace.
    pub fn bucket(&self, region: &str) -> Arc<FairBucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(region.to_string())
            .or_insert_with(|| Arc::new(FairBucket::new(self.rate, self.burst)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Order of grants, not wall time: holds on a loaded machine.
    #[tokio::test]
    async fn a_busy_key_waits_behind_itself_not_in_front_of_others() {
        let bucket = Arc::new(FairBucket::new(200.0, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..60 {
            let (bucket, order) = (bucket.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                bucket.acquire("busy", Place::Last).await;
                order.lock().unwrap().push(format!("busy{i}"));
            }));
        }
        // The busy key queues up first; then a quiet key asks for 5 calls.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..5 {
            let (bucket, order) = (bucket.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                bucket.acquire("quiet", Place::Last).await;
                order.lock().unwrap().push(format!("quiet{i}"));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let last_quiet = order.iter().rposition(|o| o.starts_with("quiet")).unwrap();
        let first_quiet = order.iter().position(|o| o.starts_with("quiet")).unwrap();
        assert!(
            last_quiet - first_quiet <= 9,
            "the quiet key got every other turn: {order:?}"
        );
        assert!(last_quiet < 40, "not behind the busy backlog: {order:?}");
    }

    #[tokio::test]
    async fn calls_stay_within_rate_plus_burst() {
        let bucket = Arc::new(FairBucket::new(50.0, 5));
        let started = Instant::now();
        let mut grants = Vec::new();
        for i in 0..30 {
            bucket
                .acquire(if i % 2 == 0 { "a" } else { "b" }, Place::Last)
                .await;
            grants.push(started.elapsed());
        }
        // 30 calls at 50/s with a burst of 5 take at least (30 - 5) / 50 s.
        assert!(
            started.elapsed() >= Duration::from_millis(480),
            "{:?}",
            started.elapsed()
        );
        let in_first_second = grants
            .iter()
            .filter(|g| **g < Duration::from_secs(1))
            .count();
        assert!(in_first_second <= 55);
    }
}
