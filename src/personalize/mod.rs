//! The Personalize client: a complete, paginated ListBatchInferenceJobs per poll.
//!
//! One SDK client per region, shared by every watch; credentials from the aws-config default
//! chain (environment, profile, web identity / IRSA, EKS Pod Identity); the endpoint from the
//! standard overrides (`AWS_ENDPOINT_URL_PERSONALIZE`, `AWS_ENDPOINT_URL`) or `--aws-endpoint-url`.

mod error;
mod job;

pub use error::{ListError, ListErrorKind, classify};
pub use job::ListedJob;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_personalize::Client;
use aws_sdk_personalize::config::Region;
use aws_sdk_personalize::operation::list_batch_inference_jobs::ListBatchInferenceJobsOutput;

use crate::metrics::Metrics;
use crate::ratelimit::RegionLimiter;

/// Pages per listing before giving up: 10,000 pages of 100 is a million jobs.
const MAX_PAGES: usize = 10_000;
pub const OPERATION: &str = "ListBatchInferenceJobs";

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

    /// Every job of the solution version: all pages, 100 at a time. An
    /// InvalidNextTokenException restarts the listing once.
    pub async fn list_jobs(
        &self,
        region: &str,
        solution_version_arn: &str,
    ) -> Result<Vec<ListedJob>, ListError> {
        let client = self.client(region);
        match self.list_once(&client, region, solution_version_arn).await {
            Err(e) if e.kind == ListErrorKind::InvalidNextToken => {
                tracing::warn!(
                    solution_version_arn,
                    "InvalidNextTokenException: restarting the listing"
                );
                self.list_once(&client, region, solution_version_arn).await
            }
            listed => listed,
        }
    }

    /// One pass over every page. A token that comes back again is an error: the SDK's
    /// paginator would stop silently and lose jobs.
    async fn list_once(
        &self,
        client: &Client,
        region: &str,
        solution_version_arn: &str,
    ) -> Result<Vec<ListedJob>, ListError> {
        let mut jobs = Vec::new();
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .page(client, region, solution_version_arn, token.take())
                .await?;
            let next = page.next_token.clone().filter(|t| !t.is_empty());
            jobs.extend(
                page.batch_inference_jobs
                    .unwrap_or_default()
                    .into_iter()
                    .map(ListedJob::from),
            );
            let Some(next) = next else {
                return Ok(jobs);
            };
            if !seen_tokens.insert(next.clone()) {
                return Err(ListError::new(
                    ListErrorKind::RepeatedToken,
                    "Personalize returned a page token it had returned before; the listing would never end",
                ));
            }
            token = Some(next);
        }
        Err(ListError::new(
            ListErrorKind::TooManyPages,
            format!("the listing did not end within {MAX_PAGES} pages"),
        ))
    }

    /// One page, within the region's rate limit, counted by outcome.
    async fn page(
        &self,
        client: &Client,
        region: &str,
        solution_version_arn: &str,
        token: Option<String>,
    ) -> Result<ListBatchInferenceJobsOutput, ListError> {
        self.limiter.acquire(region).await;
        let result = client
            .list_batch_inference_jobs()
            .solution_version_arn(solution_version_arn)
            .max_results(100)
            .set_next_token(token)
            .send()
            .await;
        match result {
            Ok(page) => {
                self.metrics.personalize_request(OPERATION, "Success");
                Ok(page)
            }
            Err(e) => {
                let error = classify(&e);
                self.metrics
                    .personalize_request(OPERATION, error.kind.reason().as_str());
                Err(error)
            }
        }
    }
}
