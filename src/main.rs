//! personalize-watch: the operator binary.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use personalize_watch::admin::{self, AdminState};
use personalize_watch::config::{Cli, Command, RetryMode, RunArgs};
use personalize_watch::controller::{self, Context, Scope};
use personalize_watch::crd::{self, SolutionVersionWatch};
use personalize_watch::metrics::Metrics;
use personalize_watch::personalize::{ClientOptions, Personalize};
use personalize_watch::telemetry;
use tracing::{error, info};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(*args))
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    personalize_watch::install_crypto_provider();
    telemetry::init(args.log_format, &args.log_level);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            error!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let listener = match admin::bind(args.admin_addr).await {
        Ok(l) => l,
        Err(e) => {
            error!(addr = %args.admin_addr, "cannot listen on the admin address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped_rx = stop_rx.clone();
    let stopped = move || {
        let mut rx = stopped_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin_task = tokio::spawn(admin::serve(
        listener,
        AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        stopped(),
    ));
    // Probes answer from the start: alive at once, ready only once the watch cache has synced.
    let crd_check = tokio::select! {
        result = check_crd(&client, &args) => result,
        () = personalize_watch::shutdown_signal() => Err("stopped before the API server answered".into()),
    };
    if let Err(message) = crd_check {
        error!("{message}");
        let _ = stop_tx.send(true);
        let _ = admin_task.await;
        return ExitCode::FAILURE;
    }
    let options = ClientOptions {
        endpoint_url: args.aws_endpoint_url.clone(),
        adaptive_retry: args.aws_retry_mode == RetryMode::Adaptive,
        max_attempts: args.aws_max_attempts,
        attempt_timeout: args.aws_timeout,
        rate_per_second: args.personalize_rate,
        burst: args.personalize_burst,
    };
    let personalize = Arc::new(Personalize::new(&options, metrics.clone()).await);
    let instance = args.instance_name();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "personalize-watch".into(),
            instance: Some(instance.clone()),
        },
    );
    let mut context = Context::new(
        client.clone(),
        personalize,
        recorder,
        metrics.clone(),
        args.min_backoff,
        args.max_backoff,
    );
    context.default_poll_interval = args.default_poll_interval;
    context.default_active_poll_interval = args.default_active_poll_interval;
    let ctx = Arc::new(context);
    let scope = Scope {
        namespaces: args.watch_namespace.clone(),
        label_selector: args.label_selector.clone(),
    };
    tokio::spawn(async move {
        personalize_watch::shutdown_signal().await;
        info!("shutting down: finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    info!(%instance, namespaces = ?scope.namespaces, leader_election = args.leader_election, "starting");
    if args.leader_election {
        // A standby is ready: it serves probes and takes over when the leader goes.
        ready.store(true, Ordering::Relaxed);
        if let Err(message) = lead_then_run(
            &args,
            &instance,
            ctx,
            scope,
            metrics.clone(),
            stop_rx.clone(),
        )
        .await
        {
            error!("{message}");
            let _ = admin_task.await;
            return ExitCode::FAILURE;
        }
    } else {
        metrics.set_leader(true);
        let ready_flag = ready.clone();
        controller::run(ctx, scope, args.concurrency, stopped(), move || {
            ready_flag.store(true, Ordering::Relaxed);
            info!("watch cache synced; ready");
        })
        .await;
    }
    let _ = admin_task.await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Runs the controller only while this instance holds the Lease; stands by otherwise. On
/// shutdown, in-flight reconciles finish and the Lease is released for the next leader.
async fn lead_then_run(
    args: &RunArgs,
    instance: &str,
    ctx: Arc<Context>,
    scope: Scope,
    metrics: Arc<Metrics>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let lease_seconds = args.lease_duration.as_secs().max(2);
    let manager =
        kube_lease_manager::LeaseManagerBuilder::new(ctx.client.clone(), &args.lease_name)
            .with_namespace(args.lease_namespace())
            .with_identity(instance)
            .with_duration(lease_seconds)
            .with_grace((lease_seconds / 3).max(1))
            .with_field_manager("personalize-watch")
            .build()
            .await
            .map_err(|e| {
                format!(
                    "cannot set up leader election on Lease {}/{}: {e}",
                    args.lease_namespace(),
                    args.lease_name
                )
            })?;
    let (leading, lease_task) = manager.watch().await;
    metrics.set_leader(false);
    let stopped = {
        let stop_rx = stop_rx.clone();
        move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };
    loop {
        let mut became = leading.clone();
        tokio::select! {
            () = stopped() => break,
            result = became.wait_for(|l| *l) => if result.is_err() { break },
        }
        info!(lease = %args.lease_name, "became the leader");
        metrics.set_leader(true);
        let mut lost = leading.clone();
        let until = {
            let stop = stopped();
            async move {
                tokio::select! {
                    () = stop => {},
                    _ = lost.wait_for(|l| !*l) => {},
                }
            }
        };
        controller::run(ctx.clone(), scope.clone(), args.concurrency, until, || {}).await;
        metrics.set_leader(false);
        if *stop_rx.borrow() {
            break;
        }
        tracing::warn!("lost the lease; standing by");
    }
    // Dropping the last receiver makes the manager release the Lease.
    drop(leading);
    match tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => info!("released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!("could not release the lease: {e}"),
        _ => tracing::warn!("the lease manager did not stop in time"),
    }
    Ok(())
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
