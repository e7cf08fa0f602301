//! IPv6 and dual-stack Services on a cluster started with [`ClusterSpec::ipv6`]: creating
//! them, and asking the LAN (with `ndisc6`, an independent judge) which node answers for an
//! IPv6 Service IP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use super::{merge, ok, poll, Cluster};

/// The IPv6 range added to the pool: on-link for every host of the LAN (2001:db8::/64).
pub const POOL6: &str = "2001:db8::100-2001:db8::1ff";

impl Cluster {
    /// Creates a LoadBalancer Service like [`Cluster::create_service`] with `spec` merged
    /// over it, and returns every ingress IP once the controller wrote `families` of them.
    pub fn create_service_families(
        &self,
        name: &str,
        extra: Value,
        families: usize,
    ) -> Vec<IpAddr> {
        let mut svc = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        merge(&mut svc, extra);
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        ok(
            "create service",
            self.rt.block_on(api.create(
                &PostParams::default(),
                &serde_json::from_value(svc).expect("Service literal"),
            )),
        );
        let mut ips = Vec::new();
        poll(Duration::from_secs(15), || {
            ips = self.ingress_ips(name);
            ips.len() >= families
        });
        assert!(
            ips.len() >= families,
            "service {name} got {ips:?}, not {families} IPs; controller log:\n{}",
            self.controller.log()
        );
        ips
    }

    /// The ingress IPs of Service `name` now (none if it has no status yet).
    pub fn ingress_ips(&self, name: &str) -> Vec<IpAddr> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        self.rt
            .block_on(api.get(name))
            .ok()
            .and_then(|s| s.status?.load_balancer?.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip?.parse().ok())
            .collect()
    }

    /// A single-stack IPv6 LoadBalancer Service; returns its IP.
    pub fn create_service6(&self, name: &str, extra: Value) -> Ipv6Addr {
        let mut spec = json!({"spec": {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"]}});
        merge(&mut spec, extra);
        let ips = self.create_service_families(name, spec, 1);
        ips.iter()
            .find_map(|ip| match ip {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .unwrap_or_else(|| panic!("service {name} got no IPv6 address: {ips:?}"))
    }

    /// A `RequireDualStack` LoadBalancer Service; returns its (IPv4, IPv6) IPs.
    pub fn create_dual_stack_service(&self, name: &str) -> (Ipv4Addr, Ipv6Addr) {
        let spec =
            json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}});
        let ips = self.create_service_families(name, spec, 2);
        let v4 = ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        });
        let v6 = ips.iter().find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        });
        match (v4, v6) {
            (Some(v4), Some(v6)) => (v4, v6),
            _ => panic!("dual-stack service {name} got {ips:?}"),
        }
    }

    /// Which node answers Neighbor Discovery for `vip` from the client right now (`ndisc6`).
    pub fn announcer6(&self, vip: Ipv6Addr) -> Option<usize> {
        self.lan
            .client()
            .ndisc6_mac(vip, 1)
            .and_then(|m| self.node_of_mac(m))
    }

    /// Waits until some node answers Neighbor Discovery for `vip` (and `want(node)` holds).
    pub fn wait_announcer6(
        &self,
        vip: Ipv6Addr,
        timeout: Duration,
        want: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        super::wait_for_node(timeout, || self.announcer6(vip).filter(|n| want(*n)))
    }

    /// `curl http://[vip]:port/` from the client.
    pub fn curl6(&self, vip: Ipv6Addr, port: u16) -> Result<String, String> {
        self.lan.client().curl(&format!("http://[{vip}]:{port}/"))
    }
}

impl Cluster {
    /// [`Cluster::measure_failover`] for an IPv6 Service IP: creates single-stack IPv6 Service
    /// `web6`, has the client curl `http://[vip]/` every `every`, applies `fail` to the node
    /// that answers Neighbor Discovery for it, and waits (up to `within`) until another node's
    /// pod answers; panics if none does.
    pub fn measure_failover6(
        &mut self,
        every: Duration,
        within: Duration,
        fail: impl FnOnce(&mut Cluster, usize),
    ) -> (Ipv6Addr, super::Failover) {
        let vip = self.create_service6("web6", json!({}));
        self.lan.add_vip6_dnat(vip, 80);
        let owner = self
            .wait_announcer6(vip, Duration::from_secs(10), |_| true)
            .unwrap_or_else(|| panic!("nobody answers NDP for {vip}\n{}", self.speaker_logs()));
        let failover = self.follow_failover(
            &format!("http://[{vip}]/"),
            owner,
            every,
            within,
            fail,
            |c| c.announcer6(vip),
        );
        (vip, failover)
    }
}
