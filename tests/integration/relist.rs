//! Relists: kube-runtime's reflector swaps its store only at a relist's `InitDone`, and the
//! Controller drops a watch it pops before then. With more than 500 watches the relist after an
//! API server restart comes in pages, so a watch created or edited as the server comes back is
//! popped from the first page and dropped; the sweep after the relist must reconcile it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use personalize_watch::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};
use serde_json::json;

use crate::support::{self, Emulator, Operator, OperatorOptions, PrivateControlPlane, wait_for};

/// More than a relist's page (500).
const CROWD: usize = 520;

fn watch(name: &str, sv: &str, suspend: bool) -> SolutionVersionWatch {
    SolutionVersionWatch::new(
        name,
        SolutionVersionWatchSpec {
            suspend,
            ..SolutionVersionWatchSpec::watching(sv)
        },
    )
}

/// Whether the watch's status has caught up with its spec.
fn observed(w: &SolutionVersionWatch) -> bool {
    w.status
        .as_ref()
        .is_some_and(|s| s.observed_generation == w.metadata.generation)
}

/// Whether the watch's status has caught up with its spec and holds a listing.
fn reconciled(w: &SolutionVersionWatch) -> bool {
    observed(w)
        && w.status
            .as_ref()
            .is_some_and(|s| s.last_sync_time.is_some())
}

#[tokio::test]
async fn a_watch_created_or_edited_as_a_paged_relist_begins_is_reconciled() {
    let cp = Arc::new(PrivateControlPlane::start("relist"));
    let client = support::client_for(&cp.kubeconfig).await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "relist").await;
    let emu = Emulator::start();
    let sv = support::solution_version_arn("relist");
    emu.generate(&sv, 2, "ACTIVE", "job").await;
    let api: Api<SolutionVersionWatch> = Api::namespaced(client.clone(), &ns);
    // The crowd, and one suspended watch whose name sorts into the relist's first page.
    let mut all: Vec<SolutionVersionWatch> = (0..CROWD)
        .map(|i| watch(&format!("w-{i:04}"), &sv, false))
        .collect();
    all.push(watch("b-suspended", &sv, true));
    futures::stream::iter(all)
        .for_each_concurrent(16, |w| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &w)
                    .await
                    .expect("create a watch");
            }
        })
        .await;
    let op = Operator::start(OperatorOptions {
        kubeconfig: cp.kubeconfig.clone(),
        endpoint: &emu.url,
        args: [
            "--watch-namespace",
            &ns,
            "--personalize-rate",
            "1000",
            "--personalize-burst",
            "100",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![(
            "RUST_LOG".into(),
            "info,personalize_watch=debug,kube_runtime=debug".into(),
        )],
    });
    op.wait_ready().await;
    wait_for(
        Duration::from_secs(120),
        "the crowd's first listings",
        || {
            let api = api.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                (list.items.iter().filter(|w| observed(w)).count() == CROWD + 1).then_some(())
            }
        },
    )
    .await;

    // The API server goes away long enough for the operator's watch stream to back off to its
    // cap (5 s); as soon as it is back, before the stream relists, one watch is created (its name
    // sorts first) and the suspended one resumed.
    let restarting = cp.clone();
    tokio::task::spawn_blocking(move || restarting.restart_apiserver(Duration::from_secs(8)))
        .await
        .expect("the restart ran")
        .unwrap_or_else(|e| panic!("restarting the API server failed: {e}"));
    let client = support::client_for(&cp.kubeconfig).await;
    let api: Api<SolutionVersionWatch> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &watch("a-created", &sv, false))
        .await
        .expect("create a watch as the API server comes back");
    api.patch(
        "b-suspended",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .expect("resume the suspended watch");

    for name in ["a-created", "b-suspended"] {
        wait_for(
            Duration::from_secs(30),
            &format!("{name} reconciled with its current spec"),
            || {
                let api = api.clone();
                async move { api.get(name).await.ok().filter(reconciled).map(|_| ()) }
            },
        )
        .await;
    }
    // The log is colored: its words, not its fields.
    let logs = op.logs();
    assert!(
        logs.contains("reconciling watches no event asked for") && logs.contains("Relist"),
        "the operator relisted after the restart (else this test proves nothing); the end of its log:\n{}",
        support::processes::tail(&logs, 40)
    );
}
