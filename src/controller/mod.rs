//! The controller around reconcile: which watches this instance handles, the watch streams
//! and their caches, and the loop that runs reconciles until shutdown.

pub mod backoff;
pub mod cache;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use tokio::sync::broadcast;
use tracing::debug;

use crate::access::sources::Affected;
use crate::crd::SolutionVersionWatch;
use crate::metrics::WatchLabels;
use crate::reconcile::{Context, error_policy, reconcile, schedule};

/// Which SolutionVersionWatches this instance handles.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
}

impl Scope {
    fn apis(&self, client: &kube::Client) -> Vec<Api<SolutionVersionWatch>> {
        if self.namespaces.is_empty() {
            vec![Api::all(client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        }
    }

    fn watcher_config(&self) -> watcher::Config {
        let config = watcher::Config::default();
        match &self.label_selector {
            Some(selector) => config.labels(selector),
            None => config,
        }
    }
}

/// What the watch streams tell the rest of the process: how many watches each holds (summed
/// into the `watches` gauge), and which are gone (their metric series and backoff go too).
#[derive(Clone)]
struct StreamObserver {
    per_stream: Arc<Mutex<Vec<usize>>>,
    /// Each stream's namespace (None: all namespaces), by index.
    namespaces: Arc<Vec<Option<String>>>,
    ctx: Arc<Context>,
}

impl StreamObserver {
    fn observe(
        &self,
        index: usize,
        event: &watcher::Event<SolutionVersionWatch>,
        cache: &Store<SolutionVersionWatch>,
    ) {
        match event {
            watcher::Event::Delete(watch) => {
                let uid = watch.uid().unwrap_or_default();
                self.ctx.metrics.forget_watch(&labels(watch), &uid);
                self.ctx.forget(&uid);
            }
            // After a relist, deletions missed while the stream was down show as absences, in
            // this stream's namespace only: the other streams' watches are not in its cache.
            watcher::Event::InitDone => {
                let known: HashSet<(WatchLabels, String)> = cache
                    .state()
                    .iter()
                    .map(|w| (labels(w), w.uid().unwrap_or_default()))
                    .collect();
                let scope = self.namespaces.get(index).cloned().flatten();
                self.ctx.metrics.retain_watches(|key, uid| {
                    kept_after_relist(scope.as_deref(), &known, key, uid)
                });
            }
            _ => {}
        }
        let mut counts = self.per_stream.lock().unwrap_or_else(|p| p.into_inner());
        counts[index] = cache.len();
        self.ctx.metrics.set_watches(counts.iter().sum());
    }
}

/// Whether a watch's series stays after a relist of the stream over `scope` (a namespace, or
/// None for all): it does when the relist found it, or when it is outside the stream's scope.
fn kept_after_relist(
    scope: Option<&str>,
    known: &HashSet<(WatchLabels, String)>,
    key: &WatchLabels,
    uid: &str,
) -> bool {
    scope.is_some_and(|ns| key.namespace != ns) || known.contains(&(key.clone(), uid.to_string()))
}

fn labels(watch: &SolutionVersionWatch) -> WatchLabels {
    WatchLabels {
        namespace: watch.namespace().unwrap_or_default(),
        name: watch.name_any(),
    }
}

/// Runs one controller per watched namespace (or one for all) until `shutdown` resolves;
/// in-flight reconciles finish first. `on_ready` is called once every cache has synced.
/// Every due watch starts its reconcile at once; [`Context`] admits them to work fairly by
/// namespace, `--concurrency` at a time.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce() + Send + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let apis = scope.apis(&ctx.client);
    let namespaces = if scope.namespaces.is_empty() {
        vec![None]
    } else {
        scope.namespaces.iter().cloned().map(Some).collect()
    };
    let observer = StreamObserver {
        per_stream: Arc::new(Mutex::new(vec![0; apis.len()])),
        namespaces: Arc::new(namespaces),
        ctx: ctx.clone(),
    };
    let mut readers = Vec::new();
    let mut controllers = Vec::new();
    for (index, api) in apis.into_iter().enumerate() {
        let (reader, writer) = reflector::store();
        readers.push(reader.clone());
        let (relisted, relists) = futures::channel::mpsc::unbounded();
        let stream = watch_stream(
            api,
            &scope,
            writer,
            reader.clone(),
            index,
            observer.clone(),
            relisted,
        );
        let affected = affected_watches(ctx.access_changes.subscribe(), reader.clone());
        let stream_scope = observer.namespaces.get(index).cloned().flatten();
        let late = late_watches(relists, ctx.clone(), stream_scope, reader.clone());
        let controller = Controller::for_stream(stream, reader)
            .with_config(Config::default().concurrency(0))
            // The controller backs its trigger stream off on its own too, by default from 800 ms
            // to 30 s: stacked on the watch stream's, a relist after an API server restart
            // waited 24.8 s. Both follow the watch streams' 5 s cap.
            .trigger_backoff(crate::controller::backoff::WatchBackoff::default())
            .reconcile_on(futures::stream::select(affected, late))
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
            if reader.wait_until_ready().await.is_err() {
                return;
            }
        }
        on_ready();
    };
    tokio::join!(futures::future::join_all(controllers), ready);
}

/// The watches a change of access inputs concerns, from this controller's cache: a namespace's
/// watches when its policy changed, those naming an account whose role changed; every watch
/// after announcements were missed.
fn affected_watches(
    changes: broadcast::Receiver<Affected>,
    cache: Store<SolutionVersionWatch>,
) -> impl futures::Stream<Item = ObjectRef<SolutionVersionWatch>> + Send + 'static {
    let announcements = futures::stream::unfold(changes, |mut changes| async move {
        match changes.recv().await {
            Ok(affected) => Some((Some(affected), changes)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((None, changes)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    announcements.flat_map(move |affected| {
        let concerned: Vec<ObjectRef<SolutionVersionWatch>> = cache
            .state()
            .iter()
            .filter(|w| affected.as_ref().is_none_or(|a| concerns(a, w)))
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .collect();
        futures::stream::iter(concerned)
    })
}

/// What a sweep of the cache looks for.
#[derive(Clone, Copy, Debug)]
enum Sweep {
    /// A relist ended: watches whose status has not caught up with their spec.
    Relist,
    /// The safety resync: watches whose poll is late.
    Resync,
}

/// The watches to reconcile though no event asked for it, from this controller's cache: after
/// every relist those whose status is behind their spec ([`schedule::spec_not_observed`]), and
/// every `settings.resync` those whose poll is late ([`schedule::late`]). Each sweep also drops
/// the backoff of watches in `scope` (a namespace, or None for all) that the cache no longer
/// holds: deleted while their reconcile failed, or while the stream was down.
fn late_watches(
    relists: futures::channel::mpsc::UnboundedReceiver<()>,
    ctx: Arc<Context>,
    scope: Option<String>,
    cache: Store<SolutionVersionWatch>,
) -> impl futures::Stream<Item = ObjectRef<SolutionVersionWatch>> + Send + 'static {
    let settings = ctx.settings;
    let period = settings.resync.max(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let resyncs = futures::stream::unfold(ticks, |mut ticks| async move {
        ticks.tick().await;
        Some((Sweep::Resync, ticks))
    });
    let sweeps = futures::stream::select(relists.map(|()| Sweep::Relist), resyncs);
    sweeps.flat_map(move |sweep| {
        let now = jiff::Timestamp::now();
        let cached = cache.state();
        let uids: HashSet<String> = cached.iter().filter_map(|w| w.uid()).collect();
        ctx.retain_failures(|namespace, uid| {
            scope.as_deref().is_some_and(|ns| ns != namespace) || uids.contains(uid)
        });
        let due: Vec<ObjectRef<SolutionVersionWatch>> = cached
            .iter()
            .filter(|w| match sweep {
                Sweep::Relist => schedule::spec_not_observed(w),
                Sweep::Resync => schedule::late(w, &settings, now),
            })
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .collect();
        if !due.is_empty() {
            debug!(
                ?sweep,
                watches = due.len(),
                "reconciling watches no event asked for"
            );
        }
        futures::stream::iter(due)
    })
}

fn concerns(affected: &Affected, watch: &SolutionVersionWatch) -> bool {
    match affected {
        Affected::Namespace(ns) => watch.namespace().as_ref() == Some(ns),
        Affected::Accounts(accounts) => watch
            .spec
            .watched_arn()
            .split(':')
            .nth(4)
            .is_some_and(|account| accounts.contains(account)),
    }
}

/// The watch events that trigger reconciles: spec changes only (status writes must not
/// re-trigger: a predicate on generation). The cache follows every event, slimmed.
fn watch_stream(
    api: Api<SolutionVersionWatch>,
    scope: &Scope,
    writer: reflector::store::Writer<SolutionVersionWatch>,
    reader: Store<SolutionVersionWatch>,
    index: usize,
    observer: StreamObserver,
    relisted: futures::channel::mpsc::UnboundedSender<()>,
) -> impl futures::Stream<Item = Result<SolutionVersionWatch, watcher::Error>> + Send + 'static {
    let mut lists = 0u64;
    watcher(api, scope.watcher_config())
        .backoff(crate::controller::backoff::WatchBackoff::default())
        .modify(cache::slim)
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                observer.observe(index, event, &reader);
                // After the store swap, so the sweep finds every watch of the relist. Not after
                // the first list: the controller waits for the store then, and runs them all.
                if matches!(event, watcher::Event::InitDone) {
                    lists += 1;
                    if lists > 1 {
                        let _ = relisted.unbounded_send(());
                    }
                }
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, name: &str) -> WatchLabels {
        WatchLabels {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_relist_drops_only_its_own_namespaces_missing_watches() {
        let known: HashSet<(WatchLabels, String)> = [(key("a", "kept"), "u1".to_string())].into();
        let a = Some("a");
        assert!(kept_after_relist(a, &known, &key("a", "kept"), "u1"));
        assert!(!kept_after_relist(
            a,
            &known,
            &key("a", "deleted-meanwhile"),
            "u2"
        ));
        assert!(!kept_after_relist(
            a,
            &known,
            &key("a", "kept"),
            "u-of-an-older-watch"
        ));
        assert!(
            kept_after_relist(a, &known, &key("b", "another-streams"), "u3"),
            "not this stream's"
        );
        assert!(
            !kept_after_relist(None, &known, &key("b", "gone"), "u3"),
            "a stream over all namespaces"
        );
    }
}
