//! The object's size. etcd refuses objects over 1.5 MiB; the status stays under a budget well
//! below that, whatever the listing holds, by showing fewer job summaries.

use super::jobs::Shown;
use crate::crd::{JobSummary, SolutionVersionWatchStatus};

/// The status's budget in bytes of JSON: about half of etcd's limit, leaving room for metadata,
/// spec and managed fields.
pub const STATUS_MAX_BYTES: usize = 768 * 1024;

/// The status's size as JSON, counted as it is serialized (nothing kept: this runs on every
/// poll).
pub fn size(status: &SolutionVersionWatchStatus) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, status) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// A writer that only counts what it is given.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drops the oldest job summaries until the status fits the budget; returns how many went.
/// Counts, conditions and the ledger are never cut: they are bounded on their own.
pub fn fit(status: &mut SolutionVersionWatchStatus) -> usize {
    if surely_fits(status) {
        return 0;
    }
    let mut over = size(status).saturating_sub(STATUS_MAX_BYTES);
    let mut dropped = 0;
    // Drop by estimate first (one serialization per summary), then check exactly.
    while over > 0 {
        let Some(job) = status.jobs.pop() else { break };
        over = over.saturating_sub(job_size(&job) + 1);
        status.jobs_truncated = true;
        dropped += 1;
    }
    while size(status) > STATUS_MAX_BYTES && status.jobs.pop().is_some() {
        status.jobs_truncated = true;
        dropped += 1;
    }
    dropped
}

/// Whether the status fits without measuring its job list exactly: everything but the list is
/// serialized (it is small), the list is bounded from its strings' lengths. Serializing every
/// summary on every poll (timestamps formatted, strings escaped) was a tenth of a quiet poll.
fn surely_fits(status: &mut SolutionVersionWatchStatus) -> bool {
    let jobs = std::mem::take(&mut status.jobs);
    let fits = fits_with(status, jobs.iter().map(Shown::summarized));
    status.jobs = jobs;
    fits
}

/// Whether `status`, whose job list is left out, surely fits with `jobs` as its list.
pub fn fits_with<'a>(
    status: &SolutionVersionWatchStatus,
    jobs: impl IntoIterator<Item = Shown<'a>>,
) -> bool {
    let bound = jobs.into_iter().map(|j| job_size_bound(&j)).sum::<usize>() + 2;
    size(status).saturating_add(bound) <= STATUS_MAX_BYTES
}

/// At most this many bytes of JSON: JSON escapes a byte into at most 6 (`\u001f`), and the
/// keys, quotes, timestamps and numbers of one summary take well under 512.
fn job_size_bound(job: &Shown<'_>) -> usize {
    6 * job.text_len() + 512
}

fn job_size(job: &JobSummary) -> usize {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, job).map_or(0, |()| counter.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Control characters, quotes and backslashes escape the longest.
        "[\\x00-\\x1f\"\\\\a-zé€]{0,40}"
    }

    proptest! {
        /// The bound never says less than the summary's JSON.
        #[test]
        fn the_bound_holds_whatever_the_strings(
            strings in prop::collection::vec(text(), 6),
            seconds in prop::option::of(0i64..4_000_000_000),
            duration in prop::option::of(any::<i64>()),
        ) {
            let time = seconds
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(Time);
            let job = JobSummary {
                name: strings[0].clone(),
                arn: strings[1].clone(),
                status: strings[2].clone(),
                mode: Some(strings[3].clone()),
                creation_time: time.clone(),
                last_updated_time: time,
                failure_reason: Some(strings[4].clone()),
                solution_version_arn: Some(strings[5].clone()),
                duration_seconds: duration,
            };
            prop_assert!(job_size(&job) <= job_size_bound(&Shown::summarized(&job)));
        }
    }

    #[test]
    fn a_status_that_surely_fits_is_left_whole_and_a_huge_one_is_cut() {
        let job = |n: usize| JobSummary {
            name: format!("job-{n}"),
            failure_reason: Some("r".repeat(1024)),
            ..Default::default()
        };
        let mut small = SolutionVersionWatchStatus {
            jobs: (0..50).map(job).collect(),
            ..Default::default()
        };
        assert!(surely_fits(&mut small));
        assert_eq!(small.jobs.len(), 50, "the list is put back");
        assert_eq!(fit(&mut small), 0);
        let mut huge = SolutionVersionWatchStatus {
            jobs: (0..2000).map(job).collect(),
            ..Default::default()
        };
        assert!(fit(&mut huge) > 0);
        assert!(size(&huge) <= STATUS_MAX_BYTES);
        assert!(huge.jobs_truncated);
    }
}
