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

use rand::Rng;

use crate::crd::ListingSource;
use crate::metrics::Metrics;
use crate::ratelimit::RegionLimiter;

/// Pages per listing before giving up: 10,000 pages of 100 is a million jobs.
const MAX_PAGES: usize = 10_000;
/// A page that fails with an error that may pass is asked for again this many times, after
/// growing pauses, before the listing fails: the listing goes on from that page, not page 1.
const PAGE_RETRIES: u32 = 2;
const PAGE_RETRY_PAUSE: Duration = Duration::from_secs(1);
pub const OPERATION: &str = "ListBatchInferenceJobs";

/// Every job of a solution version, and where the listing came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub jobs: Vec<ListedJob>,
    pub source: ListingSource,
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
    /// The endpoint override every client uses, if any.
    endpoint: Option<String>,
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
        let loader = loader.retry_config(retry).timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(options.attempt_timeout)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
        Personalize {
            base: loader.load().await,
            endpoint: options.endpoint_url.clone().or_else(endpoint_from_env),
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
                let mut config = aws_sdk_personalize::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()));
                config.set_endpoint_url(self.endpoint.clone());
                Client::from_conf(config.build())
            })
            .clone()
    }

    /// Where a listing in `region` goes.
    pub fn source(&self, region: &str) -> ListingSource {
        ListingSource {
            region: region.to_string(),
            endpoint: self.endpoint.clone().unwrap_or_else(|| "default".into()),
        }
    }

    /// Every job of the solution version: all pages, 100 at a time. An
    /// InvalidNextTokenException restarts the listing once.
    pub async fn list_jobs(
        &self,
        region: &str,
        solution_version_arn: &str,
    ) -> Result<Listing, ListError> {
        let jobs = self
            .list_jobs_once_or_twice(region, solution_version_arn)
            .await?;
        Ok(Listing {
            jobs,
            source: self.source(region),
        })
    }

    async fn list_jobs_once_or_twice(
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
                .page_with_retries(client, region, solution_version_arn, token.take())
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

    /// One page; a failure that may pass is asked for again (the same page, the same token).
    async fn page_with_retries(
        &self,
        client: &Client,
        region: &str,
        solution_version_arn: &str,
        token: Option<String>,
    ) -> Result<ListBatchInferenceJobsOutput, ListError> {
        let mut pause = PAGE_RETRY_PAUSE;
        for _ in 0..PAGE_RETRIES {
            match self
                .page(client, region, solution_version_arn, token.clone())
                .await
            {
                Err(e) if e.kind.transient() => {
                    tracing::debug!(solution_version_arn, error = %e, "asking for the page again");
                    let jittered = pause.mul_f64(rand::rng().random_range(0.8..=1.0));
                    tokio::time::sleep(jittered).await;
                    pause *= 2;
                }
                answered => return answered,
            }
        }
        self.page(client, region, solution_version_arn, token).await
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

/// The standard endpoint overrides, as the SDK reads them: `AWS_ENDPOINT_URL_PERSONALIZE`, then
/// `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.
fn endpoint_from_env() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    var("AWS_ENDPOINT_URL_PERSONALIZE").or_else(|| var("AWS_ENDPOINT_URL"))
}
