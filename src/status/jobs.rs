//! Counts and the bounded job list: what `kubectl get svw` shows.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{JobCounts, JobSummary};
use crate::personalize::ListedJob;
use crate::text::truncate_utf8;

use super::whole_seconds;

/// failureReason in status.jobs is cut to this many bytes.
pub const MAX_FAILURE_REASON_BYTES: usize = 1024;

/// A job's state, from its status string.
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

pub fn counts(jobs: &[ListedJob]) -> JobCounts {
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

/// "12 jobs: 8 active, 2 failed, 2 pending, 0 in progress".
pub fn describe_counts(c: &JobCounts) -> String {
    let mut text = format!(
        "{} jobs: {} active, {} failed, {} pending, {} in progress",
        c.total, c.active, c.failed, c.pending, c.in_progress
    );
    if c.other > 0 {
        text.push_str(&format!(", {} in other states", c.other));
    }
    text
}

fn summary(job: &ListedJob) -> JobSummary {
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
pub fn newest_first(a: &ListedJob, b: &ListedJob) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| a.arn.cmp(&b.arn))
}

/// A digest of the job list as status shows it (FNV-1a over its JSON, with the truncation
/// flag): equal digests mean the same list.
pub fn digest(jobs: &[JobSummary], truncated: bool) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let json = serde_json::to_vec(jobs).unwrap_or_default();
    for byte in json.iter().chain([&u8::from(truncated)]) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}-{}", jobs.len())
}

/// The newest `max` jobs as status shows them.
pub fn newest(jobs: &[ListedJob], max: usize) -> Vec<JobSummary> {
    let mut ordered: Vec<&ListedJob> = jobs.iter().collect();
    ordered.sort_by(|a, b| newest_first(a, b));
    ordered.into_iter().take(max).map(summary).collect()
}

/// The watched solution version's jobs, once each. A listing that shows a job twice (pages
/// shifted while it ran) keeps the view furthest along: finished over unfinished, then the
/// later update. Jobs with neither ARN nor name cannot be told apart and are all kept.
pub fn relevant_jobs(jobs: &[ListedJob], solution_version_arn: &str) -> Vec<ListedJob> {
    let mut by_key: BTreeMap<String, &ListedJob> = BTreeMap::new();
    let mut nameless = Vec::new();
    let watched = jobs.iter().filter(|j| {
        j.solution_version_arn
            .as_deref()
            .is_none_or(|sv| sv == solution_version_arn)
    });
    for job in watched {
        let Some(key) = super::ledger::job_key(job) else {
            nameless.push(job);
            continue;
        };
        let entry = by_key.entry(key).or_insert(job);
        if further_along(job, entry) {
            *entry = job;
        }
    }
    by_key.into_values().chain(nameless).cloned().collect()
}

/// Whether `a` shows a job further along than `b`.
fn further_along(a: &ListedJob, b: &ListedJob) -> bool {
    let finished = |j: &ListedJob| JobState::of(&j.status).finished();
    (finished(a), a.updated) > (finished(b), b.updated)
}
