//! Per-IP speaker election and the announce decision.
//!
//! * [`rendezvous`]: the stable (node, IP) hash every speaker must agree on.
//! * [`candidates`]: which nodes may announce an IP.
//! * [`liveness`]: peers judged live by when this speaker last saw their lease change.
//! * [`announce`]: the state machine that turns all of that, plus API health and ARP conflicts
//!   heard on the wire, into probe/start/stop/hold/re-announce actions.
//!
//! Everything here is pure: times are passed in, and nothing talks to Kubernetes or the network.

pub mod announce;
pub mod candidates;
pub mod liveness;
pub mod rendezvous;
mod time;

pub use announce::{
    Action, Announcer, AnnouncerParams, Claimant, Health, StopReason, DEFAULT_FOREIGN_HOLD,
    DEFAULT_PROBE_WAIT,
};
pub use candidates::{
    candidates, elect, is_eligible_with, IpDemand, NodeFacts, EXCLUDE_FROM_LB_LABEL,
};
pub use liveness::{lease_name, node_of_lease, LeaseSnapshot, LivenessTracker, LEASE_PREFIX};
pub use rendezvous::{score, winner};
pub use time::MonoTime;
