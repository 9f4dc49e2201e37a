//! The cluster, found as kubectl finds it: --kubeconfig, else KUBECONFIG, else ~/.kube/config,
//! else the in-cluster config; --context picks a context and -n the namespace.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::Target;

/// Why the plugin could not reach the cluster.
#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    #[error("cannot read {}: {source}", path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig: {0}")]
    NoKubeconfig(#[source] kube::config::InferConfigError),
    #[error("cannot load the kubeconfig: {0}")]
    LoadKubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot build a client: {0}")]
    Client(#[source] kube::Error),
}

/// A client and the namespace to use: -n, else the context's, else "default".
pub async fn connect(target: &Target) -> Result<(Client, String), ClientError> {
    let config = config(target).await?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(ClientError::Client)?;
    Ok((client, namespace))
}

async fn config(target: &Target) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file =
                Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?;
            Config::from_custom_kubeconfig(file, &options).await
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await,
        (None, None) => return Config::infer().await.map_err(ClientError::NoKubeconfig),
    };
    config.map_err(ClientError::LoadKubeconfig)
}
