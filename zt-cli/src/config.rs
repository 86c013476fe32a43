//! `zt-lint.toml`: rules switched off or given another level, and the default `--fail-on`.
//!
//! ```toml
//! fail-on = "warning"          # default for --fail-on (error | warning | note | never)
//! runtime-strict = true        # zt enforces the document in strict mode (the default);
//!                              # false: report open request objects zt's strict mode would close
//!
//! [rules]
//! ZT006 = "off"                # by id ...
//! unbounded-number = "note"    # ... or by name: off | note | warning | error
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::report::{Level, Rule};

/// The `--fail-on` threshold of `lint` and `inventory-check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Fail on errors.
    Error,
    /// Fail on warnings or errors.
    Warning,
    /// Fail on any finding.
    Note,
    /// Never fail because of findings.
    Never,
}

impl FailOn {
    /// True when a finding at `level` fails the run.
    pub fn fails(self, level: Level) -> bool {
        match self {
            FailOn::Error => level >= Level::Error,
            FailOn::Warning => level >= Level::Warning,
            FailOn::Note => true,
            FailOn::Never => false,
        }
    }
}

/// A rule's setting in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// The rule does not run.
    Off,
    /// Report at this level.
    Note,
    /// Report at this level.
    Warning,
    /// Report at this level.
    Error,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "fail-on", alias = "fail_on")]
    fail_on: Option<FailOn>,
    #[serde(default, rename = "runtime-strict", alias = "runtime_strict")]
    runtime_strict: Option<bool>,
    #[serde(default)]
    rules: BTreeMap<String, Setting>,
}

/// A loaded configuration, rule names resolved to ids.
#[derive(Debug, Default, Clone)]
pub struct LintConfig {
    /// The default `--fail-on`.
    pub fail_on: Option<FailOn>,
    /// Settings by rule id.
    pub rules: BTreeMap<&'static str, Setting>,
    /// Whether zt enforces the document with `[contract] strict` (`None`: yes, its default).
    pub runtime_strict: Option<bool>,
}

impl LintConfig {
    /// Reads a configuration file; rules are checked against `catalogue`.
    pub fn from_file(path: &Path, catalogue: &[&'static Rule]) -> Result<LintConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_toml(&text, catalogue).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses configuration text.
    pub fn from_toml(text: &str, catalogue: &[&'static Rule]) -> Result<LintConfig, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            }
        })?;
        let mut rules = BTreeMap::new();
        for (key, setting) in raw.rules {
            let rule = catalogue
                .iter()
                .find(|r| r.id.eq_ignore_ascii_case(&key) || r.name == key)
                .ok_or_else(|| format!("rules.{key}: no rule has this id or name"))?;
            rules.insert(rule.id, setting);
        }
        Ok(LintConfig { fail_on: raw.fail_on, rules, runtime_strict: raw.runtime_strict })
    }

    /// Whether zt's strict mode closes request objects at run time (default true, as
    /// `[contract] strict` is): ZT005 is then not reported for the objects it closes.
    pub fn runtime_strict(&self) -> bool {
        self.runtime_strict.unwrap_or(true)
    }

    /// The level of `rule`, or `None` when it is off.
    pub fn level(&self, rule: &Rule) -> Option<Level> {
        match self.rules.get(rule.id) {
            None => Some(rule.level),
            Some(Setting::Off) => None,
            Some(Setting::Note) => Some(Level::Note),
            Some(Setting::Warning) => Some(Level::Warning),
            Some(Setting::Error) => Some(Level::Error),
        }
    }
}
