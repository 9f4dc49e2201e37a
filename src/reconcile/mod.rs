//! Reconcile, as a pipeline a reader follows top to bottom:
//! wait for a slot in the namespace's turn ([`crate::flow::turns`]) -> validate the spec
//! ([`spec`]) -> authorize it by the namespace's access policy ([`crate::access`]) -> poll
//! Personalize -> decide the next status (pure, in [`crate::status`], with the Events in
//! [`crate::events`]) -> publish the Events it decided and write the status ([`write`]), once
//! the job list it shows fits in [`crate::flow::memory`] -> schedule the next poll
//! ([`schedule`]).

pub mod schedule;
pub mod spec;
pub mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use tracing::{Instrument, info_span, warn};

use crate::access::arn::WatchedArn;
use crate::access::sources::Affected;
use crate::access::{Access, Grant};
use crate::controller::cache::CachedWatch;
use crate::crd::{SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::flow::memory::{self, JobListMemory};
use crate::flow::turns::{Admission, Slot};
use crate::metrics::Metrics;
use crate::personalize::{ListRequest, Listing, Personalize};
use crate::status::{self, Decision, Observation, PollFailure, PollOutcome};
use schedule::{AfterListing, Requeue};
use spec::{PollIntervals, Target};

/// What the operator was told at start-up that reconciles need.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// For watches that leave their intervals out.
    pub default_intervals: PollIntervals,
    /// Backoff after failed polls: the first delay, doubling up to the cap.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A listing that changes nothing is written only when lastSyncTime is this old.
    pub status_heartbeat: Duration,
    /// How often the controller looks for watches whose poll is late ([`schedule::late`]).
    pub resync: Duration,
}

/// How a reconcile talks to the world; shared by every reconcile of the process.
pub struct Context {
    pub client: Client,
    pub personalize: Arc<Personalize>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Who may watch what, kept current by [`crate::access::sources`].
    pub access: Arc<Access>,
    /// Changes of the access inputs, for the controller to reconcile the watches concerned.
    pub access_changes: tokio::sync::broadcast::Sender<Affected>,
    /// Reconciles that work at once; the others wait in their namespace's turn.
    admission: Arc<Admission>,
    /// The job lists that reconciles build and write at once, in bytes.
    job_lists: JobListMemory,
    /// False once this instance lost its Lease: reconciles still in flight write and publish
    /// nothing more.
    leading: AtomicBool,
    /// Consecutive failures per watch UID, for exponential backoff; a success or the watch's
    /// deletion removes the entry (a new watch of the same name starts afresh), and so do the
    /// controller's sweeps for watches no longer cached ([`Context::retain_failures`]).
    failures: Mutex<HashMap<String, Failures>>,
}

/// What a [`Context`] is made of.
pub struct Parts {
    pub client: Client,
    pub personalize: Arc<Personalize>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub access: Arc<Access>,
    /// Reconciles that may work at once.
    pub concurrency: usize,
}

impl Context {
    pub fn new(parts: Parts) -> Self {
        Context {
            client: parts.client,
            personalize: parts.personalize,
            events: parts.events,
            metrics: parts.metrics,
            settings: parts.settings,
            access: parts.access,
            access_changes: tokio::sync::broadcast::channel(256).0,
            admission: Admission::new(parts.concurrency),
            job_lists: JobListMemory::new(memory::JOB_LISTS_BYTES),
            leading: AtomicBool::new(true),
            failures: Mutex::default(),
        }
    }

    /// Whether this instance may write status and publish Events now.
    pub fn may_write(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Leader election says whether this instance leads.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// A watch was deleted: its backoff goes with it.
    pub fn forget(&self, uid: &str) {
        self.failures().remove(uid);
    }

    /// Keeps the backoff of the watches `keep` accepts (by namespace and UID): a watch deleted
    /// while its reconcile failed, or while the watch stream was down, leaves none behind.
    pub fn retain_failures(&self, keep: impl Fn(&str, &str) -> bool) {
        self.failures().retain(|uid, f| keep(&f.namespace, uid));
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A watch's failed reconciles in a row.
#[derive(Debug, Default, PartialEq)]
struct Failures {
    namespace: String,
    count: u32,
}

/// What the poll step found.
pub enum Polled {
    /// A complete listing, and how often this watch polls.
    Listed {
        listing: Listing,
        intervals: PollIntervals,
    },
    /// The error goes to the error policy; status and Events describe it as `failure`.
    Failed { error: Error, failure: PollFailure },
    /// Not polled; how often it would be, for publishing Events still pending.
    Suspended { intervals: PollIntervals },
}

impl Polled {
    fn failed(error: Error) -> Self {
        let failure = PollFailure {
            reason: error.reason(),
            message: error.to_string(),
            stalled: error.stalled(),
        };
        Polled::Failed { error, failure }
    }

    /// About how many bytes of job summaries deciding on this poll builds and writes.
    fn summaries_bytes(&self, watch: &SolutionVersionWatch) -> usize {
        match self {
            Polled::Listed { listing, .. } => {
                let shown = usize::try_from(watch.spec.max_jobs_in_status).unwrap_or(0);
                memory::summaries_bytes(listing, shown)
            }
            Polled::Failed { .. } | Polled::Suspended { .. } => 0,
        }
    }
}

/// `namespace/name`, as logs name a watch.
pub fn key(watch: &SolutionVersionWatch) -> String {
    format!(
        "{}/{}",
        watch.namespace().unwrap_or_default(),
        watch.name_any()
    )
}

pub async fn reconcile(watch: Arc<SolutionVersionWatch>, ctx: Arc<Context>) -> Result<Action> {
    let watch = CachedWatch::from_cache(watch);
    // Every due watch gets here at once (the controller's concurrency is unbounded) and waits
    // for a slot in its namespace's turn, so a crowded namespace queues behind itself. The
    // work is boxed so that waiting costs a small future.
    let slot = Slot::new(
        ctx.admission
            .enter(&watch.watch().namespace().unwrap_or_default())
            .await,
    );
    let span = info_span!("reconcile", watch = %key(watch.watch()));
    let started = Instant::now();
    ctx.metrics.reconcile_started();
    let result = Box::pin(reconcile_watch(&watch, &ctx, &slot))
        .instrument(span)
        .await;
    ctx.metrics.reconcile_finished(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(Error::reason),
    );
    match result {
        Ok(requeue) => {
            ctx.forget(&watch.uid().unwrap_or_default());
            Ok(requeue.into())
        }
        // Only its author can fix the spec, only an admin the policy: wait for that change
        // (a policy change triggers a reconcile) instead of retrying.
        Err(Error::InvalidSpec(_) | Error::NotPermitted(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

async fn reconcile_watch(cached: &CachedWatch, ctx: &Context, slot: &Slot) -> Result<Requeue> {
    let watch = cached.watch();
    // A replica that lost its Lease while this waited for its turn stops here, before calling
    // Personalize: the new leader polls.
    if watch.meta().deletion_timestamp.is_some() || !ctx.may_write() {
        return Ok(Requeue::OnChange);
    }
    let polled = match spec::validate(watch, ctx.settings.default_intervals) {
        Ok(target) => poll(ctx, watch, target, slot).await,
        Err(problem) => Polled::failed(Error::InvalidSpec(problem)),
    };
    let _held = ctx.job_lists.hold(polled.summaries_bytes(watch)).await;
    let now = jiff::Timestamp::now();
    let decide = |prev: Option<&SolutionVersionWatchStatus>| decide(watch, prev, &polled, now);
    let persisted = write::persist_and_publish(ctx, cached, &decide).await?;
    schedule(polled, persisted)
}

/// Lists every job of the watched solution version, if its namespace's policy allows it and
/// polling is not suspended.
async fn poll(ctx: &Context, watch: &SolutionVersionWatch, target: Target, slot: &Slot) -> Polled {
    if target.suspended {
        return Polled::Suspended {
            intervals: target.intervals,
        };
    }
    let namespace = watch.namespace().unwrap_or_default();
    let grant = match authorize(ctx, &namespace, &target.arn).await {
        Ok(grant) => grant,
        Err(e) => return Polled::failed(e),
    };
    let known = ctx.personalize.known_own_account();
    let allowed = || {
        ctx.access
            .authorize(&namespace, &target.arn, known.as_deref())
            .is_ok()
    };
    let watch_key = key(watch);
    // The interval the last listing chose: while jobs run, the active one.
    let running = watch.status.as_ref().is_some_and(status::jobs_running);
    let request = ListRequest {
        arn: &target.arn,
        watch: &watch_key,
        every: if running {
            target.intervals.while_running
        } else {
            target.intervals.idle
        },
        namespace: &namespace,
        role: grant.role.as_ref(),
        allowed: &allowed,
        slot: Some(slot),
    };
    let listing = match ctx.personalize.list_jobs(&request).await {
        Ok(listing) => listing,
        // Withdrawn between pages: the policy's own refusal says why.
        Err(e) if e.kind == crate::personalize::ListErrorKind::AccessWithdrawn => {
            return Polled::failed(
                authorize(ctx, &namespace, &target.arn)
                    .await
                    .err()
                    .unwrap_or(e.into()),
            );
        }
        Err(e) => return Polled::failed(e.into()),
    };
    // Asked again: a long listing may end after an admin withdrew the namespace's access, and
    // then nothing it found is written or announced.
    if let Err(e) = authorize(ctx, &namespace, &target.arn).await {
        return Polled::failed(e);
    }
    Polled::Listed {
        listing,
        intervals: target.intervals,
    }
}

/// Whether the namespace's policy allows the ARN, and with which role. The operator's own
/// account is asked of STS only when the policy needs it and it is not known yet.
async fn authorize(ctx: &Context, namespace: &str, arn: &WatchedArn) -> Result<Grant> {
    let known = ctx.personalize.known_own_account();
    let first = ctx.access.authorize(namespace, arn, known.as_deref());
    if known.is_some() || !matches!(first, Err(Error::AccessUnknown(_))) {
        return first;
    }
    match ctx.personalize.own_account().await {
        Ok(own) => ctx.access.authorize(namespace, arn, Some(&own)),
        Err(e) => {
            warn!(error = %e, "could not learn the operator's own account");
            Err(Error::AccessUnknown(format!(
                "the policy allows the operator's own account, which STS did not tell: {}",
                crate::personalize::redact(&e.to_string(), &arn.account)
            )))
        }
    }
}

/// The pure step: the next status from the previous one and what the poll found. Persisting
/// may call it again with a fresher previous status (after a write conflict).
fn decide(
    watch: &SolutionVersionWatch,
    prev: Option<&SolutionVersionWatchStatus>,
    polled: &Polled,
    now: jiff::Timestamp,
) -> Decision {
    let outcome = match polled {
        Polled::Listed { listing, .. } => PollOutcome::Listed(listing),
        Polled::Failed { failure, .. } => PollOutcome::Failed(failure),
        Polled::Suspended { .. } => PollOutcome::Suspended,
    };
    status::next_status(
        prev,
        &Observation {
            watched_arn: watch.spec.watched_arn(),
            generation: watch.metadata.generation.unwrap_or(0),
            max_jobs_in_status: usize::try_from(watch.spec.max_jobs_in_status).unwrap_or(0),
            now,
            outcome,
            // validate() refused a spec whose durations do not parse: it never lists.
            expectations: spec::expectations(&watch.spec).unwrap_or_default(),
            watch_created: watch.metadata.creation_timestamp.as_ref().map(|t| t.0),
        },
    )
}

/// The next poll: by the watch's intervals after a listing (the active one while jobs run or
/// Events wait; at once while Events wait for room in the outbox and publishing works), on a
/// change when suspended; a failed poll goes to the error policy.
fn schedule(polled: Polled, persisted: write::Persisted) -> Result<Requeue> {
    match polled {
        // Counted from when the listing started, as its data is of then: the watches that
        // shared one listing fall due together again.
        Polled::Listed { intervals, listing } => {
            let age = listing.started.elapsed();
            let next = schedule::next_poll(
                AfterListing {
                    intervals,
                    running: persisted.running || persisted.waiting > 0 || persisted.deferred > 0,
                    retry_soon: persisted.deferred > 0 && persisted.waiting == 0,
                },
                rand::rng().random_range(0.0..=1.0),
                schedule::uptime().saturating_sub(age),
            );
            Ok(next.sooner_by(age))
        }
        // Suspended: not polled, but Events still pending go out at the active interval.
        Polled::Suspended { intervals } if persisted.waiting > 0 => {
            Ok(Requeue::After(intervals.while_running))
        }
        Polled::Suspended { .. } => Ok(Requeue::OnChange),
        Polled::Failed { error, .. } => Err(error),
    }
}

/// After a failed reconcile: count the failure and retry after [`retry_delay`].
pub fn error_policy(watch: Arc<SolutionVersionWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut map = ctx.failures();
        let f = map
            .entry(watch.uid().unwrap_or_default())
            .or_insert_with(|| Failures {
                namespace: watch.namespace().unwrap_or_default(),
                count: 0,
            });
        f.count += 1;
        f.count
    };
    let delay = retry_delay(failures, &ctx.settings, rand::rng().random_range(0.0..=1.0));
    warn!(
        watch = %key(&watch),
        reason = %error.reason(),
        error = %error,
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The wait after the `failures`-th failed reconcile of a watch in a row: exponential backoff,
/// for write conflicts too (persisting already retried them with a fresh copy).
pub fn retry_delay(failures: u32, settings: &Settings, jitter: f64) -> Duration {
    schedule::backoff(failures, settings.min_backoff, settings.max_backoff, jitter)
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
