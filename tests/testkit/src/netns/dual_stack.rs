//! IPv6 Service traffic on the LAN, next to [`Lan::add_ipv6`]: the stand-in pods listen on
//! each node's IPv6 address too, and the kube-proxy stand-in gets an `ip6` DNAT table, so
//! `curl -6` through an IPv6 Service IP reaches the node that answers Neighbor Discovery for it.

use std::net::{Ipv6Addr, SocketAddr};

use super::{cmd, node_ip6, serve, Lan};

impl Lan {
    /// After [`Lan::add_ipv6`]: starts each node's HTTP stand-in pod on `[node_ip6]:port` (it
    /// answers with the node's name, like the IPv4 one) and creates the nodes' `ip6 nat`
    /// table for [`Lan::add_vip6_dnat`].
    pub fn add_ipv6_backends(&self) {
        for (k, h) in self.nodes.iter().enumerate() {
            cmd::nft_script(
                &h.ns,
                "table ip6 nat {\n\
                   chain prerouting { type nat hook prerouting priority -100; policy accept; }\n\
                   chain output { type nat hook output priority -100; policy accept; }\n\
                 }\n",
            )
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
            let addr = SocketAddr::from((node_ip6(k + 1), self.http_port));
            let server = serve::http_name_server_at(&h.ns, addr, &h.name)
                .unwrap_or_else(|e| panic!("netns harness: IPv6 pod on {addr} in {}: {e}", h.ns));
            if let Ok(mut s) = self.servers.lock() {
                s.push(server);
            }
        }
    }

    /// Programs every node like kube-proxy would for an IPv6 LoadBalancer IP: TCP to
    /// `[vip]:port` is DNATed to the node's own IPv6 stand-in pod.
    pub fn add_vip6_dnat(&self, vip: Ipv6Addr, port: u16) {
        for (k, h) in self.nodes.iter().enumerate() {
            let to = format!("[{}]:{}", node_ip6(k + 1), self.http_port);
            let script = format!(
                "add rule ip6 nat prerouting ip6 daddr {vip} tcp dport {port} dnat to {to}\n\
                 add rule ip6 nat output ip6 daddr {vip} tcp dport {port} dnat to {to}\n"
            );
            cmd::nft_script(&h.ns, &script).unwrap_or_else(|e| panic!("netns harness: {e}"));
        }
    }
}
