//! One BGP session as a clock-free state machine (RFC 4271 §8, active side only).
//!
//! The driver owns the TCP socket and the clock; it calls [`Session::poll`] at
//! [`Session::next_wakeup`] and on every event, and carries out the [`Output`]s in order. The
//! rules, in one place:
//!
//! * **Active only**: Idle waits out the backoff, then asks for a connection; FerroLB never
//!   listens, so it coexists with any other BGP daemon on the node.
//! * **Hold timer enforced on receive**: a peer silent for the negotiated hold time (the
//!   smaller of both proposals; 0 = none) gets a Hold Timer Expired NOTIFICATION and is
//!   dropped, instead of waiting ~15 min for TCP to give up (metallb#777). Keepalives go out
//!   every `min(configured, hold/3)`.
//! * **Every error is a NOTIFICATION with a reason** (RFC 4271 §6), then Close, then backoff.
//!   The backoff only resets after a session stayed Established for `stable_after`, so a peer
//!   that accepts and then immediately NOTIFYs cannot cause a reconnect storm either.
//! * **Adj-RIB-Out**: after Established the full table and End-of-RIB go out; later route
//!   changes are diffed against what was sent and go out as incremental UPDATEs, never as a
//!   reset. ROUTE-REFRESH from the peer resends the table.
//! * **Graceful stop**: Cease / Administrative Shutdown with an RFC 8203 message, then Close;
//!   the peer drops our routes at once (no explicit withdraw is needed).
//! * A session carries prefixes of its own address family (IPv4 over an IPv4 session, IPv6
//!   over IPv6), with the session's local address as next hop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::attrs::RouteAttrs;
use super::backoff::Backoff;
use super::message::{decode, encode_keepalive, Context, Message};
use super::notification::{self, CeaseSubcode, ErrorCode, OpenSubcode};
use super::open::{Afi, Capability, Open, AS_TRANS, SAFI_UNICAST};
use super::pack::encode_end_of_rib;
use super::prefix::Prefix;
use super::rib::AdjRibOut;
use crate::election::MonoTime;

mod params;
mod rib_out;

pub use params::{
    Output, ResetReason, SessionCounters, SessionParams, State, DEFAULT_CONNECT_TIMEOUT,
};

/// RFC 4271 §8.2.2: the hold timer while waiting for the peer's OPEN.
const OPEN_HOLD: Duration = Duration::from_secs(240);

/// One peer's session.
#[derive(Debug, Clone)]
pub struct Session {
    params: SessionParams,
    state: State,
    stopped: bool,
    backoff: Backoff,
    next_attempt: MonoTime,
    connect_deadline: MonoTime,
    local: Option<IpAddr>,
    ctx: Context,
    families: Vec<(Afi, u8)>,
    hold: Option<Duration>,
    keepalive: Duration,
    last_recv: MonoTime,
    next_keepalive: MonoTime,
    established_at: MonoTime,
    desired: BTreeMap<Prefix, RouteAttrs>,
    rib: AdjRibOut,
    rx: Vec<u8>,
    counters: SessionCounters,
}

impl Session {
    /// A session that will connect at the first [`Session::poll`].
    pub fn new(params: SessionParams, now: MonoTime) -> Self {
        let backoff = Backoff::new(params.backoff_base, params.backoff_cap, params.seed);
        Self {
            params,
            state: State::Idle,
            stopped: false,
            backoff,
            next_attempt: now,
            connect_deadline: now,
            local: None,
            ctx: Context::default(),
            families: Vec::new(),
            hold: None,
            keepalive: Duration::ZERO,
            last_recv: now,
            next_keepalive: now,
            established_at: now,
            desired: BTreeMap::new(),
            rib: AdjRibOut::default(),
            rx: Vec::new(),
            counters: SessionCounters::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The metrics.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// The negotiated hold time (`None` before OPEN or when it is 0).
    pub fn hold_time(&self) -> Option<Duration> {
        self.hold
    }

    /// When [`Session::poll`] must be called next at the latest; `None` when only an event
    /// can change anything (stopped).
    pub fn next_wakeup(&self) -> Option<MonoTime> {
        if self.stopped {
            return None;
        }
        match self.state {
            State::Idle => Some(self.next_attempt),
            State::Connect => Some(self.connect_deadline),
            State::OpenSent => Some(self.last_recv + OPEN_HOLD),
            State::OpenConfirm | State::Established => self
                .hold
                .map(|h| (self.last_recv + h).min(self.next_keepalive)),
        }
    }

    /// Runs the timers: reconnect, connect timeout, hold timer, keepalive.
    pub fn poll(&mut self, now: MonoTime) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match self.state {
            State::Idle if now >= self.next_attempt => {
                self.set_state(State::Connect, &mut out);
                self.connect_deadline = now + self.params.connect_timeout;
                out.push(Output::Connect);
            }
            State::Connect if now >= self.connect_deadline => {
                let why = format!(
                    "TCP connect did not complete within {}s (peer down, filtered, or a TCP MD5 password mismatch)",
                    self.params.connect_timeout.as_secs()
                );
                self.fail(now, ResetReason::ConnectTimeout, why, &mut out);
            }
            State::OpenSent if now.saturating_since(self.last_recv) >= OPEN_HOLD => {
                self.notify(
                    now,
                    ErrorCode::HoldTimerExpired,
                    &[],
                    "no OPEN from the peer within 240s".into(),
                    &mut out,
                );
            }
            State::OpenConfirm | State::Established => {
                if let Some(h) = self.hold {
                    if now.saturating_since(self.last_recv) >= h {
                        let why = format!(
                            "hold timer expired: nothing heard from the peer for {}s",
                            h.as_secs()
                        );
                        let mut bytes = Vec::new();
                        notification::encode(ErrorCode::HoldTimerExpired, &[], &mut bytes);
                        push_send(&mut out, bytes);
                        self.fail(now, ResetReason::HoldTimerExpired, why, &mut out);
                        return out;
                    }
                    if now >= self.next_keepalive {
                        let mut bytes = Vec::new();
                        encode_keepalive(&mut bytes);
                        push_send(&mut out, bytes);
                        self.next_keepalive = now + self.keepalive;
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The TCP connection is up: send our OPEN.
    pub fn connected(&mut self, now: MonoTime, local: IpAddr) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stopped || self.state != State::Connect {
            out.push(Output::Close);
            return out;
        }
        self.local = Some(local);
        self.rx.clear();
        self.last_recv = now;
        let afi = if local.is_ipv4() {
            Afi::Ipv4
        } else {
            Afi::Ipv6
        };
        let open = Open {
            version: 4,
            my_as: u16::try_from(self.params.local_asn).unwrap_or(AS_TRANS),
            hold_time: u16::try_from(self.params.hold_time.as_secs()).unwrap_or(u16::MAX),
            bgp_id: self.params.router_id,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi,
                    safi: SAFI_UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(self.params.local_asn),
            ],
        };
        let mut bytes = Vec::new();
        open.encode(&mut bytes);
        push_send(&mut out, bytes);
        self.set_state(State::OpenSent, &mut out);
        out
    }

    /// The connect failed, or the connection broke or was closed by the peer.
    pub fn tcp_failed(&mut self, now: MonoTime, why: &str) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match self.state {
            State::Idle => {}
            State::Connect => self.fail(
                now,
                ResetReason::ConnectFailed,
                format!("TCP connect failed: {why}"),
                &mut out,
            ),
            _ => self.fail(
                now,
                ResetReason::ConnectionLost,
                format!("TCP connection lost: {why}"),
                &mut out,
            ),
        }
        out
    }

    /// Bytes arrived from the peer.
    pub fn received(&mut self, now: MonoTime, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stopped || matches!(self.state, State::Idle | State::Connect) {
            return out;
        }
        let mut buf = std::mem::take(&mut self.rx);
        buf.extend_from_slice(bytes);
        let mut at = 0;
        while matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            match decode(&buf[at..], &self.ctx) {
                Ok(Some((msg, used))) => {
                    at += used;
                    self.last_recv = now;
                    self.on_message(now, msg, &mut out);
                }
                Ok(None) => break,
                Err(e) => {
                    let reason = e.to_string();
                    self.notify(now, e.code, &e.data, reason, &mut out);
                    break;
                }
            }
        }
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            buf.drain(..at);
            self.rx = buf;
        }
        out
    }

    /// What this session should advertise now (prefixes of the other family are ignored).
    pub fn set_routes(&mut self, desired: BTreeMap<Prefix, RouteAttrs>) -> Vec<Output> {
        let mut out = Vec::new();
        self.desired = desired;
        if self.state == State::Established {
            self.sync(&mut out);
        }
        out
    }

    /// Graceful stop: Cease / Administrative Shutdown with `message` (RFC 8203), then Close.
    /// The session stays down.
    pub fn stop(&mut self, message: &str) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        self.stopped = true;
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                let mut bytes = Vec::new();
                let data = notification::shutdown_data(message);
                notification::encode(
                    ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
                    &data,
                    &mut bytes,
                );
                push_send(&mut out, bytes);
                out.push(Output::Close);
            }
            State::Connect => out.push(Output::Close),
            State::Idle => {}
        }
        self.rib.clear();
        self.counters.prefixes_advertised = 0;
        self.set_state(State::Idle, &mut out);
        out
    }

    fn on_message(&mut self, now: MonoTime, msg: Message<'_>, out: &mut Vec<Output>) {
        match (self.state, msg) {
            (_, Message::Notification(n)) => {
                let why = format!("peer sent NOTIFICATION: {}", n.describe());
                self.fail(now, ResetReason::NotificationReceived(n.code), why, out);
            }
            (State::OpenSent, Message::Open(open)) => self.on_open(now, &open, out),
            (State::OpenConfirm, Message::Keepalive) => {
                self.set_state(State::Established, out);
                self.counters.established += 1;
                self.established_at = now;
                self.rib.clear();
                self.sync(out);
                let mut bytes = Vec::new();
                for (afi, safi) in self.session_families() {
                    encode_end_of_rib(afi, safi, &mut bytes);
                    self.counters.updates_sent += 1;
                }
                push_send(out, bytes);
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => {}
            (State::Established, Message::RouteRefresh { afi, safi }) => {
                if self.session_families().contains(&(afi, safi)) {
                    self.resend(out);
                }
            }
            (state, other) => {
                // RFC 6608 subcodes: 1 OpenSent, 2 OpenConfirm, 3 Established.
                let sub = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                let kind = match other {
                    Message::Open(_) => "OPEN",
                    Message::Update(_) => "UPDATE",
                    Message::Keepalive => "KEEPALIVE",
                    Message::RouteRefresh { .. } => "ROUTE-REFRESH",
                    Message::Notification(_) => "NOTIFICATION",
                };
                let why = format!("unexpected {kind} in state {state:?}");
                self.notify(now, ErrorCode::FiniteStateMachine(sub), &[], why, out);
            }
        }
    }

    fn on_open(&mut self, now: MonoTime, open: &Open<'_>, out: &mut Vec<Output>) {
        let peer_as = open.asn();
        if peer_as != self.params.peer_asn {
            let why = format!(
                "peer presented AS {peer_as}, but this peer is configured with asn {}",
                self.params.peer_asn
            );
            let data = open.my_as.to_be_bytes();
            return self.notify(
                now,
                ErrorCode::Open(OpenSubcode::BadPeerAs),
                &data,
                why,
                out,
            );
        }
        if peer_as == self.params.local_asn && open.bgp_id == self.params.router_id {
            let why = format!("iBGP peer uses our own BGP identifier {}", open.bgp_id);
            return self.notify(
                now,
                ErrorCode::Open(OpenSubcode::BadBgpIdentifier),
                &[],
                why,
                out,
            );
        }
        let ours = self.params.hold_time.as_secs();
        let negotiated = ours.min(u64::from(open.hold_time));
        self.hold = (negotiated > 0).then(|| Duration::from_secs(negotiated));
        if let Some(h) = self.hold {
            let wanted = self
                .params
                .keepalive
                .filter(|k| !k.is_zero())
                .unwrap_or(self.params.hold_time / 3);
            self.keepalive = wanted.min(h / 3);
        }
        self.ctx.four_octet_as = open.four_octet_as();
        self.families = open.families();
        let mut bytes = Vec::new();
        encode_keepalive(&mut bytes);
        push_send(out, bytes);
        self.next_keepalive = now + self.keepalive;
        self.set_state(State::OpenConfirm, out);
    }

    fn notify(
        &mut self,
        now: MonoTime,
        code: ErrorCode,
        data: &[u8],
        why: String,
        out: &mut Vec<Output>,
    ) {
        let mut bytes = Vec::new();
        notification::encode(code, data, &mut bytes);
        push_send(out, bytes);
        self.fail(now, ResetReason::NotificationSent(code), why, out);
    }

    fn fail(&mut self, now: MonoTime, reason: ResetReason, why: String, out: &mut Vec<Output>) {
        out.push(Output::Close);
        *self.counters.resets.entry(reason.label()).or_default() += 1;
        self.counters.last_error = Some(why);
        if self.state == State::Established
            && now.saturating_since(self.established_at) >= self.params.stable_after
        {
            self.backoff.reset();
        }
        self.next_attempt = now + self.backoff.next_delay();
        self.rib.clear();
        self.counters.prefixes_advertised = 0;
        self.rx.clear();
        self.hold = None;
        self.set_state(State::Idle, out);
    }

    fn set_state(&mut self, to: State, out: &mut Vec<Output>) {
        if self.state != to {
            out.push(Output::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }
}

/// Queues bytes, merging with a directly preceding send so the driver writes once.
fn push_send(out: &mut Vec<Output>, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Output::Send(prev)) = out.last_mut() {
        prev.extend_from_slice(&bytes);
    } else {
        out.push(Output::Send(bytes));
    }
}
