//! The controller's Prometheus metrics (all prefixed `ferrolb_`; see docs/operations.md).

use std::sync::atomic::AtomicU64;

use ferrolb_core::alloc::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-pool, per-family metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Labels of failure counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Short reason (`pool_exhausted`, `no_matching_pool`, `ip_in_use`, `bad_annotation`, ...).
    pub reason: String,
}

/// Labels of API write counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// What was written: `status`, `annotation` or `event`.
    pub kind: String,
}

/// Every metric the controller exports.
#[derive(Clone)]
pub struct ControllerMetrics {
    /// Addresses a pool can hand out, per family.
    pub addresses_total: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses in use, per pool and family.
    pub addresses_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Successful (new) allocations.
    pub allocations: Counter,
    /// Failed allocations by reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// 1 when the last config seen was valid, 0 when it was rejected.
    pub config_valid: Gauge,
    /// Addresses held outside every pool after config changes.
    pub ips_outside_pools: Gauge,
    /// Duplicate addresses found when replaying existing Services.
    pub ip_conflicts: Counter,
    /// Time to decide one Service.
    pub reconcile_duration: Histogram,
    /// 1 while this replica is the leader.
    pub leader: Gauge,
    /// Writes to the API server, by kind.
    pub api_writes: Family<WriteLabels, Counter>,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them under `ferrolb_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            addresses_total: Family::default(),
            addresses_in_use: Family::default(),
            allocations: Counter::default(),
            allocation_failures: Family::default(),
            config_valid: Gauge::default(),
            ips_outside_pools: Gauge::default(),
            ip_conflicts: Counter::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.000_01, 4.0, 10)),
            leader: Gauge::default(),
            api_writes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("ferrolb");
        r.register(
            "allocator_addresses",
            "Addresses a pool can hand out, per family",
            m.addresses_total.clone(),
        );
        r.register(
            "allocator_addresses_in_use",
            "Addresses in use, per pool and family",
            m.addresses_in_use.clone(),
        );
        r.register("allocations", "IP allocations made", m.allocations.clone());
        r.register(
            "allocation_failures",
            "Failed IP allocations, by reason",
            m.allocation_failures.clone(),
        );
        r.register(
            "config_valid",
            "1 if the last pool config seen was valid, 0 if it was rejected",
            m.config_valid.clone(),
        );
        r.register(
            "ips_outside_pools",
            "Addresses kept although they are outside every pool",
            m.ips_outside_pools.clone(),
        );
        r.register(
            "ip_conflicts",
            "Duplicate addresses found when replaying existing Services",
            m.ip_conflicts.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time to decide one Service",
            m.reconcile_duration.clone(),
        );
        r.register(
            "leader",
            "1 while this controller replica is the leader",
            m.leader.clone(),
        );
        r.register(
            "api_writes",
            "Writes to the API server, by kind",
            m.api_writes.clone(),
        );
        m
    }

    /// Publishes the allocator's per-pool figures.
    pub fn set_pool_stats(&self, stats: &[PoolStats], outside_pools: usize) {
        self.addresses_total.clear();
        self.addresses_in_use.clear();
        for s in stats {
            let labels = PoolLabels {
                pool: s.pool.clone(),
                family: match s.family {
                    ferrolb_core::addr::Family::V4 => "ipv4".into(),
                    ferrolb_core::addr::Family::V6 => "ipv6".into(),
                },
            };
            // f64 holds a /64's 2^64 exactly and a /48's approximately, which is what a gauge needs.
            self.addresses_total
                .get_or_create(&labels)
                .set(s.total as f64);
            self.addresses_in_use
                .get_or_create(&labels)
                .set(s.in_use as f64);
        }
        self.ips_outside_pools
            .set(i64::try_from(outside_pools).unwrap_or(i64::MAX));
    }

    /// Counts one failed allocation.
    pub fn failed(&self, reason: &str) {
        self.allocation_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one API write.
    pub fn wrote(&self, kind: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
            })
            .inc();
    }
}
