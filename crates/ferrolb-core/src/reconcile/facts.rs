//! What the controller needs to know about one Service, copied out of the Kubernetes object by
//! the glue, so every decision is made on plain data.

use std::net::IpAddr;

use crate::service::{is_handled, is_load_balancer, ServiceInfo, ServiceKey};

/// Whether the controller is responsible for a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// `type: LoadBalancer` with our class: allocate.
    Ours,
    /// Not a LoadBalancer (any more).
    NotLoadBalancer,
    /// A LoadBalancer of another class.
    OtherClass,
    /// Being deleted (has a deletionTimestamp).
    Deleting,
}

impl Handling {
    /// Classifies a Service from its deletion mark, `spec.type` and `spec.loadBalancerClass`,
    /// for a controller started with `--lb-class` `lb_class`.
    pub fn classify(
        deleting: bool,
        service_type: Option<&str>,
        class: Option<&str>,
        lb_class: Option<&str>,
    ) -> Self {
        if deleting {
            Handling::Deleting
        } else if !is_load_balancer(service_type) {
            Handling::NotLoadBalancer
        } else if !is_handled(service_type, class, lb_class) {
            Handling::OtherClass
        } else {
            Handling::Ours
        }
    }
}

/// One Service as last observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    /// namespace/name.
    pub key: ServiceKey,
    /// `metadata.uid`: every write is bound to it, so a decision never lands on a re-created
    /// Service of the same name.
    pub uid: Option<String>,
    /// Whether we handle it.
    pub handling: Handling,
    /// Input for the allocator.
    pub info: ServiceInfo,
    /// `status.loadBalancer.ingress[].ip` that parse, in order.
    pub ingress: Vec<IpAddr>,
    /// Whether every ingress entry carries `ipMode: VIP` and nothing but an IP.
    pub ingress_in_our_shape: bool,
    /// The value of the `ferrolb.io/allocated-from-pool` annotation, if set: the marker that
    /// our controller wrote this status.
    pub pool_annotation: Option<String>,
    /// `metadata.creationTimestamp` in seconds, for "the older Service wins" at replay.
    pub created: i64,
}

impl ServiceFacts {
    /// The IPs this Service's status shows that the controller must account for: ours, or
    /// marked by our annotation. Another provider's Services are not ours to wait for (a
    /// Service that just left LoadBalancer still carries our annotation, so it counts).
    pub fn shown_ips(&self) -> &[IpAddr] {
        if self.handling == Handling::Ours || self.pool_annotation.is_some() {
            &self.ingress
        } else {
            &[]
        }
    }
}
