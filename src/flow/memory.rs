//! A bound, in bytes, on the job lists that reconciles build and write at once. Writing a long
//! list holds it twice over (the summaries, then the request body) until the API server answers,
//! and the API server is slowest on exactly those writes: bounded by their number alone,
//! reconciles in flight pile long lists up (docs/performance.md, the memory curve). A reconcile
//! waits after listing, before deciding: its listing is held either way, its list not yet built.
//! Short lists, the usual case, never wait.

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::personalize::{ListedJob, Listing};
use crate::status::jobs::Shown;

/// What all reconciles together may hold in job lists being decided and written: about four
/// lists of 200 summaries with 1 KiB failure reasons, or some sixty of the default 50 with short
/// ones (the memory curve at 1,000 watches: the peak at 200 went from +45% of the peak at 0 to
/// +7%, converging as fast, since the API server bounds those writes anyway).
pub const JOB_LISTS_BYTES: usize = 1 << 20;
/// Bytes per permit.
const UNIT: usize = 1024;

pub struct JobListMemory {
    permits: Semaphore,
    units: usize,
}

impl JobListMemory {
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        JobListMemory {
            permits: Semaphore::new(units),
            units,
        }
    }

    /// Waits until `bytes` more fit; a list larger than the whole budget waits for all of it.
    /// Held until the guard is dropped; nothing to hold is never a wait.
    pub async fn hold(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        let units = bytes.div_ceil(UNIT).min(self.units);
        let units = u32::try_from(units).ok().filter(|u| *u > 0)?;
        // Never closed, so acquiring only ends with the permits.
        self.permits.acquire_many(units).await.ok()
    }
}

/// About how many bytes the summaries of the `shown` newest jobs of `listing` hold: the
/// listing's average job times the jobs shown (an estimate needs no sort).
pub fn summaries_bytes(listing: &Listing, shown: usize) -> usize {
    let listed = listing.jobs.len();
    if listed == 0 || shown == 0 {
        return 0;
    }
    let text: usize = listing.jobs.iter().map(text_bytes).sum();
    text / listed * shown.min(listed)
}

/// The bytes of a job's strings as its summary shows them, and room for the rest.
fn text_bytes(job: &ListedJob) -> usize {
    const REST: usize = 128;
    Shown::listed(job).text_len() + REST
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ListingSource;
    use futures::FutureExt;

    fn listing(jobs: usize, reason: usize) -> Listing {
        let jobs = (0..jobs)
            .map(|i| ListedJob {
                name: format!("job-{i:04}"),
                failure_reason: Some("r".repeat(reason)),
                ..Default::default()
            })
            .collect();
        Listing {
            jobs,
            source: ListingSource::default(),
            started: std::time::Instant::now(),
        }
    }

    #[test]
    fn the_estimate_follows_the_jobs_shown_and_their_text() {
        let long = listing(200, 1024);
        assert_eq!(summaries_bytes(&long, 0), 0, "no list shown, nothing held");
        let all = summaries_bytes(&long, 200);
        assert!((200 * 1024..200 * 1400).contains(&all), "{all}");
        assert_eq!(summaries_bytes(&long, 400), all, "at most every job listed");
        assert_eq!(summaries_bytes(&long, 50), all / 4);
        assert_eq!(summaries_bytes(&listing(0, 0), 50), 0);
    }

    #[test]
    fn holds_wait_only_for_the_bytes_held_before_them() {
        let budget = JobListMemory::new(10 * UNIT);
        assert!(budget.hold(0).now_or_never().unwrap().is_none());
        let first = budget.hold(6 * UNIT).now_or_never().unwrap();
        assert!(first.is_some());
        assert!(
            budget.hold(4 * UNIT).now_or_never().is_some(),
            "what fits goes on"
        );
        assert!(
            budget.hold(5 * UNIT).now_or_never().is_none(),
            "what does not fit waits"
        );
        drop(first);
        assert!(budget.hold(5 * UNIT).now_or_never().is_some());
    }

    #[test]
    fn a_list_larger_than_the_budget_waits_for_all_of_it_not_forever() {
        let budget = JobListMemory::new(10 * UNIT);
        let huge = budget.hold(100 * UNIT).now_or_never().unwrap();
        assert!(huge.is_some());
        assert!(budget.hold(1).now_or_never().is_none());
        drop(huge);
        assert!(budget.hold(100 * UNIT).now_or_never().is_some());
    }
}
