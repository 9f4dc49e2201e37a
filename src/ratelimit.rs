//! A process-wide token bucket per AWS region, so that all watches together stay inside the
//! account's Personalize request rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate.max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long to wait before a token is available at `now`; takes the token (ahead of time,
    /// so concurrent callers queue in order).
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *state;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let available = (tokens + elapsed * self.rate).min(self.burst) - 1.0;
        *state = (available, now.max(last));
        if available >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-available / self.rate)
        }
    }

    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One bucket per region, made on first use.
#[derive(Debug)]
pub struct RegionLimiter {
    rate: f64,
    burst: u32,
    buckets: Mutex<HashMap<String, std::sync::Arc<TokenBucket>>>,
}

impl RegionLimiter {
    pub fn new(rate: f64, burst: u32) -> Self {
        RegionLimiter {
            rate,
            burst,
            buckets: Mutex::default(),
        }
    }

    pub async fn acquire(&self, region: &str) {
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            buckets
                .entry(region.to_string())
                .or_insert_with(|| std::sync::Arc::new(TokenBucket::new(self.rate, self.burst)))
                .clone()
        };
        bucket.acquire().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new(5.0, 2);
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        // Third at the same instant waits 1/5 s, fourth 2/5 s.
        let third = bucket.reserve(start);
        let fourth = bucket.reserve(start);
        assert!((third.as_secs_f64() - 0.2).abs() < 1e-6, "{third:?}");
        assert!((fourth.as_secs_f64() - 0.4).abs() < 1e-6, "{fourth:?}");
        // After a long idle period the bucket holds only `burst`.
        let later = start + Duration::from_secs(10);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert!(bucket.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn calls_in_any_window_stay_within_rate_plus_burst() {
        let start = Instant::now();
        let bucket = TokenBucket::new(5.0, 2);
        let mut grants = Vec::new();
        for _ in 0..100 {
            grants.push(start + bucket.reserve(start));
        }
        for (i, g) in grants.iter().enumerate() {
            let in_window = grants[i..]
                .iter()
                .filter(|x| x.duration_since(*g) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 7, "{in_window} calls in one second");
        }
    }
}
