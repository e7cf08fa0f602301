//! HTTP plumbing shared by the handlers: response bodies, query strings as kube builds them
//! (`path?&limit=500`, empty pairs ignored), content negotiation, and body decoding.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde_json::Value;

use crate::protobuf;
use crate::resources::ResourceDef;
use crate::status::ApiError;

/// The response body type: whole bodies and watch streams alike.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response with `status`.
pub fn json_response(status: u16, value: &Value) -> Response<Body> {
    json_bytes(
        status,
        serde_json::to_vec(value).unwrap_or_default(),
        "application/json",
    )
}

/// A response whose body is already-serialised JSON.
pub fn json_bytes(status: u16, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The `Status` response for an error, with `Retry-After` where the error carries one.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut r = json_response(err.code, &err.body());
    if let Some(secs) = err.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// Query parameters; kube appends to `path?`, so empty pairs are skipped.
#[derive(Debug, Default, Clone)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses a raw query string, percent-decoding keys and values.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k), percent_decode(v));
        }
        Self(map)
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether a boolean parameter is set to true (`true` or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Plain JSON objects and lists.
    Json,
    /// A server-side Table (`kubectl get`).
    Table,
}

/// Reads `Accept`: a Table is wanted when it is the client's first choice.
pub fn wants(headers: &HeaderMap) -> Wants {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let first = accept.split(',').next().unwrap_or("");
    if first.contains("as=Table") {
        Wants::Table
    } else {
        Wants::Json
    }
}

/// Whether `Accept` asks for aggregated discovery.
pub fn wants_aggregated_discovery(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2"))
}

/// The media type of the request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The protobuf media type client-go's typed clients send.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Decodes a create/update body sent to a resource of `def`: JSON, YAML, or the protobuf
/// client-go's typed clients send (a malformed one is a 400 in the real server's words).
pub fn decode_object(
    content_type: &str,
    body: &[u8],
    def: &ResourceDef,
) -> Result<Value, ApiError> {
    match content_type {
        PROTOBUF => protobuf::decode_k8s_protobuf(body, &def.api_version(), def.kind)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        "application/yaml" | "application/apply-patch+yaml" => decode_json_or_yaml(body),
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Parses JSON, falling back to YAML (apply bodies may be either).
pub fn decode_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!("the request body is neither JSON nor YAML: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_skips_empty_pairs_and_decodes() {
        let q = Query::parse(Some(
            "&limit=500&fieldSelector=metadata.name%3Dweb&labelSelector=a+in+(x%2Cy)&watch=1",
        ));
        assert_eq!(q.get("limit"), Some("500"));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=web"));
        assert_eq!(q.get("labelSelector"), Some("a in (x,y)"));
        assert!(q.flag("watch"));
        assert!(Query::parse(Some("")).get("x").is_none());
        assert_eq!(Query::parse(Some("a=%zz%")).get("a"), Some("%zz%"));
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(wants(&h), Wants::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
        );
        assert_eq!(wants(&h), Wants::Table);
    }
}
