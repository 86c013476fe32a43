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
    /// An opaque access token the issuer's introspection endpoint (RFC 7662) vouched for.
    Introspection,
    /// A client certificate verified in a mutual-TLS handshake.
    Mtls,
}

impl AuthMethod {
    /// A stable name for logs and span fields.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Introspection => "introspection",
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
    // Per request too: a DPoP proof of possession of the token's key came with it.
    proof_of_possession: bool,
}

struct IdentityInner {
    /// The canonical caller key (see [`Identity::principal`]), built once per verified token
    /// rather than per request; `None` when the claims name no caller (a certificate may).
    principal: Option<String>,
    /// The `jti` claim as text (a string as it is, a number as its JSON text).
    token_id: Option<String>,
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

/// The principal a token's claims name: `{iss}|sub:{sub}`, else `{iss}|client:{id}` (from
/// `azp`, then `client_id`). The two forms never collide, so a client-credentials token of
/// client `x` and a user whose subject is `x` are different callers.
pub(crate) fn claims_principal(issuer: &str, claims: &Map<String, Value>) -> Option<String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let (kind, who) = match text("sub") {
        Some(sub) => ("sub:", sub),
        None => ("client:", text("azp").or_else(|| text("client_id"))?),
    };
    let mut key = String::with_capacity(issuer.len() + kind.len() + who.len() + 1);
    key.push_str(issuer);
    key.push('|');
    key.push_str(kind);
    key.push_str(who);
    Some(key)
}

/// The `jti` claim as text: a string as it is, an integer as its decimal text (an integral
/// number in any spelling: `4711.0` is `4711`, as the controls API reads a revocation's
/// `jti`); `Err` for any other JSON type (an object, an array, a boolean, a fraction, an
/// integer beyond 64 bits), which no revocation could ever name reliably, so the token is
/// refused rather than made unrevocable.
pub(crate) fn token_id(claims: &Map<String, Value>) -> Result<Option<String>, ()> {
    match claims.get("jti") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => crate::json::integral(n).map(|i| Some(i.to_string())).ok_or(()),
        Some(_) => Err(()),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_string)
}

impl Identity {
    /// Builds an identity from verified JWT claims.
    pub(crate) fn from_jwt_claims(issuer: &str, claims: Map<String, Value>) -> Identity {
        Identity::from_token_claims(issuer, claims, AuthMethod::Jwt)
    }

    /// Builds an identity from an introspection answer's facts (RFC 7662 claims).
    pub(crate) fn from_introspection(issuer: &str, claims: Map<String, Value>) -> Identity {
        Identity::from_token_claims(issuer, claims, AuthMethod::Introspection)
    }

    fn from_token_claims(issuer: &str, claims: Map<String, Value>, method: AuthMethod) -> Identity {
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
                principal: claims_principal(issuer, &claims),
                // Verification refuses a `jti` of another type before an identity is built.
                token_id: token_id(&claims).ok().flatten(),
                subject,
                issuer: issuer.to_string(),
                client_id,
                scopes,
                auth_methods: vec![method],
                claims,
            }),
            certificate: None,
            proof_of_possession: false,
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
                // The certificate names the caller (see `Identity::principal`).
                principal: None,
                token_id: None,
                subject: Some(subject),
                issuer: certificate.issuer().to_string(),
                client_id: None,
                scopes: Vec::new(),
                auth_methods: vec![AuthMethod::Mtls],
                claims: Map::new(),
            }),
            certificate: Some(certificate),
            proof_of_possession: false,
        }
    }

    /// The same identity, also holding the connection's verified client certificate.
    pub(crate) fn with_certificate(mut self, certificate: Arc<CertificateIdentity>) -> Identity {
        self.certificate = Some(certificate);
        self
    }

    /// Marks that a valid DPoP proof of the token's key came with this request.
    pub(crate) fn with_proof_of_possession(mut self) -> Identity {
        self.proof_of_possession = true;
        self
    }

    /// The `cnf.jkt` confirmation of a DPoP-bound token (RFC 9449 s.6), if any.
    pub fn dpop_binding(&self) -> Option<&str> {
        self.inner.claims.get("cnf").and_then(|c| c.get("jkt")).and_then(Value::as_str)
    }

    /// True when the token is DPoP-bound and this request proved possession of its key.
    pub fn is_dpop_bound(&self) -> bool {
        self.proof_of_possession && self.dpop_binding().is_some()
    }

    /// True when the token is sender-constrained on this request: bound to the connection's
    /// client certificate (RFC 8705) or to a DPoP key whose possession was proven (RFC 9449).
    pub fn is_sender_constrained(&self) -> bool {
        self.is_certificate_bound() || self.is_dpop_bound()
    }

    /// The canonical caller key, the one name of this caller everywhere: quotas, lockout,
    /// blocks, throttles, revocation, detection, the inventory, the span's `enduser.id`,
    /// and ownership in your handlers.
    ///
    /// - `{iss}|sub:{sub}` for a token with a subject;
    /// - else `{iss}|client:{client}` for a token naming only its client (`azp`, then
    ///   `client_id`; e.g. the client-credentials grant);
    /// - else the client certificate's SPIFFE ID (`spiffe://...`), or `x5t#S256:{thumbprint}`.
    ///
    /// The Guard never admits a caller that none of these names, so this is never empty
    /// on an identity your handler receives.
    ///
    /// ```
    /// # fn f(who: &zt_core::Identity) {
    /// // Ownership: store and compare the principal, never the bare `sub`.
    /// let owner: &str = who.principal();
    /// # let _ = owner; }
    /// ```
    pub fn principal(&self) -> &str {
        match (&self.inner.principal, &self.certificate) {
            (Some(principal), _) => principal,
            (None, Some(certificate)) => certificate.principal(),
            (None, None) => "",
        }
    }

    /// True when something names this caller (see [`Identity::principal`]).
    pub(crate) fn has_principal(&self) -> bool {
        self.inner.principal.is_some() || self.certificate.is_some()
    }

    /// The `sid` claim (the session the token belongs to, as OpenID Connect and Shared
    /// Signals name it), when it is a string.
    pub fn session_id(&self) -> Option<&str> {
        self.claim("sid").and_then(Value::as_str)
    }

    /// The `iat` claim as a time, when it is a non-negative number (the Guard already
    /// refused a token whose `iat` is not a NumericDate).
    pub fn issued_at(&self) -> Option<std::time::SystemTime> {
        let secs = self.claim("iat")?.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
        std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs_f64(secs.min(1e12)))
    }

    /// The token's `jti` as text (a numeric `jti` as its decimal text), if it has one: what
    /// a revocation names.
    pub fn token_id(&self) -> Option<&str> {
        self.inner.token_id.as_deref()
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

    /// True when the caller presented an access token (a JWT, or an opaque token an
    /// issuer introspected): what issuer, binding and token-age conditions judge.
    pub fn has_access_token(&self) -> bool {
        self.inner.auth_methods.iter().any(|m| matches!(m, AuthMethod::Jwt | AuthMethod::Introspection))
    }

    /// The name of the first way the caller authenticated, for logs and span fields:
    /// `jwt`, `introspection` or `mtls`.
    pub fn auth_method_name(&self) -> &'static str {
        match self.inner.auth_methods.first() {
            Some(method) => method.as_str(),
            None if self.certificate.is_some() => AuthMethod::Mtls.as_str(),
            None => "none",
        }
    }

    /// How the caller authenticated (`Jwt` or `Introspection`, `Mtls`, or both).
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
    fn introspected_tokens_are_access_tokens_named_as_such() {
        let Value::Object(claims) = json!({"sub": "u", "scope": "a b", "client_id": "c"}) else {
            unreachable!("an object")
        };
        let opaque = Identity::from_introspection("https://idp", claims.clone());
        let jwt = Identity::from_jwt_claims("https://idp", claims);
        assert_eq!((opaque.auth_method_name(), jwt.auth_method_name()), ("introspection", "jwt"));
        assert!(opaque.has_access_token() && jwt.has_access_token());
        assert!(!opaque.has_auth_method(AuthMethod::Jwt));
        assert_eq!((opaque.subject(), opaque.client_id()), (Some("u"), Some("c")));
        assert!(opaque.has_scope("a") && opaque.has_scope("b"));
    }

    #[test]
    fn a_numeric_jti_is_its_integer_in_any_spelling() {
        let id = |jti: Value| {
            let Value::Object(claims) = json!({ "jti": jti }) else { unreachable!("an object") };
            token_id(&claims)
        };
        assert_eq!(id(json!(4711)), Ok(Some("4711".into())));
        assert_eq!(id(serde_json::from_str("4711.0").unwrap()), Ok(Some("4711".into())));
        assert_eq!(id(serde_json::from_str("4.711e3").unwrap()), Ok(Some("4711".into())));
        assert_eq!(id(json!("4711.0")), Ok(Some("4711.0".into())), "a string is as it is");
        assert_eq!(id(json!(1.5)), Err(()));
        assert_eq!(id(json!(1e20)), Err(()));
        assert_eq!(id(json!(true)), Err(()));
    }

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
