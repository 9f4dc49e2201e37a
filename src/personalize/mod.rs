//! The Personalize client: a complete, paginated ListBatchInferenceJobs per poll.
//!
//! One SDK client per region, shared by every watch; credentials from the aws-config default
//! chain (environment, profile, web identity / IRSA, EKS Pod Identity); the endpoint from the
//! standard overrides (`AWS_ENDPOINT_URL_PERSONALIZE`, `AWS_ENDPOINT_URL`) or `--aws-endpoint-url`.

mod bounds;
mod clients;
mod error;
mod job;

pub use bounds::{ListingBounds, ListingSize};
pub use clients::{ClientOptions, Clients, OwnAccountError, SESSION_NAME};
pub use error::{ListError, ListErrorKind, classify, redact};
pub use job::{ListedJob, MAX_FAILURE_REASON_BYTES};

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_personalize::Client;
use aws_sdk_personalize::operation::list_batch_inference_jobs::ListBatchInferenceJobsOutput;

use rand::Rng;

use crate::access::RoleRef;
use crate::access::arn::SolutionVersionArn;
use crate::crd::ListingSource;
use crate::flow::rate::RegionLimiter;
use crate::flow::turns::Slot;
use crate::metrics::Metrics;

/// Pages per listing before giving up, whatever the pages hold (empty pages with a token).
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

/// One listing: where, what, on whose behalf (the namespace's turn at the rate limit), and
/// with which role.
#[derive(Clone, Copy)]
pub struct ListRequest<'a> {
    pub arn: &'a SolutionVersionArn,
    pub namespace: &'a str,
    pub role: Option<&'a RoleRef>,
    /// Asked before every page after the first: false once the namespace's policy no longer
    /// allows the ARN, and the listing stops there.
    pub allowed: &'a (dyn Fn() -> bool + Send + Sync),
    /// The reconcile's admission slot, given up while the listing waits for a rate token or
    /// before asking for a page again (none outside a reconcile).
    pub slot: Option<&'a Slot>,
}

impl ListRequest<'_> {
    /// Waits for `wait` without the reconcile's slot.
    async fn away<F: Future>(&self, wait: F) -> F::Output {
        match self.slot {
            Some(slot) => slot.away(wait).await,
            None => wait.await,
        }
    }
}

/// Shared by every watch: the clients, and one fair rate limiter per region.
pub struct Personalize {
    clients: Clients,
    limiter: RegionLimiter,
    bounds: ListingBounds,
    metrics: Arc<Metrics>,
}

impl Personalize {
    /// Credentials, region and endpoint from the standard chain and environment.
    pub async fn new(options: &ClientOptions, metrics: Arc<Metrics>) -> Self {
        let clients = Clients::from_env(options).await;
        Self::with_clients(clients, options, metrics)
    }

    /// From a prepared loader (tests give it static credentials).
    pub async fn from_loader(
        loader: aws_config::ConfigLoader,
        options: &ClientOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let clients = Clients::load(loader, options).await;
        Self::with_clients(clients, options, metrics)
    }

    fn with_clients(clients: Clients, options: &ClientOptions, metrics: Arc<Metrics>) -> Self {
        Personalize {
            clients,
            limiter: RegionLimiter::new(options.rate_per_second, options.burst),
            bounds: options.listing_bounds,
            metrics,
        }
    }

    /// Where a listing in `region` goes.
    pub fn source(&self, region: &str) -> ListingSource {
        ListingSource {
            region: region.to_string(),
            endpoint: self.clients.endpoint().unwrap_or("default").to_string(),
        }
    }

    /// The account of the operator's own identity (STS GetCallerIdentity), asked once.
    pub async fn own_account(&self) -> Result<String, OwnAccountError> {
        self.clients.own_account().await
    }

    /// The operator's own account, if STS has told it already.
    pub fn known_own_account(&self) -> Option<String> {
        self.clients.known_own_account()
    }

    /// Every job of the solution version: all pages, 100 at a time. An
    /// InvalidNextTokenException restarts the listing once. A role that cannot be assumed is
    /// AccessDenied, naming the role.
    pub async fn list_jobs(&self, request: &ListRequest<'_>) -> Result<Listing, ListError> {
        let client = self.clients.get(&request.arn.region, request.role).await;
        let listed = match self.list_once(&client, request).await {
            Err(e) if e.kind == ListErrorKind::InvalidNextToken => {
                tracing::warn!(
                    solution_version_arn = request.arn.as_str(),
                    "InvalidNextTokenException: restarting the listing"
                );
                self.list_once(&client, request).await
            }
            listed => listed,
        };
        Ok(Listing {
            jobs: listed?,
            source: self.source(&request.arn.region),
        })
    }

    /// One pass over every page. A token that comes back again is an error: the SDK's
    /// paginator would stop silently and lose jobs.
    async fn list_once(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
    ) -> Result<Vec<ListedJob>, ListError> {
        let mut jobs = Vec::new();
        let mut size = ListingSize::default();
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        for page_number in 0..MAX_PAGES {
            if page_number > 0 && !(request.allowed)() {
                return Err(ListError::new(
                    ListErrorKind::AccessWithdrawn,
                    "the namespace's access policy stopped allowing this ARN during the listing",
                ));
            }
            let page = self
                .page_with_retries(client, request, token.take())
                .await?;
            let next = page.next_token.clone().filter(|t| !t.is_empty());
            let before = jobs.len();
            let listed = page.batch_inference_jobs.unwrap_or_default();
            jobs.extend(listed.into_iter().map(ListedJob::from));
            size.add(&jobs[before..]);
            self.bounds.check(&size)?;
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
        request: &ListRequest<'_>,
        token: Option<String>,
    ) -> Result<ListBatchInferenceJobsOutput, ListError> {
        let mut pause = PAGE_RETRY_PAUSE;
        for _ in 0..PAGE_RETRIES {
            match self.page(client, request, token.clone()).await {
                Err(e) if e.kind.transient() => {
                    let sv = request.arn.as_str();
                    tracing::debug!(solution_version_arn = sv, error = %e, "asking for the page again");
                    let jittered = pause.mul_f64(rand::rng().random_range(0.8..=1.0));
                    request.away(tokio::time::sleep(jittered)).await;
                    pause *= 2;
                }
                answered => return answered,
            }
        }
        self.page(client, request, token).await
    }

    /// One page, within the region's rate limit, counted by outcome.
    async fn page(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
        token: Option<String>,
    ) -> Result<ListBatchInferenceJobsOutput, ListError> {
        let bucket = self.limiter.bucket(&request.arn.region);
        if !bucket.try_acquire() {
            request.away(bucket.acquire(request.namespace)).await;
        }
        let result = client
            .list_batch_inference_jobs()
            .solution_version_arn(request.arn.as_str())
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
                let error = classify(&e, request);
                self.metrics
                    .personalize_request(OPERATION, error.kind.reason().as_str());
                Err(error)
            }
        }
    }
}
