//! What an Event looks like: the [`Announcement`] an outbox entry becomes, its reason and
//! severity, and its name, derived from what it announces (the watch's UID, the reason and the
//! subject) so that publishing it twice finds it there.

use sha2::{Digest, Sha256};

use crate::crd::{AnnouncementKind, PendingEvent};
use crate::reasons::{Reason, event};
use crate::text::truncate_utf8;

/// Object names are DNS subdomains of at most 253 characters.
const MAX_NAME: usize = 253;
/// Hex characters of the digest in an Event's name (128 bits).
const DIGEST_CHARS: usize = 32;

/// Whether an Event is a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// An Event to create, before it is tied to the watch.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    /// What, with the watch's UID and the reason, names the Event.
    pub subject: String,
    pub severity: Severity,
    pub reason: &'static str,
    pub note: String,
    /// The job's name, as the secondary reference.
    pub job_name: Option<String>,
}

impl Announcement {
    pub fn of(pending: &PendingEvent) -> Self {
        Announcement {
            subject: pending.subject.clone(),
            severity: match pending.kind {
                AnnouncementKind::Failed
                | AnnouncementKind::Stuck
                | AnnouncementKind::Overdue
                | AnnouncementKind::PollFailed => Severity::Warning,
                AnnouncementKind::Completed | AnnouncementKind::Discovered => Severity::Normal,
            },
            reason: reason(pending),
            note: pending.note.clone(),
            job_name: (!pending.job_name.is_empty()).then(|| pending.job_name.clone()),
        }
    }
}

/// The reason of an announcement's Event: by its kind; a poll failure's is the failure's reason
/// (one of [`Reason::ALL`]; anything else, as a hand-edited status may hold, is `PollFailed`).
pub fn reason(pending: &PendingEvent) -> &'static str {
    match pending.kind {
        AnnouncementKind::Failed => event::JOB_FAILED,
        AnnouncementKind::Completed => event::JOB_COMPLETED,
        AnnouncementKind::Discovered => event::JOBS_DISCOVERED,
        AnnouncementKind::Stuck => event::JOB_STUCK,
        AnnouncementKind::Overdue => event::NO_RECENT_JOB,
        AnnouncementKind::PollFailed => Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .find(|r| Some(*r) == pending.reason.as_deref())
            .unwrap_or(event::POLL_FAILED),
    }
}

/// The Event's name: a prefix of the watch's name (for people), then a digest of the watch's
/// UID, the reason and the subject. Always a valid name, whatever the watch's name length.
pub fn event_name(watch_name: &str, uid: &str, reason: &str, subject: &str) -> String {
    let digest = Sha256::new()
        .chain_update(uid)
        .chain_update([0])
        .chain_update(reason)
        .chain_update([0])
        .chain_update(subject)
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

    #[test]
    fn a_poll_failure_takes_its_reason_and_a_hostile_one_a_fixed_reason() {
        let mut pending = PendingEvent {
            kind: AnnouncementKind::PollFailed,
            subject: "poll:2026-01-01T00:00:00Z".into(),
            job_name: String::new(),
            note: "n".into(),
            duration_seconds: None,
            reason: Some(Reason::AccessDenied.as_str().into()),
        };
        let a = Announcement::of(&pending);
        assert_eq!(a.reason, "AccessDenied");
        assert_eq!(a.severity, Severity::Warning);
        pending.reason = Some("x".repeat(300));
        assert_eq!(Announcement::of(&pending).reason, event::POLL_FAILED);
    }
}
