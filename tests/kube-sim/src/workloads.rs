//! apps/v1 Deployments, ReplicaSets and DaemonSets are stored objects only: no controller
//! creates ReplicaSets or Pods, as on an API server without a controller manager. What the
//! real server itself does on create is done here: the defaults `kubectl get` and Helm read
//! back, and an empty status.

use serde_json::{json, Value};

fn default(obj: &mut Value, pointer: &str, key: &str, value: Value) {
    if let Some(m) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
        m.entry(key.to_owned()).or_insert(value);
    }
}

/// Applies the API server's defaults for a new `kind` object and clears its status.
pub fn prepare_create(kind: &str, obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    match kind {
        "Deployment" => {
            default(obj, "/spec", "replicas", json!(1));
            default(obj, "/spec", "revisionHistoryLimit", json!(10));
            default(obj, "/spec", "progressDeadlineSeconds", json!(600));
            default(
                obj,
                "/spec",
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
        }
        "ReplicaSet" => default(obj, "/spec", "replicas", json!(1)),
        "DaemonSet" => {
            default(obj, "/spec", "revisionHistoryLimit", json!(10));
            default(
                obj,
                "/spec",
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        _ => return,
    }
    obj["status"] = json!({});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_keep_what_the_client_set() {
        let mut d = json!({"spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}},
                           "status": {"replicas": 3}});
        prepare_create("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["status"], json!({}));
    }
}
