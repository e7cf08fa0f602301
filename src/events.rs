//! Publishing Kubernetes Events (events.k8s.io/v1) for both components.
//!
//! kube-runtime's `Recorder` folds every Event with the same reason about the same object into
//! one series, keeping the first message: a second, different `AllocationFailed` or
//! `ConfigInvalid` would only raise a count on the first one and the user would never read the
//! new reason. Here an Event is folded into a series only when the object, type, reason *and*
//! message all match; anything new is a new Event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

/// Repeats older than this start a new Event (the API server's own aggregation window is of
/// the same order).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// `IPAllocated`, `AllocationFailed`, `Announcing`, ...
    pub reason: &'static str,
    /// What the component was doing (`Allocate`, `Release`, `LoadConfig`, `Announce`).
    pub action: &'static str,
    /// The human message.
    pub note: String,
}

impl Notice {
    /// A Normal Event.
    pub fn normal(reason: &'static str, action: &'static str, note: String) -> Self {
        Self {
            warning: false,
            reason,
            action,
            note,
        }
    }

    /// A Warning Event.
    pub fn warning(reason: &'static str, action: &'static str, note: String) -> Self {
        Self {
            warning: true,
            reason,
            action,
            note,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    object: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    warning: bool,
    reason: &'static str,
    note: String,
}

#[derive(Debug, Clone)]
struct Series {
    name: String,
    count: i32,
    last: Instant,
}

/// The longest note the API server accepts on an Event created through events.k8s.io/v1, in
/// bytes; a longer one gets the whole Event refused (422), so the user would see nothing.
pub const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes at a character boundary, ending in "…" when cut. Notes
/// quote user input (a 10,000-character annotation value), and the start of a note says what
/// is wrong and where, so the end is what goes.
pub fn fit_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    const ELLIPSIS: &str = "…";
    let mut end = NOTE_LIMIT - ELLIPSIS.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &note[..end])
}

/// Publishes Events as one component and instance (`reportingController`/`reportingInstance`).
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<HashMap<Key, Series>>,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl EventPublisher {
    /// A publisher reporting as `controller` (e.g. `ferrolb-controller`) from `instance`.
    pub fn new(client: Client, controller: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `notice` about `object`: a new Event, or one more occurrence of the identical
    /// Event published within the last few minutes.
    pub async fn publish(
        &self,
        notice: &Notice,
        object: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = Key {
            object: (
                object.kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
                object.uid.clone(),
            ),
            warning: notice.warning,
            reason: notice.reason,
            note: notice.note.clone(),
        };
        let repeat = {
            let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, s| s.last.elapsed() < SERIES_WINDOW);
            map.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = Instant::now();
                s.clone()
            })
        };
        if let Some(s) = repeat {
            let body = json!({"series": {"count": s.count, "lastObservedTime": now()}});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired or deleted meanwhile: start a new Event below.
                Err(kube::Error::Api(e)) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{}.{:x}", object.name.as_deref().unwrap_or("object"), nanos);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(now()),
            action: Some(notice.action.into()),
            reason: Some(notice.reason.into()),
            note: Some(fit_note(&notice.note)),
            type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(ObjectReference {
                resource_version: None,
                ..object.clone()
            }),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            series: None::<EventSeries>,
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                Series {
                    name,
                    count: 1,
                    last: Instant::now(),
                },
            );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_what_the_api_server_accepts() {
        assert_eq!(fit_note("short"), "short");
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(fit_note(&exact), exact);
        let long = format!(
            "bad annotation ferrolb.io/loadBalancerIPs: {}",
            "x".repeat(10_000)
        );
        let cut = fit_note(&long);
        assert_eq!(cut.len(), NOTE_LIMIT);
        assert!(cut.starts_with("bad annotation ferrolb.io/loadBalancerIPs: "));
        assert!(cut.ends_with('…'));
        // Never in the middle of a character.
        let wide = "é".repeat(NOTE_LIMIT);
        let cut = fit_note(&wide);
        assert!(
            cut.len() <= NOTE_LIMIT && cut.ends_with('…'),
            "{}",
            cut.len()
        );
    }
}
