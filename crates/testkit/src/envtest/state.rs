//! DIR/state.json: what a control plane runs, for whichever process restarts or stops it, and the
//! admin kubeconfig DIR/kubeconfig (hack/node.sh reads it and DIR/pki as well).

use std::path::{Path, PathBuf};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde::{Deserialize, Serialize};

use super::EnvtestError;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// The address the API server listens on: loopback, or the node's bridge address.
    pub host: String,
    /// The node's address once the node is ready (pods reach the host there); empty without one.
    pub host_ip: String,
    pub etcd_pid: u32,
    pub etcd_port: u16,
    pub apiserver_pid: u32,
    pub apiserver_port: u16,
    /// kube-apiserver's command line, kept so a restart starts it the same way.
    pub apiserver_args: Vec<String>,
    pub reaper_pid: Option<u32>,
}

impl State {
    pub fn new(dir: &Path, host: String) -> Self {
        State {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
            host,
            apiserver_port: crate::free_port(),
            ..State::default()
        }
    }

    pub fn read(dir: &Path) -> Result<Self, EnvtestError> {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| EnvtestError::State {
            path: path.clone(),
            source: Box::new(e),
        })?;
        serde_json::from_str(&text).map_err(|e| EnvtestError::State {
            path,
            source: Box::new(e),
        })
    }

    /// Written whole and renamed into place: a reader never sees half a file.
    pub fn write(&self) -> Result<(), EnvtestError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| EnvtestError::State {
            path: self.dir.join("state.json"),
            source: Box::new(e),
        })?;
        write_atomically(&self.dir.join("state.json"), &text)
    }

    pub fn server(&self) -> String {
        format!("https://{}:{}", self.host, self.apiserver_port)
    }

    /// The admin's kubeconfig: client certificate, group system:masters.
    pub fn write_kubeconfig(&self) -> Result<(), EnvtestError> {
        let pki = self.dir.join("pki");
        let b64 = |name: &str| -> Result<String, EnvtestError> {
            let bytes = std::fs::read(pki.join(name))
                .map_err(|e| EnvtestError::io("reading the PKI", e))?;
            Ok(BASE64_STANDARD.encode(bytes))
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: personalize-watch-local\n  cluster:\n    \
             server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    \
             client-certificate-data: {crt}\n    client-key-data: {key}\ncontexts:\n- name: personalize-watch-local\n  \
             context:\n    cluster: personalize-watch-local\n    user: admin\n    namespace: default\n\
             current-context: personalize-watch-local\n",
            server = self.server(),
            ca = b64("ca.crt")?,
            crt = b64("admin.crt")?,
            key = b64("admin.key")?,
        );
        write_atomically(&self.kubeconfig, &text)
    }

    /// Records that the node is Ready: DIR/node/ready, and its address in the state.
    pub fn mark_node_ready(&mut self) -> Result<(), EnvtestError> {
        std::fs::write(self.dir.join("node/ready"), "")
            .map_err(|e| EnvtestError::io("writing DIR/node/ready", e))?;
        self.host_ip = self.host.clone();
        self.write()
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), EnvtestError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .map_err(|e| EnvtestError::io("writing the control plane's state", e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| EnvtestError::io("writing the control plane's state", e))
}
