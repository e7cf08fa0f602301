//! Patch engines for the four PATCH content types the API server accepts.
//!
//! Everything here is pure: it takes the stored object as a `serde_json::Value`,
//! returns the patched value or a [`PatchError`], and never touches the store.
//! The server picks the engine from the request's `Content-Type`:
//!
//! | Content-Type                             | Function            |
//! |------------------------------------------|---------------------|
//! | `application/merge-patch+json`           | [`merge_patch`]     |
//! | `application/json-patch+json`            | [`json_patch`]      |
//! | `application/strategic-merge-patch+json` | [`strategic_merge`] |
//! | `application/apply-patch+yaml`           | [`apply_patch`]     |
//!
//! Resource-version checks, status-subresource separation, name/namespace
//! handling and empty-finalizer pruning belong to the server, not here.

mod json_patch;
mod merge;
pub mod schema;
mod strategic;

pub use json_patch::{json_patch, MAX_JSON_PATCH_OPERATIONS};
pub use merge::{apply_patch, merge_patch};
pub use strategic::strategic_merge;

/// Why a patch could not be applied.
///
/// Every variant names where the problem is (operation index and JSON
/// pointer for JSON patches, dotted field path for strategic merge patches),
/// because the message ends up verbatim in the `Status` body that kubectl and
/// kube print to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch body is not an array of operations.
    #[error("json patch must be an array of operations, got {found}")]
    JsonPatchNotArray {
        /// JSON type name of what was sent instead.
        found: &'static str,
    },

    /// The JSON patch has more operations than the real API server accepts.
    #[error("json patch has {count} operations, the limit is {max}")]
    TooManyOperations {
        /// Number of operations in the request.
        count: usize,
        /// The limit ([`MAX_JSON_PATCH_OPERATIONS`]).
        max: usize,
    },

    /// A JSON patch operation is not well formed (missing or mistyped member,
    /// unknown `op`).
    #[error("json patch operation {index}: {reason}")]
    MalformedOperation {
        /// Zero-based position of the operation in the patch array.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A `path` or `from` member is not a valid JSON pointer (RFC 6901).
    #[error("json patch operation {index}: invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer {
        /// Zero-based position of the operation in the patch array.
        index: usize,
        /// The pointer as sent.
        pointer: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A well-formed operation does not apply to the document (missing key,
    /// index out of range, moving a value into itself, ...).
    #[error("json patch operation {index} ({op} {path:?}) does not apply: {reason}")]
    OperationFailed {
        /// Zero-based position of the operation in the patch array.
        index: usize,
        /// The operation name (`add`, `remove`, ...).
        op: &'static str,
        /// The pointer the operation targets.
        path: String,
        /// Why it does not apply.
        reason: String,
    },

    /// A `test` operation found a different value (or no value).
    #[error("json patch operation {index}: test failed: value at {path:?} {reason}")]
    TestFailed {
        /// Zero-based position of the operation in the patch array.
        index: usize,
        /// The pointer that was tested.
        path: String,
        /// How the live value differs.
        reason: String,
    },

    /// A strategic-merge directive (`$patch`, `$retainKeys`,
    /// `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) is malformed or
    /// unknown.
    #[error("invalid strategic merge patch directive {directive:?} at {path}: {reason}")]
    BadDirective {
        /// Dotted field path of the map holding the directive (`<root>` for
        /// the top level).
        path: String,
        /// The directive key.
        directive: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A strategic merge patch does not fit the object's structure (list
    /// element without its merge key, non-object element in a keyed list,
    /// ...).
    #[error("invalid strategic merge patch at {path}: {reason}")]
    BadStrategicPatch {
        /// Dotted field path where the problem was found.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// The patch sets a key that its own `$retainKeys` list would drop.
    #[error("strategic merge patch at {path}: key {key:?} is not present in the $retainKeys list")]
    RetainKeysMismatch {
        /// Dotted field path of the map holding `$retainKeys`.
        path: String,
        /// The offending key.
        key: String,
    },
}

impl PatchError {
    /// The HTTP status the real API server answers with for this error, so
    /// that the emulator's error paths match what kubectl and kube expect.
    ///
    /// JSON patch failures are 422 `Invalid`; malformed strategic patches are
    /// 400 `BadRequest`, except a `$retainKeys` mismatch, which upstream
    /// reports as 422.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadDirective { .. } | PatchError::BadStrategicPatch { .. } => 400,
            _ => 422,
        }
    }
}

/// Renders a field path for error messages; the root gets a visible name so
/// that messages never contain an empty path.
pub(crate) fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        "<root>".to_owned()
    } else {
        path.join(".")
    }
}

/// JSON type names for error messages.
pub(crate) fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
