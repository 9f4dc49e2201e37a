//! What can go wrong with a listing: a kind with a static reason, and a message a person can
//! act on, sorted from the SDK's errors. The messages come from the service or the SDK and never
//! carry credentials.

use aws_sdk_personalize::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_personalize::operation::list_batch_inference_jobs::ListBatchInferenceJobsError;

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
    EndpointUnreachable,
    Timeout,
    MalformedResponse,
    ServiceError,
    ClientError,
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
            ListErrorKind::EndpointUnreachable => Reason::EndpointUnreachable,
            ListErrorKind::Timeout => Reason::Timeout,
            ListErrorKind::MalformedResponse => Reason::MalformedResponse,
            ListErrorKind::ServiceError => Reason::ServiceError,
            ListErrorKind::ClientError => Reason::ClientError,
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

/// Sorts an SDK error into a kind with a message a person can act on.
pub fn classify(error: &SdkError<ListBatchInferenceJobsError>) -> ListError {
    use ListErrorKind as K;
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            service_error(context.err(), status)
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
            "Personalize sent a response that could not be read (cut short or not valid JSON)",
        ),
        SdkError::ConstructionFailure(_) => ListError::new(
            K::ClientError,
            format!("could not build the request: {}", error_chain(error, 2048)),
        ),
        _ => ListError::new(K::ClientError, error_chain(error, 2048)),
    }
}

/// An error the service answered, by its code (and the HTTP status when the code says nothing).
fn service_error(err: &ListBatchInferenceJobsError, status: u16) -> ListError {
    use ListErrorKind as K;
    let code = err.code().unwrap_or("");
    let (kind, hint) = if err.is_invalid_input_exception() {
        (K::InvalidInput, "check spec.solutionVersionArn")
    } else if err.is_invalid_next_token_exception() {
        (K::InvalidNextToken, "the listing is restarted once")
    } else if THROTTLING_CODES.contains(&code) {
        (
            K::Throttled,
            "Personalize is throttling this account and region; retrying with backoff",
        )
    } else if code == "AccessDeniedException" || code == "AccessDenied" {
        (
            K::AccessDenied,
            "grant the operator's IAM role personalize:ListBatchInferenceJobs",
        )
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
        (K::NotFound, "check spec.solutionVersionArn and spec.region")
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
