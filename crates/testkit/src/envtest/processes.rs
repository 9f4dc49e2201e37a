//! The control plane's processes: etcd and kube-apiserver's command lines, starting them with
//! their logs, waiting for etcd, and the reaper that tears everything down after the owner.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{EnvtestError, Owner, READY_WITHIN, State, pid};

/// Starts etcd on two free ports; returns its pid.
pub(super) fn spawn_etcd(state: &mut State) -> Result<u32, EnvtestError> {
    let etcd = crate::find_tool("etcd")?;
    let dir = state.dir.clone();
    state.etcd_port = crate::free_port();
    let (client, peer) = (
        format!("http://127.0.0.1:{}", state.etcd_port),
        format!("http://127.0.0.1:{}", crate::free_port()),
    );
    let mut args = vec![etcd.to_string_lossy().into_owned()];
    args.extend(
        [
            "--name",
            "local",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
            // etcd's default quota (2 GiB) is reached by the scale benches; 8 GiB is its maximum.
            "--quota-backend-bytes",
            "8589934592",
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("local={peer}"),
            "--data-dir",
            &dir.join("etcd-data").to_string_lossy(),
        ]
        .map(String::from),
    );
    spawn(&args, &dir.join("etcd.log"))
}

/// Until etcd answers /health.
pub(super) fn wait_for_etcd(state: &State) -> Result<(), EnvtestError> {
    let log = state.dir.join("etcd.log");
    wait_until_ready("etcd", state.etcd_pid, &log, || {
        etcd_healthy(state.etcd_port)
    })
}

/// Until `ready` holds for the process `pid` this one just started (its log `log`); an error
/// when it exits first or [`READY_WITHIN`] passes.
pub(super) fn wait_until_ready(
    process: &'static str,
    pid: u32,
    log: &Path,
    ready: impl Fn() -> bool,
) -> Result<(), EnvtestError> {
    let deadline = Instant::now() + READY_WITHIN;
    while !ready() {
        if !pid::alive(pid) {
            return Err(exited(process, log));
        }
        if Instant::now() > deadline {
            return Err(EnvtestError::NotReady {
                process,
                waited: READY_WITHIN,
                log: log.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = String::new();
    stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.contains("\"health\":\"true\"")
}

/// kube-apiserver's command line, the way envtest configures it: RBAC, client certificates,
/// ServiceAccount tokens. Without a node there are no pods, so no ServiceAccount admission and
/// no endpoint reconciler; with one, it advertises itself on the node's bridge.
pub(super) fn apiserver_args(state: &State, node: bool) -> Result<Vec<String>, EnvtestError> {
    let apiserver = crate::find_tool("kube-apiserver")?;
    let pki = |name: &str| {
        state
            .dir
            .join("pki")
            .join(name)
            .to_string_lossy()
            .into_owned()
    };
    let mut args = vec![apiserver.to_string_lossy().into_owned()];
    args.extend(
        [
            "--etcd-servers",
            &format!("http://127.0.0.1:{}", state.etcd_port),
            "--bind-address",
            &state.host,
            "--secure-port",
            &state.apiserver_port.to_string(),
            "--tls-cert-file",
            &pki("serving.crt"),
            "--tls-private-key-file",
            &pki("serving.key"),
            "--client-ca-file",
            &pki("ca.crt"),
            "--authorization-mode",
            "RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            &pki("sa.pub"),
            "--service-account-signing-key-file",
            &pki("sa.key"),
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--allow-privileged=true",
        ]
        .map(String::from),
    );
    if node {
        args.extend(["--advertise-address".to_string(), state.host.clone()]);
    } else {
        args.extend(
            [
                "--disable-admission-plugins",
                "ServiceAccount",
                "--endpoint-reconciler-type",
                "none",
            ]
            .map(String::from),
        );
    }
    Ok(args)
}

/// Starts `args` with stdout and stderr appended to `log`; returns its pid. The process outlives
/// this one (the command line's `up` returns while it runs).
pub(super) fn spawn(args: &[String], log: &Path) -> Result<u32, EnvtestError> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| EnvtestError::io("opening a log file", e))?;
    let err = out
        .try_clone()
        .map_err(|e| EnvtestError::io("opening a log file", e))?;
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| EnvtestError::io("starting a control plane process", e))?;
    Ok(child.id())
}

pub(super) fn exited(process: &'static str, log: &Path) -> EnvtestError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    EnvtestError::Exited {
        process,
        log: log.to_path_buf(),
        tail,
    }
}

/// A detached process that runs `down` once the owner has ended, however it ended (a panic, a
/// kill), so no etcd or kube-apiserver outlives the run that started them.
pub(super) fn reaper(owner: &Owner, dir: &Path) -> Result<u32, EnvtestError> {
    use std::os::unix::process::CommandExt;
    let child = Command::new("bash")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; PW_CLUSTER_DIR="$2" exec "$3" down"#)
        .arg("pw-cluster-reaper")
        .arg(owner.pid.to_string())
        .arg(dir)
        .arg(&owner.down)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| EnvtestError::io("starting the reaper", e))?;
    Ok(child.id())
}
