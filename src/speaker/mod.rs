//! `ferrolb speaker`: the per-node agent. It keeps its own lease alive, watches peers' leases,
//! Services, EndpointSlices, Nodes and the pool ConfigMap, asks the pure
//! [`Announcer`](ferrolb_core::election::Announcer) which IPs this node must announce, and
//! answers ARP (IPv4) or Neighbor Discovery (IPv6) for exactly those on the interface whose
//! subnet holds each IP.
//!
//! Three parts, as MetalLB splits its speaker:
//!
//! * **wiring** (this module): watches, streams, the lease task, the interface monitor, the ARP
//!   ports, and the loop that routes each observation to the decision;
//! * **decision** ([`decision`]): the pure announcer plus the cluster view it is fed from;
//! * **execution** ([`executor`]): one state per won IP, carried out on the wire per address
//!   family ([`family`]), GARP schedules, metrics and Events.
//!
//! One task runs the loop; ARP is answered by per-interface threads from a shared table, so
//! neither a slow API server nor a busy loop delays a reply.

pub mod arp_io;
pub mod arp_socket;
pub mod bgp;
pub mod bpf;
pub mod cluster_view;
pub mod decision;
pub mod executor;
pub mod family;
pub mod heartbeat;
pub mod interfaces;
pub mod lease;
pub mod metrics;
pub mod ndp_io;
pub mod ndp_socket;
pub mod raw_port;
pub mod reasons;
pub mod watch_retry;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::arp::MacAddr;
use ferrolb_core::config::{parse_config_map_data, Config};
use ferrolb_core::election::{lease_name, AnnouncerParams, Claimant, Health, LEASE_PREFIX};
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cli::SpeakerArgs;
use crate::http_server::{self, BindError, Readiness};
use crate::kube_client::{self, ClientError};
use arp_io::{ArpIo, Claim};
use decision::{Caches, Decision};
use executor::{Executor, Stage};
use family::Families;
use heartbeat::HeartbeatLink;
use interfaces::{InterfaceError, Interfaces};
use lease::RenewResult;
use metrics::SpeakerMetrics;
use ndp_io::{NdpClaim, NdpIo, NdpMetrics};
use watch_retry::{with_retry, ApiBack};

/// How often the announcement is recomputed even without news: peers' leases expire with time.
const TICK: Duration = Duration::from_millis(100);

/// Why the speaker stopped with an error.
#[derive(Debug, Error)]
pub enum SpeakerError {
    /// No cluster to talk to.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The metrics address is taken.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Interfaces cannot be listed.
    #[error(transparent)]
    Interfaces(#[from] InterfaceError),
    /// A watch stream ended, which kube-runtime watchers never do on their own.
    #[error("the {0} watch stream ended unexpectedly")]
    StreamEnded(&'static str),
}

type WatchItem<K> = Result<watcher::Event<K>, watcher::Error>;

/// The wiring's own state: what it hands to the decision and the executor, and the outputs it
/// keeps in step (ports, the lease annotations, readiness, metrics).
struct Speaker {
    config_map: String,
    decision: Decision,
    executor: Executor,
    arp: Arc<ArpIo>,
    ndp: Arc<NdpIo>,
    published_tx: watch::Sender<BTreeMap<String, String>>,
    metrics: SpeakerMetrics,
    ready: Readiness,
    bgp: bgp::BgpManager,
    heartbeat: HeartbeatLink,
}

impl Speaker {
    /// Merges `entries` into the annotations our lease publishes (renewing at once on change).
    fn publish(&self, entries: BTreeMap<String, String>) {
        self.published_tx.send_if_modified(|cur| {
            let mut changed = false;
            for (k, v) in entries {
                if cur.get(&k) != Some(&v) {
                    cur.insert(k, v);
                    changed = true;
                }
            }
            changed
        });
    }

    /// Decide at now and carry the result out.
    fn reconcile(&mut self) {
        let (actions, _) = self.decision.reconcile();
        self.executor.execute(actions, &self.decision.world());
        let published = self.heartbeat.sync(&mut self.decision);
        self.publish(published);
        let health = self.decision.health();
        self.ready.set(health == Health::Healthy);
        self.metrics
            .degraded
            .set(i64::from(health == Health::Degraded));
        self.bgp.reconcile(health, self.decision.ifaces());
    }

    fn claim(&mut self, ip: IpAddr, mac: MacAddr) {
        let actions = self.decision.claim(ip, mac);
        self.executor.execute(actions, &self.decision.world());
    }

    fn ndp_claim(&mut self, claim: NdpClaim) {
        let ip = IpAddr::V6(claim.ip);
        let announcing = self
            .executor
            .entry(ip)
            .is_some_and(|e| e.stage == Stage::Announcing);
        match family::ndp_claim_for_announcer(&claim, announcing) {
            Some((ip, mac)) => self.claim(ip, mac),
            None => {
                tracing::warn!(%ip, mac = %claim.mac, "another host probed for an IP this node announces (duplicate address detection); defended it");
                if self.decision.claimant(claim.mac) == Claimant::Foreign {
                    self.executor
                        .probed_by_other_host(ip, claim.mac, &self.decision.world());
                }
            }
        }
    }

    fn refresh_demands(&mut self) {
        self.bgp.mark_dirty();
        self.decision.refresh_demands();
        self.executor.sync_all_labels(&self.decision.world());
    }

    /// Opens ARP ports on the eligible interfaces (NDP ports on those with IPv6 subnets) and
    /// publishes their subnets and MACs on our lease.
    fn sync_interfaces(&mut self) {
        let l2 = self.decision.l2();
        let wanted: Vec<(u32, String, MacAddr)> = self
            .decision
            .ifaces()
            .eligible(l2)
            .filter_map(|i| Some((i.index, i.name.clone(), i.mac?)))
            .collect();
        self.arp.sync_ports(&wanted);
        let wanted6: Vec<(u32, String, MacAddr)> = self
            .decision
            .ifaces()
            .ipv6_capable(l2)
            .filter_map(|i| Some((i.index, i.name.clone(), i.mac?)))
            .collect();
        self.ndp.sync_ports(&wanted6);
        let mut port_macs = self.arp.port_macs();
        port_macs.extend(self.ndp.port_macs());
        port_macs.sort();
        port_macs.dedup();
        let macs: Vec<String> = port_macs.iter().map(ToString::to_string).collect();
        let published: BTreeMap<String, String> = [
            (
                cluster_view::SUBNETS_ANNOTATION.to_string(),
                interfaces::subnets_annotation(&self.decision.ifaces().subnets(l2)),
            ),
            (cluster_view::MACS_ANNOTATION.to_string(), macs.join(",")),
        ]
        .into();
        self.decision.set_own_macs(port_macs);
        let l2 = self.decision.l2();
        let addrs: Vec<ipnetwork::IpNetwork> = self
            .decision
            .ifaces()
            .eligible(l2)
            .flat_map(|i| i.addresses.iter().copied())
            .collect();
        self.heartbeat.set_addresses(addrs);
        self.publish(published);
    }

    fn on_interfaces(&mut self, ifaces: Interfaces) {
        self.decision.set_interfaces(ifaces);
        tracing::info!(subnets = %interfaces::subnets_annotation(&self.decision.ifaces().subnets(self.decision.l2())), "interfaces changed");
        self.sync_interfaces();
    }

    fn on_config(&mut self, cm: Option<&ConfigMap>) {
        let config = match cm {
            None => Config::default(),
            Some(cm) => match parse_config_map_data(&cm.data.clone().unwrap_or_default()) {
                Ok(parsed) => parsed.config,
                Err(errors) => {
                    tracing::error!(configmap = %self.config_map, errors = %errors, "pool config rejected; the last good config stays in force");
                    return;
                }
            },
        };
        self.bgp.set_config(&config);
        if self.decision.set_pools(&config) {
            self.executor.sync_all_labels(&self.decision.world());
        }
        let l2 = config.l2;
        let garp = l2.garp.params();
        tracing::debug!(interfaces = ?l2.interfaces, ?garp, "l2 config seen");
        if self.decision.set_l2(l2) {
            tracing::info!(?garp, "loaded l2 config");
            self.executor.set_garp(garp);
            self.sync_interfaces();
        }
    }

    fn graceful_stop(&mut self) {
        // Stop answering first, then (the caller) release the lease: peers must never see us
        // gone while we still answer.
        self.decision.shutdown();
        self.executor.shutdown();
        self.ready.set(false);
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn watched<K>(
    api: Api<K>,
    config: watcher::Config,
    api_back: &ApiBack,
) -> (Store<K>, impl Stream<Item = WatchItem<K>>)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store::<K>();
    (
        reader,
        with_retry(
            reflector::reflector(writer, watcher(api, config)).boxed(),
            api_back,
        ),
    )
}

/// Runs the speaker until `shutdown`, then stops answering and releases its lease.
pub async fn run(args: SpeakerArgs, shutdown: CancellationToken) -> Result<(), SpeakerError> {
    let node = args.node_name.clone();
    let client = kube_client::connect(args.cluster.kubeconfig.as_deref(), "speaker", &node).await?;
    let mut registry = Registry::default();
    let metrics = SpeakerMetrics::register(&mut registry);
    let bgp_metrics = bgp::BgpMetrics::register(&mut registry);
    let ndp_metrics = NdpMetrics::register(&mut registry);
    let hb_metrics = heartbeat::metrics::HeartbeatMetrics::register(&mut registry);
    let ready = Readiness::default();
    let bound = http_server::serve(
        args.metrics_addr,
        Arc::new(registry),
        ready.clone(),
        shutdown.clone(),
    )
    .await?;
    tracing::info!(%node, metrics = %bound, lease_duration = ?args.lease_duration, lease_renew = ?args.lease_renew, "speaker starting");

    let mut iface_rx = interfaces::monitor(shutdown.clone()).await?;
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<Claim>();
    let arp = Arc::new(ArpIo::new(claims_tx, metrics.clone()));
    let (ndp_claims_tx, mut ndp_claims_rx) = mpsc::unbounded_channel::<NdpClaim>();
    let ndp = Arc::new(NdpIo::new(ndp_claims_tx, ndp_metrics));
    let ns = args.cluster.namespace.clone();
    let api_back = ApiBack::new();
    let (services, svc_events) = watched(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &api_back,
    );
    let (slices, slice_events) = watched(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        &api_back,
    );
    let (nodes, node_events) = watched(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &api_back,
    );
    let (leases, lease_events) = watched(
        Api::<Lease>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
        &api_back,
    );
    let cm_config =
        watcher::Config::default().fields(&format!("metadata.name={}", args.cluster.config_map));
    let mut cm_events = with_retry(
        watcher(Api::<ConfigMap>::namespaced(client.clone(), &ns), cm_config).boxed(),
        &api_back,
    )
    .boxed();
    let (mut svc_events, mut slice_events, mut node_events, mut lease_events) = (
        svc_events.boxed(),
        slice_events.boxed(),
        node_events.boxed(),
        lease_events.boxed(),
    );

    let (published_tx, published_rx) = watch::channel(BTreeMap::new());
    let (renew_tx, mut renew_rx) = mpsc::unbounded_channel::<RenewResult>();
    let events = Arc::new(crate::events::EventPublisher::new(
        client.clone(),
        "ferrolb-speaker",
        node.clone(),
    ));
    let bgp = bgp::BgpManager::new(
        node.clone(),
        args.lb_class.clone(),
        bgp::BgpCaches {
            services: services.clone(),
            slices: slices.clone(),
            nodes: nodes.clone(),
        },
        Api::namespaced(client.clone(), &ns),
        ns.clone(),
        events.clone(),
        bgp_metrics,
    );
    let fast = ferrolb_core::heartbeat::LeaseTiming {
        renew: args.lease_renew,
        duration: args.lease_duration,
    };
    let (hb_link, lease_timing, mut heartbeats_rx) = HeartbeatLink::start(
        &node,
        args.heartbeat_port,
        fast,
        Api::<Secret>::namespaced(client.clone(), &ns),
        &ns,
        hb_metrics,
        &shutdown,
    );
    let families = Families {
        v4: arp.clone(),
        v6: Some(ndp.clone()),
    };
    let mut sp = Speaker {
        config_map: format!("{ns}/{}", args.cluster.config_map),
        executor: Executor::new(
            node.clone(),
            families,
            metrics.clone(),
            events,
            services.clone(),
        ),
        decision: Decision::new(
            AnnouncerParams::new(node.clone(), args.lease_duration),
            args.lb_class.clone(),
            iface_rx.borrow_and_update().clone(),
            Caches {
                services,
                slices,
                nodes,
                leases,
            },
        ),
        arp,
        ndp,
        published_tx,
        metrics,
        ready,
        bgp,
        heartbeat: hb_link,
    };
    sp.sync_interfaces();
    let lease_task = lease::start(
        Api::<Lease>::namespaced(client.clone(), &ns),
        &node,
        fast,
        lease_timing,
        published_rx,
        renew_tx,
        shutdown.clone(),
    );
    let mut renew_failing = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = loop {
        tokio::select! {
            // Shutdown first: other streams end during shutdown too, and that is not an error.
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            _ = tick.tick() => {}
            changed = iface_rx.changed() => {
                if changed.is_err() {
                    break Err(SpeakerError::StreamEnded("interface"));
                }
                let ifaces = iface_rx.borrow_and_update().clone();
                sp.on_interfaces(ifaces);
            }
            Some(r) = renew_rx.recv() => {
                match &r {
                    RenewResult::Failed(why) => {
                        sp.metrics.lease_renew_failures.inc();
                        tracing::warn!(lease = %lease_name(&node), error = %why, "lease renewal failed");
                        renew_failing = true;
                    }
                    RenewResult::Ok(_) if renew_failing => {
                        // The API answers again: the watches need not wait out their backoff.
                        renew_failing = false;
                        api_back.notify();
                    }
                    RenewResult::Ok(_) => {}
                }
                sp.heartbeat.renewed(matches!(r, RenewResult::Ok(_)));
                sp.decision.renewed(&r);
            }
            Some(claim) = claims_rx.recv() => {
                sp.claim(IpAddr::V4(claim.ip), claim.mac);
                continue;
            }
            Some(claim) = ndp_claims_rx.recv() => {
                sp.ndp_claim(claim);
                continue;
            }
            _ = sleep_until(sp.decision.next_wakeup()) => {}
            Some(hb) = heartbeats_rx.recv() => {
                // A routine heartbeat only pushes a deadline on: no reconcile needed.
                if !sp.decision.heartbeat_heard(&hb) {
                    continue;
                }
            }
            _ = sleep_until(sp.heartbeat.next_deadline(&sp.decision)) => {}
            ev = lease_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Lease")),
                Some(Ok(ev)) => {
                    let ours = match &ev {
                        watcher::Event::Apply(l) | watcher::Event::InitApply(l) | watcher::Event::Delete(l) => {
                            l.metadata.name.as_deref().is_some_and(|n| n.starts_with(LEASE_PREFIX))
                        }
                        _ => true,
                    };
                    if ours {
                        sp.decision.lease_event(&ev);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "lease watch failed; retrying");
                    sp.decision.lease_watch_failed();
                }
            },
            ev = svc_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Service")),
                Some(Ok(_)) => sp.refresh_demands(),
                Some(Err(e)) => tracing::warn!(error = %e, "Service watch failed; retrying"),
            },
            ev = slice_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("EndpointSlice")),
                Some(Ok(_)) => sp.refresh_demands(),
                Some(Err(e)) => tracing::warn!(error = %e, "EndpointSlice watch failed; retrying"),
            },
            ev = node_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Node")),
                Some(Ok(_)) => {
                    sp.bgp.mark_dirty();
                    sp.decision.refresh_peers();
                }
                Some(Err(e)) => tracing::warn!(error = %e, "Node watch failed; retrying"),
            },
            ev = cm_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("ConfigMap")),
                Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => sp.on_config(Some(&cm)),
                Some(Ok(watcher::Event::Delete(_))) => sp.on_config(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "ConfigMap watch failed; retrying"),
            },
        }
        sp.reconcile();
    };
    sp.graceful_stop();
    sp.bgp.shutdown().await;
    lease_task.release(Duration::from_secs(2)).await;
    match result {
        Err(SpeakerError::StreamEnded(_)) if shutdown.is_cancelled() => Ok(()),
        other => other,
    }
}
