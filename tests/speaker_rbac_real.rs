//! RBAC for real, speaker side: a real `ferrolb speaker` runs in a node namespace of the netns
//! LAN as `deploy/`'s ServiceAccount `ferrolb-speaker` (a token from the real TokenRequest
//! API), with the roles `deploy/speaker-rbac.yaml` grants, against the real kube-apiserver,
//! whose RBAC authorizer judges every request. The scenario is what a speaker does in a
//! cluster: read the pool ConfigMap, watch Services, EndpointSlices, Nodes and its peers'
//! Leases, keep its own Lease (create, renew, release on SIGTERM), win the Service's IP and
//! publish the `Announcing` Event. The server's audit log must show no request of the
//! speaker's refused; and removing any single rule must get one refused (minimality).
//!
//! The Service's status is written by the test itself (admin), standing in for the
//! controller, whose own RBAC is proven by `tests/deploy_rbac_real.rs`.
//!
//! Runs when `FERROLB_API` selects the real server (`real` or `both`); needs root and the netns
//! tools (like the speaker e2e tests) and `kubectl`, which applies the manifests as a user would.

use ferrolb_testkit::netns;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_testkit::{rbac, selected_backends, ApiBackend, TestApi};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

const NS: &str = "ferrolb-system";
const VIP: &str = "203.0.113.10";
const DEADLINE: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this test can run here; says why not (loudly, or failing under CI).
fn runnable(test: &str) -> bool {
    if !selected_backends().contains(&ApiBackend::Real) {
        eprintln!("{test}: not run, FERROLB_API does not select the real API server");
        return false;
    }
    netns::require().is_ok()
        && ferrolb_testkit::require(test, &[("kubectl", "kubernetes-client")]).is_ok()
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("literal object matches its type")
}

/// A real API server seeded like a one-node cluster where the controller gave Service `web` an
/// IP, the speaker RBAC manifest `rbac` applied with kubectl, a LAN of one node, and the
/// speaker of node 1 running with a TokenRequest token of `ferrolb-system/ferrolb-speaker`.
struct Scenario {
    rt: tokio::runtime::Runtime,
    api: TestApi,
    client: kube::Client,
    // Dropped before the server: the speaker and the relay live in the LAN.
    speaker: Option<netns::NsChild>,
    lan: netns::Lan,
}

impl Scenario {
    fn start(rbac: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let api = rt
            .block_on(TestApi::start(ApiBackend::Real))
            .expect("real API server starts");
        let client = {
            let _inside = rt.enter();
            api.client().expect("admin client")
        };
        rbac::apply_with_namespace(api.kubeconfig_path(), rbac, "speaker RBAC");
        rt.block_on(seed(&client));
        let token = rt.block_on(rbac::service_account_token(&client, NS, "ferrolb-speaker"));
        let TestApi::Real(real) = &api else {
            unreachable!("started on the real backend")
        };
        let lan = netns::Lan::builder().nodes(1).build();
        let endpoint = lan.expose_api_with(api.addr(), "https", |relay| {
            real.token_kubeconfig(&format!("https://{relay}"), &token)
        });
        let kubeconfig = endpoint.kubeconfig.to_string_lossy().to_string();
        let speaker = lan.node(1).spawn(
            env!("CARGO_BIN_EXE_ferrolb"),
            &[
                "speaker",
                "--node-name",
                "node-1",
                "--kubeconfig",
                &kubeconfig,
                "--metrics-addr",
                "127.0.0.1:7473",
            ],
        );
        Scenario {
            rt,
            api,
            client,
            speaker: Some(speaker),
            lan,
        }
    }

    /// The speaker's requests the server refused (403), from its audit log.
    fn refused(&self) -> Vec<String> {
        rbac::refused_requests(self.api.request_log(), "ferrolb-speaker/")
    }

    fn speaker_log(&self) -> String {
        self.speaker
            .as_ref()
            .map(|s| s.stderr())
            .unwrap_or_default()
    }

    fn lease_holder(&self) -> Option<Option<String>> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), NS);
        let lease = self
            .rt
            .block_on(leases.get_opt("ferrolb-speaker-node-1"))
            .ok()??;
        Some(lease.spec.and_then(|s| s.holder_identity))
    }

    fn announcing(&self) -> Option<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = self.rt.block_on(events.list(&ListParams::default())).ok()?;
        list.items.into_iter().find_map(|e| {
            (e.reason.as_deref() == Some("Announcing")
                && e.involved_object.name.as_deref() == Some("web"))
            .then(|| e.message.unwrap_or_default())
        })
    }

    /// Polls `check` until it returns `Some`, or fails with `what` and the speaker's log.
    fn wait<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out after {DEADLINE:?} waiting for {what}; refused: {:?}\nspeaker log:\n{}",
                self.refused(),
                self.speaker_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The objects a cluster would have: the pool ConfigMap, Node `node-1`, Service `web` with an
/// IP in its status and a ready endpoint on node-1.
async fn seed(client: &kube::Client) {
    let pp = PostParams::default();
    // kubectl apply created it already; this only checks it is there.
    Api::<Namespace>::all(client.clone())
        .get(NS)
        .await
        .expect("namespace ferrolb-system");
    let config = "pools:\n  - name: lan\n    addresses: [\"203.0.113.10-203.0.113.99\"]\n\
                  l2:\n  garp: { burst: 1, interval: 300ms, refresh: 0s }\n";
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(
            &pp,
            &from_json(json!({"metadata": {"name": "ferrolb-config"},
                "data": {"config.yaml": config}})),
        )
        .await
        .expect("create the pool ConfigMap");
    Api::<Node>::all(client.clone())
        .create(
            &pp,
            &from_json(json!({"metadata": {"name": "node-1",
                "labels": {"kubernetes.io/hostname": "node-1"}}})),
        )
        .await
        .expect("create Node node-1");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    svcs.create(
        &pp,
        &from_json(json!({"metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
    )
    .await
    .expect("create Service web");
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"loadBalancer": {"ingress": [{"ip": VIP, "ipMode": "VIP"}]}}}),
        ),
    )
    .await
    .expect("write web's status as the controller would");
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(
            &pp,
            &from_json(json!({
                "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["192.0.2.50"], "conditions": {"ready": true},
                               "nodeName": "node-1"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            })),
        )
        .await
        .expect("create EndpointSlice web-abc");
}

#[test]
fn speaker_works_with_exactly_the_deploy_roles_on_a_real_server() {
    const TEST: &str = "speaker_works_with_exactly_the_deploy_roles_on_a_real_server";
    if !runnable(TEST) {
        return;
    }
    let rbac = std::fs::read_to_string(repo().join("deploy/speaker-rbac.yaml"))
        .expect("read deploy/speaker-rbac.yaml");
    let mut s = Scenario::start(&rbac);
    s.wait("the speaker's lease held by node-1", |s| {
        (s.lease_holder()? == Some("node-1".to_string())).then_some(())
    });
    let msg = s.wait("the Announcing Event on web", Scenario::announcing);
    assert!(msg.contains(VIP) && msg.contains("node-1"), "{msg}");
    // The elected node answers ARP for the VIP on the LAN, as an independent judge says.
    let mac = s.lan.client().arping_mac(VIP.parse().expect("VIP"));
    assert_eq!(mac, Some(s.lan.node(1).mac()), "{}", s.speaker_log());

    // Graceful stop releases the lease (its PUT is judged by RBAC too).
    let mut speaker = s.speaker.take().expect("speaker running");
    speaker.term();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = speaker.try_exit_status() {
            break st;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "speaker did not stop on SIGTERM:\n{}",
            speaker.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", speaker.stderr());
    s.speaker = Some(speaker);
    assert_eq!(s.lease_holder(), Some(None), "the lease is released");

    let refused = s.refused();
    assert!(
        refused.is_empty(),
        "the real RBAC authorizer refused requests of the speaker running with deploy/'s roles: \
         {refused:#?}\n{}",
        s.speaker_log()
    );
}

#[test]
fn removing_any_single_speaker_rule_gets_a_request_refused() {
    const TEST: &str = "removing_any_single_speaker_rule_gets_a_request_refused";
    if !runnable(TEST) {
        return;
    }
    let path = repo().join("deploy/speaker-rbac.yaml");
    let docs = rbac::manifest_docs(
        "deploy/speaker-rbac.yaml",
        &std::fs::read_to_string(&path).expect("read deploy/speaker-rbac.yaml"),
    );
    let variants = rbac::without_each_rule(&docs);
    assert!(
        variants.len() >= 5,
        "{} has fewer rules than expected: {variants:?}",
        path.display()
    );
    // The scenario uses every rule: start (ConfigMap, Services, Nodes, EndpointSlices, Leases)
    // and the announcement (an Event). The first refused request is enough.
    for (name, without) in variants {
        eprintln!("minimality: without {name}");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": without});
        let s = Scenario::start(&list.to_string());
        let refused = s.wait(
            &format!("a refused speaker request once this rule is removed: {name}"),
            |s| {
                let r = s.refused();
                (!r.is_empty()).then_some(r)
            },
        );
        eprintln!("minimality: without {name}: refused {refused:?}");
    }
}
