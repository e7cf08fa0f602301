//! Decoding of the protobuf request bodies kubectl, Helm and other client-go programs send.
//!
//! client-go 1.32 typed clients prefer protobuf, so `kubectl create configmap|secret|service|
//! deployment|namespace|serviceaccount` and Helm's release Secrets POST and PUT
//! `application/vnd.kubernetes.protobuf`, with no JSON fallback (a 415 makes them fail). The
//! server decodes those bodies here into the JSON the real server would have stored, and
//! carries on as usual; answering in JSON is fine for every client.
//!
//! The decoder is generic: [`schema`] lists, for every kind kube-sim serves, each message's
//! field numbers, Go names and JSON rules, generated from the k8s.io/api Go types by
//! `tests/kube-sim/protobuf-schema` and checked against the real `generated.proto` files by
//! its `check_against_proto.py`. The wire reader ([`wire`]) follows the Go code the real
//! server runs, so a malformed body gets the real server's 400 message, word for word:
//! `Service in version "v1" cannot be handled as a Service: proto: wrong wireType = 0 for
//! field Name`. Every read is bounds-checked: no input panics.

mod json;
#[rustfmt::skip]
mod schema;
mod schema_types;
mod wire;

use serde_json::{Map, Value};

pub use json::base64;
pub use wire::WireError;

use schema::ROOTS;
use wire::{Cursor, LEN};

/// The four bytes (`"k8s\0"`) that prefix every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be decoded; `Display` is the real server's 400 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body failed before its kind was known (prefix, envelope): the apiserver's
    /// `transformDecodeError` without a GVK.
    #[error("the object provided is unrecognized (must be of type {expected_kind}): {cause} ({summary})")]
    Unrecognized {
        /// The kind the URL addresses.
        expected_kind: String,
        /// The serializer's error.
        cause: String,
        /// The first 30 bytes of the body, hex-encoded (`summarizeData`).
        summary: String,
    },
    /// The object itself failed to decode, or its kind is not one the server knows.
    #[error("{kind} in version {version:?} cannot be handled as a {expected_kind}: {cause}")]
    CannotHandle {
        /// The kind in the body (or the URL's, when the body has none).
        kind: String,
        /// The version in the body.
        version: String,
        /// The kind the URL addresses.
        expected_kind: String,
        /// The decoding error.
        cause: String,
    },
}

/// The real server's `summarizeData(body, 30)`.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let head = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    match body.first() {
        None => "<empty>".to_owned(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

/// The `runtime.Unknown` envelope: type meta and the object's own bytes.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

fn envelope(data: &[u8]) -> Result<Envelope<'_>, WireError> {
    let mut cur = Cursor::new(data);
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
    };
    while !cur.at_end() {
        let tag = cur.tag("Unknown")?;
        let go_name = match tag.field {
            1 => "TypeMeta",
            2 => "Raw",
            3 => "ContentEncoding",
            4 => "ContentType",
            _ => {
                cur.skip(&tag)?;
                continue;
            }
        };
        if tag.wire_type != LEN {
            return Err(WireError::WrongWireType {
                wire_type: tag.wire_type,
                field: go_name,
            });
        }
        let data = cur.len_prefixed()?;
        match tag.field {
            1 => {
                let mut tm = Cursor::new(data);
                while !tm.at_end() {
                    let t = tm.tag("TypeMeta")?;
                    let name = match t.field {
                        1 => "APIVersion",
                        2 => "Kind",
                        _ => {
                            tm.skip(&t)?;
                            continue;
                        }
                    };
                    if t.wire_type != LEN {
                        return Err(WireError::WrongWireType {
                            wire_type: t.wire_type,
                            field: name,
                        });
                    }
                    let text = String::from_utf8_lossy(tm.len_prefixed()?).into_owned();
                    if t.field == 1 {
                        env.api_version = text;
                    } else {
                        env.kind = text;
                    }
                }
            }
            2 => env.raw = data,
            // The serializer ignores contentEncoding and contentType.
            _ => {}
        }
    }
    Ok(env)
}

/// Decodes an `application/vnd.kubernetes.protobuf` request body sent to a resource whose
/// objects are `expected_api_version`/`expected_kind` into the JSON object the real server
/// would have decoded. The body's type meta may be empty (the URL's kind is assumed, as the
/// server's `copyKindDefaults` does); a body of another known kind decodes as that kind, and
/// the caller's type check rejects it.
pub fn decode_k8s_protobuf(
    body: &[u8],
    expected_api_version: &str,
    expected_kind: &str,
) -> Result<Value, ProtobufError> {
    let unrecognized = |cause: String| ProtobufError::Unrecognized {
        expected_kind: expected_kind.to_owned(),
        cause,
        summary: summarize(body),
    };
    if body.is_empty() {
        return Err(unrecognized("empty data".into()));
    }
    let Some(data) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .into(),
        ));
    };
    if data.is_empty() {
        return Err(unrecognized("empty body".into()));
    }
    let env = envelope(data).map_err(|e| unrecognized(e.to_string()))?;
    let kind = if env.kind.is_empty() {
        expected_kind.to_owned()
    } else {
        env.kind
    };
    let api_version = if env.api_version.is_empty() {
        expected_api_version.to_owned()
    } else {
        env.api_version
    };
    let version = api_version
        .rsplit_once('/')
        .map_or(api_version.as_str(), |(_, v)| v)
        .to_owned();
    let cannot_handle = |cause: String| ProtobufError::CannotHandle {
        kind: kind.clone(),
        version: version.clone(),
        expected_kind: expected_kind.to_owned(),
        cause,
    };
    // DeleteOptions is registered in every group version (`metav1.AddToGroupVersion`).
    let Some(root) = ROOTS
        .iter()
        .find(|r| r.kind == kind && (r.api_version == api_version || r.kind == "DeleteOptions"))
    else {
        return Err(cannot_handle(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        )));
    };
    let decoded = json::decode_message(root.message, &[env.raw], 0)
        .map_err(|e| cannot_handle(e.to_string()))?;
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::String(api_version.clone()));
    object.insert("kind".to_owned(), Value::String(kind.clone()));
    if let Value::Object(fields) = decoded {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal protobuf writer, enough to build what client-go sends.
    #[derive(Default, Clone)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(mut self, field: u32, value: u64) -> Self {
            put_varint(&mut self.0, u64::from(field) << 3);
            put_varint(&mut self.0, value);
            self
        }
        fn bytes(mut self, field: u32, data: &[u8]) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 2);
            put_varint(&mut self.0, data.len() as u64);
            self.0.extend_from_slice(data);
            self
        }
        fn string(self, field: u32, s: &str) -> Self {
            self.bytes(field, s.as_bytes())
        }
        fn msg(self, field: u32, m: Msg) -> Self {
            self.bytes(field, &m.0)
        }
        fn fixed64(mut self, field: u32, v: u64) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 1);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        #[allow(dead_code)]
        fn fixed32(mut self, field: u32, v: u32) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 5);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn entry(self, field: u32, k: &str, v: &[u8]) -> Self {
            self.msg(field, Msg::default().string(1, k).bytes(2, v))
        }
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// ObjectMeta as client-go's generated marshaller writes it: every
    /// non-pointer field, empty ones included.
    fn object_meta(name: &str, namespace: &str) -> Msg {
        Msg::default()
            .string(1, name)
            .string(2, "")
            .string(3, namespace)
            .string(4, "")
            .string(5, "")
            .string(6, "")
            .varint(7, 0)
            .msg(8, Msg::default())
    }

    fn envelope(api_version: &str, kind: &str, raw: Msg) -> Vec<u8> {
        let unknown = Msg::default()
            .msg(1, Msg::default().string(1, api_version).string(2, kind))
            .msg(2, raw)
            .string(3, "")
            .string(4, "");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        body
    }

    /// `kubectl create configmap cm1 --from-literal=a=1 --from-literal=b=two`
    fn kubectl_configmap_body() -> Vec<u8> {
        let raw = Msg::default()
            .msg(1, object_meta("cm1", "default"))
            .entry(2, "a", b"1")
            .entry(2, "b", b"two");
        envelope("v1", "ConfigMap", raw)
    }

    /// `kubectl create namespace ns9`
    fn kubectl_namespace_body() -> Vec<u8> {
        let raw = Msg::default()
            .msg(1, object_meta("ns9", ""))
            .msg(2, Msg::default())
            .msg(3, Msg::default().string(1, ""));
        envelope("v1", "Namespace", raw)
    }

    fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
        decode_k8s_protobuf(body, "v1", "ConfigMap")
    }

    #[test]
    fn kubectl_create_configmap() {
        let body = kubectl_configmap_body();
        assert_eq!(&body[..4], &[0x6b, 0x38, 0x73, 0x00]);
        assert_eq!(
            decode(&body).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "namespace": "default"},
                   "data": {"a": "1", "b": "two"}})
        );
    }

    #[test]
    fn kubectl_create_namespace() {
        assert_eq!(
            decode_k8s_protobuf(&kubectl_namespace_body(), "v1", "Namespace").expect("decodes"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "ns9"}, "spec": {}, "status": {}})
        );
    }

    /// `kubectl create service loadbalancer demo --tcp=80` as client-go marshals it.
    #[test]
    fn kubectl_create_service_loadbalancer() {
        let target_port = Msg::default().varint(1, 0).varint(2, 80).string(3, "");
        let port = Msg::default()
            .string(1, "80")
            .string(2, "TCP")
            .varint(3, 80)
            .msg(4, target_port)
            .varint(5, 0);
        let spec = Msg::default()
            .msg(1, port)
            .entry(2, "app", b"demo")
            .string(3, "")
            .string(4, "LoadBalancer")
            .string(7, "")
            .string(10, "")
            .string(11, "")
            .varint(12, 0);
        let status = Msg::default().msg(1, Msg::default());
        let meta = object_meta("demo", "default").entry(11, "app", b"demo");
        let raw = Msg::default().msg(1, meta).msg(2, spec).msg(3, status);
        let svc =
            decode_k8s_protobuf(&envelope("v1", "Service", raw), "v1", "Service").expect("decodes");
        assert_eq!(
            svc,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "demo", "namespace": "default", "labels": {"app": "demo"}},
                   "spec": {"ports": [{"name": "80", "protocol": "TCP", "port": 80, "targetPort": 80}],
                            "selector": {"app": "demo"}, "type": "LoadBalancer"},
                   "status": {"loadBalancer": {}}})
        );
        let parsed: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(svc).expect("k8s-openapi reads the decoded Service");
        let port = &parsed.spec.expect("spec").ports.expect("ports")[0];
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
        );
    }

    /// `kubectl create deployment web --image=nginx --replicas=0`: pointers keep zeros,
    /// nested messages (template, pod spec, containers) decode, strings inside merge.
    #[test]
    fn kubectl_create_deployment() {
        let labels = || Msg::default().entry(1, "app", b"web");
        let container = Msg::default()
            .string(1, "nginx")
            .string(2, "nginx")
            .msg(8, Msg::default())
            .string(13, "")
            .string(14, "")
            .varint(16, 0);
        let pod_spec = Msg::default().msg(2, container).string(3, "");
        let template = Msg::default()
            .msg(1, object_meta("", "").entry(11, "app", b"web"))
            .msg(2, pod_spec);
        let max_surge = Msg::default().varint(1, 1).string(3, "25%");
        let strategy = Msg::default()
            .string(1, "")
            .msg(2, Msg::default().msg(2, max_surge));
        let spec = Msg::default()
            .varint(1, 0)
            .msg(2, labels())
            .msg(3, template)
            .msg(4, strategy);
        let raw = Msg::default()
            .msg(1, object_meta("web", "default").entry(11, "app", b"web"))
            .msg(2, spec)
            .msg(3, Msg::default());
        let d = decode_k8s_protobuf(
            &envelope("apps/v1", "Deployment", raw),
            "apps/v1",
            "Deployment",
        )
        .expect("decodes");
        assert_eq!(d["spec"]["replicas"], 0, "a set *int32 keeps its zero: {d}");
        assert_eq!(
            d["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx", "resources": {}}])
        );
        assert_eq!(
            d["spec"]["strategy"],
            json!({"rollingUpdate": {"maxSurge": "25%"}})
        );
        assert_eq!(d["status"], json!({}));
        let parsed: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(d).expect("k8s-openapi reads the decoded Deployment");
        assert_eq!(parsed.spec.expect("spec").replicas, Some(0));
    }

    /// `kubectl create secret generic s --from-literal=a=b` and Helm's release Secrets.
    #[test]
    fn secret_data_is_base64_and_type_kept() {
        let raw = Msg::default()
            .msg(1, object_meta("s", "default"))
            .entry(2, "a", b"b")
            .entry(2, "bin", &[0, 0xff])
            .string(3, "Opaque");
        assert_eq!(
            decode_k8s_protobuf(&envelope("v1", "Secret", raw), "v1", "Secret").expect("decodes"),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "s", "namespace": "default"},
                   "data": {"a": "Yg==", "bin": "AP8="}, "type": "Opaque"})
        );
    }

    #[test]
    fn lease_micro_times_and_event_series() {
        let t = Msg::default()
            .varint(1, 1_704_067_200)
            .varint(2, 123_456_000);
        let spec = Msg::default()
            .string(1, "node-a")
            .varint(2, 15)
            .msg(3, t.clone())
            .msg(4, t)
            .varint(5, 0);
        let raw = Msg::default()
            .msg(1, object_meta("l", "default"))
            .msg(2, spec);
        let lease = decode_k8s_protobuf(
            &envelope("coordination.k8s.io/v1", "Lease", raw),
            "coordination.k8s.io/v1",
            "Lease",
        )
        .expect("decodes");
        assert_eq!(
            lease["spec"],
            json!({"holderIdentity": "node-a", "leaseDurationSeconds": 15,
                   "acquireTime": "2024-01-01T00:00:00.123456Z",
                   "renewTime": "2024-01-01T00:00:00.123456Z", "leaseTransitions": 0})
        );
    }

    #[test]
    fn full_object_meta_and_configmap_fields() {
        let owner = Msg::default()
            .string(1, "Service")
            .string(3, "web")
            .string(4, "u-1")
            .string(5, "v1")
            .varint(6, 1)
            .varint(7, 0);
        let meta = Msg::default()
            .string(1, "cm2")
            .string(2, "cm-")
            .string(3, "ns")
            .string(5, "uid-9")
            .string(6, "42")
            .varint(7, 3)
            .msg(8, Msg::default().varint(1, 1_704_067_200).varint(2, 500))
            .msg(9, Msg::default().varint(1, 1_704_067_230))
            .varint(10, 0)
            .entry(11, "app", b"web")
            .entry(11, "tier", b"fe")
            .entry(12, "note", b"x y")
            .msg(13, owner)
            .string(14, "example.io/cleanup")
            .msg(17, Msg::default().string(1, "kubectl").string(2, "Update"));
        let raw = Msg::default()
            .msg(1, meta)
            .entry(3, "blob", &[0, 1, 2, 0xfe, 0xff])
            .entry(3, "e", b"")
            .varint(4, 1);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", raw)).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {
                       "name": "cm2", "generateName": "cm-", "namespace": "ns",
                       "uid": "uid-9", "resourceVersion": "42", "generation": 3,
                       "creationTimestamp": "2024-01-01T00:00:00Z",
                       "deletionTimestamp": "2024-01-01T00:00:30Z",
                       "deletionGracePeriodSeconds": 0,
                       "labels": {"app": "web", "tier": "fe"},
                       "annotations": {"note": "x y"},
                       "ownerReferences": [{"kind": "Service", "name": "web", "uid": "u-1",
                                            "apiVersion": "v1", "controller": true,
                                            "blockOwnerDeletion": false}],
                       "finalizers": ["example.io/cleanup"],
                       "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
                   "binaryData": {"blob": "AAEC/v8=", "e": ""},
                   "immutable": true})
        );
    }

    #[test]
    fn go_zero_time_and_negative_int64() {
        let meta = Msg::default()
            .string(1, "x")
            .msg(8, Msg::default().varint(1, GO_ZERO_TIME as u64))
            .varint(10, (-5i64) as u64);
        let out =
            decode(&envelope("v1", "ConfigMap", Msg::default().msg(1, meta))).expect("decodes");
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "x", "deletionGracePeriodSeconds": -5}})
        );
    }

    const GO_ZERO_TIME: i64 = -62_135_596_800;

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let meta = object_meta("cm1", "default")
            .varint(999, u64::MAX)
            .fixed64(16, 7)
            .fixed32(18, 9)
            .bytes(100_000, b"\xff\xfe not utf8");
        let raw = Msg::default()
            .fixed32(9, 1)
            .msg(1, meta)
            .varint(50, 300)
            .entry(2, "a", b"1")
            .fixed64(51, u64::MAX);
        let unknown = Msg::default()
            .varint(7, 1)
            .msg(
                1,
                Msg::default()
                    .string(1, "v1")
                    .fixed64(3, 0)
                    .string(2, "ConfigMap"),
            )
            .fixed32(8, 0)
            .msg(2, raw)
            .bytes(9, b"junk");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        assert_eq!(
            decode(&body).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "namespace": "default"},
                   "data": {"a": "1"}})
        );
    }

    #[test]
    fn repeated_metadata_messages_merge() {
        let raw = Msg::default()
            .msg(1, Msg::default().string(1, "first").entry(11, "a", b"1"))
            .msg(1, Msg::default().string(3, "ns").entry(11, "b", b"2"));
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", raw)).expect("decodes")["metadata"],
            json!({"name": "first", "namespace": "ns", "labels": {"a": "1", "b": "2"}})
        );
    }

    #[test]
    fn type_meta_defaults_to_the_url_and_unknown_kinds_are_rejected() {
        let raw = Msg::default().msg(1, object_meta("s", "default"));
        let out = decode(&envelope("", "", raw.clone())).expect("type meta defaults to the URL");
        assert_eq!(
            (out["apiVersion"].as_str(), out["kind"].as_str()),
            (Some("v1"), Some("ConfigMap"))
        );
        let err = decode(&envelope("v1", "Widget", raw.clone())).expect_err("Widget");
        assert_eq!(
            err.to_string(),
            "Widget in version \"v1\" cannot be handled as a ConfigMap: no kind \"Widget\" is registered for version \"v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        );
        let err = decode(&envelope("v2", "ConfigMap", raw)).expect_err("v2");
        assert!(
            err.to_string().starts_with(
                "ConfigMap in version \"v2\" cannot be handled as a ConfigMap: no kind"
            ),
            "{err}"
        );
    }

    /// Helm deletes its release Secrets with a typed client: DeleteOptions in protobuf,
    /// typed as `v1`.
    #[test]
    fn delete_options_in_any_group_version() {
        let raw = Msg::default()
            .msg(2, Msg::default().string(1, "u-1").string(2, "7"))
            .string(4, "Background");
        let out = decode_k8s_protobuf(
            &envelope("v1", "DeleteOptions", raw),
            "meta.k8s.io/v1",
            "DeleteOptions",
        )
        .expect("decodes");
        assert_eq!(
            out["preconditions"],
            json!({"uid": "u-1", "resourceVersion": "7"})
        );
        assert_eq!(out["propagationPolicy"], "Background");
    }

    #[test]
    fn content_encoding_is_ignored_as_the_real_serializer_does() {
        let unknown = Msg::default()
            .msg(1, Msg::default().string(1, "v1").string(2, "ConfigMap"))
            .msg(2, Msg::default().msg(1, object_meta("c", "")))
            .string(3, "gzip");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        assert_eq!(decode(&body).expect("decodes")["metadata"]["name"], "c");
    }

    fn with_magic(rest: &[u8]) -> String {
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(rest);
        decode(&body).expect_err("malformed").to_string()
    }

    fn in_object(raw: Msg) -> String {
        decode(&envelope("v1", "ConfigMap", raw))
            .expect_err("malformed")
            .to_string()
    }

    /// The real server's words for each way a body can be broken.
    #[test]
    fn malformed_bodies_get_the_real_servers_messages() {
        assert_eq!(
            decode(b"{\"kind\":1}").expect_err("json").to_string(),
            "the object provided is unrecognized (must be of type ConfigMap): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({\"kind\":1})"
        );
        assert_eq!(
            decode(b"").expect_err("empty").to_string(),
            "the object provided is unrecognized (must be of type ConfigMap): empty data (<empty>)"
        );
        assert_eq!(
            decode(MAGIC).expect_err("prefix only").to_string(),
            "the object provided is unrecognized (must be of type ConfigMap): empty body (6b387300)"
        );
        let unrecognized = |cause: &str, hex: &str| {
            format!("the object provided is unrecognized (must be of type ConfigMap): {cause} (6b387300{hex})")
        };
        assert_eq!(
            with_magic(&[0x00, 0x00]),
            unrecognized("proto: Unknown: illegal tag 0 (wire type 0)", "0000")
        );
        assert_eq!(
            with_magic(&[0x0c]),
            unrecognized("proto: Unknown: wiretype end group for non-group", "0c")
        );
        assert_eq!(
            with_magic(&[0x0f]),
            unrecognized("proto: wrong wireType = 7 for field TypeMeta", "0f")
        );
        assert_eq!(
            with_magic(&[0x2f]),
            unrecognized("proto: illegal wireType 7", "2f")
        );
        assert_eq!(with_magic(&[0x2b]), unrecognized("unexpected EOF", "2b"));
        // A skipped group is balanced; an end group that closes nothing is not.
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", Msg(vec![0x2b, 0x2c, 0x2c]))).expect_err("group").to_string(),
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: proto: ConfigMap: wiretype end group for non-group"
        );
        assert_eq!(
            with_magic(&[0x12, 0x05, 0x00]),
            unrecognized("unexpected EOF", "120500")
        );
        let eleven = [
            0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(with_magic(&eleven).contains(": proto: integer overflow ("));
        let negative = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(
            with_magic(&negative).contains(": proto: negative length found during unmarshaling (")
        );

        // Inside the object the message names the kind and the Go field.
        let prefix = "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: ";
        assert_eq!(
            in_object(Msg::default().varint(1, 5)),
            format!("{prefix}proto: wrong wireType = 0 for field ObjectMeta")
        );
        assert_eq!(
            in_object(Msg::default().msg(1, Msg::default().varint(1, 5))),
            format!("{prefix}proto: wrong wireType = 0 for field Name")
        );
        assert_eq!(
            in_object(Msg::default().string(4, "x")),
            format!("{prefix}proto: wrong wireType = 2 for field Immutable")
        );
        let mut truncated = Msg::default().msg(1, object_meta("cm", "ns"));
        truncated.0.truncate(truncated.0.len() - 1);
        assert_eq!(in_object(truncated), format!("{prefix}unexpected EOF"));
        assert_eq!(
            in_object(Msg::default().msg(1, Msg::default().bytes(3, b"").varint(0, 1))),
            format!("{prefix}proto: ObjectMeta: illegal tag 0 (wire type 0)")
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_as_go_json_writes_it() {
        let raw = Msg::default().msg(1, Msg::default().bytes(1, b"a\xffb"));
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", raw)).expect("decodes")["metadata"]["name"],
            "a\u{fffd}b"
        );
    }

    #[test]
    fn base64_matches_go_std_encoding() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xfb\xff", "+/8="),
        ] {
            assert_eq!(base64(input), expected);
        }
    }

    /// A small deterministic generator, so the "fuzz" test is reproducible
    /// without a dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn no_input_panics() {
        for valid in [kubectl_configmap_body(), kubectl_namespace_body()] {
            for end in 0..valid.len() {
                let _ = decode(&valid[..end]);
            }
            let mut state = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..5_000 {
                let mut mutated = valid.clone();
                let i = (xorshift(&mut state) as usize) % mutated.len();
                mutated[i] = xorshift(&mut state) as u8;
                let _ = decode(&mutated);
                let _ = decode_k8s_protobuf(&mutated, "apps/v1", "Deployment");
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            let len = (xorshift(&mut state) % 64) as usize;
            let mut body = MAGIC.to_vec();
            body.extend((0..len).map(|_| xorshift(&mut state) as u8));
            let _ = decode(&body);
            let _ = decode(&body[4..]);
        }
        // Deep nesting of a self-similar unknown group cannot blow the stack either.
        let deep = vec![0x2b; 100_000];
        let _ = with_magic(&deep);
    }

    #[test]
    fn strict_prefixes_of_a_valid_body_never_decode_to_the_full_object() {
        let body = kubectl_configmap_body();
        let full = decode(&body).expect("decodes");
        // The last four bytes are the empty contentEncoding/contentType
        // fields, whose absence legitimately changes nothing.
        for end in 4..body.len() - 4 {
            if let Ok(partial) = decode(&body[..end]) {
                assert_ne!(partial, full, "prefix of {end} bytes");
            }
        }
    }
}
