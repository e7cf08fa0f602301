//! A session's settings, states, outputs and counters: the types its driver and the metrics
//! see.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::bgp::notification::{ErrorCode, OpenSubcode};

/// How long a TCP connect may take before the attempt counts as failed. A peer that silently
/// drops our SYNs (a TCP MD5 key mismatch looks exactly like this) is retried with backoff.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session's fixed settings (a change to any of them means a new session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Our ASN.
    pub local_asn: u32,
    /// The ASN the peer must present.
    pub peer_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we propose: zero (no keepalives) or at least 3 s.
    pub hold_time: Duration,
    /// Keepalive interval; `None` = a third of the negotiated hold time.
    pub keepalive: Option<Duration>,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_base: Duration,
    /// Largest reconnect delay.
    pub backoff_cap: Duration,
    /// An Established session lasting this long forgives past failures.
    pub stable_after: Duration,
    /// Randomness for the backoff jitter.
    pub seed: u64,
}

impl SessionParams {
    /// Settings with the defaults FerroLB uses for everything not in the peer's config.
    pub fn new(local_asn: u32, peer_asn: u32, router_id: Ipv4Addr, hold_time: Duration) -> Self {
        Self {
            local_asn,
            peer_asn,
            router_id,
            hold_time,
            keepalive: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(120),
            stable_after: Duration::from_secs(30),
            seed: 1,
        }
    }
}

/// RFC 4271 §8.2.2 states (Active is folded into Connect: we never listen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Waiting to (re)connect, or stopped.
    Idle,
    /// TCP connect in progress.
    Connect,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// OPENs exchanged; waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes flow.
    Established,
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer and report [`Session::connected`] or
    /// [`Session::tcp_failed`].
    Connect,
    /// Write these bytes to the connection.
    Send(Vec<u8>),
    /// Close the connection (after writing what was queued).
    Close,
    /// The state changed; for logs and the session-up metric.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
}

/// Why a session went down, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResetReason {
    /// The TCP connect failed (refused, unreachable).
    ConnectFailed,
    /// The TCP connect did not complete in time (also: an MD5 key mismatch).
    ConnectTimeout,
    /// The connection broke or the peer closed it.
    ConnectionLost,
    /// The peer was silent for the hold time.
    HoldTimerExpired,
    /// The peer sent a NOTIFICATION.
    NotificationReceived(ErrorCode),
    /// We sent a NOTIFICATION (a malformed message, a bad OPEN).
    NotificationSent(ErrorCode),
}

impl ResetReason {
    /// A stable label for the resets metric.
    pub fn label(&self) -> &'static str {
        match self {
            ResetReason::ConnectFailed => "connect_failed",
            ResetReason::ConnectTimeout => "connect_timeout",
            ResetReason::ConnectionLost => "connection_lost",
            ResetReason::HoldTimerExpired => "hold_timer_expired",
            ResetReason::NotificationReceived(_) => "notification_received",
            ResetReason::NotificationSent(ErrorCode::Open(OpenSubcode::BadPeerAs)) => "bad_peer_as",
            ResetReason::NotificationSent(ErrorCode::Open(_)) => "bad_open",
            ResetReason::NotificationSent(_) => "notification_sent",
        }
    }
}

/// What the metrics endpoint reports for a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Times the session reached Established.
    pub established: u64,
    /// Session resets by [`ResetReason::label`].
    pub resets: BTreeMap<&'static str, u64>,
    /// UPDATE messages sent (including End-of-RIB).
    pub updates_sent: u64,
    /// Prefixes the peer currently holds from us.
    pub prefixes_advertised: usize,
    /// The most recent error, in words.
    pub last_error: Option<String>,
}
