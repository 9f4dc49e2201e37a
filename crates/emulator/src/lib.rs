//! A local, wire-compatible AWS Personalize service for tests and demos: the awsJson1_1 API on
//! `POST /` and an admin API under `/_emulator/` on the same port. See docs/emulator.md.
//!
//! It is its own crate and binary (`personalize-emulator`), never part of the operator's image.

pub mod admin;
pub mod api;
pub mod faults;
pub mod model;
pub mod server;
pub mod store;
pub mod token;

use serde::{Deserialize, Serialize};

use faults::{FaultKind, Faults};
use model::StateFile;
use store::Store;
use token::TokenCodec;

/// One answered API request, as `GET /_emulator/requests` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    pub seq: u64,
    /// RFC 3339, when the request arrived.
    pub time: String,
    /// Milliseconds since the Unix epoch, when the request arrived.
    pub time_ms: i64,
    pub operation: String,
    /// What the request named (its solution version, solution or job ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_version_arn: Option<String>,
    /// The HTTP status sent, or 0 when the connection was dropped.
    pub status: u16,
    /// The error code sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub had_next_token: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
}

#[derive(Default)]
pub struct EmulatorState {
    pub store: Store,
    pub faults: Faults,
    pub tokens: TokenCodec,
    pub requests: Vec<LoggedRequest>,
    next_seq: u64,
    /// What `POST /_emulator/reset` goes back to.
    initial: StateFile,
}

impl EmulatorState {
    pub fn new(initial: StateFile) -> Result<Self, String> {
        Ok(EmulatorState {
            store: Store::from_state(initial.clone())?,
            initial,
            ..Default::default()
        })
    }

    pub fn reset(&mut self) {
        // The initial state loaded once already, so it loads again.
        self.store = Store::from_state(self.initial.clone()).unwrap_or_default();
        self.faults.clear();
        self.requests.clear();
    }

    pub fn log(&mut self, facts: api::RequestFacts, status: u16, error: Option<&'static str>) {
        let now = jiff::Timestamp::now();
        self.next_seq += 1;
        self.requests.push(LoggedRequest {
            seq: self.next_seq,
            time: now.to_string(),
            time_ms: now.as_millisecond(),
            operation: facts.operation.unwrap_or_default(),
            solution_version_arn: facts.solution_version_arn,
            status,
            error: error.map(str::to_string),
            had_next_token: facts.had_token,
            fault: facts.fault,
        });
    }
}
