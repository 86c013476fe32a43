//! Start-up errors: a bad policy is an error that names the offending entry.

use std::path::Path;

/// A policy that cannot be loaded, validated or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// The policy text is not valid TOML/YAML or does not fit the policy's shape.
    #[error("{}{}: {message}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), line.map(|l| format!("line {l}")).unwrap_or_else(|| "policy".into()))]
    Parse {
        /// The file, when read from one.
        file: Option<String>,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An entry is invalid.
    #[error("{}{at}: {message}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        file: Option<String>,
        /// The key path of the offending entry, e.g. `issuers[0].jwks_url`.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// No JWT crypto provider is compiled in (enable exactly one of the `aws-lc-rs` and
    /// `rust-crypto` features).
    #[error("no JWT crypto provider: enable exactly one of the zt features `aws-lc-rs` or `rust-crypto`")]
    NoCryptoProvider,
}

impl PolicyError {
    pub(crate) fn invalid(at: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Invalid { file: None, at: at.into(), message: message.into() }
    }

    pub(crate) fn in_file(self, path: &Path) -> Self {
        let name = path.display().to_string();
        match self {
            PolicyError::Parse { line, message, .. } => {
                PolicyError::Parse { file: Some(name), line, message }
            }
            PolicyError::Invalid { at, message, .. } => {
                PolicyError::Invalid { file: Some(name), at, message }
            }
            other => other,
        }
    }
}
