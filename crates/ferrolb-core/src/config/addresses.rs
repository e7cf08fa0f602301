//! Turns the address strings of any format into ranges, adding the pool and field to
//! [`RangeError`]'s message.

use serde_json::{Map, Value};

use crate::addr::{AddressRange, RangeError};

use super::error::Report;
use super::walk::{self, At};

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

/// A pool's `addresses` list, parsed: what [`super::validate::DraftPool`] needs from it.
#[derive(Debug, Default)]
pub(crate) struct AddressList {
    /// The usable ranges, in the order written.
    pub(crate) ranges: Vec<AddressRange>,
    /// For each range: the field it came from (`addresses[2]`) and the text as written.
    pub(crate) sources: Vec<(String, String)>,
    /// How many entries were written, usable or not.
    pub(crate) written: usize,
}

/// Parses the `addresses` list of the pool at `at`, reporting each unusable entry where it is.
pub(crate) fn parse_list(
    map: &Map<String, Value>,
    at: &At,
    host_bits: HostBits,
    report: &mut Report,
) -> AddressList {
    let written = match walk::get(map, "addresses") {
        Some(Value::Array(a)) => a.len(),
        // Present but not a list: already reported as a type error, not as "no addresses".
        Some(_) => 1,
        None => 0,
    };
    let mut list = AddressList {
        written,
        ..AddressList::default()
    };
    for (i, text) in walk::string_list(map, "addresses", at, report) {
        if let Some(r) = parse(&text, &at.key("addresses").index(i), host_bits, report) {
            list.ranges.push(r);
            list.sources.push((format!("addresses[{i}]"), text));
        }
    }
    list
}
