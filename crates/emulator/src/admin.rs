//! The admin API under `/_emulator/`: change state, inject faults, read the request log.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::faults::FaultRule;
use super::model::{Job, SolutionVersion};
use super::{EmulatorState, LoggedRequest};

pub struct AdminResponse {
    pub status: u16,
    pub body: Value,
}

fn reply(status: u16, body: Value) -> AdminResponse {
    AdminResponse { status, body }
}

fn bad_request(message: impl std::fmt::Display) -> AdminResponse {
    reply(400, json!({ "error": message.to_string() }))
}

/// One item or an array of them.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![t],
        }
    }
}

/// `POST /_emulator/generate`.
pub use super::store::Batch as GenerateRequest;

/// The ARNs in the answer to `POST /_emulator/generate` and `POST /_emulator/jobs` (which
/// also carry their count as `generated` or `upserted`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsChanged {
    pub batch_inference_job_arns: Vec<String>,
}

/// The answer to `GET /_emulator/requests`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestLog {
    pub requests: Vec<LoggedRequest>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AdminResponse> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid request body: {e}")))
}

/// Handles `METHOD /_emulator/PATH?QUERY`.
pub fn handle(
    state: &mut EmulatorState,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> AdminResponse {
    let result = match (method, path) {
        ("GET", "/_emulator/healthz") => Ok(reply(200, json!({ "jobs": state.store.job_count() }))),
        ("POST", "/_emulator/jobs") => upsert_jobs(state, body),
        ("POST", "/_emulator/solution-versions") => upsert_solution_versions(state, body),
        ("POST", "/_emulator/generate") => generate(state, body),
        ("GET", "/_emulator/requests") => Ok(requests_since(state, query)),
        ("DELETE", "/_emulator/requests") => {
            state.requests.clear();
            Ok(reply(200, json!({})))
        }
        ("GET", "/_emulator/faults") => Ok(reply(200, json!({ "faults": state.faults.pending() }))),
        ("POST", "/_emulator/faults") => add_faults(state, body),
        ("DELETE", "/_emulator/faults") => {
            state.faults.clear();
            Ok(reply(200, json!({})))
        }
        ("POST", "/_emulator/reset") => {
            state.reset();
            Ok(reply(200, json!({ "jobs": state.store.job_count() })))
        }
        _ => Ok(reply(
            404,
            json!({ "error": format!("no admin route {method} {path}; see docs/emulator.md") }),
        )),
    };
    result.unwrap_or_else(|e| e)
}

fn upsert_solution_versions(
    state: &mut EmulatorState,
    body: &[u8],
) -> Result<AdminResponse, AdminResponse> {
    let svs = parse::<OneOrMany<SolutionVersion>>(body)?.into_vec();
    let n = svs.len();
    svs.into_iter()
        .for_each(|sv| state.store.upsert_solution_version(sv));
    Ok(reply(200, json!({ "upserted": n })))
}

fn generate(state: &mut EmulatorState, body: &[u8]) -> Result<AdminResponse, AdminResponse> {
    let g = parse::<GenerateRequest>(body)?;
    if g.count > 1_000_000 {
        return Err(bad_request("count must be at most 1000000"));
    }
    let arns = state.store.generate_batch(&g).map_err(bad_request)?;
    Ok(reply(
        200,
        json!({ "generated": arns.len(), "batchInferenceJobArns": arns }),
    ))
}

/// The request log after sequence number `since=N` (all of it without).
fn requests_since(state: &EmulatorState, query: Option<&str>) -> AdminResponse {
    let since = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let from = state.requests.partition_point(|r| r.seq <= since);
    reply(
        200,
        json!(RequestLog {
            requests: state.requests[from..].to_vec()
        }),
    )
}

fn add_faults(state: &mut EmulatorState, body: &[u8]) -> Result<AdminResponse, AdminResponse> {
    let rules = parse::<OneOrMany<FaultRule>>(body)?.into_vec();
    let n = rules.len();
    rules.into_iter().for_each(|r| state.faults.add(r));
    Ok(reply(200, json!({ "added": n })))
}

fn upsert_jobs(state: &mut EmulatorState, body: &[u8]) -> Result<AdminResponse, AdminResponse> {
    let jobs = parse::<OneOrMany<Job>>(body)?.into_vec();
    let mut arns = Vec::with_capacity(jobs.len());
    for job in jobs {
        let job = state.store.upsert_job(job).map_err(bad_request)?;
        arns.push(job.batch_inference_job_arn.clone());
    }
    Ok(reply(
        200,
        json!({ "upserted": arns.len(), "batchInferenceJobArns": arns }),
    ))
}
