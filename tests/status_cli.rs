//! `ferrolb status` against kube-sim with a real controller: pools with usage, each
//! LoadBalancer Service with its IPs, pool, mode and announcing node (the rendezvous winner
//! among live speaker leases), why a Service has no IP (its AllocationFailed Event), a reply
//! that degrades to named gaps when a read is forbidden, and the `kubectl ferrolb` plugin name.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::process::{Command, Output};
use std::time::Duration;

use ferrolb_core::election::winner;
use ferrolb_testkit::api_cluster::{eventually, Cluster, DEADLINE, NS};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn status(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("status")
        .arg("--kubeconfig")
        .arg(cluster.sim().kubeconfig_path())
        .args(args)
        .output()
        .expect("run ferrolb status")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn status_json(cluster: &Cluster) -> (Value, String) {
    let out = status(cluster, &["-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("status -o json prints JSON");
    (v, text(&out.stderr))
}

async fn node(cluster: &Cluster, name: &str) {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}
    }))
    .expect("node json");
    api.create(&PostParams::default(), &n)
        .await
        .expect("create Node");
}

/// A speaker lease as a speaker writes it, renewed `ago` before now.
async fn lease(cluster: &Cluster, node: &str, ago: Duration) {
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), NS);
    let renewed = jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).expect("duration");
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": format!("ferrolb-speaker-{node}"),
                     "annotations": {"ferrolb.io/subnets": "198.51.100.0/24"}},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 30,
                 "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}
    });
    api.patch(
        &format!("ferrolb-speaker-{node}"),
        &PatchParams::apply("status-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply Lease");
}

fn service<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["services"]
        .as_array()
        .expect("services list")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_pools_services_announcers_and_problems() {
    let cluster = Cluster::start().await;
    cluster
        .put_config(
            "pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.13]\n  - name: manual\n    addresses: [203.0.113.0/30]\n    autoAssign: false\n",
        )
        .await;
    for n in ["n1", "n2", "n3"] {
        node(&cluster, n).await;
    }
    lease(&cluster, "n1", Duration::ZERO).await;
    lease(&cluster, "n2", Duration::ZERO).await;
    // n3's speaker died an hour ago: it must never be named.
    lease(&cluster, "n3", Duration::from_secs(3600)).await;
    let _controller = cluster.controller(&[]);
    cluster.create_lb("default", "web", json!({})).await;
    cluster
        .create_lb(
            "default",
            "stuck",
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "192.0.2.99"}}}),
        )
        .await;
    let ips = cluster.wait_ingress("default", "web").await;
    cluster
        .wait_event("default", "stuck", "AllocationFailed", "192.0.2.99")
        .await;

    let (v, stderr) = status_json(&cluster);
    assert_eq!(stderr, "", "every read allowed, nothing to warn about");
    let mut top: Vec<&String> = v.as_object().expect("object").keys().collect();
    top.sort();
    assert_eq!(top, ["pools", "services"]);
    assert_eq!(
        v["pools"],
        json!([{"name": "lan", "used": 1, "total": 4}, {"name": "manual", "used": 0, "total": 4}])
    );
    let web = service(&v, "web");
    let mut keys: Vec<&String> = web.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "announcedBy",
            "ips",
            "mode",
            "name",
            "namespace",
            "pool",
            "problems"
        ]
    );
    let ip: std::net::IpAddr = ips[0].parse().expect("an IP");
    let expected = winner(ip, ["n1", "n2"]).expect("two candidates");
    assert_eq!(web["ips"], json!(ips));
    assert_eq!(web["pool"], json!("lan"));
    assert_eq!(web["mode"], json!("l2"));
    assert_eq!(web["announcedBy"], json!([expected]));
    assert_eq!(web["problems"], json!([]));
    let stuck = service(&v, "stuck");
    assert_eq!(stuck["ips"], json!([]));
    let problems = stuck["problems"].to_string();
    assert!(
        problems.contains("no IP") && problems.contains("192.0.2.99"),
        "{problems}"
    );

    // The winner's speaker dies: the other live node is named, as the speakers would elect.
    lease(&cluster, expected, Duration::from_secs(3600)).await;
    let other = if expected == "n1" { "n2" } else { "n1" };
    let (v, _) = status_json(&cluster);
    assert_eq!(service(&v, "web")["announcedBy"], json!([other]));
    lease(&cluster, other, Duration::from_secs(3600)).await;
    let (v, _) = status_json(&cluster);
    let web = service(&v, "web");
    assert_eq!(web["announcedBy"], json!([]));
    assert!(
        web["problems"]
            .to_string()
            .contains("no node may announce it"),
        "{web}"
    );

    // The table: a bar per pool, one row per Service; wide adds the speakers.
    let out = status(&cluster, &[]);
    let table = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        table.contains("lan") && table.contains("1/4") && table.contains("[#####"),
        "{table}"
    );
    assert!(
        table.contains("stuck") && table.contains("no IP"),
        "{table}"
    );
    let wide = text(&status(&cluster, &["-o", "wide"]).stdout);
    assert!(
        wide.contains("SPEAKER") && wide.contains("n3") && wide.contains("198.51.100.0/24"),
        "{wide}"
    );
}

/// A node with labels, and a ready endpoint of `svc` on it.
async fn labelled_node_with_endpoint(cluster: &Cluster, name: &str, labels: Value, svc: &str) {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("node json");
    api.create(&PostParams::default(), &n)
        .await
        .expect("create Node");
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), "default");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{name}"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}, "nodeName": name}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }))
    .expect("slice json");
    slices
        .create(&PostParams::default(), &slice)
        .await
        .expect("create EndpointSlice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgp_ips_name_every_advertising_node() {
    let cluster = Cluster::start().await;
    cluster
        .put_config(
            "pools:\n  - name: routed\n    addresses: [203.0.113.0/29]\n    announce: [bgp]\n  - name: both\n    addresses: [198.51.100.0/29]\n    announce: [l2, bgp]\nbgp:\n  myASN: 64512\n  peers:\n    - name: tor\n      address: 192.0.2.254\n      asn: 64513\n      nodeSelector: {rack: r1}\n",
        )
        .await;
    labelled_node_with_endpoint(&cluster, "n1", json!({"rack": "r1"}), "routed").await;
    labelled_node_with_endpoint(&cluster, "n2", json!({"rack": "r1"}), "local").await;
    // n3 matches the peer but carries the exclusion label; n4 dials no peer; n5's speaker is dead.
    labelled_node_with_endpoint(
        &cluster,
        "n3",
        json!({"rack": "r1", "node.kubernetes.io/exclude-from-external-load-balancers": ""}),
        "routed",
    )
    .await;
    labelled_node_with_endpoint(&cluster, "n4", json!({"rack": "r2"}), "routed").await;
    labelled_node_with_endpoint(&cluster, "n5", json!({"rack": "r1"}), "routed").await;
    for n in ["n1", "n2", "n3", "n4"] {
        lease(&cluster, n, Duration::ZERO).await;
    }
    lease(&cluster, "n5", Duration::from_secs(3600)).await;
    let _controller = cluster.controller(&[]);
    cluster
        .create_lb(
            "default",
            "routed",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "routed"}}}),
        )
        .await;
    cluster
        .create_lb(
            "default",
            "local",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "routed"}},
                   "spec": {"externalTrafficPolicy": "Local"}}),
        )
        .await;
    cluster
        .create_lb(
            "default",
            "dark",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "routed"}}}),
        )
        .await;
    cluster
        .create_lb(
            "default",
            "twice",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "both"}}}),
        )
        .await;
    for name in ["routed", "local", "dark", "twice"] {
        cluster.wait_ingress("default", name).await;
    }

    let (v, stderr) = status_json(&cluster);
    assert_eq!(stderr, "", "every read allowed");
    // Cluster policy with a ready endpoint: every live node matching the peer, minus the
    // excluded one.
    let routed = service(&v, "routed");
    assert_eq!(routed["mode"], json!("bgp"));
    assert_eq!(routed["announcedBy"], json!(["n1", "n2"]), "{routed}");
    assert_eq!(routed["problems"], json!([]));
    // Local policy: only the node with the ready endpoint.
    assert_eq!(service(&v, "local")["announcedBy"], json!(["n2"]));
    // No endpoint at all: nobody advertises it, and status says why.
    let dark = service(&v, "dark");
    assert_eq!(dark["announcedBy"], json!([]));
    assert!(
        dark["problems"]
            .to_string()
            .contains("no node advertises it over BGP"),
        "{dark}"
    );
    // A pool announced both ways: the layer-2 winner is among the named nodes, mode says both.
    let twice = service(&v, "twice");
    assert_eq!(twice["mode"], json!("l2+bgp"));
    assert!(
        twice["problems"]
            .to_string()
            .contains("no node advertises it over BGP"),
        "no endpoints, so BGP has nobody while layer 2 still answers: {twice}"
    );
    assert_eq!(
        twice["announcedBy"].as_array().map(Vec::len),
        Some(1),
        "{twice}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_reads_are_named_and_the_rest_still_shown() {
    let cluster = Cluster::start().await;
    cluster
        .put_config("pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.13]\n")
        .await;
    lease(&cluster, "n1", Duration::ZERO).await;
    cluster.create_lb("default", "web", json!({})).await;
    cluster
        .write_ingress("default", "web", &["198.51.100.10"])
        .await;
    cluster
        .sim()
        .faults()
        .fail_next(1, 403, Some("list"), Some("leases"));
    cluster
        .sim()
        .faults()
        .fail_next(1, 403, Some("list"), Some("events"));
    let (v, stderr) = status_json(&cluster);
    assert!(stderr.contains("cannot read Leases: forbidden"), "{stderr}");
    assert!(stderr.contains("cannot read Events: forbidden"), "{stderr}");
    assert_eq!(v["pools"], json!([{"name": "lan", "used": 1, "total": 4}]));
    let web = service(&v, "web");
    assert_eq!(web["ips"], json!(["198.51.100.10"]));
    assert!(
        web["problems"]
            .to_string()
            .contains("Leases could not be read"),
        "{web}"
    );
    // Reads allowed again: the full answer is back.
    let (v, stderr) = status_json(&cluster);
    assert_eq!(stderr, "");
    assert_eq!(service(&v, "web")["announcedBy"], json!(["n1"]));
}

/// `kubectl ferrolb status`: kubectl runs `kubectl-ferrolb` from PATH; the binary under that
/// name behaves as `ferrolb`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_as_the_kubectl_plugin() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            !ferrolb_testkit::strict(),
            "kubectl is required under CI=true / FERROLB_E2E=1"
        );
        eprintln!(
            "\n*** SKIPPED: kubectl not found; the kubectl-ferrolb plugin was NOT checked ***\n"
        );
        return;
    }
    let cluster = Cluster::start().await;
    cluster
        .put_config("pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.13]\n")
        .await;
    let dir = std::env::temp_dir().join(format!("ferrolb-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let link = dir.join("kubectl-ferrolb");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ferrolb"), &link).expect("symlink");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = eventually("kubectl ferrolb status", DEADLINE, || {
        let out = Command::new("kubectl")
            .args(["ferrolb", "status", "-o", "json", "--kubeconfig"])
            .arg(cluster.sim().kubeconfig_path())
            .env("PATH", &path)
            .output()
            .expect("kubectl runs");
        async move { Some(out) }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["pools"], json!([{"name": "lan", "used": 0, "total": 4}]));
}

/// The node `ferrolb status` names is the node that answers ARP on the wire (arping from a
/// client namespace is the judge), before and after that node's speaker stops.
#[test]
fn the_named_announcer_is_the_node_answering_arp() {
    if netns::require().is_err() {
        return;
    }
    let mut lan = cluster::Cluster::start(cluster::ClusterSpec {
        nodes: 3,
        ..cluster::ClusterSpec::default()
    });
    let vip = lan.create_service("web", json!({}));
    let named = |lan: &cluster::Cluster| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
            .args(["status", "-o", "json", "--kubeconfig"])
            .arg(lan.sim().kubeconfig_path())
            .output()
            .expect("run ferrolb status");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        service(&v, "web")["announcedBy"].clone()
    };
    let owner = lan
        .wait_announcer(vip, Duration::from_secs(20), |_| true)
        .expect("some node answers ARP for the VIP");
    assert_eq!(named(&lan), json!([format!("node-{owner}")]));
    // The owner's speaker stops (SIGTERM: it releases its lease); another node takes over on
    // the wire, and status names that node.
    if let Some(mut s) = lan.speakers[owner - 1].take() {
        s.stop(Duration::from_secs(5));
    }
    let next = lan
        .wait_announcer(vip, Duration::from_secs(20), |n| n != owner)
        .expect("another node answers ARP after the owner stopped");
    assert!(
        cluster::poll(Duration::from_secs(10), || named(&lan)
            == json!([format!("node-{next}")])),
        "status names {} while node-{next} answers ARP",
        named(&lan)
    );
}
