//! A solution watch's jobs by solution version (status.versions): Personalize retrains a
//! solution into a new version, by default every 7 days, and each version's jobs are counted
//! on their own besides the totals.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::crd::{MAX_VERSIONS_IN_STATUS, VersionCounts};
use crate::personalize::ListedJob;

use super::jobs::counts_of;
use super::timeliness::{Expectations, stuck_count};

/// status.versions and how many versions have jobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Versions {
    /// Newest first, at most [`MAX_VERSIONS_IN_STATUS`].
    pub shown: Vec<VersionCounts>,
    pub total: usize,
}

/// The watched jobs by version. A listing of jobs does not say when a version was made, so
/// versions are ordered by their first job's creation, newest first (ties by ARN, so the order
/// never depends on the listing's); jobs without a version are in the totals only.
pub fn by_version(jobs: &[ListedJob], expectations: &Expectations, now: Timestamp) -> Versions {
    let mut groups: HashMap<&str, Vec<&ListedJob>> = HashMap::new();
    for job in jobs {
        if let Some(version) = job.solution_version_arn.as_deref() {
            groups.entry(version).or_default().push(job);
        }
    }
    let first_job = |jobs: &[&ListedJob]| jobs.iter().filter_map(|j| j.created).min();
    let mut ordered: Vec<(Option<Timestamp>, &str, Vec<&ListedJob>)> = groups
        .into_iter()
        .map(|(version, jobs)| (first_job(&jobs), version, jobs))
        .collect();
    ordered.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    let total = ordered.len();
    let shown = ordered
        .into_iter()
        .take(MAX_VERSIONS_IN_STATUS)
        .map(|(_, version, jobs)| {
            let mut counts = counts_of(jobs.iter().copied());
            counts.stuck = stuck_count(jobs.iter().copied(), expectations, now);
            VersionCounts {
                solution_version_arn: version.to_string(),
                counts,
            }
        })
        .collect();
    Versions { shown, total }
}
