//! The Event ledger: which jobs to announce, exactly once across restarts.
//!
//! A finished job is announced when it was open at the last listing, or when it is new: created
//! after the ledger's watermark minus a grace window and not among the recently finished. Jobs
//! created well before the watermark were all seen by an earlier complete listing (Personalize
//! jobs cannot be deleted, and ACTIVE and CREATE FAILED are final).

use std::collections::BTreeSet;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{AnnouncementKind, EventLedger, JobCounts, PendingEvent};
use crate::personalize::ListedJob;
use crate::text::truncate_utf8;

use super::jobs::{JobState, describe_counts, newest_first};
use super::whole_seconds;

/// A job is "new" when created after the watermark minus this window. It covers jobs that a
/// listing missed because they were created while it ran, and clock differences.
pub const GRACE: SignedDuration = SignedDuration::from_secs(15 * 60);
/// At most this many job Events are decided per poll; the rest wait in `ledger.open` for the
/// next poll, so the outbox (and the object) stays small.
pub const MAX_ANNOUNCEMENTS_PER_POLL: usize = 100;
/// Event notes are capped near 1 KiB by the API server.
pub const MAX_NOTE_BYTES: usize = 1024;

/// The ledger after a complete listing.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerUpdate {
    /// With the Events it decided appended to the outbox.
    pub ledger: EventLedger,
    /// Finished jobs whose Event waits for a later poll (over MAX_ANNOUNCEMENTS_PER_POLL).
    pub deferred: usize,
    /// On the first listing, the summary Event of jobs that had already finished.
    pub summary: Option<PendingEvent>,
}

/// A short stable id for a job: FNV-1a of its ARN, so the ledger stays small.
pub fn job_id(arn: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in arn.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The ledger after a complete listing of `jobs` (the watched solution version's, once each).
pub fn next_ledger(
    prev: Option<&EventLedger>,
    jobs: &[ListedJob],
    counts: &JobCounts,
) -> LedgerUpdate {
    let watermark = jobs
        .iter()
        .filter_map(|j| j.created)
        .map(whole_seconds)
        .max()
        .max(prev.and_then(|l| l.watermark.as_ref()).map(|t| t.0));
    let decided = match prev {
        None => first_listing(jobs),
        Some(ledger) => later_listing(ledger, jobs),
    };
    let cutoff = watermark.map(|w| w - GRACE);
    let recent_finished: BTreeSet<String> = jobs
        .iter()
        .filter(|j| JobState::of(&j.status).finished() && created_after(j, cutoff))
        .map(|j| job_id(&j.arn))
        .filter(|id| !decided.deferred.contains(id))
        .collect();
    LedgerUpdate {
        ledger: EventLedger {
            watermark: watermark.map(Time),
            open: decided.open.into_iter().collect(),
            recent_finished: recent_finished.into_iter().collect(),
            outbox: decided.outbox,
        },
        deferred: decided.deferred.len(),
        summary: prev.is_none().then(|| discovered(counts)),
    }
}

/// What one listing decided.
struct Decided {
    /// Ids of jobs to announce when seen finished.
    open: BTreeSet<String>,
    outbox: Vec<PendingEvent>,
    /// Ids of finished jobs whose Event waits for a later poll.
    deferred: BTreeSet<String>,
}

/// Whether the job was created after `cutoff` (jobs without a creation time, or without a
/// cutoff, count as new).
fn created_after(job: &ListedJob, cutoff: Option<jiff::Timestamp>) -> bool {
    match (job.created, cutoff) {
        (Some(created), Some(cutoff)) => whole_seconds(created) > cutoff,
        _ => true,
    }
}

/// First listing: jobs already finished are summarised, not announced one by one.
fn first_listing(jobs: &[ListedJob]) -> Decided {
    Decided {
        open: jobs
            .iter()
            .filter(|j| !JobState::of(&j.status).finished())
            .map(|j| job_id(&j.arn))
            .collect(),
        outbox: Vec::new(),
        deferred: BTreeSet::new(),
    }
}

/// The first listing's summary Event.
fn discovered(counts: &JobCounts) -> PendingEvent {
    PendingEvent {
        kind: AnnouncementKind::Discovered,
        job_name: String::new(),
        note: format!(
            "First listing found {}: jobs that had already finished are not announced one by one",
            describe_counts(counts)
        ),
    }
}

/// A later listing: finished jobs that were open, or are new, are announced (up to the cap).
fn later_listing(ledger: &EventLedger, jobs: &[ListedJob]) -> Decided {
    let was_open: BTreeSet<&str> = ledger.open.iter().map(String::as_str).collect();
    let seen_finished: BTreeSet<&str> = ledger.recent_finished.iter().map(String::as_str).collect();
    let prev_cutoff = ledger.watermark.as_ref().map(|w| w.0 - GRACE);
    let mut open = BTreeSet::new();
    let mut due: Vec<&ListedJob> = Vec::new();
    for job in jobs {
        let id = job_id(&job.arn);
        if !JobState::of(&job.status).finished() {
            open.insert(id);
        } else if was_open.contains(id.as_str())
            || (created_after(job, prev_cutoff) && !seen_finished.contains(id.as_str()))
        {
            due.push(job);
        }
    }
    // Oldest first, so deferred Events keep their order across polls.
    due.sort_by(|a, b| newest_first(b, a));
    let mut outbox = ledger.outbox.clone();
    let mut deferred = BTreeSet::new();
    for (i, job) in due.into_iter().enumerate() {
        if i < MAX_ANNOUNCEMENTS_PER_POLL {
            outbox.push(announcement(job));
        } else {
            let id = job_id(&job.arn);
            open.insert(id.clone());
            deferred.insert(id);
        }
    }
    Decided {
        open,
        outbox,
        deferred,
    }
}

/// The Event for a finished job.
fn announcement(job: &ListedJob) -> PendingEvent {
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
        job_name: job.name.clone(),
        note: truncate_utf8(&note, MAX_NOTE_BYTES).to_string(),
    }
}
