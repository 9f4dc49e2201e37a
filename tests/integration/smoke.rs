//! The harness itself: a real API server that stores, validates and authenticates.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::support::{self, CommandOutput};

#[tokio::test]
async fn configmap_round_trips_through_the_real_api_server() {
    let client = support::client().await;
    let ns = support::namespace(&client, "smoke").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hello"},
        "data": {"greeting": "hi"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let read = api.get("hello").await.unwrap();
    assert_eq!(read.data.unwrap()["greeting"], "hi");
    assert!(read.metadata.uid.is_some(), "the server assigned a uid");
}

#[tokio::test]
async fn invalid_object_is_refused_with_422() {
    let client = support::client().await;
    let ns = support::namespace(&client, "smoke").await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let bad: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Valid_Name"}
    }))
    .unwrap();
    match api.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("Not_A_Valid_Name"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthenticated_client_is_refused_with_401() {
    let cp = support::control_plane();
    let admin = Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let cluster = &admin.clusters[0];
    let server = cluster.cluster.as_ref().unwrap().server.clone().unwrap();
    let ca = cluster
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .unwrap();
    let yaml = crate::support::dedent(&format!(
        r#"
        apiVersion: v1
        kind: Config
        clusters:
        - name: c
          cluster:
            server: {server}
            certificate-authority-data: {ca}
        users:
        - name: u
          user:
            token: not-a-valid-token
        contexts:
        - name: x
          context:
            cluster: c
            user: u
        current-context: x
        "#
    ));
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    personalize_watch::install_crypto_provider();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<Namespace> = Api::all(client);
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = support::kubectl(&[
        "get",
        "crd",
        "solutionversionwatches.personalize-watch.dev",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "True");
}

#[tokio::test]
async fn server_reports_the_pinned_version() {
    let client = support::client().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, support::kube_version());
}

/// The first and last lines of the README's node walk-through (the block "node-walkthrough";
/// readme:: runs the lines between on the run's node), without `NODE=1`: one node runs per
/// machine and the run's is up. `eval "$(make -s cluster-up)"` gives a working KUBECONFIG
/// whose server reports the pinned version, a second `cluster-up` reuses it, and
/// `make cluster-down` leaves no process.
#[test]
fn make_cluster_up_and_down_as_documented() {
    let block = crate::readme::commands(&support::markdown::readme_block("node-walkthrough"));
    let [registry_up, up, .., down, registry_down] = &block[..] else {
        panic!("the walk-through starts and stops a registry and a cluster")
    };
    let up = up.replace(" NODE=1", "");
    assert_eq!(registry_up, r#"eval "$(make -s registry-up)""#);
    assert_eq!(up, r#"eval "$(make -s cluster-up)""#);
    assert_eq!(down, "make cluster-down");
    assert_eq!(registry_down, "make registry-down");
    let dir = std::env::temp_dir().join(format!("pw-make-cluster-{}", std::process::id()));
    let registry_dir =
        std::env::temp_dir().join(format!("pw-make-registry-{}", std::process::id()));
    let kubectl = support::tool("kubectl");
    // The registry answers the distribution API on the address it exported.
    let script = format!(
        "set -euo pipefail\n{registry_up}\n{up}\nmake -s cluster-up >/dev/null\n{} version -o json\n\
         curl -fsS \"http://$PW_REGISTRY/v2/\" >/dev/null && echo \"registry answered at $PW_REGISTRY\"\n{down}\n{registry_down}",
        kubectl.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(support::repo_root())
        .env("PW_CLUSTER_DIR", &dir)
        .env("PW_REGISTRY_DIR", &registry_dir)
        .env_remove("KUBECONFIG")
        .env_remove("MAKEFLAGS")
        // As in a user's shell: under `make test`, make would announce each directory it enters.
        .env_remove("MAKELEVEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json_start = text.find('{').expect("kubectl version JSON");
    // The first JSON value; whatever `make cluster-down` prints follows it.
    let version: serde_json::Value = serde_json::Deserializer::from_str(&text[json_start..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no kubectl version JSON in:\n{text}"));
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        support::kube_version()
    );
    assert!(!dir.exists(), "cluster-down removes its state");
    assert!(text.contains("registry answered at 127.0.0.1:"), "{text}");
    assert!(!registry_dir.exists(), "registry-down removes its storage");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()) || l.contains(registry_dir.to_str().unwrap()))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
