//! `personalize-watch run`: start-up, in the order that keeps probes honest. The admin port
//! binds first (alive at once, ready once the watch cache has synced), then the CRD is checked,
//! then the controller runs, under leader election when asked, until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Api, ListParams};
use personalize_watch_runtime::{Shutdown, telemetry};
use tracing::{error, info, warn};

use crate::access::Access;
use crate::access::sources::Sources;
use crate::controller::{self, Scope};
use crate::crd::SolutionVersionWatch;
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::personalize::{ClientOptions, Personalize};
use crate::process::admin::{self, AdminState};
use crate::process::config::{RetryMode, RunArgs};
use crate::process::leader::{self, LeaseSettings};
use crate::reconcile::spec::PollIntervals;
use crate::reconcile::{Context, Parts, Settings};

pub async fn run(args: RunArgs) -> ExitCode {
    crate::install_crypto_provider();
    telemetry::init(args.log_format, &args.log_level);
    match serve(args).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: RunArgs) -> Result<(), String> {
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}")
    })?;
    let metrics = Arc::new(Metrics::new());
    let listener = admin::bind(args.admin_addr).await.map_err(|e| {
        format!(
            "cannot listen on the admin address {}: {e}",
            args.admin_addr
        )
    })?;
    let shutdown = Shutdown::on_signal();
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::spawn(admin::serve(
        listener,
        AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        shutdown.wait(),
    ));
    let result = check_crd_then_control(&args, client, metrics, &shutdown, ready).await;
    // The controller is done (or never started): stop serving probes too.
    shutdown.trigger();
    if let Err(e) = admin.await {
        warn!(error = %e, "the admin server ended abnormally");
    }
    result
}

async fn check_crd_then_control(
    args: &RunArgs,
    client: kube::Client,
    metrics: Arc<Metrics>,
    shutdown: &Shutdown,
    ready: Arc<AtomicBool>,
) -> Result<(), String> {
    tokio::select! {
        result = check_crd(&client, args) => result?,
        () = shutdown.wait() => return Err("stopped before the API server answered".into()),
    }
    let ctx = Arc::new(context(args, client.clone(), metrics.clone()).await);
    let scope = Scope {
        namespaces: args.watch_namespace.clone(),
        label_selector: args.label_selector.clone(),
    };
    let sources = Sources {
        namespaces: args.watch_namespace.clone(),
        account_roles: args
            .account_roles
            .as_ref()
            .map(|o| (o.namespace.clone(), o.name.clone())),
    };
    // No watch is judged before its namespace's policy and the account roles are known.
    info!("reading the access policy: namespaces and account roles");
    tokio::select! {
        () = sources.start(client, ctx.access.clone(), ctx.access_changes.clone()) => {}
        () = shutdown.wait() => return Err("stopped before the access policy was read".into()),
    }
    let announce = shutdown.clone();
    tokio::spawn(async move {
        announce.wait().await;
        info!("shutting down: finishing in-flight reconciles");
    });
    let instance = args.instance_name();
    info!(%instance, namespaces = ?scope.namespaces, leader_election = args.leader_election, "starting");
    if args.leader_election {
        // A standby is ready: it serves probes and takes over when the leader goes.
        ready.store(true, Ordering::Relaxed);
        let lease = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace(),
            duration: args.lease_duration,
            identity: instance,
        };
        return leader::lead_then_run(&lease, ctx, scope, shutdown.clone()).await;
    }
    metrics.set_leader(true);
    controller::run(ctx, scope, shutdown.wait(), move || {
        ready.store(true, Ordering::Relaxed);
        info!("watch cache synced; ready");
    })
    .await;
    Ok(())
}

/// The shared context of every reconcile: clients, metrics, and the settings from the CLI.
async fn context(args: &RunArgs, client: kube::Client, metrics: Arc<Metrics>) -> Context {
    let options = ClientOptions {
        endpoint_url: args.aws_endpoint_url.clone(),
        adaptive_retry: args.aws_retry_mode == RetryMode::Adaptive,
        max_attempts: args.aws_max_attempts,
        attempt_timeout: args.aws_timeout,
        rate_per_second: args.personalize_rate,
        burst: args.personalize_burst,
    };
    let personalize = Arc::new(Personalize::new(&options, metrics.clone()).await);
    let events = Publisher::new(client.clone(), &args.instance_name());
    let settings = Settings {
        default_intervals: PollIntervals {
            idle: args.default_poll_interval,
            while_running: args.default_active_poll_interval,
        },
        min_backoff: args.min_backoff,
        max_backoff: args.max_backoff,
        status_heartbeat: args.status_heartbeat,
    };
    Context::new(Parts {
        client,
        personalize,
        events,
        metrics,
        settings,
        access: Arc::new(Access::new(args.policy_defaults())),
        concurrency: usize::from(args.concurrency),
    })
}

/// Fails fast, with a message a person can act on, when the CRD is missing: otherwise the
/// watcher would retry forever.
async fn check_crd(client: &kube::Client, args: &RunArgs) -> Result<(), String> {
    let api: Api<SolutionVersionWatch> = match args.watch_namespace.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(
            "the SolutionVersionWatch CRD (solutionversionwatches.personalize-watch.dev) is not installed: \
             kubectl apply -f crds/ (or install the Helm chart)"
                .into(),
        ),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(format!(
            "not allowed to list solutionversionwatches.personalize-watch.dev: {} (check the operator's RBAC)",
            s.message
        )),
        Err(e) => Err(format!("cannot reach the Kubernetes API server: {e}")),
    }
}
