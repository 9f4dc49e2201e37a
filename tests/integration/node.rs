//! On a real node (hack/node.sh, started by `make test`): the chart installed from the registry
//! as a user installs a release (`helm install oci://...`, the image pulled by the node's
//! containerd from the registry: the one `make release` pushed, see [`crate::release`]), the
//! operator running in a pod with its ServiceAccount token and the chart's RBAC, against the
//! emulator on the host reached through the node's bridge.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::release::released;
use crate::support::command::run;
use crate::support::{self, CommandOutput, Emulator, control_plane, kubectl, node, tool, wait_for};

/// The chart of the release and the image at the node's registry address, by digest: what
/// `helm install` takes (besides the test's own values).
fn release_args() -> Vec<String> {
    let released = released();
    vec![
        released.chart_url().to_string(),
        "--version".into(),
        env!("CARGO_PKG_VERSION").into(),
        "--plain-http".into(),
        "--set".into(),
        format!(
            "image.repository={}/personalize-watch",
            released.node_registry
        ),
        "--set".into(),
        format!("image.digest={}", released.digest()),
    ]
}

/// helm against the test control plane.
fn helm(args: &[&str]) -> CommandOutput {
    let mut command = Command::new(tool("helm"));
    command
        .args(args)
        .current_dir(support::repo_root())
        .env("KUBECONFIG", &control_plane().kubeconfig);
    run(command, None)
}

/// A release of the chart in its own namespace, with the emulator on the node's address.
pub(crate) struct Release {
    pub(crate) name: String,
    pub(crate) ns: String,
    pub(crate) emu: Emulator,
    pub(crate) client: kube::Client,
}

impl Release {
    async fn install(name: &str, extra: &[&str]) -> Self {
        Self::install_watching(name, &[], extra).await
    }

    /// A release that watches its own namespace and `teams`.
    pub(crate) async fn install_watching(name: &str, teams: &[String], extra: &[&str]) -> Self {
        let (host_ip, _) = node();
        let client = support::client().await;
        support::install_crds(&client).await;
        let ns = support::namespace(&client, name).await;
        let watched = std::iter::once(ns.clone())
            .chain(teams.iter().cloned())
            .collect::<Vec<_>>();
        let emu = Emulator::start_with(&["--listen", &format!("{host_ip}:0")]);
        let mut args = vec!["install".to_string(), name.to_string()];
        args.extend(release_args());
        args.extend([
            "-n".into(),
            ns.clone(),
            "--wait".into(),
            "--timeout".into(),
            "180s".into(),
        ]);
        for set in [
            format!("aws.endpointUrl={}", emu.url),
            format!("aws.stsEndpointUrl={}", emu.url),
            "aws.region=us-east-1".into(),
            format!("watchNamespace={{{}}}", watched.join(",")),
            "extraEnv[0].name=AWS_ACCESS_KEY_ID".into(),
            format!("extraEnv[0].value={}", support::FAKE_ACCESS_KEY_ID),
            "extraEnv[1].name=AWS_SECRET_ACCESS_KEY".into(),
            format!("extraEnv[1].value={}", support::FAKE_SECRET_ACCESS_KEY),
            "defaultActivePollInterval=5s".into(),
            "defaultPollInterval=5s".into(),
        ] {
            args.push("--set".into());
            args.push(set);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = helm(&args);
        assert!(out.success, "helm install failed:\n{}", out.text());
        Release {
            name: name.to_string(),
            ns,
            emu,
            client,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn running_pods(&self) -> Vec<Pod> {
        let lp = ListParams::default().labels("app.kubernetes.io/name=personalize-watch");
        let pods = self.pods().list(&lp).await.expect("list pods").items;
        pods.into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect()
    }

    async fn leader(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns);
        leases
            .get_opt(&format!("{}-personalize-watch", self.name))
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    }

    async fn watch(&self, name: &str, sv: &str) {
        self.watch_in(&self.ns, name, sv, "").await;
    }

    /// A watch of `sv` polled every 5 s, with `more` spec lines.
    pub(crate) async fn watch_in(&self, ns: &str, name: &str, sv: &str, more: &str) {
        let spec =
            format!("solutionVersionArn: {sv}\nactivePollInterval: 5s\npollInterval: 5s\n{more}");
        let yaml = support::watch_yaml(ns, name, &spec);
        let out = support::kubectl_with_input(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.success, "{}", out.text());
    }

    async fn synced(&self, name: &str, total: i64) {
        self.synced_in(&self.ns, name, total).await;
    }

    pub(crate) async fn synced_in(&self, ns: &str, name: &str, total: i64) {
        let api: Api<personalize_watch::crd::SolutionVersionWatch> =
            Api::namespaced(self.client.clone(), ns);
        wait_for(
            Duration::from_secs(90),
            "the watch synced by the pod",
            || async {
                let w = api.get_opt(name).await.ok().flatten()?;
                (support::total(&w) == Some(total)).then_some(())
            },
        )
        .await;
    }

    /// Failed Events per job in the release's namespace.
    async fn failures(&self) -> HashMap<String, u32> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let mut by_job = HashMap::new();
        for e in events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
        {
            if e.reason.as_deref() == Some("BatchInferenceJobFailed")
                && let Some(job) = e.related.and_then(|r| r.name)
            {
                *by_job.entry(job).or_insert(0) += 1;
            }
        }
        by_job
    }

    async fn wait_failure(&self, job: &str, within: Duration) {
        wait_for(within, &format!("the Failed Event of {job}"), || async {
            self.failures().await.contains_key(job).then_some(())
        })
        .await;
    }
}

/// A test that fails leaves no release behind: its cluster-wide roles would refuse the next
/// install of the same name. (Tests that uninstall themselves make this a no-op.)
impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            &self.name,
            "-n",
            &self.ns,
            "--ignore-not-found",
        ]);
    }
}

/// The operator container's process on the node: its pid, from containerd.
fn container_pid(dir: &std::path::Path, container_id: &str) -> u32 {
    let sock = dir.join("node/containerd.sock");
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&sock)
        .args(["-n", "k8s.io", "tasks", "ls"])
        .output()
        .expect("ctr runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(container_id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no task {container_id} in:\n{text}"))
}

#[tokio::test]
async fn the_chart_runs_the_operator_in_a_pod_that_syncs_and_announces() {
    let r = Release::install("node-one", &[]).await;
    let pods = r.running_pods().await;
    assert_eq!(pods.len(), 1, "one Ready pod after helm --wait");
    let pod = &pods[0];
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(ready, "Ready through the chart's readiness probe");

    let sv = support::solution_version_arn("node-one");
    let running = r.emu.generate(&sv, 2, "IN PROGRESS", "run").await;
    r.emu.generate(&sv, 3, "ACTIVE", "done").await;
    r.watch("nightly", &sv).await;
    r.synced("nightly", 5).await;
    r.emu
        .set_status(&running[0], "CREATE FAILED", Some("from the pod"))
        .await;
    r.wait_failure("run-1", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(r.failures().await.get("run-1"), Some(&1));
    // The pod's own calls, signed with the credentials the chart gave it.
    let calls = r.emu.requests().await;
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "ListBatchInferenceJobs" && c.status == 200)
    );

    // What the running container is, read from its process on the node.
    let (_, dir) = node();
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    let pid = container_pid(&dir, id.trim_start_matches("containerd://"));
    // Pulled by containerd from the node's registry, by the release's digest, over plain HTTP
    // configured for that address alone.
    let released = released();
    let image_id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.image_id.clone())
        .unwrap_or_default();
    assert_eq!(
        image_id,
        format!(
            "{}/personalize-watch@{}",
            released.node_registry,
            released.digest()
        )
    );
    let hosts: Vec<String> = std::fs::read_dir(dir.join("node/certs.d"))
        .expect("the node's registry hosts")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(hosts, std::slice::from_ref(&released.node_registry));
    let toml = std::fs::read_to_string(
        dir.join("node/certs.d")
            .join(&released.node_registry)
            .join("hosts.toml"),
    )
    .expect("hosts.toml");
    assert!(
        toml.contains(&format!("server = \"http://{}\"", released.node_registry)),
        "{toml}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65532"),
        "{uid}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_default();
    let options = root.split_whitespace().nth(5).unwrap_or_default();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "the root filesystem is read-only: {root}"
    );

    // The metrics Service, through kube-proxy, from the node's network.
    let services: Api<Service> = Api::namespaced(r.client.clone(), &r.ns);
    let svc = services
        .list(&ListParams::default())
        .await
        .expect("services")
        .items
        .into_iter()
        .find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("metrics") || n.starts_with(&r.name))
        })
        .expect("the chart's metrics Service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    let body = wait_for(
        Duration::from_secs(30),
        "/metrics through the Service",
        || async {
            let url = format!("http://{ip}:8080/metrics");
            let out = Command::new("curl")
                .args(["-fsS", "--max-time", "3", &url])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        },
    )
    .await;
    assert!(body.contains("personalize_watch_reconciles"), "{body}");
    helm(&["uninstall", &r.name, "-n", &r.ns, "--wait"]);
}

#[tokio::test]
async fn two_replicas_hand_over_roll_and_uninstall_without_losing_or_repeating_an_event() {
    let r = Release::install(
        "node-two",
        &[
            "--set",
            "replicaCount=2",
            "--set",
            "leaderElection.leaseDuration=15s",
        ],
    )
    .await;
    let sv = support::solution_version_arn("node-two");
    let running = r.emu.generate(&sv, 4, "IN PROGRESS", "run").await;
    r.watch("handover", &sv).await;
    r.synced("handover", 4).await;
    let leader = wait_for(Duration::from_secs(30), "a leader", || r.leader()).await;

    // The leader's pod goes while a job fails.
    r.pods()
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader's pod");
    let deleted = Instant::now();
    r.emu
        .set_status(&running[0], "CREATE FAILED", Some("during the handover"))
        .await;
    let next = wait_for(Duration::from_secs(60), "a new leader", || async {
        r.leader().await.filter(|l| *l != leader)
    })
    .await;
    let handover = deleted.elapsed();
    assert!(
        handover <= Duration::from_secs(25),
        "handover to {next} took {handover:?}; the lease is 15s"
    );
    eprintln!("leader {leader} deleted; {next} leads after {handover:?}");
    r.wait_failure("run-1", Duration::from_secs(30)).await;

    // helm upgrade with another value rolls the pods; a job failing meanwhile is announced once.
    let before: Vec<String> = r
        .running_pods()
        .await
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let mut args = vec!["upgrade".to_string(), r.name.clone()];
    args.extend(release_args());
    args.extend(
        [
            "-n",
            &r.ns,
            "--reuse-values",
            "--set",
            "logLevel=debug",
            "--wait",
            "--timeout",
            "180s",
        ]
        .map(String::from),
    );
    let upgrade = helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(upgrade.success, "{}", upgrade.text());
    r.emu
        .set_status(&running[1], "CREATE FAILED", Some("during the roll"))
        .await;
    r.wait_failure("run-2", Duration::from_secs(60)).await;
    let after: Vec<String> = r
        .running_pods()
        .await
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "the upgrade rolled the pods: {before:?} -> {after:?}"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    let failures = r.failures().await;
    assert_eq!(failures.get("run-1"), Some(&1), "{failures:?}");
    assert_eq!(failures.get("run-2"), Some(&1), "{failures:?}");

    let out = helm(&["uninstall", &r.name, "-n", &r.ns, "--wait"]);
    assert!(out.success, "{}", out.text());
    // The pods go after their Deployment, by the garbage collector, within their grace period.
    let selector = format!("app.kubernetes.io/instance={}", r.name);
    let left = || {
        kubectl(&[
            "get",
            concat!(
                "deployments,replicasets,pods,services,serviceaccounts,configmaps,roles,rolebindings,",
                "clusterroles,clusterrolebindings,poddisruptionbudgets,networkpolicies,leases"
            ),
            "-A",
            "-l",
            &selector,
            "-o",
            "name",
        ])
    };
    wait_for(
        Duration::from_secs(60),
        "nothing of the release left",
        || async {
            let out = left();
            (out.success && out.stdout.trim().is_empty()).then_some(())
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(r.client.clone(), &r.ns);
    assert!(
        leases
            .list(&ListParams::default())
            .await
            .expect("leases")
            .items
            .is_empty(),
        "the Lease goes with the release"
    );
    let crd = kubectl(&[
        "get",
        "crd",
        "solutionversionwatches.personalize-watch.dev",
        "-o",
        "name",
    ]);
    assert!(crd.success, "the CRD stays: {}", crd.text());
}
