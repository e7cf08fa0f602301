//! The real API fixture does what the suites rely on: it serves v1.32, enforces RBAC against
//! ServiceAccount tokens from the TokenRequest API, and leaves no process or file behind.
//!
//! These run only when `FERROLB_API` selects the real backend (`real` or `both`); otherwise
//! they say so and return. `real_api_startup_time` is a measurement, run on demand with
//! `cargo test -p ferrolb-testkit --test real_api -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use ferrolb_testkit::{selected_backends, ApiBackend, RealApi};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn real_selected(test: &str) -> bool {
    let yes = selected_backends().contains(&ApiBackend::Real);
    if !yes {
        eprintln!("{test}: not run, FERROLB_API does not select the real API server");
    }
    yes
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pids of the fixture's processes, found by the temp dir on their command lines.
fn pids_using(dir: &std::path::Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_is_enforced_for_service_account_tokens_and_drop_cleans_up() {
    if !real_selected("rbac_is_enforced_for_service_account_tokens_and_drop_cleans_up") {
        return;
    }
    let api = RealApi::start().await.expect("real API server starts");
    let admin = api.client().expect("admin client");
    let version = admin.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );

    // A ServiceAccount with no role at all: its token authenticates but grants nothing.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "nobody"}})).expect("sa json");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount default/nobody");
    let req: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))
            .expect("token request json");
    let token = sas
        .create_token_request("nobody", &PostParams::default(), &req)
        .await
        .expect("TokenRequest for default/nobody")
        .status
        .expect("TokenRequest status")
        .token;
    let dir = std::env::temp_dir().join(format!("ferrolb-testkit-rbac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.token_kubeconfig(&api.url(), &token)).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config from token kubeconfig");
    let nobody = kube::Client::try_from(config).expect("token client");
    let services: Api<Service> = Api::namespaced(nobody, "default");
    match services.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains("system:serviceaccount:default:nobody"),
                "{s:?}"
            );
        }
        other => panic!("listing Services without a role must be forbidden, got {other:?}"),
    }
    let admin_services: Api<Service> = Api::namespaced(admin, "default");
    admin_services
        .list(&ListParams::default())
        .await
        .expect("the admin (system:masters) may list Services");
    let _ = std::fs::remove_dir_all(&dir);

    let fixture_dir = api.dir().to_path_buf();
    let pids = pids_using(&fixture_dir);
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver run: {pids:?}");
    drop(api);
    for pid in pids {
        assert!(!pid_alive(pid), "process {pid} outlived the fixture");
    }
    assert!(
        !fixture_dir.exists(),
        "{} was not removed",
        fixture_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn real_api_startup_time() {
    const STARTS: usize = 10;
    let mut times: Vec<Duration> = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let t = Instant::now();
        let api = RealApi::start().await.expect("real API server starts");
        times.push(t.elapsed());
        drop(api);
    }
    times.sort();
    let median = times[STARTS / 2];
    // With 10 samples the 99th percentile is the maximum.
    let p99 = times[STARTS - 1];
    println!(
        "real API startup (etcd + kube-apiserver to /readyz ok and namespace default), {STARTS} \
         starts: median {median:?}, p99 {p99:?}, min {:?}",
        times[0]
    );
}
