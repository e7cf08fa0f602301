//! The small HTTP server both daemons run on `--metrics-addr`: Prometheus text on
//! `/metrics`, liveness on `/healthz`, readiness on `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness as the daemon sees it; `/readyz` answers 200 only while it is set.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the daemon ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether the daemon is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The metrics address could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on --metrics-addr {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Binds `addr` and serves until `shutdown`; returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr, BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
            };
            let (registry, ready) = (registry.clone(), ready.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (registry, ready) = (registry.clone(), ready.clone());
                    async move {
                        let resp = match req.uri().path() {
                            "/metrics" => {
                                let mut text = String::new();
                                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                                    Ok(()) => respond(
                                        StatusCode::OK,
                                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                        text,
                                    ),
                                    Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string()),
                                }
                            }
                            "/healthz" | "/livez" => {
                                respond(StatusCode::OK, "text/plain", "ok\n".into())
                            }
                            "/readyz" if ready.get() => {
                                respond(StatusCode::OK, "text/plain", "ok\n".into())
                            }
                            "/readyz" => respond(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain",
                                "not ready\n".into(),
                            ),
                            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
