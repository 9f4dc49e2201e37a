//! Reconcile and error policy: list, compute the next status (pure, in `status`), write it,
//! publish the Events it decided, and schedule the next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::crd::{SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::error::{Error, Result};
use crate::events;
use crate::metrics::Metrics;
use crate::personalize::Personalize;
use crate::status::{self, Observation, Poll, PollFailure, READY};

pub const FIELD_MANAGER: &str = "personalize-watch";

/// How a reconcile talks to the world; shared by every reconcile of the process.
pub struct Context {
    pub client: Client,
    pub personalize: Arc<Personalize>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub default_poll_interval: Duration,
    pub default_active_poll_interval: Duration,
    /// Consecutive failures per watch, for exponential backoff; a success removes the entry.
    failures: Mutex<HashMap<ObjectRef<SolutionVersionWatch>, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        personalize: Arc<Personalize>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        min_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        Context {
            client,
            personalize,
            recorder,
            metrics,
            min_backoff,
            max_backoff,
            default_poll_interval: Duration::from_secs(300),
            default_active_poll_interval: Duration::from_secs(60),
            failures: Mutex::default(),
        }
    }
}

/// The region to call: spec.region, else the one inside the ARN.
pub fn region_of(watch: &SolutionVersionWatch) -> Result<String> {
    if let Some(region) = watch.spec.region.as_deref().filter(|r| !r.is_empty()) {
        return Ok(region.to_string());
    }
    watch
        .spec
        .solution_version_arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::InvalidSpec(
                "spec.solutionVersionArn has no region (arn:PARTITION:personalize:REGION:ACCOUNT:...) and spec.region is not set".into(),
            )
        })
}

/// The watch's poll intervals, or the operator's defaults for those it leaves out.
fn intervals(watch: &SolutionVersionWatch, ctx: &Context) -> Result<(Duration, Duration)> {
    let parse = |field: &str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => crate::config::parse_duration(text)
            .map_err(|e| Error::InvalidSpec(format!("spec.{field}: {e}"))),
    };
    Ok((
        parse(
            "pollInterval",
            &watch.spec.poll_interval,
            ctx.default_poll_interval,
        )?,
        parse(
            "activePollInterval",
            &watch.spec.active_poll_interval,
            ctx.default_active_poll_interval,
        )?,
    ))
}

/// Exponential backoff with jitter: min * 2^(n-1), capped, then scaled by 0.8..1.0.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(rand::rng().random_range(0.8..=1.0))
}

/// Writes the status by server-side apply. The resourceVersion it was computed from goes along,
/// so a status computed from a stale copy is refused (409) instead of overwriting newer data.
async fn write_status(
    ctx: &Context,
    watch: &SolutionVersionWatch,
    resource_version: Option<String>,
    status: &SolutionVersionWatchStatus,
) -> Result<Option<String>> {
    let namespace = watch.namespace().unwrap_or_default();
    let api: Api<SolutionVersionWatch> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut metadata = json!({ "name": watch.name_any() });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    let patch = json!({
        "apiVersion": SolutionVersionWatch::api_version(&()),
        "kind": SolutionVersionWatch::kind(&()),
        "metadata": metadata,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let updated = api
        .patch_status(&watch.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    ctx.metrics.status_written();
    Ok(updated.resource_version())
}

pub async fn reconcile(watch: Arc<SolutionVersionWatch>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!(
        "reconcile",
        watch = %format!("{}/{}", watch.namespace().unwrap_or_default(), watch.name_any())
    );
    let started = Instant::now();
    ctx.metrics.reconcile_started();
    let result = reconcile_watch(&watch, &ctx).instrument(span).await;
    ctx.metrics.reconcile_finished(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(Error::reason),
    );
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ObjectRef::from_obj(watch.as_ref()));
    }
    result
}

async fn reconcile_watch(watch: &SolutionVersionWatch, ctx: &Context) -> Result<Action> {
    if watch.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = watch.namespace().unwrap_or_default();
    let name = watch.name_any();
    let generation = watch.metadata.generation.unwrap_or(0);
    let prev = watch.status.as_ref();

    // Spec problems the schema cannot catch end here, like a failed listing.
    let checked = intervals(watch, ctx).and_then(|i| region_of(watch).map(|r| (i, r)));
    let listing = match &checked {
        Err(e) => Err(clone_spec_error(e)),
        Ok(_) if watch.spec.suspend => Ok(None),
        Ok((_, region)) => ctx
            .personalize
            .list_jobs(region, &watch.spec.solution_version_arn)
            .await
            .map(Some)
            .map_err(Error::from),
    };
    let failure = listing.as_ref().err().map(|e| PollFailure {
        reason: e.reason(),
        message: e.to_string(),
        stalled: e.stalled(),
    });
    let poll = match (&listing, &failure) {
        (Ok(Some(jobs)), _) => Poll::Listed(jobs),
        (_, Some(f)) => Poll::Failed(f),
        _ => Poll::Suspended,
    };
    let next = status::next_status(
        prev,
        &Observation {
            solution_version_arn: &watch.spec.solution_version_arn,
            generation,
            max_jobs_in_status: usize::try_from(watch.spec.max_jobs_in_status).unwrap_or(0),
            now: jiff::Timestamp::now(),
            poll,
        },
    );
    let mut new_status = next.status;

    // Metrics first, so whoever sees the new status also sees the metrics behind it.
    if let Some(counts) = &new_status.counts {
        ctx.metrics.set_jobs(&namespace, &name, counts);
    }
    if let Some(t) = &new_status.last_sync_time {
        ctx.metrics
            .set_last_sync(&namespace, &name, t.0.as_millisecond() as f64 / 1000.0);
    }

    // The Events decided: first persist the decision, then publish, then clear the outbox.
    let inherited = prev
        .and_then(|s| s.ledger.as_ref())
        .map_or(0, |l| l.outbox.len());
    let outbox = new_status
        .ledger
        .as_ref()
        .map(|l| l.outbox.clone())
        .unwrap_or_default();
    let mut resource_version = watch.resource_version();
    if !outbox.is_empty() {
        if Some(&new_status) != prev {
            resource_version = write_status(ctx, watch, resource_version, &new_status).await?;
        }
        for (i, pending) in outbox.iter().enumerate() {
            if i < inherited && events::already_published(&ctx.client, watch, pending).await? {
                debug!(
                    job = pending.job_name,
                    "event already published before a restart"
                );
                continue;
            }
            events::publish(&ctx.recorder, watch, &events::to_event(watch, pending)).await?;
            ctx.metrics.event_published(events::reason(pending.kind));
            info!(
                reason = events::reason(pending.kind),
                job = pending.job_name,
                "published event"
            );
        }
        if let Some(ledger) = new_status.ledger.as_mut() {
            ledger.outbox.clear();
        }
    }
    if Some(&new_status) != prev || !outbox.is_empty() {
        write_status(ctx, watch, resource_version, &new_status).await?;
    }

    // The first listing's summary: informational, after the write, not through the outbox.
    if let Some(summary) = &next.summary {
        match events::publish(&ctx.recorder, watch, &events::to_event(watch, summary)).await {
            Ok(()) => {
                ctx.metrics.event_published(events::reason(summary.kind));
                info!(reason = events::reason(summary.kind), "published event");
            }
            Err(e) => warn!(error = %e, "could not publish the summary event"),
        }
    }

    // A failed poll is also an Event, once per change of reason (repeats fold into a series).
    if let Some(f) = &failure {
        let prev_reason = prev
            .and_then(|s| status::condition(s, READY))
            .map(|c| c.reason.as_str());
        if prev_reason != Some(f.reason)
            && let Err(e) = events::publish(
                &ctx.recorder,
                watch,
                &events::poll_failed(f.reason, &f.message),
            )
            .await
        {
            warn!(error = %e, "could not publish the poll failure event");
        } else if prev_reason != Some(f.reason) {
            ctx.metrics.event_published(f.reason);
        }
    }

    match (listing, checked) {
        (Err(e), _) => Err(e),
        (Ok(None), _) => Ok(Action::await_change()),
        (Ok(Some(_)), Ok(((poll_every, active_every), _))) => {
            let every = if next.deferred > 0 {
                Duration::from_secs(1)
            } else if status::wants_active_polling(&new_status) {
                active_every
            } else {
                poll_every
            };
            // Up to 10% early, never late, so fleets spread out and deadlines hold.
            Ok(Action::requeue(
                every.mul_f64(rand::rng().random_range(0.9..=1.0)),
            ))
        }
        (Ok(Some(_)), Err(e)) => Err(e),
    }
}

fn clone_spec_error(e: &Error) -> Error {
    Error::InvalidSpec(match e {
        Error::InvalidSpec(m) => m.clone(),
        other => other.to_string(),
    })
}

pub fn error_policy(watch: Arc<SolutionVersionWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(watch.as_ref());
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    // A write conflict means our copy was stale: retry soon with the fresh one.
    let delay = if matches!(error, Error::Kube(kube::Error::Api(s)) if s.code == 409) {
        Duration::from_millis(500)
    } else {
        backoff(failures, ctx.min_backoff, ctx.max_backoff)
    };
    warn!(
        watch = %format!("{}/{}", watch.namespace().unwrap_or_default(), watch.name_any()),
        reason = error.reason(),
        error = %error,
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Which SolutionVersionWatches this instance handles.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
}

/// Runs one controller per watched namespace (or one for all) until `shutdown` resolves;
/// in-flight reconciles finish first. `on_ready` is called once every cache has synced.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce() + Send + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let apis: Vec<Api<SolutionVersionWatch>> = if scope.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        scope
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let mut readers = Vec::new();
    let mut controllers = Vec::new();
    let watch_counts: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(vec![0; apis.len()]));
    for (index, api) in apis.into_iter().enumerate() {
        let mut config = watcher::Config::default();
        if let Some(selector) = &scope.label_selector {
            config = config.labels(selector);
        }
        let (reader, writer) = reflector::store();
        readers.push(reader.clone());
        let metrics = ctx.metrics.clone();
        let counts = watch_counts.clone();
        let count_reader = reader.clone();
        // Reconcile on spec changes only: status writes must not re-trigger (predicate on
        // generation). Deleted watches drop their metric series.
        let stream = watcher(api, config)
            .default_backoff()
            .reflect(writer)
            .inspect(move |event| {
                if let Ok(watcher::Event::Delete(watch)) = event {
                    metrics.forget_watch(&watch.namespace().unwrap_or_default(), &watch.name_any());
                }
                let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                counts[index] = count_reader.len();
                metrics.set_watches(counts.iter().sum());
            })
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
        let controller = Controller::for_stream(stream, reader)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    debug!(error = %e, "controller event");
                }
            });
        controllers.push(controller);
    }
    let ready = async move {
        for reader in readers {
            // Err only when the writer is dropped, i.e. shutting down.
            let _ = reader.wait_until_ready().await;
        }
        on_ready();
    };
    tokio::join!(futures::future::join_all(controllers), ready);
}

#[cfg(test)]
mod tests;
