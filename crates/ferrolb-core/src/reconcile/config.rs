//! Judging a new pool ConfigMap: whether it is valid, whether it changes anything, and which
//! Events say so. Leader and standby replicas judge alike, so `ferrolb_config_valid` reads the
//! same whichever replica a person asks; only the leader applies the result and publishes.

use std::collections::BTreeMap;

use super::event::{Event, EventAction, EventReason};
use crate::config::{parse_config_map_data, Config, ConfigFormat};

/// What to do with a ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigVerdict {
    /// The ConfigMap does not exist: no pools, so nothing new is allocated (existing IPs stay).
    Missing,
    /// Valid and identical to the config in force: nothing to do, nothing to say.
    Unchanged,
    /// Valid and new: put `config` in force and publish `events` on the ConfigMap.
    Load {
        /// The config to apply (boxed: a config is large beside the other verdicts).
        config: Box<Config>,
        /// `ConfigLoaded`, then `ConfigWarning` if there are warnings.
        events: Vec<Event>,
        /// The warnings, joined, for the log.
        warnings: Option<String>,
    },
    /// Invalid: the config in force stays; publish `event`.
    Reject {
        /// `ConfigInvalid`, listing every error.
        event: Event,
        /// The errors, one per line, for the log.
        errors: String,
    },
}

impl ConfigVerdict {
    /// The value of `ferrolb_config_valid` after this verdict.
    pub fn valid(&self) -> bool {
        !matches!(self, ConfigVerdict::Reject { .. })
    }
}

/// Judges the ConfigMap `data` (`None`: the ConfigMap is absent) against `current`.
pub fn judge_config(
    current: Option<&Config>,
    data: Option<&BTreeMap<String, String>>,
) -> ConfigVerdict {
    let Some(data) = data else {
        return ConfigVerdict::Missing;
    };
    match parse_config_map_data(data) {
        Ok(parsed) => {
            if current == Some(&parsed.config) {
                return ConfigVerdict::Unchanged;
            }
            let mut events = vec![Event::normal(
                EventReason::ConfigLoaded,
                EventAction::LoadConfig,
                loaded_note(parsed.config.pools.len(), parsed.config.format),
            )];
            let warnings = (!parsed.warnings.is_empty()).then(|| parsed.warnings.join("; "));
            if let Some(note) = &warnings {
                events.push(Event::warning(
                    EventReason::ConfigWarning,
                    EventAction::LoadConfig,
                    note.clone(),
                ));
            }
            ConfigVerdict::Load {
                config: Box::new(parsed.config),
                events,
                warnings,
            }
        }
        Err(errors) => {
            let errors = errors.to_string();
            let note = format!(
                "config rejected, the last good config stays in force: {}",
                errors.replace('\n', "; ")
            );
            ConfigVerdict::Reject {
                event: Event::warning(EventReason::ConfigInvalid, EventAction::LoadConfig, note),
                errors,
            }
        }
    }
}

fn loaded_note(pools: usize, format: ConfigFormat) -> String {
    format!("loaded {pools} pool(s) ({format:?} format)")
}
