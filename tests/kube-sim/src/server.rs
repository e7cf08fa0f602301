//! The HTTP server: routes URLs to discovery, OpenAPI, admin and resource handlers, applies
//! injected faults, logs every request, and runs the accept loop (which a pause fault stops
//! so clients see "connection refused", as when the API server is down).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Target};
use crate::discovery;
use crate::faults::{Faults, RequestRecord};
use crate::http::{
    content_type, error_response, json_bytes, json_response, wants, wants_aggregated_discovery,
    Body, Query, Wants,
};
use crate::resources::{self, RESOURCES};
use crate::scale;
use crate::status::ApiError;
use crate::store::Store;
use crate::watch::{self, WatchSettings};

/// State shared by every connection of one kube-sim.
pub struct Shared {
    /// The objects.
    pub store: Arc<Store>,
    /// Fault switches and the request log.
    pub faults: Arc<Faults>,
    /// Watch settings.
    pub watch: WatchSettings,
    /// Address clients reach us at (for `/api`'s serverAddressByClientCIDRs).
    pub addr: SocketAddr,
}

/// Parses `/api/v1/...` and `/apis/g/v/...` resource URLs.
fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let owned = |s: &&str| Some((*s).to_string());
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(idx) =
            resources::find(group, version, plural).filter(|i| RESOURCES[*i].namespaced)
        {
            if tail.len() > 2 {
                return None;
            }
            return Some(Target {
                resource: idx,
                namespace: owned(ns),
                name: tail.first().and_then(owned),
                subresource: tail.get(1).and_then(owned),
            });
        }
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    let idx = resources::find(group, version, plural)?;
    if tail.len() > 2 {
        return None;
    }
    Some(Target {
        resource: idx,
        namespace: None,
        name: tail.first().and_then(owned),
        subresource: tail.get(1).and_then(owned),
    })
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if q.flag("watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Handles one request end to end.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = Query::parse(parts.uri.query());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error_response(&ApiError::bad_request("could not read the request body")),
    };
    if body.len() > crate::status::MAX_REQUEST_BODY {
        return error_response(&ApiError::entity_too_large());
    }

    if let Some(admin) = path.strip_prefix("/admin/") {
        return handle_admin(&shared, &parts.method, admin, &q);
    }

    let target = parse_target(&path);
    let mut rec = RequestRecord {
        at_ms: 0,
        user_agent,
        verb: parts.method.as_str().to_string(),
        group: String::new(),
        resource: path.clone(),
        subresource: None,
        namespace: None,
        name: None,
        status: 0,
    };
    if let Some(t) = &target {
        rec.verb = verb_of(&parts.method, t, &q).to_string();
        rec.group = t.def().group.to_string();
        rec.resource = t.def().plural.to_string();
        rec.subresource = t.subresource.clone();
        rec.namespace = t.namespace.clone();
        rec.name = t.name.clone();
    }

    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match shared.faults.take_failure(&rec.verb, &rec.resource) {
        Some(code) => error_response(&ApiError::injected(code)),
        None => match target {
            Some(t) => resource_request(&shared, &parts.method, &parts.headers, t, &q, &body),
            None => non_resource(&shared, &parts.method, &parts.headers, &path),
        },
    };
    rec.status = resp.status().as_u16();
    shared.faults.record(rec);
    resp
}

fn resource_request(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &http::HeaderMap,
    t: Target,
    q: &Query,
    body: &[u8],
) -> Response<Body> {
    let def = t.def();
    if let Some(sub) = &t.subresource {
        let served =
            (sub == "status" && def.has_status) || (sub == "scale" && scale::has_scale(def));
        if !served {
            return error_response(&ApiError::no_route());
        }
    }
    if def.namespaced && t.namespace.is_none() && !matches!(method.as_str(), "GET") {
        return error_response(&ApiError::method_not_allowed(format!(
            "{} must be addressed in a namespace",
            def.plural
        )));
    }
    let store = &shared.store;
    let table = wants(headers) == Wants::Table;
    let ct = content_type(headers);
    if t.subresource.as_deref() == Some("scale") {
        let store = &shared.store;
        let ct = content_type(headers);
        let result = match method.as_str() {
            "GET" => scale::get(store, &t),
            "PATCH" => scale::write(store, &t, q, &ct, body, false),
            "PUT" => scale::write(store, &t, q, &ct, body, true),
            _ => Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on the scale subresource"
            ))),
        };
        return result.map_or_else(|e| error_response(&e), |v| json_response(200, &v));
    }
    let result: Result<Response<Body>, ApiError> = match (method.as_str(), t.name.is_some()) {
        ("GET", false) if q.flag("watch") => {
            return watch::start(
                store.clone(),
                t,
                q,
                table,
                shared.watch,
                shared.faults.watch_closer(),
            );
        }
        ("GET", true) if q.flag("watch") => return error_response(&ApiError::no_route()),
        ("GET", false) if table => api::table(store, &t, q).map(|v| json_response(200, &v)),
        ("GET", false) => {
            api::list_json(store, &t, q).map(|b| json_bytes(200, b, "application/json"))
        }
        ("GET", true) if table => api::table(store, &t, q).map(|v| json_response(200, &v)),
        ("GET", true) => api::get(store, &t).map(|v| json_response(200, &v)),
        ("POST", false) => api::create(store, &t, q, &ct, body).map(|v| json_response(201, &v)),
        ("PUT", true) => api::update(store, &t, q, &ct, body).map(|v| json_response(200, &v)),
        ("PATCH", true) => api::patch(store, &t, q, &ct, body)
            .map(|(v, created)| json_response(if created { 201 } else { 200 }, &v)),
        ("DELETE", true) => api::delete(store, &t, q, &ct, body).map(|v| json_response(200, &v)),
        ("DELETE", false) => api::delete_collection(store, &t, q).map(|v| json_response(200, &v)),
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on this URL"
        ))),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn non_resource(
    shared: &Shared,
    method: &Method,
    headers: &http::HeaderMap,
    path: &str,
) -> Response<Body> {
    if method != Method::GET {
        return error_response(&ApiError::method_not_allowed(format!(
            "{method} is not supported on {path}"
        )));
    }
    let aggregated = wants_aggregated_discovery(headers);
    let trimmed = path.trim_end_matches('/');
    let ok = |v: Value| json_response(200, &v);
    match trimmed {
        "/version" => ok(discovery::version()),
        "/healthz" | "/readyz" | "/livez" => json_bytes(200, b"ok".to_vec(), "text/plain"),
        "/api" if aggregated => json_bytes(
            200,
            serde_json::to_vec(&discovery::aggregated_api()).unwrap_or_default(),
            discovery::AGGREGATED_CONTENT_TYPE,
        ),
        "/apis" if aggregated => json_bytes(
            200,
            serde_json::to_vec(&discovery::aggregated_apis()).unwrap_or_default(),
            discovery::AGGREGATED_CONTENT_TYPE,
        ),
        "/api" => ok(discovery::legacy_api(&shared.addr.to_string())),
        "/apis" => ok(discovery::legacy_apis()),
        "/openapi/v3" => ok(discovery::openapi_root()),
        _ => {
            if let Some(gv) = trimmed.strip_prefix("/openapi/v3/") {
                return discovery::openapi_group_version(gv)
                    .map_or_else(|| error_response(&ApiError::no_route()), ok);
            }
            let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
            let list = match segs.as_slice() {
                ["api", v] => discovery::resource_list("", v),
                ["apis", g, v] => discovery::resource_list(g, v),
                _ => None,
            };
            list.map_or_else(|| error_response(&ApiError::no_route()), ok)
        }
    }
}

/// The admin API, for fault injection from outside the test process (e.g. `curl`):
/// `POST /admin/fail?count=N&status=500[&verb=patch][&resource=services]`,
/// `POST /admin/latency?ms=2000`, `POST /admin/close-watches`, `POST /admin/drop-history`,
/// `POST /admin/pause?seconds=30`, `POST /admin/clear`, `GET /admin/requests`.
fn handle_admin(shared: &Shared, method: &Method, what: &str, q: &Query) -> Response<Body> {
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    let done = || json_response(200, &json!({"ok": true}));
    match (method.as_str(), what) {
        ("GET", "requests") => json_response(
            200,
            &serde_json::to_value(shared.faults.request_log()).unwrap_or(json!([])),
        ),
        ("POST", "fail") => {
            let (Some(count), Some(status)) = (num("count"), num("status")) else {
                return error_response(&ApiError::bad_request("fail needs count and status"));
            };
            let status = u16::try_from(status).unwrap_or(500);
            shared.faults.fail_next(
                u32::try_from(count).unwrap_or(u32::MAX),
                status,
                q.get("verb"),
                q.get("resource"),
            );
            done()
        }
        ("POST", "latency") => {
            shared
                .faults
                .set_latency(Duration::from_millis(num("ms").unwrap_or(0)));
            done()
        }
        ("POST", "close-watches") => {
            shared.faults.close_watches();
            done()
        }
        ("POST", "drop-history") => {
            shared.store.drop_history();
            done()
        }
        ("POST", "pause") => {
            shared
                .faults
                .pause(Duration::from_secs(num("seconds").unwrap_or(1)));
            done()
        }
        ("POST", "clear") => {
            shared.faults.clear();
            done()
        }
        _ => error_response(&ApiError::no_route()),
    }
}

/// Accepts connections until `shutdown`; on a pause fault closes the listener and every open
/// connection, waits, and binds the same address again.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, shutdown: CancellationToken) {
    let addr = shared.addr;
    let mut pauses = shared.faults.pause_requests();
    let mut listener = Some(listener);
    let mut epoch = shutdown.child_token();
    while let Some(l) = listener.as_ref() {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = pauses.changed() => {
                if changed.is_err() {
                    break;
                }
                let Some(d) = *pauses.borrow_and_update() else { continue };
                drop(listener.take());
                epoch.cancel();
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.cancelled() => break,
                }
                listener = rebind(addr, &shutdown).await;
                epoch = shutdown.child_token();
            }
            accepted = l.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let token = epoch.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        }
    }
}

async fn rebind(addr: SocketAddr, shutdown: &CancellationToken) -> Option<TcpListener> {
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "kube-sim could not re-bind after a pause; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_targets() {
        let t = parse_target("/api/v1/namespaces/default/services/web/status").unwrap();
        assert_eq!(
            (
                t.def().plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("services", Some("default"), Some("web"), Some("status"))
        );
        let t = parse_target("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.def().plural, t.namespace.as_deref(), t.name.as_deref()),
            ("namespaces", None, Some("kube-system"))
        );
        let t = parse_target("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(
            (t.def().plural, t.name.as_deref(), t.subresource.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let t = parse_target("/apis/coordination.k8s.io/v1/leases").unwrap();
        assert_eq!((t.def().plural, t.namespace.as_deref()), ("leases", None));
        let t = parse_target("/apis/apps/v1/namespaces/default/deployments/web").unwrap();
        assert_eq!(
            (t.def().kind, t.name.as_deref()),
            ("Deployment", Some("web"))
        );
        assert!(parse_target("/apis/batch/v1/jobs").is_none());
        assert!(parse_target("/api/v1/namespaces/a/services/b/status/extra").is_none());
    }
}
