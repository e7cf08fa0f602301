//! Protobuf request bodies over real HTTP: a well-formed one creates the object (answered in
//! JSON), a malformed one is a 400 `BadRequest` Status carrying the real server's words, and
//! the server keeps serving.

use kube::api::Api;
use kube_sim::KubeSim;
use serde_json::Value;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

async fn post(client: &kube::Client, path: &str, body: Vec<u8>) -> Result<String, kube::Error> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, PROTOBUF)
        .header(
            http::header::ACCEPT,
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .body(body)
        .expect("a valid request");
    client.request_text(req).await
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(out: &mut Vec<u8>, number: u64, data: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A Secret named `name` with `data.k = "v"`, enveloped as client-go sends it.
fn secret_body(name: &str) -> Vec<u8> {
    let mut meta = Vec::new();
    field(&mut meta, 1, name.as_bytes());
    let mut entry = Vec::new();
    field(&mut entry, 1, b"k");
    field(&mut entry, 2, b"v");
    let mut raw = Vec::new();
    field(&mut raw, 1, &meta);
    field(&mut raw, 2, &entry);
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, b"v1");
    field(&mut type_meta, 2, b"Secret");
    let mut body = b"k8s\0".to_vec();
    field(&mut body, 1, &type_meta);
    field(&mut body, 2, &raw);
    body
}

#[tokio::test]
async fn protobuf_bodies_create_or_get_the_real_servers_400() {
    let sim = KubeSim::start().await.expect("kube-sim starts");
    let client = sim.client().expect("client");
    let path = "/api/v1/namespaces/default/secrets";

    let created: Value = serde_json::from_str(
        &post(&client, path, secret_body("s1"))
            .await
            .expect("created"),
    )
    .expect("answered in JSON");
    assert_eq!(created["data"]["k"], "dg==");
    assert_eq!(created["type"], "Opaque");

    // Cut short: the envelope's raw field runs past the end, before the kind is known.
    let mut cut = secret_body("s2");
    cut.truncate(cut.len() - 2);
    let err = post(&client, path, cut.clone())
        .await
        .expect_err("malformed");
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    let hex: String = cut.iter().take(30).map(|b| format!("{b:02x}")).collect();
    let more = if cut.len() > 30 { " ..." } else { "" };
    assert_eq!(
        status.message,
        format!(
            "the object provided is unrecognized (must be of type Secret): unexpected EOF ({hex}{more})"
        )
    );

    // Inside the object: metadata sent as a varint.
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, b"v1");
    field(&mut type_meta, 2, b"Secret");
    let mut body = b"k8s\0".to_vec();
    field(&mut body, 1, &type_meta);
    field(&mut body, 2, &[0x08, 0x01]);
    let err = post(&client, path, body).await.expect_err("malformed");
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}");
    };
    assert_eq!(
        status.message,
        "Secret in version \"v1\" cannot be handled as a Secret: proto: wrong wireType = 0 for field ObjectMeta"
    );

    // JSON sent with the protobuf content type: the envelope check speaks.
    let err = post(&client, path, b"{\"kind\":\"Secret\"}".to_vec())
        .await
        .expect_err("not protobuf");
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}");
    };
    assert_eq!(
        status.message,
        "the object provided is unrecognized (must be of type Secret): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({\"kind\":\"Secret\"})"
    );

    // Still serving, and nothing half-created.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client);
    let names: Vec<String> = secrets
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(names, ["s1"]);
}
