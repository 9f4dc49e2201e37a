//! A batch inference job as ListBatchInferenceJobs lists it.

use std::borrow::Cow;

use aws_sdk_personalize::primitives::DateTime;
use aws_sdk_personalize::types::{BatchInferenceJobMode, BatchInferenceJobSummary};
use jiff::Timestamp;

use crate::text::truncate_utf8;

/// A failure reason is cut to this many bytes as it is read: the status and Events show no
/// more, and a listing of long reasons is held at this size, not the service's.
pub const MAX_FAILURE_REASON_BYTES: usize = 1024;

/// One job of a listing. Every member is optional in the service model; what a summary leaves
/// out stays empty here (an unknown status counts as "other", never as finished).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListedJob {
    pub name: String,
    pub arn: String,
    pub status: String,
    /// A mode the SDK knows is its constant: a listing allocates nothing for it.
    pub mode: Option<Cow<'static, str>>,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub failure_reason: Option<String>,
    pub solution_version_arn: Option<String>,
}

fn mode(mode: &BatchInferenceJobMode) -> Cow<'static, str> {
    let text = mode.as_str();
    match BatchInferenceJobMode::values()
        .iter()
        .find(|known| **known == text)
    {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(text.to_owned()),
    }
}

/// The reason cut to [`MAX_FAILURE_REASON_BYTES`], its allocation with it.
fn cut_reason(mut reason: String) -> String {
    let kept = truncate_utf8(&reason, MAX_FAILURE_REASON_BYTES).len();
    if kept < reason.len() {
        reason.truncate(kept);
        reason.shrink_to_fit();
    }
    reason
}

fn timestamp(t: Option<&DateTime>) -> Option<Timestamp> {
    let t = t?;
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

impl From<BatchInferenceJobSummary> for ListedJob {
    /// Takes the summary's strings over rather than copying them: a listing converts every job
    /// of every page on every poll.
    fn from(s: BatchInferenceJobSummary) -> Self {
        ListedJob {
            name: s.job_name.unwrap_or_default(),
            arn: s.batch_inference_job_arn.unwrap_or_default(),
            status: s.status.unwrap_or_else(|| "UNKNOWN".to_string()),
            mode: s.batch_inference_job_mode.as_ref().map(mode),
            created: timestamp(s.creation_date_time.as_ref()),
            updated: timestamp(s.last_updated_date_time.as_ref()),
            failure_reason: s.failure_reason.map(cut_reason),
            solution_version_arn: s.solution_version_arn,
        }
    }
}

impl ListedJob {
    /// About the memory this job holds: the struct and its strings' allocations.
    pub fn held_bytes(&self) -> usize {
        let owned_mode = match &self.mode {
            Some(Cow::Owned(m)) => m.capacity(),
            _ => 0,
        };
        let optional = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        std::mem::size_of::<Self>()
            + self.name.capacity()
            + self.arn.capacity()
            + self.status.capacity()
            + owned_mode
            + optional(&self.failure_reason)
            + optional(&self.solution_version_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_modes_are_the_sdk_constants_and_unknown_ones_kept_as_sent() {
        let listed = |m: &str| {
            let summary = BatchInferenceJobSummary::builder()
                .batch_inference_job_mode(BatchInferenceJobMode::from(m))
                .build();
            ListedJob::from(summary).mode
        };
        assert!(matches!(
            listed("BATCH_INFERENCE"),
            Some(Cow::Borrowed("BATCH_INFERENCE"))
        ));
        assert!(matches!(
            listed("THEME_GENERATION"),
            Some(Cow::Borrowed("THEME_GENERATION"))
        ));
        assert!(matches!(listed("NEW_MODE"), Some(Cow::Owned(m)) if m == "NEW_MODE"));
        assert_eq!(
            ListedJob::from(BatchInferenceJobSummary::builder().build()).mode,
            None
        );
    }

    #[test]
    fn a_long_reason_is_cut_as_it_is_read_and_what_it_held_goes_with_it() {
        let long = "é".repeat(40_000);
        let summary = BatchInferenceJobSummary::builder()
            .job_name("j")
            .failure_reason(long)
            .build();
        let job = ListedJob::from(summary);
        let reason = job.failure_reason.as_deref().unwrap();
        assert_eq!(reason.len(), MAX_FAILURE_REASON_BYTES);
        assert!(job.held_bytes() < MAX_FAILURE_REASON_BYTES + 512);
        let short = BatchInferenceJobSummary::builder()
            .failure_reason("no access to s3://bucket")
            .build();
        assert_eq!(
            ListedJob::from(short).failure_reason.as_deref(),
            Some("no access to s3://bucket")
        );
    }
}
