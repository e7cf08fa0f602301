//! Service defaulting and validation as the real API server does them: cluster IPs from
//! 10.96.0.0/12 (and fd00:10:96::/112, since kube-sim is a dual-stack cluster), node ports from
//! 30000-32767, family and traffic-policy defaults, type-dependent field clean-up, and 422s for
//! invalid Services. Controllers under test see the same shapes they would in a real cluster.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use crate::status::FieldError;

const NODE_PORT_MIN: u16 = 30000;
const NODE_PORT_MAX: u16 = 32767;
/// 10.96.0.0/12: the first usable address handed out, as kubeadm clusters start at .1 for the
/// `kubernetes` Service; we start at .10 to keep the low addresses recognisable.
const V4_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const V4_SIZE: u32 = 1 << 20;
const V6_BASE: u128 = 0xfd00_0010_0096_0000_0000_0000_0000_0000;
const V6_SIZE: u128 = 1 << 16;

/// Cluster IPs and node ports in use, so no two Services ever share one.
#[derive(Debug, Default)]
pub struct ServiceAllocations {
    v4: BTreeSet<u32>,
    v6: BTreeSet<u128>,
    node_ports: BTreeSet<u16>,
    /// Where the next search for a free address/port starts (next-fit). Scanning from the
    /// start of the range every time made each create O(allocated) under the store lock,
    /// so creating 10,000 Services was quadratic and stalled every other request.
    next_v4: u32,
    next_v6: u128,
    next_node_port: u16,
}

/// The first free offset in `lo..hi`, searching from `*cursor` and wrapping around once;
/// advances the cursor past it.
fn next_free<T>(lo: T, hi: T, cursor: &mut T, used: impl Fn(T) -> bool) -> Option<T>
where
    T: Copy + PartialOrd + std::ops::Add<Output = T> + From<u8>,
{
    let one = T::from(1);
    let start = if *cursor >= lo && *cursor < hi {
        *cursor
    } else {
        lo
    };
    let mut o = start;
    loop {
        if !used(o) {
            *cursor = o + one;
            return Some(o);
        }
        o = o + one;
        if o >= hi {
            o = lo;
        }
        if o == start {
            return None;
        }
    }
}

impl ServiceAllocations {
    fn take_v4(&mut self) -> Option<Ipv4Addr> {
        let used = &self.v4;
        let o = next_free(10, V4_SIZE - 1, &mut self.next_v4, |o| {
            used.contains(&(V4_BASE + o))
        })?;
        self.v4.insert(V4_BASE + o);
        Some(Ipv4Addr::from(V4_BASE + o))
    }

    fn take_v6(&mut self) -> Option<Ipv6Addr> {
        let used = &self.v6;
        let o = next_free(10, V6_SIZE - 1, &mut self.next_v6, |o| {
            used.contains(&(V6_BASE + o))
        })?;
        self.v6.insert(V6_BASE + o);
        Some(Ipv6Addr::from(V6_BASE + o))
    }

    fn take_node_port(&mut self) -> Option<u16> {
        let used = &self.node_ports;
        let p = next_free(
            NODE_PORT_MIN,
            NODE_PORT_MAX + 1,
            &mut self.next_node_port,
            |p| used.contains(&p),
        )?;
        self.node_ports.insert(p);
        Some(p)
    }

    fn claim_ip(&mut self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.insert(u32::from(a)),
            IpAddr::V6(a) => self.v6.insert(u128::from(a)),
        }
    }

    fn release_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.v4.remove(&u32::from(a)),
            IpAddr::V6(a) => self.v6.remove(&u128::from(a)),
        };
    }
}

fn in_service_range(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => (V4_BASE..V4_BASE + V4_SIZE).contains(&u32::from(*a)),
        IpAddr::V6(a) => (V6_BASE..V6_BASE + V6_SIZE).contains(&u128::from(*a)),
    }
}

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn cluster_ips(spec: &Value) -> Vec<IpAddr> {
    spec.get("clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn node_ports(spec: &Value) -> Vec<u16> {
    let mut out: Vec<u16> = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort")?.as_u64())
                .filter_map(|n| u16::try_from(n).ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = spec
        .get("healthCheckNodePort")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
    {
        out.push(h);
    }
    out
}

/// Gives back the cluster IPs and node ports of a deleted Service.
pub fn release(obj: &Value, allocs: &mut ServiceAllocations) {
    let Some(spec) = obj.get("spec") else { return };
    for ip in cluster_ips(spec) {
        allocs.release_ip(ip);
    }
    for p in node_ports(spec) {
        allocs.node_ports.remove(&p);
    }
}

fn needs_node_ports(ty: &str) -> bool {
    ty == "NodePort" || ty == "LoadBalancer"
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Defaults and validates `obj` (a Service being created, or replacing `old`), allocating
/// cluster IPs and node ports in `allocs`. On error nothing is allocated.
pub fn prepare(
    obj: &mut Value,
    old: Option<&Value>,
    allocs: &mut ServiceAllocations,
) -> Result<(), Vec<FieldError>> {
    let old_spec = old
        .and_then(|o| o.get("spec"))
        .cloned()
        .unwrap_or(json!({}));
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"]
        .as_object_mut()
        .ok_or_else(|| vec![FieldError::required("spec", "")])?;
    let mut errs = Vec::new();

    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        errs.push(FieldError::unsupported(
            "spec.type",
            &ty,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    spec.insert("type".into(), json!(ty));
    let old_ty = str_at(&old_spec, "type").unwrap_or("ClusterIP").to_string();

    drop_type_dependent_fields(spec, &old_spec, &ty, &old_ty);
    default_ports(spec, &old_spec, &ty, &mut errs);
    default_policies(spec, &ty, &mut errs);
    check_immutable_class(spec, &old_spec, &ty, &old_ty, &mut errs);

    if !errs.is_empty() {
        return Err(errs);
    }
    allocate(spec, &old_spec, &ty, allocs)
}

/// A Service leaving `type: LoadBalancer` loses its `status.loadBalancer`, as on the real
/// server (checked against kube-apiserver v1.32 by `tests/testkit/tests/api_agreement.rs`):
/// the load balancer's status is not the user's to keep, and a controller waiting for that
/// status to change must see it change without anyone writing it.
pub fn clear_status_on_type_change(new: &mut Value, old: &Value) {
    let was_lb = old.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    let is_lb = new.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    if was_lb && !is_lb {
        new["status"]["loadBalancer"] = json!({});
    }
}

/// What the status subresource refuses on a Service: an ingress on a Service that is not of
/// type LoadBalancer (the real server's `ValidateServiceStatusUpdate`; clearing stays allowed).
pub fn validate_status(svc: &Value) -> Result<(), Vec<FieldError>> {
    let is_lb = svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    let has_ingress = svc
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_ingress && !is_lb {
        return Err(vec![FieldError::forbidden(
            "status.loadBalancer.ingress",
            "may only be used when `spec.type` is 'LoadBalancer'",
        )]);
    }
    Ok(())
}

/// When the type changes, the real server drops the fields the new type cannot have, if the
/// client left them as they were (`dropTypeDependentFields`).
fn drop_type_dependent_fields(
    spec: &mut Map<String, Value>,
    old_spec: &Value,
    ty: &str,
    old_ty: &str,
) {
    if ty == old_ty {
        return;
    }
    if !needs_node_ports(ty) {
        let old_ports = old_spec.get("ports").cloned().unwrap_or(Value::Null);
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports.iter_mut() {
                let (port, np) = (p.get("port").cloned(), p.get("nodePort").cloned());
                let unchanged = old_ports.as_array().is_some_and(|ops| {
                    ops.iter().any(|op| {
                        op.get("port") == port.as_ref() && op.get("nodePort") == np.as_ref()
                    })
                });
                if unchanged {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
        if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy") {
            spec.remove("externalTrafficPolicy");
        }
    }
    if ty != "LoadBalancer" {
        for f in [
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "healthCheckNodePort",
        ] {
            if spec.get(f) == old_spec.get(f) {
                spec.remove(f);
            }
        }
    }
}

fn default_ports(
    spec: &mut Map<String, Value>,
    old_spec: &Value,
    ty: &str,
    errs: &mut Vec<FieldError>,
) {
    let ports = match spec.get_mut("ports") {
        Some(Value::Array(p)) => p,
        Some(Value::Null) | None => {
            if ty != "ExternalName" {
                errs.push(FieldError::required("spec.ports", ""));
            }
            return;
        }
        Some(_) => {
            errs.push(FieldError::invalid(
                "spec.ports",
                "non-list",
                "must be a list",
            ));
            return;
        }
    };
    if ports.is_empty() && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let many = ports.len() > 1;
    let mut seen_names = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(m) = p.as_object_mut() else {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}]"),
                "non-object",
                "must be an object",
            ));
            continue;
        };
        let port = m.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = m
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
            errs.push(FieldError::unsupported(
                format!("spec.ports[{i}].protocol"),
                format!("\"{proto}\""),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        m.insert("protocol".into(), json!(proto));
        if !m.contains_key("targetPort") {
            m.insert("targetPort".into(), json!(port));
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if many && name.is_empty() {
            errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
        if !name.is_empty() && !seen_names.insert(name.clone()) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].name"),
                format!("\"{name}\""),
            ));
        }
        if !seen_ports.insert((port, proto.clone())) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                format!("core.ServicePort{{Name:\"{name}\", Protocol:\"{proto}\", Port:{port}}}"),
            ));
        }
        if needs_node_ports(ty) {
            if !m.contains_key("nodePort") {
                // Updates keep the node port a port already had, matched by port and protocol.
                let kept = old_spec
                    .get("ports")
                    .and_then(Value::as_array)
                    .and_then(|ops| {
                        ops.iter()
                            .find(|op| {
                                op.get("port").and_then(Value::as_i64) == Some(port)
                                    && str_at(op, "protocol").unwrap_or("TCP") == proto
                            })
                            .and_then(|op| op.get("nodePort").cloned())
                    });
                if let Some(np) = kept {
                    m.insert("nodePort".into(), np);
                }
            } else if let Some(np) = m.get("nodePort").and_then(Value::as_i64) {
                if !(i64::from(NODE_PORT_MIN)..=i64::from(NODE_PORT_MAX)).contains(&np) {
                    errs.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        np,
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ));
                }
            }
        } else if m.contains_key("nodePort") {
            errs.push(FieldError::forbidden(
                format!("spec.ports[{i}].nodePort"),
                &format!("may not be used when `type` is '{ty}'"),
            ));
        }
    }
}

fn default_policies(spec: &mut Map<String, Value>, ty: &str, errs: &mut Vec<FieldError>) {
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if ty == "ExternalName" {
        return;
    }
    spec.entry("internalTrafficPolicy")
        .or_insert(json!("Cluster"));
    if needs_node_ports(ty) {
        let etp = spec
            .entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
        if !["Cluster", "Local"].contains(&etp.as_str().unwrap_or("")) {
            errs.push(FieldError::unsupported(
                "spec.externalTrafficPolicy",
                etp.clone(),
                &["Cluster", "Local"],
            ));
        }
    } else if spec.contains_key("externalTrafficPolicy") {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            spec["externalTrafficPolicy"].clone(),
            "may only be set for externally-accessible services",
        ));
    }
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert(json!(true));
    } else if spec.contains_key("loadBalancerClass") {
        errs.push(FieldError::forbidden(
            "spec.loadBalancerClass",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let policy = spec
        .entry("ipFamilyPolicy")
        .or_insert(json!("SingleStack"))
        .as_str()
        .unwrap_or("")
        .to_string();
    if !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy.as_str()) {
        errs.push(FieldError::unsupported(
            "spec.ipFamilyPolicy",
            &policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut families: Vec<String> = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (i, f) in families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::unsupported(
                format!("spec.ipFamilies[{i}]"),
                f,
                &["IPv4", "IPv6"],
            ));
        }
    }
    if families.is_empty() {
        let primary = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
            .map_or("IPv4", |ip| family_name(&ip));
        families.push(primary.to_string());
    }
    if policy == "SingleStack" && families.len() > 1 {
        errs.push(FieldError::invalid(
            "spec.ipFamilies",
            format!("{families:?}"),
            "when ipFamilyPolicy is SingleStack, only one ipFamily is allowed",
        ));
    }
    if policy != "SingleStack" && families.len() == 1 {
        let other = if families[0] == "IPv4" {
            "IPv6"
        } else {
            "IPv4"
        };
        families.push(other.to_string());
    }
    spec.insert("ipFamilies".into(), json!(families));
}

fn check_immutable_class(
    spec: &Map<String, Value>,
    old_spec: &Value,
    ty: &str,
    old_ty: &str,
    errs: &mut Vec<FieldError>,
) {
    if ty == "LoadBalancer"
        && old_ty == "LoadBalancer"
        && spec.get("loadBalancerClass") != old_spec.get("loadBalancerClass")
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            spec.get("loadBalancerClass")
                .cloned()
                .unwrap_or(Value::Null),
            "may not change once set",
        ));
    }
}

/// Allocates what the defaulted spec still lacks and gives back what the old spec had but the
/// new one dropped; all or nothing.
fn allocate(
    spec: &mut Map<String, Value>,
    old_spec: &Value,
    ty: &str,
    allocs: &mut ServiceAllocations,
) -> Result<(), Vec<FieldError>> {
    let mut taken_ips: Vec<IpAddr> = Vec::new();
    let mut taken_ports: Vec<u16> = Vec::new();
    let result = allocate_inner(spec, old_spec, ty, allocs, &mut taken_ips, &mut taken_ports);
    if result.is_err() {
        for ip in taken_ips {
            allocs.release_ip(ip);
        }
        for p in taken_ports {
            allocs.node_ports.remove(&p);
        }
        return result;
    }
    let new_ips = cluster_ips(&Value::Object(spec.clone()));
    for ip in cluster_ips(old_spec) {
        if !new_ips.contains(&ip) {
            allocs.release_ip(ip);
        }
    }
    let new_ports = node_ports(&Value::Object(spec.clone()));
    for p in node_ports(old_spec) {
        if !new_ports.contains(&p) {
            allocs.node_ports.remove(&p);
        }
    }
    Ok(())
}

fn allocate_inner(
    spec: &mut Map<String, Value>,
    old_spec: &Value,
    ty: &str,
    allocs: &mut ServiceAllocations,
    taken_ips: &mut Vec<IpAddr>,
    taken_ports: &mut Vec<u16>,
) -> Result<(), Vec<FieldError>> {
    if ty == "ExternalName" {
        return Ok(());
    }
    let old_ips = cluster_ips(old_spec);
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(old_first) = old_ips.first() {
        if let Some(r) = &requested {
            if r != &old_first.to_string() && !r.is_empty() {
                return Err(vec![FieldError::invalid(
                    "spec.clusterIPs[0]",
                    format!("{r:?}"),
                    "may not change once set",
                )]);
            }
        }
    }
    if requested.as_deref() == Some("None") || str_at(old_spec, "clusterIP") == Some("None") {
        spec.insert("clusterIP".into(), json!("None"));
        spec.insert("clusterIPs".into(), json!(["None"]));
    } else {
        let families: Vec<String> = spec["ipFamilies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut ips: Vec<IpAddr> = Vec::new();
        for (i, fam) in families.iter().enumerate() {
            if let Some(existing) = old_ips.iter().find(|ip| family_name(ip) == fam) {
                ips.push(*existing);
                continue;
            }
            let explicit = if i == 0 {
                requested.as_deref().filter(|r| !r.is_empty())
            } else {
                None
            };
            let ip = match explicit {
                Some(text) => {
                    let ip: IpAddr = text.parse().map_err(|_| {
                        vec![FieldError::invalid(
                            "spec.clusterIPs[0]",
                            format!("{text:?}"),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )]
                    })?;
                    if !in_service_range(&ip) {
                        return Err(vec![FieldError::invalid(
                            "spec.clusterIPs",
                            format!("[]string{{\"{ip}\"}}"),
                            "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
                        )]);
                    }
                    if !allocs.claim_ip(ip) {
                        return Err(vec![FieldError::invalid(
                            "spec.clusterIPs",
                            format!("[]string{{\"{ip}\"}}"),
                            "failed to allocate IP: provided IP is already allocated",
                        )]);
                    }
                    ip
                }
                None => {
                    let ip = if fam == "IPv4" {
                        allocs.take_v4().map(IpAddr::V4)
                    } else {
                        allocs.take_v6().map(IpAddr::V6)
                    };
                    ip.ok_or_else(|| {
                        vec![FieldError::invalid(
                            "spec.clusterIPs",
                            fam,
                            "failed to allocate IP: range is full",
                        )]
                    })?
                }
            };
            taken_ips.push(ip);
            ips.push(ip);
        }
        if let Some(first) = ips.first() {
            spec.insert("clusterIP".into(), json!(first.to_string()));
        }
        spec.insert(
            "clusterIPs".into(),
            json!(ips.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
    }

    if needs_node_ports(ty) {
        let old_node_ports = node_ports(old_spec);
        // `allocateLoadBalancerNodePorts: false` leaves ports without a node port unless the
        // client names one, as the real server does.
        let auto_allocate = !(ty == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts") == Some(&json!(false)));
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(m) = p.as_object_mut() else { continue };
                match m
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                {
                    Some(np) if old_node_ports.contains(&np) => {}
                    Some(np) => {
                        if !allocs.node_ports.insert(np) {
                            return Err(vec![FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                np,
                                "provided port is already allocated",
                            )]);
                        }
                        taken_ports.push(np);
                    }
                    None if !auto_allocate => {}
                    None => {
                        let np = allocs.take_node_port().ok_or_else(|| {
                            vec![FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                0,
                                "range is full",
                            )]
                        })?;
                        taken_ports.push(np);
                        m.insert("nodePort".into(), json!(np));
                    }
                }
            }
        }
    }
    let wants_health_port = ty == "LoadBalancer"
        && str_at(&Value::Object(spec.clone()), "externalTrafficPolicy") == Some("Local");
    if wants_health_port {
        if !spec.contains_key("healthCheckNodePort") {
            let np = match old_spec
                .get("healthCheckNodePort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            {
                Some(np) => np,
                None => {
                    let np = allocs.take_node_port().ok_or_else(|| {
                        vec![FieldError::invalid(
                            "spec.healthCheckNodePort",
                            0,
                            "range is full",
                        )]
                    })?;
                    taken_ports.push(np);
                    np
                }
            };
            spec.insert("healthCheckNodePort".into(), json!(np));
        }
    } else {
        spec.remove("healthCheckNodePort");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn allocation_is_next_fit_and_reuses_freed_values_after_wrapping() {
        let mut a = ServiceAllocations::default();
        let all: Vec<u16> = std::iter::from_fn(|| a.take_node_port()).collect();
        assert_eq!(all.len(), usize::from(NODE_PORT_MAX - NODE_PORT_MIN + 1));
        assert_eq!(all.first(), Some(&NODE_PORT_MIN));
        a.node_ports.remove(&30100);
        assert_eq!(a.take_node_port(), Some(30100), "found after wrapping");
        assert_eq!(a.take_node_port(), None, "range exhausted");
        let x = a.take_v4().unwrap();
        let y = a.take_v4().unwrap();
        assert_ne!(x, y);
        assert_eq!(x, Ipv4Addr::new(10, 96, 0, 10));
    }

    #[test]
    fn load_balancer_defaults() {
        let mut a = ServiceAllocations::default();
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        prepare(&mut s, None, &mut a).unwrap();
        let spec = &s["spec"];
        assert_eq!(spec["clusterIP"], "10.96.0.10");
        assert_eq!(spec["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000})
        );
        let mut s2 = svc(
            json!({"type": "LoadBalancer", "ports": [{"port": 80}], "ipFamilyPolicy": "RequireDualStack"}),
        );
        prepare(&mut s2, None, &mut a).unwrap();
        assert_eq!(
            s2["spec"]["clusterIPs"],
            json!(["10.96.0.11", "fd00:10:96::a"])
        );
        assert_eq!(s2["spec"]["ports"][0]["nodePort"], 30001);
    }

    #[test]
    fn update_keeps_allocations_and_type_change_drops_node_ports() {
        let mut a = ServiceAllocations::default();
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        prepare(&mut s, None, &mut a).unwrap();
        let mut upd = svc(
            json!({"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 81, "name": "b"}]}),
        );
        upd["spec"]["ports"][0]["name"] = json!("a");
        prepare(&mut upd, Some(&s), &mut a).unwrap();
        assert_eq!(upd["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(upd["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(upd["spec"]["ports"][1]["nodePort"], 30001);
        let mut to_cluster = upd.clone();
        to_cluster["spec"]["type"] = json!("ClusterIP");
        prepare(&mut to_cluster, Some(&upd), &mut a).unwrap();
        assert!(to_cluster["spec"]["ports"][0].get("nodePort").is_none());
        assert!(to_cluster["spec"].get("externalTrafficPolicy").is_none());
        assert!(a.node_ports.is_empty(), "node ports released");
    }

    #[test]
    fn invalid_services_are_rejected_without_leaking_allocations() {
        let mut a = ServiceAllocations::default();
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 0}, {"port": 80}]}));
        let errs = prepare(&mut s, None, &mut a).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.ports[0].port",
                "spec.ports[0].name",
                "spec.ports[1].name"
            ]
        );
        assert!(a.v4.is_empty() && a.node_ports.is_empty());
        let mut s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(
            prepare(&mut s, None, &mut a).unwrap_err()[0].field,
            "spec.ports[0].nodePort"
        );
        let mut s = svc(json!({"type": "Weird", "ports": [{"port": 80}]}));
        assert_eq!(
            prepare(&mut s, None, &mut a).unwrap_err()[0].field,
            "spec.type"
        );
    }

    #[test]
    fn load_balancers_without_node_port_allocation_get_none() {
        let mut a = ServiceAllocations::default();
        let mut s = svc(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        prepare(&mut s, None, &mut a).unwrap();
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
        assert!(a.node_ports.is_empty());
    }

    #[test]
    fn class_is_immutable_on_load_balancers() {
        let mut a = ServiceAllocations::default();
        let mut s =
            svc(json!({"type": "LoadBalancer", "loadBalancerClass": "x", "ports": [{"port": 80}]}));
        prepare(&mut s, None, &mut a).unwrap();
        let mut u = s.clone();
        u["spec"]["loadBalancerClass"] = json!("y");
        assert_eq!(
            prepare(&mut u, Some(&s), &mut a).unwrap_err()[0].field,
            "spec.loadBalancerClass"
        );
    }

    #[test]
    fn leaving_load_balancer_clears_its_status_and_only_load_balancers_take_an_ingress() {
        let ingress = json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}});
        let mut old = svc(json!({"type": "LoadBalancer"}));
        old["status"] = ingress.clone();
        assert!(validate_status(&old).is_ok());

        let mut node_port = old.clone();
        node_port["spec"]["type"] = json!("NodePort");
        clear_status_on_type_change(&mut node_port, &old);
        assert_eq!(node_port["status"], json!({"loadBalancer": {}}));
        let mut lb_again = old.clone();
        clear_status_on_type_change(&mut lb_again, &old);
        assert_eq!(
            lb_again["status"], ingress,
            "an unchanged type keeps the status"
        );

        node_port["status"] = ingress;
        let errs = validate_status(&node_port).unwrap_err();
        assert_eq!(errs[0].field, "status.loadBalancer.ingress");
        node_port["status"] = json!({"loadBalancer": {"ingress": []}});
        assert!(
            validate_status(&node_port).is_ok(),
            "clearing stays allowed"
        );
    }
}
