//! TEMPORARY stub until the protobuf decoder lands.
/// Decoding failure.
#[derive(Debug, thiserror::Error)]
#[error("protobuf decoding not available yet")]
pub struct ProtobufError;
/// Stub.
pub fn decode_k8s_protobuf(_body: &[u8]) -> Result<serde_json::Value, ProtobufError> {
    Err(ProtobufError)
}
