//! The status computation: a pure function of the previous status and what a poll found.
//!
//! Everything the operator decides lives here, free of I/O: counts, the bounded job list,
//! conditions, and which jobs to announce. Announcements are exactly-once because the ledger in
//! status remembers which jobs were still open and which finished jobs were already seen:
//! - a finished job is announced when it was open at the last listing, or when it is new: created
//!   after the ledger's watermark minus a grace window and not among the recently finished;
//! - jobs created well before the watermark were all seen by an earlier complete listing
//!   (Personalize jobs cannot be deleted, and ACTIVE and CREATE FAILED are final).

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{
    AnnouncementKind, EventLedger, JobCounts, JobSummary, PendingEvent, SolutionVersionWatchStatus,
};

/// A job is "new" when created after the watermark minus this window. It covers jobs that a
/// listing missed because they were created while it ran, and clock differences.
pub const GRACE: SignedDuration = SignedDuration::from_secs(15 * 60);
/// At most this many job Events are decided per poll; the rest wait in `ledger.open` for the
/// next poll, so the outbox (and the object) stays small.
pub const MAX_ANNOUNCEMENTS_PER_POLL: usize = 100;
/// Event notes are capped near 1 KiB by the API server.
pub const MAX_NOTE_BYTES: usize = 1024;
/// failureReason in status.jobs is cut to this many bytes.
pub const MAX_FAILURE_REASON_BYTES: usize = 1024;

pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";
pub const RECONCILING: &str = "Reconciling";

/// A batch inference job as listed, before it is summarised for status.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Job {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub mode: Option<String>,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub failure_reason: Option<String>,
    pub solution_version_arn: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Pending,
    InProgress,
    Active,
    Failed,
    /// A status this operator does not know; counted apart, never fatal.
    Other,
}

impl JobState {
    pub fn of(status: &str) -> Self {
        match status {
            "PENDING" => JobState::Pending,
            "IN PROGRESS" | "IN_PROGRESS" => JobState::InProgress,
            "ACTIVE" => JobState::Active,
            "CREATE FAILED" | "CREATE_FAILED" => JobState::Failed,
            _ => JobState::Other,
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, JobState::Active | JobState::Failed)
    }
}

/// Why a poll failed, as far as status is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct PollFailure {
    /// Static CamelCase reason (Throttled, AccessDenied, ...).
    pub reason: &'static str,
    pub message: String,
    /// Needs a change of spec or IAM to get better.
    pub stalled: bool,
}

/// What happened on this reconcile.
#[derive(Clone, Debug)]
pub enum Poll<'a> {
    /// A complete listing.
    Listed(&'a [Job]),
    Failed(&'a PollFailure),
    Suspended,
}

/// The inputs besides the previous status.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub solution_version_arn: &'a str,
    pub generation: i64,
    pub max_jobs_in_status: usize,
    pub now: Timestamp,
    pub poll: Poll<'a>,
}

/// The next status. Its ledger's outbox holds every Event still to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    pub status: SolutionVersionWatchStatus,
    /// Finished jobs whose Event waits for a later poll (over MAX_ANNOUNCEMENTS_PER_POLL).
    pub deferred: usize,
    /// The first listing's summary Event. Informational, so it is published after the status
    /// write without the outbox: one write per watch fewer on the first listing, at the price
    /// of losing it if the operator dies between the two.
    pub summary: Option<PendingEvent>,
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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

/// Times in status have whole seconds (metav1.Time); compare at that precision too.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

pub fn counts(jobs: &[Job]) -> JobCounts {
    let mut c = JobCounts {
        total: jobs.len() as i64,
        ..Default::default()
    };
    for job in jobs {
        match JobState::of(&job.status) {
            JobState::Pending => c.pending += 1,
            JobState::InProgress => c.in_progress += 1,
            JobState::Active => c.active += 1,
            JobState::Failed => c.failed += 1,
            JobState::Other => c.other += 1,
        }
    }
    c
}

fn summary(job: &Job) -> JobSummary {
    JobSummary {
        name: job.name.clone(),
        arn: job.arn.clone(),
        status: job.status.clone(),
        mode: job.mode.clone(),
        creation_time: job.created.map(|t| Time(whole_seconds(t))),
        last_updated_time: job.updated.map(|t| Time(whole_seconds(t))),
        failure_reason: job
            .failure_reason
            .as_deref()
            .map(|r| truncate_utf8(r, MAX_FAILURE_REASON_BYTES).to_string()),
        solution_version_arn: job.solution_version_arn.clone(),
    }
}

/// Newest first; ties (and jobs without a creation time, last) by ARN.
fn newest_first(a: &Job, b: &Job) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| a.arn.cmp(&b.arn))
}

/// The watched solution version's jobs, once each (a listing that saw a job twice keeps the last).
fn relevant_jobs(jobs: &[Job], solution_version_arn: &str) -> Vec<Job> {
    let mut by_arn = std::collections::BTreeMap::new();
    for job in jobs {
        if job
            .solution_version_arn
            .as_deref()
            .is_none_or(|sv| sv == solution_version_arn)
        {
            by_arn.insert(job.arn.as_str(), job);
        }
    }
    by_arn.into_values().cloned().collect()
}

/// Sets one condition; lastTransitionTime moves only when the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    let message = truncate_utf8(message, 32 * 1024).to_string();
    // Exactly one per type: drop duplicates a hand edit may have left.
    let mut seen = false;
    conditions.retain(|c| {
        let keep = c.type_ != type_ || !seen;
        seen |= c.type_ == type_;
        keep
    });
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(whole_seconds(now));
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = Some(generation);
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: Some(generation),
            last_transition_time: Time(whole_seconds(now)),
        }),
    }
    conditions.sort_by_key(|c| condition_rank(&c.type_));
}

fn condition_rank(type_: &str) -> (u8, String) {
    let rank = match type_ {
        READY => 0,
        STALLED => 1,
        RECONCILING => 2,
        _ => 3,
    };
    (rank, type_.to_string())
}

pub fn condition<'a>(status: &'a SolutionVersionWatchStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Where the counts and jobs shown come from, when a poll did not list.
fn data_from(prev: &SolutionVersionWatchStatus) -> Option<String> {
    prev.last_sync_time
        .as_ref()
        .map(|t| format!("; counts and jobs are from the listing at {}", t.0))
}

/// Whether `generation` has had a complete listing.
fn generation_listed(prev: &SolutionVersionWatchStatus, generation: i64) -> bool {
    condition(prev, RECONCILING)
        .is_some_and(|c| c.status == "False" && c.observed_generation == Some(generation))
        && prev.last_sync_time.is_some()
}

fn describe_counts(c: &JobCounts) -> String {
    let mut text = format!(
        "{} jobs: {} active, {} failed, {} pending, {} in progress",
        c.total, c.active, c.failed, c.pending, c.in_progress
    );
    if c.other > 0 {
        text.push_str(&format!(", {} in other states", c.other));
    }
    text
}

fn failed_note(job: &Job) -> String {
    let reason = job
        .failure_reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or("no failure reason given");
    let note = format!("Batch inference job {} failed: {}", job.name, reason);
    truncate_utf8(&note, MAX_NOTE_BYTES).to_string()
}

fn completed_note(job: &Job) -> String {
    let note = format!("Batch inference job {} completed (ACTIVE)", job.name);
    truncate_utf8(&note, MAX_NOTE_BYTES).to_string()
}

/// The next status after a poll.
pub fn next_status(prev: Option<&SolutionVersionWatchStatus>, obs: &Observation<'_>) -> Next {
    let empty = SolutionVersionWatchStatus::default();
    let prev = prev.unwrap_or(&empty);
    let mut status = prev.clone();
    status.observed_generation = Some(obs.generation);
    let g = obs.generation;
    let now = obs.now;
    let mut deferred = 0;
    let mut first_summary = None;
    match &obs.poll {
        Poll::Listed(listed) => {
            let jobs = relevant_jobs(listed, obs.solution_version_arn);
            let counts = counts(&jobs);
            let mut ordered: Vec<&Job> = jobs.iter().collect();
            ordered.sort_by(|a, b| newest_first(a, b));
            status.jobs = ordered
                .iter()
                .take(obs.max_jobs_in_status)
                .map(|j| summary(j))
                .collect();
            status.jobs_truncated = jobs.len() > obs.max_jobs_in_status;
            let (ledger, d, summary) = next_ledger(prev.ledger.as_ref(), &jobs, &counts);
            deferred = d;
            first_summary = summary;
            status.ledger = Some(ledger);
            let text = describe_counts(&counts);
            status.counts = Some(counts);
            status.last_sync_time = Some(Time(whole_seconds(now)));
            status.stale = false;
            let c = &mut status.conditions;
            set_condition(
                c,
                READY,
                "True",
                "Synced",
                &format!("Listed {text}"),
                g,
                now,
            );
            set_condition(c, STALLED, "False", "Synced", "Polling normally", g, now);
            set_condition(
                c,
                RECONCILING,
                "False",
                "Synced",
                &format!("Generation {g} listed"),
                g,
                now,
            );
        }
        Poll::Failed(failure) => {
            status.stale = prev.last_sync_time.is_some();
            let kept = data_from(prev).unwrap_or_default();
            let message = format!("{}{kept}", failure.message);
            let listed = generation_listed(prev, g);
            let c = &mut status.conditions;
            set_condition(c, READY, "False", failure.reason, &message, g, now);
            if failure.stalled {
                set_condition(c, STALLED, "True", failure.reason, &failure.message, g, now);
                set_condition(
                    c,
                    RECONCILING,
                    "False",
                    failure.reason,
                    "Waiting for a change of spec or permissions",
                    g,
                    now,
                );
            } else {
                set_condition(
                    c,
                    STALLED,
                    "False",
                    "Retrying",
                    "The error may clear by itself; retrying with backoff",
                    g,
                    now,
                );
                if listed {
                    set_condition(
                        c,
                        RECONCILING,
                        "False",
                        "Synced",
                        &format!("Generation {g} listed"),
                        g,
                        now,
                    );
                } else {
                    set_condition(
                        c,
                        RECONCILING,
                        "True",
                        failure.reason,
                        &format!("Generation {g} not listed yet: {}", failure.message),
                        g,
                        now,
                    );
                }
            }
        }
        Poll::Suspended => {
            let since = data_from(prev).unwrap_or_else(|| "; nothing has been listed yet".into());
            let c = &mut status.conditions;
            set_condition(
                c,
                READY,
                "True",
                "Suspended",
                &format!("Polling is suspended by spec.suspend{since}"),
                g,
                now,
            );
            set_condition(
                c,
                STALLED,
                "False",
                "Suspended",
                "Polling is suspended",
                g,
                now,
            );
            set_condition(
                c,
                RECONCILING,
                "False",
                "Suspended",
                "Polling is suspended",
                g,
                now,
            );
        }
    }
    Next {
        status,
        deferred,
        summary: first_summary,
    }
}

/// The ledger after a complete listing, with the Events it decides appended to the outbox, the
/// number deferred, and on the first listing the summary Event.
fn next_ledger(
    prev: Option<&EventLedger>,
    jobs: &[Job],
    counts: &JobCounts,
) -> (EventLedger, usize, Option<PendingEvent>) {
    let watermark = jobs
        .iter()
        .filter_map(|j| j.created)
        .map(whole_seconds)
        .max()
        .max(prev.and_then(|l| l.watermark.as_ref()).map(|t| t.0));
    let cutoff = watermark.map(|w| w - GRACE);
    let recent = |job: &Job| match (job.created, cutoff) {
        (Some(created), Some(cutoff)) => whole_seconds(created) > cutoff,
        _ => true,
    };

    let mut open = BTreeSet::new();
    let mut outbox = prev.map(|l| l.outbox.clone()).unwrap_or_default();
    let mut deferred = 0;
    let mut deferred_ids = BTreeSet::new();
    let mut summary = None;

    match prev {
        None => {
            // First listing: jobs already finished are summarised, not announced one by one.
            for job in jobs {
                if !JobState::of(&job.status).finished() {
                    open.insert(job_id(&job.arn));
                }
            }
            summary = Some(PendingEvent {
                kind: AnnouncementKind::Discovered,
                job_name: String::new(),
                note: format!(
                    "First listing found {}: jobs that had already finished are not announced one by one",
                    describe_counts(counts)
                ),
            });
        }
        Some(ledger) => {
            let was_open: BTreeSet<&str> = ledger.open.iter().map(String::as_str).collect();
            let seen_finished: BTreeSet<&str> =
                ledger.recent_finished.iter().map(String::as_str).collect();
            let prev_cutoff = ledger.watermark.as_ref().map(|w| w.0 - GRACE);
            let mut due: Vec<&Job> = Vec::new();
            for job in jobs {
                let id = job_id(&job.arn);
                let state = JobState::of(&job.status);
                if !state.finished() {
                    open.insert(id);
                    continue;
                }
                let new_since_last = match (job.created, prev_cutoff) {
                    (Some(created), Some(cutoff)) => whole_seconds(created) > cutoff,
                    _ => true,
                };
                if was_open.contains(id.as_str())
                    || (new_since_last && !seen_finished.contains(id.as_str()))
                {
                    due.push(job);
                }
            }
            // Oldest first, so deferred Events keep their order across polls.
            due.sort_by(|a, b| newest_first(b, a));
            for (i, job) in due.into_iter().enumerate() {
                if i >= MAX_ANNOUNCEMENTS_PER_POLL {
                    let id = job_id(&job.arn);
                    open.insert(id.clone());
                    deferred_ids.insert(id);
                    deferred += 1;
                    continue;
                }
                let (kind, note) = match JobState::of(&job.status) {
                    JobState::Failed => (AnnouncementKind::Failed, failed_note(job)),
                    _ => (AnnouncementKind::Completed, completed_note(job)),
                };
                outbox.push(PendingEvent {
                    kind,
                    job_name: job.name.clone(),
                    note,
                });
            }
        }
    }

    let recent_finished: BTreeSet<String> = jobs
        .iter()
        .filter(|j| JobState::of(&j.status).finished() && recent(j))
        .map(|j| job_id(&j.arn))
        .filter(|id| !deferred_ids.contains(id))
        .collect();
    (
        EventLedger {
            watermark: watermark.map(Time),
            open: open.into_iter().collect(),
            recent_finished: recent_finished.into_iter().collect(),
            outbox,
        },
        deferred,
        summary,
    )
}

/// The interval to the next poll: the active one while any job is pending or in progress.
pub fn wants_active_polling(status: &SolutionVersionWatchStatus) -> bool {
    status
        .counts
        .as_ref()
        .is_some_and(|c| c.pending + c.in_progress > 0)
}

#[cfg(test)]
mod tests;
