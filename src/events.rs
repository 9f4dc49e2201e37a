//! Kubernetes Events through kube's Recorder.
//!
//! Each job's Event carries the job as its secondary reference, so the Recorder does not fold two
//! jobs' Events into one series. Events decided by the status computation wait in the status
//! outbox until published; an outbox inherited from an earlier attempt (a crash, a lost
//! leadership, a failed API call) is checked against the Events already in the API first.

use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use kube::api::{Api, ListParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use crate::crd::{AnnouncementKind, PendingEvent, SolutionVersionWatch};
use crate::reasons::{Reason, event};
use crate::status::ledger::MAX_NOTE_BYTES;
use crate::text::truncate_utf8;

/// Kind used in the secondary reference that names a job (not a Kubernetes object).
pub const JOB_KIND: &str = "BatchInferenceJob";
pub const JOB_API_VERSION: &str = "personalize.amazonaws.com/v1";

pub fn reason(kind: AnnouncementKind) -> &'static str {
    match kind {
        AnnouncementKind::Failed => event::JOB_FAILED,
        AnnouncementKind::Completed => event::JOB_COMPLETED,
        AnnouncementKind::Discovered => event::JOBS_DISCOVERED,
    }
}

fn job_reference(watch: &SolutionVersionWatch, job_name: &str) -> Option<ObjectReference> {
    (!job_name.is_empty()).then(|| ObjectReference {
        api_version: Some(JOB_API_VERSION.into()),
        kind: Some(JOB_KIND.into()),
        name: Some(job_name.to_string()),
        namespace: watch.namespace(),
        ..Default::default()
    })
}

pub fn to_event(watch: &SolutionVersionWatch, pending: &PendingEvent) -> Event {
    Event {
        type_: match pending.kind {
            AnnouncementKind::Failed => EventType::Warning,
            _ => EventType::Normal,
        },
        reason: reason(pending.kind).into(),
        note: Some(truncate_utf8(&pending.note, MAX_NOTE_BYTES).to_string()),
        action: "Poll".into(),
        secondary: job_reference(watch, &pending.job_name),
    }
}

/// Publishes one Event about the watch.
pub async fn publish(
    recorder: &Recorder,
    watch: &SolutionVersionWatch,
    event: &Event,
) -> Result<(), kube::Error> {
    recorder.publish(event, &watch.object_ref(&())).await
}

/// Whether an Event for this outbox entry is already in the API (published before a crash).
pub async fn already_published(
    client: &Client,
    watch: &SolutionVersionWatch,
    pending: &PendingEvent,
) -> Result<bool, kube::Error> {
    let (Some(namespace), Some(uid)) = (watch.namespace(), watch.uid()) else {
        return Ok(false);
    };
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("involvedObject.uid={uid},reason={}", reason(pending.kind));
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await?;
    Ok(list.items.iter().any(|e| {
        let related = e
            .related
            .as_ref()
            .and_then(|r| r.name.as_deref())
            .unwrap_or("");
        related == pending.job_name
    }))
}

/// A Warning about a failing poll (not exactly-once: repeats fold into a series).
pub fn poll_failed(reason: Reason, message: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.as_str().into(),
        note: Some(truncate_utf8(message, MAX_NOTE_BYTES).to_string()),
        action: "Poll".into(),
        secondary: None,
    }
}
