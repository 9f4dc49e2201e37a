//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): only the leader runs
//! the controller; a standby waits and takes over when the leader goes.

use std::sync::Arc;
use std::time::Duration;

use personalize_watch_runtime::Shutdown;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::{self, Scope};
use crate::process::error::StartError;
use crate::reconcile::Context;

/// Where the Lease lives and how long it is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub duration: Duration,
    /// This instance's identity in the Lease.
    pub identity: String,
}

/// Runs the controller only while this instance holds the Lease; stands by otherwise. On
/// shutdown, in-flight reconciles finish and the Lease is released for the next leader.
pub async fn lead_then_run(
    lease: &LeaseSettings,
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let seconds = lease.duration.as_secs().max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(ctx.client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .with_field_manager("personalize-watch")
        .build()
        .await
        .map_err(|source| StartError::Lease {
            namespace: lease.namespace.clone(),
            name: lease.name.clone(),
            source,
        })?;
    let (leading, lease_task) = manager.watch().await;
    stand_by(&ctx);
    while became_leader(&leading, &shutdown).await {
        info!(lease = %lease.name, "became the leader");
        ctx.set_leading(true);
        ctx.metrics.set_leader(true);
        let term = shutdown.child();
        let end_of_term = lost_leadership(leading.clone(), term.clone(), ctx.clone());
        controller::run(ctx.clone(), scope.clone(), term.wait(), || {}).await;
        end_of_term.abort();
        stand_by(&ctx);
        if shutdown.is_triggered() {
            break;
        }
        warn!("lost the lease; standing by");
    }
    // Dropping the last receiver makes the manager release the Lease.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => info!("released the lease"),
        Ok(Ok(Err(e))) => warn!("could not release the lease: {e}"),
        _ => warn!("the lease manager did not stop in time"),
    }
    Ok(())
}

/// Waits until this instance leads; false when shutting down first (or the manager stopped).
async fn became_leader(leading: &watch::Receiver<bool>, shutdown: &Shutdown) -> bool {
    let mut leading = leading.clone();
    tokio::select! {
        () = shutdown.wait() => false,
        result = leading.wait_for(|l| *l) => result.is_ok(),
    }
}

/// Not leading: nothing is written or published, and the per-watch series are the leader's.
fn stand_by(ctx: &Context) {
    ctx.set_leading(false);
    ctx.metrics.set_leader(false);
    ctx.metrics.clear_watches();
}

/// Ends the term when the Lease is lost: reconciles still in flight stop writing at once.
fn lost_leadership(
    mut leading: watch::Receiver<bool>,
    term: Shutdown,
    ctx: Arc<Context>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if leading.wait_for(|l| !*l).await.is_err() {
            warn!("the lease manager stopped; ending the term");
        }
        ctx.set_leading(false);
        term.trigger();
    })
}
