//! The verified caller.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::cert::CertificateIdentity;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A signed JWT bearer token.
    Jwt,
    /// A client certificate verified in a mutual-TLS handshake.
    Mtls,
}

impl AuthMethod {
    /// A stable name for logs and span fields.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Mtls => "mtls",
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
    // Kept beside the (cached, shared) claims: the same token may arrive over different
    // connections, each with its own certificate.
    certificate: Option<Arc<CertificateIdentity>>,
}

struct IdentityInner {
    /// `issuer|subject` (or client id): the key of this caller's quota and lockout, built
    /// once per verified token rather than per request.
    quota_key: String,
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
            .field("auth_methods", &self.auth_methods())
            .field("certificate", &self.certificate.as_ref().map(|c| c.subject()))
            .finish_non_exhaustive()
    }
}

/// `issuer|who`: see [`Identity::quota_key`].
fn quota_key(issuer: &str, who: Option<&str>) -> String {
    let who = who.unwrap_or("");
    let mut key = String::with_capacity(issuer.len() + who.len() + 1);
    key.push_str(issuer);
    key.push('|');
    key.push_str(who);
    key
}

/// Who a token names: its subject, else its client id (`azp`, then `client_id`).
fn caller_name(claims: &Map<String, Value>) -> Option<&str> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    text("sub").or_else(|| text("azp")).or_else(|| text("client_id"))
}

/// The [`Identity::quota_key`] of the identity these claims would make, when they name a
/// caller: the key a rejected (signature-verified) token's failures count against, so they
/// lock out the same key the Guard checks for the caller's later tokens.
pub(crate) fn claims_lockout_key(issuer: &str, claims: &Map<String, Value>) -> Option<String> {
    caller_name(claims).map(|who| quota_key(issuer, Some(who)))
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
        let subject = string_claim(&claims, "sub");
        let client_id = string_claim(&claims, "azp").or_else(|| string_claim(&claims, "client_id"));
        Identity {
            inner: Arc::new(IdentityInner {
                quota_key: quota_key(issuer, caller_name(&claims)),
                subject,
                issuer: issuer.to_string(),
                client_id,
                scopes,
                auth_methods: vec![AuthMethod::Jwt],
                claims,
            }),
            certificate: None,
        }
    }

    /// An identity from a verified client certificate alone (service to service): the
    /// subject is the SPIFFE ID when there is one, else the subject DN; no scopes.
    pub(crate) fn from_certificate(certificate: Arc<CertificateIdentity>) -> Identity {
        let subject = certificate
            .spiffe_id()
            .map(|s| s.to_string())
            .unwrap_or_else(|| certificate.subject().to_string());
        Identity {
            inner: Arc::new(IdentityInner {
                quota_key: quota_key(certificate.issuer(), Some(&subject)),
                subject: Some(subject),
                issuer: certificate.issuer().to_string(),
                client_id: None,
                scopes: Vec::new(),
                auth_methods: vec![AuthMethod::Mtls],
                claims: Map::new(),
            }),
            certificate: Some(certificate),
        }
    }

    /// The same identity, also holding the connection's verified client certificate.
    pub(crate) fn with_certificate(mut self, certificate: Arc<CertificateIdentity>) -> Identity {
        self.certificate = Some(certificate);
        self
    }

    /// The key of this caller's quota and lockout: the issuer and the subject (else the
    /// client id), so equal subjects of two issuers never share a quota.
    pub(crate) fn quota_key(&self) -> &str {
        &self.inner.quota_key
    }

    /// [`Identity::quota_key`] when the identity names a caller (a subject or a client id):
    /// what a rejected token's failures count against.
    pub(crate) fn lockout_key(&self) -> Option<&str> {
        (self.subject().is_some() || self.client_id().is_some()).then_some(self.quota_key())
    }

    /// The verified client certificate of the connection (mutual TLS), if any.
    pub fn certificate(&self) -> Option<&CertificateIdentity> {
        self.certificate.as_deref()
    }

    /// The `cnf.x5t#S256` confirmation of a certificate-bound token (RFC 8705), if any.
    pub fn certificate_binding(&self) -> Option<&str> {
        self.inner.claims.get("cnf").and_then(|c| c.get("x5t#S256")).and_then(Value::as_str)
    }

    /// True when the token is bound to the certificate presented on this connection.
    pub fn is_certificate_bound(&self) -> bool {
        match (self.certificate_binding(), &self.certificate) {
            (Some(bound), Some(cert)) => bound == cert.thumbprint_sha256(),
            _ => false,
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

    /// True when the caller authenticated with `method`.
    pub fn has_auth_method(&self, method: AuthMethod) -> bool {
        self.inner.auth_methods.contains(&method)
            || (method == AuthMethod::Mtls && self.certificate.is_some())
    }

    /// How the caller authenticated (`Jwt`, `Mtls`, or both).
    pub fn auth_methods(&self) -> Vec<AuthMethod> {
        let mut methods = self.inner.auth_methods.clone();
        if self.certificate.is_some() && !methods.contains(&AuthMethod::Mtls) {
            methods.push(AuthMethod::Mtls);
        }
        methods
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
