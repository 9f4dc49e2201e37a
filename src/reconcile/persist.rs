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

use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::controller;
use crate::crd::{
    AnnouncementKind, JobSummary, PendingEvent, SolutionVersionWatch, SolutionVersionWatchStatus,
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
/// The media type of an answer that is the object's metadata only (what kube asks for in
/// `Api::patch_metadata`).
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

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
    let written = write_status(ctx, current, &mut decision.status).await?;
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

/// A status write: a merge patch with the resourceVersion it was computed from.
#[derive(Serialize)]
struct StatusWrite<'a> {
    metadata: Precondition<'a>,
    status: StatusPatch<'a>,
}

#[derive(Serialize)]
struct Precondition<'a> {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<&'a str>,
}

/// The merge patch from one status to the next. The job list is serialized straight from the
/// status, never as a JSON value: at 200 summaries with 1 KiB failure reasons a value of it is
/// several times the list, and a write holds what it sends while the API server answers.
#[derive(Serialize, Debug)]
pub struct StatusPatch<'a> {
    /// Every field but the job list: what changed, null for what went away.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// None: the list is unchanged (left out); Some(None): removed; Some(Some): the new list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Option<&'a [JobSummary]>>,
}

impl StatusPatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.jobs.is_none()
    }
}

/// The merge patch from `base` to `status`, whose job list `jobs` was taken out of it: the other
/// fields are compared as JSON values, the list (most of the status) never becomes one. The list
/// goes in only when its digest changed: the cache's copy of `base` does not hold it.
pub fn status_patch<'a>(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
    jobs: &'a [JobSummary],
) -> StatusPatch<'a> {
    let without_jobs = |s: serde_json::Value| match s {
        serde_json::Value::Object(mut fields) => {
            fields.remove("jobs");
            serde_json::Value::Object(fields)
        }
        other => other,
    };
    let fields = match merge_patch::diff(&without_jobs(json!(base)), &without_jobs(json!(status))) {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let same_jobs = base.and_then(|b| b.jobs_digest.as_ref()) == status.jobs_digest.as_ref();
    let jobs = if same_jobs {
        None
    } else if jobs.is_empty() {
        Some(None)
    } else {
        Some(Some(jobs))
    };
    StatusPatch { fields, jobs }
}

/// Whether `status` holds nothing `base` does not: equal but for the job list, whose digest
/// is the same (the cache's copy of `base` has no job list).
fn unchanged(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
) -> bool {
    base.is_some_and(|base| {
        status.jobs_digest.is_some()
            && status.last_sync_time == base.last_sync_time
            && status::equal_but_for_sync(base, status)
    })
}

/// Writes what changed since `base` as a merge patch, on condition that the stored object is
/// still `base` (its resourceVersion). Nothing to write is a write done. The job list leaves
/// `status` for the request body (nothing after the write reads it): a reconcile waiting for the
/// API server holds one copy of it, not two.
async fn write_status(
    ctx: &Context,
    base: &SolutionVersionWatch,
    status: &mut SolutionVersionWatchStatus,
) -> Result<Written> {
    // The common case, a quiet poll: nothing to write, found without serializing anything.
    if unchanged(base.status.as_ref(), status) {
        return Ok(Written::Done);
    }
    let jobs = std::mem::take(&mut status.jobs);
    let patch = status_patch(base.status.as_ref(), status, &jobs);
    if patch.is_empty() {
        return Ok(Written::Done);
    }
    let write = StatusWrite {
        metadata: Precondition {
            resource_version: base.metadata.resource_version.as_deref(),
        },
        status: patch,
    };
    let request = status_write_request(base, &write)?;
    drop(write);
    drop(jobs);
    match send_discarding_answer(&ctx.client, request).await {
        Ok(()) => {
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

/// The PATCH of `base`'s status subresource, its body serialized once. The answer asked for is
/// the object's metadata only: by default it is the whole object, job list and all, which the
/// API server would encode and send and the client read for nothing (the watch stream brings
/// the object to the cache). Errors still come back as the API server's Status.
fn status_write_request(
    base: &SolutionVersionWatch,
    write: &StatusWrite<'_>,
) -> Result<http::Request<Vec<u8>>> {
    let namespace = base.namespace().unwrap_or_default();
    let url = SolutionVersionWatch::url_path(&(), Some(&namespace));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut request = kube::core::Request::new(url)
        .patch_subresource("status", &base.name_any(), &params, &Patch::Merge(write))
        .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(METADATA_ONLY),
    );
    // Serializing grew the body by doubling; the write holds it until the API server answers.
    request.body_mut().shrink_to_fit();
    Ok(request)
}

/// Sends `request` and reads the answer without keeping it (nothing in it is needed). Errors
/// come back as the API server's Status.
async fn send_discarding_answer(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> kube::Result<()> {
    let mut answer = client.request_stream(request).await?;
    // Read to the end so the connection can carry the next request.
    futures::io::copy_buf(&mut answer, &mut futures::io::sink())
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(())
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
    use serde_json::Value;

    fn with_jobs(names: &[&str]) -> SolutionVersionWatchStatus {
        let jobs: Vec<JobSummary> = names
            .iter()
            .map(|n| JobSummary {
                name: n.to_string(),
                ..Default::default()
            })
            .collect();
        SolutionVersionWatchStatus {
            jobs_digest: Some(status::jobs::digest_of(&jobs, false)),
            jobs,
            ..Default::default()
        }
    }

    /// The patch as the API server receives it.
    fn sent(base: &SolutionVersionWatchStatus, next: &SolutionVersionWatchStatus) -> Value {
        serde_json::to_value(patch(base, next)).unwrap()
    }

    /// The patch as `write_status` makes it: the job list taken out of `next` first.
    fn patch<'a>(
        base: &SolutionVersionWatchStatus,
        next: &'a SolutionVersionWatchStatus,
    ) -> StatusPatch<'a> {
        let fields = SolutionVersionWatchStatus {
            jobs: Vec::new(),
            ..next.clone()
        };
        status_patch(Some(base), &fields, &next.jobs)
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
        assert!(patch(&cached, &same).is_empty());
        assert_eq!(sent(&cached, &same), json!({}));
        let changed = with_jobs(&["c"]);
        let patch = sent(&cached, &changed);
        assert_eq!(
            patch["jobs"],
            json!([{"name": "c", "arn": "", "status": ""}])
        );
        assert_eq!(patch["jobsDigest"], json!(changed.jobs_digest));
        let none = with_jobs(&[]);
        let removed = sent(&cached, &none);
        assert!(removed.as_object().unwrap().contains_key("jobs"));
        assert_eq!(removed["jobs"], Value::Null);
        assert!(
            sent(&stored, &none)
                .as_object()
                .unwrap()
                .contains_key("jobs"),
            "from a full copy too"
        );
        assert!(
            !sent(&stored, &stored)
                .as_object()
                .unwrap()
                .contains_key("jobs"),
            "a full copy with the same list sends none"
        );
    }
}
