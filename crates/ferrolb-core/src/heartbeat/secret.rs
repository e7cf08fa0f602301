//! The Secret holding the speakers' heartbeat key: what the controller does about it.
//!
//! Zero steps for the user: when the Secret `ferrolb-heartbeat` is missing from the
//! controller's namespace, the controller creates it with [`GENERATED_KEY_LEN`] random bytes in
//! field [`FIELD`]. A Secret that exists is the user's (or an earlier controller's) and is never
//! overwritten, not even when it is unusable: then the controller says which field is wrong and
//! why, and the speakers keep today's lease cadence until it is fixed. Pure: the glue
//! (`src/controller/heartbeat_secret.rs`) fetches the Secret and carries out the [`Plan`]; the
//! speaker (`src/speaker/heartbeat/key.rs`) reads the same names.

use std::fmt;

/// Name of the Secret (design contract: "Fast failure detection").
pub const SECRET_NAME: &str = "ferrolb-heartbeat";
/// The field of `data` holding the key.
pub const FIELD: &str = "key";
/// Bytes of key the controller generates: 256 bits, the HMAC-SHA256 block-size sweet spot.
pub const GENERATED_KEY_LEN: usize = 32;
pub use super::datagram::MIN_KEY_LEN;

/// What the controller found when it read the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// No such Secret (404).
    Missing,
    /// The Secret exists; `key` is its `data.key`, if it has one.
    Present {
        /// The decoded bytes of `data.key`.
        key: Option<&'a [u8]>,
    },
}

/// Why an existing Secret's key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// `data.key` is absent.
    MissingField,
    /// `data.key` holds fewer than [`MIN_KEY_LEN`] bytes.
    TooShort {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::MissingField => write!(
                f,
                "Secret {SECRET_NAME} has no field data.{FIELD}, so speakers cannot \
                 authenticate heartbeats and fall back to lease-only failure detection; add \
                 data.{FIELD} (at least {MIN_KEY_LEN} bytes), or delete the Secret and the \
                 controller creates one"
            ),
            KeyProblem::TooShort { len } => write!(
                f,
                "Secret {SECRET_NAME} field data.{FIELD} has {len} bytes, fewer than the \
                 {MIN_KEY_LEN} speakers accept, so they fall back to lease-only failure \
                 detection; supply a longer key, or delete the Secret and the controller creates \
                 one"
            ),
        }
    }
}

/// What to do about the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Create it with a fresh random key. An AlreadyExists answer means another replica or
    /// the user won the race: read it again and judge that one.
    Create,
    /// It exists and its key is usable: nothing to do.
    Keep,
    /// It exists and its key is unusable: leave it alone, but say so (log and a Warning
    /// Event on the Secret naming the field).
    Report(KeyProblem),
}

/// Decides what to do about the Secret as `found`.
pub fn plan(found: &Found<'_>) -> Plan {
    match found {
        Found::Missing => Plan::Create,
        Found::Present { key: None } => Plan::Report(KeyProblem::MissingField),
        Found::Present { key: Some(k) } if k.len() < MIN_KEY_LEN => {
            Plan::Report(KeyProblem::TooShort { len: k.len() })
        }
        Found::Present { key: Some(_) } => Plan::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_is_created_and_an_existing_one_never_replaced() {
        assert_eq!(plan(&Found::Missing), Plan::Create);
        let good = [7u8; GENERATED_KEY_LEN];
        assert_eq!(plan(&Found::Present { key: Some(&good) }), Plan::Keep);
        let shortest = [1u8; MIN_KEY_LEN];
        assert_eq!(
            plan(&Found::Present {
                key: Some(&shortest)
            }),
            Plan::Keep
        );
        assert_eq!(
            plan(&Found::Present { key: None }),
            Plan::Report(KeyProblem::MissingField)
        );
        assert_eq!(
            plan(&Found::Present {
                key: Some(b"short")
            }),
            Plan::Report(KeyProblem::TooShort { len: 5 })
        );
        assert_eq!(
            plan(&Found::Present { key: Some(b"") }),
            Plan::Report(KeyProblem::TooShort { len: 0 })
        );
    }

    #[test]
    fn problems_name_the_secret_and_the_field() {
        for p in [KeyProblem::MissingField, KeyProblem::TooShort { len: 3 }] {
            let text = p.to_string();
            assert!(text.contains("Secret ferrolb-heartbeat"), "{text}");
            assert!(text.contains("data.key"), "{text}");
        }
        assert!(KeyProblem::TooShort { len: 3 }
            .to_string()
            .contains("has 3 bytes"));
    }
}
