//! `ferrolb controller`: allocates IPs from the pools and writes Service status.
//!
//! Wiring only: the cluster client, the metrics server, leader election, the watches, and the
//! [`worker::Worker`] loop that drives the pure decision core, `ferrolb_core::reconcile`.

pub mod heartbeat_secret;
pub mod metrics;
pub mod service_view;
pub mod standby;
pub mod worker;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::cli::ControllerArgs;
use crate::http_server::{self, BindError, Readiness};
use crate::kube_client::{self, ClientError};
use crate::leader::{
    process_instance, replica_identity, LeaderElector, LeaderError, LeaseSettings,
};
use metrics::ControllerMetrics;
use worker::{Worker, WorkerError, WorkerSettings};
use writer::Writer;

/// Name of the controller's leader-election Lease.
pub const LEASE_NAME: &str = "ferrolb-controller";

/// Why the controller stopped with an error.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// No cluster to talk to.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The metrics address is taken.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Leadership was lost; the process exits so it restarts with a fresh state.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The allocation loop failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// Runs the controller until `shutdown` (then releases leadership) or a fatal error.
pub async fn run(args: ControllerArgs, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let settings = LeaseSettings {
        duration: args.leader_lease_duration,
        renew_deadline: args.leader_renew_deadline,
        retry_period: args.leader_retry_period,
    };
    // Checked before anything else, so a bad flag is a one-line error, not a split brain.
    if args.leader_elect {
        settings.validate()?;
    }
    let identity = replica_identity();
    let client = kube_client::connect(
        args.cluster.kubeconfig.as_deref(),
        "controller",
        &process_instance(&identity),
    )
    .await?;
    let mut registry = Registry::default();
    let metrics = ControllerMetrics::register(&mut registry);
    let ready = Readiness::default();
    let bound = http_server::serve(
        args.metrics_addr,
        Arc::new(registry),
        ready.clone(),
        shutdown.clone(),
    )
    .await?;
    tracing::info!(metrics = %bound, lb_class = ?args.lb_class, "controller starting");

    let events = Arc::new(crate::events::EventPublisher::new(
        client.clone(),
        "ferrolb-controller",
        identity.clone(),
    ));
    let writer = Writer::new(client.clone(), events.clone(), metrics.clone());
    let elector = args.leader_elect.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &args.cluster.namespace),
            LEASE_NAME,
            identity.clone(),
            settings,
        )
    });

    if let Some(elector) = &elector {
        // A standby replica is healthy and ready; it just does not allocate.
        ready.set(true);
        tracing::info!(%identity, lease = LEASE_NAME, "waiting for leadership");
        // Meanwhile, report whether the pool config is valid like the leader does.
        let standby_stop = shutdown.child_token();
        let standby = tokio::spawn(standby::report_config(
            client.clone(),
            args.cluster.namespace.clone(),
            args.cluster.config_map.clone(),
            metrics.clone(),
            standby_stop.clone(),
        ));
        let acquired = elector.acquire(&shutdown).await;
        standby_stop.cancel();
        let _ = standby.await;
        match acquired {
            Ok(()) => {}
            Err(LeaderError::Cancelled { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(%identity, "became leader");
    }
    metrics.leader.set(1);

    let (reader, store_writer) = reflector::store::<Service>();
    let services = reflector(
        store_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .backoff(crate::watch_backoff::WatchBackoff::default());
    let config_watch =
        watcher::Config::default().fields(&format!("metadata.name={}", args.cluster.config_map));
    let config = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), &args.cluster.namespace),
        config_watch,
    )
    .backoff(crate::watch_backoff::WatchBackoff::default());
    let worker = Worker::new(
        WorkerSettings {
            lb_class: args.lb_class.clone(),
            namespace: args.cluster.namespace.clone(),
            config_map: args.cluster.config_map.clone(),
        },
        reader,
        writer,
        metrics.clone(),
    );
    let work_stop = shutdown.child_token();
    // Only the leader keeps the speakers' heartbeat Secret, so replicas never race to create it.
    let heartbeat_secret = tokio::spawn(
        heartbeat_secret::HeartbeatSecret::new(client.clone(), &args.cluster.namespace, events)
            .run(work_stop.clone()),
    );
    let worker_ready = ready.clone();
    let work = worker.run(
        services.boxed(),
        config.boxed(),
        work_stop.clone(),
        move || worker_ready.set(true),
    );

    let result = match &elector {
        None => work.await.map_err(ControllerError::from),
        Some(elector) => {
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r.map_err(ControllerError::from),
                lost = elector.hold(&shutdown) => {
                    // Stop allocating before anything else: another replica may lead soon.
                    work_stop.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
                    match lost {
                        LeaderError::Cancelled { .. } => Ok(()),
                        e => Err(e.into()),
                    }
                }
            }
        }
    };
    work_stop.cancel();
    let _ = heartbeat_secret.await;
    metrics.leader.set(0);
    if let Some(elector) = &elector {
        match elector.release().await {
            Ok(()) => tracing::info!("released leadership"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release the leader lease; it will expire")
            }
        }
    }
    result
}
