//! The Personalize client: every job of a watched solution version or solution per poll,
//! from complete, paginated listings, shared by the watches of one account when that takes
//! fewer calls ([`plan`], [`shared`]).
//!
//! One SDK client per region, shared by every watch; credentials from the aws-config default
//! chain (environment, profile, web identity / IRSA, EKS Pod Identity); the endpoint from the
//! standard overrides (`AWS_ENDPOINT_URL_PERSONALIZE`, `AWS_ENDPOINT_URL`) or `--aws-endpoint-url`.

mod bounds;
mod clients;
mod error;
mod job;
pub mod plan;
pub mod shared;

pub use bounds::{ListingBounds, ListingSize};
pub use clients::{ClientOptions, Clients, OwnAccountError, SESSION_NAME};
pub use error::{ListError, ListErrorKind, classify, redact};
pub use job::{ListedJob, MAX_FAILURE_REASON_BYTES};

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_personalize::Client;
use aws_sdk_personalize::error::{ProvideErrorMetadata, SdkError};

use rand::Rng;

use crate::access::RoleRef;
use crate::access::arn::WatchedArn;
use crate::crd::ListingSource;
use crate::flow::rate::RegionLimiter;
use crate::flow::turns::{Place, Slot};
use crate::metrics::Metrics;
use plan::{Asking, Member, Served};
use shared::{GroupKey, SharedListings, Step};

/// Pages per listing before giving up, whatever the pages hold (empty pages with a token).
const MAX_PAGES: usize = 10_000;
/// A page that fails with an error that may pass is asked for again this many times, after
/// growing pauses, before the listing fails: the listing goes on from that page, not page 1.
const PAGE_RETRIES: u32 = 2;
const PAGE_RETRY_PAUSE: Duration = Duration::from_secs(1);
pub const OPERATION: &str = "ListBatchInferenceJobs";
pub const VERSIONS_OPERATION: &str = "ListSolutionVersions";

/// Every job of the watched solution version or solution, where the listing came from, and
/// when it started (the data is as of then).
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub jobs: Vec<ListedJob>,
    pub source: ListingSource,
    pub started: Instant,
}

/// One listing: where, what, on whose behalf (the namespace's turn at the rate limit), and
/// with which role.
#[derive(Clone, Copy)]
pub struct ListRequest<'a> {
    pub arn: &'a WatchedArn,
    /// The watch, as `namespace/name`: the plans keep what its listings showed.
    pub watch: &'a str,
    /// How often the watch polls now: listings due within a tenth of it are shared.
    pub every: Duration,
    pub namespace: &'a str,
    pub role: Option<&'a RoleRef>,
    /// Asked before every page after the first of the watch's own listing: false once the
    /// namespace's policy no longer allows the ARN, and the listing stops there.
    pub allowed: &'a (dyn Fn() -> bool + Send + Sync),
    /// The reconcile's admission slot, given up while the listing waits for a rate token, for
    /// a shared listing, or before asking for a page again (none outside a reconcile).
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

    fn group(&self) -> GroupKey {
        GroupKey {
            namespace: self.namespace.to_string(),
            region: self.arn.region.clone(),
            account: self.arn.account.clone(),
            role: self.role.cloned(),
        }
    }
}

/// Which jobs one ListBatchInferenceJobs pass lists.
#[derive(Clone, Copy, Debug)]
enum Scope<'a> {
    /// One solution version's.
    Version(&'a str),
    /// Every job of the account in the region.
    Account,
}

impl Scope<'_> {
    /// Where its calls wait for the rate among the namespace's: an account-wide listing serves
    /// every watch that joined it, whose own calls it saves, so its pages go first; behind
    /// them, each page would wait out the namespace's whole queue again.
    fn place(self) -> Place {
        match self {
            Scope::Version(_) => Place::Last,
            Scope::Account => Place::First,
        }
    }
}

/// Shared by every watch: the clients, one fair rate limiter per region, and the listings
/// the watches of one account share.
pub struct Personalize {
    clients: Clients,
    limiter: RegionLimiter,
    bounds: ListingBounds,
    metrics: Arc<Metrics>,
    shared: SharedListings,
    /// `--shared-listings`.
    share: bool,
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
            shared: SharedListings::default(),
            share: options.shared_listings,
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

    /// Every job of the watched solution version or solution, by the plan that takes the
    /// fewest calls ([`plan::choose`]): the watch's own listing, or one account-wide listing
    /// shared with the watches of its group due with it, of which it gets exactly its own jobs.
    /// A role that cannot be assumed is AccessDenied, naming the role.
    pub async fn list_jobs(&self, request: &ListRequest<'_>) -> Result<Listing, ListError> {
        let client = self.clients.get(&request.arn.region, request.role).await;
        let group = request.group();
        let asking = Asking {
            watch: request.watch,
            now: Instant::now(),
        };
        let step = if self.share {
            self.shared.step(&group, asking, request.every)
        } else {
            Step::Own
        };
        let (jobs, started, own_calls, served) = match step {
            // At most the watch's interval: a leader of a longer one may list for longer.
            Step::Join { started, done } => match request
                .away(shared::wait_until(done, started + request.every))
                .await
            {
                Some(all) => {
                    let jobs = own_jobs(&all, request.arn);
                    let calls = own_calls(&jobs, request.arn);
                    (jobs, started, calls, Served::Shared)
                }
                None => self.list_own(&client, request).await?,
            },
            Step::Lead(leader) => self.lead(&client, request, leader).await?,
            Step::Own => self.list_own(&client, request).await?,
        };
        self.metrics.listed(served.label());
        let member = Member {
            asked: started,
            every: request.every,
            own_calls,
            jobs: jobs.len(),
            listed: true,
        };
        self.shared.record(&group, request.watch, member);
        Ok(Listing {
            jobs,
            source: self.source(&request.arn.region),
            started,
        })
    }

    /// Makes the shared listing: the account's jobs for every watch that joined, this watch's
    /// own for itself. If it fails, would take as many calls as the own listings it replaces,
    /// or takes longer than this watch's interval (the watches waiting for it would miss a
    /// poll), this watch and those waiting list on their own.
    async fn lead(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
        leader: shared::Leader,
    ) -> Result<(Vec<ListedJob>, Instant, usize, Served), ListError> {
        let group = request.group();
        let cap = leader.fewer_than.saturating_sub(1).clamp(1, MAX_PAGES);
        // Checked between pages: a listing stopped inside a call would give its slot up and
        // never take it back.
        let limits = Limits {
            pages: cap,
            deadline: Some(leader.started + request.every),
        };
        match self.listing(client, request, Scope::Account, limits).await {
            Ok(all) => {
                self.shared.account_listed(&group, Ok(all.len()));
                let all: Arc<[ListedJob]> = all.into();
                let started = leader.started;
                leader.finish(Some(all.clone()));
                let jobs = own_jobs(&all, request.arn);
                let calls = own_calls(&jobs, request.arn);
                Ok((jobs, started, calls, Served::Shared))
            }
            Err(e) if e.kind == ListErrorKind::TooManyPages && cap < MAX_PAGES => {
                tracing::debug!(
                    pages = cap,
                    "the account-wide listing stopped: its watches' own listings take fewer calls"
                );
                self.shared.account_at_least(&group, cap);
                leader.finish(None);
                self.list_own(client, request).await
            }
            Err(e) if e.kind == ListErrorKind::TooSlow => {
                tracing::info!(
                    every = ?request.every,
                    "the account-wide listing took longer than the interval; watches list on their own"
                );
                self.shared.pause(&group);
                leader.finish(None);
                self.list_own(client, request).await
            }
            Err(e) => {
                tracing::info!(error = %e, "the account-wide listing failed; watches list on their own");
                self.shared.account_listed(&group, Err(&e));
                leader.finish(None);
                self.list_own(client, request).await
            }
        }
    }

    /// The watch's own listing: its solution version's jobs, or its solution's versions and
    /// each one's jobs; with when it started and the calls it made.
    async fn list_own(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
    ) -> Result<(Vec<ListedJob>, Instant, usize, Served), ListError> {
        let started = Instant::now();
        if !request.arn.is_solution() {
            let scope = Scope::Version(request.arn.as_str());
            let jobs = self.listing(client, request, scope, Limits::OWN).await?;
            let calls = plan::pages(jobs.len());
            return Ok((jobs, started, calls, Served::Own));
        }
        let versions = self.solution_versions(client, request).await?;
        let mut calls = plan::pages(versions.len());
        let mut jobs = Vec::new();
        for version in &versions {
            let listed = self
                .listing(client, request, Scope::Version(version), Limits::OWN)
                .await?;
            calls += plan::pages(listed.len());
            jobs.extend(listed);
        }
        Ok((jobs, started, calls, Served::Own))
    }

    /// Every job of `scope`: all pages, 100 at a time, within `limits`. An
    /// InvalidNextTokenException restarts the listing once.
    async fn listing(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
        scope: Scope<'_>,
        limits: Limits,
    ) -> Result<Vec<ListedJob>, ListError> {
        match self.list_once(client, request, scope, limits).await {
            Err(e) if e.kind == ListErrorKind::InvalidNextToken => {
                tracing::warn!(
                    watched_arn = request.arn.as_str(),
                    "InvalidNextTokenException: restarting the listing"
                );
                self.list_once(client, request, scope, limits).await
            }
            listed => listed,
        }
    }

    /// One pass over every page. A token that comes back again is an error: the SDK's
    /// paginator would stop silently and lose jobs.
    async fn list_once(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
        scope: Scope<'_>,
        limits: Limits,
    ) -> Result<Vec<ListedJob>, ListError> {
        let mut jobs = Vec::new();
        let mut size = ListingSize::default();
        let mut pages = Pages::within(limits);
        loop {
            // An account-wide listing serves several namespaces: each asks its policy again
            // when it gets its jobs.
            if pages.started() && matches!(scope, Scope::Version(_)) && !(request.allowed)() {
                return Err(ListError::new(
                    ListErrorKind::AccessWithdrawn,
                    "the namespace's access policy stopped allowing this ARN during the listing",
                ));
            }
            let token = pages.token();
            let page = self
                .call(request, OPERATION, scope.place(), || {
                    client
                        .list_batch_inference_jobs()
                        .set_solution_version_arn(match scope {
                            Scope::Version(arn) => Some(arn.to_string()),
                            Scope::Account => None,
                        })
                        .max_results(plan::PAGE_SIZE as i32)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let before = jobs.len();
            let listed = page.batch_inference_jobs.unwrap_or_default();
            jobs.extend(listed.into_iter().map(ListedJob::from));
            size.add(&jobs[before..]);
            self.bounds.check(&size)?;
            if pages.next(page.next_token)? {
                return Ok(jobs);
            }
        }
    }

    /// The ARNs of the watched solution's versions, every page.
    async fn solution_versions(
        &self,
        client: &Client,
        request: &ListRequest<'_>,
    ) -> Result<Vec<String>, ListError> {
        let mut versions = Vec::new();
        let mut pages = Pages::within(Limits::OWN);
        loop {
            let token = pages.token();
            let page = self
                .call(request, VERSIONS_OPERATION, Place::Last, || {
                    client
                        .list_solution_versions()
                        .solution_arn(request.arn.as_str())
                        .max_results(plan::PAGE_SIZE as i32)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let listed = page.solution_versions.unwrap_or_default();
            versions.extend(listed.into_iter().filter_map(|v| v.solution_version_arn));
            if pages.next(page.next_token)? {
                return Ok(versions);
            }
        }
    }

    /// One call, within the region's rate limit at `place` among its namespace's calls,
    /// counted by outcome; a failure that may pass is asked again (the same page, the same
    /// token) after growing pauses.
    async fn call<T, E, F, Fut>(
        &self,
        request: &ListRequest<'_>,
        operation: &'static str,
        place: Place,
        send: F,
    ) -> Result<T, ListError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let mut pause = PAGE_RETRY_PAUSE;
        let mut retries = 0;
        loop {
            let bucket = self.limiter.bucket(&request.arn.region);
            if !bucket.try_acquire() {
                request.away(bucket.acquire(request.namespace, place)).await;
            }
            let error = match send().await {
                Ok(page) => {
                    self.metrics.personalize_request(operation, "Success");
                    return Ok(page);
                }
                Err(e) => classify(&e, request, operation),
            };
            self.metrics
                .personalize_request(operation, error.kind.reason().as_str());
            if !error.kind.transient() || retries == PAGE_RETRIES {
                return Err(error);
            }
            let watched = request.arn.as_str();
            tracing::debug!(watched_arn = watched, error = %error, "asking for the page again");
            let jittered = pause.mul_f64(rand::rng().random_range(0.8..=1.0));
            request.away(tokio::time::sleep(jittered)).await;
            pause *= 2;
            retries += 1;
        }
    }
}

/// Where a listing stops short: after `pages` pages ([`MAX_PAGES`] at most), and, for an
/// account-wide listing, at its deadline.
#[derive(Clone, Copy, Debug)]
struct Limits {
    pages: usize,
    deadline: Option<Instant>,
}

impl Limits {
    const OWN: Limits = Limits {
        pages: MAX_PAGES,
        deadline: None,
    };
}

/// The page tokens of one listing: each is used once, and the listing ends within its
/// [`Limits`].
struct Pages {
    count: usize,
    limits: Limits,
    next: Option<String>,
    seen: HashSet<String>,
}

impl Pages {
    fn within(limits: Limits) -> Self {
        Pages {
            count: 0,
            limits,
            next: None,
            seen: HashSet::new(),
        }
    }

    fn started(&self) -> bool {
        self.count > 0
    }

    fn token(&self) -> Option<String> {
        self.next.clone()
    }

    /// Takes a page's next token: true when the listing is complete.
    fn next(&mut self, token: Option<String>) -> Result<bool, ListError> {
        self.count += 1;
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(true);
        };
        if !self.seen.insert(token.clone()) {
            return Err(ListError::new(
                ListErrorKind::RepeatedToken,
                "Personalize returned a page token it had returned before; the listing would never end",
            ));
        }
        if self.count >= self.limits.pages {
            return Err(ListError::new(
                ListErrorKind::TooManyPages,
                format!("the listing did not end within {} pages", self.limits.pages),
            ));
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ListError::new(
                ListErrorKind::TooSlow,
                format!(
                    "the listing did not end within its deadline ({} pages)",
                    self.count
                ),
            ));
        }
        self.next = Some(token);
        Ok(false)
    }
}

/// The watch's jobs of an account-wide listing: exactly those of its solution version, or of
/// its solution's versions. A job whose summary names no solution version is no watch's.
pub fn own_jobs(all: &[ListedJob], arn: &WatchedArn) -> Vec<ListedJob> {
    all.iter()
        .filter(|job| {
            job.solution_version_arn
                .as_deref()
                .is_some_and(|version| arn.covers(version))
        })
        .cloned()
        .collect()
}

/// The calls the watch's own listing of `jobs` takes: its version's pages, or its solution's
/// versions page and each version's pages (versions without jobs are not seen in an
/// account-wide listing, so this may count low).
fn own_calls(jobs: &[ListedJob], arn: &WatchedArn) -> usize {
    if !arn.is_solution() {
        return plan::pages(jobs.len());
    }
    let mut per_version: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        if let Some(version) = job.solution_version_arn.as_deref() {
            *per_version.entry(version).or_default() += 1;
        }
    }
    plan::pages(per_version.len()) + per_version.values().map(|n| plan::pages(*n)).sum::<usize>()
}
