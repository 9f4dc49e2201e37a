//! Injected faults: the next `count` matching API requests fail in a chosen way.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 400 ThrottlingException (the SDK retries it).
    Throttle,
    /// 500 with an InternalFailure body (the SDK retries it).
    Error500,
    /// 400 AccessDeniedException.
    AccessDenied,
    /// 400 UnrecognizedClientException: the access key is not known.
    UnrecognizedClient,
    /// Answer normally after `latencyMs`.
    Latency,
    /// Close the connection without an answer.
    Drop,
    /// 200 with a body that is not JSON.
    Malformed,
    /// Answer with the token that was sent (only requests that carry a token match).
    RepeatToken,
    /// 200 with no items and a token that resumes where the request did.
    EmptyPage,
    /// 400 InvalidNextTokenException (only requests that carry a token match).
    InvalidNextToken,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_version_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

fn one() -> u64 {
    1
}

impl FaultRule {
    fn matches(
        &self,
        operation: &str,
        solution_version_arn: Option<&str>,
        has_token: bool,
    ) -> bool {
        let needs_token = matches!(
            self.kind,
            FaultKind::RepeatToken | FaultKind::InvalidNextToken
        );
        self.count > 0
            && (!needs_token || has_token)
            && self
                .operation
                .as_deref()
                .is_none_or(|op| op.eq_ignore_ascii_case(operation))
            && self
                .solution_version_arn
                .as_deref()
                .is_none_or(|sv| Some(sv) == solution_version_arn)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn pending(&self) -> &[FaultRule] {
        &self.rules
    }

    /// The first rule matching this request, with one use taken from it.
    pub fn take(
        &mut self,
        operation: &str,
        solution_version_arn: Option<&str>,
        has_token: bool,
    ) -> Option<FaultRule> {
        let index = self
            .rules
            .iter()
            .position(|r| r.matches(operation, solution_version_arn, has_token))?;
        let rule = &mut self.rules[index];
        rule.count -= 1;
        let taken = rule.clone();
        if rule.count == 0 {
            self.rules.remove(index);
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order_and_filtered() {
        let mut faults = Faults::default();
        faults.add(FaultRule {
            kind: FaultKind::Throttle,
            count: 2,
            operation: Some("ListBatchInferenceJobs".into()),
            solution_version_arn: Some("sv".into()),
            latency_ms: None,
        });
        faults.add(FaultRule {
            kind: FaultKind::RepeatToken,
            count: 1,
            operation: None,
            solution_version_arn: None,
            latency_ms: None,
        });
        assert!(
            faults
                .take("DescribeSolutionVersion", Some("sv"), false)
                .is_none()
        );
        assert!(
            faults
                .take("ListBatchInferenceJobs", Some("other"), false)
                .is_none()
        );
        assert_eq!(
            faults
                .take("listbatchinferencejobs", Some("sv"), false)
                .unwrap()
                .kind,
            FaultKind::Throttle
        );
        assert_eq!(
            faults
                .take("ListBatchInferenceJobs", Some("sv"), false)
                .unwrap()
                .kind,
            FaultKind::Throttle
        );
        // repeatToken only matches a request that carries a token.
        assert!(
            faults
                .take("ListBatchInferenceJobs", Some("sv"), false)
                .is_none()
        );
        assert_eq!(
            faults
                .take("ListBatchInferenceJobs", Some("sv"), true)
                .unwrap()
                .kind,
            FaultKind::RepeatToken
        );
        assert!(faults.pending().is_empty());
    }
}
