//! The BGP side of the config model (`bgp:` in the native format; `peers:`,
//! `bgp-communities:` and `bgp-advertisements:` in MetalLB's legacy one), the field readers
//! both formats share, and the checks that need the whole config.

mod check;
mod fields;
mod model;

pub(super) use check::check;
pub(crate) use check::Places;
pub(super) use fields::{asn, community, dedup_communities, ip, number, timer};
pub use model::{
    selectors_match, Announce, BgpAdvertisement, BgpConfig, BgpPeer, NodeSelector, PeerPassword,
    SelectorOp, SelectorRequirement,
};
