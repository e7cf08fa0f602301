//! Which prefixes this node advertises to which peer, with which attributes: the pure half of
//! BGP mode's "who advertises what" rules (design.md, "BGP mode").
//!
//! A node dials every peer whose `nodeSelector` matches it. It advertises a Service IP to a
//! peer when the IP's pool announces with `bgp`, an advertisement covers that pool and peer
//! and selects this node, the node lacks the `exclude-from-external-load-balancers` label,
//! and the Service has endpoints where its traffic policy needs them: with `Cluster` a ready
//! endpoint anywhere, with `Local` a ready endpoint on this node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::attrs::RouteAttrs;
use super::prefix::Prefix;
use crate::config::{selectors_match, BgpAdvertisement, Config};

/// Nodes with this label never advertise (Kubernetes' own convention, honoured by MetalLB).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The node the speaker runs on.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Any node may receive the traffic; kube-proxy forwards it to an endpoint anywhere.
    Cluster,
    /// Only nodes with a local endpoint may receive it.
    Local,
}

/// One LoadBalancer Service as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its allocated IPs (one per family).
    pub ips: Vec<IpAddr>,
    /// The pool the IPs came from.
    pub pool: String,
    /// `externalTrafficPolicy`.
    pub policy: TrafficPolicy,
    /// At least one ready endpoint exists somewhere in the cluster.
    pub ready_anywhere: bool,
    /// At least one ready endpoint runs on this node.
    pub ready_on_node: bool,
}

/// What one peer should hold from this node.
pub type PeerRoutes = BTreeMap<Prefix, RouteAttrs>;

/// The routes for every peer this node dials, by peer name. Peers the node does not dial are
/// absent; peers it dials but has nothing for map to an empty table (the session stays up).
pub fn plan(
    config: &Config,
    node: NodeInfo<'_>,
    services: &[ServiceInfo],
) -> BTreeMap<String, PeerRoutes> {
    let default_ad = [BgpAdvertisement::default()];
    let ads: &[BgpAdvertisement] = if config.bgp.advertisements.is_empty() {
        &default_ad
    } else {
        &config.bgp.advertisements
    };
    let excluded = node.labels.contains_key(EXCLUDE_LABEL);
    let mut out = BTreeMap::new();
    for peer in &config.bgp.peers {
        if !selectors_match(&peer.node_selectors, node.labels) {
            continue;
        }
        let ibgp = peer.asn == peer.my_asn;
        let mut routes = PeerRoutes::new();
        for svc in services.iter().filter(|_| !excluded) {
            let wanted = match svc.policy {
                TrafficPolicy::Cluster => svc.ready_anywhere,
                TrafficPolicy::Local => svc.ready_on_node,
            };
            if !wanted || !config.announce_of(&svc.pool).bgp {
                continue;
            }
            for ad in ads {
                let applies = (ad.pools.is_empty() || ad.pools.contains(&svc.pool))
                    && (ad.peers.is_empty() || ad.peers.contains(&peer.name))
                    && selectors_match(&ad.node_selectors, node.labels);
                if !applies {
                    continue;
                }
                // A session carries its own family only (IPv4 over IPv4, IPv6 over IPv6).
                for ip in svc
                    .ips
                    .iter()
                    .filter(|ip| ip.is_ipv4() == peer.address.is_ipv4())
                {
                    let len = if ip.is_ipv4() {
                        ad.aggregation_length
                    } else {
                        ad.aggregation_length_v6
                    };
                    let Ok(prefix) = Prefix::new(*ip, len) else {
                        continue;
                    };
                    let attrs = RouteAttrs {
                        local_pref: (ibgp && ad.local_pref != 0).then_some(ad.local_pref),
                        med: None,
                        communities: ad.communities.clone(),
                        large_communities: ad.large_communities.clone(),
                    };
                    merge(routes.entry(prefix).or_insert_with(|| attrs.clone()), attrs);
                }
            }
        }
        out.insert(peer.name.clone(), routes);
    }
    out
}

/// What an API-degraded speaker sends a peer: what it already advertises, minus what it no
/// longer plans, and nothing new (design.md: degraded speakers keep what they advertise and
/// add nothing). Its view of the cluster may be stale, so it must not start attracting
/// traffic on it; a withdrawal it still sees is older news than the outage and is honoured.
pub fn degraded_table(advertised: &PeerRoutes, planned: PeerRoutes) -> PeerRoutes {
    planned
        .into_iter()
        .filter(|(prefix, _)| advertised.contains_key(prefix))
        .collect()
}

/// The peers whose table holds a prefix covering `ip`, for the Events that say which nodes
/// advertise a Service to which peers.
pub fn peers_advertising(plan: &BTreeMap<String, PeerRoutes>, ip: IpAddr) -> Vec<String> {
    plan.iter()
        .filter(|(_, routes)| routes.keys().any(|p| p.contains(ip)))
        .map(|(peer, _)| peer.clone())
        .collect()
}

/// Two advertisements covering one prefix: communities are united and the higher LOCAL_PREF
/// wins (Cilium's documented rule; MetalLB leaves it undefined).
fn merge(into: &mut RouteAttrs, other: RouteAttrs) {
    into.local_pref = into.local_pref.max(other.local_pref);
    into.communities.extend(other.communities);
    into.communities.sort_unstable();
    into.communities.dedup();
    into.large_communities.extend(other.large_communities);
    into.large_communities.sort_unstable();
    into.large_communities.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config_map_data, NATIVE_KEY};

    const CONFIG: &str = r#"
pools:
  - {name: edge, addresses: ["203.0.113.0/24", "2001:db8:100::/120"], announce: [bgp]}
  - {name: lan, addresses: ["198.51.100.0/28"]}
  - {name: agg, addresses: ["192.0.2.0/24"], announce: [l2, bgp]}
bgp:
  myASN: 64512
  peers:
    - {name: ebgp, address: 192.0.2.1, asn: 64513}
    - {name: ibgp, address: 192.0.2.2, asn: 64512}
    - {name: rack2, address: 192.0.2.3, asn: 64513, nodeSelector: {rack: r2}}
  advertisements:
    - {pools: [edge], localPref: 300, communities: ["64512:1"]}
    - {pools: [edge], peers: [ibgp], localPref: 100, communities: ["64512:2"], nodeSelector: {ssd: "true"}}
    - {pools: [agg], aggregationLength: 24}
"#;

    fn config() -> Config {
        let data = [(NATIVE_KEY.to_string(), CONFIG.to_string())].into();
        parse_config_map_data(&data).unwrap().config
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn svc(ip: &str, pool: &str, policy: TrafficPolicy, anywhere: bool, here: bool) -> ServiceInfo {
        ServiceInfo {
            ips: vec![ip.parse().unwrap()],
            pool: pool.into(),
            policy,
            ready_anywhere: anywhere,
            ready_on_node: here,
        }
    }

    fn prefixes(r: &PeerRoutes) -> Vec<String> {
        r.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn traffic_policy_decides_which_nodes_advertise() {
        let c = config();
        let node = labels(&[("rack", "r1")]);
        let services = [
            svc("203.0.113.1", "edge", TrafficPolicy::Cluster, true, false),
            svc("203.0.113.2", "edge", TrafficPolicy::Cluster, false, false),
            svc("203.0.113.3", "edge", TrafficPolicy::Local, true, false),
            svc("203.0.113.4", "edge", TrafficPolicy::Local, true, true),
            svc("198.51.100.1", "lan", TrafficPolicy::Cluster, true, true),
        ];
        let plan = plan(&c, NodeInfo { labels: &node }, &services);
        // rack2's selector does not match this node: no session at all.
        assert_eq!(plan.keys().collect::<Vec<_>>(), vec!["ebgp", "ibgp"]);
        assert_eq!(
            prefixes(&plan["ebgp"]),
            vec!["203.0.113.1/32", "203.0.113.4/32"]
        );
    }

    #[test]
    fn attributes_follow_peer_kind_and_advertisement_filters() {
        let c = config();
        let services = [svc(
            "203.0.113.1",
            "edge",
            TrafficPolicy::Cluster,
            true,
            true,
        )];
        let plain = labels(&[]);
        let p = plan(&c, NodeInfo { labels: &plain }, &services);
        let key = Prefix::host("203.0.113.1".parse().unwrap());
        // LOCAL_PREF only to iBGP.
        assert_eq!(p["ebgp"][&key].local_pref, None);
        assert_eq!(p["ibgp"][&key].local_pref, Some(300));
        assert_eq!(
            p["ibgp"][&key].communities,
            vec![crate::bgp::Community(64512 << 16 | 1)]
        );
        // A node the second advertisement selects: communities merge, highest LOCAL_PREF wins,
        // and only toward the peer that advertisement names.
        let ssd = labels(&[("ssd", "true")]);
        let p = plan(&c, NodeInfo { labels: &ssd }, &services);
        assert_eq!(p["ibgp"][&key].local_pref, Some(300));
        assert_eq!(p["ibgp"][&key].communities.len(), 2);
        assert_eq!(p["ebgp"][&key].communities.len(), 1);
    }

    #[test]
    fn aggregation_ipv6_and_exclusion_label() {
        let c = config();
        let services = [
            svc("192.0.2.77", "agg", TrafficPolicy::Cluster, true, false),
            svc("192.0.2.78", "agg", TrafficPolicy::Cluster, true, false),
            svc(
                "2001:db8:100::5",
                "edge",
                TrafficPolicy::Cluster,
                true,
                false,
            ),
        ];
        let plain = labels(&[]);
        let p = plan(&c, NodeInfo { labels: &plain }, &services);
        // The IPv6 IP is not planned for IPv4 peers: their sessions cannot carry it.
        assert_eq!(prefixes(&p["ebgp"]), vec!["192.0.2.0/24"]);
        let excluded = labels(&[(EXCLUDE_LABEL, "")]);
        let p = plan(&c, NodeInfo { labels: &excluded }, &services);
        // Sessions stay up (so nothing flaps when the label is removed), tables are empty.
        assert!(p["ebgp"].is_empty() && p["ibgp"].is_empty());
    }

    #[test]
    fn degraded_speaker_keeps_and_withdraws_but_adds_nothing() {
        let a = Prefix::host("203.0.113.1".parse().unwrap());
        let b = Prefix::host("203.0.113.2".parse().unwrap());
        let c = Prefix::host("203.0.113.3".parse().unwrap());
        let old = RouteAttrs::default();
        let new = RouteAttrs {
            local_pref: Some(200),
            ..RouteAttrs::default()
        };
        let advertised: PeerRoutes = [(a, old.clone()), (b, old)].into();
        let planned: PeerRoutes = [(a, new.clone()), (c, new.clone())].into();
        let out = degraded_table(&advertised, planned);
        // a stays (with its current attributes), b is withdrawn, c is never added.
        assert_eq!(out, [(a, new)].into());
    }

    #[test]
    fn peers_advertising_sees_aggregated_prefixes() {
        let c = config();
        let plain = labels(&[]);
        let services = [
            svc("192.0.2.77", "agg", TrafficPolicy::Cluster, true, false),
            svc("203.0.113.1", "edge", TrafficPolicy::Cluster, true, false),
        ];
        let p = plan(&c, NodeInfo { labels: &plain }, &services);
        assert_eq!(
            peers_advertising(&p, "192.0.2.77".parse().unwrap()),
            vec!["ebgp", "ibgp"]
        );
        assert_eq!(
            peers_advertising(&p, "203.0.113.1".parse().unwrap()),
            vec!["ebgp", "ibgp"]
        );
        assert!(peers_advertising(&p, "203.0.113.2".parse().unwrap()).is_empty());
        assert!(peers_advertising(&p, "2001:db8::1".parse().unwrap()).is_empty());
    }

    #[test]
    fn each_peer_gets_the_family_its_session_carries() {
        let data = [(
            NATIVE_KEY.to_string(),
            "pools: [{name: e, addresses: [203.0.113.0/24, \"2001:db8:100::/120\"], announce: [bgp]}]\nbgp: {myASN: 64512, peers: [{name: v4, address: 192.0.2.1, asn: 64513}, {name: v6, address: \"2001:db8::1\", asn: 64513}]}\n".to_string(),
        )]
        .into();
        let c = parse_config_map_data(&data).unwrap().config;
        let plain = labels(&[]);
        let dual = ServiceInfo {
            ips: vec![
                "203.0.113.9".parse().unwrap(),
                "2001:db8:100::9".parse().unwrap(),
            ],
            ..svc("203.0.113.9", "e", TrafficPolicy::Cluster, true, false)
        };
        let p = plan(&c, NodeInfo { labels: &plain }, &[dual]);
        assert_eq!(prefixes(&p["v4"]), vec!["203.0.113.9/32"]);
        assert_eq!(prefixes(&p["v6"]), vec!["2001:db8:100::9/128"]);
    }

    #[test]
    fn no_advertisements_means_one_default_for_every_bgp_pool() {
        let data = [(
            NATIVE_KEY.to_string(),
            "pools: [{name: e, addresses: [203.0.113.0/24], announce: [bgp]}]\nbgp: {myASN: 64512, peers: [{name: r, address: 192.0.2.1, asn: 64512}]}\n".to_string(),
        )]
        .into();
        let c = parse_config_map_data(&data).unwrap().config;
        let plain = labels(&[]);
        let p = plan(
            &c,
            NodeInfo { labels: &plain },
            &[svc("203.0.113.9", "e", TrafficPolicy::Cluster, true, false)],
        );
        assert_eq!(p["r"].values().next(), Some(&RouteAttrs::default()));
        assert_eq!(prefixes(&p["r"]), vec!["203.0.113.9/32"]);
    }
}
