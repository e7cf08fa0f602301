//! Watch streams: newline-delimited JSON events on a 200 response, replayed from any
//! resourceVersion still in history, 410 Gone as an in-stream ERROR event (never an HTTP 410,
//! which makes kube re-watch the same RV forever), BOOKMARKs with kind and apiVersion, the
//! initial-events-end bookmark for streaming lists, and `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::api::{present, Selectors, Target};
use crate::http::{error_response, Body, Query};
use crate::resources::{storage_of, RESOURCES};
use crate::store::{ChangeKind, Committed, Store};
use crate::tables::{self, IncludeObject};

/// Per-server watch settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// How often idle watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Stream length when the client sends no `timeoutSeconds`.
    pub default_timeout: Duration,
}

struct Stream {
    target: Target,
    selectors: Selectors,
    table: bool,
    tx: mpsc::Sender<Bytes>,
}

/// One watch line, `{"type":KIND,"object":OBJECT}` and a newline, serialised without
/// copying the object.
pub fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    // Writing a Value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut line, object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

impl Stream {
    async fn send(&self, kind: &str, obj: &Value) -> bool {
        let line = if self.table {
            let table = tables::table(self.target.def().kind, [obj], 0, IncludeObject::Metadata);
            event_line(kind, &table)
        } else {
            event_line(kind, obj)
        };
        self.tx.send(line).await.is_ok()
    }

    /// Whether this watcher sends stored objects as they are (not as a Table, not converted
    /// to another API version), so it can send a change's shared, pre-serialised line.
    fn sends_stored_form(&self) -> bool {
        !self.table && RESOURCES[self.target.resource].stored_as.is_none()
    }

    async fn bookmark(&self, rv: u64, initial_end: bool) -> bool {
        let def = self.target.def();
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    fn in_scope(&self, c: &crate::store::Change) -> bool {
        c.resource == storage_of(self.target.resource)
            && self
                .target
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == c.namespace)
    }

    /// Sends what `c` means to this watcher: objects entering or leaving the selection are
    /// ADDED/DELETED, as on the real server.
    async fn deliver(&self, committed: &Committed) -> bool {
        let c = &committed.change;
        if !self.in_scope(c) {
            return true;
        }
        let now = self.selectors.matches(&c.object);
        let before = c.old.as_ref().is_some_and(|o| self.selectors.matches(o));
        let kind = match c.kind {
            ChangeKind::Added if now => ChangeKind::Added,
            ChangeKind::Modified if now && before => ChangeKind::Modified,
            ChangeKind::Modified if now => ChangeKind::Added,
            ChangeKind::Modified if before => ChangeKind::Deleted,
            ChangeKind::Deleted if now => ChangeKind::Deleted,
            _ => return true,
        };
        if self.sends_stored_form() {
            return self.tx.send(committed.line(kind)).await.is_ok();
        }
        self.send(kind.as_str(), &present(self.target.resource, &c.object))
            .await
    }
}

fn expired_line(requested: u64, oldest: u64) -> Bytes {
    let status = json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired", "code": 410}});
    let mut line = serde_json::to_vec(&status).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Starts a watch and returns the streaming response.
pub fn start(
    store: Arc<Store>,
    target: Target,
    q: &Query,
    table: bool,
    settings: WatchSettings,
    mut closer: tokio::sync::watch::Receiver<u64>,
) -> Response<Body> {
    let selectors = match Selectors::from_query(q, target.def()) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let since = match q.get("resourceVersion").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return error_response(&crate::status::ApiError::bad_request(format!(
                    "invalid resource version: {s:?}"
                )));
            }
        },
    };
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(settings.default_timeout, Duration::from_secs);

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream = Stream {
        target,
        selectors,
        table,
        tx,
    };
    closer.mark_unchanged();

    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let (mut last_rv, mut live) = if send_initial || since.is_none_or(|s| s == 0) {
            let (objs, rv, live) = store
                .watch_with_initial(stream.target.resource, stream.target.namespace.as_deref());
            for o in objs.iter().filter(|o| stream.selectors.matches(o)) {
                if !stream
                    .send("ADDED", &present(stream.target.resource, o))
                    .await
                {
                    return;
                }
            }
            if send_initial && !stream.bookmark(rv, true).await {
                return;
            }
            (rv, live)
        } else {
            let from = since.unwrap_or(0);
            match store.watch_from(from) {
                Ok((backlog, live)) => {
                    let mut rv = from;
                    for c in &backlog {
                        rv = c.change.rv;
                        if !stream.deliver(c).await {
                            return;
                        }
                    }
                    (rv, live)
                }
                Err(e) => {
                    let _ = stream.tx.send(expired_line(e.requested, e.oldest)).await;
                    return;
                }
            }
        };
        let mut ticker = tokio::time::interval(settings.bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                msg = live.recv() => match msg {
                    Ok(c) => {
                        if c.change.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.change.rv;
                        if !stream.deliver(&c).await {
                            return;
                        }
                    }
                    // A watcher this far behind is cut off; the client resumes from history.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if !stream.bookmark(last_rv, false).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = closer.changed() => return,
                _ = stream.tx.closed() => return,
            }
        }
    });

    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    }));
    let mut resp = Response::new(body.boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}
