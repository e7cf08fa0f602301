//! Keeps the speakers' heartbeat Secret in existence: the glue around
//! `ferrolb_core::heartbeat_secret`, which decides. Run by the leading controller only: it
//! reads the one Secret by name (RBAC `get` on that resourceName), creates it with a random
//! key when it is missing (`create` in its namespace), and never writes an existing one.
//!
//! Checked at start and again every [`RECHECK`], so a Secret deleted by mistake comes back
//! without a restart, at the cost of one GET a minute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::heartbeat::secret::{
    plan, Found, KeyProblem, Plan, FIELD, GENERATED_KEY_LEN, SECRET_NAME,
};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rand::RngCore as _;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::events::{EventPublisher, Notice};

/// How often the Secret is looked at again after the first check.
pub const RECHECK: Duration = Duration::from_secs(60);
/// Event reason on the Secret when the controller created it.
pub const CREATED_REASON: &str = "HeartbeatKeyCreated";
/// Event reason on the Secret when its key is unusable.
pub const INVALID_REASON: &str = "HeartbeatKeyInvalid";

/// Why the Secret could not be checked or created this time (retried at the next check).
#[derive(Debug, Error)]
pub enum SecretError {
    /// A request about the Secret failed (RBAC denied, API unreachable, ...).
    #[error("Secret {namespace}/{SECRET_NAME}: {what} failed: {source}")]
    Api {
        /// The controller's namespace.
        namespace: String,
        /// `get` or `create`.
        what: &'static str,
        /// The cause.
        source: kube::Error,
    },
    /// Created by someone else between our read and our create, then gone again before we
    /// could read it: nothing is wrong, the next check sees how things settled.
    #[error("Secret {namespace}/{SECRET_NAME} appeared and vanished while it was being created")]
    Raced {
        /// The controller's namespace.
        namespace: String,
    },
}

/// What one check found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The Secret was missing and this controller created it.
    Created,
    /// The Secret exists with a usable key (the user's, or an earlier controller's).
    Usable,
    /// The Secret exists but its key is unusable; it was left as it is and reported.
    Unusable(KeyProblem),
}

/// The heartbeat Secret's keeper.
pub struct HeartbeatSecret {
    api: Api<Secret>,
    namespace: String,
    events: Arc<EventPublisher>,
    /// The problem last reported, so an unchanged one is not logged every minute.
    reported: Option<KeyProblem>,
}

impl HeartbeatSecret {
    /// A keeper for the Secret in `namespace` (the controller's own), reporting through
    /// `events`.
    pub fn new(client: kube::Client, namespace: &str, events: Arc<EventPublisher>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            events,
            reported: None,
        }
    }

    fn api_err(&self, what: &'static str) -> impl FnOnce(kube::Error) -> SecretError {
        let namespace = self.namespace.clone();
        move |source| SecretError::Api {
            namespace,
            what,
            source,
        }
    }

    /// Checks the Secret once: creates it when missing, reports an unusable key.
    pub async fn ensure(&mut self) -> Result<Ensured, SecretError> {
        // A lost create race sends us round once more to judge the winner's Secret.
        for _ in 0..2 {
            let secret = self
                .api
                .get_opt(SECRET_NAME)
                .await
                .map_err(self.api_err("get"))?;
            let found = match &secret {
                None => Found::Missing,
                Some(s) => Found::Present {
                    key: s
                        .data
                        .as_ref()
                        .and_then(|d| d.get(FIELD))
                        .map(|b| b.0.as_slice()),
                },
            };
            match plan(&found) {
                Plan::Keep => {
                    if self.reported.take().is_some() {
                        tracing::info!(secret = %self.name(), "heartbeat key is usable now");
                    }
                    return Ok(Ensured::Usable);
                }
                Plan::Report(problem) => {
                    let uid = secret.and_then(|s| s.metadata.uid);
                    self.report(&problem, uid).await;
                    return Ok(Ensured::Unusable(problem));
                }
                Plan::Create => match self.create().await {
                    Ok(created) => {
                        tracing::info!(secret = %self.name(), "created the heartbeat key Secret with a random key");
                        let note = format!(
                            "created Secret {} with a random {GENERATED_KEY_LEN}-byte heartbeat key in data.{FIELD}",
                            self.name()
                        );
                        self.events
                            .publish(
                                &Notice::normal(CREATED_REASON, "CreateHeartbeatKey", note),
                                &self.reference(created.metadata.uid),
                            )
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!(secret = %self.name(), error = %e, "could not publish an Event")
                            });
                        self.reported = None;
                        return Ok(Ensured::Created);
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        tracing::debug!(secret = %self.name(), "created meanwhile by someone else; reading it");
                    }
                    Err(e) => return Err(self.api_err("create")(e)),
                },
            }
        }
        Err(SecretError::Raced {
            namespace: self.namespace.clone(),
        })
    }

    /// Checks now and every [`RECHECK`] until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.ensure().await {
                tracing::warn!(error = %e, "cannot ensure the heartbeat key Secret; speakers without a key keep lease-only failure detection; retrying");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    async fn create(&self) -> Result<Secret, kube::Error> {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        // ThreadRng is a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut key);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), "ferrolb".to_string()),
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "ferrolb-controller".to_string(),
                    ),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(FIELD.to_string(), ByteString(key))])),
            ..Secret::default()
        };
        self.api.create(&PostParams::default(), &secret).await
    }

    async fn report(&mut self, problem: &KeyProblem, uid: Option<String>) {
        if self.reported.as_ref() == Some(problem) {
            return;
        }
        let note = format!("{} (namespace {})", problem, self.namespace);
        tracing::warn!(secret = %self.name(), field = FIELD, "{note}");
        if let Err(e) = self
            .events
            .publish(
                &Notice::warning(INVALID_REASON, "CheckHeartbeatKey", note),
                &self.reference(uid),
            )
            .await
        {
            tracing::warn!(secret = %self.name(), error = %e, "could not publish an Event");
        }
        self.reported = Some(problem.clone());
    }

    fn name(&self) -> String {
        format!("{}/{SECRET_NAME}", self.namespace)
    }

    fn reference(&self, uid: Option<String>) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            namespace: Some(self.namespace.clone()),
            name: Some(SECRET_NAME.into()),
            uid,
            ..ObjectReference::default()
        }
    }
}
