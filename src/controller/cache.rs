//! What the controller's cache keeps of a watch, and the type that says so. The cache holds a
//! slim copy ([`slim`]): no job list (its digest stays), no notes of announcements waiting in
//! the outbox, no managed fields, so memory does not grow with job lists or failure reasons.
//! Reconcile receives that copy as a [`CachedWatch`]; what it lacks is in the type, not in
//! comments: the write compares job lists by digest, and one that needs the notes reads the
//! whole watch first ([`CachedWatch::outbox_complete`]).

use std::sync::Arc;

use kube::ResourceExt;

use crate::crd::{SolutionVersionWatch, SolutionVersionWatchStatus};

/// Cuts a watch down to what the cache keeps.
pub fn slim(watch: &mut SolutionVersionWatch) {
    watch.managed_fields_mut().clear();
    if let Some(status) = watch.status.as_mut() {
        status.jobs = Vec::new();
        if let Some(ledger) = status.ledger.as_mut() {
            ledger.outbox.blank_notes();
        }
    }
}

/// The cache's slim copy of a watch, as reconcile receives it.
#[derive(Clone, Debug)]
pub struct CachedWatch(Arc<SolutionVersionWatch>);

impl CachedWatch {
    /// The copy the controller handed to reconcile (slimmed by the watch stream).
    pub fn from_cache(watch: Arc<SolutionVersionWatch>) -> Self {
        CachedWatch(watch)
    }

    /// Metadata and spec as cached, and the status but for what [`slim`] left out.
    pub fn watch(&self) -> &SolutionVersionWatch {
        &self.0
    }

    pub fn status(&self) -> Option<&SolutionVersionWatchStatus> {
        self.0.status.as_ref()
    }

    /// Whether every waiting announcement kept its note: publishing from this copy is then
    /// the same as from the stored object.
    pub fn outbox_complete(&self) -> bool {
        !self
            .status()
            .and_then(|s| s.ledger.as_ref())
            .is_some_and(|l| l.outbox.lacks_notes())
    }

    pub fn uid(&self) -> Option<String> {
        self.0.uid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        AnnouncementKind, EventLedger, JobSummary, PendingEvent, SolutionVersionWatchSpec,
        SolutionVersionWatchStatus,
    };

    #[test]
    fn the_cache_keeps_neither_job_list_nor_waiting_notes() {
        let mut w = SolutionVersionWatch::new(
            "w",
            SolutionVersionWatchSpec {
                max_jobs_in_status: 200,
                ..SolutionVersionWatchSpec::watching(
                    "arn:aws:personalize:us-east-1:123456789012:solution/s/v",
                )
            },
        );
        w.metadata.managed_fields = Some(vec![Default::default()]);
        let mut ledger = EventLedger::default();
        let pending = PendingEvent {
            kind: AnnouncementKind::Failed,
            subject: "arn".into(),
            job_name: "j".into(),
            note: "y".repeat(1024),
            duration_seconds: None,
            reason: None,
        };
        ledger.outbox.push(pending).unwrap();
        w.status = Some(SolutionVersionWatchStatus {
            jobs: vec![
                JobSummary {
                    failure_reason: Some("x".repeat(1024)),
                    ..Default::default()
                };
                200
            ],
            jobs_digest: Some("d".into()),
            ledger: Some(ledger),
            ..Default::default()
        });
        assert!(CachedWatch::from_cache(Arc::new(w.clone())).outbox_complete());
        slim(&mut w);
        let cached = CachedWatch::from_cache(Arc::new(w));
        let status = cached.status().unwrap();
        assert!(status.jobs.is_empty() && status.jobs_digest.as_deref() == Some("d"));
        let meta = &cached.watch().metadata;
        assert!(meta.managed_fields.as_ref().is_none_or(Vec::is_empty));
        assert!(!cached.outbox_complete(), "a write reads the whole watch");
        assert!(serde_json::to_vec(cached.watch()).unwrap().len() < 2048);
    }
}
