//! RBAC for real: the controller runs as `deploy/`'s ServiceAccount, with the roles `deploy/`
//! grants it, against the real kube-apiserver, whose RBAC authorizer judges every request.
//! Its token comes from the real TokenRequest API. The scenario covers what the controller
//! does in a cluster: leader election (Lease create/get/update), reading the pool ConfigMap,
//! watching Services, writing the annotation and `services/status`, publishing Events, and
//! creating the speakers' heartbeat Secret (get on that one name, create in its namespace).
//! The server's audit log must show no request of the controller's refused.
//!
//! `tests/deploy_rbac.rs` proves the converse against kube-sim (every granted rule is used).
//! Runs when `FERROLB_API` selects the real server (`real` or `both`); needs `kubectl`, which
//! applies the manifests exactly as a user would.

use std::path::PathBuf;

use ferrolb_testkit::api_cluster::*;
use ferrolb_testkit::{rbac, TestApi};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
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
    let rbac = std::fs::read_to_string(repo().join("deploy/controller-rbac.yaml"))
        .expect("read deploy/controller-rbac.yaml");
    let (c, kubeconfig) = cluster_with_controller_roles(&rbac).await;
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
    // The heartbeat Secret was missing, so the leader created it.
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let secret = eventually("the heartbeat Secret", DEADLINE, || async {
        secrets.get_opt("ferrolb-heartbeat").await.ok().flatten()
    })
    .await;
    let key_len = secret
        .data
        .as_ref()
        .and_then(|d| d.get("key"))
        .map(|k| k.0.len());
    assert_eq!(key_len, Some(32));

    let refused = refused_controller_requests(&c);
    assert!(
        refused.is_empty(),
        "the real RBAC authorizer refused requests of the controller running with deploy/'s \
         roles: {refused:#?}\n{}",
        ctl.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_any_single_controller_rule_gets_a_request_refused() {
    const TEST: &str = "removing_any_single_controller_rule_gets_a_request_refused";
    if !ferrolb_testkit::selected_backends().contains(&ApiBackend::Real) {
        eprintln!("{TEST}: not run, FERROLB_API does not select the real API server");
        return;
    }
    if ferrolb_testkit::require(TEST, &[("kubectl", "kubernetes-client")]).is_err() {
        return;
    }
    let path = repo().join("deploy/controller-rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("read deploy/controller-rbac.yaml");
    let docs = rbac::manifest_docs("deploy/controller-rbac.yaml", &text);
    let variants = rbac::without_each_rule(&docs);
    assert!(
        variants.len() >= 8,
        "{} has fewer rules than expected: {variants:?}",
        path.display()
    );
    // The scenario that uses every rule: start (ConfigMap list/watch, Lease get/create/update,
    // Service list/watch, heartbeat Secret get and create) and one allocation (Service patch,
    // services/status patch, Event create). The first refused request is enough; the deadline bounds a rule nothing needs.
    for (name, without) in variants {
        eprintln!("minimality: without {name}");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": without});
        let (c, kubeconfig) = cluster_with_controller_roles(&list.to_string()).await;
        c.put_config(LAN).await;
        let _ctl = Controller::spawn(&kubeconfig, FAST_LEADER, None);
        c.create_lb("default", "web", json!({})).await;
        let refused = eventually(
            &format!("a refused controller request once this rule is removed: {name}"),
            DEADLINE,
            || async {
                let r = refused_controller_requests(&c);
                (!r.is_empty()).then_some(r)
            },
        )
        .await;
        eprintln!("minimality: without {name}: refused {refused:?}");
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A real API server with `deploy/namespace.yaml` and the given controller RBAC manifest
/// (YAML or JSON) applied by `kubectl`, and a kubeconfig holding a TokenRequest token of the
/// `ferrolb-system/ferrolb-controller` ServiceAccount.
async fn cluster_with_controller_roles(rbac: &str) -> (Cluster, PathBuf) {
    let c = Cluster::start_on(ApiBackend::Real).await;
    let TestApi::Real(real) = &c.api else {
        unreachable!("started on the real backend")
    };
    rbac::apply_with_namespace(c.kubeconfig_path(), rbac, "controller RBAC");
    let token = rbac::service_account_token(&c.client, NS, "ferrolb-controller").await;
    let kubeconfig = real.dir().join("controller-sa.kubeconfig");
    std::fs::write(&kubeconfig, real.token_kubeconfig(&real.url(), &token))
        .expect("write the ServiceAccount kubeconfig");
    (c, kubeconfig)
}

/// The controller's requests the server refused (403), from its audit log.
fn refused_controller_requests(c: &Cluster) -> Vec<String> {
    rbac::refused_requests(c.request_log(), "ferrolb-controller/")
}
