//! The status computation: a pure function of the previous status and what a poll found.
//!
//! Everything the operator decides lives here, free of I/O: counts and the bounded job list
//! ([`jobs`]), the conditions ([`conditions`]), stuck and overdue ([`timeliness`]), and the
//! object's size ([`size`]). Which Events to announce is decided by [`crate::events`], called
//! from here with what the poll found.

pub mod conditions;
pub mod jobs;
pub mod size;
pub mod timeliness;
pub mod versions;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::SolutionVersionWatchStatus;
use crate::events::{episodes, ledger};
use crate::personalize::{ListedJob, Listing};
use crate::reasons::{ConditionStatus, ConditionType, Reason};

pub use conditions::{Conditions, condition};
pub use jobs::{JobState, counts};
pub use timeliness::Expectations;

use ConditionStatus::{False, True};
use ConditionType::{Ready, Reconciling, Stalled};

/// Why a poll failed, as far as status is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct PollFailure {
    pub reason: Reason,
    pub message: String,
    /// Needs a change of spec or IAM to get better.
    pub stalled: bool,
}

/// What the poll of this reconcile found.
#[derive(Clone, Copy, Debug)]
pub enum PollOutcome<'a> {
    /// A complete listing.
    Listed(&'a Listing),
    Failed(&'a PollFailure),
    Suspended,
}

/// The inputs besides the previous status.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The watched solution version's or solution's ARN.
    pub watched_arn: &'a str,
    pub generation: i64,
    pub max_jobs_in_status: usize,
    pub now: Timestamp,
    pub outcome: PollOutcome<'a>,
    /// spec.stuckAfter and spec.expectNewJobWithin.
    pub expectations: Expectations,
    /// metadata.creationTimestamp: a watch that never saw a job is overdue from then.
    pub watch_created: Option<Timestamp>,
}

impl Observation<'_> {
    /// Whether the watch names a solution (every version), not one solution version.
    pub fn watches_solution(&self) -> bool {
        crate::access::arn::names_a_solution(self.watched_arn)
    }
}

/// What a reconcile decided: the next status, whose ledger's outbox holds every Event still to
/// publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: SolutionVersionWatchStatus,
    /// Finished jobs whose Event waits in the ledger for room in the outbox.
    pub deferred: usize,
    /// Jobs the ledger knew that the listing left out.
    pub omitted: usize,
    /// The decision comes from a complete listing (so lastSyncTime is its time).
    pub from_listing: bool,
}

/// Times in status have whole seconds (metav1.Time); compare at that precision too.
pub(crate) fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The next status after a poll.
pub fn next_status(prev: Option<&SolutionVersionWatchStatus>, obs: &Observation<'_>) -> Decision {
    let prev = prev.cloned().unwrap_or_default();
    match obs.outcome {
        PollOutcome::Listed(listed) => after_listing(prev, listed, obs),
        PollOutcome::Failed(failure) => after_failure(prev, failure, obs),
        PollOutcome::Suspended => Decision {
            status: while_suspended(prev, obs),
            deferred: 0,
            omitted: 0,
            from_listing: false,
        },
    }
}

fn after_listing(
    prev: SolutionVersionWatchStatus,
    listing: &Listing,
    obs: &Observation<'_>,
) -> Decision {
    let jobs = jobs::relevant_jobs(&listing.jobs, obs.watched_arn);
    let mut counts = counts(&jobs);
    counts.stuck = timeliness::stuck_count(jobs.iter(), &obs.expectations, obs.now);
    let input = ledger::Input {
        jobs: &jobs,
        counts: &counts,
        source: &listing.source,
        now: obs.now,
        stuck_after: obs.expectations.stuck_after,
    };
    let update = ledger::next_ledger(prev.ledger.as_ref(), &input);
    let watches_solution = obs.watches_solution();
    let versions = if watches_solution {
        versions::by_version(&jobs, &obs.expectations, obs.now)
    } else {
        versions::Versions::default()
    };
    let described = jobs::describe_counts(&counts);
    let g = obs.generation;
    let shown = jobs::newest(&jobs, obs.max_jobs_in_status);
    let prev_digest = prev.jobs_digest.clone();
    let mut status = SolutionVersionWatchStatus {
        observed_generation: Some(g),
        latest_job: jobs::latest(&jobs, prev.latest_job.as_ref()),
        jobs: Vec::new(),
        jobs_truncated: jobs.len() > obs.max_jobs_in_status,
        counts: Some(counts),
        versions_shown: watches_solution.then_some(versions.shown.len() as i64),
        versions_total: watches_solution.then_some(versions.total as i64),
        versions: versions.shown,
        ledger: Some(update.ledger),
        last_sync_time: Some(Time(whole_seconds(obs.now))),
        stale: false,
        ..prev
    };
    let mut c = Conditions::new(&mut status.conditions, g, obs.now);
    c.set(Ready, True, Reason::Synced, &format!("Listed {described}"));
    c.set(Stalled, False, Reason::Synced, "Polling normally");
    c.set(
        Reconciling,
        False,
        Reason::Synced,
        &format!("Generation {g} listed"),
    );
    let inputs = timeliness::OverdueInputs {
        now: obs.now,
        generation: g,
        watch_created: obs.watch_created,
    };
    timeliness::assess_overdue(&mut status, &obs.expectations, &inputs);
    show_jobs(&mut status, &shown, prev_digest.as_deref());
    Decision {
        status,
        deferred: update.deferred,
        omitted: update.omitted,
        from_listing: true,
    }
}

/// Puts the job list `shown` into `status` (whose list is empty), cut to the size budget, with
/// its digest. The list `prev` shows already (the same digest) is not built again when it surely
/// fits: `status` leaves it out, as the cache's copy of the watch does, and writing sends a list
/// only when its digest changed. A quiet poll builds no summaries.
fn show_jobs(
    status: &mut SolutionVersionWatchStatus,
    shown: &[&ListedJob],
    prev_digest: Option<&str>,
) {
    let listed = || shown.iter().map(|job| jobs::Shown::listed(job));
    let digest = jobs::digest(listed(), status.jobs_truncated);
    if prev_digest == Some(digest.as_str()) && size::fits_with(status, listed()) {
        status.jobs_digest = Some(digest);
        return;
    }
    status.jobs = listed().map(jobs::Shown::to_summary).collect();
    let cut = size::fit(status);
    status.jobs_digest = Some(if cut == 0 {
        digest
    } else {
        jobs::digest_of(&status.jobs, status.jobs_truncated)
    });
}

fn after_failure(
    prev: SolutionVersionWatchStatus,
    failure: &PollFailure,
    obs: &Observation<'_>,
) -> Decision {
    let g = obs.generation;
    let listed = generation_listed(&prev, g);
    let prev = match failure.reason {
        Reason::NotPermitted => withdrawn(prev),
        _ => prev,
    };
    let kept = data_from(&prev).unwrap_or_default();
    let mut status = SolutionVersionWatchStatus {
        observed_generation: Some(g),
        stale: prev.counts.is_some(),
        ..prev
    };
    let prev_reason = condition(&status, Ready).map(|c| c.reason.clone());
    let mut c = Conditions::new(&mut status.conditions, g, obs.now);
    let message = format!("{}{kept}", failure.message);
    c.set(Ready, False, failure.reason, &message);
    if failure.stalled {
        c.set(Stalled, True, failure.reason, &failure.message);
        c.set(
            Reconciling,
            False,
            failure.reason,
            "Waiting for a change of spec or permissions",
        );
    } else {
        c.set(
            Stalled,
            False,
            Reason::Retrying,
            "The error may clear by itself; retrying with backoff",
        );
        if listed {
            c.set(
                Reconciling,
                False,
                Reason::Synced,
                &format!("Generation {g} listed"),
            );
        } else {
            let message = format!("Generation {g} not listed yet: {}", failure.message);
            c.set(Reconciling, True, failure.reason, &message);
        }
    }
    announce_failure(&mut status, failure, prev_reason.as_deref());
    Decision {
        status,
        deferred: 0,
        omitted: 0,
        from_listing: false,
    }
}

/// A failed poll is announced once per change of reason within a failure episode.
fn announce_failure(
    status: &mut SolutionVersionWatchStatus,
    failure: &PollFailure,
    prev_reason: Option<&str>,
) {
    if prev_reason == Some(failure.reason.as_str()) {
        return;
    }
    let episode = match &status.last_sync_time {
        Some(listed) => episodes::FailureEpisode::After(listed.0),
        None => episodes::FailureEpisode::BeforeAnyListing,
    };
    let ledger = status.ledger.get_or_insert_with(Default::default);
    episodes::announce_poll_failure(ledger, failure.reason, &failure.message, episode);
}

fn while_suspended(
    prev: SolutionVersionWatchStatus,
    obs: &Observation<'_>,
) -> SolutionVersionWatchStatus {
    let g = obs.generation;
    let since = data_from(&prev).unwrap_or_else(|| "; nothing has been listed yet".into());
    let mut status = SolutionVersionWatchStatus {
        observed_generation: Some(g),
        ..prev
    };
    let mut c = Conditions::new(&mut status.conditions, g, obs.now);
    let message = format!("Polling is suspended by spec.suspend{since}");
    c.set(Ready, True, Reason::Suspended, &message);
    c.set(Stalled, False, Reason::Suspended, "Polling is suspended");
    c.set(
        Reconciling,
        False,
        Reason::Suspended,
        "Polling is suspended",
    );
    status
}

/// Where the counts and jobs shown come from, when a poll did not list.
fn data_from(prev: &SolutionVersionWatchStatus) -> Option<String> {
    prev.counts.as_ref()?;
    prev.last_sync_time
        .as_ref()
        .map(|t| format!("; counts and jobs are from the listing at {}", t.0))
}

/// The status without anything learned from the account: an admin withdrew the namespace's
/// access to it, so counts, jobs, the latest job and the ledger (with the Events still waiting
/// in its outbox) go; conditions and timestamps stay.
fn withdrawn(prev: SolutionVersionWatchStatus) -> SolutionVersionWatchStatus {
    SolutionVersionWatchStatus {
        counts: None,
        latest_job: None,
        jobs: Vec::new(),
        jobs_truncated: false,
        jobs_digest: None,
        ledger: None,
        ..prev
    }
}

/// Whether `generation` has had a complete listing.
fn generation_listed(prev: &SolutionVersionWatchStatus, generation: i64) -> bool {
    condition(prev, Reconciling)
        .is_some_and(|c| c.status == False.as_str() && c.observed_generation == Some(generation))
        && prev.last_sync_time.is_some()
}

/// A listing that changed nothing but the time is not written until the heartbeat is due:
/// `next` keeps `prev`'s lastSyncTime then. `prev` may be the cache's copy, without its job list
/// (the digests compare the lists).
pub fn hold_quiet_listing(
    prev: Option<&SolutionVersionWatchStatus>,
    next: &mut SolutionVersionWatchStatus,
    heartbeat: std::time::Duration,
    now: Timestamp,
) {
    let Some(prev) = prev else { return };
    let Some(synced) = prev.last_sync_time.as_ref() else {
        return;
    };
    let due = match jiff::SignedDuration::try_from(heartbeat) {
        Ok(h) => synced.0 + h <= whole_seconds(now),
        Err(_) => true,
    };
    let unchanged = equal_but_for_sync(prev, next);
    if unchanged && !due {
        next.last_sync_time = Some(synced.clone());
    }
}

/// Whether `a` and `b` are the same status but for lastSyncTime, their job lists compared by
/// digest (the cache's copy has none).
pub fn equal_but_for_sync(a: &SolutionVersionWatchStatus, b: &SolutionVersionWatchStatus) -> bool {
    // Destructured so that a new field cannot be left out of the comparison.
    let SolutionVersionWatchStatus {
        observed_generation,
        conditions,
        counts,
        latest_job,
        jobs: _,
        jobs_truncated,
        jobs_digest,
        versions,
        versions_shown,
        versions_total,
        last_sync_time: _,
        stale,
        ledger,
    } = a;
    *jobs_digest == b.jobs_digest
        && *versions == b.versions
        && *versions_shown == b.versions_shown
        && *versions_total == b.versions_total
        && *observed_generation == b.observed_generation
        && *conditions == b.conditions
        && *counts == b.counts
        && *latest_job == b.latest_job
        && *jobs_truncated == b.jobs_truncated
        && *stale == b.stale
        && *ledger == b.ledger
}

/// Whether any job is pending or in progress (the next poll comes at the interval for then).
pub fn jobs_running(status: &SolutionVersionWatchStatus) -> bool {
    status
        .counts
        .as_ref()
        .is_some_and(|c| c.pending + c.in_progress > 0)
}

#[cfg(test)]
mod tests;
