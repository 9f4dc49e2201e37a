//! Announcements of episodes rather than jobs: a watch overdue for a new job, and a failing poll.
//! Each is announced once per episode. What names an episode is what every writer sees alike in
//! status (when the silence began; the last good listing before the failures), and an announced
//! overdue episode is recorded as data in the ledger, never read back from a condition's wording.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{AnnouncementKind, EventLedger, PendingEvent};
use crate::reasons::Reason;

/// Announces the overdue episode whose silence began at `since`, unless the ledger records it
/// as announced; records it once it is in the outbox (a full outbox leaves it to the next
/// decision). A status written before the ledger kept this record announces its episode once
/// more; the Event's name is the same, so within the Event TTL that is no second Event.
pub fn announce_overdue(ledger: &mut EventLedger, since: Timestamp, note: &str) {
    let since_time = Time(since);
    if ledger.overdue_announced.as_ref() == Some(&since_time) {
        return;
    }
    let pending = PendingEvent {
        kind: AnnouncementKind::Overdue,
        subject: format!("overdue:{since}"),
        job_name: String::new(),
        note: note.to_string(),
        duration_seconds: None,
        reason: None,
    };
    if ledger.outbox.push(pending).is_ok() {
        ledger.overdue_announced = Some(since_time);
    }
}

/// A failure episode: the polls that failed since the last good listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureEpisode {
    /// After the listing at this time (status.lastSyncTime, which every writer reads alike).
    After(Timestamp),
    /// Before any listing.
    BeforeAnyListing,
}

/// A failed poll whose reason differs from the one Ready gave before: one announcement, named
/// by the episode and the reason (never by a writer's clock: two writers deciding the same
/// failure name one Event). A full outbox drops it: the Ready condition still says what failed.
pub fn announce_poll_failure(
    ledger: &mut EventLedger,
    reason: Reason,
    message: &str,
    episode: FailureEpisode,
) {
    let subject = match episode {
        FailureEpisode::After(listed) => format!("poll:after:{listed}"),
        FailureEpisode::BeforeAnyListing => "poll:before-any-listing".to_string(),
    };
    let pending = PendingEvent {
        kind: AnnouncementKind::PollFailed,
        subject,
        job_name: String::new(),
        note: message.to_string(),
        duration_seconds: None,
        reason: Some(reason.as_str().to_string()),
    };
    if ledger.outbox.push(pending).is_err() {
        tracing::debug!(
            reason = reason.as_str(),
            "outbox full: poll failure not announced"
        );
    }
}
