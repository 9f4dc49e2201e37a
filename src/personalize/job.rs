//! A batch inference job as ListBatchInferenceJobs lists it.

use aws_sdk_personalize::primitives::DateTime;
use aws_sdk_personalize::types::BatchInferenceJobSummary;
use jiff::Timestamp;

/// One job of a listing. Every member is optional in the service model; what a summary leaves
/// out stays empty here (an unknown status counts as "other", never as finished).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListedJob {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub mode: Option<String>,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub failure_reason: Option<String>,
    pub solution_version_arn: Option<String>,
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
            mode: s.batch_inference_job_mode.map(|m| m.as_str().to_string()),
            created: timestamp(s.creation_date_time.as_ref()),
            updated: timestamp(s.last_updated_date_time.as_ref()),
            failure_reason: s.failure_reason,
            solution_version_arn: s.solution_version_arn,
        }
    }
}
