//! The object store: every object of every resource under one lock, one global
//! monotonically increasing resourceVersion (as etcd has), a bounded change history that
//! watches replay from, and a broadcast channel that fans live changes out to watchers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::{storage_of, RESOURCES};
use crate::services::ServiceAllocations;
use crate::status::ApiError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed (the object carries the deletion resourceVersion).
    Deleted,
}

impl ChangeKind {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One committed change, as stored in the history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the change was committed at.
    pub rv: u64,
    /// Storage index of the resource in [`RESOURCES`].
    pub resource: usize,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for deletions: the last state, with the deletion RV).
    pub object: Arc<Value>,
    /// The object before the change, so watchers with selectors can tell "left the
    /// selection" (sent as DELETED) from "changed inside it".
    pub old: Option<Arc<Value>>,
}

/// A committed change as the history and the watch fan-out carry it: the change, plus its
/// watch lines (`{"type":…,"object":…}\n`), each serialised at most once and shared by every
/// watcher that sends it, so fan-out costs one serialisation per event, not one per watcher.
#[derive(Debug)]
pub struct Committed {
    /// The change.
    pub change: Arc<Change>,
    /// ADDED, MODIFIED and DELETED lines, filled on first use.
    lines: [OnceLock<Bytes>; 3],
}

impl Committed {
    fn new(change: Arc<Change>) -> Self {
        Self {
            change,
            lines: Default::default(),
        }
    }

    /// The watch line announcing this change's object as `kind` (a watcher with selectors
    /// may see a modification as ADDED or DELETED).
    pub fn line(&self, kind: ChangeKind) -> Bytes {
        let slot = match kind {
            ChangeKind::Added => 0,
            ChangeKind::Modified => 1,
            ChangeKind::Deleted => 2,
        };
        self.lines[slot]
            .get_or_init(|| crate::watch::event_line(kind.as_str(), &self.change.object))
            .clone()
    }
}

/// The decision a mutation closure returns after looking at the current object.
pub enum Outcome {
    /// Store this object (create or replace), returning it with its new resourceVersion.
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing; return this object to the client.
    Unchanged(Arc<Value>),
}

/// Mutable state a mutation may need besides the object: cluster IP and node port
/// allocations live under the same lock so two creates can never get the same port.
pub struct MutationCtx<'a> {
    /// Service cluster IPs and node ports in use.
    pub services: &'a mut ServiceAllocations,
}

type Key = (usize, String, String);

struct State {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<Committed>>,
    /// Every change with an RV above this one is still in `history`.
    replayable_after: u64,
    full_history: Option<Vec<Arc<Change>>>,
    services: ServiceAllocations,
}

/// The store shared by every request handler.
pub struct Store {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Committed>>,
    history_limit: usize,
}

/// A watch resuming from history: the changes to replay, then a receiver for live ones.
pub type WatchStart = (Vec<Arc<Committed>>, broadcast::Receiver<Arc<Committed>>);

/// Why a watch cannot start at the requested resourceVersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The RV the client asked for.
    pub requested: u64,
    /// The oldest RV a watch may start from now.
    pub oldest: u64,
}

impl Store {
    /// An empty store whose history keeps the last `history_limit` changes; with
    /// `keep_full_history` every change is also kept forever for later inspection by tests.
    pub fn new(history_limit: usize, keep_full_history: bool) -> Self {
        // Watchers that fall this far behind are disconnected and resume from history.
        let (tx, _) = broadcast::channel(history_limit.clamp(1024, 1 << 17));
        Self {
            state: Mutex::new(State {
                rv: 100,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                replayable_after: 100,
                full_history: keep_full_history.then(Vec::new),
                services: ServiceAllocations::default(),
            }),
            tx,
            history_limit: history_limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a kube-sim bug; keep serving regardless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest committed resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The object, if it exists.
    pub fn get(&self, resource: usize, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let key = (
            storage_of(resource),
            namespace.to_string(),
            name.to_string(),
        );
        self.lock().objects.get(&key).cloned()
    }

    /// Every object of `resource` (in `namespace`, or everywhere), in name order, and the RV the
    /// list is consistent with.
    pub fn list(&self, resource: usize, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let st = self.lock();
        (Self::list_locked(&st, resource, namespace), st.rv)
    }

    fn list_locked(st: &State, resource: usize, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let res = storage_of(resource);
        let lo = (res, namespace.unwrap_or("").to_string(), String::new());
        st.objects
            .range(lo..)
            .take_while(|((r, ns, _), _)| *r == res && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Runs `decide` on the current object under the store lock and commits its outcome
    /// atomically: this is how every create, update, patch and delete is done, so
    /// read-check-write races (stale RVs, duplicate ports) cannot happen.
    pub fn mutate<F>(
        &self,
        resource: usize,
        namespace: &str,
        name: &str,
        decide: F,
    ) -> Result<(Arc<Value>, Option<ChangeKind>), ApiError>
    where
        F: FnOnce(Option<&Arc<Value>>, &mut MutationCtx<'_>) -> Result<Outcome, ApiError>,
    {
        let res = storage_of(resource);
        let key = (res, namespace.to_string(), name.to_string());
        let mut st = self.lock();
        let current = st.objects.get(&key).cloned();
        let outcome = {
            let mut ctx = MutationCtx {
                services: &mut st.services,
            };
            decide(current.as_ref(), &mut ctx)?
        };
        match outcome {
            Outcome::Unchanged(obj) => Ok((obj, None)),
            Outcome::Put(mut obj) => {
                let kind = if current.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                st.rv += 1;
                set_rv(&mut obj, st.rv);
                let obj = Arc::new(obj);
                st.objects.insert(key, obj.clone());
                self.record(&mut st, res, namespace, kind, obj.clone(), current);
                Ok((obj, Some(kind)))
            }
            Outcome::Delete => {
                let Some(old) = current else {
                    return Err(ApiError::not_found(&RESOURCES[resource], name));
                };
                st.objects.remove(&key);
                st.rv += 1;
                let mut last = (*old).clone();
                set_rv(&mut last, st.rv);
                let last = Arc::new(last);
                self.record(
                    &mut st,
                    res,
                    namespace,
                    ChangeKind::Deleted,
                    last.clone(),
                    Some(old),
                );
                Ok((last, Some(ChangeKind::Deleted)))
            }
        }
    }

    /// Removes every namespaced object in `namespace` (what the namespace controller does
    /// when a namespace is deleted), emitting DELETED for each.
    pub fn purge_namespace(
        &self,
        namespace: &str,
        mut on_delete: impl FnMut(&mut ServiceAllocations, &Value),
    ) {
        let mut st = self.lock();
        let keys: Vec<Key> = st
            .objects
            .keys()
            .filter(|(r, ns, _)| RESOURCES[*r].namespaced && ns == namespace)
            .cloned()
            .collect();
        for key in keys {
            if let Some(old) = st.objects.remove(&key) {
                on_delete(&mut st.services, &old);
                st.rv += 1;
                let mut last = (*old).clone();
                set_rv(&mut last, st.rv);
                self.record(
                    &mut st,
                    key.0,
                    namespace,
                    ChangeKind::Deleted,
                    Arc::new(last),
                    Some(old),
                );
            }
        }
    }

    fn record(
        &self,
        st: &mut State,
        resource: usize,
        namespace: &str,
        kind: ChangeKind,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let change = Arc::new(Change {
            rv: st.rv,
            resource,
            namespace: namespace.to_string(),
            kind,
            object,
            old,
        });
        if let Some(full) = st.full_history.as_mut() {
            full.push(change.clone());
        }
        let committed = Arc::new(Committed::new(change));
        st.history.push_back(committed.clone());
        while st.history.len() > self.history_limit {
            if let Some(dropped) = st.history.pop_front() {
                st.replayable_after = dropped.change.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(committed);
    }

    /// Starts a watch at `since`: the changes after it still in history, plus a receiver for
    /// everything committed later, taken under one lock so nothing falls in between.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, Expired> {
        let st = self.lock();
        if since < st.replayable_after {
            return Err(Expired {
                requested: since,
                oldest: st.replayable_after,
            });
        }
        let backlog = st
            .history
            .iter()
            .filter(|c| c.change.rv > since)
            .cloned()
            .collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// Starts a watch with the current state: every object as a synthetic ADDED, the RV they
    /// are consistent with, and a receiver for later changes.
    pub fn watch_with_initial(
        &self,
        resource: usize,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Committed>>) {
        let st = self.lock();
        (
            Self::list_locked(&st, resource, namespace),
            st.rv,
            self.tx.subscribe(),
        )
    }

    /// Forgets the change history, so every watch resuming from an older RV gets 410 Gone.
    pub fn drop_history(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.replayable_after = st.rv;
    }

    /// Every change since start, if the store was created with `keep_full_history`.
    pub fn full_history(&self) -> Option<Vec<Arc<Change>>> {
        self.lock().full_history.clone()
    }

    /// Number of objects stored, for load tests.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_change_is_serialised_once_and_shared() {
        let store = Store::new(10, false);
        let (_, mut rx) = store.watch_from(100).expect("watch starts");
        store
            .mutate(1, "default", "cm", |_, _| {
                Ok(Outcome::Put(
                    json!({"metadata": {"name": "cm", "namespace": "default"}, "data": {"a": "1"}}),
                ))
            })
            .expect("stored");
        let committed = rx.try_recv().expect("the change is broadcast");
        let (a, b) = (
            committed.line(ChangeKind::Added),
            committed.line(ChangeKind::Added),
        );
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a second copy");
        let line: Value = serde_json::from_slice(&a).expect("one JSON line");
        assert_eq!(line["type"], "ADDED");
        assert_eq!(line["object"]["data"]["a"], "1");
        assert_eq!(line["object"]["metadata"]["resourceVersion"], "101");
        assert!(a.ends_with(b"}\n"));
        let deleted: Value =
            serde_json::from_slice(&committed.line(ChangeKind::Deleted)).expect("JSON");
        assert_eq!(deleted["type"], "DELETED");
    }
}
