//! Connecting to the cluster the way the design promises: `--kubeconfig`, then `$KUBECONFIG`,
//! then the in-cluster service account, then `~/.kube/config`; a missing cluster is one line.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use thiserror::Error;

/// Why no client could be built.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A kubeconfig was named or found but could not be used.
    #[error("cannot use kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// Running in a pod, but the service-account config is broken.
    #[error("cannot use the in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    /// Nothing to connect to.
    #[error("no cluster to talk to: pass --kubeconfig, set $KUBECONFIG, run in a pod, or create ~/.kube/config")]
    NoCluster,
    /// The configuration was read but the client could not be built from it.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

async fn from_file(path: &Path) -> Result<kube::Config, ClientError> {
    let wrap = |source| ClientError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kc = Kubeconfig::read_from(path).map_err(wrap)?;
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(wrap)
}

/// Builds a client from the first configuration source that exists. Requests carry the
/// User-Agent `ferrolb-<component>/<version> (<identity>)`, so API audit logs (and kube-sim's
/// request log) show which component and which replica made them.
pub async fn connect(
    kubeconfig: Option<&Path>,
    component: &str,
    identity: &str,
) -> Result<kube::Client, ClientError> {
    let config = if let Some(path) = kubeconfig {
        from_file(path).await?
    } else if let Some(path) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        // $KUBECONFIG may list several files; the first is the one we read.
        let first = std::env::split_paths(&path).next().unwrap_or_default();
        from_file(&first).await?
    } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        kube::Config::incluster()?
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or(ClientError::NoCluster)?;
        let path = home.join(".kube").join("config");
        if !path.exists() {
            return Err(ClientError::NoCluster);
        }
        from_file(&path).await?
    };
    let mut config = config;
    let agent = format!(
        "ferrolb-{component}/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    if let Ok(value) = http::HeaderValue::from_str(&agent) {
        config.headers.push((http::header::USER_AGENT, value));
    }
    Ok(kube::Client::try_from(config)?)
}
