//! The test harness of personalize-watch, shared by `tests/` and `benches/`: one real control
//! plane per test run ([`cluster`]), a fresh namespace per test, the CRDs from crds/, the
//! emulator and the operator as child processes ([`processes`]), the fixture most end-to-end
//! tests start from ([`fixture`]), commands ([`command`]), and the parsers tests share
//! ([`prometheus`], [`markdown`]).

pub mod bench;
pub mod cluster;
pub mod command;
pub mod envtest;
pub mod fixture;
pub mod http;
pub mod markdown;
pub mod processes;
pub mod prometheus;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use cluster::{
    ControlPlane, PrivateControlPlane, control_plane, impersonating_kubeconfig,
    impersonating_kubeconfig_of, node,
};
pub use command::{CommandOutput, kubectl, kubectl_with_input};
pub use fixture::{Fixture, condition, total};
pub use processes::{Emulator, Operator, OperatorOptions, free_port};

/// Fake AWS credentials: the emulator accepts any, and tests check the secret never leaks.
pub const FAKE_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const FAKE_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The account of every ARN the tests make up.
pub const ACCOUNT: &str = "123456789012";

/// A SolutionVersionWatch manifest for `kubectl apply`: `spec` holds the spec's lines
/// (`solutionVersionArn: ...`, one field a line), written as a user would, hostile values included
/// (tests that need a valid watch build the typed object instead).
pub fn watch_yaml(namespace: &str, name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: personalize-watch.dev/v1alpha1\nkind: SolutionVersionWatch\n\
         metadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

/// `text` without its first line break and the indentation its lines share, so that fixtures
/// can be written as raw strings indented with the code around them.
pub fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or_else(|| l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') || text.ends_with(' ') {
        out = out.trim_end_matches(' ').to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// RBAC for an operator impersonating `sa` and watching only `ns`: the rules the chart grants in
/// the namespace (with or without patching status, for tests that revoke it), and reading the
/// namespace's access-policy annotations by name.
pub fn operator_rbac(ns: &str, sa: &str, status: bool) -> String {
    let status_rule = if status {
        "- {apiGroups: [personalize-watch.dev], resources: [solutionversionwatches/status], verbs: [patch]}\n"
    } else {
        ""
    };
    dedent(&format!(
        r#"
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {{name: op, namespace: {ns}}}
        rules:
        - {{apiGroups: [personalize-watch.dev], resources: [solutionversionwatches], verbs: [list, watch]}}
        - {{apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}}
        - {{apiGroups: [""], resources: [events], verbs: [list]}}
        STATUS_RULE
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {{name: op, namespace: {ns}}}
        roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: op}}
        subjects: [{{kind: User, name: "{sa}"}}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {{name: op-{ns}}}
        rules:
        - {{apiGroups: [""], resources: [namespaces], verbs: [get, list, watch], resourceNames: [{ns}]}}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata: {{name: op-{ns}}}
        roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op-{ns}}}
        subjects: [{{kind: User, name: "{sa}"}}]
        "#
    ))
    .replace("STATUS_RULE\n", status_rule)
}

/// How long a soak test runs: `short` in `make test`, `full` in `make soak` (PW_SOAK=1).
/// `PW_SOAK_SECONDS` sets it outright, while iterating on one.
pub fn soak(short: Duration, full: Duration) -> Duration {
    if let Some(seconds) = std::env::var("PW_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Duration::from_secs(seconds);
    }
    match std::env::var("PW_SOAK").as_deref() {
        Ok("1") => full,
        _ => short,
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails when the file at `path` (from the repository root) is not `want`, a document generated
/// from the code; with `PW_WRITE_DOCS` set it writes `want` first. `how` says how to run the
/// test that writes it.
pub fn assert_generated(path: &str, want: &str, how: &str) {
    let file = repo_root().join(path);
    if std::env::var_os("PW_WRITE_DOCS").is_some() {
        std::fs::write(&file, want).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    let have = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        have == want,
        "{path} is not what the code generates; write it again with PW_WRITE_DOCS=1 {how}"
    );
}

/// The Kubernetes version the control plane is built at: the one source is the wrapper module
/// in hack/control-plane/go.mod.
pub fn kube_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let go_mod = include_str!("../../../hack/control-plane/go.mod");
        go_mod
            .lines()
            .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
            .map(|v| v.trim().to_string())
            .expect("hack/control-plane/go.mod requires k8s.io/kubernetes")
    })
}

/// A second account, for tenancy tests: its role trusts the emulator's default account
/// ([`ACCOUNT`]) when it carries the external ID [`TEAM_B_EXTERNAL_ID`].
pub const ACCOUNT_B: &str = "222222222222";
pub const ROLE_B: &str = "arn:aws:iam::222222222222:role/personalize-watch-reader";
pub const TEAM_B_EXTERNAL_ID: &str = "team-b";
/// A second role in account B, for a team choosing its own (a namespace annotation).
pub const ROLE_B_TEAM_C: &str = "arn:aws:iam::222222222222:role/personalize-watch-team-c";
pub const TEAM_C_EXTERNAL_ID: &str = "team-c";
/// A role in a third account that trusts nobody.
pub const UNTRUSTING_ROLE: &str = "arn:aws:iam::444444444444:role/untrusting";

/// The emulator state of a two-account world: the roles above.
pub fn two_account_state() -> String {
    format!(
        "roles:\n- roleArn: {ROLE_B}\n  trustedAccounts: [\"{ACCOUNT}\"]\n  externalId: {TEAM_B_EXTERNAL_ID}\n\
         - roleArn: {ROLE_B_TEAM_C}\n  trustedAccounts: [\"{ACCOUNT}\"]\n  externalId: {TEAM_C_EXTERNAL_ID}\n\
         - roleArn: {UNTRUSTING_ROLE}\n  trustedAccounts: []\n"
    )
}

/// A solution version ARN in `account`.
pub fn solution_version_arn_in(account: &str, solution: &str) -> String {
    format!("arn:aws:personalize:us-east-1:{account}:solution/{solution}/v1")
}

pub fn solution_version_arn(solution: &str) -> String {
    format!("arn:aws:personalize:us-east-1:{ACCOUNT}:solution/{solution}/v1")
}

pub fn job_arn(name: &str) -> String {
    format!("arn:aws:personalize:us-east-1:{ACCOUNT}:batch-inference-job/{name}")
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    personalize_watch::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// A client of the test run's control plane, as the admin.
pub async fn client() -> Client {
    client_for(&control_plane().kubeconfig).await
}

/// A namespace of its own for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{}-{:06x}",
        prefix.to_lowercase().replace('_', "-"),
        rand::random::<u32>() & 0xff_ffff
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .expect("namespace object");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

/// Applies every CRD in crds/ and waits until each is Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = repo_root().join("crds");
    for entry in std::fs::read_dir(&dir).expect("crds/ readable") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("crd file");
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("crd yaml");
        let name = crd.metadata.name.clone().expect("crd name");
        api.patch(
            &name,
            &PatchParams::apply("personalize-watch-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply crd");
        wait_for(Duration::from_secs(30), "CRD Established", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

/// Applies a CRD file (server-side) with kubectl and waits until `name` is Established.
pub fn install_crd_file(path: &Path, name: &str) {
    let path = path.to_str().expect("UTF-8 path");
    kubectl(&["apply", "--server-side", "--force-conflicts", "-f", path]).expect_success();
    // `kubectl wait` fails at once while a new CRD has no conditions yet: ask again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=30s",
        ]);
        if wait.success || std::time::Instant::now() > deadline {
            wait.expect_success();
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Installs prometheus-operator's CRDs named by their plurals (`servicemonitors`, ...), from the
/// release hack/tools.sh pins (PW_PROMETHEUS_OPERATOR_CRDS), each waited for until Established.
pub fn install_prometheus_operator_crds(plurals: &[&str]) {
    let dir = PathBuf::from(std::env::var("PW_PROMETHEUS_OPERATOR_CRDS").unwrap_or_else(|_| {
        panic!("PW_PROMETHEUS_OPERATOR_CRDS is not set: run `make test`, or eval \"$(hack/tools.sh)\"")
    }));
    for plural in plurals {
        install_crd_file(
            &dir.join(format!("monitoring.coreos.com_{plural}.yaml")),
            &format!("{plural}.monitoring.coreos.com"),
        );
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A binary the tests need, at the path hack/tools.sh exported (`make test` runs it); panics
/// saying how to get it otherwise.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|e| panic!("{e}"))
}

/// A tool the harness was not told about: which variable names it, and how to get it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} not found: ${var} is not set. `make test` sets it; to run tests or hack/cluster.sh on \
     their own, first run `eval \"$(hack/tools.sh)\"` (it builds or installs what is missing)"
)]
pub struct MissingTool {
    pub name: String,
    pub var: &'static str,
}

/// Where a tool is: the one place that decides is hack/ (hack/lib.sh for the cache folder,
/// hack/control-plane/build.sh and hack/tools.sh for the tools), which exports a variable per
/// tool; envtest's KUBEBUILDER_ASSETS is honoured for the control plane's three.
pub fn find_tool(name: &str) -> Result<PathBuf, MissingTool> {
    let var = match name {
        "kubectl" => "TEST_ASSET_KUBECTL",
        "kube-apiserver" => "TEST_ASSET_KUBE_APISERVER",
        "etcd" => "TEST_ASSET_ETCD",
        "aws" => "PW_AWS_CLI",
        "python" => "PW_PYTHON",
        "helm" => "PW_HELM",
        "hadolint" => "PW_HADOLINT",
        "kstatus" => "PW_KSTATUS",
        "promrules" => "PW_PROMRULES",
        "promtool" => "PW_PROMTOOL",
        "prometheus" => "PW_PROMETHEUS",
        "prometheus-operator" => "PW_PROMETHEUS_OPERATOR",
        "argo-events-check" => "PW_ARGO_EVENTS_CHECK",
        "crane" => "PW_CRANE",
        "oras" => "PW_ORAS",
        "krew" => "PW_KREW",
        "validate-krew-manifest" => "PW_KREW_VALIDATE",
        "qemu-aarch64" => "PW_QEMU_AARCH64",
        _ => "PW_UNKNOWN_TOOL",
    };
    if let Ok(path) = std::env::var(var) {
        return Ok(PathBuf::from(path));
    }
    if let Ok(dir) = std::env::var("KUBEBUILDER_ASSETS")
        && Path::new(&dir).join(name).exists()
    {
        return Ok(Path::new(&dir).join(name));
    }
    Err(MissingTool {
        name: name.to_string(),
        var,
    })
}

#[cfg(test)]
mod fixture_text_tests {
    use super::*;

    #[test]
    fn dedent_strips_the_shared_indentation_and_keeps_the_rest() {
        let text = dedent(
            r#"
            a:
              b: 1
            c: "x"
            "#,
        );
        assert_eq!(text, "a:\n  b: 1\nc: \"x\"\n");
        assert_eq!(dedent("one line"), "one line");
    }

    #[test]
    fn watch_yaml_is_a_watch_manifest() {
        let yaml = watch_yaml("ns", "w", "solutionVersionArn: x\npollInterval: 5s");
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["kind"], "SolutionVersionWatch");
        assert_eq!(value["metadata"]["namespace"], "ns");
        assert_eq!(value["spec"]["pollInterval"], "5s");
    }
}
