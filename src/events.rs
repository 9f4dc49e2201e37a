//! Kubernetes Events, created through events.k8s.io/v1 with names derived from what they
//! announce: the watch's UID, the kind and the job. Publishing the same Event twice (a retry, a
//! restart, a second writer) finds it already there (409 AlreadyExists) and counts as done, so
//! no LIST-then-create is needed and no series ever folds two jobs together.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{AnnouncementKind, PendingEvent, SolutionVersionWatch};
use crate::reasons::{Reason, event};
use crate::status::ledger::MAX_NOTE_BYTES;
use crate::text::truncate_utf8;

/// Kind used in the secondary reference that names a job (not a Kubernetes object).
pub const JOB_KIND: &str = "BatchInferenceJob";
pub const JOB_API_VERSION: &str = "personalize.amazonaws.com/v1";
pub const REPORTING_CONTROLLER: &str = "personalize-watch.dev/operator";
/// Object names are DNS subdomains of at most 253 characters.
const MAX_NAME: usize = 253;
/// Hex characters of the digest in an Event's name (128 bits).
const DIGEST_CHARS: usize = 32;
/// The API server refuses reportingInstance over 128 characters.
const MAX_INSTANCE: usize = 128;

/// The reason of a job Event.
pub fn reason(kind: AnnouncementKind) -> &'static str {
    match kind {
        AnnouncementKind::Failed => event::JOB_FAILED,
        AnnouncementKind::Completed => event::JOB_COMPLETED,
        AnnouncementKind::Discovered => event::JOBS_DISCOVERED,
        AnnouncementKind::Stuck => event::JOB_STUCK,
        AnnouncementKind::Overdue => event::NO_RECENT_JOB,
    }
}

/// Whether an Event is a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// An Event to create, before it is tied to the watch.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    /// What, with the watch's UID and the reason, names the Event.
    pub id: String,
    pub severity: Severity,
    pub reason: String,
    pub note: String,
    /// The job's name, as the secondary reference.
    pub job_name: Option<String>,
}

impl Announcement {
    pub fn of(pending: &PendingEvent) -> Self {
        Announcement {
            id: pending.id.clone(),
            severity: match pending.kind {
                AnnouncementKind::Failed | AnnouncementKind::Stuck | AnnouncementKind::Overdue => {
                    Severity::Warning
                }
                AnnouncementKind::Completed | AnnouncementKind::Discovered => Severity::Normal,
            },
            reason: reason(pending.kind).to_string(),
            note: pending.note.clone(),
            job_name: (!pending.job_name.is_empty()).then(|| pending.job_name.clone()),
        }
    }

    /// A failed poll, once per reason and episode (`episode`: when Ready turned False).
    pub fn poll_failed(reason: Reason, message: &str, episode: &str) -> Self {
        Announcement {
            id: format!("poll:{episode}"),
            severity: Severity::Warning,
            reason: reason.as_str().to_string(),
            note: message.to_string(),
            job_name: None,
        }
    }
}

/// The Event's name: a prefix of the watch's name (for people), then a digest of the watch's
/// UID, the reason and the id. Always a valid name, whatever the watch's name length.
pub fn event_name(watch_name: &str, uid: &str, reason: &str, id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(uid)
        .chain_update([0])
        .chain_update(reason)
        .chain_update([0])
        .chain_update(id)
        .finalize();
    let hex: String = digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(DIGEST_CHARS)
        .collect();
    let room = MAX_NAME - DIGEST_CHARS - 1;
    // A name's labels end in an alphanumeric character: trim what the cut may leave.
    let prefix = truncate_utf8(watch_name, room).trim_end_matches(['-', '.']);
    if prefix.is_empty() {
        hex
    } else {
        format!("{prefix}.{hex}")
    }
}

/// What happened to a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Created,
    /// Created before (by an earlier attempt or another replica).
    AlreadyThere,
}

/// Creates Events for one operator instance.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
}

impl Publisher {
    pub fn new(client: Client, instance: &str) -> Self {
        Publisher {
            client,
            instance: truncate_utf8(instance, MAX_INSTANCE).to_string(),
        }
    }

    /// Creates the Event about `watch`, unless it exists already.
    pub async fn publish(
        &self,
        watch: &SolutionVersionWatch,
        announcement: &Announcement,
    ) -> Result<Published, kube::Error> {
        let event = self.event(watch, announcement);
        let namespace = watch.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => Ok(Published::Created),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                Ok(Published::AlreadyThere)
            }
            Err(e) => Err(e),
        }
    }

    fn event(&self, watch: &SolutionVersionWatch, a: &Announcement) -> Event {
        let uid = watch.uid().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(&watch.name_any(), &uid, &a.reason, &a.id)),
                namespace: watch.namespace(),
                ..Default::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            action: Some("Poll".into()),
            reason: Some(a.reason.clone()),
            note: Some(truncate_utf8(&a.note, MAX_NOTE_BYTES).to_string()),
            type_: Some(
                match a.severity {
                    Severity::Normal => "Normal",
                    Severity::Warning => "Warning",
                }
                .into(),
            ),
            regarding: Some(watch.object_ref(&())),
            related: a.job_name.as_ref().map(|name| ObjectReference {
                api_version: Some(JOB_API_VERSION.into()),
                kind: Some(JOB_KIND.into()),
                name: Some(name.clone()),
                namespace: watch.namespace(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_distinct_whatever_the_watch_name() {
        let long = "a".repeat(253);
        let dashed = format!("{}-b", "a".repeat(219));
        for watch in ["movie-recs", long.as_str(), dashed.as_str(), "x.y"] {
            let name = event_name(watch, "uid-1", "BatchInferenceJobFailed", "arn:job-1");
            assert!(name.len() <= 253, "{}", name.len());
            assert!(
                name.split('.').all(|label| {
                    !label.is_empty()
                        && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && label.ends_with(|c: char| c.is_ascii_alphanumeric())
                        && label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                }),
                "{name}"
            );
        }
        let a = event_name("w", "uid-1", "BatchInferenceJobFailed", "arn:job-1");
        assert_eq!(
            a,
            event_name("w", "uid-1", "BatchInferenceJobFailed", "arn:job-1")
        );
        assert_ne!(
            a,
            event_name("w", "uid-2", "BatchInferenceJobFailed", "arn:job-1")
        );
        assert_ne!(
            a,
            event_name("w", "uid-1", "BatchInferenceJobCompleted", "arn:job-1")
        );
        assert_ne!(
            a,
            event_name("w", "uid-1", "BatchInferenceJobFailed", "arn:job-2")
        );
    }
}
