//! Why the process could not start or keep running: each step of start-up its own variant, with
//! its source, in words an operator can act on.

use std::net::SocketAddr;

#[derive(thiserror::Error, Debug)]
pub enum StartError {
    #[error("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    KubeConfig(#[source] kube::Error),

    #[error("cannot listen on the admin address {addr}: {source}")]
    AdminBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the SolutionVersionWatch CRD (solutionversionwatches.personalize-watch.dev) is not installed: \
         kubectl apply -f crds/ (or install the Helm chart)"
    )]
    CrdMissing,

    #[error(
        "not allowed to list solutionversionwatches.personalize-watch.dev: {0} (check the operator's RBAC)"
    )]
    CrdForbidden(String),

    #[error("cannot reach the Kubernetes API server: {0}")]
    ApiUnreachable(#[source] kube::Error),

    #[error("stopped before {0}")]
    Stopped(&'static str),

    #[error("cannot set up leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}
