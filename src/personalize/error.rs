//! What can go wrong with a listing: a kind with a static reason, and a message a person can
//! act on, sorted from the SDK's errors. The messages come from the service or the SDK and never
//! carry credentials; namespace users read them, so principal ARNs and accounts other than the
//! watch's own are redacted (AWS AccessDenied messages name the caller).

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;

use aws_sdk_personalize::error::{ProvideErrorMetadata, SdkError};

use super::ListRequest;
use crate::access::RoleRef;
use crate::reasons::Reason;
use crate::text::error_chain;

/// What went wrong with a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListErrorKind {
    Throttled,
    AccessDenied,
    InvalidCredentials,
    ExpiredCredentials,
    InvalidInput,
    NotFound,
    InvalidNextToken,
    RepeatedToken,
    TooManyPages,
    /// An account-wide listing passed its deadline: its leader's interval.
    TooSlow,
    /// The listing passed `--max-listing-jobs` or `--max-listing-bytes`.
    TooLarge,
    EndpointUnreachable,
    Timeout,
    MalformedResponse,
    ServiceError,
    ClientError,
    /// The namespace's policy stopped allowing the account while the listing was under way.
    AccessWithdrawn,
}

impl ListErrorKind {
    pub const fn reason(self) -> Reason {
        match self {
            ListErrorKind::Throttled => Reason::Throttled,
            ListErrorKind::AccessDenied => Reason::AccessDenied,
            ListErrorKind::InvalidCredentials => Reason::InvalidCredentials,
            ListErrorKind::ExpiredCredentials => Reason::ExpiredCredentials,
            ListErrorKind::InvalidInput => Reason::InvalidInput,
            ListErrorKind::NotFound => Reason::NotFound,
            ListErrorKind::InvalidNextToken => Reason::InvalidNextToken,
            ListErrorKind::RepeatedToken => Reason::RepeatedToken,
            ListErrorKind::TooManyPages => Reason::TooManyPages,
            ListErrorKind::TooSlow => Reason::Timeout,
            ListErrorKind::TooLarge => Reason::ListingTooLarge,
            ListErrorKind::EndpointUnreachable => Reason::EndpointUnreachable,
            ListErrorKind::Timeout => Reason::Timeout,
            ListErrorKind::MalformedResponse => Reason::MalformedResponse,
            ListErrorKind::ServiceError => Reason::ServiceError,
            ListErrorKind::ClientError => Reason::ClientError,
            ListErrorKind::AccessWithdrawn => Reason::NotPermitted,
        }
    }

    /// Errors that may clear on their own, so a failed page is worth asking for again.
    pub fn transient(self) -> bool {
        matches!(
            self,
            ListErrorKind::Throttled
                | ListErrorKind::ExpiredCredentials
                | ListErrorKind::EndpointUnreachable
                | ListErrorKind::Timeout
                | ListErrorKind::MalformedResponse
                | ListErrorKind::ServiceError
        )
    }

    /// Errors that only a change of spec or IAM can fix.
    pub fn stalled(self) -> bool {
        matches!(
            self,
            ListErrorKind::AccessDenied
                | ListErrorKind::InvalidCredentials
                | ListErrorKind::InvalidInput
                | ListErrorKind::NotFound
        )
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[error("{message}")]
pub struct ListError {
    pub kind: ListErrorKind,
    pub message: String,
}

impl ListError {
    pub fn new(kind: ListErrorKind, message: impl Into<String>) -> Self {
        ListError {
            kind,
            message: message.into(),
        }
    }
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
];

/// Temporary credentials past their expiry: the provider refreshes them, so this passes.
const EXPIRED_CODES: &[&str] = &["ExpiredTokenException", "ExpiredToken", "RequestExpired"];

const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
];

/// Sorts an SDK error into a kind with a message a person can act on, safe to show in the
/// watch's namespace.
/// `operation` names the call (ListBatchInferenceJobs, or ListSolutionVersions for a solution
/// watch) in the hint for a refusal.
pub fn classify<E>(error: &SdkError<E>, request: &ListRequest<'_>, operation: &str) -> ListError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let account = &request.arn.account;
    if let Some(credentials) = credentials_error(error) {
        return credentials_failure(credentials, request.role, account);
    }
    let mut sorted = sort(error, operation);
    sorted.message = redact(&sorted.message, account);
    sorted
}

fn sort<E>(error: &SdkError<E>, operation: &str) -> ListError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    use ListErrorKind as K;
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            service_error(context.err(), status, operation)
        }
        SdkError::TimeoutError(_) => ListError::new(
            K::Timeout,
            "Personalize did not answer in time; retrying with backoff",
        ),
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                "timed out connecting to"
            } else if failure.is_io() {
                "could not connect to"
            } else {
                "could not send the request to"
            };
            let detail = failure
                .as_connector_error()
                .map(|c| error_chain(c, 2048))
                .unwrap_or_default();
            ListError::new(
                K::EndpointUnreachable,
                format!("{what} the Personalize endpoint: {detail}"),
            )
        }
        SdkError::ResponseError(_) => ListError::new(
            K::MalformedResponse,
            "Personalize sent a response that could not be read (cut short, too large or not valid JSON)",
        ),
        SdkError::ConstructionFailure(_) => ListError::new(
            K::ClientError,
            format!("could not build the request: {}", error_chain(error, 2048)),
        ),
        _ => ListError::new(K::ClientError, error_chain(error, 2048)),
    }
}

/// The credential provider's error, when the call failed for want of credentials.
fn credentials_error<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e CredentialsError> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

/// No credentials: without a role, the chain found none (only configuration helps); with one,
/// STS refused the role (AccessDenied, naming it) or could not be reached (retried).
fn credentials_failure(
    error: &CredentialsError,
    role: Option<&RoleRef>,
    account: &str,
) -> ListError {
    use ListErrorKind as K;
    let detail = redact(&error_chain(error, 2048), account);
    let Some(role) = role else {
        return ListError::new(
            K::InvalidCredentials,
            format!("the operator has no AWS credentials: {detail}"),
        );
    };
    let refused = [
        "AccessDenied",
        "InvalidClientTokenId",
        "ValidationError",
        "RegionDisabled",
    ]
    .iter()
    .any(|code| detail.contains(code));
    let kind = if refused {
        K::AccessDenied
    } else {
        K::EndpointUnreachable
    };
    let hint = if refused {
        "check the role's trust policy and external ID, and the account-roles ConfigMap"
    } else {
        "retrying with backoff"
    };
    ListError::new(
        kind,
        format!(
            "could not assume role {} for this account: {detail} ({hint})",
            role.role_arn
        ),
    )
}

/// An error the service answered, by its code (and the HTTP status when the code says nothing).
fn service_error(err: &impl ProvideErrorMetadata, status: u16, operation: &str) -> ListError {
    use ListErrorKind as K;
    let code = err.code().unwrap_or("");
    let grant = format!("grant the operator's IAM role personalize:{operation}");
    let (kind, hint) = if code == "InvalidInputException" {
        (
            K::InvalidInput,
            "check spec.solutionVersionArn or spec.solutionArn",
        )
    } else if code == "InvalidNextTokenException" {
        (K::InvalidNextToken, "the listing is restarted once")
    } else if THROTTLING_CODES.contains(&code) {
        (
            K::Throttled,
            "Personalize is throttling this account and region; retrying with backoff",
        )
    } else if code == "AccessDeniedException" || code == "AccessDenied" {
        (K::AccessDenied, grant.as_str())
    } else if EXPIRED_CODES.contains(&code) {
        (
            K::ExpiredCredentials,
            "the operator's temporary AWS credentials expired; they are refreshed and the call retried",
        )
    } else if CREDENTIAL_CODES.contains(&code) {
        (
            K::InvalidCredentials,
            "the operator's AWS credentials are not valid for this account and region",
        )
    } else if code == "ResourceNotFoundException" {
        (
            K::NotFound,
            "check spec.solutionVersionArn or spec.solutionArn, and spec.region",
        )
    } else if (200..300).contains(&status) {
        // A success status whose body did not parse: the SDK reports it as unhandled.
        (
            K::MalformedResponse,
            "Personalize sent a response that could not be read; retrying with backoff",
        )
    } else if status >= 500 {
        (K::ServiceError, "Personalize failed; retrying with backoff")
    } else {
        (K::ServiceError, "unexpected error from Personalize")
    };
    let code = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_string()
    };
    let detail = err.message().unwrap_or("no message");
    ListError::new(kind, format!("{code}: {detail} ({hint})"))
}

/// What namespace users may read of an AWS message: principal ARNs (`arn:*:iam::` and
/// `arn:*:sts::`, which name the operator's identity) and 12-digit numbers other than
/// `account` (the watch's own) are replaced.
pub fn redact(message: &str, account: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while !rest.is_empty() {
        let token_end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '(' | ')'))
            .map_or(rest.len(), |i| i.max(1));
        let (token, tail) = rest.split_at(token_end);
        out.push_str(&redact_token(token, account));
        rest = tail;
    }
    out
}

fn redact_token(token: &str, account: &str) -> String {
    let service = token.strip_prefix("arn:").and_then(|r| r.split(':').nth(1));
    if matches!(service, Some("iam" | "sts")) {
        return "[redacted principal]".into();
    }
    // Digit runs of exactly twelve: account IDs.
    let mut out = String::with_capacity(token.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() == 12 && digits != account {
            out.push_str("[redacted account]");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in token.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_messages_lose_the_callers_identity() {
        let aws = concat!(
            "User: arn:aws:sts::123456789012:assumed-role/operator/i-0abc is not authorized to ",
            "perform: personalize:ListBatchInferenceJobs on resource: ",
            "arn:aws:personalize:us-east-1:222222222222:solution/s/v because no identity-based ",
            "policy allows it (account 123456789012)"
        );
        let shown = redact(aws, "222222222222");
        assert!(!shown.contains("123456789012"), "{shown}");
        assert!(!shown.contains("assumed-role"), "{shown}");
        assert!(
            shown.contains("arn:aws:personalize:us-east-1:222222222222:solution/s/v"),
            "{shown}"
        );
        assert!(
            shown.starts_with("User: [redacted principal] is not authorized"),
            "{shown}"
        );
        assert_eq!(
            redact("page 1234567890123 of 12", "1"),
            "page 1234567890123 of 12"
        );
    }
}
