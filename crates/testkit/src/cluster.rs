//! The control plane: the one named by KUBECONFIG when set (`make test` starts one and sets
//! it), otherwise one this process starts with hack/cluster.sh; a reaper tears it down when this
//! process ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::repo_root;

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// The hack/cluster.sh state folder, when known (tests that restart the API server need it).
    pub dir: Option<PathBuf>,
    /// The real node's address on its bridge (PW_HOST_IP), where pods reach the host; None
    /// without a node.
    pub host_ip: Option<String>,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The test run's control plane, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start_control_plane) {
        Ok(cp) => cp,
        Err(e) => panic!("no control plane: {e}"),
    }
}

fn start_control_plane() -> Result<ControlPlane, String> {
    if let Ok(kubeconfig) = std::env::var("KUBECONFIG") {
        return Ok(ControlPlane {
            kubeconfig: PathBuf::from(kubeconfig),
            dir: std::env::var("PW_CLUSTER_DIR").ok().map(PathBuf::from),
            host_ip: std::env::var("PW_HOST_IP").ok().filter(|ip| !ip.is_empty()),
        });
    }
    let dir = std::env::temp_dir().join(format!("personalize-watch-test-{}", std::process::id()));
    let up = cluster_up(&dir, true)?;
    Ok(ControlPlane {
        kubeconfig: up.kubeconfig,
        dir: Some(dir),
        host_ip: Some(up.host_ip).filter(|ip| !ip.is_empty()),
    })
}

/// The real node of the test run's control plane: its address, and the folder of its state.
/// Panics saying what is missing when there is none.
pub fn node() -> (String, PathBuf) {
    let cp = control_plane();
    let missing = cp
        .dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("node-missing")).ok());
    match (&cp.host_ip, &cp.dir, missing) {
        (Some(ip), Some(dir), _) => (ip.clone(), dir.clone()),
        (_, _, Some(why)) => panic!(
            "no node: this machine cannot run containers:\n{why}\nThe node tests need root, cgroups and overlayfs (README, prerequisites)."
        ),
        _ => panic!(
            "no node: the control plane at KUBECONFIG has none. Run `make test` (it starts one), or \
             `eval \"$(make -s cluster-up NODE=1)\"` and export PW_CLUSTER_DIR with it"
        ),
    }
}

/// What `hack/cluster.sh up` wrote to its state file, `DIR/state.json`.
#[derive(serde::Deserialize)]
struct Up {
    kubeconfig: PathBuf,
    #[serde(rename = "hostIp")]
    host_ip: String,
}

/// `hack/cluster.sh up` in `dir` (with a node when `node`), torn down by its reaper when this
/// process ends; returns what its state file says: the kubeconfig and the node's address.
fn cluster_up(dir: &Path, node: bool) -> Result<Up, String> {
    let status = Command::new("bash")
        .arg(repo_root().join("hack/cluster.sh"))
        .arg("up")
        .env("PW_CLUSTER_DIR", dir)
        .env("PW_NODE", if node { "1" } else { "0" })
        .env("PW_OWNER_PID", std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run hack/cluster.sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "hack/cluster.sh up failed ({status}); it needs Go to build the control plane the first time, \
             or run `make test`, which builds everything"
        ));
    }
    let state = dir.join("state.json");
    let text = std::fs::read_to_string(&state)
        .map_err(|e| format!("hack/cluster.sh up wrote no {}: {e}", state.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not the state expected: {e}", state.display()))
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

/// A control plane of its own, for tests that stop or pause the API server. Torn down when dropped
/// (and by the reaper if this process dies).
pub struct PrivateControlPlane {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
}

impl PrivateControlPlane {
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-{name}-{}", std::process::id()));
        // Never a node: there is one per machine, the test run's.
        let up = cluster_up(&dir, false).unwrap_or_else(|e| panic!("{e}"));
        PrivateControlPlane {
            kubeconfig: up.kubeconfig,
            dir,
        }
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
        let stopped = Command::new("bash")
            .arg(repo_root().join("hack/cluster.sh"))
            .arg("down")
            .env("PW_CLUSTER_DIR", &self.dir)
            .stderr(std::process::Stdio::null())
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            eprintln!(
                "could not stop the control plane in {}; its reaper will",
                self.dir.display()
            );
        }
    }
}
