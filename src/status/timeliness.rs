//! What the spec expects of the jobs' timing: a job that runs too long is stuck
//! (spec.stuckAfter, announced by [`crate::events::ledger`]), and a solution version without a
//! new job for too long is overdue (spec.expectNewJobWithin, the Overdue condition, and one Event
//! per episode through [`crate::events::episodes`]).

use jiff::{SignedDuration, Timestamp};

use crate::crd::SolutionVersionWatchStatus;
use crate::events::announcements::human_duration;
use crate::events::episodes;
use crate::events::ledger::stuck_for;
use crate::personalize::ListedJob;
use crate::reasons::{ConditionStatus, ConditionType, Reason};

use super::conditions::Conditions;
use super::whole_seconds;

/// spec.stuckAfter and spec.expectNewJobWithin, parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    pub stuck_after: Option<SignedDuration>,
    pub new_job_within: Option<SignedDuration>,
}

/// How many jobs are stuck now.
pub fn stuck_count<'a>(
    jobs: impl IntoIterator<Item = &'a ListedJob>,
    expectations: &Expectations,
    now: Timestamp,
) -> i64 {
    let Some(after) = expectations.stuck_after else {
        return 0;
    };
    jobs.into_iter()
        .filter(|j| stuck_for(j, after, now).is_some())
        .count() as i64
}

/// The inputs of the overdue check besides the status.
#[derive(Clone, Copy, Debug)]
pub struct OverdueInputs {
    pub now: Timestamp,
    pub generation: i64,
    /// When the watch was created: what "no job for that long" counts from.
    pub watch_created: Option<Timestamp>,
}

/// Sets Overdue from status.latestJob; a new episode (Overdue turning True, or True since
/// another time) is announced once ([`episodes::announce_overdue`]).
pub fn assess_overdue(
    status: &mut SolutionVersionWatchStatus,
    expectations: &Expectations,
    inputs: &OverdueInputs,
) {
    let Some(within) = expectations.new_job_within else {
        status
            .conditions
            .retain(|c| c.type_ != ConditionType::Overdue.as_str());
        return;
    };
    let newest = status.latest_job.as_ref();
    let newest_created = newest.and_then(|j| j.creation_time.as_ref()).map(|t| t.0);
    let Some(since) = newest_created.or(inputs.watch_created).map(whole_seconds) else {
        return;
    };
    let what = match newest {
        Some(job) => format!("the newest job, {}, was created then", job.name),
        None => "no job was ever listed; the watch was created then".to_string(),
    };
    let silent_for = whole_seconds(inputs.now).duration_since(since);
    let within_text = human_duration(within);
    if silent_for <= within {
        let message = format!("A job came within {within_text}: at {since} ({what})");
        let mut c = Conditions::new(&mut status.conditions, inputs.generation, inputs.now);
        c.set(
            ConditionType::Overdue,
            ConditionStatus::False,
            Reason::RecentJob,
            &message,
        );
        return;
    }
    let message = format!(
        "No new batch inference job since {since} ({what}); one was expected within {within_text}"
    );
    let mut c = Conditions::new(&mut status.conditions, inputs.generation, inputs.now);
    c.set(
        ConditionType::Overdue,
        ConditionStatus::True,
        Reason::NoRecentJob,
        &message,
    );
    let ledger = status.ledger.get_or_insert_with(Default::default);
    episodes::announce_overdue(ledger, since, &message);
}
