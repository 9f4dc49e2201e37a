//! The command line over the test harness's control plane ([`personalize_watch_testkit::envtest`]),
//! run by hack/cluster.sh (which exports where the tools are first).
//!
//!   pw-cluster up                  start (or find running); print `export PW_HOST_IP=...` and
//!                                  `export PW_NODE_REGISTRY=...` (with a node) and
//!                                  `export KUBECONFIG=...` as the last line
//!   pw-cluster down                stop everything and remove the folder
//!   pw-cluster status              exit 0 when the API server answers /readyz
//!   pw-cluster restart-apiserver [--down-for SECONDS]
//!
//! PW_CLUSTER_DIR is the state folder (required: hack/lib.sh decides the default); PW_NODE=1 asks
//! for a real node; PW_OWNER_PID tears everything down once that process ends.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use personalize_watch_testkit::envtest::{EnvtestError, LocalControlPlane, Options, Owner};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = std::env::var_os("PW_CLUSTER_DIR").map(PathBuf::from) else {
        eprintln!("pw-cluster: PW_CLUSTER_DIR is not set (run it through hack/cluster.sh)");
        return ExitCode::from(2);
    };
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["up"] => up(dir),
        ["down"] => {
            down(&dir);
            Ok(())
        }
        ["status"] => return status(&dir),
        ["restart-apiserver"] => restart(&dir, Duration::ZERO),
        ["restart-apiserver", "--down-for", seconds] => match seconds.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => restart(&dir, Duration::from_secs_f64(s)),
            _ => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pw-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: hack/cluster.sh up|down|status|restart-apiserver [--down-for SECONDS]");
    ExitCode::from(2)
}

fn up(dir: PathBuf) -> Result<(), EnvtestError> {
    let want_node = std::env::var("PW_NODE").is_ok_and(|v| v == "1");
    if let Ok(running) = LocalControlPlane::open(&dir)
        && running.ready()
        && (!want_node || dir.join("node/ready").exists())
    {
        log(&format!(
            "control plane already running in {}",
            dir.display()
        ));
        print_exports(&running);
        return Ok(());
    }
    let owner = match std::env::var("PW_OWNER_PID")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        Some(pid) => Some(Owner {
            pid,
            down: std::env::current_exe().map_err(|e| EnvtestError::Io {
                what: "finding pw-cluster's own path for the reaper",
                source: e,
            })?,
        }),
        None => None,
    };
    log(&format!(
        "starting etcd and kube-apiserver in {}",
        dir.display()
    ));
    let plane = LocalControlPlane::start(&Options {
        dir,
        node: want_node,
        owner,
        apiserver_flags: Vec::new(),
    })?;
    log(&format!(
        "control plane ready at {}; admin kubeconfig at {}",
        plane.state.server(),
        plane.state.kubeconfig.display()
    ));
    print_exports(&plane);
    Ok(())
}

fn down(dir: &Path) {
    match LocalControlPlane::open(dir) {
        Ok(plane) => plane.stop(),
        // Nothing recorded: nothing of ours runs there.
        Err(_) => {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    log(&format!(
        "control plane in {} stopped and removed",
        dir.display()
    ));
}

fn status(dir: &Path) -> ExitCode {
    match LocalControlPlane::open(dir) {
        Ok(plane) if plane.ready() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn restart(dir: &Path, down_for: Duration) -> Result<(), EnvtestError> {
    log("restarting kube-apiserver");
    LocalControlPlane::open(dir)?.restart_apiserver(down_for)
}

/// For people and scripts: the last line is always KUBECONFIG.
fn print_exports(plane: &LocalControlPlane) {
    if !plane.state.host_ip.is_empty() {
        println!("export PW_HOST_IP={}", plane.state.host_ip);
    }
    // The registry at the node's address, which its containerd pulls from (hack/node.sh).
    if let Ok(registry) = std::fs::read_to_string(plane.state.dir.join("node/registry")) {
        println!("export PW_NODE_REGISTRY={}", registry.trim());
    }
    println!("export KUBECONFIG={}", plane.state.kubeconfig.display());
}

fn log(message: &str) {
    let now = jiff::Zoned::now().strftime("%H:%M:%S");
    eprintln!("[{now}] {message}");
}
