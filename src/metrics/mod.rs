//! Prometheus metrics (prometheus-client, text format).
//!
//! Per-watch series follow what was written: they change only after a successful status write,
//! a deleted watch's series go and never come back (its UID is remembered), a suspended watch
//! does not age into the stale alert, and an instance that loses its Lease drops them all (the
//! new leader exports them).

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::crd::JobCounts;
use crate::reasons::Reason;

/// Deleted watches remembered, so a reconcile still in flight cannot bring their series back.
const TOMBSTONES: usize = 10_000;
const JOB_STATES: [&str; 5] = ["pending", "in_progress", "active", "failed", "other"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// How a poll's jobs were listed ([`crate::personalize::plan::Plan`]): `own` or `shared`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub plan: String,
}

/// A watch, as its series name it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub namespace: String,
    pub name: String,
}

/// How a finished job ended: `completed` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStateLabels {
    pub namespace: String,
    pub name: String,
    pub state: String,
}

/// What a successful status write says about a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchView<'a> {
    pub uid: &'a str,
    pub counts: Option<&'a JobCounts>,
    /// The last complete listing, seconds since the epoch.
    pub last_sync: Option<f64>,
    /// A suspended watch is not polled, so its last sync does not age into staleness.
    pub suspended: bool,
    pub pending_events: usize,
    /// When the newest job was created, seconds since the epoch.
    pub newest_job: Option<f64>,
    /// spec.expectNewJobWithin in seconds, if set: the overdue alert compares the age of the
    /// newest job with it.
    pub expect_new_job_within: Option<f64>,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    personalize_requests: Family<RequestLabels, Counter>,
    personalize_throttled: Family<OperationLabels, Counter>,
    jobs: Family<JobStateLabels, Gauge>,
    watch_count: Gauge,
    leader: Gauge,
    seconds_since_sync: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    last_sync: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    pending_events: Family<WatchLabels, Gauge>,
    jobs_stuck: Family<WatchLabels, Gauge>,
    seconds_since_newest_job: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    expect_new_job_within: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    job_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    status_writes: Counter,
    status_conflicts: Counter,
    events: Family<ReasonLabels, Counter>,
    event_failures: Family<ReasonLabels, Counter>,
    omissions: Counter,
    listings: Family<PlanLabels, Counter>,
    watches: Mutex<Watches>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod reference;
pub mod series;
mod watches;

use watches::Watches;

/// Makes a metric and registers it as `series` says.
fn registered<M: Metric + Clone>(registry: &mut Registry, series: series::Series, metric: M) -> M {
    registry.register(series.0, series.1, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("personalize_watch");
        let r = &mut registry;
        Metrics {
            reconciles: registered(r, series::RECONCILES, Counter::default()),
            reconcile_errors: registered(r, series::RECONCILE_ERRORS, Family::default()),
            reconcile_duration: registered(
                r,
                series::RECONCILE_DURATION,
                Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ),
            personalize_requests: registered(r, series::PERSONALIZE_REQUESTS, Family::default()),
            personalize_throttled: registered(r, series::PERSONALIZE_THROTTLED, Family::default()),
            jobs: registered(r, series::JOBS, Family::default()),
            watch_count: registered(r, series::WATCH_COUNT, Gauge::default()),
            leader: registered(r, series::LEADER, Gauge::default()),
            seconds_since_sync: registered(r, series::SECONDS_SINCE_SYNC, Family::default()),
            last_sync: registered(r, series::LAST_SYNC, Family::default()),
            pending_events: registered(r, series::PENDING_EVENTS, Family::default()),
            jobs_stuck: registered(r, series::JOBS_STUCK, Family::default()),
            seconds_since_newest_job: registered(
                r,
                series::SECONDS_SINCE_NEWEST_JOB,
                Family::default(),
            ),
            expect_new_job_within: registered(r, series::EXPECT_NEW_JOB_WITHIN, Family::default()),
            job_duration: registered(
                r,
                series::JOB_DURATION,
                Family::new_with_constructor(duration_histogram),
            ),
            status_writes: registered(r, series::STATUS_WRITES, Counter::default()),
            status_conflicts: registered(r, series::STATUS_CONFLICTS, Counter::default()),
            events: registered(r, series::EVENTS, Family::default()),
            event_failures: registered(r, series::EVENT_FAILURES, Family::default()),
            omissions: registered(r, series::OMISSIONS, Counter::default()),
            listings: registered(r, series::LISTINGS, Family::default()),
            watches: Mutex::default(),
            registry,
        }
    }

    pub fn reconcile_started(&self) {
        self.reconciles.inc();
    }

    pub fn reconcile_finished(&self, seconds: f64, error_reason: Option<Reason>) {
        self.reconcile_duration.observe(seconds);
        if let Some(reason) = error_reason {
            self.reconcile_errors
                .get_or_create(&ReasonLabels {
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    pub fn personalize_request(&self, operation: &str, outcome: &str) {
        self.personalize_requests
            .get_or_create(&RequestLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        if outcome == Reason::Throttled.as_str() {
            self.personalize_throttled
                .get_or_create(&OperationLabels {
                    operation: operation.to_string(),
                })
                .inc();
        }
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    pub fn status_conflict(&self) {
        self.status_conflicts.inc();
    }

    pub fn event_published(&self, reason: &str) {
        self.events
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// An Event the API server refused; `reason` is its status reason (Forbidden, Invalid, ...).
    pub fn event_refused(&self, reason: &str) {
        self.event_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A job finished after the watch's first listing: observed once, when its Event is first
    /// published (a second publish finds the Event there and observes nothing).
    pub fn job_finished(&self, outcome: &str, seconds: f64) {
        self.job_duration
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .observe(seconds);
    }

    /// A poll got its jobs, by plan: `own` (its own calls) or `shared` (from an account-wide
    /// listing of its group, which it made or joined).
    pub fn listed(&self, plan: &str) {
        self.listings
            .get_or_create(&PlanLabels {
                plan: plan.to_string(),
            })
            .inc();
    }

    pub fn listing_omitted(&self, jobs: usize) {
        self.omissions.inc_by(jobs as u64);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        if leading {
            self.watches().standing_by = false;
        }
    }

    pub fn set_watches(&self, n: usize) {
        self.watch_count.set(n as i64);
    }

    /// The text exposition, with ages computed now.
    pub fn encode(&self, now_epoch_seconds: f64) -> String {
        for (key, known) in &self.watches().known {
            if let Some(at) = known.last_sync {
                self.seconds_since_sync
                    .get_or_create(key)
                    .set((now_epoch_seconds - at).max(0.0));
            }
            if let Some(at) = known.newest_job {
                self.seconds_since_newest_job
                    .get_or_create(key)
                    .set((now_epoch_seconds - at).max(0.0));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String does not fail; say so if it ever does.
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Batch inference runs for minutes to days: 1 minute to about 68 hours.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(60.0, 2.0, 13))
}

fn job_labels(key: &WatchLabels, state: &str) -> JobStateLabels {
    JobStateLabels {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        state: state.to_string(),
    }
}
