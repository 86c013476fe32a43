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
    #[error("{}{}{at}: {message}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        file: Option<String>,
        /// The 1-based line of the entry in the file, when it could be located.
        line: Option<usize>,
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
        PolicyError::Invalid { file: None, line: None, at: at.into(), message: message.into() }
    }

    /// A secret read from the environment variable `name` (policy entry `at`), at least
    /// `min_len` bytes. Errors name the variable, never its value.
    pub(crate) fn secret_from_env(at: &str, name: &str, min_len: usize) -> Result<String, PolicyError> {
        let value = std::env::var(name)
            .map_err(|_| PolicyError::invalid(at, format!("the environment variable {name} is not set")))?;
        if value.len() < min_len {
            return Err(PolicyError::invalid(
                at,
                format!("the secret in {name} must be at least {min_len} bytes"),
            ));
        }
        Ok(value)
    }

    pub(crate) fn in_file(self, path: &Path) -> Self {
        let name = path.display().to_string();
        match self {
            PolicyError::Parse { line, message, .. } => {
                PolicyError::Parse { file: Some(name), line, message }
            }
            PolicyError::Invalid { at, message, line, .. } => {
                PolicyError::Invalid { file: Some(name), line, at, message }
            }
            other => other,
        }
    }

    /// Names the file of an invalid entry and the line where its key path
    /// (e.g. `issuers[0].jwks_url`) is written.
    pub fn locate_in(self, path: &Path) -> Self {
        let located = match (&self, std::fs::read_to_string(path)) {
            (PolicyError::Invalid { at, .. }, Ok(text)) => {
                if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                    yaml_line_of(&text, at)
                } else {
                    toml_line_of(&text, at)
                }
            }
            _ => None,
        };
        match self.in_file(path) {
            PolicyError::Invalid { file, at, message, .. } => {
                PolicyError::Invalid { file, line: located, at, message }
            }
            other => other,
        }
    }
}

/// The line of the longest prefix of `key_path` written in TOML `text`. A line scanner, not a
/// parser (the text already parsed): `[table]`, `[[array.of.tables]]` (counted per path) and
/// `key = value` lines.
fn toml_line_of(text: &str, key_path: &str) -> Option<usize> {
    use std::collections::HashMap;
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut prefix = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            prefix = format!("{name}[{n}]");
            *n += 1;
            positions.entry(prefix.clone()).or_insert(i + 1);
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            prefix = name.trim().to_string();
            positions.entry(prefix.clone()).or_insert(i + 1);
        } else if let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            let key = key.trim().trim_matches('"');
            let full = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
            positions.entry(full).or_insert(i + 1);
        }
    }
    // `issuers[0].pem_keys[1].algorithm` -> try it, then shorter prefixes.
    let mut candidate = key_path.to_string();
    loop {
        if let Some(line) = positions.get(&candidate) {
            return Some(*line);
        }
        let cut = candidate.rfind(['.', '['])?;
        candidate.truncate(cut);
    }
}

/// The line of the longest prefix of `key_path` in YAML `text` (block style, as policy
/// files are written): an indentation scanner over `key:` and `- ` lines, not a parser.
fn yaml_line_of(text: &str, key_path: &str) -> Option<usize> {
    use std::collections::HashMap;
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    // (indent, path) of the open mappings and sequence items.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split(" #").next().unwrap_or(raw);
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut indent = content.len() - trimmed.len();
        let mut rest = trimmed;
        while let Some(item) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            while stack.last().is_some_and(|(d, _)| *d >= indent) {
                stack.pop();
            }
            let parent = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
            let n = counts.entry(parent.clone()).or_insert(0);
            let path = format!("{parent}[{n}]");
            *n += 1;
            positions.entry(path.clone()).or_insert(i + 1);
            stack.push((indent, path));
            indent += 2;
            rest = item.trim_start();
        }
        let Some((key, _)) = rest.split_once(':') else { continue };
        let key = key.trim().trim_matches('"').trim_matches('\'');
        if key.is_empty() || key.contains(' ') {
            continue;
        }
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        let path = match stack.last() {
            Some((_, parent)) => format!("{parent}.{key}"),
            None => key.to_string(),
        };
        positions.entry(path.clone()).or_insert(i + 1);
        stack.push((indent, path));
    }
    let mut candidate = key_path.to_string();
    loop {
        if let Some(line) = positions.get(&candidate) {
            return Some(*line);
        }
        let cut = candidate.rfind(['.', '['])?;
        candidate.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::{toml_line_of, yaml_line_of};

    #[test]
    fn yaml_key_paths_map_to_lines() {
        let text = "mode: enforce\nissuers:\n  - issuer: a\n    audiences: [x]\n  - issuer: b\n    jwks_url: http://x\n    pem_keys:\n      - algorithm: RS256\n        pem: abc\nlimits:\n  trusted_proxies:\n    - bad\n";
        assert_eq!(yaml_line_of(text, "issuers[1].jwks_url"), Some(6));
        assert_eq!(yaml_line_of(text, "issuers[0].audiences"), Some(4));
        assert_eq!(yaml_line_of(text, "issuers[1]"), Some(5));
        assert_eq!(yaml_line_of(text, "issuers[1].pem_keys[0].algorithm"), Some(8));
        assert_eq!(yaml_line_of(text, "limits.trusted_proxies[0]"), Some(12));
        assert_eq!(yaml_line_of(text, "zones[0]"), None);
    }

    #[test]
    fn key_paths_map_to_lines() {
        let text = "mode = \"enforce\"\n\n[[issuers]]\nissuer = \"a\"\n\n[[issuers]]\nissuer = \"b\"\njwks_url = \"http://x\"\naudiences = [\"a\"]\n\n[limits]\ntrusted_proxies = [\"bad\"]\n";
        assert_eq!(toml_line_of(text, "issuers[1].jwks_url"), Some(8));
        assert_eq!(toml_line_of(text, "issuers[1].audiences[0]"), Some(9));
        assert_eq!(toml_line_of(text, "issuers[0]"), Some(3));
        assert_eq!(toml_line_of(text, "limits.trusted_proxies[0]"), Some(12));
        assert_eq!(toml_line_of(text, "zones[0]"), None);
    }
}
