//! The heartbeat key: read from the Secret `ferrolb-heartbeat` (field `key`) in the speaker's
//! namespace, and read again every [`POLL`] so a rotated or newly created key is picked up.
//!
//! A named GET rather than a watch: RBAC can then grant exactly that one Secret (`get` with
//! `resourceNames`), which a list-and-watch cannot be pinned to in a provable way.

use std::time::Duration;

use ferrolb_core::heartbeat::HeartbeatKey;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use ferrolb_core::heartbeat::secret::{FIELD as SECRET_KEY, SECRET_NAME};
/// How often the Secret is read again.
pub const POLL: Duration = Duration::from_secs(10);

/// Where the key stands, for the log and the alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Not read yet.
    Unknown,
    /// Loaded.
    Loaded,
    /// The Secret or its field is missing, the key is too short, or reading it failed (RBAC
    /// denied, API unreachable): the message says which.
    Unusable(String),
}

/// The key as last read, and its state.
pub type KeyWatch = watch::Receiver<(Option<HeartbeatKey>, KeyState)>;

fn judge(secret: Option<Secret>, ns: &str) -> (Option<HeartbeatKey>, KeyState) {
    let Some(secret) = secret else {
        return (
            None,
            KeyState::Unusable(format!(
                "Secret {ns}/{SECRET_NAME} does not exist (the controller creates it)"
            )),
        );
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(SECRET_KEY)) else {
        return (
            None,
            KeyState::Unusable(format!(
                "Secret {ns}/{SECRET_NAME} has no field {SECRET_KEY}"
            )),
        );
    };
    match HeartbeatKey::new(&bytes.0) {
        Ok(k) => (Some(k), KeyState::Loaded),
        Err(e) => (None, KeyState::Unusable(format!("{ns}/{SECRET_NAME}: {e}"))),
    }
}

/// Starts reading the key; the receiver always holds the latest outcome. A failed read keeps
/// the last good key (an API outage must not silence heartbeats).
pub fn watch_key(api: Api<Secret>, ns: String, shutdown: CancellationToken) -> KeyWatch {
    let (tx, rx) = watch::channel((None, KeyState::Unknown));
    tokio::spawn(async move {
        loop {
            let next = match api.get_opt(SECRET_NAME).await {
                Ok(secret) => judge(secret, &ns),
                Err(e) => {
                    let why = format!("cannot read Secret {ns}/{SECRET_NAME}: {e}");
                    match tx.borrow().0.clone() {
                        Some(k) => (Some(k), KeyState::Loaded),
                        None => (None, KeyState::Unusable(why)),
                    }
                }
            };
            tx.send_if_modified(|cur| {
                let changed = cur.1 != next.1
                    || cur.0.as_ref().map(HeartbeatKey::fingerprint)
                        != next.0.as_ref().map(HeartbeatKey::fingerprint);
                *cur = next;
                changed
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(field: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                field.to_string(),
                ByteString(value.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn a_missing_secret_field_or_short_key_is_unusable_and_says_which() {
        let (k, s) = judge(None, "ferrolb-system");
        assert!(k.is_none());
        assert!(
            matches!(s, KeyState::Unusable(m) if m.contains("ferrolb-system/ferrolb-heartbeat does not exist"))
        );
        let (k, s) = judge(Some(secret("other", b"0123456789abcdef")), "ns");
        assert!(k.is_none());
        assert!(matches!(s, KeyState::Unusable(m) if m.contains("no field key")));
        let (k, s) = judge(Some(secret("key", b"short")), "ns");
        assert!(k.is_none());
        assert!(matches!(s, KeyState::Unusable(m) if m.contains("at least 16")));
        let (k, s) = judge(Some(secret("key", b"0123456789abcdef")), "ns");
        assert!(k.is_some());
        assert_eq!(s, KeyState::Loaded);
    }
}
