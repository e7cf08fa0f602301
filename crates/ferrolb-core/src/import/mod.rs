//! `ferrolb import metallb`: translates MetalLB ≥ 0.13 custom resources (IPAddressPool,
//! L2Advertisement, BGPPeer, BGPAdvertisement, Community) into FerroLB's native config, so a
//! MetalLB user switches with one command. Pure: text in, a manifest and warnings out.
//!
//! Every field that cannot be carried over becomes a warning naming the object and the field.
//! Where dropping a restriction would widen who gets a pool's addresses (namespace or Service
//! selectors FerroLB cannot express), the pool is imported with `autoAssign: false` instead, so
//! an import never hands addresses to Services MetalLB would have refused.

mod metallb;
mod output;
mod selector;

#[cfg(test)]
mod tests;

use serde_json::Value;
use thiserror::Error;

pub use output::{
    Advertisement, BgpSection, L2Section, NativeConfig, PasswordSecret, Peer, PoolOut,
};

/// Why the input could not be read at all (as opposed to fields that could not be carried
/// over, which are warnings).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    /// The file is not YAML (or JSON).
    #[error("{file}: invalid YAML: {message}")]
    Yaml {
        /// The file as named on the command line.
        file: String,
        /// The parser's message, on one line.
        message: String,
    },
}

/// The result of an import: the native config and what did not survive the trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The translated configuration.
    pub config: NativeConfig,
    /// One line per field not carried over, `Kind/name: field: why`.
    pub warnings: Vec<String>,
}

/// Where the config goes: the ConfigMap both daemons read by default.
const CONFIG_MAP: &str = "ferrolb-config";
const NAMESPACE: &str = "ferrolb-system";

impl Imported {
    /// The native config as YAML, the value of the ConfigMap key `config.yaml`.
    pub fn config_yaml(&self) -> String {
        serde_saphyr::to_string(&self.config).unwrap_or_default()
    }

    /// The `ferrolb-config` ConfigMap manifest, ready for `kubectl apply -f -`.
    pub fn manifest(&self) -> String {
        let mut out = String::from("# Imported from MetalLB by `ferrolb import metallb`.\n");
        out.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata:\n");
        out.push_str(&format!("  name: {CONFIG_MAP}\n  namespace: {NAMESPACE}\n"));
        out.push_str("data:\n  config.yaml: |\n");
        for line in self.config_yaml().lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Translates the MetalLB objects in `files` (`(name, text)` pairs; multi-document YAML, JSON,
/// or `kind: List` as `kubectl get … -o yaml` prints) into one native config.
pub fn metallb(files: &[(String, String)]) -> Result<Imported, ImportError> {
    let mut objects = Vec::new();
    for (file, text) in files {
        for doc in documents(file, text)? {
            flatten(doc, &mut objects);
        }
    }
    Ok(metallb::translate(&objects))
}

/// Parses every document of one file, YAML 1.2 booleans only (a label value `no` stays a
/// string), as `check-config` does.
fn documents(file: &str, text: &str) -> Result<Vec<Value>, ImportError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
    };
    serde_saphyr::from_multiple_with_options::<Value>(text, options)
        .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
        .map_err(|e| ImportError::Yaml {
            file: file.to_string(),
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
}

/// Unwraps `kind: List` (and `kind: IPAddressPoolList`, ...) into its items.
fn flatten(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match (is_list, doc) {
        (true, Value::Object(mut m)) => {
            if let Some(Value::Array(items)) = m.remove("items") {
                for item in items {
                    flatten(item, out);
                }
            }
        }
        (_, doc) => out.push(doc),
    }
}
