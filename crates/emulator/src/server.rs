//! The emulator's HTTP side: the Personalize API on `POST /` and the admin API under
//! `/_emulator/`, on the shared serve loop (many keep-alive connections, graceful stop).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::info;

use super::api::{self, Outcome, RequestFacts};
use super::identity::{self, Caller};
use super::{EmulatorState, sts};

/// Largest request body accepted (the admin API takes large job arrays).
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Shared(Arc<Mutex<EmulatorState>>);

impl Shared {
    pub fn new(state: EmulatorState) -> Self {
        Shared(Arc::new(Mutex::new(state)))
    }

    /// The state as of now: a simulation moves jobs whenever anyone looks.
    fn lock(&self) -> MutexGuard<'_, EmulatorState> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters for an emulator; keep serving.
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        super::simulate(&mut state);
        state
    }

    /// Looks at (or changes) the state, as in-process tests do.
    pub fn with<T>(&self, f: impl FnOnce(&mut EmulatorState) -> T) -> T {
        f(&mut self.lock())
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn response(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header("x-amzn-RequestId", request_id());
    if status == 200 {
        builder = builder.header(header::CACHE_CONTROL, "no-store");
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn serve(
    state: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(response(
            413,
            "application/json",
            "{\"error\":\"request body too large or unreadable\"}".into(),
        ));
    };
    let body = body.to_bytes();
    let path = parts.uri.path();
    if path.starts_with("/_emulator/") {
        let answer = super::admin::handle(
            &mut state.lock(),
            parts.method.as_str(),
            path,
            parts.uri.query(),
            &body,
        );
        return Ok(response(
            answer.status,
            "application/json",
            answer.body.to_string(),
        ));
    }
    if parts.method != http::Method::POST {
        return Ok(response(
            404,
            "application/json",
            "{\"error\":\"the Personalize API is POST /; the admin API is under /_emulator/\"}"
                .into(),
        ));
    }
    let (facts, outcome) = call_api(&state, &parts, &body);
    respond(&facts, outcome, started).await
}

/// Runs one API request against the state and logs it: Personalize when it names a target,
/// STS otherwise.
fn call_api(state: &Shared, parts: &Parts, body: &[u8]) -> (RequestFacts, Outcome) {
    let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let mut facts = RequestFacts::default();
    let mut state = state.lock();
    let authorization = header_str("authorization");
    let caller = authorization.and_then(identity::scope).map(|scope| Caller {
        principal: state.identities.principal(&scope.access_key_id),
        region: scope.region,
    });
    let target = header_str("x-amz-target");
    let expired = authorization
        .and_then(identity::scope)
        .is_some_and(|scope| state.identities.expired(&scope.access_key_id));
    let outcome = match (target, &caller) {
        // Temporary credentials forgotten (identity::MAX_TEMPORARY_CREDENTIALS): as AWS answers
        // for expired ones, so the client assumes the role again.
        (Some(_), Some(_)) if expired => api::error_outcome(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        (None, Some(caller)) => {
            facts.account = caller.principal.account.clone();
            facts.region = caller.region.clone();
            let (action, outcome) = sts::handle(
                &mut state,
                &caller.principal,
                body,
                &mut facts.solution_version_arn,
            );
            facts.operation = action.map(|a| a.name().to_string());
            outcome
        }
        _ => {
            let request = api::Request {
                target,
                authorization,
                caller: caller.as_ref(),
                body,
            };
            api::handle(&mut state, &request, &mut facts)
        }
    };
    let (status, error) = match &outcome {
        Outcome::Respond {
            status, error_type, ..
        } => (*status, *error_type),
        Outcome::Drop => (0, None),
    };
    state.log(facts.clone(), status, error);
    (facts, outcome)
}

/// Sends the outcome: after its delay, as an awsJson1_1 response, or by dropping the connection.
async fn respond(
    facts: &RequestFacts,
    outcome: Outcome,
    started: Instant,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let operation = facts.operation.as_deref().unwrap_or("");
    let Outcome::Respond {
        status,
        error_type,
        body,
        delay_ms,
    } = outcome
    else {
        info!(operation, fault = "drop", "dropping the connection");
        return Err(DropConnection);
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    info!(
        operation,
        solution_version_arn = facts.solution_version_arn.as_deref().unwrap_or(""),
        status,
        error = error_type.unwrap_or(""),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    let content_type = if body.starts_with('<') {
        "text/xml"
    } else {
        "application/x-amz-json-1.1"
    };
    let mut resp = response(status, content_type, body);
    if let Some(code) = error_type
        && let Ok(value) = http::HeaderValue::from_str(code)
    {
        resp.headers_mut().insert("x-amzn-ErrorType", value);
    }
    Ok(resp)
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
pub async fn run(listener: TcpListener, state: Shared, shutdown: impl Future<Output = ()>) {
    personalize_watch_runtime::serve(listener, move |req| serve(state.clone(), req), shutdown)
        .await;
}
