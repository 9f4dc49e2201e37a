//! The SolutionVersionWatch resource as both binaries read it: the operator (which writes it)
//! and the kubectl plugin (which shows it). No AWS and no I/O here.

// The name the shared test generator (arn::near_arn) uses, also inside this crate.
#[cfg(test)]
extern crate self as personalize_watch_api;

pub mod arn;
pub mod crd;
pub mod describe;
pub mod outbox;
