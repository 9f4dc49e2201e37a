//! Reconcile, as a pipeline a reader follows top to bottom:
//! validate the spec ([`spec`]) -> poll Personalize -> decide the next status (pure, in
//! [`crate::status`]) -> persist it and publish the Events it decided ([`persist`]) -> schedule
//! the next poll ([`schedule`]).

pub mod persist;
pub mod schedule;
pub mod spec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use tracing::{Instrument, info_span, warn};

use crate::crd::SolutionVersionWatch;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::personalize::{ListedJob, Personalize};
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
}

/// How a reconcile talks to the world; shared by every reconcile of the process.
pub struct Context {
    pub client: Client,
    pub personalize: Arc<Personalize>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Consecutive failures per watch, for exponential backoff; a success removes the entry.
    failures: Mutex<HashMap<ObjectRef<SolutionVersionWatch>, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        personalize: Arc<Personalize>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Context {
            client,
            personalize,
            recorder,
            metrics,
            settings,
            failures: Mutex::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<SolutionVersionWatch>, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the poll step found.
pub enum Polled {
    /// A complete listing, and how often this watch polls.
    Listed {
        jobs: Vec<ListedJob>,
        intervals: PollIntervals,
    },
    /// The error goes to the error policy; status and Events describe it as `failure`.
    Failed {
        error: Error,
        failure: PollFailure,
    },
    Suspended,
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

    fn failure(&self) -> Option<&PollFailure> {
        match self {
            Polled::Failed { failure, .. } => Some(failure),
            Polled::Listed { .. } | Polled::Suspended => None,
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
    let span = info_span!("reconcile", watch = %key(&watch));
    let started = Instant::now();
    ctx.metrics.reconcile_started();
    let result = reconcile_watch(&watch, &ctx).instrument(span).await;
    ctx.metrics.reconcile_finished(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(Error::reason),
    );
    match result {
        Ok(requeue) => {
            ctx.failures().remove(&ObjectRef::from_obj(watch.as_ref()));
            Ok(requeue.into())
        }
        // Only its author can fix the spec: wait for that change instead of retrying.
        Err(Error::InvalidSpec(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

async fn reconcile_watch(watch: &SolutionVersionWatch, ctx: &Context) -> Result<Requeue> {
    if watch.meta().deletion_timestamp.is_some() {
        return Ok(Requeue::OnChange);
    }
    let polled = match spec::validate(watch, ctx.settings.default_intervals) {
        Ok(target) => poll(ctx, target).await,
        Err(problem) => Polled::failed(Error::InvalidSpec(problem)),
    };
    let decision = decide(watch, &polled);
    let active = status::wants_active_polling(&decision.status);
    let deferred = decision.deferred > 0;
    persist::persist_and_publish(ctx, watch, decision, polled.failure()).await?;
    schedule(polled, active, deferred)
}

/// Lists every job of the watched solution version, unless polling is suspended.
async fn poll(ctx: &Context, target: Target) -> Polled {
    if target.suspended {
        return Polled::Suspended;
    }
    match ctx
        .personalize
        .list_jobs(&target.region, &target.solution_version_arn)
        .await
    {
        Ok(jobs) => Polled::Listed {
            jobs,
            intervals: target.intervals,
        },
        Err(e) => Polled::failed(e.into()),
    }
}

/// The pure step: the next status from the previous one and what the poll found.
fn decide(watch: &SolutionVersionWatch, polled: &Polled) -> Decision {
    let outcome = match polled {
        Polled::Listed { jobs, .. } => PollOutcome::Listed(jobs),
        Polled::Failed { failure, .. } => PollOutcome::Failed(failure),
        Polled::Suspended => PollOutcome::Suspended,
    };
    status::next_status(
        watch.status.as_ref(),
        &Observation {
            solution_version_arn: &watch.spec.solution_version_arn,
            generation: watch.metadata.generation.unwrap_or(0),
            max_jobs_in_status: usize::try_from(watch.spec.max_jobs_in_status).unwrap_or(0),
            now: jiff::Timestamp::now(),
            outcome,
        },
    )
}

/// The next poll: by the watch's intervals after a listing, on a change when suspended; a
/// failed poll goes to the error policy.
fn schedule(polled: Polled, active: bool, deferred: bool) -> Result<Requeue> {
    match polled {
        Polled::Listed { intervals, .. } => Ok(schedule::next_poll(
            AfterListing {
                intervals,
                active,
                deferred,
            },
            rand::rng().random_range(0.0..=1.0),
        )),
        Polled::Suspended => Ok(Requeue::OnChange),
        Polled::Failed { error, .. } => Err(error),
    }
}

/// After a failed reconcile: count the failure and retry after [`retry_delay`].
pub fn error_policy(watch: Arc<SolutionVersionWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut map = ctx.failures();
        let n = map.entry(ObjectRef::from_obj(watch.as_ref())).or_insert(0);
        *n += 1;
        *n
    };
    let delay = retry_delay(
        error,
        failures,
        &ctx.settings,
        rand::rng().random_range(0.0..=1.0),
    );
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
/// except after a write conflict, which means our copy was stale: retry soon with a fresh one.
pub fn retry_delay(error: &Error, failures: u32, settings: &Settings, jitter: f64) -> Duration {
    if matches!(error, Error::Kube(kube::Error::Api(s)) if s.code == 409) {
        return Duration::from_millis(500);
    }
    schedule::backoff(failures, settings.min_backoff, settings.max_backoff, jitter)
}

#[cfg(test)]
mod tests;
