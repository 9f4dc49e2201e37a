//! How much of a listing is held: a service that lists without end, or with huge members, fails
//! the poll at a bound instead of filling the operator's memory. Failure reasons are already cut
//! as they are read (`MAX_FAILURE_REASON_BYTES`), so a bound counts what is really held.

use super::error::{ListError, ListErrorKind};
use super::job::ListedJob;

/// The most one listing may hold. Each reconcile at work holds at most one listing, so the
/// process holds at most `--concurrency` times this, plus one page (4 MiB) per listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingBounds {
    pub max_jobs: usize,
    pub max_bytes: usize,
}

impl ListingBounds {
    /// 25,000 jobs, about 10 MiB with the service's usual members; 16 MiB holds them with room
    /// for longer names. Sixteen listings at once stay under the chart's 256 MiB only in the
    /// worst case of all of them at the bound at once.
    pub const DEFAULT: ListingBounds = ListingBounds {
        max_jobs: 25_000,
        max_bytes: 16 * 1024 * 1024,
    };

    /// Fails once the listing holds more than either bound.
    pub fn check(&self, size: &ListingSize) -> Result<(), ListError> {
        if size.jobs > self.max_jobs {
            return Err(ListError::new(
                ListErrorKind::TooLarge,
                format!(
                    "the listing has more than {} jobs (--max-listing-jobs); the last good status stays",
                    self.max_jobs
                ),
            ));
        }
        if size.bytes > self.max_bytes {
            return Err(ListError::new(
                ListErrorKind::TooLarge,
                format!(
                    "the listing holds more than {} bytes after {} jobs (--max-listing-bytes); the last good status stays",
                    self.max_bytes, size.jobs
                ),
            ));
        }
        Ok(())
    }
}

impl Default for ListingBounds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a listing holds so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListingSize {
    pub jobs: usize,
    pub bytes: usize,
}

impl ListingSize {
    pub fn add(&mut self, jobs: &[ListedJob]) {
        self.jobs += jobs.len();
        self.bytes += jobs.iter().map(ListedJob::held_bytes).sum::<usize>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(reason: usize) -> ListedJob {
        ListedJob {
            name: "nightly".into(),
            failure_reason: Some("r".repeat(reason)),
            ..Default::default()
        }
    }

    #[test]
    fn a_listing_past_either_bound_fails_with_the_bound_it_passed() {
        let bounds = ListingBounds {
            max_jobs: 3,
            max_bytes: 4096,
        };
        let mut size = ListingSize::default();
        size.add(&[job(10), job(10)]);
        assert_eq!(bounds.check(&size), Ok(()));
        size.add(&[job(10), job(10)]);
        let jobs = bounds.check(&size).unwrap_err();
        assert_eq!(jobs.kind, ListErrorKind::TooLarge);
        assert!(jobs.message.contains("more than 3 jobs"), "{jobs}");

        let mut size = ListingSize::default();
        size.add(&[job(1024), job(1024)]);
        assert_eq!(bounds.check(&size), Ok(()));
        size.add(&[job(2048)]);
        let bytes = bounds.check(&size).unwrap_err();
        assert_eq!(bytes.kind, ListErrorKind::TooLarge);
        assert!(
            bytes.message.contains("more than 4096 bytes after 3 jobs"),
            "{bytes}"
        );
    }

    #[test]
    fn the_default_bounds_hold_twenty_five_thousand_jobs_of_the_usual_size() {
        let usual = ListedJob {
            name: "nightly-2026-11-28".into(),
            arn: format!(
                "arn:aws:personalize:eu-west-1:123456789012:batch-inference-job/{:>40}",
                ""
            ),
            status: "ACTIVE".into(),
            solution_version_arn: Some(format!(
                "arn:aws:personalize:eu-west-1:123456789012:solution/{:>60}",
                ""
            )),
            ..Default::default()
        };
        let mut size = ListingSize::default();
        size.add(&vec![usual; 25_000]);
        assert_eq!(ListingBounds::DEFAULT.check(&size), Ok(()));
    }
}
