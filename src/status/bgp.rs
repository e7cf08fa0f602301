//! Which nodes advertise each Service IP over BGP, as `ferrolb status` reports it: the same
//! pure planner every speaker runs, evaluated once per node with a live speaker. A node
//! advertises an IP when the planner gives the IP to at least one of the peers it dials.
//!
//! What a one-shot command cannot see is whether each session is up: that is the speaker's
//! `ferrolb_speaker_bgp_session_up` metric, which the docs point to.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::bgp::{peers_advertising, plan, NodeInfo};
use ferrolb_core::config::Config;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::speaker::bgp::view::service_infos;

/// For every IP some node advertises: the nodes doing so, in node-name order.
pub fn advertisers(
    config: &Config,
    live_nodes: &[&str],
    nodes: &[Arc<Node>],
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    lb_class: Option<&str>,
) -> BTreeMap<IpAddr, Vec<String>> {
    let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    if config.bgp.peers.is_empty() {
        return out;
    }
    let empty = BTreeMap::new();
    for &name in live_nodes {
        let labels = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&empty);
        let infos: Vec<_> = service_infos(services, slices, lb_class, name, config)
            .into_iter()
            .map(|(_, info)| info)
            .collect();
        let table = plan(config, NodeInfo { labels }, &infos);
        for ip in infos.iter().flat_map(|i| i.ips.iter()) {
            if !peers_advertising(&table, *ip).is_empty() {
                let by = out.entry(*ip).or_default();
                if !by.iter().any(|n| n == name) {
                    by.push(name.to_string());
                }
            }
        }
    }
    for by in out.values_mut() {
        by.sort();
    }
    out
}
