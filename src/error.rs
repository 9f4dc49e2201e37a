//! Errors, each with a stable, static reason used in conditions, Events and metric labels.

use crate::personalize::ListError;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("{0}")]
    Personalize(#[from] ListError),

    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),

    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    #[error("cannot encode the status: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl Error {
    /// CamelCase reason for conditions, Events and the `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Personalize(e) => e.kind.reason(),
            Error::Kube(_) => "KubernetesApiError",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Serialization(_) => "SerializationError",
        }
    }

    /// Whether only a change of spec or permissions can fix it.
    pub fn stalled(&self) -> bool {
        match self {
            Error::Personalize(e) => e.kind.stalled(),
            Error::InvalidSpec(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
