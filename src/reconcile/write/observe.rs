//! What a done status write tells the metrics: the watch's series as written. Needs only the
//! metrics registry; nothing here does I/O.

use kube::ResourceExt;

use crate::crd::{SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::metrics::{Metrics, WatchLabels, WatchView};
use crate::reconcile::spec;

/// The watch's series as written, and when it was last listed (`listed_at`: also when the
/// listing was too quiet to write).
pub fn record_written(
    metrics: &Metrics,
    watch: &SolutionVersionWatch,
    status: &SolutionVersionWatchStatus,
    listed_at: Option<f64>,
) {
    let last_sync = listed_at.or_else(|| {
        status
            .last_sync_time
            .as_ref()
            .map(|t| t.0.as_millisecond() as f64 / 1000.0)
    });
    let key = WatchLabels {
        namespace: watch.namespace().unwrap_or_default(),
        name: watch.name_any(),
    };
    let uid = watch.uid().unwrap_or_default();
    metrics.record_watch(
        &key,
        &WatchView {
            uid: &uid,
            counts: status.counts.as_ref(),
            last_sync,
            suspended: watch.spec.suspend,
            pending_events: status.ledger.as_ref().map_or(0, |l| l.outbox.len()),
            newest_job: status
                .latest_job
                .as_ref()
                .and_then(|j| j.creation_time.as_ref())
                .map(|t| t.0.as_second() as f64),
            expect_new_job_within: spec::expectations(&watch.spec)
                .ok()
                .and_then(|e| e.new_job_within)
                .map(|d| d.as_secs_f64()),
        },
    );
}
