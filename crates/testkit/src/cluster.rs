//! The control plane: the one named by KUBECONFIG when set (`make test` starts one and sets
//! it), otherwise one this process starts with hack/cluster.sh; a reaper tears it down when this
//! process ends, however it ends.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::envtest::{EnvtestError, LocalControlPlane, Options, Owner};
use crate::processes::binary;

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// The control plane's state folder, when known (tests that restart the API server need it).
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
    let plane = start_owned(&dir, true, &[]).map_err(|e| e.to_string())?;
    Ok(ControlPlane {
        kubeconfig: plane.state.kubeconfig,
        dir: Some(dir),
        host_ip: Some(plane.state.host_ip).filter(|ip| !ip.is_empty()),
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

/// A control plane in `dir` (with a node when `node`), torn down by its reaper when this
/// process ends, however it ends.
fn start_owned(
    dir: &Path,
    node: bool,
    apiserver_flags: &[&str],
) -> Result<LocalControlPlane, EnvtestError> {
    LocalControlPlane::start(&Options {
        dir: dir.to_path_buf(),
        node,
        apiserver_flags: apiserver_flags.iter().map(|f| f.to_string()).collect(),
        owner: Some(Owner {
            pid: std::process::id(),
            down: binary("pw-cluster"),
        }),
    })
}

/// A copy of the admin kubeconfig that impersonates `user` (e.g. a ServiceAccount).
pub fn impersonating_kubeconfig(user: &str, name: &str) -> PathBuf {
    impersonating_kubeconfig_of(&control_plane().kubeconfig, user, name)
}

/// A copy of the admin kubeconfig `admin` that impersonates `user`.
pub fn impersonating_kubeconfig_of(admin: &Path, user: &str, name: &str) -> PathBuf {
    let admin = std::fs::read_to_string(admin).expect("admin kubeconfig");
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

/// A control plane of its own, for tests that stop, pause or restart the API server. Torn down
/// when dropped (and by the reaper if this process dies).
pub struct PrivateControlPlane {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
}

impl PrivateControlPlane {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// With more kube-apiserver flags, for example a short `--event-ttl`.
    pub fn start_with(name: &str, apiserver_flags: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-{name}-{}", std::process::id()));
        // Never a node: there is one per machine, the test run's.
        let plane = start_owned(&dir, false, apiserver_flags)
            .unwrap_or_else(|e| panic!("no control plane: {e}"));
        PrivateControlPlane {
            kubeconfig: plane.state.kubeconfig,
            dir,
        }
    }

    fn plane(&self) -> LocalControlPlane {
        LocalControlPlane::open(&self.dir).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn apiserver_pid(&self) -> u32 {
        self.plane().state.apiserver_pid
    }

    pub fn signal_apiserver(&self, signal: &str) {
        assert!(
            self.plane().signal_apiserver(signal),
            "kube-apiserver of {} took no SIG{signal}",
            self.dir.display()
        );
    }

    /// Kills kube-apiserver, waits `down_for` and starts it again; returns once it is ready.
    pub fn restart_apiserver(&self, down_for: Duration) -> Result<(), EnvtestError> {
        self.plane().restart_apiserver(down_for)
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        match LocalControlPlane::open(&self.dir) {
            Ok(plane) => plane.stop(),
            Err(e) => eprintln!(
                "could not stop the control plane in {}: {e}; its reaper will",
                self.dir.display()
            ),
        }
    }
}
