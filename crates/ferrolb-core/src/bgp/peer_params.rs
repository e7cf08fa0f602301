//! A configured peer's session settings, as the speaker derives them from the config: which
//! BGP identifier to present and the per-(node, peer) seed for the reconnect jitter.

use std::net::Ipv4Addr;

use super::session::SessionParams;
use crate::config::{BgpConfig, BgpPeer};

/// The BGP identifier this node presents to `peer`: the peer's own `router-id` (MetalLB
/// legacy), else `bgp.routerID`, else `fallback` (the node's IPv4 source address toward the
/// peer, as design.md says).
pub fn router_id(config: &BgpConfig, peer: &BgpPeer, fallback: Ipv4Addr) -> Ipv4Addr {
    peer.router_id.or(config.router_id).unwrap_or(fallback)
}

/// The session settings for `peer` from node `node`. The jitter seed differs per node and
/// peer, so a fleet of speakers does not reconnect in lockstep after a router restart.
pub fn session_params(peer: &BgpPeer, router_id: Ipv4Addr, node: &str) -> SessionParams {
    let mut params = SessionParams::new(peer.my_asn, peer.asn, router_id, peer.hold_time);
    params.keepalive = peer.keepalive_time;
    params.seed = seed(node, &peer.name);
    params
}

/// FNV-1a over (node, 0xFF, peer): stable across restarts and versions, no randomness needed.
fn seed(node: &str, peer: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xFF]).chain(peer.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config_map_data, NATIVE_KEY};
    use std::time::Duration;

    fn config(yaml: &str) -> crate::config::Config {
        let data = [(NATIVE_KEY.to_string(), yaml.to_string())].into();
        parse_config_map_data(&data).unwrap().config
    }

    #[test]
    fn router_id_prefers_peer_then_global_then_fallback() {
        let c = config(
            "pools: []\nbgp: {myASN: 4200000000, routerID: 192.0.2.250, peers: [{name: r, address: 192.0.2.1, asn: 64513, holdTime: 3s, keepaliveTime: 1s}]}\n",
        );
        let fallback: Ipv4Addr = "198.51.100.11".parse().unwrap();
        let peer = &c.bgp.peers[0];
        assert_eq!(
            router_id(&c.bgp, peer, fallback),
            "192.0.2.250".parse::<Ipv4Addr>().unwrap()
        );
        let mut own = peer.clone();
        own.router_id = Some("192.0.2.9".parse().unwrap());
        assert_eq!(
            router_id(&c.bgp, &own, fallback),
            "192.0.2.9".parse::<Ipv4Addr>().unwrap()
        );
        let mut none = c.bgp.clone();
        none.router_id = None;
        assert_eq!(router_id(&none, peer, fallback), fallback);

        let p = session_params(peer, fallback, "node-1");
        assert_eq!((p.local_asn, p.peer_asn), (4_200_000_000, 64513));
        assert_eq!(p.hold_time, Duration::from_secs(3));
        assert_eq!(p.keepalive, Some(Duration::from_secs(1)));
        assert_ne!(p.seed, session_params(peer, fallback, "node-2").seed);
        assert_eq!(p.seed, session_params(peer, fallback, "node-1").seed);
    }
}
