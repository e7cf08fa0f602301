//! What a Service asks of the allocator, parsed from its spec and annotations.
//!
//! The Kubernetes glue copies the few fields that matter into a [`ServiceInfo`]; this module
//! turns that into an [`AllocationRequest`] or a [`RequestError`] whose text is shown to the
//! user verbatim. Keeping this pure means every annotation corner case is unit-testable without
//! an API server.

mod error;
mod handled;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::addr::Family;

pub use error::RequestError;
pub use handled::{is_handled, is_load_balancer, LOAD_BALANCER};
use sources::{ip_sources, single_value, Source};

/// The annotation suffix naming the pool to allocate from.
pub const POOL_ANNOTATION: &str = "address-pool";
/// The annotation suffix listing requested IPs, one per family.
pub const IPS_ANNOTATION: &str = "loadBalancerIPs";
/// The annotation suffix carrying the sharing key.
pub const SHARING_ANNOTATION: &str = "allow-shared-ip";
/// Annotation prefixes honoured, in priority order: ours, then MetalLB's current and legacy
/// ones, so users switching from MetalLB keep their Services unchanged.
pub const ANNOTATION_PREFIXES: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// Identifies a Service across calls; ordered so that every map keyed by it iterates
/// deterministically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy`: how many families the Service wants addresses in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamilyPolicy {
    /// One address, of the primary family.
    #[default]
    SingleStack,
    /// One address per family when a pool can provide them, fewer otherwise.
    PreferDualStack,
    /// One address per family or nothing.
    RequireDualStack,
}

/// A port's transport protocol; ports only collide when both number and protocol match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One entry of `spec.ports`, reduced to what decides whether two Services can share an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// The Service port (not the target port): what clients connect to on the shared IP.
    pub port: u16,
    /// The port's protocol.
    pub protocol: Protocol,
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// The plain data the Kubernetes glue copies out of a Service, so that request parsing needs
/// no Kubernetes types.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`, matched against pools' `serviceSelector`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, where the pool, IP and sharing requests live.
    pub annotations: BTreeMap<String, String>,
    /// `spec.loadBalancerIP` (deprecated upstream, still honoured).
    pub load_balancer_ip: Option<String>,
    /// `spec.ipFamilies` as defaulted by the API server; the first is the primary family.
    pub ip_families: Vec<Family>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy == Local`.
    pub external_traffic_local: bool,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
}

impl ServiceInfo {
    /// The Service's identity.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(self.namespace.clone(), self.name.clone())
    }
}

/// What decides whether two Services with the same sharing key may share an IP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharingAttrs {
    /// The Service's ports; two sharers must not have one in common.
    pub ports: BTreeSet<ServicePort>,
    /// `externalTrafficPolicy: Local`: traffic must land on a node with this Service's pods, so
    /// a sharer must have the same pods (the same selector).
    pub external_traffic_local: bool,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
}

/// Everything the allocator needs to place a Service, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    /// The pool named by annotation, if any.
    pub pool: Option<String>,
    /// Specific IPs asked for, at most one per family, in `families` order.
    pub ips: Vec<IpAddr>,
    /// The Service's own sharing key, if any.
    pub sharing_key: Option<String>,
    /// The families wanted, primary first.
    pub families: Vec<Family>,
    /// `true` (RequireDualStack, SingleStack): every family in `families` or nothing;
    /// `false` (PreferDualStack): as many as one pool offers.
    pub require_all: bool,
    /// Attributes checked against other holders of a shared IP.
    pub sharing: SharingAttrs,
    /// The Service's namespace, for pool admission.
    pub namespace: String,
    /// The Service's labels, for pool admission.
    pub labels: BTreeMap<String, String>,
}

impl AllocationRequest {
    /// A request for one address of `family` with no annotations; mostly for tests and
    /// benchmarks, which would otherwise repeat every field.
    pub fn simple(namespace: impl Into<String>, family: Family) -> Self {
        Self {
            pool: None,
            ips: Vec::new(),
            sharing_key: None,
            families: vec![family],
            require_all: true,
            sharing: SharingAttrs::default(),
            namespace: namespace.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// Parses what `svc` asks for. Every source of the same setting (our annotation, MetalLB's two
/// prefixes and, for IPs, `spec.loadBalancerIP`) must agree; the error names them and their
/// values so the user sees exactly which two to reconcile.
pub fn allocation_request(svc: &ServiceInfo) -> Result<AllocationRequest, RequestError> {
    let pool = single_value(&svc.annotations, POOL_ANNOTATION)?;
    let sharing_key = single_value(&svc.annotations, SHARING_ANNOTATION)?;
    let requested = ip_sources(&svc.annotations, svc.load_balancer_ip.as_deref())?;

    let families = service_families(svc, requested.as_ref());
    let require_all = svc.ip_family_policy != IpFamilyPolicy::PreferDualStack;

    let (ips, families) = match requested {
        None => (Vec::new(), families),
        Some((source, ips)) => check_requested_families(svc, &source, ips, families)?,
    };

    Ok(AllocationRequest {
        pool,
        ips,
        sharing_key,
        families,
        require_all,
        sharing: SharingAttrs {
            ports: svc.ports.iter().copied().collect(),
            external_traffic_local: svc.external_traffic_local,
            selector: svc.selector.clone(),
        },
        namespace: svc.namespace.clone(),
        labels: svc.labels.clone(),
    })
}

/// The families the Service wants. The API server always fills `spec.ipFamilies`, but an
/// emulator or an old object may not; then the requested IPs decide, else IPv4 (the primary
/// family of every kind cluster), with IPv6 second for the dual-stack policies.
fn service_families(svc: &ServiceInfo, requested: Option<&(Source, Vec<IpAddr>)>) -> Vec<Family> {
    let mut listed: Vec<Family> = Vec::new();
    for f in &svc.ip_families {
        if !listed.contains(f) {
            listed.push(*f);
        }
    }
    if listed.is_empty() {
        let primary = requested
            .and_then(|(_, ips)| ips.first())
            .map_or(Family::V4, Family::of);
        listed.push(primary);
        let other = match primary {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        };
        if svc.ip_family_policy != IpFamilyPolicy::SingleStack {
            listed.push(other);
        }
    }
    match svc.ip_family_policy {
        IpFamilyPolicy::SingleStack => listed.truncate(1),
        IpFamilyPolicy::PreferDualStack | IpFamilyPolicy::RequireDualStack => {}
    }
    listed
}

/// Checks that the requested IPs fit the Service's families and orders them like `families`.
/// With PreferDualStack the request narrows the families to those asked for, because mixing
/// a pinned IP with an automatically chosen one of the other family would surprise users.
fn check_requested_families(
    svc: &ServiceInfo,
    source: &Source,
    ips: Vec<IpAddr>,
    families: Vec<Family>,
) -> Result<(Vec<IpAddr>, Vec<Family>), RequestError> {
    for ip in &ips {
        let family = Family::of(ip);
        if !families.contains(&family) {
            return Err(RequestError::FamilyNotWanted {
                origin: source.to_string(),
                ip: *ip,
                family,
                policy: svc.ip_family_policy,
                families: families.clone(),
            });
        }
    }
    let mut ordered = Vec::new();
    let mut kept = Vec::new();
    for family in &families {
        if let Some(ip) = ips.iter().find(|ip| Family::of(ip) == *family) {
            ordered.push(*ip);
            kept.push(*family);
        } else if svc.ip_family_policy == IpFamilyPolicy::RequireDualStack {
            return Err(RequestError::MissingFamily {
                origin: source.to_string(),
                family: *family,
            });
        }
    }
    Ok((ordered, kept))
}

#[cfg(test)]
mod tests;
