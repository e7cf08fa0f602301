//! Reliability, controller, scenario 3: hostile input. Every bad annotation and config a user
//! can type must give an Event, never a crash, and must not stop allocation for anyone else.
//! After each input: the process is alive, `/healthz` answers 200, and a fresh canary Service
//! still gets an IP from the last good config.

use ferrolb_testkit::api_cluster::*;
use serde_json::{json, Value};

const GOOD: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n  - name: v6\n    addresses: [\"2001:db8:1::/112\"]\n";

async fn still_healthy(c: &Cluster, ctl: &mut Controller, what: &str, canary: usize) {
    assert!(ctl.running(), "the controller died after {what}");
    assert_eq!(
        ctl.http_get("/healthz").await.0,
        200,
        "/healthz after {what}"
    );
    let name = format!("canary-{canary}");
    c.create_lb("default", &name, json!({})).await;
    let ips = c.wait_ingress("default", &name).await;
    assert!(
        ips[0].starts_with("198.51.100."),
        "canary after {what} got {ips:?}, not from the last good config"
    );
}

fn hostile_annotations() -> Vec<(&'static str, String, String)> {
    let long = "x".repeat(10_000);
    let long_ips = std::iter::repeat_n("198.51.100.7", 800)
        .collect::<Vec<_>>()
        .join(",");
    let mut v: Vec<(&'static str, String, String)> = Vec::new();
    for key in [
        "ferrolb.io/loadBalancerIPs",
        "metallb.universe.tf/loadBalancerIPs",
        "metallb.io/loadBalancerIPs",
    ] {
        for (label, val) in [
            ("garbage", "not-an-ip".to_string()),
            ("empty list items", ",,,".to_string()),
            ("huge octets", "999.999.999.999".to_string()),
            ("u32 overflow", "4294967296".to_string()),
            ("cidr instead of ip", "198.51.100.0/24".to_string()),
            ("wrong family", "2001:db8:1::5".to_string()),
            ("two of one family", "198.51.100.7,198.51.100.8".to_string()),
            ("unicode digits", "１９８.５１.１００.７".to_string()),
            (
                "rtl and zero width",
                "\u{202e}198.51.100.7\u{200b}".to_string(),
            ),
            ("ip outside every pool", "203.0.113.77".to_string()),
            ("10,000 characters", long.clone()),
            ("800 copies", long_ips.clone()),
            ("zone id", "fe80::1%eth0".to_string()),
            ("newlines", "198.51.100.7\n198.51.100.8".to_string()),
        ] {
            v.push((key, val, label.to_string()));
        }
    }
    for key in [
        "ferrolb.io/address-pool",
        "metallb.universe.tf/address-pool",
    ] {
        for (label, val) in [
            ("unknown pool", "nope".to_string()),
            ("10,000 characters", long.clone()),
            ("unicode", "пул-😀".to_string()),
            ("yaml injection", "lan\n  - name: evil".to_string()),
        ] {
            v.push((key, val, label.to_string()));
        }
    }
    for (label, val) in [
        ("10,000 characters", long.clone()),
        ("unicode", "共有-😀".to_string()),
        ("whitespace only", "   ".to_string()),
    ] {
        v.push(("ferrolb.io/allow-shared-ip", val, label.to_string()));
    }
    v
}

fn hostile_configs() -> Vec<(String, Vec<(String, String)>)> {
    let one =
        |label: &str, yaml: String| (label.to_string(), vec![("config.yaml".to_string(), yaml)]);
    let deep_flow = format!("pools: {}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_block = {
        let mut s = String::from("pools:\n");
        // 900 levels: about 0.8 MB, under the API's 1 MiB ConfigMap and 3 MiB body limits
        // (2,000 levels made a 4 MB body the real kube-apiserver refuses with 413, so the
        // controller never saw it), and far deeper than any parser's recursion limit.
        for d in 0..900 {
            s.push_str(&" ".repeat(d * 2 + 2));
            s.push_str("- \n");
        }
        s
    };
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            ["b", "c", "d", "e", "f", "g", "h"][i - 1].to_string()
        };
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    bomb.push_str("pools:\n  - name: lan\n    addresses: *i\n");
    let many_pools: String = (0..5_000)
        .map(|i| {
            format!(
                "  - name: p{i}\n    addresses: [\"198.51.100.{}/32\"]\n",
                i % 256
            )
        })
        .collect();
    vec![
        one("garbage", "%%% not yaml {{{".into()),
        one("wrong type", "pools: 42".into()),
        one(
            "bad CIDR",
            "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/33\"]\n".into(),
        ),
        one(
            "reversed range",
            "pools:\n  - name: lan\n    addresses: [\"198.51.100.9-198.51.100.1\"]\n".into(),
        ),
        one(
            "mixed-family range",
            "pools:\n  - name: lan\n    addresses: [\"198.51.100.1-2001:db8::1\"]\n".into(),
        ),
        one(
            "huge prefix number",
            "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/99999999999999999999\"]\n"
                .into(),
        ),
        one(
            "unicode pool name",
            "pools:\n  - name: \"пул-😀\"\n    addresses: [\"198.51.100.0/24\"]\n".into(),
        ),
        one(
            "10,000-character name",
            format!(
                "pools:\n  - name: {}\n    addresses: [\"198.51.100.0/24\"]\n",
                "n".repeat(10_000)
            ),
        ),
        one(
            "overlapping pools (5,000 of them)",
            format!("pools:\n{many_pools}"),
        ),
        one("duplicate keys", "pools: []\npools: []\n".into()),
        one("unknown key", "pools: []\nsurprise: true\n".into()),
        one("YAML bomb (anchors)", bomb),
        one("deep flow nesting (20,000)", deep_flow),
        one("deep block nesting (900)", deep_block),
        one(
            "bad duration",
            "pools: []\nl2:\n  garp: {burst: 5, interval: 99999999999999999999999h}\n".into(),
        ),
        one(
            "bad regex",
            "pools: []\nl2:\n  interfaces: [\"(((\"]\n".into(),
        ),
        (
            "MetalLB legacy garbage".into(),
            vec![("config".into(), "address-pools: {{{".into())],
        ),
        (
            "kube-vip huge range".into(),
            vec![("range-global".into(), "198.51.100.1-198.51.100.0/0".into())],
        ),
        (
            "two formats at once".into(),
            vec![
                ("config.yaml".into(), GOOD.into()),
                ("config".into(), "address-pools: []".into()),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_annotations_and_configs_give_events_and_break_nothing() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    c.put_config(GOOD).await;
    let mut ctl = c.controller(&["--leader-elect", "false"]);
    let mut canary = 0;
    still_healthy(&c, &mut ctl, "start", canary).await;

    // Annotations, each on a new Service.
    let annotations = hostile_annotations();
    let mut rejected_by_api = 0;
    let mut with_failure_event = 0;
    let mut allocated = Vec::new();
    for (i, (key, value, label)) in annotations.iter().enumerate() {
        let name = format!("bad-{i:03}");
        let body = json!({"metadata": {"annotations": {key.to_string(): value}}});
        let svc: Result<_, _> = {
            let mut full = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}
            });
            merge(&mut full, body);
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(full)
        };
        let svc = svc.expect("service json");
        match c
            .services("default")
            .create(&kube::api::PostParams::default(), &svc)
            .await
        {
            Err(kube::Error::Api(s)) => {
                rejected_by_api += 1;
                println!("  API rejected {key}={label}: {}", s.message);
                continue;
            }
            Err(e) => panic!("create {name}: {e}"),
            Ok(_) => {}
        }
        // Either an AllocationFailed Warning or an IPAllocated (for inputs that are legal).
        let (reason, msg) =
            eventually(&format!("an Event for {key}={label}"), DEADLINE, || async {
                c.events_for("default", &name)
                    .await
                    .into_iter()
                    .find_map(|e| {
                        let r = e.reason.clone().unwrap_or_default();
                        (r == "AllocationFailed" || r == "IPAllocated")
                            .then(|| (r, e.message.clone().unwrap_or_default()))
                    })
            })
            .await;
        if reason == "AllocationFailed" {
            with_failure_event += 1;
        } else {
            allocated.push(format!("{key}={label}"));
        }
        let shown: String = msg.chars().take(140).collect();
        println!("  {key} = {label}: {reason}: {shown}");
        canary += 1;
        still_healthy(&c, &mut ctl, &format!("{key}={label}"), canary).await;
    }
    // Only these may legally allocate: a free-text sharing key of any shape is valid, and a
    // list of one IP repeated names one IP.
    for a in &allocated {
        assert!(
            a.starts_with("ferrolb.io/allow-shared-ip=") || a.ends_with("=800 copies"),
            "{a} was accepted"
        );
    }

    // Spec fields a user can type.
    for (label, spec) in [
        (
            "loadBalancerIP garbage",
            json!({"loadBalancerIP": "garbage"}),
        ),
        (
            "loadBalancerIP wrong family",
            json!({"loadBalancerIP": "2001:db8:1::9"}),
        ),
        (
            "ports 0 and 65536",
            json!({"ports": [{"name": "a", "port": 0}, {"name": "b", "port": 65536}]}),
        ),
        (
            "1,000 ports",
            json!({"ports": (1..=1000).map(|p| json!({"name": format!("p{p}"), "port": p})).collect::<Vec<Value>>()}),
        ),
    ] {
        canary += 1;
        let name = format!("spec-{canary}");
        let mut full = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}
        });
        merge(&mut full, json!({"spec": spec}));
        let outcome = match serde_json::from_value::<k8s_openapi::api::core::v1::Service>(full) {
            Err(e) => format!("not even a Service ({e})"),
            Ok(svc) => match c
                .services("default")
                .create(&kube::api::PostParams::default(), &svc)
                .await
            {
                Err(kube::Error::Api(s)) => format!("API rejected: {}", s.message),
                Err(e) => panic!("{label}: {e}"),
                Ok(_) => {
                    let (r, _) = eventually(&format!("an Event for {label}"), DEADLINE, || async {
                        c.events_for("default", &name)
                            .await
                            .into_iter()
                            .find_map(|e| {
                                let r = e.reason.clone().unwrap_or_default();
                                (r == "AllocationFailed" || r == "IPAllocated").then_some((r, ()))
                            })
                    })
                    .await;
                    r
                }
            },
        };
        println!("  spec {label}: {outcome}");
        still_healthy(&c, &mut ctl, label, canary).await;
    }

    // Configs: each one rejected with a Warning Event, the metric at 0, the last good config
    // still in force; then the good config again.
    let configs = hostile_configs();
    let mut messages = std::collections::BTreeSet::new();
    let mut rejections = ctl.log().matches("pool config rejected").count();
    for (label, data) in &configs {
        let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let loaded = ctl.log().matches("loaded pool config").count();
        // Both API servers refuse a body over 3 MiB (413) before the controller could see it.
        if let Err(e) = c.try_edit_config_data(&pairs).await {
            match e {
                kube::Error::Api(s) if s.code == 413 => {
                    println!("  config {label}: the API refused it ({})", s.message);
                    continue;
                }
                e => panic!("edit ConfigMap with config {label}: {e}"),
            }
        }
        // Unicode or very long pool names are legal: such a config may load. Everything else
        // must be rejected.
        let may_load = matches!(
            label.as_str(),
            "unicode pool name" | "10,000-character name"
        );
        let accepted = eventually(&format!("a verdict on config {label}"), DEADLINE, || {
            let log = ctl.log();
            let (l, r) = (
                log.matches("loaded pool config").count(),
                log.matches("pool config rejected").count(),
            );
            async move {
                if r > rejections {
                    Some(false)
                } else if l > loaded {
                    Some(true)
                } else {
                    None
                }
            }
        })
        .await;
        if accepted {
            assert!(may_load, "config {label} was accepted");
            println!("  config {label}: accepted (legal)");
            canary += 1;
            still_healthy(&c, &mut ctl, &format!("config {label}"), canary).await;
            // The metric is 1 already, so wait for the good config's own load line; otherwise
            // it could land after the next case's snapshot and read as that case's verdict.
            let before = ctl.log().matches("loaded pool config").count();
            c.edit_config_data(&[("config.yaml", GOOD)]).await;
            eventually("the good config to load again", DEADLINE, || {
                let n = ctl.log().matches("loaded pool config").count();
                async move { (n > before).then_some(()) }
            })
            .await;
            continue;
        }
        ctl.wait_metric("ferrolb_config_valid", 0.0).await;
        let msg = eventually(
            &format!("a ConfigInvalid Event for {label}"),
            DEADLINE,
            || async {
                c.events_for(NS, CONFIG_MAP)
                    .await
                    .into_iter()
                    .find_map(|e| {
                        let m = e.message.clone().unwrap_or_default();
                        // Any ConfigInvalid Event; that each bad config gets its own message
                        // is `a_second_bad_config_gets_its_own_event_message`.
                        (e.reason.as_deref() == Some("ConfigInvalid")).then_some(m)
                    })
            },
        )
        .await;
        messages.insert(msg.clone());
        let now = eventually(&format!("a log line rejecting {label}"), DEADLINE, || {
            let n = ctl.log().matches("pool config rejected").count();
            async move { (n > rejections).then_some(n) }
        })
        .await;
        rejections = now;
        let shown: String = msg.chars().take(160).collect();
        println!("  config {label}: {shown}");
        canary += 1;
        still_healthy(&c, &mut ctl, &format!("config {label}"), canary).await;
        c.edit_config_data(&[("config.yaml", GOOD)]).await;
        ctl.wait_metric("ferrolb_config_valid", 1.0).await;
    }
    println!(
        "scenario 3 report: {} hostile annotations ({} rejected by the API, {} AllocationFailed, {} legal and allocated: {:?}), {} hostile configs (all but the legal long and unicode pool names rejected: metric 0, a log line, a ConfigInvalid Event; {} distinct Event messages seen), {} canaries allocated; the controller never died",
        annotations.len(),
        rejected_by_api,
        with_failure_event,
        allocated.len(),
        allocated,
        configs.len(),
        messages.len(),
        canary
    );
    })
    .await;
}

/// A `config.yaml` made of control characters once parsed as a valid config with no pools (the
/// YAML parser stops at a NUL), so a garbage edit emptied the pools instead of being rejected.
#[tokio::test(flavor = "multi_thread")]
async fn control_character_garbage_config_is_rejected() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(GOOD).await;
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        still_healthy(&c, &mut ctl, "start", 0).await;
        c.edit_config_data(&[("config.yaml", "\u{0}\u{1}\u{7f}pools")])
            .await;
        ctl.wait_metric("ferrolb_config_valid", 0.0).await;
        still_healthy(&c, &mut ctl, "control-character garbage", 1).await;
    })
    .await;
}

/// kube-runtime's `Recorder` keyed its Event cache by type, reason, action and object but not
/// by message, so a second, different bad config only bumped the count of the first Event and
/// `kubectl describe` showed a stale reason; FerroLB's own publisher (src/events.rs) keeps
/// different messages apart.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_bad_config_gets_its_own_event_message() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(GOOD).await;
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        still_healthy(&c, &mut ctl, "start", 0).await;
        c.edit_config_data(&[("config.yaml", "pools: 42")]).await;
        c.wait_event(NS, CONFIG_MAP, "ConfigInvalid", "found number 42")
            .await;
        c.edit_config_data(&[("config.yaml", GOOD)]).await;
        ctl.wait_metric("ferrolb_config_valid", 1.0).await;
        c.edit_config_data(&[("config.yaml", "pools: true")]).await;
        c.wait_event(NS, CONFIG_MAP, "ConfigInvalid", "bool").await;
    })
    .await;
}
