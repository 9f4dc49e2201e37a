//! The first step: turn a watch's spec into what a poll needs, or say why it cannot be used.
//! The schema refuses most bad specs at apply time; this catches what it cannot say.

use std::time::Duration;

use crate::access::arn::WatchedArn;
use crate::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};
use crate::process::flag_values::parse_duration;
use crate::status::Expectations;

/// How often to poll: while no job runs, and while any job is PENDING or IN PROGRESS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollIntervals {
    pub idle: Duration,
    pub while_running: Duration,
}

/// A spec that can be polled.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Strictly parsed: its region and partition decide the endpoint, its account the policy.
    pub arn: WatchedArn,
    pub intervals: PollIntervals,
    pub suspended: bool,
    pub max_jobs_in_status: usize,
}

/// Checks the spec; `defaults` fill in the intervals it leaves out. The error says which field
/// to fix.
pub fn validate(watch: &SolutionVersionWatch, defaults: PollIntervals) -> Result<Target, String> {
    let spec = &watch.spec;
    let interval = |field: &str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|e| format!("spec.{field}: {e}")),
    };
    let intervals = PollIntervals {
        idle: interval("pollInterval", &spec.poll_interval, defaults.idle)?,
        while_running: interval(
            "activePollInterval",
            &spec.active_poll_interval,
            defaults.while_running,
        )?,
    };
    expectations(spec)?;
    Ok(Target {
        arn: arn_of(watch)?,
        intervals,
        suspended: spec.suspend,
        max_jobs_in_status: usize::try_from(spec.max_jobs_in_status).unwrap_or(0),
    })
}

/// The watched ARN, strictly parsed (objects stored before the schema was strict may hold
/// anything); `spec.region`, if given, may only repeat the ARN's region.
pub fn arn_of(watch: &SolutionVersionWatch) -> Result<WatchedArn, String> {
    let spec = &watch.spec;
    let (arn, field) = match (&spec.solution_version_arn, &spec.solution_arn) {
        (Some(version), None) => (WatchedArn::parse_version(version)?, "solutionVersionArn"),
        (None, Some(solution)) => (WatchedArn::parse_solution(solution)?, "solutionArn"),
        _ => {
            return Err(
                "set exactly one of spec.solutionVersionArn and spec.solutionArn".to_string(),
            );
        }
    };
    match spec.region.as_deref() {
        Some(region) if region != arn.region => Err(format!(
            "spec.region {region:?} is not the region inside spec.{field} ({})",
            arn.region
        )),
        _ => Ok(arn),
    }
}

/// spec.stuckAfter and spec.expectNewJobWithin, parsed; the error says which field to fix.
pub fn expectations(spec: &SolutionVersionWatchSpec) -> Result<Expectations, String> {
    let parse = |field: &str, text: &Option<String>, min: Duration| -> Result<_, String> {
        let Some(text) = text else { return Ok(None) };
        let d = parse_duration(text).map_err(|e| format!("spec.{field}: {e}"))?;
        if d < min {
            return Err(format!("spec.{field} must be at least {}s", min.as_secs()));
        }
        jiff::SignedDuration::try_from(d)
            .map(Some)
            .map_err(|e| format!("spec.{field}: {e}"))
    };
    Ok(Expectations {
        stuck_after: parse("stuckAfter", &spec.stuck_after, Duration::from_secs(5))?,
        new_job_within: parse(
            "expectNewJobWithin",
            &spec.expect_new_job_within,
            Duration::from_secs(60),
        )?,
    })
}
