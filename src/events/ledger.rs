//! The Event ledger: which jobs to announce, exactly once across restarts, replicas and
//! listings that leave jobs out, repeat them or list them out of order.
//!
//! The rule: a job is announced when it is seen finished and it either was seen unfinished
//! before (it is `open`), or it finished after the `horizon` and is not among the `finished`
//! already accounted for. The first listing sets the horizon to its own time (less a clock
//! allowance) and summarises what had already finished in one Event; a listing from another
//! region or endpoint keeps what is awaited and sums up only the finished jobs never seen. After that, the
//! horizon trails the newest finish time seen by [`RETENTION`]: `finished` only holds what is
//! newer, so it stays bounded. An id leaves `open` only when its job is seen finished, and a
//! finished id is pruned by its age, never because one listing left its job out.
//!
//! The bound: a job that no listing shows finished until more than [`RETENTION`] after it
//! finished, and that no listing showed unfinished before, counts as history and is not
//! announced. Over the caps (`MAX_OPEN`, `MAX_FINISHED`) the oldest entries go first; see
//! docs/reliability.md.

use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{EventLedger, JobCounts, ListingSource};
use crate::personalize::ListedJob;
use crate::status::jobs::{Fingerprint, JobState};
use crate::status::whole_seconds;

use super::announcements::{announcement, discovered, source_changed, stuck_announcement};
use super::outbox::Full;

/// Clocks differ: the first listing's horizon is its time less this allowance. A job the first
/// listing left out that finished within it before is announced rather than taken as history.
pub const CLOCK_ALLOWANCE: SignedDuration = SignedDuration::from_secs(5 * 60);
/// How long after the newest finish seen a finished job stays in `finished`: a listing may
/// leave a job out for up to this long without it being missed or repeated.
pub const RETENTION: SignedDuration = SignedDuration::from_secs(6 * 60 * 60);
/// Jobs awaited at once; past it the ones seen longest ago are dropped (they are still
/// announced if they finish after the horizon).
pub const MAX_OPEN: usize = 1_000;
/// Finished jobs remembered; past it the horizon moves up to the oldest kept.
pub const MAX_FINISHED: usize = 2_000;
/// Event notes are capped near 1 KiB by the API server.
pub const MAX_NOTE_BYTES: usize = 1024;

/// A complete listing, as the ledger sees it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The watched solution version's jobs, once each.
    pub jobs: &'a [ListedJob],
    pub counts: &'a JobCounts,
    pub source: &'a ListingSource,
    pub now: Timestamp,
    /// spec.stuckAfter: unfinished jobs older than this are announced as stuck, once.
    pub stuck_after: Option<SignedDuration>,
}

/// The ledger after a complete listing.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerUpdate {
    /// With the Events it decided appended to the outbox.
    pub ledger: EventLedger,
    /// Finished jobs whose announcement waits in `open` for room in the outbox (deferred).
    pub deferred: usize,
    /// Jobs the ledger knew that this listing left out.
    pub omitted: usize,
}

/// A short stable id for a job: a [`Fingerprint`] of its ARN, or of its name when the listing
/// gave no ARN. None when the listing gave neither: such a job is counted, never announced.
pub fn job_hash(job: &ListedJob) -> Option<JobHash> {
    // Hashed in place, without building the key: this runs for every job on every poll.
    let (prefix, key) = job_key_parts(job)?;
    let mut hash = Fingerprint::default();
    hash.bytes(prefix.as_bytes());
    hash.bytes(key.as_bytes());
    Some(JobHash(hash.finish_hex()))
}

/// A job's id as the ledger writes it, 32 lowercase hex digits, held inline: ids are made for
/// every job on every poll, and only the few the ledger keeps become strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobHash([u8; 32]);

impl JobHash {
    pub fn as_str(&self) -> &str {
        // Hex digits only, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The id an earlier version wrote for `job`: FNV-1a, 64 bits, as 16 hex digits (see
/// [`with_current_ids`]).
pub fn legacy_job_hash(job: &ListedJob) -> Option<String> {
    let (prefix, key) = job_key_parts(job)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.bytes().chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(format!("{hash:016x}"))
}

/// A ledger written by an earlier version holds FNV-1a ids ([`legacy_job_hash`]), which anyone
/// creating jobs in the watched account could make collide. Each of a job this listing shows
/// takes the job's current id, so an upgrade neither repeats nor loses an announcement; the
/// others keep theirs until their job is listed again or their finish ages out. None when the
/// ledger holds no such id.
fn with_current_ids(prev: &EventLedger, jobs: &[ListedJob]) -> Option<EventLedger> {
    let legacy = |id: &String| id.len() == LEGACY_ID_DIGITS;
    let any_legacy = prev.open.iter().any(legacy)
        || prev.stuck.iter().any(legacy)
        || prev.finished.keys().any(legacy);
    if !any_legacy {
        return None;
    }
    let current: HashMap<String, String> = jobs
        .iter()
        .filter_map(|job| Some((legacy_job_hash(job)?, job_hash(job)?.to_string())))
        .collect();
    let rename = |id: &String| current.get(id).unwrap_or(id).clone();
    // In order, each id once (a ledger may already hold a job's current id beside its old one).
    let renamed = |ids: &[String]| {
        let mut kept: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids.iter().map(rename) {
            if !kept.contains(&id) {
                kept.push(id);
            }
        }
        kept
    };
    let mut ledger = prev.clone();
    ledger.open = renamed(&prev.open);
    ledger.stuck = renamed(&prev.stuck);
    ledger.finished = prev
        .finished
        .iter()
        .map(|(id, at)| (rename(id), *at))
        .collect();
    Some(ledger)
}

/// Digits of an id written before [`job_hash`] was SHA-256.
const LEGACY_ID_DIGITS: usize = 16;

impl std::fmt::Display for JobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for JobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobHash({})", self.as_str())
    }
}

/// What names a job: its ARN, else its name.
pub fn job_key(job: &ListedJob) -> Option<String> {
    job_key_parts(job).map(|(prefix, key)| format!("{prefix}{key}"))
}

/// [`job_key`] in two borrowed parts, a prefix and the ARN or name: ordered and compared
/// as the key is.
pub fn job_key_parts(job: &ListedJob) -> Option<(&'static str, &str)> {
    if !job.arn.is_empty() {
        Some(("", &job.arn))
    } else if !job.name.is_empty() {
        Some(("name:", &job.name))
    } else {
        None
    }
}

/// When a finished job finished: its last update, else its creation (whole seconds).
fn finish_time(job: &ListedJob) -> Option<Timestamp> {
    job.updated.or(job.created).map(whole_seconds)
}

/// The ledger after a complete listing of `listed.jobs`. A ledger without a source (written by
/// an earlier version) adopts this one.
pub fn next_ledger(prev: Option<&EventLedger>, listed: &Input<'_>) -> LedgerUpdate {
    let migrated = prev.and_then(|p| with_current_ids(p, listed.jobs));
    let prev = migrated.as_ref().or(prev);
    let mut update = match prev {
        // A ledger with no horizon has seen no listing (a failed poll's announcement made it).
        Some(prev) if prev.horizon.is_some() => {
            if prev.source.as_ref().is_none_or(|s| s == listed.source) {
                later_listing(prev, listed)
            } else {
                source_change(prev, listed)
            }
        }
        _ => LedgerUpdate {
            ledger: baseline(prev, listed),
            deferred: 0,
            omitted: 0,
        },
    };
    update.deferred += announce_stuck(&mut update.ledger, listed);
    settle(&mut update.ledger, listed);
    update
}

/// The first listing from a source: what had finished is history, summarised in one Event.
fn baseline(prev: Option<&EventLedger>, listed: &Input<'_>) -> EventLedger {
    let horizon = whole_seconds(listed.now) - CLOCK_ALLOWANCE;
    let mut ledger = EventLedger {
        source: Some(listed.source.clone()),
        horizon: Some(Time(horizon)),
        // Events already decided stay decided: they announce real finishes.
        outbox: prev.map(|l| l.outbox.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut unfinished = Vec::new();
    for job in listed.jobs {
        let Some(id) = job_hash(job) else { continue };
        if JobState::of(&job.status).finished() {
            if let Some(t) = finish_time(job).filter(|t| *t > horizon) {
                ledger.finished.insert(id.to_string(), t.as_second());
            }
        } else {
            unfinished.push((job, id.to_string()));
        }
    }
    for (_, id) in oldest_first(unfinished) {
        if !ledger.open.contains(&id) {
            ledger.open.push(id);
        }
    }
    let previous = prev.and_then(|l| l.source.as_ref());
    // A full outbox leaves the summary out: the jobs it sums up are history either way.
    let _ = ledger.outbox.push(discovered(previous, listed));
    ledger
}

/// A listing from another source (region or endpoint) than the last: the watched ARN, and the
/// job ARNs the ids hash, are the same wherever they are listed from, so awaited (`open`) and
/// stuck jobs carry over and are announced when they finish. Finished jobs the ledger never saw
/// are accounted for without an Event each and summed up in one, as at a baseline: a first
/// listing that went to the wrong region must not turn the right region's history into a flood.
/// A change that finds nothing new (two writers whose endpoint settings differ, taking turns)
/// decides no Event.
fn source_change(prev: &EventLedger, listed: &Input<'_>) -> LedgerUpdate {
    let mut ledger = prev.clone();
    let mut never_seen = 0;
    for job in listed.jobs {
        let Some(id) = job_hash(job) else { continue };
        let known = ledger.finished.contains_key(id.as_str())
            || ledger.open.iter().any(|o| o == id.as_str());
        if known || !JobState::of(&job.status).finished() {
            continue;
        }
        never_seen += 1;
        let at = finish_time(job).unwrap_or_else(|| whole_seconds(listed.now));
        ledger.finished.insert(id.to_string(), at.as_second());
    }
    let previous = prev.source.clone();
    let mut update = later_listing(&ledger, listed);
    if never_seen > 0 {
        // A full outbox leaves the summary out: the jobs it sums up are history either way.
        let _ = update
            .ledger
            .outbox
            .push(source_changed(previous.as_ref(), listed, never_seen));
    }
    update
}

/// A listing after the baseline: announce what finished, keep waiting for the rest.
fn later_listing(prev: &EventLedger, listed: &Input<'_>) -> LedgerUpdate {
    let mut ledger = prev.clone();
    ledger.source = Some(listed.source.clone());
    let horizon = ledger
        .horizon
        .as_ref()
        .map_or(whole_seconds(listed.now) - CLOCK_ALLOWANCE, |t| t.0);
    ledger.horizon = Some(Time(horizon));
    let mut open: HashSet<String> = ledger.open.iter().cloned().collect();
    let ids: Vec<Option<JobHash>> = listed.jobs.iter().map(job_hash).collect();
    let seen: HashSet<&str> = ids.iter().flatten().map(JobHash::as_str).collect();
    let omitted = ledger
        .open
        .iter()
        .chain(ledger.finished.keys())
        .filter(|id| !seen.contains(id.as_str()))
        .count();
    let mut due = Vec::new();
    let mut newly_open = Vec::new();
    for (job, id) in listed.jobs.iter().zip(&ids) {
        let Some(id) = id.as_ref().map(JobHash::as_str) else {
            continue;
        };
        if ledger.finished.contains_key(id) {
            continue;
        }
        if !JobState::of(&job.status).finished() {
            if !open.contains(id) {
                open.insert(id.to_string());
                newly_open.push((job, id.to_string()));
            }
        } else if open.contains(id) || finish_time(job).is_some_and(|t| t > horizon) {
            due.push((id.to_string(), job));
        }
    }
    ledger
        .open
        .extend(oldest_first(newly_open).into_iter().map(|(_, id)| id));
    let deferred = announce(&mut ledger, &mut open, due, listed.now);
    LedgerUpdate {
        ledger,
        deferred,
        omitted,
    }
}

/// Moves due jobs into the outbox, oldest finish first, while it has room; the rest wait in
/// `open`. Returns how many wait.
fn announce(
    ledger: &mut EventLedger,
    open: &mut HashSet<String>,
    mut due: Vec<(String, &ListedJob)>,
    now: Timestamp,
) -> usize {
    due.sort_by(|(a_id, a), (b_id, b)| finish_time(a).cmp(&finish_time(b)).then(a_id.cmp(b_id)));
    let mut deferred = 0;
    for (id, job) in due {
        if ledger.outbox.push(announcement(job)) == Err(Full) {
            if open.insert(id.clone()) {
                ledger.open.push(id);
            }
            deferred += 1;
            continue;
        }
        if open.remove(&id) {
            ledger.open.retain(|o| *o != id);
        }
        // Kept at least until the horizon passes the announcement, even for a job that finished
        // before it: an old, unfinished view of the job in a later listing must not make it
        // awaited (and announced) again.
        let now = whole_seconds(now);
        let accounted = finish_time(job).map_or(now, |t| t.max(now));
        ledger.finished.insert(id, accounted.as_second());
    }
    deferred
}

/// Moves the horizon up behind the newest finish seen, prunes what it passed, and holds the
/// caps.
fn settle(ledger: &mut EventLedger, listed: &Input<'_>) {
    let newest = listed
        .jobs
        .iter()
        .filter(|j| JobState::of(&j.status).finished())
        .filter_map(finish_time)
        .max();
    let mut horizon = ledger.horizon.as_ref().map(|t| t.0);
    if let Some(trailing) = newest.map(|n| n - RETENTION) {
        horizon = horizon.max(Some(trailing));
    }
    if ledger.finished.len() > MAX_FINISHED {
        let mut times: Vec<i64> = ledger.finished.values().copied().collect();
        times.sort_unstable();
        let oldest_kept = times[times.len() - MAX_FINISHED];
        let dropped = Timestamp::from_second(oldest_kept - 1).ok();
        horizon = horizon.max(dropped);
    }
    if let Some(h) = horizon {
        ledger.finished.retain(|_, t| *t > h.as_second());
        ledger.horizon = Some(Time(h));
    }
    let excess = ledger.open.len().saturating_sub(MAX_OPEN);
    ledger.open.drain(..excess);
    if !ledger.stuck.is_empty() {
        let open: HashSet<&String> = ledger.open.iter().collect();
        ledger.stuck.retain(|id| open.contains(id));
    }
}

/// How long an unfinished job has existed, when that is longer than `stuck_after`.
pub fn stuck_for(
    job: &ListedJob,
    stuck_after: SignedDuration,
    now: Timestamp,
) -> Option<SignedDuration> {
    let state = JobState::of(&job.status);
    if !matches!(state, JobState::Pending | JobState::InProgress) {
        return None;
    }
    let age = whole_seconds(now).duration_since(whole_seconds(job.created?));
    (age > stuck_after).then_some(age)
}

/// Announces the jobs that became stuck, once each, while the outbox has room; returns how
/// many wait for room.
fn announce_stuck(ledger: &mut EventLedger, listed: &Input<'_>) -> usize {
    let Some(stuck_after) = listed.stuck_after else {
        return 0;
    };
    let announced: HashSet<String> = ledger.stuck.iter().cloned().collect();
    let mut newly_stuck = Vec::new();
    for job in listed.jobs {
        if stuck_for(job, stuck_after, listed.now).is_none() {
            continue;
        }
        let Some(id) = job_hash(job) else { continue };
        // A finished job's old, unfinished view (a lagging listing) is not stuck.
        if !announced.contains(id.as_str()) && !ledger.finished.contains_key(id.as_str()) {
            newly_stuck.push((job, id.to_string()));
        }
    }
    let mut waiting = 0;
    for (job, id) in oldest_first(newly_stuck) {
        let Some(age) = stuck_for(job, stuck_after, listed.now) else {
            continue;
        };
        if ledger
            .outbox
            .push(stuck_announcement(job, age, stuck_after))
            == Err(Full)
        {
            waiting += 1;
            continue;
        }
        ledger.stuck.push(id);
    }
    waiting
}

/// Jobs the ledger takes up in one listing, in the order it takes them up: oldest first, then
/// by id, whatever the listing's order, so that a solution listed version by version and the
/// same jobs from an account-wide listing decide the same
/// (`status::tests::versions::a_watch_fed_from_a_shared_listing_decides_as_from_its_own`).
/// Only the jobs new to the ledger are sorted: a quiet poll sorts nothing.
fn oldest_first(mut jobs: Vec<(&ListedJob, String)>) -> Vec<(&ListedJob, String)> {
    jobs.sort_by(|(a, a_id), (b, b_id)| a.created.cmp(&b.created).then_with(|| a_id.cmp(b_id)));
    jobs
}
