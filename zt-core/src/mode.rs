//! The Guard's mode: enforce its decisions, or only report them. A leaf module: the policy
//! (which reads it) and the observer (which acts on it) both name it without naming each
//! other.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Enforce decisions, or only report what would have been denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denials are answered (default).
    #[default]
    Enforce,
    /// Denials are computed and logged as they would be enforced, but requests pass.
    Report,
}

impl Mode {
    /// `enforce` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "report" => Ok(Mode::Report),
            other => Err(PolicyError::invalid(
                "mode",
                format!("unknown mode {other:?} (expected \"enforce\" or \"report\")"),
            )),
        }
    }
}
