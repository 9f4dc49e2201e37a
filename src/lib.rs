//! personalize-watch: a Kubernetes operator that watches AWS Personalize batch inference jobs.
//!
//! The library holds every module; `src/main.rs` is the operator binary and
//! `src/bin/personalize-emulator.rs` the emulator binary.

pub mod admin;
pub mod config;
pub mod controller;
pub mod crd;
pub mod emulator;
pub mod error;
pub mod events;
pub mod metrics;
pub mod personalize;
pub mod ratelimit;
pub mod status;
pub mod telemetry;

/// Installs aws-lc-rs as rustls' process-wide crypto provider. kube and the AWS SDK both use
/// rustls; with no provider chosen the first TLS client panics. Call before any client is made.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
