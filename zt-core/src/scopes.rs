//! Per-route access requirements: public, or OAuth scopes as an OR of AND-sets.
//!
//! The shape is the one OpenAPI `security` uses: a list of alternatives, each a set of scopes
//! that must all be granted. A route with no requirement is not reachable (default deny).
//!
//! ```
//! use zt_core::scopes::{self, Requirement};
//!
//! let read = scopes::all(["orders:read"]);
//! let either = scopes::any(["orders:admin", "support"]);
//! let combined = scopes::all(["orders:read", "orders:write"]).or(scopes::all(["orders:admin"]));
//! assert!(read.is_satisfied_by(["orders:read", "profile"]));
//! assert!(either.is_satisfied_by(["support"]));
//! assert!(!combined.is_satisfied_by(["orders:read"]));
//! assert!(scopes::public().is_public());
//! ```

use serde::{Deserialize, Serialize};

/// What a caller needs to reach a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Anyone may call; a credential that is sent is still verified (an invalid one is denied).
    Public,
    /// A verified identity holding every scope of at least one of these sets. An empty set
    /// means "any verified identity".
    Scopes(Vec<Vec<String>>),
}

/// A route anyone may call (credentials are optional, but verified when present).
pub fn public() -> Requirement {
    Requirement::Public
}

/// A route any verified identity may call, whatever its scopes.
pub fn authenticated() -> Requirement {
    Requirement::Scopes(vec![Vec::new()])
}

/// A route that needs every one of `scopes`.
pub fn all<I, S>(scopes: I) -> Requirement
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Requirement::Scopes(vec![scopes.into_iter().map(Into::into).collect()])
}

/// A route that needs at least one of `scopes`.
pub fn any<I, S>(scopes: I) -> Requirement
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Requirement::Scopes(scopes.into_iter().map(|s| vec![s.into()]).collect())
}

impl Requirement {
    /// Either this requirement or `other` suffices. `public()` absorbs anything.
    pub fn or(self, other: Requirement) -> Requirement {
        match (self, other) {
            (Requirement::Public, _) | (_, Requirement::Public) => Requirement::Public,
            (Requirement::Scopes(mut a), Requirement::Scopes(b)) => {
                a.extend(b);
                Requirement::Scopes(a)
            }
        }
    }

    /// True for [`public()`].
    pub fn is_public(&self) -> bool {
        matches!(self, Requirement::Public)
    }

    /// True when the granted scopes satisfy this requirement (always true for public routes).
    pub fn is_satisfied_by<I, S>(&self, granted: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let granted: Vec<S> = granted.into_iter().collect();
        self.missing_scopes(|s| granted.iter().any(|g| g.as_ref() == s)).is_none()
    }

    /// `None` when satisfied; otherwise the alternative closest to being satisfied (fewest
    /// missing scopes), which is what a 403 names in `scope="..."`.
    pub(crate) fn missing_scopes(&self, has: impl Fn(&str) -> bool) -> Option<&[String]> {
        let Requirement::Scopes(alternatives) = self else {
            return None;
        };
        let mut best: Option<(usize, &[String])> = None;
        for set in alternatives {
            let missing = set.iter().filter(|s| !has(s)).count();
            if missing == 0 {
                return None;
            }
            if best.is_none_or(|(m, _)| missing < m) {
                best = Some((missing, set));
            }
        }
        // No alternatives at all can never be satisfied: name nothing rather than panic.
        Some(best.map(|(_, s)| s).unwrap_or(&[]))
    }

    /// Validates the requirement: no empty scope names, no whitespace inside one.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Requirement::Scopes(alternatives) = self {
            if alternatives.is_empty() {
                return Err("a scope requirement needs at least one alternative".into());
            }
            for scope in alternatives.iter().flatten() {
                if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\') {
                    return Err(format!("invalid scope name {scope:?}"));
                }
            }
        }
        Ok(())
    }

    /// A readable description for logs: `orders:read` / `a b | c` / `public`.
    pub fn describe(&self) -> String {
        match self {
            Requirement::Public => "public".into(),
            Requirement::Scopes(alts) => alts
                .iter()
                .map(|set| if set.is_empty() { "authenticated".to_string() } else { set.join(" ") })
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_needs_every_scope() {
        let r = all(["a", "b"]);
        assert!(r.is_satisfied_by(["a", "b", "c"]));
        assert!(!r.is_satisfied_by(["a"]));
        assert!(!r.is_satisfied_by(Vec::<String>::new()));
    }

    #[test]
    fn any_needs_one() {
        let r = any(["a", "b"]);
        assert!(r.is_satisfied_by(["b"]));
        assert!(!r.is_satisfied_by(["c"]));
    }

    #[test]
    fn or_combines_alternatives_and_reports_closest() {
        let r = all(["a", "b", "c"]).or(all(["d"]));
        assert!(r.is_satisfied_by(["d"]));
        let granted = ["a", "b"];
        let missing = r.missing_scopes(|s| granted.contains(&s)).map(<[String]>::to_vec);
        assert_eq!(missing, Some(vec!["a".to_string(), "b".into(), "c".into()]));
        let r2 = all(["x", "y"]).or(all(["a", "z"]));
        let missing = r2.missing_scopes(|s| s == "a").map(<[String]>::to_vec);
        assert_eq!(missing, Some(vec!["a".to_string(), "z".into()]));
    }

    #[test]
    fn authenticated_and_public() {
        assert!(authenticated().is_satisfied_by(Vec::<String>::new()));
        assert!(public().or(all(["a"])).is_public());
        assert!(!all(["a"]).is_public());
    }

    #[test]
    fn validation_rejects_bad_names() {
        assert!(all(["a b"]).validate().is_err());
        assert!(all([""]).validate().is_err());
        assert!(Requirement::Scopes(vec![]).validate().is_err());
        assert!(all(["orders:read"]).validate().is_ok());
    }
}
