//! The I/O step after the decision: write the status and publish the Events it decided.
//!
//! Job Events go through the status outbox: the decision is persisted first, then published,
//! then the outbox is cleared, so a crash in between leaves a record that the next reconcile
//! checks against the Events already in the API.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::crd::{PendingEvent, SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::error::Result;
use crate::events;
use crate::reasons::ConditionType;
use crate::status::{self, Decision, PollFailure};

use super::Context;

pub const FIELD_MANAGER: &str = "personalize-watch";

pub async fn persist_and_publish(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    decision: Decision,
    failure: Option<&PollFailure>,
) -> Result<()> {
    let prev = watch.status.as_ref();
    // Metrics first, so whoever sees the new status also sees the metrics behind it.
    record_metrics(ctx, watch, &decision.status);
    let mut status = decision.status;
    let outbox = status
        .ledger
        .as_ref()
        .map(|l| l.outbox.clone())
        .unwrap_or_default();
    let mut resource_version = watch.resource_version();
    if !outbox.is_empty() {
        if Some(&status) != prev {
            resource_version = write_status(ctx, watch, resource_version, &status).await?;
        }
        publish_outbox(ctx, watch, &outbox).await?;
        if let Some(ledger) = status.ledger.as_mut() {
            ledger.outbox.clear();
        }
    }
    if Some(&status) != prev || !outbox.is_empty() {
        write_status(ctx, watch, resource_version, &status).await?;
    }
    if let Some(summary) = &decision.summary {
        publish_summary(ctx, watch, summary).await;
    }
    if let Some(failure) = failure {
        publish_poll_failure(ctx, watch, failure).await;
    }
    Ok(())
}

fn record_metrics(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    status: &SolutionVersionWatchStatus,
) {
    let namespace = watch.namespace().unwrap_or_default();
    let name = watch.name_any();
    if let Some(counts) = &status.counts {
        ctx.metrics.set_jobs(&namespace, &name, counts);
    }
    if let Some(t) = &status.last_sync_time {
        ctx.metrics
            .set_last_sync(&namespace, &name, t.0.as_millisecond() as f64 / 1000.0);
    }
}

/// Writes the status by server-side apply. The resourceVersion it was computed from goes along,
/// so a status computed from a stale copy is refused (409) instead of overwriting newer data.
async fn write_status(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    resource_version: Option<String>,
    status: &SolutionVersionWatchStatus,
) -> Result<Option<String>> {
    let namespace = watch.namespace().unwrap_or_default();
    let api: Api<SolutionVersionWatch> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut metadata = json!({ "name": watch.name_any() });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    let patch = json!({
        "apiVersion": SolutionVersionWatch::api_version(&()),
        "kind": SolutionVersionWatch::kind(&()),
        "metadata": metadata,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let updated = api
        .patch_status(&watch.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    ctx.metrics.status_written();
    Ok(updated.resource_version())
}

/// Publishes the outbox. Entries inherited from an earlier attempt (a crash, a lost leadership,
/// a failed call) are checked against the Events already in the API first.
async fn publish_outbox(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    outbox: &[PendingEvent],
) -> Result<()> {
    let inherited = watch
        .status
        .as_ref()
        .and_then(|s| s.ledger.as_ref())
        .map_or(0, |l| l.outbox.len());
    for (i, pending) in outbox.iter().enumerate() {
        if i < inherited && events::already_published(&ctx.client, watch, pending).await? {
            debug!(
                job = pending.job_name,
                "event already published before a restart"
            );
            continue;
        }
        events::publish(&ctx.recorder, watch, &events::to_event(watch, pending)).await?;
        ctx.metrics.event_published(events::reason(pending.kind));
        info!(
            reason = events::reason(pending.kind),
            job = pending.job_name,
            "published event"
        );
    }
    Ok(())
}

/// The first listing's summary: informational, after the write, not through the outbox.
async fn publish_summary(ctx: &Context, watch: &SolutionVersionWatch, summary: &PendingEvent) {
    let reason = events::reason(summary.kind);
    match events::publish(&ctx.recorder, watch, &events::to_event(watch, summary)).await {
        Ok(()) => {
            ctx.metrics.event_published(reason);
            info!(reason, "published event");
        }
        Err(e) => warn!(error = %e, "could not publish the summary event"),
    }
}

/// A failed poll is also an Event, once per change of reason (repeats fold into a series).
async fn publish_poll_failure(ctx: &Context, watch: &SolutionVersionWatch, failure: &PollFailure) {
    let prev_reason = watch
        .status
        .as_ref()
        .and_then(|s| status::condition(s, ConditionType::Ready))
        .map(|c| c.reason.as_str());
    if prev_reason == Some(failure.reason.as_str()) {
        return;
    }
    let event = events::poll_failed(failure.reason, &failure.message);
    match events::publish(&ctx.recorder, watch, &event).await {
        Ok(()) => ctx.metrics.event_published(failure.reason.as_str()),
        Err(e) => warn!(error = %e, "could not publish the poll failure event"),
    }
}
