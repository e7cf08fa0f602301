//! Carrying out a decision: the annotation, the status subresource and the Events. Decisions
//! are made by the pure reconcile core (`ferrolb_core::reconcile`); only this module talks to the API server for a Service.

use std::net::IpAddr;

use ferrolb_core::reconcile::{Event, Write};
use ferrolb_core::service::ServiceKey;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use super::metrics::ControllerMetrics;
use super::service_view::{ALLOCATED_FROM_POOL, IP_MODE};

/// The field manager named in every write, so `managedFields` show who wrote what.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// What to write for one Service, as the reconcile core decided it; `None` fields are left
/// alone.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The Service.
    pub key: ServiceKey,
    /// Reference for Events; its uid binds every write to the object decided for.
    pub reference: ObjectReference,
    /// `Some(ips)`: make `status.loadBalancer.ingress` exactly these (empty clears it).
    pub ingress: Option<Vec<IpAddr>>,
    /// `Some(Some(pool))`: set [`ALLOCATED_FROM_POOL`]; `Some(None)`: remove it.
    pub pool_annotation: Option<Option<String>>,
    /// Events to publish on the Service.
    pub events: Vec<Notice>,
}

impl From<Write> for Plan {
    fn from(w: Write) -> Self {
        Self {
            reference: service_ref(&w.key, w.uid),
            key: w.key,
            ingress: w.ingress,
            pool_annotation: w.pool_annotation,
            events: w.events.iter().map(notice).collect(),
        }
    }
}

/// The reference Events about Service `key` (of `uid`) carry.
pub fn service_ref(key: &ServiceKey, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        uid,
        ..ObjectReference::default()
    }
}

/// The Event the core decided on, as the publisher takes it.
pub fn notice(e: &Event) -> Notice {
    let reason = e.reason.as_str();
    let action = e.action.as_str();
    if e.warning {
        Notice::warning(reason, action, e.note.clone())
    } else {
        Notice::normal(reason, action, e.note.clone())
    }
}

/// How a plan went.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Everything written.
    Done,
    /// The Service the plan was decided for no longer exists (deleted, or its name now
    /// belongs to a re-created object); nothing to retry, the cache will show what is there.
    Gone,
    /// A write failed; retry later. `status_written` says whether the status write itself
    /// succeeded before the failure (the annotation is written after it when releasing).
    Failed {
        /// The error.
        error: kube::Error,
        /// Whether the plan's ingress reached the status.
        status_written: bool,
    },
}

pub use crate::events::Notice;

/// The status body for `ips`.
pub fn ingress_patch(ips: &[IpAddr]) -> Value {
    if ips.is_empty() {
        return json!({"status": {"loadBalancer": {"ingress": null}}});
    }
    let entries: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"ip": ip.to_string(), "ipMode": IP_MODE}))
        .collect();
    json!({"status": {"loadBalancer": {"ingress": entries}}})
}

/// `body` bound to the object with `uid`. `metadata.uid` is immutable, so the API server
/// refuses the patch (422) if the name now belongs to a re-created object: a decision made
/// for a Service the cache still shows can never land on its successor, whose status the
/// allocator knows nothing about.
pub fn for_uid(mut body: Value, uid: Option<&str>) -> Value {
    if let (Some(uid), Some(obj)) = (uid, body.as_object_mut()) {
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        meta["uid"] = json!(uid);
    }
    body
}

/// Whether `s` is the API server refusing a patch whose `metadata.uid` is not the stored
/// object's: the object the patch was meant for is gone.
fn is_other_uid(s: &kube::core::Status) -> bool {
    s.code == 422
        && s.details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.field == "metadata.uid"))
}

/// Writes plans and Events.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    events: std::sync::Arc<crate::events::EventPublisher>,
    metrics: ControllerMetrics,
}

impl Writer {
    /// A writer using `client`, publishing Events through `events`.
    pub fn new(
        client: Client,
        events: std::sync::Arc<crate::events::EventPublisher>,
        metrics: ControllerMetrics,
    ) -> Self {
        Self {
            client,
            events,
            metrics,
        }
    }

    /// Publishes one Event; a failure is logged, never fatal (an Event is a courtesy).
    pub async fn event(&self, ev: &Notice, reference: &ObjectReference) {
        match self.events.publish(ev, reference).await {
            Ok(()) => self.metrics.wrote("event"),
            Err(e) => tracing::warn!(
                object = ?reference.name, reason = %ev.reason, error = %e,
                "could not publish an Event"
            ),
        }
    }

    async fn write_annotation(
        &self,
        api: &Api<Service>,
        plan: &Plan,
        params: &PatchParams,
    ) -> Result<(), WriteOutcome> {
        let Some(pool) = &plan.pool_annotation else {
            return Ok(());
        };
        let body = for_uid(
            json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL: pool}}}),
            plan.reference.uid.as_deref(),
        );
        match api
            .patch(&plan.key.name, params, &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                self.metrics.wrote("annotation");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_not_found() || is_other_uid(&s) => {
                Err(WriteOutcome::Gone)
            }
            Err(error) => Err(WriteOutcome::Failed {
                error,
                status_written: false,
            }),
        }
    }

    /// Carries out `plan`: annotation and status (in the order that keeps the annotation a
    /// reliable marker), then Events.
    pub async fn apply(&self, plan: &Plan) -> WriteOutcome {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &plan.key.namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        // The annotation marks a Service whose status may show one of our IPs. Set it before
        // writing IPs, and remove it only after they are gone from the status: if the second
        // write fails, the retry still knows the status is ours to fix.
        let releasing = plan.ingress.as_ref().is_some_and(Vec::is_empty);
        if !releasing {
            if let Err(outcome) = self.write_annotation(&api, plan, &params).await {
                return outcome;
            }
        }
        if let Some(ips) = &plan.ingress {
            let body = for_uid(ingress_patch(ips), plan.reference.uid.as_deref());
            match api
                .patch_status(&plan.key.name, &params, &Patch::Merge(&body))
                .await
            {
                Ok(_) => self.metrics.wrote("status"),
                Err(kube::Error::Api(s)) if s.is_not_found() || is_other_uid(&s) => {
                    return WriteOutcome::Gone
                }
                Err(error) => {
                    return WriteOutcome::Failed {
                        error,
                        status_written: false,
                    }
                }
            }
        }
        if releasing {
            match self.write_annotation(&api, plan, &params).await {
                Ok(()) => {}
                Err(WriteOutcome::Failed { error, .. }) => {
                    return WriteOutcome::Failed {
                        error,
                        status_written: true,
                    }
                }
                Err(outcome) => return outcome,
            }
        }
        for ev in &plan.events {
            self.event(ev, &plan.reference).await;
        }
        WriteOutcome::Done
    }
}

#[cfg(test)]
mod tests {
    // unwrap() here only parses literal fixtures: it cannot fail unless the test itself is wrong.
    use super::*;

    #[test]
    fn ingress_patch_writes_vip_mode_and_clears_with_null() {
        let ips: Vec<IpAddr> = vec![
            "198.51.100.7".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
        ];
        assert_eq!(
            ingress_patch(&ips),
            json!({"status": {"loadBalancer": {"ingress": [
                {"ip": "198.51.100.7", "ipMode": "VIP"}, {"ip": "2001:db8::7", "ipMode": "VIP"}]}}})
        );
        assert_eq!(
            ingress_patch(&[]),
            json!({"status": {"loadBalancer": {"ingress": null}}})
        );
    }

    #[test]
    fn patches_name_the_object_they_were_decided_for() {
        assert_eq!(
            for_uid(ingress_patch(&[]), Some("u-1")),
            json!({"metadata": {"uid": "u-1"}, "status": {"loadBalancer": {"ingress": null}}})
        );
        assert_eq!(
            for_uid(
                json!({"metadata": {"annotations": {"a": "b"}}}),
                Some("u-2")
            ),
            json!({"metadata": {"uid": "u-2", "annotations": {"a": "b"}}})
        );
        assert_eq!(for_uid(json!({"status": {}}), None), json!({"status": {}}));
    }
}
