//! The speaker's Prometheus metrics (prefixed `ferrolb_speaker_`; see docs/operations.md).
//! Per-IP counters answer "is anyone asking for my IP, and are we answering?".

use std::net::{IpAddr, Ipv4Addr};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-IP counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpLabels {
    /// The IP.
    pub ip: String,
}

/// Labels of the announcing gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnounceLabels {
    /// `namespace/name` of the Service.
    pub service: String,
    /// The IP.
    pub ip: String,
    /// The interface it is announced on.
    pub interface: String,
}

/// Labels of per-address-family counters (`ipv4` answered with ARP, `ipv6` with NDP).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabels {
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
}

impl FamilyLabels {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        FamilyLabels {
            family: if ip.is_ipv4() { "ipv4" } else { "ipv6" },
        }
    }
}

/// Labels of per-interface counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InterfaceLabels {
    /// The interface name.
    pub interface: String,
}

/// Every metric the speaker exports.
#[derive(Clone)]
pub struct SpeakerMetrics {
    /// ARP requests seen for IPs this node announces.
    pub arp_requests: Family<IpLabels, Counter>,
    /// ARP replies sent.
    pub arp_replies: Family<IpLabels, Counter>,
    /// Gratuitous ARP sends (each is one request plus one reply).
    pub garp_sent: Family<IpLabels, Counter>,
    /// 1 per (Service, IP) this node announces.
    pub announcing: Family<AnnounceLabels, Gauge>,
    /// IPs this node took over, per family.
    pub takeovers: Family<FamilyLabels, Counter>,
    /// IPs this node gave up, per family.
    pub withdrawals: Family<FamilyLabels, Counter>,
    /// Lease renewals that failed.
    pub lease_renew_failures: Counter,
    /// Claims by other MACs on IPs this node announces.
    pub conflicts: Family<IpLabels, Counter>,
    /// 1 while this speaker is API-degraded (holding its IPs, taking over none).
    pub degraded: Gauge,
    /// Claims by hosts that are not speakers on IPs this node was elected for: the IP is in
    /// use elsewhere on the LAN, so this node does not announce it.
    pub foreign_claims: Family<IpLabels, Counter>,
    /// ARP frames the kernel dropped before the speaker read them (its reader fell behind).
    pub arp_receive_dropped: Family<InterfaceLabels, Counter>,
}

impl SpeakerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            arp_requests: Family::default(),
            arp_replies: Family::default(),
            garp_sent: Family::default(),
            announcing: Family::default(),
            takeovers: Family::default(),
            withdrawals: Family::default(),
            lease_renew_failures: Counter::default(),
            conflicts: Family::default(),
            degraded: Gauge::default(),
            foreign_claims: Family::default(),
            arp_receive_dropped: Family::default(),
        };
        // Both families' series exist from the start, so the counters are exported (and
        // dashboards' rates defined) before the first takeover, as unlabelled counters were.
        for family in ["ipv4", "ipv6"] {
            let labels = FamilyLabels { family };
            let _ = m.takeovers.get_or_create(&labels);
            let _ = m.withdrawals.get_or_create(&labels);
        }
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        r.register(
            "arp_requests",
            "ARP requests seen for IPs this node announces",
            m.arp_requests.clone(),
        );
        r.register(
            "arp_replies",
            "ARP replies sent for IPs this node announces",
            m.arp_replies.clone(),
        );
        r.register(
            "gratuitous_arp",
            "Gratuitous ARP sends (one request plus one reply each)",
            m.garp_sent.clone(),
        );
        r.register(
            "announcing",
            "1 for each Service and IP this node announces",
            m.announcing.clone(),
        );
        r.register(
            "takeovers",
            "IPs this node started announcing (failovers and new IPs)",
            m.takeovers.clone(),
        );
        r.register(
            "withdrawals",
            "IPs this node stopped announcing",
            m.withdrawals.clone(),
        );
        r.register(
            "lease_renew_failures",
            "Failed renewals of this node's speaker lease",
            m.lease_renew_failures.clone(),
        );
        r.register(
            "conflicts",
            "Claims by other MACs on IPs this node announces",
            m.conflicts.clone(),
        );
        r.register(
            "degraded",
            "1 while the speaker cannot reach the API server and holds its IPs",
            m.degraded.clone(),
        );
        r.register(
            "foreign_claims",
            "Claims by non-speaker hosts on IPs this node was elected for",
            m.foreign_claims.clone(),
        );
        r.register(
            "arp_receive_dropped",
            "ARP frames dropped by the kernel because the speaker read them too slowly",
            m.arp_receive_dropped.clone(),
        );
        m
    }

    fn ip(ip: Ipv4Addr) -> IpLabels {
        IpLabels { ip: ip.to_string() }
    }

    /// Counts a request for `ip`.
    pub fn arp_request(&self, ip: Ipv4Addr) {
        self.arp_requests.get_or_create(&Self::ip(ip)).inc();
    }

    /// Counts a reply for `ip`.
    pub fn arp_reply(&self, ip: Ipv4Addr) {
        self.arp_replies.get_or_create(&Self::ip(ip)).inc();
    }

    /// Counts a gratuitous send for `ip`.
    pub fn garp_sent(&self, ip: Ipv4Addr) {
        self.garp_sent.get_or_create(&Self::ip(ip)).inc();
    }

    /// Counts a conflicting claim on `ip`.
    pub fn conflict(&self, ip: Ipv4Addr) {
        self.conflicts.get_or_create(&Self::ip(ip)).inc();
    }

    /// Counts `n` ARP frames the kernel dropped on `interface`.
    pub fn arp_receive_dropped(&self, interface: &str, n: u32) {
        self.arp_receive_dropped
            .get_or_create(&InterfaceLabels {
                interface: interface.to_string(),
            })
            .inc_by(u64::from(n));
    }
}
