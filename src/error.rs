//! A reconcile's errors, each step's its own variant with its source, and each with a stable,
//! static reason used in conditions, Events and metric labels.
//!
//! Elsewhere errors are typed too (`process::error::StartError`, `personalize::ListError`,
//! `personalize::OwnAccountError`, `access::InvalidRoleEntry`, `plugin::PluginError`). The only
//! `Result<_, String>` left are parsers whose message is shown to a person as it is: the flag
//! parsers in `process::config` (clap prints them), the policy parsers in `access::policy`
//! (a namespace annotation's problem, in the NotPermitted message), `access::arn`'s ARN parser
//! and `reconcile::spec`'s validation (the InvalidSpec message).

use crate::personalize::ListError;
use crate::reasons::Reason;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("listing the jobs failed: {0}")]
    Personalize(#[from] ListError),

    /// Reading the watch again (for the notes the cache leaves out, or after a conflict).
    #[error("reading the watch again failed: {source}")]
    ReadAgain {
        #[source]
        source: kube::Error,
    },

    /// Writing the status subresource.
    #[error("writing the status failed: {source}")]
    WriteStatus {
        #[source]
        source: kube::Error,
    },

    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    #[error(
        "the status write conflicted {0} times in a row (another writer keeps changing the watch)"
    )]
    WriteConflict(u32),

    /// The namespace's access policy does not allow the watch's ARN.
    #[error("not permitted: {0}")]
    NotPermitted(String),

    /// The policy's inputs are not known yet: the namespace's annotations, or the operator's
    /// own account (STS has not answered).
    #[error("{0}")]
    AccessUnknown(String),
}

impl Error {
    /// The reason for conditions, Events and the `reason` metric label.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Personalize(e) => e.kind.reason(),
            Error::ReadAgain { .. } | Error::WriteStatus { .. } | Error::WriteConflict(_) => {
                Reason::KubernetesApiError
            }
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::NotPermitted(_) => Reason::NotPermitted,
            Error::AccessUnknown(_) => Reason::AccessUnknown,
        }
    }

    /// Whether only a change of spec or permissions can fix it.
    pub fn stalled(&self) -> bool {
        match self {
            Error::Personalize(e) => e.kind.stalled(),
            Error::InvalidSpec(_) | Error::NotPermitted(_) => true,
            Error::ReadAgain { .. }
            | Error::WriteStatus { .. }
            | Error::WriteConflict(_)
            | Error::AccessUnknown(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
