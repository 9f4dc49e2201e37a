//! The emulator's data: batch inference jobs and solution versions, with the API's member names.
//!
//! Timestamps are kept as milliseconds since the epoch and written as epoch seconds (a JSON
//! number), as the awsJson1_1 protocol does for members without a `timestampFormat`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EpochMillis(pub i64);

impl EpochMillis {
    pub fn now() -> Self {
        EpochMillis(jiff::Timestamp::now().as_millisecond())
    }

    fn parse_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .map(|s| s.saturating_mul(1000))
                .or_else(|| n.as_f64().map(|f| (f * 1000.0).round() as i64))
                .map(EpochMillis)
                .ok_or_else(|| format!("timestamp {n} is out of range")),
            Value::String(s) => s
                .parse::<jiff::Timestamp>()
                .map(|t| EpochMillis(t.as_millisecond()))
                .map_err(|e| format!("timestamp {s:?} is neither RFC 3339 nor epoch seconds: {e}")),
            other => Err(format!(
                "timestamp must be a number or a string, got {other}"
            )),
        }
    }
}

impl Serialize for EpochMillis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds as an integer, anything finer as a fraction of milliseconds.
        if self.0 % 1000 == 0 {
            serializer.serialize_i64(self.0 / 1000)
        } else {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for EpochMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        EpochMillis::parse_value(&value).map_err(serde::de::Error::custom)
    }
}

/// A batch inference job. The summary members are typed; the rest of DescribeBatchInferenceJob's
/// members (jobInput, jobOutput, roleArn, ...) are kept as given in `details`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_inference_job_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date_time: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_version_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_inference_job_mode: Option<String>,
    /// Summary members this job's answers leave out, as the service model allows (every summary
    /// member is optional): e.g. `[status, creationDateTime]`. The emulator still knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_members: Vec<String>,
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// The JSON of `item` with only the given members (a List operation's summary shape).
fn only_members(item: &impl Serialize, members: &[&str]) -> Value {
    let mut full = serde_json::to_value(item).unwrap_or_default();
    if let Value::Object(map) = &mut full {
        map.retain(|k, _| members.contains(&k.as_str()));
    }
    full
}

/// The members of `BatchInferenceJobSummary`, in the order the service model lists them.
pub const SUMMARY_MEMBERS: &[&str] = &[
    "batchInferenceJobArn",
    "jobName",
    "status",
    "creationDateTime",
    "lastUpdatedDateTime",
    "failureReason",
    "solutionVersionArn",
    "batchInferenceJobMode",
];

impl Job {
    /// The ListBatchInferenceJobs view: only the summary members, less the absent ones.
    pub fn summary(&self) -> Value {
        let mut summary = only_members(self, SUMMARY_MEMBERS);
        if let Value::Object(map) = &mut summary {
            map.retain(|k, _| !self.absent_members.contains(k));
        }
        summary
    }

    /// The DescribeBatchInferenceJob view: every member, less the absent ones.
    pub fn described(&self) -> Value {
        let mut full = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(map) = &mut full {
            map.remove("absentMembers");
            map.retain(|k, _| !self.absent_members.contains(k));
        }
        full
    }

    /// Overlays the members present in `patch` onto this job.
    pub fn merge(&mut self, patch: Job) {
        macro_rules! take {
            ($($field:ident),*) => { $( if patch.$field.is_some() { self.$field = patch.$field; } )* };
        }
        take!(
            batch_inference_job_arn,
            job_name,
            status,
            creation_date_time,
            last_updated_date_time,
            failure_reason,
            solution_version_arn,
            batch_inference_job_mode
        );
        if !patch.absent_members.is_empty() {
            self.absent_members = patch.absent_members;
        }
        self.details.extend(patch.details);
    }
}

/// A solution version, as DescribeSolutionVersion shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SolutionVersion {
    pub solution_version_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date_time: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

pub const SOLUTION_VERSION_SUMMARY_MEMBERS: &[&str] = &[
    "solutionVersionArn",
    "status",
    "trainingMode",
    "trainingType",
    "creationDateTime",
    "lastUpdatedDateTime",
    "failureReason",
];

impl SolutionVersion {
    pub fn summary(&self) -> Value {
        only_members(self, SOLUTION_VERSION_SUMMARY_MEMBERS)
    }

    /// A solution version named by a job but never declared: ACTIVE, created with the job.
    pub fn implied(arn: &str, created: EpochMillis) -> Self {
        SolutionVersion {
            solution_version_arn: arn.to_string(),
            solution_arn: solution_arn_of(arn),
            status: Some("ACTIVE".into()),
            training_mode: Some("FULL".into()),
            training_type: Some("MANUAL".into()),
            creation_date_time: Some(created),
            last_updated_date_time: Some(created),
            ..Default::default()
        }
    }
}

/// The state file: `{"batchInferenceJobs": [...], "solutionVersions": [...], "identities": [...],
/// "roles": [...], "defaultAccount": "..."}`, JSON or YAML.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateFile {
    #[serde(default)]
    pub batch_inference_jobs: Vec<Job>,
    #[serde(default)]
    pub solution_versions: Vec<SolutionVersion>,
    /// The account of access keys not listed in `identities` (default 123456789012).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_account: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<crate::identity::IdentitySpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::identity::RoleSpec>,
    /// Jobs that move by themselves; see [`crate::simulation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulation: Option<crate::simulation::SimulationSpec>,
}

impl StateFile {
    /// Parses JSON or YAML (JSON is YAML, but JSON errors read better from the JSON parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())
        }
    }
}

/// `arn:aws:personalize:REGION:ACCOUNT:solution/NAME/VERSION` -> `...:solution/NAME`.
pub fn solution_arn_of(solution_version_arn: &str) -> Option<String> {
    let (prefix, version) = solution_version_arn.rsplit_once('/')?;
    (prefix.contains(":solution/") && !version.is_empty()).then(|| prefix.to_string())
}

/// The `arn:PARTITION:personalize:REGION:ACCOUNT:` prefix of an ARN, used to name generated jobs.
pub fn arn_prefix(arn: &str) -> Option<&str> {
    let mut colons = arn.match_indices(':');
    let (fifth, _) = colons.nth(4)?;
    Some(&arn[..=fifth])
}

/// The Smithy pattern `arn:([a-z\d-]+):personalize:.*:.*:.+`; like all Smithy patterns it is
/// not anchored, so it matches anywhere in the value (and `.` does not match a newline).
pub fn matches_personalize_arn(value: &str) -> bool {
    value.split('\n').any(|line| {
        line.match_indices("arn:").any(|(start, _)| {
            let rest = &line[start + 4..];
            let partition_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                .count();
            if partition_len == 0 {
                return false;
            }
            let Some(after) = rest[partition_len..].strip_prefix(":personalize:") else {
                return false;
            };
            // `.*:.*:.+`: two more colons, at least one character after the last.
            match after.rfind(':') {
                Some(last) => after[..last].contains(':') && last + 1 < after.len(),
                None => false,
            }
        })
    })
}

/// The account and region fields of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`).
pub fn arn_region_and_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    let region = parts.nth(3)?;
    Some((region, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_epoch_seconds() {
        let t: EpochMillis = serde_json::from_str("1700000000.123").unwrap();
        assert_eq!(t, EpochMillis(1_700_000_000_123));
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000.123");
        let whole: EpochMillis = serde_json::from_str("1700000000").unwrap();
        assert_eq!(serde_json::to_string(&whole).unwrap(), "1700000000");
        let rfc: EpochMillis = serde_json::from_str("\"2023-11-14T22:13:20Z\"").unwrap();
        assert_eq!(rfc, EpochMillis(1_700_000_000_000));
        assert!(serde_json::from_str::<EpochMillis>("\"yesterday\"").is_err());
    }

    #[test]
    fn arn_pattern_is_the_unanchored_smithy_pattern() {
        assert!(matches_personalize_arn(
            "arn:aws:personalize:us-east-1:123456789012:solution/sol/abcd1234"
        ));
        assert!(matches_personalize_arn("xx arn:aws-cn:personalize:r:a:b"));
        assert!(!matches_personalize_arn("arn:aws:s3:::bucket"));
        assert!(!matches_personalize_arn("arn:AWS:personalize:r:a:b"));
        assert!(!matches_personalize_arn("arn:aws:personalize:r:a:"));
        assert!(!matches_personalize_arn("not-an-arn"));
    }

    #[test]
    fn solution_arn_and_prefix() {
        let sv = "arn:aws:personalize:us-east-1:123456789012:solution/sol/abcd1234";
        assert_eq!(
            solution_arn_of(sv).as_deref(),
            Some("arn:aws:personalize:us-east-1:123456789012:solution/sol")
        );
        assert_eq!(
            arn_prefix(sv),
            Some("arn:aws:personalize:us-east-1:123456789012:")
        );
    }

    #[test]
    fn summary_keeps_only_summary_members() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "batchInferenceJobArn": "a", "jobName": "j", "status": "ACTIVE",
            "roleArn": "arn:aws:iam::123456789012:role/x", "numResults": 5
        }))
        .unwrap();
        let summary = job.summary();
        assert_eq!(summary["jobName"], "j");
        assert!(summary.get("roleArn").is_none());
        assert_eq!(serde_json::to_value(&job).unwrap()["numResults"], 5);
    }

    #[test]
    fn absent_members_are_left_out_of_every_answer() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "batchInferenceJobArn": "a", "jobName": "j", "status": "ACTIVE",
            "absentMembers": ["status", "batchInferenceJobArn"]
        }))
        .unwrap();
        let summary = job.summary();
        assert_eq!(summary, serde_json::json!({"jobName": "j"}));
        let described = job.described();
        assert!(described.get("status").is_none() && described.get("absentMembers").is_none());
    }
}
