//! Which nodes may announce one IP, from plain per-node facts.
//!
//! Kept apart from the hashing so each eligibility rule can be tested on its own, and so the
//! glue only has to translate Node/Lease/EndpointSlice objects into these small structs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::rendezvous;

/// Nodes carrying this label never announce, whatever its value (the upstream Kubernetes
/// convention that MetalLB and the cloud providers also honour).
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What the election needs to know about one node, as this speaker currently sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFacts {
    /// The Kubernetes node name; also the rendezvous-hash key, so it must be the exact name.
    pub name: String,
    /// The Node's labels, for `l2.nodeSelector` and the exclusion label.
    pub labels: BTreeMap<String, String>,
    /// Subnets of the node's up, eligible interfaces (its lease's `ferrolb.io/subnets`).
    pub subnets: Vec<IpNetwork>,
    /// Whether the node's speaker lease is live in this speaker's own judgement.
    pub live: bool,
}

/// One IP that some Service needs announced, plus what its traffic policy requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDemand {
    /// The IP to announce.
    pub ip: IpAddr,
    /// `None` when every Service on the IP uses `externalTrafficPolicy: Cluster` (any node can
    /// forward). `Some(nodes)` when they use `Local`: only these nodes have a ready endpoint, and
    /// announcing from any other node would black-hole the traffic.
    pub endpoint_nodes: Option<BTreeSet<String>>,
}

impl IpDemand {
    /// A demand for an IP whose Services use `externalTrafficPolicy: Cluster`.
    pub fn cluster(ip: IpAddr) -> Self {
        IpDemand {
            ip,
            endpoint_nodes: None,
        }
    }

    /// A demand for an IP whose Services use `externalTrafficPolicy: Local`, with the nodes that
    /// hold a ready endpoint.
    pub fn local<I, S>(ip: IpAddr, endpoint_nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        IpDemand {
            ip,
            endpoint_nodes: Some(endpoint_nodes.into_iter().map(Into::into).collect()),
        }
    }
}

/// Whether `node` may announce `demand.ip`, judging liveness with `is_live` instead of the
/// node's own `live` flag. Exists so a caller that tracks liveness itself (the announcer) does
/// not have to copy every `NodeFacts` just to overwrite one bool.
pub fn is_eligible_with(
    node: &NodeFacts,
    demand: &IpDemand,
    node_selector: &BTreeMap<String, String>,
    is_live: impl Fn(&NodeFacts) -> bool,
) -> bool {
    is_live(node)
        && matches_selector(&node.labels, node_selector)
        && !node.labels.contains_key(EXCLUDE_FROM_LB_LABEL)
        && node.subnets.iter().any(|net| net.contains(demand.ip))
        && demand
            .endpoint_nodes
            .as_ref()
            .is_none_or(|nodes| nodes.contains(&node.name))
}

/// The names of the nodes that may announce `demand.ip`: live, selected by `l2.nodeSelector`
/// (`matchLabels`; empty selects all), not excluded by label, with an eligible interface subnet
/// holding the IP, and, under `externalTrafficPolicy: Local`, holding a ready endpoint.
pub fn candidates<'a>(
    demand: &IpDemand,
    nodes: &'a [NodeFacts],
    node_selector: &BTreeMap<String, String>,
) -> Vec<&'a str> {
    nodes
        .iter()
        .filter(|n| is_eligible_with(n, demand, node_selector, |n| n.live))
        .map(|n| n.name.as_str())
        .collect()
}

/// The node that should announce `demand.ip`: [`candidates`] fed to [`rendezvous::winner`].
pub fn elect<'a>(
    demand: &IpDemand,
    nodes: &'a [NodeFacts],
    node_selector: &BTreeMap<String, String>,
) -> Option<&'a str> {
    rendezvous::winner(demand.ip, candidates(demand, nodes, node_selector))
}

fn matches_selector(
    labels: &BTreeMap<String, String>,
    selector: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test literal")
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test literal")
    }

    fn node(name: &str) -> NodeFacts {
        NodeFacts {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            subnets: vec![net("198.51.100.0/24"), net("2001:db8::/64")],
            live: true,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const VIP: &str = "198.51.100.240";

    #[test]
    fn a_live_node_on_the_subnet_is_a_candidate() {
        let nodes = [node("a")];
        let got = candidates(&IpDemand::cluster(ip(VIP)), &nodes, &BTreeMap::new());
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn a_node_whose_lease_is_not_live_is_not_a_candidate() {
        let mut dead = node("dead");
        dead.live = false;
        let nodes = [node("a"), dead];
        let got = candidates(&IpDemand::cluster(ip(VIP)), &nodes, &BTreeMap::new());
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn node_selector_must_match_every_label() {
        let mut both = node("both");
        both.labels = labels(&[("zone", "a"), ("lb", "yes")]);
        let mut one = node("one");
        one.labels = labels(&[("zone", "a"), ("lb", "no")]);
        let nodes = [both, one, node("none")];
        let sel = labels(&[("zone", "a"), ("lb", "yes")]);
        let got = candidates(&IpDemand::cluster(ip(VIP)), &nodes, &sel);
        assert_eq!(got, ["both"]);
    }

    #[test]
    fn the_exclusion_label_removes_a_node_whatever_its_value() {
        let mut excluded = node("excluded");
        excluded.labels = labels(&[(EXCLUDE_FROM_LB_LABEL, "")]);
        let nodes = [node("a"), excluded];
        let got = candidates(&IpDemand::cluster(ip(VIP)), &nodes, &BTreeMap::new());
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn a_node_without_a_subnet_holding_the_ip_is_not_a_candidate() {
        let mut elsewhere = node("elsewhere");
        elsewhere.subnets = vec![net("203.0.113.0/24")];
        let nodes = [node("a"), elsewhere];
        let got = candidates(&IpDemand::cluster(ip(VIP)), &nodes, &BTreeMap::new());
        assert_eq!(got, ["a"]);
        let v6 = candidates(
            &IpDemand::cluster(ip("2001:db8::10")),
            &nodes,
            &BTreeMap::new(),
        );
        assert_eq!(v6, ["a"]);
    }

    #[test]
    fn local_policy_restricts_candidates_to_nodes_with_ready_endpoints() {
        let nodes = [node("a"), node("b"), node("c")];
        let demand = IpDemand::local(ip(VIP), ["b", "not-a-node"]);
        assert_eq!(candidates(&demand, &nodes, &BTreeMap::new()), ["b"]);
        let none = IpDemand::local(ip(VIP), Vec::<String>::new());
        assert!(candidates(&none, &nodes, &BTreeMap::new()).is_empty());
        assert_eq!(elect(&none, &nodes, &BTreeMap::new()), None);
    }

    #[test]
    fn elect_picks_the_rendezvous_winner_among_candidates_only() {
        let mut nodes = vec![node("a"), node("b"), node("c"), node("d")];
        let demand = IpDemand::cluster(ip(VIP));
        let first = elect(&demand, &nodes, &BTreeMap::new())
            .expect("four candidates")
            .to_owned();
        for n in &mut nodes {
            if n.name == first {
                n.live = false;
            }
        }
        let second = elect(&demand, &nodes, &BTreeMap::new()).expect("three candidates");
        assert_ne!(second, first);
        let expected = rendezvous::winner(
            demand.ip,
            ["a", "b", "c", "d"].into_iter().filter(|n| *n != first),
        );
        assert_eq!(Some(second), expected);
    }
}
