//! The layer-2 announcement settings: which interfaces and nodes may announce, and how
//! gratuitous ARP is sent on takeover.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use regex::RegexSet;

use crate::arp::GarpParams;

/// Interfaces that carry container, loopback or overlay traffic; announcing a LoadBalancer IP
/// on them never reaches a client and can confuse the CNI.
pub const DEFAULT_EXCLUDE_INTERFACES: &[&str] = &[
    "^lo$",
    "^docker",
    "^veth",
    "^cali",
    "^cni",
    "^flannel",
    "^cilium",
    "^kube-ipvs",
];

/// A list of interface-name regexes, compiled once when the config is parsed so that every
/// interface check on the hot path is a single automaton run. Keeps the source text so the
/// config can be compared, printed and logged.
#[derive(Debug, Clone)]
pub struct RegexList {
    sources: Vec<String>,
    set: RegexSet,
}

impl RegexList {
    /// Compiles `sources`; on failure returns the index of the first bad pattern and the
    /// regex error as one line.
    pub fn new(sources: Vec<String>) -> Result<Self, (usize, String)> {
        match RegexSet::new(&sources) {
            Ok(set) => Ok(Self { sources, set }),
            // The set's error does not say which pattern failed; only now is it worth
            // compiling them one by one to find out.
            Err(set_error) => Err(sources
                .iter()
                .enumerate()
                .find_map(|(i, s)| regex::Regex::new(s).err().map(|e| (i, regex_error(&e))))
                .unwrap_or_else(|| (0, regex_error(&set_error)))),
        }
    }

    /// The patterns as written.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether any pattern matches `name` (unanchored, like `grep -E`).
    pub fn is_match(&self, name: &str) -> bool {
        self.set.is_match(name)
    }
}

impl PartialEq for RegexList {
    fn eq(&self, other: &Self) -> bool {
        self.sources == other.sources
    }
}

impl Eq for RegexList {}

impl Default for RegexList {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            set: RegexSet::empty(),
        }
    }
}

/// The regex crate draws a caret diagram over several lines; keep only what went wrong.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| super::error::one_line(&text))
}

/// How gratuitous ARP is sent when a node takes over an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpPolicy {
    /// Packets per announcement. 0 means 1, as in the scheduler ([`GarpParams`]): a takeover
    /// that told nobody would leave clients on the old MAC until their ARP caches expire.
    pub burst: u32,
    /// Gap between the packets of a burst.
    pub interval: Duration,
    /// Re-send the burst this often while owning the IP; zero means only on takeover.
    pub refresh: Duration,
}

impl GarpPolicy {
    /// The scheduler's view of this policy: the one place the speaker and the announcer get
    /// their GARP timing from, so a config change reaches both.
    pub fn params(&self) -> GarpParams {
        GarpParams {
            burst: self.burst,
            interval: self.interval,
            refresh: self.refresh,
        }
    }
}

impl Default for GarpPolicy {
    fn default() -> Self {
        Self {
            burst: 5,
            interval: Duration::from_millis(1100),
            refresh: Duration::ZERO,
        }
    }
}

/// Where and how the speaker announces IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Config {
    /// Interfaces allowed to announce; empty means any up interface whose subnet holds the IP.
    pub interfaces: RegexList,
    /// Interfaces never used, even when `interfaces` matches them.
    pub exclude_interfaces: RegexList,
    /// `matchLabels` for nodes allowed to announce; empty means every node.
    pub node_selector: BTreeMap<String, String>,
    /// Gratuitous ARP settings.
    pub garp: GarpPolicy,
}

impl Default for L2Config {
    fn default() -> Self {
        Self {
            interfaces: RegexList::default(),
            exclude_interfaces: default_excludes(),
            node_selector: BTreeMap::new(),
            garp: GarpPolicy::default(),
        }
    }
}

/// The built-in exclusion list, compiled.
pub(crate) fn default_excludes() -> RegexList {
    // Compiling the set costs far more than parsing a whole config, and every config that does
    // not override the list needs it, so it is compiled once per process and shared.
    static DEFAULT: OnceLock<RegexList> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let sources = DEFAULT_EXCLUDE_INTERFACES
                .iter()
                .map(|s| s.to_string())
                .collect();
            // The defaults are constants covered by a unit test; if they were ever broken,
            // announcing everywhere is still better than refusing every config.
            RegexList::new(sources).unwrap_or_default()
        })
        .clone()
}

impl L2Config {
    /// Whether the speaker may announce on the interface `name`: not excluded, and matched by
    /// `interfaces` when that is set. Exclusions win so the safety net stays on unless the
    /// operator empties `excludeInterfaces` on purpose.
    pub fn interface_eligible(&self, name: &str) -> bool {
        !self.exclude_interfaces.is_match(name)
            && (self.interfaces.is_empty() || self.interfaces.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_excludes_compile_and_apply() {
        let l2 = L2Config::default();
        assert_eq!(
            l2.exclude_interfaces.sources().len(),
            DEFAULT_EXCLUDE_INTERFACES.len()
        );
        for bad in [
            "lo",
            "docker0",
            "veth12ab",
            "cali123",
            "cni0",
            "flannel.1",
            "cilium_host",
            "kube-ipvs0",
        ] {
            assert!(!l2.interface_eligible(bad), "{bad} must be excluded");
        }
        for good in ["eth0", "enp3s0", "bond0", "lo0", "br-lan"] {
            assert!(l2.interface_eligible(good), "{good} must be eligible");
        }
    }

    #[test]
    fn include_list_restricts_and_exclusions_win() {
        let l2 = L2Config {
            interfaces: RegexList::new(vec!["^eth".into(), "^docker0$".into()]).unwrap(),
            ..L2Config::default()
        };
        assert!(l2.interface_eligible("eth1"));
        assert!(!l2.interface_eligible("enp3s0"));
        assert!(!l2.interface_eligible("docker0"));
    }

    #[test]
    fn bad_regex_reports_index_and_one_line() {
        let (i, msg) = RegexList::new(vec!["^eth".into(), "eth[".into()]).unwrap_err();
        assert_eq!(i, 1);
        assert_eq!(msg, "unclosed character class");
    }
}
