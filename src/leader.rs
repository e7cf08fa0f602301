//! Leader election on a coordination.k8s.io Lease with optimistic concurrency, so two
//! controller replicas never allocate at once.
//!
//! Every write is a PUT carrying the resourceVersion just read, so of two replicas racing for
//! the lease exactly one wins (the other gets 409 Conflict). Expiry is judged by how long ago
//! *this* process saw the lease change, never by comparing the holder's clock with ours. A
//! leader steps down when it has failed to renew for `renew_deadline`, which is shorter than
//! the lease duration, so it has stopped before anyone else can take the lease.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Timings of the election.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// How long a lease is valid after its last renewal.
    pub duration: Duration,
    /// A leader that has not renewed for this long steps down (must be < `duration`).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks that the timings keep two leaders apart: a leader must give up (after
    /// `renew_deadline`) before the others may take over (after `duration`), and must get
    /// at least one retry in before giving up.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |why: String| Err(LeaderError::InvalidSettings(why));
        if self.retry_period.is_zero() {
            return bad("--leader-retry-period must be above zero".into());
        }
        if self.renew_deadline >= self.duration {
            return bad(format!(
                "--leader-renew-deadline ({:?}) must be shorter than --leader-lease-duration ({:?}), or two replicas could lead at once",
                self.renew_deadline, self.duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return bad(format!(
                "--leader-retry-period ({:?}) must be shorter than --leader-renew-deadline ({:?}), or the leader gives up before it retries",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why leadership ended or was never gained.
#[derive(Debug, Error)]
pub enum LeaderError {
    /// Shutdown was requested.
    #[error("leader election for lease {lease} stopped: shutting down")]
    Cancelled {
        /// The lease name.
        lease: String,
    },
    /// The timings given on the command line could let two replicas lead at once.
    #[error("invalid leader election timings: {0}")]
    InvalidSettings(String),
    /// Renewals failed for longer than the renew deadline.
    #[error("lost leadership of lease {lease}: no successful renewal for {elapsed:?} (deadline {deadline:?})")]
    Lost {
        /// The lease name.
        lease: String,
        /// Time since the last successful renewal.
        elapsed: Duration,
        /// The renew deadline.
        deadline: Duration,
    },
}

#[derive(Debug, Clone)]
struct Observed {
    resource_version: String,
    at: Instant,
}

/// One contender for one lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    settings: LeaseSettings,
    observed: Mutex<Option<Observed>>,
    /// When the last successful acquire/renew request was *started*. The others start their
    /// expiry clock only when they see the write, which is later, so measuring our deadline
    /// from here keeps us on the safe side of theirs.
    renewed: Mutex<Option<Instant>>,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// The lease duration as the whole seconds the Lease API carries, rounded *up*: the others
/// wait this long before taking over, so rounding down (1.5s -> 1s) would let them take the
/// lease while this leader still believes it holds it.
fn secs(d: Duration) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole.max(1)).unwrap_or(i32::MAX)
}

impl LeaderElector {
    /// A contender for lease `name` in the namespace of `api`, identified as `identity`.
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        settings: LeaseSettings,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            settings,
            observed: Mutex::new(None),
            renewed: Mutex::new(None),
        }
    }

    /// This contender's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Records when we saw the lease change; returns how long ago that was.
    fn observe(&self, lease: &Lease) -> Duration {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let mut guard = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(o) if o.resource_version == rv => o.at.elapsed(),
            _ => {
                *guard = Some(Observed {
                    resource_version: rv,
                    at: Instant::now(),
                });
                Duration::ZERO
            }
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` means we hold the lease now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let started = Instant::now();
        let held = self.acquire_or_renew_once().await?;
        if held {
            *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
        }
        Ok(held)
    }

    async fn acquire_or_renew_once(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs(self.settings.duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let since_change = self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let valid_for = spec
            .lease_duration_seconds
            .map_or(self.settings.duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
        if holder == self.identity {
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(secs(self.settings.duration));
        } else if holder.is_empty() || since_change > valid_for {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now());
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(secs(self.settings.duration));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(false);
        }
        // The PUT carries the resourceVersion we read: a racing contender gets 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this contender holds the lease.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> Result<(), LeaderError> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "cannot reach the lease; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.retry_period) => {}
                _ = shutdown.cancelled() => return Err(LeaderError::Cancelled { lease: self.name.clone() }),
            }
        }
    }

    /// Keeps renewing; returns when leadership is lost or shutdown is requested.
    ///
    /// Returns `Lost` no later than `renew_deadline` after the last successful renewal was
    /// started, whatever the retry period and however slow the API is: every wait is cut
    /// short at that deadline, so a leader never outlives its lease in the others' eyes.
    pub async fn hold(&self, shutdown: &CancellationToken) -> LeaderError {
        let lost = |last_ok: Instant| LeaderError::Lost {
            lease: self.name.clone(),
            elapsed: last_ok.elapsed(),
            deadline: self.settings.renew_deadline,
        };
        loop {
            let last_ok = self
                .renewed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(Instant::now);
            let deadline = last_ok + self.settings.renew_deadline;
            let wake = (Instant::now() + self.settings.retry_period).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = shutdown.cancelled() => return LeaderError::Cancelled { lease: self.name.clone() },
            }
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return lost(last_ok);
            };
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return lost(last_ok),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.name, error = %e, "lease renewal failed")
                }
                Err(_) => tracing::warn!(lease = %self.name, "lease renewal timed out"),
            }
        }
    }

    /// Gives the lease up so another contender can take it at once (graceful shutdown).
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// This replica's identity in the Lease: its Pod name (`$POD_NAME`, set from the downward API
/// by the manifests), else its host name (a Pod's host name is its name). Stable across
/// restarts of the process in the same Pod, so a leader that crashes and comes back finds the
/// Lease still held by itself and resumes at once instead of waiting for it to expire; and
/// unique among replicas, since Pod names are. Outside Kubernetes, give each process its own
/// `$POD_NAME`: two processes with one identity would both believe they lead.
pub fn replica_identity() -> String {
    identity_from(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
    )
}

fn identity_from(
    pod_name: Option<String>,
    hostname_env: Option<String>,
    hostname_file: Option<String>,
) -> String {
    [pod_name, hostname_env, hostname_file]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "ferrolb".to_string())
}

/// A name for this process (the identity plus a random suffix) for its User-Agent, so the API
/// server's log tells a restarted process from the one before it even though both hold the
/// same identity.
pub fn process_instance(identity: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{identity}_{suffix:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_the_pod_name_then_the_host_name() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            identity_from(some("ctl-0"), some("h"), some("f\n")),
            "ctl-0"
        );
        assert_eq!(identity_from(some(""), some("h"), some("f\n")), "h");
        assert_eq!(identity_from(None, None, some("f\n")), "f");
        assert_eq!(identity_from(None, None, None), "ferrolb");
    }

    #[test]
    fn lease_duration_on_the_wire_never_rounds_down() {
        assert_eq!(secs(Duration::from_millis(1500)), 2);
        assert_eq!(secs(Duration::from_secs(15)), 15);
        assert_eq!(secs(Duration::from_millis(200)), 1);
    }

    #[test]
    fn timings_that_allow_two_leaders_are_rejected() {
        assert!(LeaseSettings::default().validate().is_ok());
        let s = |d, r, p| LeaseSettings {
            duration: Duration::from_millis(d),
            renew_deadline: Duration::from_millis(r),
            retry_period: Duration::from_millis(p),
        };
        assert!(s(2000, 1500, 200).validate().is_ok());
        assert!(s(2000, 2000, 200).validate().is_err());
        assert!(s(2000, 3000, 200).validate().is_err());
        assert!(s(2000, 1500, 1500).validate().is_err());
        assert!(s(2000, 1500, 0).validate().is_err());
    }
}
