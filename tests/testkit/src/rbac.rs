//! RBAC checks against a real API server: applying `deploy/`'s roles, acting as their
//! ServiceAccount, and minimality (every rule of a manifest must be needed, so the tests run
//! their scenario once per rule with that one rule removed and expect a refused request).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// The YAML documents of manifest `text` (from `file`, named in errors), as JSON values;
/// documents holding only comments are skipped. Panics on invalid YAML, naming the file.
pub fn manifest_docs(file: &str, text: &str) -> Vec<Value> {
    text.split("\n---")
        .filter(|part| {
            part.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|part| serde_saphyr::from_str::<Value>(part).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

/// `kubectl apply` of `deploy/namespace.yaml` and `rbac` (YAML or JSON, fed on stdin) with the
/// admin `kubeconfig`. Panics if kubectl fails, naming `what` was applied.
pub fn apply_with_namespace(kubeconfig: &Path, rbac: &str, what: &str) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f"])
        .arg(crate::binary::workspace_root().join("deploy/namespace.yaml"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl apply");
    child
        .stdin
        .take()
        .expect("kubectl stdin")
        .write_all(rbac.as_bytes())
        .unwrap_or_else(|e| panic!("write the {what} manifest to kubectl: {e}"));
    let out = child.wait_with_output().expect("wait for kubectl apply");
    assert!(
        out.status.success(),
        "kubectl apply of the {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A one-hour token of ServiceAccount `namespace/name` from the TokenRequest API, so a test
/// acts with exactly the rights the manifests give it.
pub async fn service_account_token(client: &kube::Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let req: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("TokenRequest literal");
    sas.create_token_request(name, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
        .status
        .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} has no status"))
        .token
}

/// The requests in `log` that the server refused (403) to a client whose User-Agent starts
/// with `user_agent_prefix` (e.g. `ferrolb-speaker/`), one line each: verb,
/// resource/subresource, namespace and name.
pub fn refused_requests(log: Vec<kube_sim::RequestRecord>, user_agent_prefix: &str) -> Vec<String> {
    log.into_iter()
        .filter(|r| r.user_agent.starts_with(user_agent_prefix) && r.status == 403)
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
        .collect()
}

/// For each rule of each Role/ClusterRole in `docs`: a name for it and a copy of `docs` with
/// exactly that rule removed.
pub fn without_each_rule(docs: &[Value]) -> Vec<(String, Vec<Value>)> {
    let mut variants = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let rules = doc["rules"].as_array().cloned().unwrap_or_default();
        for (r, rule) in rules.iter().enumerate() {
            let mut without = docs.to_vec();
            if let Some(list) = without[d]["rules"].as_array_mut() {
                list.remove(r);
            }
            let name = format!(
                "{} {} rule {r}: {rule}",
                doc["kind"], doc["metadata"]["name"]
            );
            variants.push((name, without));
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_variant_per_rule_each_missing_only_that_rule() {
        let docs = vec![
            json!({"kind": "Role", "metadata": {"name": "a"}, "rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "a"}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "b"}, "rules": [{"verbs": ["watch"]}]}),
        ];
        let v = without_each_rule(&docs);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].1[0]["rules"], json!([{"verbs": ["list"]}]));
        assert_eq!(v[1].1[0]["rules"], json!([{"verbs": ["get"]}]));
        assert_eq!(v[2].1[2]["rules"], json!([]));
        assert_eq!(v[2].1[0], docs[0], "other documents untouched");
        assert!(v[1].0.contains("rule 1"), "{}", v[1].0);
    }
}
