//! Counts and the bounded job list: what `kubectl get svw` shows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use crate::crd::{JobCounts, JobSummary, LatestJob};
use crate::personalize::ListedJob;
use crate::text::truncate_utf8;

use super::whole_seconds;

/// failureReason in status.jobs is cut to this many bytes, as the listing already cuts it.
pub use crate::personalize::MAX_FAILURE_REASON_BYTES;

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
    counts_of(jobs)
}

/// [`counts`] of any jobs (stuck left at 0).
pub fn counts_of<'a>(jobs: impl IntoIterator<Item = &'a ListedJob>) -> JobCounts {
    let mut c = JobCounts::default();
    for job in jobs {
        c.total += 1;
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

pub use personalize_watch_api::describe::describe_counts;

/// A job as status.jobs shows it, borrowed from the listing or from a summary. The listing's
/// fields become a summary's only here, so a listing's digest and its summaries' agree and a
/// quiet poll can compare its list with the stored one without building it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shown<'a> {
    pub name: &'a str,
    pub arn: &'a str,
    pub status: &'a str,
    pub mode: Option<&'a str>,
    pub creation_time: Option<Timestamp>,
    pub last_updated_time: Option<Timestamp>,
    pub failure_reason: Option<&'a str>,
    pub solution_version_arn: Option<&'a str>,
    pub duration_seconds: Option<i64>,
}

impl<'a> Shown<'a> {
    /// Times in whole seconds, the failure reason cut to [`MAX_FAILURE_REASON_BYTES`].
    pub fn listed(job: &'a ListedJob) -> Self {
        Shown {
            name: &job.name,
            arn: &job.arn,
            status: &job.status,
            mode: job.mode.as_deref(),
            creation_time: job.created.map(whole_seconds),
            last_updated_time: job.updated.map(whole_seconds),
            failure_reason: job
                .failure_reason
                .as_deref()
                .map(|r| truncate_utf8(r, MAX_FAILURE_REASON_BYTES)),
            solution_version_arn: job.solution_version_arn.as_deref(),
            duration_seconds: crate::events::announcements::duration_seconds(job),
        }
    }

    pub fn summarized(job: &'a JobSummary) -> Self {
        // Destructured so that a new field cannot be left out of the view.
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
        Shown {
            name,
            arn,
            status,
            mode: mode.as_deref(),
            creation_time: creation_time.as_ref().map(|t| t.0),
            last_updated_time: last_updated_time.as_ref().map(|t| t.0),
            failure_reason: failure_reason.as_deref(),
            solution_version_arn: solution_version_arn.as_deref(),
            duration_seconds: *duration_seconds,
        }
    }

    pub fn to_summary(self) -> JobSummary {
        JobSummary {
            name: self.name.to_owned(),
            arn: self.arn.to_owned(),
            status: self.status.to_owned(),
            mode: self.mode.map(str::to_owned),
            creation_time: self.creation_time.map(Time),
            last_updated_time: self.last_updated_time.map(Time),
            failure_reason: self.failure_reason.map(str::to_owned),
            solution_version_arn: self.solution_version_arn.map(str::to_owned),
            duration_seconds: self.duration_seconds,
        }
    }

    /// The bytes of text it holds (JSON escaping aside).
    pub fn text_len(&self) -> usize {
        // Destructured so that a new string cannot be left out of the sum.
        let Shown {
            name,
            arn,
            status,
            mode,
            creation_time: _,
            last_updated_time: _,
            failure_reason,
            solution_version_arn,
            duration_seconds: _,
        } = self;
        name.len()
            + arn.len()
            + status.len()
            + [mode, failure_reason, solution_version_arn]
                .iter()
                .map(|s| s.map_or(0, str::len))
                .sum::<usize>()
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

/// A digest of the job list as status shows it ([`Fingerprint`] over every field of every
/// summary, with the truncation flag): equal digests mean the same list. Fields are hashed directly, not
/// through JSON: this runs on every poll, and serializing was most of its cost.
pub fn digest<'a>(jobs: impl IntoIterator<Item = Shown<'a>>, truncated: bool) -> String {
    let mut hash = Fingerprint::default();
    let mut count = 0;
    for job in jobs {
        // Destructured so that a new field cannot be left out of the digest.
        let Shown {
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
        hash.optional(mode.map(str::as_bytes));
        for time in [creation_time, last_updated_time] {
            let nanos = time.map(|t| t.as_nanosecond().to_le_bytes());
            hash.optional(nanos.as_ref().map(|b| &b[..]));
        }
        hash.optional(failure_reason.map(str::as_bytes));
        hash.optional(solution_version_arn.map(str::as_bytes));
        let duration = duration_seconds.map(i64::to_le_bytes);
        hash.optional(duration.as_ref().map(|b| &b[..]));
        count += 1;
    }
    hash.bytes(&[u8::from(truncated)]);
    let hex = hash.finish_hex();
    // Hex digits only, so always UTF-8.
    format!("{}-{count}", std::str::from_utf8(&hex).unwrap_or_default())
}

/// The digest of summaries already built.
pub fn digest_of(jobs: &[JobSummary], truncated: bool) -> String {
    digest(jobs.iter().map(Shown::summarized), truncated)
}

/// SHA-256 over length-prefixed values (so that fields cannot run into each other), cut to 128
/// bits: the job-list digest and, over the raw bytes of a job's key, the ledger's job ids.
/// Collision-resistant: whoever can create jobs in the watched account cannot make two jobs
/// share an id (a lost Event) or two lists a digest (FNV-1a, used before, could be made to).
/// Its cost per poll is a bench row (docs/performance.md, "Hashing").
#[derive(Default)]
pub(crate) struct Fingerprint(Sha256);

impl Fingerprint {
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
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

    /// The first 128 bits, as 32 lowercase hex digits.
    pub(crate) fn finish_hex(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digest = self.0.finalize();
        let mut hex = [0; 32];
        for (i, byte) in digest.iter().take(16).enumerate() {
            hex[2 * i] = DIGITS[usize::from(byte >> 4)];
            hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        hex
    }
}

/// The newest `max` jobs, newest first: the ones status shows.
pub fn newest(jobs: &[ListedJob], max: usize) -> Vec<&ListedJob> {
    let mut ordered: Vec<&ListedJob> = jobs.iter().collect();
    ordered.sort_by(|a, b| newest_first(a, b));
    ordered.truncate(max);
    ordered
}

/// The watched solution version's (or solution's) jobs, once each, in listing order. A listing that shows a
/// job twice (pages shifted while it ran) keeps the view furthest along: finished over
/// unfinished, then the later update. Jobs with neither ARN nor name cannot be told apart and
/// are all kept. The common listing (every job once, all watched) is borrowed, not copied: this
/// runs on every poll. The ledger takes new jobs up in an order of its own
/// ([`crate::events::ledger`]), so the listing's order decides nothing.
pub fn relevant_jobs<'a>(jobs: &'a [ListedJob], watched_arn: &str) -> Cow<'a, [ListedJob]> {
    let mut first_seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(jobs.len());
    let mut kept: Vec<&ListedJob> = Vec::with_capacity(jobs.len());
    let watched = jobs.iter().filter(|j| {
        j.solution_version_arn
            .as_deref()
            .is_none_or(|sv| crate::access::arn::covers(watched_arn, sv))
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
        let d = |j: &JobSummary| digest_of(std::slice::from_ref(j), false);
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
        assert_ne!(digest_of(std::slice::from_ref(&base), true), d(&base));
    }
}
