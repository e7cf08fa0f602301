//! kube-sim and the real kube-apiserver answer the same requests the same way where FerroLB
//! depends on the answer. Each test runs its body on every backend `FERROLB_API` selects
//! (`both` in CI), so a difference shows up as a failure naming the backend; what is found is
//! fixed in kube-sim and listed in `tests/kube-sim/WIRE.md`.
//!
//! One server per backend per test: several related checks share one test, since a real
//! server costs seconds to start.

use ferrolb_testkit::{for_each_backend, TestApi};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn lb_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))
    .expect("literal Service")
}

fn ingress_of(svc: &Service) -> Option<serde_json::Value> {
    let status = serde_json::to_value(svc.status.as_ref()?).ok()?;
    status.pointer("/loadBalancer/ingress").cloned()
}

/// The two rules that decide what a status shows once a Service leaves LoadBalancer: the
/// server clears `status.loadBalancer` itself on the type change, and refuses to put an
/// ingress on a Service of another type. The controller must not rely on writing that
/// clearing status itself (see the reconcile core's tests).
#[tokio::test(flavor = "multi_thread")]
async fn leaving_load_balancer_clears_the_status_and_ingress_needs_the_type() {
    for_each_backend(|backend| async move {
        let api = TestApi::start(backend).await.expect("API server starts");
        let client = api.client().expect("admin client");
        let svcs: Api<Service> = Api::namespaced(client, "default");
        let pp = PatchParams::default();
        svcs.create(&PostParams::default(), &lb_service("web"))
            .await
            .expect("create LoadBalancer Service");
        let ingress = json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "198.51.100.10", "ipMode": "VIP"}]}}});
        let svc = svcs
            .patch_status("web", &pp, &Patch::Merge(&ingress))
            .await
            .expect("status write on a LoadBalancer Service");
        assert_eq!(
            ingress_of(&svc),
            Some(json!([{"ip": "198.51.100.10", "ipMode": "VIP"}]))
        );

        // Type change: the answer to the spec patch itself already has no ingress.
        let svc = svcs
            .patch(
                "web",
                &pp,
                &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
            )
            .await
            .expect("type change to ClusterIP");
        assert_eq!(ingress_of(&svc), None, "status after the type change");
        let svc = svcs.get("web").await.expect("get web");
        assert_eq!(
            ingress_of(&svc),
            None,
            "stored status after the type change"
        );

        // An ingress on a ClusterIP Service is refused, naming the field.
        let err = svcs
            .patch_status("web", &pp, &Patch::Merge(&ingress))
            .await
            .expect_err("an ingress on a ClusterIP Service must be refused");
        let kube::Error::Api(status) = err else {
            panic!("expected an API error, got {err:?}");
        };
        assert_eq!(status.code, 422, "{status:?}");
        assert!(
            status.message.contains(
                "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is \
                 'LoadBalancer'"
            ),
            "{}",
            status.message
        );
        // Clearing stays allowed: the controller's release write must not fail there.
        let clear = json!({"status": {"loadBalancer": {"ingress": null}}});
        svcs.patch_status("web", &pp, &Patch::Merge(&clear))
            .await
            .expect("clearing the ingress of a ClusterIP Service");

        // Back to LoadBalancer: the status starts empty and takes an ingress again.
        svcs.patch(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"type": "LoadBalancer"}})),
        )
        .await
        .expect("type change back to LoadBalancer");
        let svc = svcs
            .patch_status("web", &pp, &Patch::Merge(&ingress))
            .await
            .expect("status write after the type came back");
        assert!(ingress_of(&svc).is_some());
    })
    .await;
}

/// An events.k8s.io/v1 Event's `note` is limited to 1 kB; a longer one is refused whole, so a
/// publisher must shorten what it says (the controller quotes user input in its Events).
#[tokio::test(flavor = "multi_thread")]
async fn an_event_note_over_1024_bytes_is_refused() {
    use k8s_openapi::api::events::v1::Event;
    for_each_backend(|backend| async move {
        let api = TestApi::start(backend).await.expect("API server starts");
        let client = api.client().expect("admin client");
        let events: Api<Event> = Api::namespaced(client, "default");
        let event = |name: &str, note: String| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "eventTime": "2026-12-02T04:00:00.000000Z",
                "action": "Allocate", "reason": "AllocationFailed", "type": "Warning",
                "reportingController": "ferrolb-controller", "reportingInstance": "t",
                "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": "default",
                              "name": "web"},
                "note": note,
            }))
            .expect("literal Event")
        };
        events
            .create(&PostParams::default(), &event("fits", "x".repeat(1024)))
            .await
            .expect("a 1024-byte note is accepted");
        let err = events
            .create(&PostParams::default(), &event("too-long", "x".repeat(1025)))
            .await
            .expect_err("a 1025-byte note must be refused");
        let kube::Error::Api(status) = err else {
            panic!("expected an API error, got {err:?}");
        };
        assert_eq!(status.code, 422, "{status:?}");
        assert!(
            status.message.contains(
                "Event \"too-long\" is invalid: message: Invalid value: \"\": can have at most \
                 1024 characters"
            ),
            "{}",
            status.message
        );
    })
    .await;
}

/// A request body over 3 MiB is refused with 413 before anything else looks at it (a hostile
/// pool config can be that large).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_over_3_mib_is_refused_with_413() {
    use k8s_openapi::api::core::v1::ConfigMap;
    for_each_backend(|backend| async move {
        let api = TestApi::start(backend).await.expect("API server starts");
        let client = api.client().expect("admin client");
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let big: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "big"},
            "data": {"config.yaml": " ".repeat(3 * 1024 * 1024 + 1)},
        }))
        .expect("literal ConfigMap");
        let err = cms
            .create(&PostParams::default(), &big)
            .await
            .expect_err("a body over 3 MiB must be refused");
        let kube::Error::Api(status) = err else {
            panic!("expected an API error, got {err:?}");
        };
        assert_eq!(status.code, 413, "{status:?}");
        assert_eq!(status.reason, "RequestEntityTooLarge");
        assert_eq!(status.message, "Request entity too large: limit is 3145728");
    })
    .await;
}

/// A ConfigMap's values may hold at most 1 MiB together (keys do not count); more is a 422.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_map_over_1_mib_is_refused() {
    use k8s_openapi::api::core::v1::ConfigMap;
    for_each_backend(|backend| async move {
        let api = TestApi::start(backend).await.expect("API server starts");
        let client = api.client().expect("admin client");
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let cm = |name: &str, len: usize| -> ConfigMap {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "data": {"config.yaml": "x".repeat(len)},
            }))
            .expect("literal ConfigMap")
        };
        cms.create(&PostParams::default(), &cm("fits", 1024 * 1024))
            .await
            .expect("1 MiB of data is accepted");
        let err = cms
            .create(&PostParams::default(), &cm("too-big", 1024 * 1024 + 1))
            .await
            .expect_err("1 MiB + 1 byte of data must be refused");
        let kube::Error::Api(status) = err else {
            panic!("expected an API error, got {err:?}");
        };
        assert_eq!(status.code, 422, "{status:?}");
        assert_eq!(
            status.message,
            "ConfigMap \"too-big\" is invalid: []: Too long: may not be more than 1048576 bytes"
        );
    })
    .await;
}
