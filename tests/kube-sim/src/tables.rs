//! Server-side Tables, so `kubectl get` prints the same columns it prints against a real
//! cluster (TYPE, CLUSTER-IP, EXTERNAL-IP showing `<pending>` or the IP, PORT(S), ...).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::events;

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Formats a duration the way the real server's `HumanDuration` does.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rem}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let rem = minutes % 60;
        return if rem == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rem}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let (d, h) = (hours / 24, hours % 24);
        return if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let (y, d) = (hours / 24 / 365, (hours / 24) % 365);
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&Value>) -> String {
    let Some(text) = ts.and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn selector_string(map: Option<&Value>) -> String {
    let mut parts: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(m) = map.and_then(Value::as_object) {
        for (k, v) in m {
            parts.insert(k, v.as_str().unwrap_or(""));
        }
    }
    or_none(
        parts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn service_row(o: &Value, wide: bool) -> Vec<Value> {
    let ty = s(o, "/spec/type");
    let ports = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let external_ips: Vec<String> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let external = match ty {
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ingress: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                                .map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ingress.extend(external_ips);
            let mut text = ingress.join(",");
            // The real printer truncates long ingress lists unless -o wide.
            if !wide && text.len() > 16 {
                text = format!("{}...", &text[..13]);
            }
            if text.is_empty() {
                "<pending>".into()
            } else {
                text
            }
        }
        _ => or_none(external_ips.join(",")),
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(ty),
        json!(s(o, "/spec/clusterIP")),
        json!(external),
        json!(or_none(ports)),
        json!(age_of(o.pointer("/metadata/creationTimestamp"))),
        json!(selector_string(o.pointer("/spec/selector"))),
    ]
}

fn node_row(o: &Value) -> Vec<Value> {
    let conditions = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = match conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Ready".to_string(),
        Some(c) if c.get("status").and_then(Value::as_str) == Some("False") => {
            "NotReady".to_string()
        }
        _ => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let addr = |ty: &str| {
        o.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(ty))
            })
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(status),
        json!(or_none(roles.join(","))),
        json!(age_of(o.pointer("/metadata/creationTimestamp"))),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_none(s(o, "/status/nodeInfo/osImage").to_string())),
        json!(or_none(s(o, "/status/nodeInfo/kernelVersion").to_string())),
        json!(or_none(
            s(o, "/status/nodeInfo/containerRuntimeVersion").to_string()
        )),
    ]
}

fn pod_row(o: &Value) -> Vec<Value> {
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        });
    let restarts: i64 = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum()
        });
    let status = if s(o, "/status/reason").is_empty() {
        s(o, "/status/phase")
    } else {
        s(o, "/status/reason")
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age_of(o.pointer("/metadata/creationTimestamp"))),
        json!(or_none(s(o, "/status/podIP").to_string())),
        json!(or_none(s(o, "/spec/nodeName").to_string())),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn event_row(o: &Value) -> Vec<Value> {
    let last = o
        .get("lastTimestamp")
        .filter(|v| !v.is_null())
        .or_else(|| o.pointer("/series/lastObservedTime"))
        .or_else(|| o.get("eventTime"));
    let first = o
        .get("firstTimestamp")
        .filter(|v| !v.is_null())
        .or_else(|| o.get("eventTime"));
    let object = format!(
        "{}/{}",
        s(o, "/involvedObject/kind").to_lowercase(),
        s(o, "/involvedObject/name")
    );
    let mut source = s(o, "/source/component").to_string();
    if source.is_empty() {
        source = s(o, "/reportingComponent").to_string();
    }
    if !s(o, "/source/host").is_empty() {
        source = format!("{source}, {}", s(o, "/source/host"));
    }
    vec![
        json!(age_of(last)),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(object),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(o, "/message").trim()),
        json!(age_of(first)),
        json!(o.get("count").and_then(Value::as_i64).unwrap_or(1)),
        json!(s(o, "/metadata/name")),
    ]
}

fn slice_row(o: &Value) -> Vec<Value> {
    let ports = o
        .get("ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("port").and_then(Value::as_i64))
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let addrs: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    vec![
        json!(s(o, "/metadata/name")),
        json!(s(o, "/addressType")),
        json!(if ports.is_empty() {
            "<unset>".to_string()
        } else {
            ports
        }),
        json!(if addrs.is_empty() {
            "<unset>".to_string()
        } else {
            addrs.join(",")
        }),
        json!(age_of(o.pointer("/metadata/creationTimestamp"))),
    ]
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn count(o: &Value, ptr: &str) -> usize {
    match o.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// `metav1.LabelSelectorAsSelector(...).String()`.
fn label_selector_string(sel: Option<&Value>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
    {
        for e in exprs {
            let key = s(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match s(e, "/operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            });
        }
    }
    parts.sort();
    or_none(parts.join(","))
}

/// Container names and images of a pod template, comma-joined.
fn containers_and_images(o: &Value) -> (String, String) {
    let containers = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn endpoints_cell(o: &Value) -> String {
    const MAX: usize = 3;
    let subsets = o
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut total = 0;
    for ss in &subsets {
        let addrs: Vec<&str> = ss
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| s(x, "/ip")).collect())
            .unwrap_or_default();
        let ports: Vec<i64> = ss
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| int(p, "/port")).collect())
            .unwrap_or_default();
        if ports.is_empty() {
            total += addrs.len();
            list.extend(
                addrs
                    .iter()
                    .take(MAX.saturating_sub(list.len()))
                    .map(|a| a.to_string()),
            );
            continue;
        }
        for port in ports {
            total += addrs.len();
            for a in &addrs {
                if list.len() == MAX {
                    break;
                }
                list.push(if a.contains(':') {
                    format!("[{a}]:{port}")
                } else {
                    format!("{a}:{port}")
                });
            }
        }
    }
    let text = list.join(",");
    if total > MAX {
        format!("{text} + {} more...", total - MAX)
    } else {
        text
    }
}

fn binding_row(o: &Value) -> Vec<Value> {
    let subjects = o
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let of_kind = |kind: &str| {
        subjects
            .iter()
            .filter(|x| s(x, "/kind") == kind)
            .map(|x| {
                if kind == "ServiceAccount" {
                    format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                } else {
                    s(x, "/name").to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(format!(
            "{}/{}",
            s(o, "/roleRef/kind"),
            s(o, "/roleRef/name")
        )),
        json!(age_of(o.pointer("/metadata/creationTimestamp"))),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

fn workload_row(kind: &str, o: &Value) -> Vec<Value> {
    let (names, images) = containers_and_images(o);
    let name = json!(s(o, "/metadata/name"));
    let age = json!(age_of(o.pointer("/metadata/creationTimestamp")));
    let selector = json!(label_selector_string(o.pointer("/spec/selector")));
    match kind {
        "Deployment" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            )),
            json!(int(o, "/status/updatedReplicas")),
            json!(int(o, "/status/availableReplicas")),
            age,
            json!(names),
            json!(images),
            selector,
        ],
        "ReplicaSet" => vec![
            name,
            json!(int(o, "/spec/replicas")),
            json!(int(o, "/status/replicas")),
            json!(int(o, "/status/readyReplicas")),
            age,
            json!(names),
            json!(images),
            selector,
        ],
        _ => vec![
            name,
            json!(int(o, "/status/desiredNumberScheduled")),
            json!(int(o, "/status/currentNumberScheduled")),
            json!(int(o, "/status/numberReady")),
            json!(int(o, "/status/updatedNumberScheduled")),
            json!(int(o, "/status/numberAvailable")),
            json!(selector_string(
                o.pointer("/spec/template/spec/nodeSelector")
            )),
            age,
            json!(names),
            json!(images),
            selector,
        ],
    }
}

/// The column definitions for `kind`.
pub fn columns(kind: &str) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
    match kind {
        "Service" => vec![
            name,
            col("Type", "string", 0, "type determines how the Service is exposed."),
            col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
            col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
            age,
            col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "ConfigMap" => vec![name, col("Data", "string", 0, "Data contains the configuration data."), age],
        "Namespace" => vec![name, col("Status", "string", 0, "The status of the namespace"), age],
        "Node" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "Pod" => vec![
            name,
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age,
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
            col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
            col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        "Event" => vec![
            col("Last Seen", "string", 0, "The last time this event was recorded"),
            col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for this event being generated."),
            col("Object", "string", 0, "The object that this event is about."),
            col("Subobject", "string", 1, "The subobject that this event is about."),
            col("Source", "string", 1, "The component reporting this event."),
            col("Message", "string", 0, "A human-readable description of the status of this operation."),
            col("First Seen", "string", 1, "The time at which the event was first recorded."),
            col("Count", "string", 1, "The number of times this event has occurred."),
            col("Name", "string", 1, "Name must be unique within a namespace."),
        ],
        "Lease" => vec![name, col("Holder", "string", 0, "HolderIdentity contains the identity of the holder of a current lease."), age],
        "EndpointSlice" => vec![
            name,
            col("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            col("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            col("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
            age,
        ],
        "Secret" => vec![
            name,
            col("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", 0, "Data contains the secret data."),
            age,
        ],
        "Endpoints" => vec![name, col("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."), age],
        "ServiceAccount" => vec![name, col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), age],
        "Deployment" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        "ReplicaSet" => vec![
            name,
            col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        "DaemonSet" => vec![
            name,
            col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
            col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
            col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
            age,
            col("Users", "string", 1, "Users in the roleBinding"),
            col("Groups", "string", 1, "Groups in the roleBinding"),
            col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
        ],
        // Kinds without a printer get the generic table: NAME and CREATED AT.
        "Role" | "ClusterRole" => vec![name, col("Created At", "date", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")],
        _ => vec![name, age],
    }
}

/// The cells of one row for `obj` of `kind`.
pub fn cells(kind: &str, obj: &Value, wide: bool) -> Vec<Value> {
    match kind {
        "Service" => service_row(obj, wide),
        "ConfigMap" => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![
                json!(s(obj, "/metadata/name")),
                json!(n),
                json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
            ]
        }
        "Namespace" => vec![
            json!(s(obj, "/metadata/name")),
            json!(s(obj, "/status/phase")),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
        "Node" => node_row(obj),
        "Pod" => pod_row(obj),
        "Event" => {
            // events.k8s.io objects are printed with the core/v1 columns, as kubectl does.
            if obj.get("apiVersion").and_then(Value::as_str) == Some("events.k8s.io/v1") {
                event_row(&events::to_core(obj))
            } else {
                event_row(obj)
            }
        }
        "Lease" => vec![
            json!(s(obj, "/metadata/name")),
            json!(s(obj, "/spec/holderIdentity")),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
        "EndpointSlice" => slice_row(obj),
        // Secret values never reach a table: only the type and how many keys.
        "Secret" => vec![
            json!(s(obj, "/metadata/name")),
            json!(s(obj, "/type")),
            json!(count(obj, "/data")),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
        "Endpoints" => vec![
            json!(s(obj, "/metadata/name")),
            json!(endpoints_cell(obj)),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
        "ServiceAccount" => vec![
            json!(s(obj, "/metadata/name")),
            json!(count(obj, "/secrets")),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
        "Deployment" | "ReplicaSet" | "DaemonSet" => workload_row(kind, obj),
        "RoleBinding" | "ClusterRoleBinding" => binding_row(obj),
        "Role" | "ClusterRole" => vec![
            json!(s(obj, "/metadata/name")),
            json!(s(obj, "/metadata/creationTimestamp")),
        ],
        _ => vec![
            json!(s(obj, "/metadata/name")),
            json!(age_of(obj.pointer("/metadata/creationTimestamp"))),
        ],
    }
}

fn row(kind: &str, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(kind, obj, true)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            });
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of `objs`, consistent with resourceVersion `rv` (kubectl's `get -w` starts there).
pub fn table<'a>(
    kind: &str,
    objs: impl IntoIterator<Item = &'a Value>,
    rv: u64,
    include: IncludeObject,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns(kind),
        "rows": objs.into_iter().map(|o| row(kind, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_the_real_printer() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn service_external_ip_pending_then_ip() {
        let mut svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}});
        let c = cells("Service", &svc, false);
        assert_eq!(c[1], "LoadBalancer");
        assert_eq!(c[3], "<pending>");
        assert_eq!(c[4], "80:30080/TCP");
        assert_eq!(c[6], "app=web");
        svc["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "198.51.100.10", "ipMode": "VIP"}]);
        assert_eq!(cells("Service", &svc, false)[3], "198.51.100.10");
        let cip = json!({"metadata": {"name": "c"}, "spec": {"type": "ClusterIP", "ports": [{"port": 53, "protocol": "UDP"}]}});
        assert_eq!(cells("Service", &cip, false)[3], "<none>");
        assert_eq!(cells("Service", &cip, false)[4], "53/UDP");
    }
}
