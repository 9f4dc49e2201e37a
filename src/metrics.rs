//! Prometheus metrics (prometheus-client, text format).
//!
//! Per-watch series follow what was written: they change only after a successful status write,
//! a deleted watch's series go and never come back (its UID is remembered), a suspended watch
//! does not age into the stale alert, and an instance that loses its Lease drops them all (the
//! new leader exports them).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

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

/// What the per-watch ages are computed from when /metrics is read.
#[derive(Clone, Debug, Default)]
struct Known {
    uid: String,
    /// None while suspended.
    last_sync: Option<f64>,
    newest_job: Option<f64>,
}

/// The per-watch bookkeeping behind the per-watch series.
#[derive(Default)]
struct Watches {
    /// Set when leadership is lost, until it is won again: a reconcile still in flight then
    /// records nothing (the new leader exports the series).
    standing_by: bool,
    known: HashMap<WatchLabels, Known>,
    deleted: HashSet<String>,
    deleted_order: VecDeque<String>,
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
    watches: Mutex<Watches>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Every series' name (after the `personalize_watch_` prefix) and help text.
pub mod series {
    /// A metric's name and help text.
    pub type Series = (&'static str, &'static str);

    pub const RECONCILES: Series = ("reconciles", "Reconciles run");
    pub const RECONCILE_ERRORS: Series = (
        "reconcile_errors",
        "Reconciles that failed, by static reason",
    );
    pub const RECONCILE_DURATION: Series = (
        "reconcile_duration_seconds",
        "Time a reconcile takes, listing included",
    );
    pub const PERSONALIZE_REQUESTS: Series = (
        "personalize_requests",
        "Personalize calls by operation and outcome (Success or an error reason)",
    );
    pub const PERSONALIZE_THROTTLED: Series = (
        "personalize_throttled_requests",
        "Personalize calls that failed throttled after the SDK's retries",
    );
    pub const JOBS: Series = ("jobs", "Batch inference jobs by state, per watch");
    pub const WATCH_COUNT: Series = ("watches", "SolutionVersionWatches known to this instance");
    pub const LEADER: Series = (
        "leader",
        "1 when this instance leads (or runs without leader election)",
    );
    pub const SECONDS_SINCE_SYNC: Series = (
        "seconds_since_last_sync",
        "Seconds since each watch's last complete listing (suspended watches have none)",
    );
    pub const LAST_SYNC: Series = (
        "last_sync_timestamp_seconds",
        "When each watch's last complete listing finished, in seconds since the epoch",
    );
    pub const PENDING_EVENTS: Series = (
        "pending_events",
        "Decided Events that wait to be published, per watch",
    );
    pub const JOBS_STUCK: Series = (
        "jobs_stuck",
        "Jobs PENDING or IN PROGRESS for longer than spec.stuckAfter, per watch",
    );
    pub const SECONDS_SINCE_NEWEST_JOB: Series = (
        "seconds_since_newest_job",
        "Seconds since the newest job of each watch was created",
    );
    pub const EXPECT_NEW_JOB_WITHIN: Series = (
        "expect_new_job_within_seconds",
        "spec.expectNewJobWithin of each watch that sets it, in seconds",
    );
    pub const JOB_DURATION: Series = (
        "job_duration_seconds",
        "Durations of finished jobs (last update less creation), by outcome; each job once, when its Event is published",
    );
    pub const STATUS_WRITES: Series = ("status_writes", "Status writes to the API server");
    pub const STATUS_CONFLICTS: Series = (
        "status_conflicts",
        "Status writes refused with 409 Conflict (the object changed since it was read)",
    );
    pub const EVENTS: Series = ("events", "Kubernetes Events published, by reason");
    pub const EVENT_FAILURES: Series = (
        "event_publish_failures",
        "Event creations the API server refused, by its reason (the Event stays pending)",
    );
    pub const OMISSIONS: Series = (
        "listing_omissions",
        "Jobs seen before that a complete listing left out",
    );
}

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

    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a successful status write: the watch's series as written. Ignored for a watch
    /// deleted meanwhile.
    pub fn record_watch(&self, key: &WatchLabels, view: &WatchView<'_>) {
        let mut watches = self.watches();
        if watches.standing_by || watches.deleted.contains(view.uid) {
            return;
        }
        if let Some(counts) = view.counts {
            self.set_jobs(key, counts);
            self.jobs_stuck.get_or_create(key).set(counts.stuck);
        }
        self.pending_events
            .get_or_create(key)
            .set(view.pending_events as i64);
        if let Some(at) = view.last_sync {
            self.last_sync.get_or_create(key).set(at);
        }
        let ages = view.last_sync.filter(|_| !view.suspended);
        if ages.is_none() {
            self.seconds_since_sync.remove(key);
        }
        if view.newest_job.is_none() {
            self.seconds_since_newest_job.remove(key);
        }
        match view.expect_new_job_within {
            Some(seconds) => {
                self.expect_new_job_within.get_or_create(key).set(seconds);
            }
            None => {
                self.expect_new_job_within.remove(key);
            }
        }
        let known = Known {
            uid: view.uid.to_string(),
            last_sync: ages,
            newest_job: view.newest_job,
        };
        watches.known.insert(key.clone(), known);
    }

    fn set_jobs(&self, key: &WatchLabels, counts: &JobCounts) {
        let values = [
            counts.pending,
            counts.in_progress,
            counts.active,
            counts.failed,
            counts.other,
        ];
        for (state, value) in JOB_STATES.into_iter().zip(values) {
            self.jobs.get_or_create(&job_labels(key, state)).set(value);
        }
    }

    /// A watch was deleted: its series go, and stay gone.
    pub fn forget_watch(&self, key: &WatchLabels, uid: &str) {
        let mut watches = self.watches();
        if watches.deleted.insert(uid.to_string()) {
            watches.deleted_order.push_back(uid.to_string());
            if watches.deleted_order.len() > TOMBSTONES
                && let Some(oldest) = watches.deleted_order.pop_front()
            {
                watches.deleted.remove(&oldest);
            }
        }
        if watches.known.get(key).is_some_and(|k| k.uid == uid) {
            watches.known.remove(key);
            self.remove_series(key);
        }
    }

    /// Keeps only the series of watches `keep` accepts (after the cache relisted, deletions
    /// missed while the watch stream was down are dropped here).
    pub fn retain_watches(&self, keep: impl Fn(&WatchLabels, &str) -> bool) {
        let mut watches = self.watches();
        let gone: Vec<WatchLabels> = watches
            .known
            .iter()
            .filter(|(key, known)| !keep(key, &known.uid))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            watches.known.remove(&key);
            self.remove_series(&key);
        }
    }

    /// Leadership was lost: the new leader exports the per-watch series now.
    pub fn clear_watches(&self) {
        self.watches().standing_by = true;
        self.retain_watches(|_, _| false);
        self.set_watches(0);
    }

    fn remove_series(&self, key: &WatchLabels) {
        for state in JOB_STATES {
            self.jobs.remove(&job_labels(key, state));
        }
        self.seconds_since_sync.remove(key);
        self.last_sync.remove(key);
        self.pending_events.remove(key);
        self.jobs_stuck.remove(key);
        self.seconds_since_newest_job.remove(key);
        self.expect_new_job_within.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> WatchLabels {
        WatchLabels {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn synced(uid: &str, at: Option<f64>) -> WatchView<'_> {
        WatchView {
            uid,
            counts: None,
            last_sync: at,
            suspended: false,
            pending_events: 0,
            newest_job: None,
            expect_new_job_within: None,
        }
    }

    #[test]
    fn a_deleted_watch_never_comes_back_and_a_new_one_of_its_name_does() {
        let m = Metrics::new();
        m.record_watch(&key("w"), &synced("uid-1", Some(100.0)));
        assert!(
            m.encode(110.0)
                .contains("seconds_since_last_sync{namespace=\"ns\",name=\"w\"} 10")
        );
        m.forget_watch(&key("w"), "uid-1");
        // A reconcile still in flight finishes after the deletion.
        m.record_watch(&key("w"), &synced("uid-1", Some(105.0)));
        assert!(!m.encode(110.0).contains("name=\"w\""));
        // A new watch of the same name has series again.
        m.record_watch(&key("w"), &synced("uid-2", Some(108.0)));
        assert!(
            m.encode(110.0)
                .contains("seconds_since_last_sync{namespace=\"ns\",name=\"w\"} 2")
        );
    }

    #[test]
    fn suspended_watches_do_not_age_and_lost_leadership_clears() {
        let m = Metrics::new();
        m.record_watch(&key("a"), &synced("uid-a", Some(100.0)));
        let suspended = WatchView {
            suspended: true,
            ..synced("uid-a", Some(100.0))
        };
        m.record_watch(&key("a"), &suspended);
        let text = m.encode(1000.0);
        assert!(!text.contains("seconds_since_last_sync{"), "{text}");
        assert!(text.contains("last_sync_timestamp_seconds{namespace=\"ns\",name=\"a\"} 100"));
        m.record_watch(&key("b"), &synced("uid-b", Some(100.0)));
        m.clear_watches();
        // A reconcile still in flight when the Lease was lost records nothing.
        m.record_watch(&key("c"), &synced("uid-c", Some(100.0)));
        let text = m.encode(1000.0);
        assert!(
            !text.contains("name=\"a\"")
                && !text.contains("name=\"b\"")
                && !text.contains("name=\"c\""),
            "{text}"
        );
        m.set_leader(true);
        m.record_watch(&key("c"), &synced("uid-c", Some(100.0)));
        assert!(m.encode(1000.0).contains("name=\"c\""));
    }
}
