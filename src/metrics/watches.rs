//! The per-watch series: they follow what was written, a deleted watch's series never come back
//! (its UID is remembered), and an instance that lost its Lease records none.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::MutexGuard;

use crate::crd::JobCounts;

use super::{JOB_STATES, Metrics, TOMBSTONES, WatchLabels, WatchView, job_labels};

/// What the per-watch ages are computed from when /metrics is read.
#[derive(Clone, Debug, Default)]
pub(super) struct Known {
    pub(super) uid: String,
    /// None while suspended.
    pub(super) last_sync: Option<f64>,
    pub(super) newest_job: Option<f64>,
}

/// The per-watch bookkeeping behind the per-watch series.
#[derive(Default)]
pub(super) struct Watches {
    /// Set when leadership is lost, until it is won again: a reconcile still in flight then
    /// records nothing (the new leader exports the series).
    pub(super) standing_by: bool,
    pub(super) known: HashMap<WatchLabels, Known>,
    pub(super) deleted: HashSet<String>,
    pub(super) deleted_order: VecDeque<String>,
}

impl Metrics {
    pub(super) fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a successful status write: the watch's series as written. Ignored for a watch
    /// deleted meanwhile.
    pub fn record_watch(&self, key: &WatchLabels, view: &WatchView<'_>) {
        let mut watches = self.watches();
        if watches.standing_by || watches.deleted.contains(view.uid) {
            return;
        }
        match view.counts {
            Some(counts) => {
                self.set_jobs(key, counts);
                self.jobs_stuck.get_or_create(key).set(counts.stuck);
            }
            // Never listed, or withdrawn with the namespace's access: no job series.
            None => {
                for state in JOB_STATES {
                    self.jobs.remove(&job_labels(key, state));
                }
                self.jobs_stuck.remove(key);
            }
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

    pub(super) fn remove_series(&self, key: &WatchLabels) {
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

    /// An admin withdrew the namespace's access: the status has no counts, nor do the metrics.
    #[test]
    fn counts_withdrawn_from_the_status_leave_the_metrics_too() {
        let m = Metrics::new();
        let counts = JobCounts {
            failed: 2,
            total: 2,
            ..Default::default()
        };
        let listed = WatchView {
            counts: Some(&counts),
            ..synced("uid-1", Some(100.0))
        };
        m.record_watch(&key("w"), &listed);
        assert!(m.encode(110.0).contains("state=\"failed\""));
        m.record_watch(&key("w"), &synced("uid-1", Some(100.0)));
        let text = m.encode(110.0);
        assert!(
            !text.contains("state=\"failed\"") && !text.contains("jobs_stuck{"),
            "{text}"
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
