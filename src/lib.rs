//! personalize-watch: a Kubernetes operator that watches AWS Personalize batch inference jobs.
//!
//! The library holds every module; `src/main.rs` is the operator binary and
//! `src/bin/personalize-emulator.rs` the emulator binary.

pub mod emulator;
pub mod telemetry;
