//! Turns the address strings of any format into ranges, adding the pool and field to
//! [`RangeError`]'s message.

use crate::addr::{AddressRange, RangeError};

use super::error::Report;
use super::walk::At;

/// How forgiving to be about CIDRs with host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostBits {
    /// Native format: `192.168.1.1/24` is a typo, reject it.
    Reject,
    /// MetalLB and kube-vip accepted it (Go masks the address), so a migrated config keeps
    /// working, with a warning.
    MaskWithWarning(&'static str),
}

/// Parses one address entry at `at`; `None` after reporting when it is unusable.
pub(crate) fn parse(
    text: &str,
    at: &At,
    host_bits: HostBits,
    report: &mut Report,
) -> Option<AddressRange> {
    match text.parse::<AddressRange>() {
        Ok(r) => Some(r),
        Err(RangeError::HostBitsSet(_, fixed)) if host_bits != HostBits::Reject => {
            let HostBits::MaskWithWarning(peer) = host_bits else {
                return None;
            };
            let r = fixed.parse::<AddressRange>().ok()?;
            at.warn(
                report,
                format!("CIDR {text:?} has host bits set; using {fixed} as {peer} does"),
            );
            Some(r)
        }
        Err(e) => {
            at.error(report, e.to_string());
            None
        }
    }
}
