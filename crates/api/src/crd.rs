//! The SolutionVersionWatch custom resource: spec, status and the generated CRD.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::outbox::Outbox;

/// Largest `maxJobsInStatus`: 200 summaries of at most about 1.5 KiB each keep the object far
/// below etcd's 1.5 MiB limit.
pub const MAX_JOBS_IN_STATUS: i32 = 200;
pub const DEFAULT_MAX_JOBS_IN_STATUS: i32 = 50;

/// Watches every batch inference job of one AWS Personalize solution version, or of a solution
/// and every version it has or will have (Personalize retrains a solution into new versions).
///
/// The operator lists the jobs (ListBatchInferenceJobs, every page) on each poll, writes exact
/// counts per state and the newest jobs into status, and emits one Event for each job that fails
/// (Warning BatchInferenceJobFailed) or completes (Normal BatchInferenceJobCompleted).
// clippy reads the repeated printcolumn(...) keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "personalize-watch.dev",
    version = "v1alpha1",
    kind = "SolutionVersionWatch",
    plural = "solutionversionwatches",
    singular = "solutionversionwatch",
    shortname = "svw",
    category = "personalize",
    namespaced,
    status = "SolutionVersionWatchStatus",
    derive = "PartialEq",
    doc = "SolutionVersionWatch reports the batch inference jobs of a Personalize solution version, or of a solution, in status and Events.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.counts.total"),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.counts.pending"
    ),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.counts.inProgress"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.counts.active"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.counts.failed"
    ),
    printcolumn(
        name = "Stuck",
        type_ = "integer",
        json_path = ".status.counts.stuck",
        priority = 1
    ),
    printcolumn(
        name = "Latest",
        type_ = "string",
        json_path = ".status.latestJob.status"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Versions",
        type_ = "integer",
        json_path = ".status.versionsTotal",
        priority = 1
    ),
    printcolumn(
        name = "ARN",
        type_ = "string",
        json_path = ".spec.solutionVersionArn",
        priority = 1
    ),
    printcolumn(
        name = "Solution",
        type_ = "string",
        json_path = ".spec.solutionArn",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.solutionVersionArn) != has(self.solutionArn)")
        .message("set exactly one of spec.solutionVersionArn (one version) and spec.solutionArn (every version of a solution)")
        .reason(kube::core::Reason::FieldValueInvalid)
)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.solutionArn) == has(oldSelf.solutionArn)")
        .message("a watch cannot change between spec.solutionVersionArn and spec.solutionArn: create a new SolutionVersionWatch")
        .reason(kube::core::Reason::FieldValueInvalid)
)]
#[x_kube(
    validation = kube::core::Rule::new(
        concat!(
            "!has(self.region)",
            " || (has(self.solutionVersionArn) && self.region == self.solutionVersionArn.split(':')[3])",
            " || (has(self.solutionArn) && self.region == self.solutionArn.split(':')[3])"
        )
    )
    .message("spec.region must be the region inside spec.solutionVersionArn or spec.solutionArn")
    .field_path(".region")
    .reason(kube::core::Reason::FieldValueInvalid)
)]
pub struct SolutionVersionWatchSpec {
    /// ARN of the solution version whose batch inference jobs are watched:
    /// arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME/ID, e.g.
    /// arn:aws:personalize:us-east-1:123456789012:solution/my-solution/abcd1234.
    /// Immutable: create another SolutionVersionWatch to watch another solution version.
    /// Exactly one of solutionVersionArn and solutionArn is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = crate::arn::PATTERN))]
    #[x_kube(
        validation = kube::core::Rule::new(crate::arn::partition_rule())
            .message(
                "spec.solutionVersionArn: the region is not in the ARN's partition (e.g. cn-north-1 is in aws-cn)"
            )
            .reason(kube::core::Reason::FieldValueInvalid)
    )]
    #[x_kube(
        validation = kube::core::Rule::new("self == oldSelf")
            .message(
                "solutionVersionArn is immutable: create a new SolutionVersionWatch to watch another solution version"
            )
            .reason(kube::core::Reason::FieldValueInvalid)
    )]
    pub solution_version_arn: Option<String>,

    /// ARN of a solution whose batch inference jobs are watched, of every version it has or
    /// will have, so a watch follows Personalize's retraining with no edit:
    /// arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME, e.g.
    /// arn:aws:personalize:us-east-1:123456789012:solution/my-solution.
    /// Immutable; exactly one of solutionVersionArn and solutionArn is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = crate::arn::SOLUTION_PATTERN))]
    #[x_kube(
        validation = kube::core::Rule::new(crate::arn::partition_rule())
            .message(
                "spec.solutionArn: the region is not in the ARN's partition (e.g. cn-north-1 is in aws-cn)"
            )
            .reason(kube::core::Reason::FieldValueInvalid)
    )]
    #[x_kube(
        validation = kube::core::Rule::new("self == oldSelf")
            .message(
                "solutionArn is immutable: create a new SolutionVersionWatch to watch another solution"
            )
            .reason(kube::core::Reason::FieldValueInvalid)
    )]
    pub solution_arn: Option<String>,

    /// AWS region to call: the region inside the watched ARN, which it may only repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), regex(pattern = crate::arn::REGION_PATTERN))]
    pub region: Option<String>,

    /// How often to list the jobs while none is PENDING or IN PROGRESS, as a duration such as
    /// 30s, 5m or 1h. At least 5s. Defaults to the operator's --default-poll-interval (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('5s')").message("pollInterval must be at least 5s"))]
    pub poll_interval: Option<String>,

    /// How often to list the jobs while any job is PENDING or IN PROGRESS. At least 5s.
    /// Defaults to the operator's --default-active-poll-interval (1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('5s')").message("activePollInterval must be at least 5s"))]
    pub active_poll_interval: Option<String>,

    /// Stop polling. The status keeps the last listing and a condition says polling is suspended.
    #[serde(default)]
    pub suspend: bool,

    /// How many of the newest jobs to show in status.jobs (0 to 200). Counts always cover all jobs.
    #[serde(default = "default_max_jobs_in_status")]
    #[schemars(range(min = 0, max = 200))]
    pub max_jobs_in_status: i32,

    /// A job PENDING or IN PROGRESS for longer than this since its creation is stuck: it is
    /// counted in status.counts.stuck and announced once (Warning BatchInferenceJobStuck).
    /// At least 5s; unset: no job is ever stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('5s')").message("stuckAfter must be at least 5s"))]
    pub stuck_after: Option<String>,

    /// A new job is expected at least this often: when the newest job (or, without jobs, the
    /// watch itself) is older, the condition Overdue is True and one Warning
    /// NoRecentBatchInferenceJob Event announces the episode. At least 1m; unset: never overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('1m')").message("expectNewJobWithin must be at least 1m"))]
    pub expect_new_job_within: Option<String>,
}

impl SolutionVersionWatchSpec {
    /// A spec of `solution_version_arn` and every other field at its default, as applying
    /// only the ARN stores it; tests and examples change what they need from there.
    pub fn watching(solution_version_arn: impl Into<String>) -> Self {
        SolutionVersionWatchSpec {
            solution_version_arn: Some(solution_version_arn.into()),
            solution_arn: None,
            region: None,
            poll_interval: None,
            active_poll_interval: None,
            suspend: false,
            max_jobs_in_status: default_max_jobs_in_status(),
            stuck_after: None,
            expect_new_job_within: None,
        }
    }
}

impl SolutionVersionWatchSpec {
    /// A spec of `solution_arn`, every other field at its default.
    pub fn watching_solution(solution_arn: impl Into<String>) -> Self {
        SolutionVersionWatchSpec {
            solution_version_arn: None,
            solution_arn: Some(solution_arn.into()),
            ..Self::watching("")
        }
    }

    /// The watched ARN as written: the solution version's, or the solution's (empty when the
    /// spec names neither, which the schema refuses).
    pub fn watched_arn(&self) -> &str {
        self.solution_version_arn
            .as_deref()
            .or(self.solution_arn.as_deref())
            .unwrap_or_default()
    }
}

/// Most versions `status.versions` lists; older ones are folded into the totals only.
pub const MAX_VERSIONS_IN_STATUS: usize = 20;

fn default_max_jobs_in_status() -> i32 {
    DEFAULT_MAX_JOBS_IN_STATUS
}

/// What the operator last saw of the solution version's batch inference jobs.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SolutionVersionWatchStatus {
    /// The metadata.generation this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Stalled, Reconciling, EventsPublished and (with spec.expectNewJobWithin) Overdue,
    /// one of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Exact counts over all jobs of the solution version, from the last complete listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<JobCounts>,

    /// The newest job of all (also when spec.maxJobsInStatus is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_job: Option<LatestJob>,

    /// The newest jobs, newest first, at most spec.maxJobsInStatus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobSummary>,

    /// For a solution watch: the jobs of each solution version that has any, newest version
    /// first (by its first job's creation), at most 20; status.counts covers all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionCounts>,

    /// How many entries status.versions shows (a solution watch only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_shown: Option<i64>,

    /// How many solution versions have jobs (a solution watch only); above versionsShown,
    /// the oldest are left out of status.versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_total: Option<i64>,

    /// True when status.jobs leaves out older jobs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jobs_truncated: bool,

    /// A digest of status.jobs: the operator's cache keeps this instead of the job list, and
    /// writes the list only when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_digest: Option<String>,

    /// When the last complete listing finished. A listing that changes nothing else is not
    /// written, so this moves at least every --status-heartbeat (10m by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// True when the last poll failed and counts and jobs are from an earlier listing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,

    /// The durable record that makes each job's Event happen exactly once, across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<EventLedger>,
}

/// Jobs by state.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCounts {
    /// All jobs of the solution version (of every version of a solution).
    pub total: i64,
    /// Jobs in PENDING.
    pub pending: i64,
    /// Jobs in IN PROGRESS.
    pub in_progress: i64,
    /// Jobs in ACTIVE (finished successfully).
    pub active: i64,
    /// Jobs in CREATE FAILED.
    pub failed: i64,
    /// Jobs in any other state (a state this operator does not know yet).
    pub other: i64,
    /// Jobs PENDING or IN PROGRESS for longer than spec.stuckAfter (also in pending or
    /// inProgress).
    #[serde(default)]
    pub stuck: i64,
}

/// One solution version's jobs, by state.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCounts {
    /// The solution version's ARN.
    pub solution_version_arn: String,
    /// Its jobs by state, as status.counts counts all of them.
    pub counts: JobCounts,
}

/// The newest job, for people and printer columns.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestJob {
    /// jobName.
    pub name: String,
    /// status, as AWS reports it.
    pub status: String,
    /// creationDateTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
}

/// One batch inference job, as ListBatchInferenceJobs summarises it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// jobName.
    pub name: String,
    /// batchInferenceJobArn.
    pub arn: String,
    /// status, as AWS reports it (PENDING, IN PROGRESS, ACTIVE, CREATE FAILED, ...).
    pub status: String,
    /// batchInferenceJobMode (BATCH_INFERENCE or THEME_GENERATION).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// creationDateTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    /// lastUpdatedDateTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<Time>,
    /// failureReason, cut to 1 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// solutionVersionArn: the watched one, or for a solution watch the version the job ran
    /// against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_version_arn: Option<String>,
    /// For a finished job: lastUpdatedDateTime minus creationDateTime, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

/// What has been announced, kept in status so that Events happen exactly once even when the
/// operator restarts, leadership moves, status.jobs is truncated, or a listing leaves jobs out.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventLedger {
    /// Where the listings came from. Another region or endpoint starts a new baseline: one
    /// summary Event, no Event per historical job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ListingSource>,
    /// Jobs that finished at or before this time are accounted for: announced, or finished
    /// before the watch's first listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<Time>,
    /// Ids of jobs to announce when they are seen finished (seen unfinished, or waiting for room
    /// in the outbox), oldest first. An id leaves only when its job is seen finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<String>,
    /// Finished jobs after the horizon that are accounted for: id to when the job finished (or
    /// was announced, if later), in seconds since the epoch. Pruned by that age, never by a
    /// listing that leaves a job out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub finished: BTreeMap<String, i64>,
    /// Ids of unfinished jobs already announced as stuck; an id leaves with its job's id in
    /// `open`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<String>,
    /// When the silence of the overdue episode last announced began (spec.expectNewJobWithin):
    /// that episode is not announced again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue_announced: Option<Time>,
    /// Events decided but not yet published (an outbox, bounded).
    #[serde(default, skip_serializing_if = "Outbox::is_empty")]
    pub outbox: Outbox,
}

/// The region and endpoint a listing used.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListingSource {
    /// The AWS region called.
    pub region: String,
    /// The endpoint override, or "default" for the partition's Personalize endpoint.
    pub endpoint: String,
}

/// An Event to publish.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingEvent {
    /// Failed, Completed, Discovered, Stuck, Overdue or PollFailed.
    pub kind: AnnouncementKind,
    /// What the Event is about: the job's ARN (its name when the listing gave no ARN), the
    /// baseline for Discovered, the episode for Overdue and PollFailed. With the watch's UID and
    /// the reason it names the Event, so a second publish of the same Event finds it there.
    #[serde(rename = "id")]
    pub subject: String,
    /// The job's name (empty for Discovered).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_name: String,
    /// The Event's note.
    pub note: String,
    /// A finished job's duration in seconds, for the duration histogram when its Event is
    /// first published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// For PollFailed: the poll's failure reason, the Event's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an Event announces.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AnnouncementKind {
    /// A job reached CREATE FAILED.
    Failed,
    /// A job reached ACTIVE.
    Completed,
    /// The first listing's summary of jobs that had already finished.
    Discovered,
    /// A job PENDING or IN PROGRESS for longer than spec.stuckAfter.
    Stuck,
    /// No new job within spec.expectNewJobWithin: one per episode.
    Overdue,
    /// A poll failed: one per reason within a failure episode.
    PollFailed,
}

/// The CRD as YAML, as `personalize-watch crd` prints it and crds/ holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&SolutionVersionWatch::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_crd_matches_the_rust_types() {
        let generated = crd_yaml().unwrap();
        let checked_in =
            include_str!("../../../crds/solutionversionwatches.personalize-watch.dev.yaml");
        assert!(
            generated == checked_in,
            "crds/ is out of date: run `make crds` (cargo run -- crd > crds/solutionversionwatches.personalize-watch.dev.yaml)"
        );
    }

    #[test]
    fn every_field_has_a_description() {
        let crd = serde_json::to_value(SolutionVersionWatch::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        fn walk(path: &str, node: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
                for (name, child) in props {
                    let p = format!("{path}.{name}");
                    if child.get("description").is_none()
                        && !["metadata", "apiVersion", "kind"].contains(&name.as_str())
                    {
                        missing.push(p.clone());
                    }
                    walk(&p, child, missing);
                }
            }
            if let Some(items) = node.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
        }
        let mut missing = Vec::new();
        walk("", &schema["properties"]["spec"], &mut missing);
        walk("", &schema["properties"]["status"], &mut missing);
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }

    #[test]
    fn spec_defaults_apply() {
        let spec: SolutionVersionWatchSpec = serde_json::from_value(serde_json::json!({
            "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/v"
        }))
        .unwrap();
        assert_eq!(spec.poll_interval, None);
        assert_eq!(spec.active_poll_interval, None);
        assert_eq!(spec.max_jobs_in_status, 50);
        assert!(!spec.suspend);
    }
}
