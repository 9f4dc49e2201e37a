//! HTTP/1.1 server: many keep-alive connections at once, graceful stop on shutdown.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::EmulatorState;
use super::api::{self, Outcome, RequestFacts};

/// Largest request body accepted (the admin API takes large job arrays).
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Shared(Arc<Mutex<EmulatorState>>);

impl Shared {
    pub fn new(state: EmulatorState) -> Self {
        Shared(Arc::new(Mutex::new(state)))
    }

    fn lock(&self) -> MutexGuard<'_, EmulatorState> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters for an emulator; keep serving.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(response(
                413,
                "application/json",
                "{\"error\":\"request body too large or unreadable\"}".into(),
            ));
        }
    };
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
    let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let mut facts = RequestFacts::default();
    let outcome = {
        let mut state = state.lock();
        let outcome = api::handle(
            &mut state,
            header_str("x-amz-target"),
            header_str("authorization"),
            &body,
            &mut facts,
        );
        let (status, error) = match &outcome {
            Outcome::Respond {
                status, error_type, ..
            } => (*status, *error_type),
            Outcome::Drop => (0, None),
        };
        state.log(facts.clone(), status, error);
        outcome
    };
    let operation = facts.operation.as_deref().unwrap_or("");
    match outcome {
        Outcome::Drop => {
            info!(operation, fault = "drop", "dropping the connection");
            Err(DropConnection)
        }
        Outcome::Respond {
            status,
            error_type,
            body,
            delay_ms,
        } => {
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
            let mut resp = response(status, "application/x-amz-json-1.1", body);
            if let Some(code) = error_type
                && let Ok(value) = http::HeaderValue::from_str(code)
            {
                resp.headers_mut().insert("x-amzn-ErrorType", value);
            }
            Ok(resp)
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
pub async fn run(
    listener: TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(move |req| serve(state.clone(), req)));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // Errors here are dropped connections, injected or by the client.
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections were still open after 5s; closing them");
    }
}
