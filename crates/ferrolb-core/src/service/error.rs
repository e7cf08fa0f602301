//! Why a Service's request cannot be understood. The Display text is shown to users as the
//! `AllocationFailed` Event ("bad annotation: ..."), so it names the annotation or field and the
//! offending value.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use super::IpFamilyPolicy;
use crate::addr::Family;

/// A Service whose annotations or spec contradict themselves.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Two spellings of one setting give different values.
    #[error("{first}={first_value:?} and {second}={second_value:?} disagree; remove one or make them equal")]
    Conflict {
        /// The first source (annotation key or spec field).
        first: String,
        /// Its value.
        first_value: String,
        /// The disagreeing source.
        second: String,
        /// Its value.
        second_value: String,
    },
    /// An entry of the IP list is not an IP address.
    #[error("{origin}: {value:?} is not an IP address")]
    BadIp {
        /// Annotation key or spec field.
        origin: String,
        /// The entry that failed to parse.
        value: String,
    },
    /// Two IPs of one family were requested; a Service gets at most one per family.
    #[error("{origin}: {first} and {second} are both {family}; give at most one IP per family")]
    TwoOfOneFamily {
        /// Annotation key or spec field.
        origin: String,
        /// The family given twice.
        family: Family,
        /// The first IP of that family.
        first: IpAddr,
        /// The second.
        second: IpAddr,
    },
    /// A requested IP's family is not one the Service gets addresses in.
    #[error(
        "{origin}: {ip} is {family}, but the Service ({policy}) only takes {}",
        FamilyList(families)
    )]
    FamilyNotWanted {
        /// Annotation key or spec field.
        origin: String,
        /// The requested IP.
        ip: IpAddr,
        /// Its family.
        family: Family,
        /// The Service's `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// The families it takes (`spec.ipFamilies`, first only for SingleStack).
        families: Vec<Family>,
    },
    /// RequireDualStack with requested IPs that leave a family out.
    #[error("{origin}: spec.ipFamilyPolicy is RequireDualStack but no {family} address is requested; request one IP per family or none")]
    MissingFamily {
        /// Annotation key or spec field.
        origin: String,
        /// The family with no requested IP.
        family: Family,
    },
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamilyPolicy::SingleStack => "SingleStack",
            IpFamilyPolicy::PreferDualStack => "PreferDualStack",
            IpFamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

/// Formats families as `IPv4, IPv6` for messages.
struct FamilyList<'a>(&'a [Family]);

impl fmt::Display for FamilyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, family) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{family}")?;
        }
        Ok(())
    }
}
