//! The I/O step after the decision: publish the Events it decided, then write the status.
//!
//! Events are idempotent (named by what they announce), so publishing comes first: a crash or a
//! failed write before the status records them only means the next reconcile decides them again
//! and finds them already there. Entries that could not be published stay in the outbox and
//! EventsPublished says why. The status is written as a JSON merge patch carrying the
//! resourceVersion it was computed from; on a 409 the object is read again and the decision,
//! from the listing in hand, is made again against it (no second listing).

use std::borrow::Cow;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rand::Rng;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::controller;
use crate::crd::{
    AnnouncementKind, PendingEvent, SolutionVersionWatch, SolutionVersionWatchStatus,
};
use crate::error::{Error, Result};
use crate::events::{Announcement, Published};
use crate::metrics::{WatchLabels, WatchView};
use crate::reasons::{ConditionStatus, ConditionType};
use crate::status::{self, Decision, Delivery, PollFailure};

use super::{Context, merge_patch};

pub const FIELD_MANAGER: &str = "personalize-watch";
/// Write conflicts retried within one reconcile (with a fresh copy each time) before the error
/// policy backs off.
const CONFLICT_RETRIES: u32 = 3;
const CONFLICT_PAUSE: Duration = Duration::from_millis(100);

/// What was written, for scheduling the next poll.
#[derive(Clone, Copy, Debug, Default)]
pub struct Persisted {
    /// Any job PENDING or IN PROGRESS.
    pub active: bool,
    /// Finished jobs waiting in the ledger for room in the outbox.
    pub deferred: usize,
    /// Events still in the outbox.
    pub pending: usize,
}

/// How a status write ended.
enum Written {
    Done,
    /// The watch changed since it was read.
    Conflict,
    /// The watch is gone.
    Gone,
}

pub async fn persist_and_publish(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    decide: &(dyn Fn(Option<&SolutionVersionWatchStatus>) -> Decision + Sync),
    failure: Option<&PollFailure>,
) -> Result<Persisted> {
    let mut current = Cow::Borrowed(watch);
    if controller::lacks_outbox_notes(watch) {
        // The cache left out the notes of waiting Events: publishing needs them.
        match read_again(ctx, watch).await? {
            Some(full) => current = Cow::Owned(full),
            None => return Ok(Persisted::default()),
        }
    }
    let mut conflicts = 0;
    loop {
        if !ctx.may_write() {
            debug!("not the leader any more: nothing written or published");
            return Ok(Persisted::default());
        }
        let (written, decision) = attempt(ctx, &current, decide, failure).await?;
        match written {
            Written::Done => return Ok(persisted(&decision)),
            Written::Gone => return Ok(Persisted::default()),
            Written::Conflict if conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                let pause = CONFLICT_PAUSE * 2u32.pow(conflicts);
                let pause = pause.mul_f64(rand::rng().random_range(0.5..=1.0));
                tokio::time::sleep(pause).await;
                match read_again(ctx, watch).await? {
                    Some(fresh) => current = Cow::Owned(fresh),
                    None => return Ok(Persisted::default()),
                }
            }
            Written::Conflict => return Err(Error::WriteConflict(conflicts + 1)),
        }
    }
}

/// One attempt against `current`: decide, publish, write; metrics follow a done write.
async fn attempt(
    ctx: &Context,
    current: &SolutionVersionWatch,
    decide: &(dyn Fn(Option<&SolutionVersionWatchStatus>) -> Decision + Sync),
    failure: Option<&PollFailure>,
) -> Result<(Written, Decision)> {
    let mut decision = decide(current.status.as_ref());
    if decision.omitted > 0 {
        debug!(
            jobs = decision.omitted,
            "the listing left out jobs seen before"
        );
    }
    let delivery = publish_outbox(ctx, current, &decision.status).await;
    let generation = current.metadata.generation.unwrap_or(0);
    let now = jiff::Timestamp::now();
    status::after_publishing(&mut decision.status, &delivery, generation, now);
    let listed_at = decision.status.last_sync_time.clone();
    if decision.listed {
        let heartbeat = ctx.settings.status_heartbeat;
        status::hold_quiet_listing(
            current.status.as_ref(),
            &mut decision.status,
            heartbeat,
            now,
        );
    }
    if let Some(failure) = failure {
        publish_poll_failure(ctx, current, &decision.status, failure).await;
    }
    let written = write_status(ctx, current, &decision.status).await?;
    if matches!(written, Written::Done) {
        ctx.metrics.listing_omitted(decision.omitted);
        let synced = listed_at.map(|t| t.0.as_millisecond() as f64 / 1000.0);
        record_metrics(ctx, current, &decision.status, synced);
    }
    Ok((written, decision))
}

fn persisted(decision: &Decision) -> Persisted {
    Persisted {
        active: status::wants_active_polling(&decision.status),
        deferred: decision.deferred,
        pending: decision
            .status
            .ledger
            .as_ref()
            .map_or(0, |l| l.outbox.len()),
    }
}

/// Publishes the outbox in order; the first refusal stops the rest (whatever refused one will
/// refuse the next), and they wait for the next reconcile.
async fn publish_outbox(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    status: &SolutionVersionWatchStatus,
) -> Delivery {
    let outbox = status.ledger.as_ref().map_or(&[][..], |l| &l.outbox[..]);
    let mut delivery = Delivery::default();
    for pending in outbox {
        let announcement = Announcement::of(pending);
        match ctx.events.publish(watch, &announcement).await {
            Ok(published) => {
                if published == Published::Created {
                    ctx.metrics.event_published(&announcement.reason);
                    observe_duration(ctx, pending);
                    info!(
                        reason = announcement.reason,
                        job = pending.job_name,
                        "published event"
                    );
                } else {
                    debug!(
                        reason = announcement.reason,
                        job = pending.job_name,
                        "event already published"
                    );
                }
                delivery.published += 1;
            }
            Err(e) => {
                let why = refusal(&e);
                ctx.metrics.event_refused(&refusal_reason(&e));
                warn!(
                    reason = announcement.reason,
                    job = pending.job_name,
                    error = why,
                    "could not publish the event; it stays pending"
                );
                delivery.error = Some(why);
                break;
            }
        }
    }
    delivery
}

/// A finished job's duration goes into the histogram when its Event is created: once per job,
/// across restarts and replicas (a later publish finds the Event there).
fn observe_duration(ctx: &Context, pending: &PendingEvent) {
    let outcome = match pending.kind {
        AnnouncementKind::Completed => "completed",
        AnnouncementKind::Failed => "failed",
        _ => return,
    };
    if let Some(seconds) = pending.duration_seconds {
        ctx.metrics.job_finished(outcome, seconds as f64);
    }
}

/// What the API server said when it refused an Event (its message, not the whole status).
fn refusal(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}

/// The API server's reason for refusing a call (Forbidden, Invalid, ...), or the client's.
fn refusal_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.reason.is_empty() => s.reason.clone(),
        kube::Error::Api(s) => format!("HTTP{}", s.code),
        _ => "Unreachable".into(),
    }
}

/// A failed poll is also an Event, once per change of reason in a failure episode.
async fn publish_poll_failure(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    next: &SolutionVersionWatchStatus,
    failure: &PollFailure,
) {
    let prev_reason = watch
        .status
        .as_ref()
        .and_then(|s| status::condition(s, ConditionType::Ready))
        .map(|c| c.reason.as_str());
    let Some(ready) = status::condition(next, ConditionType::Ready) else {
        return;
    };
    if prev_reason == Some(failure.reason.as_str())
        || ready.status != ConditionStatus::False.as_str()
    {
        return;
    }
    let episode = ready.last_transition_time.0.to_string();
    let announcement = Announcement::poll_failed(failure.reason, &failure.message, &episode);
    match ctx.events.publish(watch, &announcement).await {
        Ok(Published::Created) => ctx.metrics.event_published(failure.reason.as_str()),
        Ok(Published::AlreadyThere) => {}
        Err(e) => warn!(error = %e, "could not publish the poll failure event"),
    }
}

/// The merge patch from `base` to `status`. The job list goes in only when its digest changed:
/// the cache's copy of `base` does not hold it.
pub fn status_patch(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
) -> serde_json::Value {
    let mut old = json!(base);
    let mut new = json!(status);
    let same_jobs = base.and_then(|b| b.jobs_digest.as_ref()) == status.jobs_digest.as_ref();
    if let (Some(old), Some(new)) = (old.as_object_mut(), new.as_object_mut()) {
        if same_jobs {
            old.remove("jobs");
            new.remove("jobs");
        } else {
            // Changed: sent whole, or removed when there are none now.
            old.insert("jobs".into(), serde_json::Value::Null);
        }
    }
    merge_patch::diff(&old, &new)
}

/// Whether `status` holds nothing `base` does not: equal but for the job list, whose digest
/// is the same (the cache's copy of `base` has no job list).
fn unchanged(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
) -> bool {
    let Some(base) = base else {
        return false;
    };
    // Destructured so that a new field cannot be left out of the comparison.
    let SolutionVersionWatchStatus {
        observed_generation,
        conditions,
        counts,
        latest_job,
        jobs: _,
        jobs_truncated,
        jobs_digest,
        last_sync_time,
        stale,
        ledger,
    } = status;
    jobs_digest.is_some()
        && *jobs_digest == base.jobs_digest
        && *observed_generation == base.observed_generation
        && *conditions == base.conditions
        && *counts == base.counts
        && *latest_job == base.latest_job
        && *jobs_truncated == base.jobs_truncated
        && *last_sync_time == base.last_sync_time
        && *stale == base.stale
        && *ledger == base.ledger
}

/// Writes what changed since `base` as a merge patch, on condition that the stored object is
/// still `base` (its resourceVersion). Nothing to write is a write done.
async fn write_status(
    ctx: &Context,
    base: &SolutionVersionWatch,
    status: &SolutionVersionWatchStatus,
) -> Result<Written> {
    // The common case, a quiet poll: nothing to write, found without serializing anything.
    if unchanged(base.status.as_ref(), status) {
        return Ok(Written::Done);
    }
    let diff = status_patch(base.status.as_ref(), status);
    if merge_patch::is_empty(&diff) {
        return Ok(Written::Done);
    }
    let api: Api<SolutionVersionWatch> =
        Api::namespaced(ctx.client.clone(), &base.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": { "resourceVersion": base.resource_version() },
        "status": diff,
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api
        .patch_status(&base.name_any(), &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.status_written();
            Ok(Written::Done)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            ctx.metrics.status_conflict();
            debug!("status write conflict: reading the watch again");
            Ok(Written::Conflict)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Written::Gone),
        Err(e) => Err(e.into()),
    }
}

/// The watch as stored now; None when it is gone or was replaced by another of its name.
async fn read_again(
    ctx: &Context,
    watch: &SolutionVersionWatch,
) -> Result<Option<SolutionVersionWatch>> {
    let api: Api<SolutionVersionWatch> =
        Api::namespaced(ctx.client.clone(), &watch.namespace().unwrap_or_default());
    let fresh = api.get_opt(&watch.name_any()).await?;
    Ok(fresh.filter(|f| f.uid() == watch.uid()))
}

/// After a successful write: the watch's series as written, and when it was last listed (also
/// when the listing was too quiet to write).
fn record_metrics(
    ctx: &Context,
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
    ctx.metrics.record_watch(
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
            expect_new_job_within: super::spec::expectations(&watch.spec)
                .ok()
                .and_then(|e| e.new_job_within)
                .map(|d| d.as_secs_f64()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::JobSummary;

    fn with_jobs(names: &[&str]) -> SolutionVersionWatchStatus {
        let jobs: Vec<JobSummary> = names
            .iter()
            .map(|n| JobSummary {
                name: n.to_string(),
                ..Default::default()
            })
            .collect();
        SolutionVersionWatchStatus {
            jobs_digest: Some(status::jobs::digest(&jobs, false)),
            jobs,
            ..Default::default()
        }
    }

    #[test]
    fn the_job_list_is_written_only_when_its_digest_changed() {
        let stored = with_jobs(&["a", "b"]);
        // The cache's copy: no list, the digest.
        let cached = SolutionVersionWatchStatus {
            jobs: Vec::new(),
            ..stored.clone()
        };
        let same = with_jobs(&["a", "b"]);
        assert!(merge_patch::is_empty(&status_patch(Some(&cached), &same)));
        let changed = with_jobs(&["c"]);
        let patch = status_patch(Some(&cached), &changed);
        assert_eq!(
            patch["jobs"],
            json!([{"name": "c", "arn": "", "status": ""}])
        );
        let none = with_jobs(&[]);
        assert_eq!(
            status_patch(Some(&cached), &none)["jobs"],
            serde_json::Value::Null
        );
        assert!(
            status_patch(Some(&stored), &none)
                .as_object()
                .unwrap()
                .contains_key("jobs"),
            "from a full copy too"
        );
    }
}
