//! The real node, through hack/node.sh: its bridge before the API server listens on it, the
//! node once the API server is ready, and its teardown.

use std::path::Path;
use std::process::{Command, Stdio};

use super::EnvtestError;

/// The node's bridge, before the API server listens on it; returns the address, or None (and
/// DIR/node-missing says why) when this machine cannot run a node.
pub(super) fn node_network(dir: &Path) -> Result<Option<String>, EnvtestError> {
    let check = node_script("check", dir)
        .output()
        .map_err(|e| EnvtestError::io("running hack/node.sh", e))?;
    if !check.status.success() {
        let why = String::from_utf8_lossy(&check.stderr).into_owned();
        eprintln!("no node: {why}");
        std::fs::write(dir.join("node-missing"), why)
            .map_err(|e| EnvtestError::io("writing node-missing", e))?;
        return Ok(None);
    }
    run_node_script("net-up", dir)?;
    let ip = std::fs::read_to_string(dir.join("node/host-ip"))
        .map_err(|e| EnvtestError::io("reading the node's address (DIR/node/host-ip)", e))?;
    Ok(Some(ip.trim().to_string()))
}

pub(super) fn node_up(dir: &Path) -> Result<(), EnvtestError> {
    run_node_script("up", dir)
}

fn run_node_script(step: &'static str, dir: &Path) -> Result<(), EnvtestError> {
    let status = node_script(step, dir)
        .status()
        .map_err(|e| EnvtestError::io("running hack/node.sh", e))?;
    if status.success() {
        return Ok(());
    }
    Err(EnvtestError::Node {
        step,
        status: status.to_string(),
    })
}

pub(super) fn node_script(step: &str, dir: &Path) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(crate::repo_root().join("hack/node.sh"))
        .arg(step)
        .stdout(Stdio::null());
    if step != "check" {
        command.arg(dir);
    }
    if let Ok(kubectl) = crate::find_tool("kubectl") {
        command.env("TEST_ASSET_KUBECTL", kubectl);
    }
    command
}
