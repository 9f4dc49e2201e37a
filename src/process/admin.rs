//! The admin HTTP port: /metrics, /healthz (alive) and /readyz (the watch is initialised; a
//! standby replica is ready too).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// Set once the controller's watch has listed its objects, or the instance is a standby.
    pub ready: Arc<AtomicBool>,
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

pub fn route(state: &AdminState, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state
                .metrics
                .encode(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0),
        ),
        "/healthz" | "/livez" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            if state.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: the SolutionVersionWatch cache has not synced yet\n".into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the future `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let handler = move |req: Request<Incoming>| {
        let response = route(&state, req.uri().path());
        async move { Ok::<_, std::convert::Infallible>(response) }
    };
    personalize_watch_runtime::serve(listener, handler, shutdown).await;
}
