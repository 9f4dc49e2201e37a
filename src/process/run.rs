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
use crate::controller;
use crate::crd::SolutionVersionWatch;
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::personalize::Personalize;
use crate::process::admin::{self, AdminState};
use crate::process::config::RunArgs;
use crate::process::error::StartError;
use crate::process::leader;
use crate::reconcile::{Context, Parts};

pub async fn run(args: RunArgs) -> ExitCode {
    crate::install_crypto_provider();
    telemetry::init(args.admin.log_format, &args.admin.log_level);
    match serve(args).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: RunArgs) -> Result<(), StartError> {
    let client = kube::Client::try_default()
        .await
        .map_err(StartError::KubeConfig)?;
    let metrics = Arc::new(Metrics::new());
    let admin_addr = args.admin.admin_addr;
    let listener = admin::bind(admin_addr)
        .await
        .map_err(|source| StartError::AdminBind {
            addr: admin_addr,
            source,
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
) -> Result<(), StartError> {
    tokio::select! {
        result = check_crd(&client, args) => result?,
        () = shutdown.wait() => return Err(StartError::Stopped("the API server answered")),
    }
    let ctx = Arc::new(context(args, client.clone(), metrics.clone()).await);
    let scope = args.scope.scope();
    let sources = args.access.sources(&scope.namespaces);
    // No watch is judged before its namespace's policy and the account roles are known.
    info!("reading the access policy: namespaces and account roles");
    tokio::select! {
        () = sources.start(client, ctx.access.clone(), ctx.access_changes.clone()) => {}
        () = shutdown.wait() => return Err(StartError::Stopped("the access policy was read")),
    }
    let announce = shutdown.clone();
    tokio::spawn(async move {
        announce.wait().await;
        info!("shutting down: finishing in-flight reconciles");
    });
    let instance = args.lease.instance_name();
    let lease = args.lease.lease();
    info!(%instance, namespaces = ?scope.namespaces, leader_election = lease.is_some(), "starting");
    if let Some(lease) = lease {
        // A standby is ready: it serves probes and takes over when the leader goes.
        ready.store(true, Ordering::Relaxed);
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
    let personalize = Arc::new(Personalize::new(&args.aws.client_options(), metrics.clone()).await);
    Context::new(Parts {
        events: Publisher::new(client.clone(), &args.lease.instance_name()),
        client,
        personalize,
        metrics,
        settings: args.polling.settings(),
        access: Arc::new(Access::new(args.access.policy_defaults())),
        concurrency: usize::from(args.polling.concurrency),
    })
}

/// Fails fast, with a message a person can act on, when the CRD is missing: otherwise the
/// watcher would retry forever.
async fn check_crd(client: &kube::Client, args: &RunArgs) -> Result<(), StartError> {
    let api: Api<SolutionVersionWatch> = match args.scope.watch_namespace.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StartError::CrdMissing),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(StartError::CrdForbidden(s.message)),
        Err(e) => Err(StartError::ApiUnreachable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use crate::process::config::{Cli, Command};

    /// `check_crd` against an API server that answers the list with `code`; the list's path too.
    async fn check_against(code: u16, namespace: Option<&str>) -> (Result<(), StartError>, String) {
        crate::install_crypto_provider();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api_server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("one list");
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": code, "message": "the server could not find the requested resource"});
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(body.to_string().into_bytes()))
                    .expect("a response"),
            );
            request.uri().path().to_string()
        });
        let mut argv = vec!["personalize-watch", "run"];
        argv.extend(
            namespace
                .map(|ns| ["--watch-namespace", ns])
                .into_iter()
                .flatten(),
        );
        let Command::Run(args) = Cli::parse_from(argv).command else {
            unreachable!("run was given")
        };
        let result = check_crd(&kube::Client::new(service, "default"), &args).await;
        (result, api_server.await.expect("the mock API server"))
    }

    #[tokio::test]
    async fn a_missing_crd_stops_the_start_with_what_to_install() {
        let (result, path) = check_against(404, None).await;
        assert_eq!(
            path,
            "/apis/personalize-watch.dev/v1alpha1/solutionversionwatches"
        );
        let error = result.expect_err("a missing CRD fails the start");
        assert!(matches!(error, StartError::CrdMissing));
        assert!(
            error.to_string().contains("kubectl apply -f crds/"),
            "{error}"
        );

        let (result, path) = check_against(403, Some("team-a")).await;
        assert_eq!(
            path,
            "/apis/personalize-watch.dev/v1alpha1/namespaces/team-a/solutionversionwatches"
        );
        assert!(matches!(result, Err(StartError::CrdForbidden(_))));
    }
}
