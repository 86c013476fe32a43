//! The verified caller.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A signed JWT bearer token.
    Jwt,
}

impl AuthMethod {
    /// A stable name for logs and span fields.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
        }
    }
}

/// A verified caller: who, issued by whom, for which client, with which scopes.
///
/// Cheap to clone (one reference count). Built only by the Guard after every check passed.
///
/// ```
/// # use zt_core::Identity;
/// fn owner(who: &Identity) -> &str {
///     who.subject().unwrap_or("anonymous")
/// }
/// ```
#[derive(Clone)]
pub struct Identity {
    inner: Arc<IdentityInner>,
}

struct IdentityInner {
    subject: Option<String>,
    issuer: String,
    client_id: Option<String>,
    scopes: Vec<String>,
    auth_methods: Vec<AuthMethod>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for Identity {
    // Claim values stay out of logs: only the fields zt documents as loggable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.client_id)
            .field("scopes", &self.inner.scopes)
            .field("auth_methods", &self.inner.auth_methods)
            .finish_non_exhaustive()
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_string)
}

impl Identity {
    /// Builds an identity from verified JWT claims.
    pub(crate) fn from_jwt_claims(issuer: &str, claims: Map<String, Value>) -> Identity {
        let mut scopes: Vec<String> = Vec::new();
        if let Some(scope) = claims.get("scope").and_then(Value::as_str) {
            scopes.extend(scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
        }
        match claims.get("scp") {
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Some(Value::String(s)) => {
                scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_string))
            }
            _ => {}
        }
        scopes.sort();
        scopes.dedup();
        Identity {
            inner: Arc::new(IdentityInner {
                subject: string_claim(&claims, "sub"),
                issuer: issuer.to_string(),
                client_id: string_claim(&claims, "azp").or_else(|| string_claim(&claims, "client_id")),
                scopes,
                auth_methods: vec![AuthMethod::Jwt],
                claims,
            }),
        }
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// The issuer that vouched for this identity.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The OAuth client: `azp`, else `client_id`.
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// Granted scopes (`scope` space-delimited and `scp` array), sorted, without duplicates.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// True when `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.inner.scopes.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }

    /// How the caller authenticated.
    pub fn auth_methods(&self) -> &[AuthMethod] {
        &self.inner.auth_methods
    }

    /// One raw claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.inner.claims.get(name)
    }

    /// All raw claims.
    pub fn raw_claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// The claims deserialized into your own type.
    ///
    /// ```
    /// # fn f(who: &zt_core::Identity) -> Result<(), serde_json::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Tenant { tenant: String }
    /// let t: Tenant = who.claims()?;
    /// # let _ = t.tenant; Ok(()) }
    /// ```
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object(self.inner.claims.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_from_scope_and_scp() {
        let claims = json!({"sub":"alice","scope":"b a","scp":["c","a"],"azp":"cli"});
        let Value::Object(map) = claims else { unreachable!() };
        let id = Identity::from_jwt_claims("https://i", map);
        assert_eq!(id.scopes(), ["a", "b", "c"]);
        assert!(id.has_scope("c"));
        assert!(!id.has_scope("d"));
        assert_eq!(id.subject(), Some("alice"));
        assert_eq!(id.client_id(), Some("cli"));
        assert!(!format!("{id:?}").contains("azp"));
    }
}
