//! A local control plane, started the way controller-runtime's envtest starts one: etcd and
//! kube-apiserver as processes of this machine on free loopback ports, with a PKI of their own,
//! in a folder of their own (DIR). Tests start one in-process ([`crate::PrivateControlPlane`]);
//! `hack/cluster.sh` is the command line over the same code (the `pw-cluster` binary). With a
//! node, `hack/node.sh` brings up the node's bridge before the API server listens on it and the
//! node once the API server is ready.
//!
//! DIR/state.json says what runs (pids, ports, the API server's arguments), so any process can
//! restart or stop what another started; nothing is read from a script's output.

mod node;
mod pid;
mod pki;
mod processes;
mod state;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use node::{node_network, node_script, node_up};
use processes::{apiserver_args, reaper, spawn, spawn_etcd, wait_for_etcd, wait_until_ready};
pub use state::State;

/// How long etcd and kube-apiserver get to become ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum EnvtestError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed making {step} ({status}): {stderr}")]
    Command {
        step: &'static str,
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{process} exited while starting; the end of {log}:\n{tail}")]
    Exited {
        process: &'static str,
        log: PathBuf,
        tail: String,
    },
    #[error("{process} was not ready within {waited:?}; see {log}")]
    NotReady {
        process: &'static str,
        waited: Duration,
        log: PathBuf,
    },
    #[error("{path} is not a control plane's state: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Tool(#[from] crate::MissingTool),
    #[error("hack/node.sh {step} failed ({status}); its output is above")]
    Node { step: &'static str, status: String },
}

impl EnvtestError {
    fn io(what: &'static str, source: std::io::Error) -> Self {
        EnvtestError::Io { what, source }
    }
}

/// What to start.
pub struct Options {
    /// The folder of this control plane's state; whatever was there is removed.
    pub dir: PathBuf,
    /// With a real node (hack/node.sh); when the machine cannot run one, DIR/node-missing says why.
    pub node: bool,
    /// A process whose end tears the control plane down: the reaper runs `down` then.
    pub owner: Option<Owner>,
    /// More kube-apiserver flags (for example `--event-ttl=20s`), after the harness's own.
    pub apiserver_flags: Vec<String>,
}

/// Tear down when `pid` ends, by running `down` (the `pw-cluster` binary) with PW_CLUSTER_DIR.
pub struct Owner {
    pub pid: u32,
    pub down: PathBuf,
}

/// A running control plane, as its state file describes it.
pub struct LocalControlPlane {
    pub state: State,
}

impl LocalControlPlane {
    /// Starts etcd and kube-apiserver (and the node) in `options.dir`, waits until the API server
    /// is ready, and writes DIR/state.json and the admin kubeconfig DIR/kubeconfig. On failure
    /// what it started is stopped; the folder stays, with the logs the error names.
    pub fn start(options: &Options) -> Result<Self, EnvtestError> {
        let dir = &options.dir;
        if let Ok(old) = Self::open(dir) {
            old.stop();
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)
            .map_err(|e| EnvtestError::io("creating the state folder", e))?;
        let mut plane = LocalControlPlane {
            state: State::new(dir, "127.0.0.1".into()),
        };
        match plane.bring_up(options) {
            Ok(()) => Ok(plane),
            Err(e) => {
                plane.stop_processes();
                Err(e)
            }
        }
    }

    /// Each process's pid is in the state file before this waits for it, so a reaper or `down`
    /// stops whatever started, however far this got.
    fn bring_up(&mut self, options: &Options) -> Result<(), EnvtestError> {
        let dir = self.state.dir.clone();
        pki::make(&dir.join("pki"))?;
        if let Some(owner) = &options.owner {
            self.state.reaper_pid = Some(reaper(owner, &dir)?);
        }
        let node = if options.node {
            node_network(&dir)?
        } else {
            None
        };
        if let Some(host) = &node {
            self.state.host = host.clone();
        }
        self.state.write()?;
        self.state.etcd_pid = spawn_etcd(&mut self.state)?;
        self.state.write()?;
        wait_for_etcd(&self.state)?;
        self.state.apiserver_args = apiserver_args(&self.state, node.is_some())?;
        self.state
            .apiserver_args
            .extend(options.apiserver_flags.iter().cloned());
        self.state.apiserver_pid = spawn(&self.state.apiserver_args, &dir.join("apiserver.log"))?;
        self.state.write()?;
        self.wait_ready()?;
        self.state.write_kubeconfig()?;
        if node.is_some() {
            node_up(&dir)?;
            self.state.mark_node_ready()?;
        }
        Ok(())
    }

    /// The control plane whose state is in `dir`.
    pub fn open(dir: &Path) -> Result<Self, EnvtestError> {
        Ok(LocalControlPlane {
            state: State::read(dir)?,
        })
    }

    /// Whether etcd and the API server run and the API server answers /readyz.
    pub fn ready(&self) -> bool {
        let dir = &self.state.dir;
        pid::ours(self.state.etcd_pid, dir)
            && pid::ours(self.state.apiserver_pid, dir)
            && self.answers_readyz()
    }

    /// Kills kube-apiserver (etcd keeps the data), waits `down_for`, and starts it again on the
    /// same address with the same arguments.
    pub fn restart_apiserver(&mut self, down_for: Duration) -> Result<(), EnvtestError> {
        pid::kill(self.state.apiserver_pid, &self.state.dir);
        std::thread::sleep(down_for);
        let log = self.state.dir.join("apiserver.log");
        self.state.apiserver_pid = spawn(&self.state.apiserver_args, &log)?;
        self.state.write()?;
        self.wait_ready()
    }

    /// Sends `signal` (STOP, CONT, ...) to kube-apiserver.
    pub fn signal_apiserver(&self, signal: &str) -> bool {
        pid::ours(self.state.apiserver_pid, &self.state.dir)
            && pid::signal(self.state.apiserver_pid, signal)
    }

    /// Stops the node, the API server, etcd and the reaper (unless the reaper is what runs
    /// this), and removes the folder.
    pub fn stop(&self) {
        self.stop_processes();
        let _ = std::fs::remove_dir_all(&self.state.dir);
    }

    fn stop_processes(&self) {
        let dir = &self.state.dir;
        if dir.join("node").is_dir() {
            // A failed node teardown says why on stderr; the rest still stops.
            let _ = node_script("down", dir).status();
        }
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let reaper = self.state.reaper_pid.filter(|p| *p != me && *p != parent);
        let processes = [
            reaper,
            Some(self.state.apiserver_pid),
            Some(self.state.etcd_pid),
        ];
        for pid in processes.into_iter().flatten().filter(|p| *p != 0) {
            pid::stop(pid, dir);
        }
    }

    fn wait_ready(&self) -> Result<(), EnvtestError> {
        let log = self.state.dir.join("apiserver.log");
        wait_until_ready("kube-apiserver", self.state.apiserver_pid, &log, || {
            self.answers_readyz()
        })
    }

    fn answers_readyz(&self) -> bool {
        let pki = self.state.dir.join("pki");
        Command::new("curl")
            .args(["-fsS", "--max-time", "2", "-o", "/dev/null", "--cacert"])
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .arg(format!("{}/readyz", self.state.server()))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
