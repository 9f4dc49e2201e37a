//! What each announcement says: the Events the ledger ([`super::ledger`]) decides, built from
//! the job or listing they are about. Their subjects name only what every writer sees alike, so
//! two writers deciding the same announcement name the same Event.

use jiff::SignedDuration;

use crate::crd::{AnnouncementKind, ListingSource, PendingEvent};
use crate::personalize::ListedJob;
use crate::status::jobs::{JobState, describe_counts};
use crate::status::whole_seconds;
use crate::text::truncate_utf8;

use super::ledger::{Input, MAX_NOTE_BYTES, job_key};

/// The Event for a job that has not finished in time.
pub(super) fn stuck_announcement(
    job: &ListedJob,
    age: SignedDuration,
    stuck_after: SignedDuration,
) -> PendingEvent {
    let created = job
        .created
        .map(whole_seconds)
        .map_or_else(String::new, |t| format!(" (created {t})"));
    let note = format!(
        "Batch inference job {} has been {} for {}{created}, longer than spec.stuckAfter {}",
        job.name,
        job.status,
        human_duration(age),
        human_duration(stuck_after),
    );
    PendingEvent {
        kind: AnnouncementKind::Stuck,
        subject: job_key(job).unwrap_or_default(),
        job_name: job.name.clone(),
        note: truncate_utf8(&note, MAX_NOTE_BYTES).to_string(),
        duration_seconds: None,
        reason: None,
    }
}

pub use personalize_watch_api::describe::human_duration;

/// The baseline's summary Event, exactly once. Its id names only what every writer sees alike
/// (the source), never a writer's clock: two writers that both take the first listing publish
/// one summary.
pub(super) fn discovered(previous: Option<&ListingSource>, listed: &Input<'_>) -> PendingEvent {
    let from = previous.map_or_else(String::new, |s| format!("{}:{}", s.region, s.endpoint));
    PendingEvent {
        kind: AnnouncementKind::Discovered,
        subject: format!(
            "baseline:{from}->{}:{}",
            listed.source.region, listed.source.endpoint
        ),
        job_name: String::new(),
        note: format!(
            "First listing found {}: jobs that had already finished are not announced one by one",
            describe_counts(listed.counts)
        ),
        duration_seconds: None,
        reason: None,
    }
}

/// The summary of a change of source: the finished jobs it found that the ledger never saw. Its id
/// names the change and what it found, which every writer sees alike.
pub(super) fn source_changed(
    previous: Option<&ListingSource>,
    listed: &Input<'_>,
    never_seen: usize,
) -> PendingEvent {
    let from = previous.map_or_else(String::new, |s| format!("{}:{}", s.region, s.endpoint));
    let to = format!("{}:{}", listed.source.region, listed.source.endpoint);
    PendingEvent {
        kind: AnnouncementKind::Discovered,
        subject: format!("baseline:{from}->{to}:{never_seen}"),
        job_name: String::new(),
        note: format!(
            "Listing from {to} (before: {from}) found {never_seen} finished job(s) not seen before: \
             they are not announced one by one; jobs awaited before the change still are"
        ),
        duration_seconds: None,
        reason: None,
    }
}

/// The Event for a finished job.
pub(super) fn announcement(job: &ListedJob) -> PendingEvent {
    let (kind, note) = match JobState::of(&job.status) {
        JobState::Failed => {
            let reason = job
                .failure_reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or("no failure reason given");
            (
                AnnouncementKind::Failed,
                format!("Batch inference job {} failed: {}", job.name, reason),
            )
        }
        _ => (
            AnnouncementKind::Completed,
            format!("Batch inference job {} completed (ACTIVE)", job.name),
        ),
    };
    PendingEvent {
        kind,
        subject: job_key(job).unwrap_or_default(),
        job_name: job.name.clone(),
        note: truncate_utf8(&note, MAX_NOTE_BYTES).to_string(),
        duration_seconds: duration_seconds(job),
        reason: None,
    }
}

/// A finished job's duration: its last update less its creation, in whole seconds.
pub fn duration_seconds(job: &ListedJob) -> Option<i64> {
    if !JobState::of(&job.status).finished() {
        return None;
    }
    let (created, updated) = (job.created?, job.updated?);
    Some((updated.as_second() - created.as_second()).max(0))
}
