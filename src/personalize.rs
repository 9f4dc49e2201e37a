//! The Personalize client: a complete, paginated ListBatchInferenceJobs per poll.
//!
//! One SDK client per region, shared by every watch; credentials from the aws-config default
//! chain (environment, profile, web identity / IRSA, EKS Pod Identity); the endpoint from the
//! standard overrides (`AWS_ENDPOINT_URL_PERSONALIZE`, `AWS_ENDPOINT_URL`) or `--aws-endpoint-url`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_personalize::Client;
use aws_sdk_personalize::config::Region;
use aws_sdk_personalize::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_personalize::operation::list_batch_inference_jobs::{
    ListBatchInferenceJobsError, ListBatchInferenceJobsOutput,
};
use aws_sdk_personalize::primitives::DateTime;
use jiff::Timestamp;

use crate::metrics::Metrics;
use crate::ratelimit::RegionLimiter;
use crate::status::Job;

/// Pages per listing before giving up: 10,000 pages of 100 is a million jobs.
const MAX_PAGES: usize = 10_000;
pub const OPERATION: &str = "ListBatchInferenceJobs";

/// What went wrong with a listing; each kind has a static reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListErrorKind {
    Throttled,
    AccessDenied,
    InvalidCredentials,
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
    pub fn reason(self) -> &'static str {
        match self {
            ListErrorKind::Throttled => "Throttled",
            ListErrorKind::AccessDenied => "AccessDenied",
            ListErrorKind::InvalidCredentials => "InvalidCredentials",
            ListErrorKind::InvalidInput => "InvalidInput",
            ListErrorKind::NotFound => "NotFound",
            ListErrorKind::InvalidNextToken => "InvalidNextToken",
            ListErrorKind::RepeatedToken => "RepeatedToken",
            ListErrorKind::TooManyPages => "TooManyPages",
            ListErrorKind::EndpointUnreachable => "EndpointUnreachable",
            ListErrorKind::Timeout => "Timeout",
            ListErrorKind::MalformedResponse => "MalformedResponse",
            ListErrorKind::ServiceError => "ServiceError",
            ListErrorKind::ClientError => "ClientError",
        }
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
    fn new(kind: ListErrorKind, message: impl Into<String>) -> Self {
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

const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
];

/// Sorts an SDK error into a kind with a message a person can act on. The messages come from
/// the service or the SDK and never carry credentials.
pub fn classify(error: &SdkError<ListBatchInferenceJobsError>) -> ListError {
    use ListErrorKind as K;
    match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = err.code().unwrap_or("");
            let detail = err.message().unwrap_or("no message");
            let status = context.raw().status().as_u16();
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
            ListError::new(kind, format!("{code}: {detail} ({hint})"))
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
                .map(|c| aws_smithy_types_display(c))
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
            format!(
                "could not build the request: {}",
                aws_smithy_types_display(error)
            ),
        ),
        _ => ListError::new(K::ClientError, aws_smithy_types_display(error)),
    }
}

fn aws_smithy_types_display(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    crate::status::truncate_utf8(&text, 2048).to_string()
}

fn timestamp(t: Option<&DateTime>) -> Option<Timestamp> {
    let t = t?;
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

fn jobs_of(page: ListBatchInferenceJobsOutput) -> impl Iterator<Item = Job> {
    page.batch_inference_jobs
        .unwrap_or_default()
        .into_iter()
        .map(|s| Job {
            name: s.job_name().unwrap_or_default().to_string(),
            arn: s.batch_inference_job_arn().unwrap_or_default().to_string(),
            status: s.status().unwrap_or("UNKNOWN").to_string(),
            mode: s.batch_inference_job_mode().map(|m| m.as_str().to_string()),
            created: timestamp(s.creation_date_time()),
            updated: timestamp(s.last_updated_date_time()),
            failure_reason: s.failure_reason().map(str::to_string),
            solution_version_arn: s.solution_version_arn().map(str::to_string),
        })
}

/// How the SDK retries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub endpoint_url: Option<String>,
    pub adaptive_retry: bool,
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
    pub rate_per_second: f64,
    pub burst: u32,
}

/// Shared by every watch: one SDK client per region, one rate limiter per region.
pub struct Personalize {
    base: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
    limiter: RegionLimiter,
    metrics: Arc<Metrics>,
}

impl Personalize {
    /// Credentials, region and endpoint from the standard chain and environment.
    pub async fn new(options: &ClientOptions, metrics: Arc<Metrics>) -> Self {
        Self::from_loader(
            aws_config::defaults(BehaviorVersion::latest()),
            options,
            metrics,
        )
        .await
    }

    /// From a prepared loader (tests give it static credentials).
    pub async fn from_loader(
        loader: aws_config::ConfigLoader,
        options: &ClientOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let retry = if options.adaptive_retry {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        }
        .with_max_attempts(options.max_attempts.max(1));
        let mut loader = loader.retry_config(retry).timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(options.attempt_timeout)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Personalize {
            base: loader.load().await,
            clients: Mutex::default(),
            limiter: RegionLimiter::new(options.rate_per_second, options.burst),
            metrics,
        }
    }

    fn client(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_personalize::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }

    /// Every job of the solution version: all pages, 100 at a time. A token that comes back
    /// again is an error (the SDK's paginator would stop silently and lose jobs); an
    /// InvalidNextTokenException restarts the listing once.
    pub async fn list_jobs(
        &self,
        region: &str,
        solution_version_arn: &str,
    ) -> Result<Vec<Job>, ListError> {
        let client = self.client(region);
        let mut restarted = false;
        'listing: loop {
            let mut jobs = Vec::new();
            let mut token: Option<String> = None;
            let mut seen_tokens = HashSet::new();
            for _ in 0..MAX_PAGES {
                self.limiter.acquire(region).await;
                let result = client
                    .list_batch_inference_jobs()
                    .solution_version_arn(solution_version_arn)
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
                    .await;
                let page = match result {
                    Ok(page) => {
                        self.metrics.personalize_request(OPERATION, "Success");
                        page
                    }
                    Err(e) => {
                        let error = classify(&e);
                        self.metrics
                            .personalize_request(OPERATION, error.kind.reason());
                        if error.kind == ListErrorKind::InvalidNextToken && !restarted {
                            restarted = true;
                            tracing::warn!(
                                solution_version_arn,
                                "InvalidNextTokenException: restarting the listing"
                            );
                            continue 'listing;
                        }
                        return Err(error);
                    }
                };
                let next = page.next_token.clone().filter(|t| !t.is_empty());
                jobs.extend(jobs_of(page));
                match next {
                    None => return Ok(jobs),
                    Some(t) => {
                        if !seen_tokens.insert(t.clone()) {
                            return Err(ListError::new(
                                ListErrorKind::RepeatedToken,
                                "Personalize returned a page token it had returned before; the listing would never end",
                            ));
                        }
                        token = Some(t);
                    }
                }
            }
            return Err(ListError::new(
                ListErrorKind::TooManyPages,
                format!("the listing did not end within {MAX_PAGES} pages"),
            ));
        }
    }
}
