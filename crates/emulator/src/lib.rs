//! A local, wire-compatible AWS Personalize service for tests and demos: the awsJson1_1 API on
//! `POST /` and an admin API under `/_emulator/` on the same port. See docs/emulator.md.
//!
//! It is its own crate and binary (`personalize-emulator`), never part of the operator's image.

pub mod admin;
pub mod api;
pub mod faults;
pub mod identity;
pub mod model;
pub mod server;
pub mod simulation;
pub mod store;
pub mod sts;
pub mod token;

use serde::{Deserialize, Serialize};

use std::collections::{HashMap, HashSet, VecDeque};

use faults::{FaultKind, Faults};
use identity::Identities;
use model::StateFile;
use store::{ListingOrder, Store};
use token::TokenCodec;

/// Listings whose omissions are remembered (their later pages need them).
const REMEMBERED_LISTINGS: usize = 1024;

fn identities_of(state: &StateFile) -> Identities {
    Identities::new(
        state.default_account.as_deref(),
        &state.identities,
        &state.roles,
    )
}

/// The simulation, started now.
fn simulation_of(state: &StateFile) -> Option<simulation::Simulation> {
    state
        .simulation
        .clone()
        .map(|spec| simulation::Simulation::new(spec, model::EpochMillis::now()))
}

/// Advances the simulation (if any) to now.
pub fn simulate(state: &mut EmulatorState) {
    if let Some(sim) = state.simulation.as_mut() {
        sim.advance(&mut state.store, model::EpochMillis::now());
    }
}

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
    /// What the request named (its solution version, solution or job ARN; the role for
    /// AssumeRole).
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
    /// The caller's account and the region its signature names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

/// Requests the log keeps unless told otherwise (`--request-log-size`): about 250 bytes each.
pub const DEFAULT_REQUEST_LOG_SIZE: usize = 100_000;

#[derive(Default)]
pub struct EmulatorState {
    pub store: Store,
    pub faults: Faults,
    pub tokens: TokenCodec,
    /// The last [`EmulatorState::request_log_capacity`] requests, oldest first.
    pub requests: VecDeque<LoggedRequest>,
    /// How many requests the log keeps (0: [`DEFAULT_REQUEST_LOG_SIZE`]): a demo left running
    /// for days stays flat.
    pub request_log_size: usize,
    /// Requests the log let go of, oldest first, since the start or the last clear.
    pub requests_dropped: u64,
    pub order: ListingOrder,
    pub identities: Identities,
    /// Moves jobs by themselves when the state file has a `simulation` block.
    pub simulation: Option<simulation::Simulation>,
    next_seq: u64,
    /// What `POST /_emulator/reset` goes back to.
    initial: StateFile,
    omissions: Omissions,
}

/// The jobs each listing started under an `omit` fault leaves out, by listing id.
#[derive(Default)]
struct Omissions {
    by_listing: HashMap<u64, HashSet<String>>,
    oldest_first: VecDeque<u64>,
    last_id: u64,
}

impl EmulatorState {
    pub fn new(initial: StateFile) -> Result<Self, String> {
        if let Some(spec) = &initial.simulation {
            spec.check()?;
        }
        Ok(EmulatorState {
            store: Store::from_state(initial.clone())?,
            identities: identities_of(&initial),
            simulation: simulation_of(&initial),
            initial,
            ..Default::default()
        })
    }

    pub fn reset(&mut self) {
        // The initial state loaded once already, so it loads again.
        self.store = Store::from_state(self.initial.clone()).unwrap_or_default();
        self.identities = identities_of(&self.initial);
        self.simulation = simulation_of(&self.initial);
        self.faults.clear();
        self.clear_requests();
    }

    /// How many requests the log keeps.
    pub fn request_log_capacity(&self) -> usize {
        match self.request_log_size {
            0 => DEFAULT_REQUEST_LOG_SIZE,
            size => size,
        }
    }

    /// Empties the request log.
    pub fn clear_requests(&mut self) {
        self.requests.clear();
        self.requests_dropped = 0;
    }

    /// Starts a listing that leaves out `arns` on every page; returns its id.
    pub fn start_omitting(&mut self, arns: HashSet<String>) -> u64 {
        let o = &mut self.omissions;
        o.last_id += 1;
        o.by_listing.insert(o.last_id, arns);
        o.oldest_first.push_back(o.last_id);
        if o.oldest_first.len() > REMEMBERED_LISTINGS
            && let Some(forgotten) = o.oldest_first.pop_front()
        {
            o.by_listing.remove(&forgotten);
        }
        o.last_id
    }

    /// What a listing leaves out (nothing for listing 0 or one long forgotten).
    pub fn omitted(&self, listing: u64) -> HashSet<String> {
        self.omissions
            .by_listing
            .get(&listing)
            .cloned()
            .unwrap_or_default()
    }

    pub fn log(&mut self, facts: api::RequestFacts, status: u16, error: Option<&'static str>) {
        let now = jiff::Timestamp::now();
        self.next_seq += 1;
        if self.requests.len() >= self.request_log_capacity() {
            self.requests.pop_front();
            self.requests_dropped += 1;
        }
        self.requests.push_back(LoggedRequest {
            seq: self.next_seq,
            time: now.to_string(),
            time_ms: now.as_millisecond(),
            operation: facts.operation.unwrap_or_default(),
            solution_version_arn: facts.solution_version_arn,
            status,
            error: error.map(str::to_string),
            had_next_token: facts.had_token,
            fault: facts.fault,
            account: facts.account,
            region: facts.region,
        });
    }
}
