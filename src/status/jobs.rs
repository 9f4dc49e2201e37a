//! Counts and the bounded job list: what `kubectl get svw` shows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{JobCounts, JobSummary, LatestJob};
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
        duration_seconds: super::ledger::duration_seconds(job),
    }
}

/// The newest job of all, as status.latestJob shows it. A listing that leaves out the newest
/// job seen before (or lists none) keeps that one: the newest job only gets newer, so one
/// incomplete listing cannot make a watch look overdue.
pub fn latest(jobs: &[ListedJob], prev: Option<&LatestJob>) -> Option<LatestJob> {
    let listed = jobs
        .iter()
        .min_by(|a, b| newest_first(a, b))
        .map(|newest| LatestJob {
            name: newest.name.clone(),
            status: newest.status.clone(),
            creation_time: newest.created.map(|t| Time(whole_seconds(t))),
        });
    let created = |j: &LatestJob| j.creation_time.as_ref().map(|t| t.0);
    match (listed, prev) {
        (Some(l), Some(p)) if created(p) > created(&l) => Some(p.clone()),
        (None, p) => p.cloned(),
        (l, _) => l,
    }
}

/// Newest first; ties (and jobs without a creation time, last) by ARN.
pub fn newest_first(a: &ListedJob, b: &ListedJob) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| a.arn.cmp(&b.arn))
}

/// A digest of the job list as status shows it (FNV-1a over every field of every summary, with
/// the truncation flag): equal digests mean the same list. Fields are hashed directly, not
/// through JSON: this runs on every poll, and serializing was most of its cost.
pub fn digest(jobs: &[JobSummary], truncated: bool) -> String {
    let mut hash = Fnv::default();
    for job in jobs {
        // Destructured so that a new field cannot be left out of the digest.
        let JobSummary {
            name,
            arn,
            status,
            mode,
            creation_time,
            last_updated_time,
            failure_reason,
            solution_version_arn,
            duration_seconds,
        } = job;
        hash.text(name);
        hash.text(arn);
        hash.text(status);
        hash.optional(mode.as_deref().map(str::as_bytes));
        for time in [creation_time, last_updated_time] {
            let seconds = time.as_ref().map(|t| t.0.as_nanosecond().to_le_bytes());
            hash.optional(seconds.as_ref().map(|b| &b[..]));
        }
        hash.optional(failure_reason.as_deref().map(str::as_bytes));
        hash.optional(solution_version_arn.as_deref().map(str::as_bytes));
        let duration = duration_seconds.map(i64::to_le_bytes);
        hash.optional(duration.as_ref().map(|b| &b[..]));
    }
    hash.bytes(&[u8::from(truncated)]);
    format!("{:016x}-{}", hash.0, jobs.len())
}

/// FNV-1a, 64 bits; each value is length-prefixed so that fields cannot run into each other.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }

    fn optional(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.bytes(&[0]),
            Some(bytes) => {
                self.bytes(&[1]);
                self.bytes(&(bytes.len() as u64).to_le_bytes());
                self.bytes(bytes);
            }
        }
    }
}

/// The newest `max` jobs as status shows them.
pub fn newest(jobs: &[ListedJob], max: usize) -> Vec<JobSummary> {
    let mut ordered: Vec<&ListedJob> = jobs.iter().collect();
    ordered.sort_by(|a, b| newest_first(a, b));
    ordered.into_iter().take(max).map(summary).collect()
}

/// The watched solution version's jobs, once each, in listing order. A listing that shows a
/// job twice (pages shifted while it ran) keeps the view furthest along: finished over
/// unfinished, then the later update. Jobs with neither ARN nor name cannot be told apart and
/// are all kept. The common listing (every job once, all of this solution version) is
/// borrowed, not copied: this runs on every poll.
pub fn relevant_jobs<'a>(
    jobs: &'a [ListedJob],
    solution_version_arn: &str,
) -> Cow<'a, [ListedJob]> {
    let mut first_seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(jobs.len());
    let mut kept: Vec<&ListedJob> = Vec::with_capacity(jobs.len());
    let watched = jobs.iter().filter(|j| {
        j.solution_version_arn
            .as_deref()
            .is_none_or(|sv| sv == solution_version_arn)
    });
    for job in watched {
        let Some(key) = super::ledger::job_key_parts(job) else {
            kept.push(job);
            continue;
        };
        match first_seen.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(job);
            }
            Entry::Occupied(seen) => {
                let view = &mut kept[*seen.get()];
                if further_along(job, view) {
                    *view = job;
                }
            }
        }
    }
    if kept.len() == jobs.len() {
        // Nothing left out and nothing repeated: `kept` is `jobs`.
        Cow::Borrowed(jobs)
    } else {
        Cow::Owned(kept.into_iter().cloned().collect())
    }
}

/// Whether `a` shows a job further along than `b`.
fn further_along(a: &ListedJob, b: &ListedJob) -> bool {
    let finished = |j: &ListedJob| JobState::of(&j.status).finished();
    (finished(a), a.updated) > (finished(b), b.updated)
}

#[cfg(test)]
mod digest_tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    /// A change of any one field, or of the truncation flag, changes the digest; moving bytes
    /// from one field to the next does too.
    #[test]
    fn every_field_counts() {
        let t = |s: i64| Some(Time(jiff::Timestamp::from_second(s).unwrap()));
        let base = JobSummary {
            name: "job".into(),
            arn: "arn".into(),
            status: "ACTIVE".into(),
            mode: Some("BATCH_INFERENCE".into()),
            creation_time: t(1),
            last_updated_time: t(2),
            failure_reason: Some("why".into()),
            solution_version_arn: Some("sv".into()),
            duration_seconds: Some(1),
        };
        let d = |j: &JobSummary| digest(std::slice::from_ref(j), false);
        let variants: Vec<JobSummary> = vec![
            JobSummary {
                name: "jo".into(),
                ..base.clone()
            },
            JobSummary {
                arn: "arm".into(),
                ..base.clone()
            },
            JobSummary {
                status: "FAILED".into(),
                ..base.clone()
            },
            JobSummary {
                mode: None,
                ..base.clone()
            },
            JobSummary {
                creation_time: t(3),
                ..base.clone()
            },
            JobSummary {
                last_updated_time: None,
                ..base.clone()
            },
            JobSummary {
                failure_reason: Some("".into()),
                ..base.clone()
            },
            JobSummary {
                solution_version_arn: None,
                ..base.clone()
            },
            JobSummary {
                duration_seconds: Some(2),
                ..base.clone()
            },
            JobSummary {
                name: "jobarn".into(),
                arn: "".into(),
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(d(v), d(&base), "{v:?}");
        }
        assert_eq!(d(&base), d(&base.clone()));
        assert_ne!(digest(std::slice::from_ref(&base), true), d(&base));
    }
}
