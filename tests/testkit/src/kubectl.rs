//! The real `kubectl` as an independent judge of what a user sees, and the same `get svc`
//! table built from the API for machines without it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;

use crate::netns::cmd;

/// How long one kubectl call may take; its first start on a cold machine can be slow.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `kubectl --kubeconfig <kubeconfig> <args>` and returns its stdout, or why it failed
/// (kubectl missing, its stderr and exit status, or a timeout).
pub fn run(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    if !crate::on_path("kubectl") {
        return Err("kubectl is not installed".into());
    }
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    // The API server is on loopback; a proxy inherited from the shell would only get in the way.
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(v);
    }
    match cmd::output_within(&mut command, TIMEOUT) {
        Ok(o) if o.status.success() => Ok(o.stdout),
        Ok(o) => Err(format!("{} ({})", o.stderr.trim(), o.status)),
        Err(e) => Err(e.to_string()),
    }
}

/// The table `kubectl get svc` prints (NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S)), built
/// from `services`, so a machine without kubectl still shows a user the same thing.
pub fn service_table(services: Vec<Service>) -> String {
    let mut table = format!(
        "{:<12} {:<13} {:<15} {:<15} {}\n",
        "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"
    );
    for s in services {
        let spec = s.spec.unwrap_or_default();
        let external = s
            .status
            .and_then(|st| st.load_balancer?.ingress)
            .map(|i| {
                i.into_iter()
                    .filter_map(|x| x.ip)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| {
                if spec.type_.as_deref() == Some("LoadBalancer") {
                    "<pending>".into()
                } else {
                    "<none>".into()
                }
            });
        let ports = spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let node_port = p.node_port.map(|n| format!(":{n}")).unwrap_or_default();
                format!(
                    "{}{node_port}/{}",
                    p.port,
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        table.push_str(&format!(
            "{:<12} {:<13} {:<15} {:<15} {}\n",
            s.metadata.name.unwrap_or_default(),
            spec.type_.unwrap_or_else(|| "ClusterIP".into()),
            spec.cluster_ip.unwrap_or_else(|| "<none>".into()),
            external,
            ports
        ));
    }
    table
}
