//! Our own Helm chart (`deploy/helm/ferrolb`) through its whole life, with the real `helm`
//! against kube-sim and the real kube-apiserver (`FERROLB_API=sim|real|both`): `helm install`
//! with a pool config imported from MetalLB >= 0.13 (`ferrolb import metallb`), a real
//! controller allocating from the installed ConfigMap, `helm upgrade` changing values,
//! `helm rollback`, and `helm uninstall`. The real `kubectl` is the judge of what exists after
//! each step. On the real server the controller runs as the ServiceAccount the chart installed,
//! so its RBAC is judged by the real authorizer. No kubelet runs, so no Pod ever starts; the
//! test is about the objects.
//!
//! Needs `helm` 3 (tests/kube-sim/install-helm.sh) and `kubectl`; without them it prints a loud
//! SKIPPED line, unless `CI=true` or `FERROLB_E2E=1`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_testkit::api_cluster::*;
use ferrolb_testkit::{TempDir, TestApi};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// The release name, as in the README's quick start; its records live in `default`.
const RELEASE: &str = "ferrolb";

/// How long one `helm` or `kubectl` run may take (the machine is shared and helm is slow to
/// start; a hang must still end the test).
const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// Every object the chart installs with its default values: (kubectl kind, namespace, name).
const INSTALLED: &[(&str, Option<&str>, &str)] = &[
    ("namespace", None, NS),
    ("configmap", Some(NS), CONFIG_MAP),
    ("serviceaccount", Some(NS), "ferrolb-controller"),
    ("serviceaccount", Some(NS), "ferrolb-speaker"),
    ("clusterrole", None, "ferrolb:controller"),
    ("clusterrole", None, "ferrolb:speaker"),
    ("clusterrolebinding", None, "ferrolb:controller"),
    ("clusterrolebinding", None, "ferrolb:speaker"),
    ("role", Some(NS), "ferrolb-controller"),
    ("role", Some(NS), "ferrolb-speaker"),
    ("rolebinding", Some(NS), "ferrolb-controller"),
    ("rolebinding", Some(NS), "ferrolb-speaker"),
    ("deployment", Some(NS), "ferrolb-controller"),
    ("daemonset", Some(NS), "ferrolb-speaker"),
];

/// A Secret only the upgrade adds (`heartbeat.key`), so rollback must remove it.
const HEARTBEAT_SECRET: (&str, Option<&str>, &str) = ("secret", Some(NS), "ferrolb-heartbeat");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm` and `kubectl` against one API server, with private caches and homes.
struct Tools<'a> {
    kubeconfig: &'a Path,
    home: PathBuf,
}

/// What a finished tool run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Tools<'_> {
    async fn run(&self, tool: &str, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(tool);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig)
            .args(args)
            .current_dir(repo())
            .env("HOME", &self.home)
            .env("KUBECACHEDIR", self.home.join("kube-cache"))
            .env("HELM_CACHE_HOME", self.home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.home.join("helm-config"))
            .env("HELM_DATA_HOME", self.home.join("helm-data"))
            .kill_on_drop(true);
        let out = tokio::time::timeout(TOOL_DEADLINE, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{tool} {args:?} did not finish in {TOOL_DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("running {tool} {args:?}: {e}"));
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `helm args` and returns its stdout; fails the test when helm fails.
    async fn helm(&self, args: &[&str]) -> String {
        let r = self.run("helm", args).await;
        assert!(r.ok, "helm {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// `kubectl get KIND NAME -o json` (in `ns` if namespaced); `None` when it is NotFound.
    async fn get(&self, (kind, ns, name): (&str, Option<&str>, &str)) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let r = self.run("kubectl", &args).await;
        if !r.ok {
            assert!(
                r.stderr.contains("NotFound"),
                "kubectl {args:?} failed for another reason than NotFound: {}",
                r.stderr
            );
            return None;
        }
        Some(serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
            panic!(
                "kubectl {args:?} printed no JSON object ({e}): {}",
                r.stdout
            )
        }))
    }

    /// Like [`Tools::get`], failing the test when the object does not exist.
    async fn must_get(&self, what: (&str, Option<&str>, &str)) -> Value {
        self.get(what)
            .await
            .unwrap_or_else(|| panic!("{what:?} does not exist"))
    }

    /// Helm's release records, `(revision, status)` sorted, read from the labels of its
    /// Secrets in `default`.
    async fn releases(&self) -> Vec<(u32, String)> {
        let r = self
            .run(
                "kubectl",
                &[
                    "get",
                    "secrets",
                    "-n",
                    "default",
                    "-l",
                    &format!("owner=helm,name={RELEASE}"),
                    "-o",
                    "json",
                ],
            )
            .await;
        assert!(r.ok, "listing helm's release Secrets: {}", r.stderr);
        let list: Value = serde_json::from_str(&r.stdout).expect("kubectl prints a JSON list");
        let mut out: Vec<(u32, String)> = list["items"]
            .as_array()
            .expect("a list has items")
            .iter()
            .map(|s| {
                let label = |k: &str| s["metadata"]["labels"][k].as_str().unwrap_or_default();
                (
                    label("version").parse().unwrap_or(0),
                    label("status").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// The first container of a Deployment's or DaemonSet's Pod template.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// `(revision, status)` pairs for statuses of revisions 1, 2, ...
fn revisions(v: &[&str]) -> Vec<(u32, String)> {
    v.iter()
        .enumerate()
        .map(|(i, s)| (u32::try_from(i + 1).unwrap_or(0), s.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn our_chart_installs_upgrades_rolls_back_and_uninstalls() {
    const TEST: &str = "our_chart_installs_upgrades_rolls_back_and_uninstalls";
    if ferrolb_testkit::require(
        TEST,
        &[
            ("helm", "helm 3, see tests/kube-sim/install-helm.sh"),
            ("kubectl", "kubernetes-client"),
        ],
    )
    .is_err()
    {
        return;
    }
    for_each_backend(|backend| async move {
        let api = TestApi::start(backend)
            .await
            .unwrap_or_else(|e| panic!("starting the {backend} API server: {e}"));
        // Removed on drop, also when an assertion fails.
        let home = TempDir::new(&format!("ferrolb-helm-lifecycle-{backend}"))
            .expect("a temporary directory");
        let tools = Tools {
            kubeconfig: api.kubeconfig_path(),
            home: home.path().to_path_buf(),
        };
        lifecycle(&api, &tools).await;
    })
    .await;
}

async fn lifecycle(api: &TestApi, tools: &Tools<'_>) {
    let chart = repo().join("deploy/helm/ferrolb").display().to_string();

    // The MetalLB >= 0.13 CRDs of tests/data, imported the way the README says.
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["import", "metallb"])
        .arg(repo().join("tests/data/metallb/l2.yaml"))
        .output()
        .expect("run ferrolb import metallb");
    assert!(
        import.status.success(),
        "ferrolb import metallb: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let imported = tools.home.join("ferrolb-config.yaml");
    std::fs::write(&imported, &import.stdout).expect("write the imported ConfigMap");
    let imported_config = serde_saphyr::from_str::<Value>(&String::from_utf8_lossy(&import.stdout))
        .expect("the import prints a YAML ConfigMap")["data"]["config.yaml"]
        .as_str()
        .expect("the imported ConfigMap has config.yaml")
        .to_string();

    // install, with the imported ConfigMap as the config value
    let out = tools
        .helm(&[
            "install",
            RELEASE,
            &chart,
            "--set-file",
            &format!("config={}", imported.display()),
        ])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    for &what in INSTALLED {
        let obj = tools.must_get(what).await;
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{what:?}"
        );
        assert_eq!(
            obj["metadata"]["annotations"]["meta.helm.sh/release-name"], RELEASE,
            "{what:?}"
        );
    }
    assert!(tools.get(HEARTBEAT_SECRET).await.is_none(), "no key given");
    let cm = tools.must_get(INSTALLED[1]).await;
    assert_eq!(
        cm["data"],
        json!({"config.yaml": imported_config}),
        "the installed ConfigMap holds exactly the imported config"
    );
    let ctl = tools
        .must_get(("deployment", Some(NS), "ferrolb-controller"))
        .await;
    assert_eq!(ctl["spec"]["replicas"], 2);
    assert_eq!(container(&ctl)["image"], "ferrolb:latest");
    let speaker = tools
        .must_get(("daemonset", Some(NS), "ferrolb-speaker"))
        .await;
    assert_eq!(
        container(&speaker)["args"],
        json!(["speaker", "--metrics-addr", "0.0.0.0:7473"])
    );
    assert_eq!(tools.releases().await, revisions(&["deployed"]));

    // The installed config works: a real controller (as the chart's ServiceAccount on the real
    // server) allocates from the imported pools as MetalLB would, the `web` pool's
    // serviceSelector winning over the open `production` pool.
    controller_allocates_from_the_installed_config(api).await;

    // upgrade: the README's `--reuse-values` form, changing the image tag, the log format
    // (both daemons' args), the speaker's metrics port, the replicas, and adding a Secret.
    let out = tools
        .helm(&[
            "upgrade",
            RELEASE,
            &chart,
            "--reuse-values",
            "--set",
            "image.tag=v0.2.0",
            "--set",
            "logFormat=json",
            "--set",
            "speaker.metricsPort=9473",
            "--set",
            "controller.replicas=3",
            "--set",
            "heartbeat.key=a-key-the-operator-chose-0123456789",
        ])
        .await;
    assert!(out.contains("REVISION: 2"), "{out}");
    let ctl = tools
        .must_get(("deployment", Some(NS), "ferrolb-controller"))
        .await;
    assert_eq!(ctl["spec"]["replicas"], 3);
    assert_eq!(container(&ctl)["image"], "ferrolb:v0.2.0");
    let args = container(&ctl)["args"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        args.ends_with(&[json!("--log-format"), json!("json")]),
        "controller args: {args:?}"
    );
    let speaker = tools
        .must_get(("daemonset", Some(NS), "ferrolb-speaker"))
        .await;
    assert_eq!(container(&speaker)["image"], "ferrolb:v0.2.0");
    assert_eq!(
        container(&speaker)["args"],
        json!([
            "speaker",
            "--metrics-addr",
            "0.0.0.0:9473",
            "--log-format",
            "json"
        ])
    );
    assert_eq!(container(&speaker)["ports"][0]["containerPort"], 9473);
    let secret = tools.must_get(HEARTBEAT_SECRET).await;
    assert_eq!(
        secret["data"]["key"], "YS1rZXktdGhlLW9wZXJhdG9yLWNob3NlLTAxMjM0NTY3ODk=",
        "base64 of the key given"
    );
    let cm = tools.must_get(INSTALLED[1]).await;
    assert_eq!(
        cm["data"]["config.yaml"], imported_config,
        "--reuse-values keeps the imported config"
    );
    assert_eq!(
        tools.releases().await,
        revisions(&["superseded", "deployed"])
    );

    // rollback to the first revision: every changed field back, the added Secret gone.
    let out = tools.helm(&["rollback", RELEASE, "1"]).await;
    assert!(out.contains("Rollback was a success"), "{out}");
    let ctl = tools
        .must_get(("deployment", Some(NS), "ferrolb-controller"))
        .await;
    assert_eq!(ctl["spec"]["replicas"], 2);
    assert_eq!(container(&ctl)["image"], "ferrolb:latest");
    let speaker = tools
        .must_get(("daemonset", Some(NS), "ferrolb-speaker"))
        .await;
    assert_eq!(
        container(&speaker)["args"],
        json!(["speaker", "--metrics-addr", "0.0.0.0:7473"])
    );
    assert!(
        tools.get(HEARTBEAT_SECRET).await.is_none(),
        "rollback removes the Secret only revision 2 had"
    );
    assert_eq!(
        tools.releases().await,
        revisions(&["superseded", "superseded", "deployed"])
    );

    // uninstall: every object and every release record gone. With no namespace controller
    // (neither server runs one) a deleted Namespace may stay Terminating; it must be deleted.
    let out = tools.helm(&["uninstall", RELEASE]).await;
    assert!(out.contains("uninstalled"), "{out}");
    for &what in &INSTALLED[1..] {
        assert!(
            tools.get(what).await.is_none(),
            "{what:?} still exists after helm uninstall"
        );
    }
    if let Some(ns) = tools.get(INSTALLED[0]).await {
        assert!(
            ns["metadata"]["deletionTimestamp"].is_string(),
            "namespace {NS} neither gone nor being deleted after helm uninstall: {ns}"
        );
    }
    assert_eq!(tools.releases().await, revisions(&[]));
    let list = tools.helm(&["list", "-o", "json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&list).expect("helm list -o json"),
        json!([])
    );
}

/// Runs the real controller against the installed release and checks that a Service asking
/// for the imported `web` pool's selector gets one of its IPs. On the real server the
/// controller authenticates as the chart's `ferrolb-controller` ServiceAccount and none of its
/// requests may be refused.
async fn controller_allocates_from_the_installed_config(api: &TestApi) {
    let client = api.client().expect("API client");
    let kubeconfig = match api {
        TestApi::Sim(_) => api.kubeconfig_path().to_path_buf(),
        TestApi::Real(real) => {
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
            let req: TokenRequest = serde_json::from_value(
                json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
            )
            .expect("token request json");
            let token = sas
                .create_token_request("ferrolb-controller", &PostParams::default(), &req)
                .await
                .expect("TokenRequest for the chart's ferrolb-controller ServiceAccount")
                .status
                .expect("TokenRequest status")
                .token;
            let path = real.dir().join("helm-controller-sa.kubeconfig");
            std::fs::write(&path, real.token_kubeconfig(&real.url(), &token))
                .expect("write the ServiceAccount kubeconfig");
            path
        }
    };
    let ctl = Controller::spawn(&kubeconfig, FAST_LEADER, None);
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    let svc = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"tier": "web"}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))
    .expect("service json");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create default/web");
    let (ips, pool) = eventually("default/web to get an IP", DEADLINE, || async {
        let svc = services.get_opt("web").await.ok().flatten()?;
        let ips = ingress_ips(&svc);
        let pool = annotation(&svc, "ferrolb.io/allocated-from-pool")?;
        (!ips.is_empty()).then_some((ips, pool))
    })
    .await;
    assert_eq!(pool, "web", "{}", ctl.log());
    assert!(
        ips.iter()
            .all(|ip| ip == "198.51.100.80" || ip == "198.51.100.81"),
        "{ips:?} is not from the imported web pool (198.51.100.80-81)"
    );
    if api.backend() == ApiBackend::Real {
        let refused: Vec<String> = api
            .request_log()
            .into_iter()
            .filter(|r| r.user_agent.starts_with("ferrolb-controller/") && r.status == 403)
            .map(|r| format!("{} {} {:?}/{:?}", r.verb, r.resource, r.namespace, r.name))
            .collect();
        assert!(
            refused.is_empty(),
            "the chart's controller RBAC refused: {refused:#?}\n{}",
            ctl.log()
        );
    }
    // With `heartbeat.key` empty the chart leaves the speakers' key to the controller, which
    // creates it (on the real server as the chart's ServiceAccount, so the chart's RBAC allows
    // exactly that).
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), NS);
    let key_len = eventually(
        "the controller to create Secret ferrolb-heartbeat",
        DEADLINE,
        || async {
            let s = secrets.get_opt("ferrolb-heartbeat").await.ok().flatten()?;
            s.data?.get("key").map(|k| k.0.len())
        },
    )
    .await;
    assert_eq!(key_len, 32, "a 256-bit generated key");
    drop(ctl);
    // Helm never adopts an object it did not create, so an operator who now wants their own
    // key through the chart first deletes the generated Secret (docs/operations.md, "The
    // heartbeat key"); the upgrade below then creates the chart's.
    secrets
        .delete("ferrolb-heartbeat", &Default::default())
        .await
        .expect("delete the generated Secret ferrolb-heartbeat");
    services
        .delete("web", &Default::default())
        .await
        .expect("delete default/web");
}
