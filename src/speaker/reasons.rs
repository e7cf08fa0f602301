//! The speaker's Event reasons as one type, so a reason is spelled once and a typo is a
//! compile error. The strings are a contract (`docs/operations.md` lists them; people filter
//! `kubectl get events` on them), so `Display` gives exactly the reason string.

use std::fmt;
use std::sync::Arc;

use ferrolb_core::service::ServiceKey;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::{EventPublisher, Notice};

/// Why the speaker publishes an Event about a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// Normal: this node answers for one of the Service's IPs now.
    Announcing,
    /// Warning: another speaker keeps claiming an IP this node announces, beyond a handover.
    IpConflict,
    /// Warning: a host that is not a speaker uses one of the Service's IPs; not announced.
    IpInUseByOtherHost,
    /// Normal: this node advertises one of the Service's IPs to BGP peers (the message names
    /// them), or the set of peers changed.
    Advertising,
    /// Normal: this node stopped advertising one of the Service's IPs over BGP.
    AdvertisementWithdrawn,
    /// Warning: a host that is not a speaker ran IPv6 duplicate address detection for an IP
    /// this node announces (it tried to configure it); the speaker defended the IP.
    IpProbedByOtherHost,
}

impl EventReason {
    /// The Event's `reason` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventReason::Announcing => "Announcing",
            EventReason::IpConflict => "IPConflict",
            EventReason::IpInUseByOtherHost => "IPInUseByOtherHost",
            EventReason::Advertising => "Advertising",
            EventReason::AdvertisementWithdrawn => "AdvertisementWithdrawn",
            EventReason::IpProbedByOtherHost => "IPProbedByOtherHost",
        }
    }

    /// Whether the Event is a Warning (else Normal).
    pub const fn is_warning(self) -> bool {
        !matches!(
            self,
            EventReason::Announcing
                | EventReason::Advertising
                | EventReason::AdvertisementWithdrawn
        )
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Event's `action` field for everything the speaker reports.
pub const ANNOUNCE_ACTION: &str = "Announce";

/// The Event's `action` field for BGP advertisements.
pub const ADVERTISE_ACTION: &str = "Advertise";

/// Publishes an Event about the Service `key` in the background: Events are best effort, and
/// the speaker's loop must never wait on the API server for one. The Service's uid comes from
/// `services` when cached, so the Event attaches to this incarnation of the Service.
pub fn publish_service_event(
    events: &Arc<EventPublisher>,
    services: &Store<Service>,
    key: &ServiceKey,
    reason: EventReason,
    action: &'static str,
    note: String,
) {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        uid: services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .and_then(|s| s.metadata.uid.clone()),
        ..ObjectReference::default()
    };
    let events = events.clone();
    let notice = Notice {
        warning: reason.is_warning(),
        reason: reason.as_str(),
        action,
        note,
    };
    tokio::spawn(async move {
        if let Err(e) = events.publish(&notice, &reference).await {
            tracing::debug!(error = %e, "could not publish an Event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_published_spelling() {
        assert_eq!(EventReason::Announcing.to_string(), "Announcing");
        assert_eq!(EventReason::IpConflict.to_string(), "IPConflict");
        assert_eq!(
            EventReason::IpInUseByOtherHost.to_string(),
            "IPInUseByOtherHost"
        );
        assert!(!EventReason::Announcing.is_warning());
        assert!(EventReason::IpConflict.is_warning());
        assert!(EventReason::IpInUseByOtherHost.is_warning());
        assert_eq!(EventReason::Advertising.to_string(), "Advertising");
        assert_eq!(
            EventReason::AdvertisementWithdrawn.to_string(),
            "AdvertisementWithdrawn"
        );
        assert!(!EventReason::Advertising.is_warning());
        assert_eq!(
            EventReason::IpProbedByOtherHost.to_string(),
            "IPProbedByOtherHost"
        );
        assert!(EventReason::IpProbedByOtherHost.is_warning());
    }
}
