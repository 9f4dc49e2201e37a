//! Injected faults: the next `count` matching API requests fail in a chosen way.

use serde::{Deserialize, Serialize};

use crate::api::{Operation, Outcome, error_outcome};
use crate::identity::Principal;

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
    /// The listing leaves out the `jobs` most recently updated matching jobs on every page, as
    /// eventual consistency would (only first pages match: `count` counts listings).
    Omit,
    /// 400 ExpiredTokenException: temporary credentials that expired (clients refresh them).
    ExpiredToken,
    /// 503 ServiceUnavailableException (the SDKs retry it).
    ServiceUnavailable,
    /// 200 with a valid but enormous body (an empty page padded past 8 MiB with a member the
    /// model does not have), as a hostile endpoint might send to exhaust a client's memory.
    Oversized,
    /// Every job of the page carries a failure reason of [`LONG_REASON_BYTES`], keeping the
    /// answer under 4 MiB: a listing of many such pages is the memory a hostile or huge service
    /// can make a client hold. `count` counts pages.
    LongReasons,
}

/// The failure reason of every job on a `longReasons` page.
pub const LONG_REASON_BYTES: usize = 32 * 1024;

/// The size of an `oversized` answer.
pub const OVERSIZED_BYTES: usize = 8 * 1024 * 1024 + 1;

impl FaultKind {
    /// The answer this fault gives instead of the service's, for the kinds that replace it.
    /// The others change the service's own answer (a page, a token) or only delay it.
    pub fn replacement(self, operation: Operation, caller: &Principal) -> Option<Outcome> {
        let outcome = match self {
            FaultKind::Throttle => error_outcome(400, "ThrottlingException", "Rate exceeded"),
            FaultKind::Error500 => error_outcome(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error.",
            ),
            FaultKind::AccessDenied => error_outcome(
                400,
                "AccessDeniedException",
                &format!(
                    "User: {} is not authorized to perform: personalize:{}",
                    caller.arn,
                    operation.name()
                ),
            ),
            FaultKind::UnrecognizedClient => error_outcome(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            FaultKind::InvalidNextToken => {
                error_outcome(400, "InvalidNextTokenException", "Invalid next token")
            }
            FaultKind::Drop => Outcome::Drop,
            FaultKind::ExpiredToken => error_outcome(
                400,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            FaultKind::ServiceUnavailable => error_outcome(
                503,
                "ServiceUnavailableException",
                "Service is unavailable, please try again later.",
            ),
            FaultKind::Malformed => Outcome::Respond {
                status: 200,
                error_type: None,
                body: "{\"batchInferenceJobs\": [ {\"jobName\": ".into(),
                delay_ms: 0,
            },
            FaultKind::Oversized => {
                let envelope = "{\"batchInferenceJobs\": [], \"padding\": \"\"}";
                let padding = "x".repeat(OVERSIZED_BYTES.saturating_sub(envelope.len()));
                Outcome::Respond {
                    status: 200,
                    error_type: None,
                    body: format!("{{\"batchInferenceJobs\": [], \"padding\": \"{padding}\"}}"),
                    delay_ms: 0,
                }
            }
            FaultKind::Latency
            | FaultKind::RepeatToken
            | FaultKind::EmptyPage
            | FaultKind::Omit
            | FaultKind::LongReasons => return None,
        };
        Some(outcome)
    }
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
    /// Let this many matching requests through before the rule applies (e.g. fail page 7).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after: u64,
    /// For `omit`: how many jobs each listing leaves out (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
}

fn one() -> u64 {
    1
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FaultRule {
    /// One use of `kind`, on any request it can match.
    pub fn new(kind: FaultKind) -> Self {
        FaultRule {
            kind,
            count: 1,
            operation: None,
            solution_version_arn: None,
            latency_ms: None,
            after: 0,
            jobs: None,
        }
    }

    /// Applies from the `n + 1`-th matching request on.
    pub fn after(self, n: u64) -> Self {
        FaultRule { after: n, ..self }
    }

    /// For `omit`: how many jobs each listing leaves out.
    pub fn jobs(self, jobs: usize) -> Self {
        FaultRule {
            jobs: Some(jobs),
            ..self
        }
    }

    /// Used up after `count` matching requests.
    pub fn times(self, count: u64) -> Self {
        FaultRule { count, ..self }
    }

    /// Only requests naming this solution version (or solution, or job ARN).
    pub fn for_subject(self, arn: &str) -> Self {
        FaultRule {
            solution_version_arn: Some(arn.to_string()),
            ..self
        }
    }

    /// Only requests of this operation.
    pub fn for_operation(self, operation: Operation) -> Self {
        FaultRule {
            operation: Some(operation.name().to_string()),
            ..self
        }
    }

    /// For `latency`: how long to hold the answer.
    pub fn latency_ms(self, ms: u64) -> Self {
        FaultRule {
            latency_ms: Some(ms),
            ..self
        }
    }

    /// The service's answer, held back for `latencyMs` when this is a latency fault.
    pub fn delayed(&self, outcome: Outcome) -> Outcome {
        match (self.kind, outcome) {
            (
                FaultKind::Latency,
                Outcome::Respond {
                    status,
                    error_type,
                    body,
                    ..
                },
            ) => Outcome::Respond {
                status,
                error_type,
                body,
                delay_ms: self.latency_ms.unwrap_or(1000),
            },
            (_, outcome) => outcome,
        }
    }

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
        // An omission is decided when a listing starts, and holds for its every page.
        let first_page_only = self.kind == FaultKind::Omit;
        self.count > 0
            && (!needs_token || has_token)
            && (!first_page_only || !has_token)
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

    /// The first rule matching this request, with one use taken from it. Rules still letting
    /// requests through (`after`) count this one and let it pass.
    pub fn take(
        &mut self,
        operation: &str,
        solution_version_arn: Option<&str>,
        has_token: bool,
    ) -> Option<FaultRule> {
        let mut matching = self
            .rules
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| r.matches(operation, solution_version_arn, has_token));
        let index = loop {
            let (index, rule) = matching.next()?;
            if rule.after == 0 {
                break index;
            }
            rule.after -= 1;
        };
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
        faults.add(
            FaultRule::new(FaultKind::Throttle)
                .times(2)
                .for_operation(Operation::ListBatchInferenceJobs)
                .for_subject("sv"),
        );
        faults.add(FaultRule::new(FaultKind::RepeatToken));
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

    #[test]
    fn after_lets_requests_through_and_omit_matches_first_pages() {
        let mut faults = Faults::default();
        faults.add(FaultRule::new(FaultKind::Throttle).after(2));
        faults.add(FaultRule::new(FaultKind::Omit).times(2));
        // The throttle lets two requests through; the omission takes first pages meanwhile.
        let take = |f: &mut Faults, token| {
            f.take("ListBatchInferenceJobs", None, token)
                .map(|r| r.kind)
        };
        assert_eq!(take(&mut faults, false), Some(FaultKind::Omit));
        assert_eq!(take(&mut faults, true), None);
        assert_eq!(take(&mut faults, true), Some(FaultKind::Throttle));
        assert_eq!(take(&mut faults, false), Some(FaultKind::Omit));
        assert_eq!(take(&mut faults, false), None);
    }
}
