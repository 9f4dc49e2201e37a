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
#[serde(rename_all = "camelCase")]
pub struct RequestLog {
    pub requests: Vec<LoggedRequest>,
    /// How many requests the log keeps (`--request-log-size`).
    #[serde(default)]
    pub capacity: usize,
    /// Requests it let go of, oldest first, since the start or the last clear.
    #[serde(default)]
    pub dropped: u64,
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
        ("GET", "/_emulator/healthz") => Ok(reply(200, health(state))),
        ("POST", "/_emulator/jobs") => upsert_jobs(state, body),
        ("POST", "/_emulator/solution-versions") => upsert_solution_versions(state, body),
        ("POST", "/_emulator/generate") => generate(state, body),
        ("GET", "/_emulator/requests") => Ok(requests_since(state, query)),
        ("DELETE", "/_emulator/requests") => {
            state.clear_requests();
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

/// Liveness, the jobs held, and what each simulated schedule made and kept.
fn health(state: &EmulatorState) -> Value {
    let schedules = state
        .simulation
        .as_ref()
        .map(|sim| sim.report())
        .unwrap_or_default();
    json!({ "jobs": state.store.job_count(), "schedules": schedules })
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
            requests: state.requests.range(from..).cloned().collect(),
            capacity: state.request_log_capacity(),
            dropped: state.requests_dropped,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A demo left running for days: the request log keeps its size and says what it let go.
    #[test]
    fn the_request_log_keeps_its_capacity_and_reports_what_it_dropped() {
        let mut state = EmulatorState {
            request_log_size: 3,
            ..Default::default()
        };
        for _ in 0..5 {
            state.log(crate::api::RequestFacts::default(), 200, None);
        }
        let log: RequestLog = serde_json::from_value(
            handle(&mut state, "GET", "/_emulator/requests", None, b"").body,
        )
        .unwrap();
        let seqs: Vec<u64> = log.requests.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!((log.capacity, log.dropped), (3, 2));
        let since: RequestLog = serde_json::from_value(
            handle(
                &mut state,
                "GET",
                "/_emulator/requests",
                Some("since=4"),
                b"",
            )
            .body,
        )
        .unwrap();
        assert_eq!(since.requests.len(), 1);
        handle(&mut state, "DELETE", "/_emulator/requests", None, b"");
        assert_eq!(state.requests_dropped, 0);
        assert_eq!(
            EmulatorState::default().request_log_capacity(),
            crate::DEFAULT_REQUEST_LOG_SIZE
        );
    }
}
