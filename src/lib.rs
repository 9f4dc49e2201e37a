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

/// Resolves on SIGTERM or SIGINT (Ctrl-C), for both binaries' graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
