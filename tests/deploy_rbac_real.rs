//! RBAC for real: the controller runs as `deploy/`'s ServiceAccount, with the roles `deploy/`
//! grants it, against the real kube-apiserver, whose RBAC authorizer judges every request.
//! Its token comes from the real TokenRequest API. The scenario covers what the controller
//! does in a cluster: leader election (Lease create/get/update), reading the pool ConfigMap,
//! watching Services, writing the annotation and `services/status`, and publishing Events.
//! The server's audit log must show no request of the controller's refused.
//!
//! `tests/deploy_rbac.rs` proves the converse against kube-sim (every granted rule is used).
//! Runs when `FERROLB_API` selects the real server (`real` or `both`); needs `kubectl`, which
//! applies the manifests exactly as a user would.

mod common;

use std::process::Command;

use common::*;
use ferrolb_testkit::TestApi;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::json;

const LAN: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.11\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn controller_works_with_exactly_the_deploy_roles_on_a_real_server() {
    const TEST: &str = "controller_works_with_exactly_the_deploy_roles_on_a_real_server";
    if !ferrolb_testkit::selected_backends().contains(&ApiBackend::Real) {
        eprintln!("{TEST}: not run, FERROLB_API does not select the real API server");
        return;
    }
    if ferrolb_testkit::require(TEST, &[("kubectl", "kubernetes-client")]).is_err() {
        return;
    }
    let c = Cluster::start_on(ApiBackend::Real).await;
    let TestApi::Real(real) = &c.api else {
        unreachable!("started on the real backend")
    };
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.kubeconfig_path())
        .args(["apply", "-f"])
        .arg(repo.join("deploy/namespace.yaml"))
        .arg("-f")
        .arg(repo.join("deploy/controller-rbac.yaml"))
        .output()
        .expect("run kubectl apply");
    assert!(
        out.status.success(),
        "kubectl apply of deploy/ RBAC failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), NS);
    let req: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("token request json");
    let token = sas
        .create_token_request("ferrolb-controller", &PostParams::default(), &req)
        .await
        .expect("TokenRequest for ferrolb-system/ferrolb-controller")
        .status
        .expect("TokenRequest status")
        .token;
    let kubeconfig = real.dir().join("controller-sa.kubeconfig");
    std::fs::write(&kubeconfig, real.token_kubeconfig(&real.url(), &token))
        .expect("write the ServiceAccount kubeconfig");

    c.put_config(LAN).await;
    // Leader election on (the default), so the Lease rules are exercised too.
    let ctl = Controller::spawn(&kubeconfig, FAST_LEADER, None);
    c.create_lb("default", "web", json!({})).await;
    let ips = c.wait_ingress("default", "web").await;
    let (ty, _) = c.wait_event("default", "web", "IPAllocated", &ips[0]).await;
    assert_eq!(ty, "Normal");
    let pool = eventually("the pool annotation", DEADLINE, || async {
        annotation(
            &c.service("default", "web").await?,
            "ferrolb.io/allocated-from-pool",
        )
    })
    .await;
    assert_eq!(pool, "lan");
    // An allocation failure is published as a Warning Event.
    c.create_lb(
        "default",
        "taken",
        json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": ips[0].clone()}}}),
    )
    .await;
    c.wait_event("default", "taken", "AllocationFailed", "in use")
        .await;
    // Deleting frees the IP for the waiting Service.
    c.delete_service("default", "web").await;
    assert_eq!(c.wait_ingress("default", "taken").await, ips);

    let refused: Vec<String> = c
        .request_log()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("ferrolb-controller/") && r.status == 403)
        .map(|r| {
            format!(
                "{} {}/{} {:?}/{:?}",
                r.verb,
                r.resource,
                r.subresource.unwrap_or_default(),
                r.namespace,
                r.name
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the real RBAC authorizer refused requests of the controller running with deploy/'s \
         roles: {refused:#?}\n{}",
        ctl.log()
    );
}
