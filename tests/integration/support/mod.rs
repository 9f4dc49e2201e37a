//! Test support: one real control plane per test run, a fresh namespace per test, the CRDs from
//! crds/, and the emulator and operator binaries as child processes.
//!
//! The control plane is the one named by KUBECONFIG when set (`make test` starts one and sets
//! it), otherwise this process starts its own with hack/cluster.sh; a reaper tears it down when
//! this process ends, however it ends.

#![allow(dead_code)]

pub mod bench;
pub mod http;
pub mod processes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use processes::{Emulator, Operator};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// The hack/cluster.sh state folder, when known (tests that restart the API server need it).
    pub dir: Option<PathBuf>,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

fn start_control_plane() -> Result<ControlPlane, String> {
    if let Ok(kubeconfig) = std::env::var("KUBECONFIG") {
        return Ok(ControlPlane {
            kubeconfig: PathBuf::from(kubeconfig),
            dir: std::env::var("PW_CLUSTER_DIR").ok().map(PathBuf::from),
        });
    }
    let dir = std::env::temp_dir().join(format!("personalize-watch-test-{}", std::process::id()));
    Ok(ControlPlane {
        kubeconfig: cluster_up(&dir)?,
        dir: Some(dir),
    })
}

/// `hack/cluster.sh up` in `dir`, torn down by its reaper when this process ends; returns the
/// kubeconfig path from its last line.
fn cluster_up(dir: &Path) -> Result<PathBuf, String> {
    let output = Command::new("bash")
        .arg(repo_root().join("hack/cluster.sh"))
        .arg("up")
        .env("PW_CLUSTER_DIR", dir)
        .env("PW_OWNER_PID", std::process::id().to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run hack/cluster.sh: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "hack/cluster.sh up failed ({}); it needs Go to build the control plane the first time, \
             or run `make test`, which builds everything",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("export KUBECONFIG=")
        .map(PathBuf::from)
        .ok_or_else(|| format!("unexpected last line from hack/cluster.sh up: {last:?}"))
}

/// A copy of the admin kubeconfig that impersonates `user` (e.g. a ServiceAccount).
pub fn impersonating_kubeconfig(user: &str, name: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&control_plane().kubeconfig).expect("admin kubeconfig");
    let impersonating = admin.replacen(
        "    client-key-data:",
        &format!("    as: {user}\n    client-key-data:"),
        1,
    );
    assert_ne!(
        admin, impersonating,
        "the admin kubeconfig has a client key"
    );
    let path = std::env::temp_dir().join(format!("pw-{name}-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, impersonating).expect("write kubeconfig");
    path
}

/// Applies a CRD file (server-side) and waits until `name` is Established.
pub fn install_crd_file(path: &Path, name: &str) {
    let (ok, _, err) = kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{name}"),
        "--timeout=30s",
    ]);
    assert!(ok, "{err}");
}

/// A control plane of its own, for tests that stop or pause the API server. Torn down when dropped
/// (and by the reaper if this process dies).
pub struct PrivateControlPlane {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
}

impl PrivateControlPlane {
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-{name}-{}", std::process::id()));
        let kubeconfig = cluster_up(&dir).unwrap_or_else(|e| panic!("{e}"));
        PrivateControlPlane { kubeconfig, dir }
    }

    pub fn apiserver_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("apiserver.pid"))
            .expect("apiserver.pid")
            .trim()
            .parse()
            .expect("a pid")
    }

    pub fn signal_apiserver(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.apiserver_pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("hack/cluster.sh"))
            .arg("down")
            .env("PW_CLUSTER_DIR", &self.dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start_control_plane) {
        Ok(cp) => cp,
        Err(e) => panic!("no control plane: {e}"),
    }
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    personalize_watch::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

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

/// A binary the tests need, found where hack/ scripts put it; fails with how to get it.
pub fn tool(name: &str) -> PathBuf {
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
        _ => "",
    };
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    if let Ok(dir) = std::env::var("KUBEBUILDER_ASSETS")
        && Path::new(&dir).join(name).exists()
    {
        return Path::new(&dir).join(name);
    }
    let cache = std::env::var("PW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let base = std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
                });
            base.join("personalize-watch")
        });
    let candidates = [
        cache.join("k8s").join(KUBE_VERSION).join(name),
        cache.join("bin").join(name),
        cache.join("venv/bin").join(name),
    ];
    for c in &candidates {
        if c.exists() {
            return c.clone();
        }
    }
    panic!(
        "{name} not found (looked at ${var} and {candidates:?}); run `make tools` (hack/tools.sh) \
         or `make test`, which installs it"
    );
}

pub const KUBE_VERSION: &str = "v1.35.4";

/// Runs kubectl against the test control plane; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    kubectl_with_input(args, None)
}

pub fn kubectl_with_input(args: &[&str], input: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(text) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const ACCOUNT: &str = "123456789012";

pub fn solution_version_arn(solution: &str) -> String {
    format!("arn:aws:personalize:us-east-1:{ACCOUNT}:solution/{solution}/v1")
}

pub fn job_arn(name: &str) -> String {
    format!("arn:aws:personalize:us-east-1:{ACCOUNT}:batch-inference-job/{name}")
}
