//! A batch inference job as ListBatchInferenceJobs lists it.

use std::borrow::Cow;

use aws_sdk_personalize::primitives::DateTime;
use aws_sdk_personalize::types::{BatchInferenceJobMode, BatchInferenceJobSummary};
use jiff::Timestamp;

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
            failure_reason: s.failure_reason,
            solution_version_arn: s.solution_version_arn,
        }
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
}
