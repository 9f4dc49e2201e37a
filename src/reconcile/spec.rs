//! The first step: turn a watch's spec into what a poll needs, or say why it cannot be used.
//! The schema refuses most bad specs at apply time; this catches what it cannot say.

use std::time::Duration;

use crate::config::parse_duration;
use crate::crd::SolutionVersionWatch;

/// How often to poll: while no job runs, and while any job is PENDING or IN PROGRESS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollIntervals {
    pub idle: Duration,
    pub active: Duration,
}

/// A spec that can be polled.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub region: String,
    pub solution_version_arn: String,
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
        active: interval(
            "activePollInterval",
            &spec.active_poll_interval,
            defaults.active,
        )?,
    };
    Ok(Target {
        region: region_of(watch)?,
        solution_version_arn: spec.solution_version_arn.clone(),
        intervals,
        suspended: spec.suspend,
        max_jobs_in_status: usize::try_from(spec.max_jobs_in_status).unwrap_or(0),
    })
}

/// The region to call: spec.region, else the one inside the ARN.
pub fn region_of(watch: &SolutionVersionWatch) -> Result<String, String> {
    if let Some(region) = watch.spec.region.as_deref().filter(|r| !r.is_empty()) {
        return Ok(region.to_string());
    }
    watch
        .spec
        .solution_version_arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            "spec.solutionVersionArn has no region (arn:PARTITION:personalize:REGION:ACCOUNT:...) and spec.region is not set".into()
        })
}
