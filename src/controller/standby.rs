//! What a standby replica does while it waits for leadership: it judges the pool ConfigMap
//! exactly as the leader does and reports `ferrolb_config_valid` and a log line, so a bad
//! config is visible whichever replica a person looks at.
//!
//! Events are left to the leader. Each replica publishes as its own `reportingInstance`, so
//! the API server would not fold a standby's `ConfigInvalid` into the leader's: every config
//! version would get one Event per replica, and a standby's Event would describe a config it
//! does not apply. The leader is the one replica whose config is in force, so its Event is the
//! one that says what happened.

use ferrolb_core::config::Config;
use ferrolb_core::reconcile::{judge_config, ConfigVerdict};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::metrics::ControllerMetrics;
use super::worker::log_verdict;

/// Watches ConfigMap `namespace/name` until `stop`, keeping `ferrolb_config_valid` current.
pub async fn report_config(
    client: Client,
    namespace: String,
    name: String,
    metrics: ControllerMetrics,
    stop: CancellationToken,
) {
    let selector = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(Api::<ConfigMap>::namespaced(client, &namespace), selector)
        .backoff(crate::watch_backoff::WatchBackoff::default())
        .boxed();
    let label = format!("{namespace}/{name}");
    // The last valid config seen, as the leader would have it in force.
    let mut current: Option<Config> = None;
    loop {
        let cm = tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.next() => match ev {
                None => return,
                Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => Some(cm),
                Some(Ok(watcher::Event::Delete(_))) => None,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "ConfigMap watch failed; retrying");
                    continue;
                }
            },
        };
        let data = cm.map(|c| c.data.unwrap_or_default());
        let verdict = judge_config(current.as_ref(), data.as_ref());
        metrics.config_valid.set(i64::from(verdict.valid()));
        log_verdict(&label, &verdict, true);
        match verdict {
            ConfigVerdict::Missing => current = Some(Config::default()),
            ConfigVerdict::Load { config, .. } => current = Some(*config),
            ConfigVerdict::Unchanged | ConfigVerdict::Reject { .. } => {}
        }
    }
}
