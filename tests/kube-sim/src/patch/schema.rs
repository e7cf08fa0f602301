//! The list-merge table strategic merge patch needs.
//!
//! The real API server reads `patchStrategy`/`patchMergeKey` struct tags from
//! the Go types in k8s.io/api. kube-sim has no Go types, so the tags that
//! matter for the kinds it serves are transcribed here by hand. Lists not in
//! the table are atomic (replaced whole), which is also what the real server
//! does for lists without a patch strategy (`+listType=atomic`, e.g. Pod
//! `spec.tolerations`, Node `spec.taints`, EndpointSlice `endpoints`).

/// How strategic merge patch combines a list field with the patch's list.
///
/// Exists so the strategic merge engine can ask one question per list field
/// instead of knowing any Kubernetes type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: elements are objects
    /// identified by this field; patch elements update or append.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars: set union, removals via
    /// `$deleteFromPrimitiveList/<field>`.
    MergeSet,
    /// No patch strategy: the patch's list replaces the live one.
    Replace,
}

/// One transcribed struct tag: `kind` (`*` for every kind) and the dotted
/// path of the list field from the object root, list indices elided.
struct Entry {
    kind: &'static str,
    path: &'static str,
    strategy: ListStrategy,
}

const fn entry(kind: &'static str, path: &'static str, strategy: ListStrategy) -> Entry {
    Entry {
        kind,
        path,
        strategy,
    }
}

use ListStrategy::{MergeByKey, MergeSet};

/// Container sub-lists, shared by `containers`, `initContainers` and
/// `ephemeralContainers` (k8s.io/api/core/v1 `Container` and
/// `EphemeralContainerCommon`). `envFrom` and `resizePolicy` are atomic.
const CONTAINER_LISTS: [(&str, ListStrategy); 4] = [
    ("ports", MergeByKey("containerPort")),
    ("env", MergeByKey("name")),
    ("volumeMounts", MergeByKey("mountPath")),
    ("volumeDevices", MergeByKey("devicePath")),
];

const CONTAINER_FIELDS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The table. Kinds kube-sim serves that have no list with a merge strategy
/// beyond `metadata` (ConfigMap, Event, EndpointSlice, Lease) have no entries
/// of their own.
static TABLE: &[Entry] = &[
    // ObjectMeta, every kind.
    entry("*", "metadata.finalizers", MergeSet),
    entry("*", "metadata.ownerReferences", MergeByKey("uid")),
    // Service.
    entry("Service", "spec.ports", MergeByKey("port")),
    entry("Service", "status.conditions", MergeByKey("type")),
    // Namespace (`spec.finalizers` has no strategy: atomic).
    entry("Namespace", "status.conditions", MergeByKey("type")),
    // Node (`spec.taints`, `status.images`, `status.volumesInUse`,
    // `status.volumesAttached` are atomic).
    entry("Node", "spec.podCIDRs", MergeSet),
    entry("Node", "status.conditions", MergeByKey("type")),
    entry("Node", "status.addresses", MergeByKey("type")),
    // Pod (`spec.tolerations`, `spec.readinessGates`, container statuses are
    // atomic). Container sub-lists are matched by `pod_container_list`.
    entry("Pod", "spec.containers", MergeByKey("name")),
    entry("Pod", "spec.initContainers", MergeByKey("name")),
    entry("Pod", "spec.ephemeralContainers", MergeByKey("name")),
    entry("Pod", "spec.volumes", MergeByKey("name")),
    entry("Pod", "spec.imagePullSecrets", MergeByKey("name")),
    entry("Pod", "spec.hostAliases", MergeByKey("ip")),
    entry(
        "Pod",
        "spec.topologySpreadConstraints",
        MergeByKey("topologyKey"),
    ),
    entry("Pod", "spec.schedulingGates", MergeByKey("name")),
    entry("Pod", "spec.resourceClaims", MergeByKey("name")),
    entry("Pod", "status.conditions", MergeByKey("type")),
    entry("Pod", "status.podIPs", MergeByKey("ip")),
    entry("Pod", "status.hostIPs", MergeByKey("ip")),
];

/// Returns the merge strategy of the list at `path` (field names from the
/// object root, list indices elided, e.g. `["spec", "containers", "env"]`)
/// in an object of `kind`.
///
/// This is the single source of truth the strategic merge engine consults;
/// anything not listed is [`ListStrategy::Replace`].
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    if kind == "Pod" {
        if let [spec, list, field] = path {
            if spec == "spec" && CONTAINER_FIELDS.contains(&list.as_str()) {
                return CONTAINER_LISTS
                    .iter()
                    .find(|(name, _)| name == field)
                    .map_or(ListStrategy::Replace, |(_, s)| *s);
            }
        }
    }
    TABLE
        .iter()
        .find(|e| (e.kind == "*" || e.kind == kind) && path_matches(e.path, path))
        .map_or(ListStrategy::Replace, |e| e.strategy)
}

fn path_matches(dotted: &str, path: &[String]) -> bool {
    let mut parts = dotted.split('.');
    path.iter().all(|p| parts.next() == Some(p.as_str())) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: &str, dotted: &str) -> ListStrategy {
        let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
        list_strategy(kind, &path)
    }

    #[test]
    fn metadata_lists_apply_to_every_kind() {
        for kind in ["Service", "ConfigMap", "Lease", "SomethingElse"] {
            assert_eq!(s(kind, "metadata.finalizers"), MergeSet);
            assert_eq!(s(kind, "metadata.ownerReferences"), MergeByKey("uid"));
            assert_eq!(s(kind, "metadata.managedFields"), ListStrategy::Replace);
        }
    }

    #[test]
    fn kind_specific_entries() {
        assert_eq!(s("Service", "spec.ports"), MergeByKey("port"));
        assert_eq!(s("Node", "spec.ports"), ListStrategy::Replace);
        assert_eq!(s("Node", "status.addresses"), MergeByKey("type"));
        assert_eq!(s("Node", "spec.taints"), ListStrategy::Replace);
        assert_eq!(s("Pod", "spec.tolerations"), ListStrategy::Replace);
        assert_eq!(
            s("Pod", "spec.containers.ports"),
            MergeByKey("containerPort")
        );
        assert_eq!(s("Pod", "spec.initContainers.env"), MergeByKey("name"));
        assert_eq!(
            s("Pod", "spec.containers.volumeMounts"),
            MergeByKey("mountPath")
        );
        assert_eq!(s("Pod", "spec.containers.envFrom"), ListStrategy::Replace);
        assert_eq!(s("Service", "spec.containers.ports"), ListStrategy::Replace);
        assert_eq!(s("EndpointSlice", "endpoints"), ListStrategy::Replace);
        // A prefix of a table path is not a match.
        assert_eq!(s("Service", "spec"), ListStrategy::Replace);
        assert_eq!(s("Service", "spec.ports.x"), ListStrategy::Replace);
    }
}
