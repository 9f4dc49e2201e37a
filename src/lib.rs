//! personalize-watch: a Kubernetes operator that watches AWS Personalize batch inference jobs.
//!
//! How data flows, a watch event to status and Events: [`controller`] watches the
//! SolutionVersionWatches and calls [`reconcile`] for each change and each due poll; reconcile
//! validates the spec, lists the jobs through [`personalize`], decides the next status in
//! [`status`] (pure), writes it and publishes the [`events`] it decided, and schedules the next
//! poll. CONTRIBUTING.md has the same tour with the module of each step.

pub mod access;
pub mod controller;
pub mod crd;
pub mod error;
pub mod events;
pub mod flow;
pub mod metrics;
pub mod personalize;
pub mod plugin;
pub mod process;
pub mod reasons;
pub mod reconcile;
pub mod status;
pub mod text;

/// Installs aws-lc-rs as rustls' process-wide crypto provider. kube and the AWS SDK both use
/// rustls; with no provider chosen the first TLS client panics. Call before any client is made.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is what we want.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("a rustls crypto provider was installed already");
    }
}
