//! Fault injection and the request log, for reliability tests and least-privilege checks:
//! fail the next requests, slow every request down, close every watch, pause the server
//! (connections refused), and record who asked for what.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

/// A rule that makes matching requests fail with `status` until `remaining` reaches zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailRule {
    /// How many more requests fail.
    pub remaining: u32,
    /// HTTP status to answer with.
    pub status: u16,
    /// Only requests with this Kubernetes verb (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`); `None` matches every verb.
    pub verb: Option<String>,
    /// Only requests for this resource (plural); `None` matches every resource.
    pub resource: Option<String>,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or the HTTP method for non-resource URLs.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// Resource plural, or the path for non-resource URLs.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: VecDeque<FailRule>,
    latency: Duration,
    log: Vec<RequestRecord>,
}

/// The fault switches of one kube-sim instance.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<FaultState>,
    close_watches: watch::Sender<u64>,
    pause: watch::Sender<Option<Duration>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Mutex::new(FaultState::default()),
            close_watches: watch::channel(0).0,
            pause: watch::channel(None).0,
        }
    }
}

/// Upper bound on kept log entries, so a long load test cannot exhaust memory.
const LOG_LIMIT: usize = 2_000_000;

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the next `count` requests matching `verb`/`resource` with HTTP `status`.
    pub fn fail_next(&self, count: u32, status: u16, verb: Option<&str>, resource: Option<&str>) {
        self.lock().rules.push_back(FailRule {
            remaining: count,
            status,
            verb: verb.map(String::from),
            resource: resource.map(String::from),
        });
    }

    /// Adds `latency` before every request is handled (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The current added latency.
    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Ends every open watch stream now; clients resume from their last resourceVersion.
    pub fn close_watches(&self) {
        self.close_watches.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever [`Faults::close_watches`] is called.
    pub fn watch_closer(&self) -> watch::Receiver<u64> {
        self.close_watches.subscribe()
    }

    /// Closes the listener and every connection for `duration`: clients get "connection
    /// refused", as when the API server is down.
    pub fn pause(&self, duration: Duration) {
        self.pause.send_replace(Some(duration));
    }

    /// A receiver the accept loop uses to learn about pauses.
    pub fn pause_requests(&self) -> watch::Receiver<Option<Duration>> {
        self.pause.subscribe()
    }

    /// Takes the status a matching rule says this request must fail with, if any.
    pub fn take_failure(&self, verb: &str, resource: &str) -> Option<u16> {
        let mut st = self.lock();
        let idx = st.rules.iter().position(|r| {
            r.verb.as_deref().is_none_or(|v| v == verb)
                && r.resource.as_deref().is_none_or(|x| x == resource)
        })?;
        let rule = &mut st.rules[idx];
        let status = rule.status;
        rule.remaining = rule.remaining.saturating_sub(1);
        if rule.remaining == 0 {
            st.rules.remove(idx);
        }
        Some(status)
    }

    /// Clears every failure rule and the latency.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.rules.clear();
        st.latency = Duration::ZERO;
    }

    /// Appends to the request log.
    pub fn record(&self, mut rec: RequestRecord) {
        rec.at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut st = self.lock();
        if st.log.len() < LOG_LIMIT {
            st.log.push(rec);
        }
    }

    /// A copy of the request log.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.lock().log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_rules_count_down_and_match_verb_and_resource() {
        let f = Faults::default();
        f.fail_next(2, 500, Some("patch"), Some("services"));
        assert_eq!(f.take_failure("get", "services"), None);
        assert_eq!(f.take_failure("patch", "leases"), None);
        assert_eq!(f.take_failure("patch", "services"), Some(500));
        assert_eq!(f.take_failure("patch", "services"), Some(500));
        assert_eq!(f.take_failure("patch", "services"), None);
    }
}
