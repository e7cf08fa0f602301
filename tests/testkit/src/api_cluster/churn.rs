//! A seeded generator of Service churn for the reliability tests: creates, edits (ports,
//! sharing keys, requested IPs, externalTrafficPolicy, type changes to ClusterIP and back) and
//! deletes, over a fixed set of name slots.
//!
//! Every request it makes is satisfiable once the churn stops, with the pools of [`POOLS`]:
//! * slots below `pinned` never carry a sharing key; each may request its own IP
//!   `203.0.113.<slot>` (pool `pinned`, autoAssign false), through the annotation or
//!   `spec.loadBalancerIP`, so no two Services ever ask for the same IP;
//! * the other slots get automatic IPs from pool `auto` (512 addresses for at most 500
//!   Services, one IP each at most), with or without a sharing key; ports and
//!   externalTrafficPolicy sometimes make sharing impossible (port 80 or 53/UDP used by
//!   several, Local with another selector), which just costs one more IP.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// Pools the churn is designed for.
pub const POOLS: &str = "pools:\n  - name: auto\n    addresses: [\"198.51.100.0/24\", \"192.0.2.0/24\"]\n  - name: pinned\n    autoAssign: false\n    addresses: [\"203.0.113.0/24\"]\n";

/// Namespace of the churned Services.
pub const CHURN_NS: &str = "churn";

/// The first bytes of the two automatic ranges.
pub const AUTO_PREFIXES: &[&str] = &["198.51.100.", "192.0.2."];

#[derive(Debug, Clone)]
struct Slot {
    lb: bool,
    /// Pinned slots: whether the pin is requested, and through which field.
    pin: bool,
    pin_via_spec: bool,
    key: Option<u8>,
    ports: u8,
    local: bool,
}

/// One API request the churn wants made.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create this Service.
    Create(String, Value),
    /// Merge-patch this Service.
    Patch(String, Value, &'static str),
    /// Delete this Service.
    Delete(String),
}

/// The churn generator and its model of what should exist.
pub struct Churn {
    rng: StdRng,
    pinned: usize,
    slots: Vec<Option<Slot>>,
    /// Ops generated, by kind.
    pub counts: BTreeMap<&'static str, usize>,
    allow_edits: bool,
}

/// Name of slot `i`.
pub fn slot_name(i: usize) -> String {
    format!("slot-{i:03}")
}

impl Churn {
    /// `slots` name slots, the first `pinned` of which may request fixed IPs.
    pub fn new(seed: u64, slots: usize, pinned: usize) -> Self {
        assert!(pinned <= 256 && slots - pinned <= 512);
        Self {
            rng: StdRng::seed_from_u64(seed),
            pinned,
            slots: vec![None; slots],
            counts: BTreeMap::new(),
            allow_edits: true,
        }
    }

    /// With `false`, only creates and deletes are generated (so injected faults on `patch`
    /// hit the controller, not the churn).
    pub fn allow_edits(&mut self, yes: bool) {
        self.allow_edits = yes;
    }

    /// Forgets what the model says about slot `i` after a request with an unknown outcome;
    /// [`Churn::resync`] restores it from the API.
    pub fn resync(&mut self, i: usize, exists: Option<&Value>) {
        self.slots[i] = exists.map(|v| self.slot_from(i, v));
    }

    fn slot_from(&self, i: usize, v: &Value) -> Slot {
        let ann = &v["metadata"]["annotations"];
        let key = ann["ferrolb.io/allow-shared-ip"]
            .as_str()
            .and_then(|k| k.strip_prefix("grp-"))
            .and_then(|k| k.parse().ok());
        let ports = v["spec"]["ports"]
            .as_array()
            .and_then(|a| a.first())
            .map_or(0, |p| match p["port"].as_i64() {
                Some(80) => 2,
                Some(p) if p >= 20000 => 1,
                Some(_) if v["spec"]["ports"].as_array().is_some_and(|a| a.len() > 1) => 3,
                _ => 0,
            });
        Slot {
            lb: v["spec"]["type"] == "LoadBalancer",
            pin: ann["ferrolb.io/loadBalancerIPs"].is_string()
                || v["spec"]["loadBalancerIP"].is_string(),
            pin_via_spec: v["spec"]["loadBalancerIP"].is_string(),
            key: if i < self.pinned { None } else { key },
            ports,
            local: v["spec"]["externalTrafficPolicy"] == "Local",
        }
    }

    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Whether the model has slot `i` existing.
    pub fn exists(&self, i: usize) -> bool {
        self.slots[i].is_some()
    }

    /// The IP slot `i` must end with, if it requests one.
    pub fn pinned_ip(&self, i: usize) -> Option<String> {
        let s = self.slots[i].as_ref()?;
        (i < self.pinned && s.lb && s.pin).then(|| format!("203.0.113.{i}"))
    }

    /// Whether slot `i` is a LoadBalancer in the model.
    pub fn is_lb(&self, i: usize) -> bool {
        self.slots[i].as_ref().is_some_and(|s| s.lb)
    }

    fn random_slot(&mut self, i: usize) -> Slot {
        let pinned = i < self.pinned;
        Slot {
            lb: self.rng.random_bool(0.9),
            pin: pinned && self.rng.random_bool(0.6),
            pin_via_spec: self.rng.random_bool(0.3),
            key: (!pinned && self.rng.random_bool(0.6)).then(|| self.rng.random_range(0..20)),
            ports: self.rng.random_range(0..4),
            local: self.rng.random_bool(0.2),
        }
    }

    /// The next request for a slot chosen among `range`.
    pub fn next_op(&mut self, range: std::ops::Range<usize>) -> Op {
        let i = self.rng.random_range(range);
        self.op_for(i)
    }

    /// The next request for slot `i`.
    pub fn op_for(&mut self, i: usize) -> Op {
        let name = slot_name(i);
        let Some(cur) = self.slots[i].clone() else {
            let s = self.random_slot(i);
            let body = self.body(i, &s, false);
            self.slots[i] = Some(s);
            *self.counts.entry("create").or_default() += 1;
            return Op::Create(name, body);
        };
        let roll = self.rng.random_range(0..100);
        if roll < 12 || !self.allow_edits {
            self.slots[i] = None;
            *self.counts.entry("delete").or_default() += 1;
            return Op::Delete(name);
        }
        let mut s = cur;
        let what: &'static str = match roll {
            12..=29 => {
                s.lb = !s.lb;
                if s.lb {
                    "type->LoadBalancer"
                } else {
                    "type->ClusterIP"
                }
            }
            30..=54 => {
                let old = s.ports;
                while s.ports == old {
                    s.ports = self.rng.random_range(0..4);
                }
                "ports"
            }
            55..=79 if i >= self.pinned => {
                let old = s.key;
                while s.key == old {
                    s.key = self
                        .rng
                        .random_bool(0.8)
                        .then(|| self.rng.random_range(0..20));
                }
                "sharing-key"
            }
            55..=79 => {
                if s.pin && self.rng.random_bool(0.3) {
                    s.pin_via_spec = !s.pin_via_spec;
                } else {
                    s.pin = !s.pin;
                }
                "requested-ip"
            }
            _ => {
                s.local = !s.local;
                "traffic-policy"
            }
        };
        let body = self.body(i, &s, true);
        self.slots[i] = Some(s);
        *self.counts.entry(what).or_default() += 1;
        Op::Patch(name, body, what)
    }

    /// The Service for slot `i` in state `s`; `patch` adds explicit nulls for what is absent.
    fn body(&self, i: usize, s: &Slot, patch: bool) -> Value {
        let null_or = |v: Option<Value>| v.unwrap_or(Value::Null);
        let pin_ip = format!("203.0.113.{i}");
        let mut ann = Map::new();
        ann.insert(
            "ferrolb.io/allow-shared-ip".into(),
            null_or(s.key.map(|k| json!(format!("grp-{k}")))),
        );
        ann.insert(
            "ferrolb.io/loadBalancerIPs".into(),
            null_or((s.pin && !s.pin_via_spec).then(|| json!(pin_ip))),
        );
        let base = 10000 + i as i64;
        let ports = match s.ports {
            0 => json!([{"name": "a", "port": base, "protocol": "TCP"}]),
            1 => json!([{"name": "a", "port": base + 10000, "protocol": "TCP"},
                        {"name": "b", "port": base + 10000, "protocol": "UDP"}]),
            2 => json!([{"name": "a", "port": 80, "protocol": "TCP"}]),
            _ => json!([{"name": "a", "port": base, "protocol": "TCP"},
                        {"name": "b", "port": 53, "protocol": "UDP"}]),
        };
        let selector = match s.key {
            Some(k) => format!("grp-{k}"),
            None => slot_name(i),
        };
        let mut spec = json!({
            "type": if s.lb { "LoadBalancer" } else { "ClusterIP" },
            "selector": {"app": selector},
            "ports": ports,
            "loadBalancerIP": null_or((s.lb && s.pin && s.pin_via_spec).then(|| json!(pin_ip))),
            "externalTrafficPolicy": null_or(s.lb.then(|| json!(if s.local { "Local" } else { "Cluster" }))),
            "allocateLoadBalancerNodePorts": null_or(s.lb.then_some(json!(false))),
        });
        let mut meta = json!({"name": slot_name(i), "namespace": CHURN_NS, "annotations": ann});
        if !patch {
            strip_nulls(&mut spec);
            strip_nulls(&mut meta);
            return json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec});
        }
        json!({"metadata": {"annotations": meta["annotations"].clone()}, "spec": spec})
    }
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}

/// Applies `op`; `Ok(())` or the API error.
pub async fn apply(client: &kube::Client, op: &Op) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    let api: Api<Service> = Api::namespaced(client.clone(), CHURN_NS);
    match op {
        Op::Create(_, body) => {
            let svc: Service = serde_json::from_value(body.clone()).expect("service json");
            api.create(&PostParams::default(), &svc).await.map(|_| ())
        }
        Op::Patch(name, body, _) => api
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
            .map(|_| ()),
        Op::Delete(name) => api.delete(name, &DeleteParams::default()).await.map(|_| ()),
    }
}

/// Why the current Services do not (yet) look settled and correct for the churn's model:
/// empty when every modelled Service exists, every LoadBalancer has exactly one IP of the
/// right pool (its own pinned IP when it asks for one), every other Service shows none, and
/// no two LoadBalancers show an IP they may not share.
pub fn unsettled(churn: &Churn, objects: &[Value]) -> Vec<String> {
    let by_name: BTreeMap<String, &Value> = objects
        .iter()
        .filter(|o| o["metadata"]["namespace"] == CHURN_NS)
        .map(|o| (o["metadata"]["name"].as_str().unwrap_or("").to_string(), o))
        .collect();
    let mut out = Vec::new();
    for i in 0..churn.slot_count() {
        let name = slot_name(i);
        match (churn.exists(i), by_name.get(&name)) {
            (false, None) => {}
            (false, Some(_)) => out.push(format!("{name} exists but was deleted")),
            (true, None) => out.push(format!("{name} was lost")),
            (true, Some(o)) => {
                let f = super::invariants::SvcFacts::of(o);
                if !churn.is_lb(i) {
                    if !f.ips.is_empty() {
                        out.push(format!(
                            "{name} is not a LoadBalancer but shows {:?}",
                            f.ips
                        ));
                    }
                    continue;
                }
                match (&f.ips[..], churn.pinned_ip(i)) {
                    ([ip], Some(pin)) if *ip == pin => {}
                    ([ip], None) if AUTO_PREFIXES.iter().any(|p| ip.starts_with(p)) => {}
                    // A pin no longer asked for may be kept: nothing requires the IP to move.
                    ([ip], None) if i < churn.pinned && *ip == format!("203.0.113.{i}") => {}
                    (ips, pin) => out.push(format!("{name} shows {ips:?} (pinned: {pin:?})")),
                }
            }
        }
    }
    for (ip, a, b, why) in super::invariants::snapshot_conflicts(objects) {
        out.push(format!("{a} and {b} both show {ip}: {why}"));
    }
    out
}

/// Every Service object in kube-sim's store, as JSON.
pub fn stored_services(sim: &kube_sim::KubeSim) -> Vec<Value> {
    let services = kube_sim::resources::find("", "v1", "services").expect("services resource");
    sim.store()
        .list(services, None)
        .0
        .iter()
        .map(|o| (**o).clone())
        .collect()
}
