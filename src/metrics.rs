//! Prometheus metrics (prometheus-client, text format).

use std::collections::HashMap;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStateLabels {
    pub namespace: String,
    pub name: String,
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    personalize_requests: Family<RequestLabels, Counter>,
    personalize_throttled: Family<OperationLabels, Counter>,
    jobs: Family<JobStateLabels, Gauge>,
    watches: Gauge,
    leader: Gauge,
    seconds_since_sync: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    status_writes: Counter,
    events: Family<ReasonLabels, Counter>,
    /// Last complete listing per watch, in seconds since the epoch; ages are computed at scrape.
    last_sync: Mutex<HashMap<WatchLabels, f64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes a metric and registers it under `name`.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("personalize_watch");
        let r = &mut registry;
        Metrics {
            reconciles: registered(r, "reconciles", "Reconciles run", Counter::default()),
            reconcile_errors: registered(
                r,
                "reconcile_errors",
                "Reconciles that failed, by static reason",
                Family::default(),
            ),
            reconcile_duration: registered(
                r,
                "reconcile_duration_seconds",
                "Time a reconcile takes, listing included",
                Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ),
            personalize_requests: registered(
                r,
                "personalize_requests",
                "Personalize calls by operation and outcome (Success or an error reason)",
                Family::default(),
            ),
            personalize_throttled: registered(
                r,
                "personalize_throttled_requests",
                "Personalize calls that failed throttled after the SDK's retries",
                Family::default(),
            ),
            jobs: registered(
                r,
                "jobs",
                "Batch inference jobs by state, per watch",
                Family::default(),
            ),
            watches: registered(
                r,
                "watches",
                "SolutionVersionWatches known to this instance",
                Gauge::default(),
            ),
            leader: registered(
                r,
                "leader",
                "1 when this instance leads (or runs without leader election)",
                Gauge::default(),
            ),
            seconds_since_sync: registered(
                r,
                "seconds_since_last_sync",
                "Seconds since each watch's last complete listing",
                Family::default(),
            ),
            status_writes: registered(
                r,
                "status_writes",
                "Status writes to the API server",
                Counter::default(),
            ),
            events: registered(
                r,
                "events",
                "Kubernetes Events published, by reason",
                Family::default(),
            ),
            last_sync: Mutex::default(),
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
        if outcome == "Throttled" {
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

    pub fn event_published(&self, reason: &str) {
        self.events
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn set_watches(&self, n: usize) {
        self.watches.set(n as i64);
    }

    pub fn set_jobs(&self, namespace: &str, name: &str, counts: &JobCounts) {
        for (state, value) in [
            ("pending", counts.pending),
            ("in_progress", counts.in_progress),
            ("active", counts.active),
            ("failed", counts.failed),
            ("other", counts.other),
        ] {
            self.jobs
                .get_or_create(&JobStateLabels {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    state: state.to_string(),
                })
                .set(value);
        }
    }

    pub fn set_last_sync(&self, namespace: &str, name: &str, epoch_seconds: f64) {
        let key = WatchLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.last_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, epoch_seconds);
    }

    /// Drops a deleted watch's series.
    pub fn forget_watch(&self, namespace: &str, name: &str) {
        for state in ["pending", "in_progress", "active", "failed", "other"] {
            self.jobs.remove(&JobStateLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                state: state.to_string(),
            });
        }
        let key = WatchLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.seconds_since_sync.remove(&key);
        self.last_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// The text exposition, with ages computed now.
    pub fn encode(&self, now_epoch_seconds: f64) -> String {
        for (key, at) in self
            .last_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            self.seconds_since_sync
                .get_or_create(key)
                .set((now_epoch_seconds - at).max(0.0));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String does not fail; say so if it ever does.
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}
