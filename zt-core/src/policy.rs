//! The policy: plain data (TOML, YAML, or built in code) that a [`Guard`](crate::Guard)
//! validates and compiles once at start-up.
//!
//! ```
//! use zt_core::policy::{IssuerConfig, Policy};
//!
//! let policy = Policy::from_toml_str(r#"
//!     realm = "orders-api"
//!
//!     [[issuers]]
//!     issuer = "https://issuer.example"
//!     audiences = ["orders-api"]
//!     jwks_url = "https://issuer.example/.well-known/jwks.json"
//!
//!     [[routes]]
//!     method = "GET"
//!     path = "/orders"
//!     scopes = [["orders:read"]]
//! "#).unwrap();
//! assert_eq!(policy.issuers[0].audiences, ["orders-api"]);
//!
//! // The same in code:
//! let built = Policy::builder()
//!     .realm("orders-api")
//!     .issuer(IssuerConfig::new("https://issuer.example")
//!         .audience("orders-api")
//!         .jwks_url("https://issuer.example/.well-known/jwks.json"))
//!     .build();
//! assert_eq!(built.issuers[0].issuer, policy.issuers[0].issuer);
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
// Also at `zt_core::Mode`, where its page is.
#[doc(no_inline)]
pub use crate::mode::Mode;
use crate::scopes::Requirement;

/// The whole policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Enforce (default) or report-only.
    #[serde(default)]
    pub mode: Mode,
    /// The `realm` named in `WWW-Authenticate` challenges (default `zt`).
    #[serde(default)]
    pub realm: Option<String>,
    /// Trusted token issuers, each with its own keys.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Where tokens are read from and how verified tokens are cached.
    #[serde(default)]
    pub tokens: TokenConfig,
    /// How remote key sets (JWKS, OIDC discovery) are fetched and refreshed.
    #[serde(default)]
    pub remote_keys: RemoteKeysConfig,
    /// Route requirements declared in the policy (merged with those registered in code).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Path canonicalization (default: reject every non-canonical form).
    #[serde(default)]
    pub paths: crate::canonical::PathPolicy,
    /// Largest accepted request body in bytes, unless an operation says otherwise
    /// (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Trust zones (see [`crate::zones`]). None: the zone stage is skipped.
    #[serde(default)]
    pub zones: Vec<crate::zones::ZoneConfig>,
    /// Path parameters bound to claims (ownership, against BOLA).
    #[serde(default)]
    pub bindings: Vec<crate::zones::OwnershipBinding>,
    /// The OpenAPI contract to enforce (see [`crate::contract`]).
    #[serde(default)]
    pub contract: Option<ContractConfig>,
    /// Rate limits, lockout and client-address resolution (see [`crate::limit`]). None: no
    /// limits.
    #[serde(default)]
    pub limits: Option<crate::limit::LimitConfig>,
    /// Monitoring, detection and response, runtime controls, API inventory (see
    /// [`crate::observe`]). None: off.
    #[serde(default)]
    pub observe: Option<crate::observe::ObserverConfig>,
    /// GraphQL endpoints (`[[graphql]]`): each route path checked against its SDL schema,
    /// limits and field rules instead of the OpenAPI contract.
    #[serde(default)]
    pub graphql: Vec<GraphqlEndpointConfig>,
    /// The level of the per-request `zt.request` span (`trace`, `debug` or `info`; default
    /// `debug`, see [`crate::telemetry`]). Denial events log at WARN whatever it is.
    #[serde(default)]
    pub span_level: crate::telemetry::SpanLevel,
    /// Request ids (`[request_id]`): whether a valid incoming `x-request-id` is kept
    /// (default: never, a fresh id per request; see [`crate::correlation`]).
    #[serde(default)]
    pub request_id: crate::correlation::RequestIdConfig,
    /// The store the replicas of this service share (see [`crate::fleet`]): quotas, blocks,
    /// revocations, lockouts and detection counters become fleet-wide. None: each replica
    /// keeps its own. Needs the zt-core feature `redis`.
    #[serde(default)]
    pub fleet: Option<crate::fleet::FleetConfig>,
    /// DPoP proof-of-possession (RFC 9449; on by default, see [`crate::dpop`]): tokens bound
    /// to a client key (`cnf.jkt`) are accepted with `Authorization: DPoP` and a proof, and
    /// refused as bearer tokens.
    #[serde(default)]
    pub dpop: crate::dpop::DpopConfig,
    /// This API as an OAuth protected resource (RFC 9728 metadata, `resource_metadata` in
    /// challenges, the resource as every issuer's audience; see [`crate::resource`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<crate::resource::ResourceConfig>,
    /// A Shared Signals (SSF) transmitter whose security events (CAEP, RISC) become
    /// revocations and blocks (see [`crate::signals`]). None: no receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<crate::signals::SignalsConfig>,
}

/// One GraphQL endpoint (`[[graphql]]`): the route path it guards, its SDL schema and its
/// limits. The route itself (methods and route-level requirement) is declared like any
/// other, in `[[routes]]` or in code.
///
/// ```
/// let policy = zt_core::Policy::from_toml_str(r#"
///     [[graphql]]
///     path = "/graphql"
///     schema_file = "examples/orders.graphql"
///     [graphql.options]
///     max_depth = 8
///     max_batch = 5
/// "#).unwrap();
/// assert_eq!(policy.graphql[0].options.max_depth, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlEndpointConfig {
    /// The route path, exactly as routed (e.g. `/graphql`).
    pub path: String,
    /// The SDL file (read at start-up). Empty when the schema is given in code
    /// (`GuardBuilder::graphql`).
    #[serde(default)]
    pub schema_file: String,
    /// Limits, introspection, batching and safelisting (secure defaults).
    #[serde(default)]
    pub options: crate::graphql::GraphqlConfig,
}

/// Contract enforcement settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractConfig {
    /// The OpenAPI document (JSON or YAML); relative `$ref`s resolve from its directory.
    /// Empty when the contract is given in code (`GuardBuilder::contract`).
    #[serde(default)]
    pub file: String,
    /// Strict mode: request objects closed, unknown query parameters rejected (default true).
    #[serde(default = "default_true")]
    pub strict: bool,
    /// Most violations listed in a 400 body (default 10).
    #[serde(default = "default_max_violations")]
    pub max_violations: usize,
    /// Let routes registered in code but absent from the contract through (default false:
    /// such a route is a start-up error, since nothing would check its parameters).
    #[serde(default)]
    pub allow_undeclared_routes: bool,
    /// Response validation (default off).
    #[serde(default)]
    pub responses: ResponseValidation,
}

impl Default for ContractConfig {
    fn default() -> Self {
        ContractConfig {
            file: String::new(),
            strict: true,
            max_violations: default_max_violations(),
            allow_undeclared_routes: false,
            responses: ResponseValidation::Off,
        }
    }
}

fn default_max_violations() -> usize {
    10
}

/// What to do with responses that do not match the contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseValidation {
    /// Not checked (default).
    #[default]
    Off,
    /// Checked; violations and undeclared fields are logged as data-exposure events.
    Report,
    /// Undeclared fields are removed from JSON responses (and logged).
    Strip,
    /// A non-conforming response is replaced by a 502 problem (and logged).
    Block,
}

fn default_max_body() -> usize {
    1 << 20
}

/// One trusted issuer. Exactly one key source must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value tokens carry.
    pub issuer: String,
    /// Accepted audiences; a token's `aud` must name at least one. Required unless
    /// `dangerous_skip_audience_check` is set.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Disables the audience check for this issuer. Almost never right: any token the issuer
    /// minted for any other service would be accepted here.
    #[serde(default)]
    pub dangerous_skip_audience_check: bool,
    /// Key source: a JWKS URL, fetched and refreshed in the background.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Key source: OIDC discovery at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub oidc_discovery: bool,
    /// Key source: a JWKS file read at start-up.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Key source: an inline JWK set (JSON text).
    #[serde(default)]
    pub jwks: Option<String>,
    /// Key source: PEM public keys, each with its pinned algorithm.
    #[serde(default)]
    pub pem_keys: Vec<PemKeyConfig>,
    /// Key source: HMAC secrets (HS256/384/512). Only ever used when configured here.
    #[serde(default)]
    pub hmac_secrets: Vec<HmacSecretConfig>,
    /// Optional allow-list of algorithms, narrowing what the keys permit.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 60 s).
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// Reject tokens whose `iat` is older than this.
    #[serde(default, with = "humantime_serde")]
    pub max_token_age: Option<Duration>,
    /// Require this `typ` header (e.g. `at+jwt`, RFC 9068); `application/` prefix accepted.
    #[serde(default)]
    pub required_typ: Option<String>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claims that must have exactly this value.
    #[serde(default)]
    pub claim_values: BTreeMap<String, serde_json::Value>,
    /// Token introspection (RFC 7662) for this issuer's opaque tokens (see
    /// [`crate::introspect`]). With it, the issuer needs no key source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection: Option<crate::introspect::IntrospectionConfig>,
}

impl IssuerConfig {
    /// An issuer with no keys or audiences yet.
    pub fn new(issuer: impl Into<String>) -> Self {
        IssuerConfig { issuer: issuer.into(), ..Default::default() }
    }
    /// Adds an accepted audience.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }
    /// Uses a JWKS URL as the key source.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }
    /// Uses OIDC discovery as the key source.
    pub fn oidc_discovery(mut self) -> Self {
        self.oidc_discovery = true;
        self
    }
    /// Uses a JWKS file as the key source.
    pub fn jwks_file(mut self, path: impl Into<String>) -> Self {
        self.jwks_file = Some(path.into());
        self
    }
    /// Uses an inline JWK set (JSON text) as the key source.
    pub fn jwks(mut self, json: impl Into<String>) -> Self {
        self.jwks = Some(json.into());
        self
    }
    /// Adds a PEM public key with its pinned algorithm.
    pub fn pem_key(
        mut self,
        algorithm: impl Into<String>,
        pem: impl Into<String>,
        kid: Option<&str>,
    ) -> Self {
        self.pem_keys.push(PemKeyConfig {
            algorithm: algorithm.into(),
            pem: Some(pem.into()),
            pem_file: None,
            kid: kid.map(str::to_string),
        });
        self
    }
    /// Adds an HMAC secret with its algorithm (HS256/384/512).
    pub fn hmac_secret(
        mut self,
        algorithm: impl Into<String>,
        secret: impl Into<String>,
        kid: Option<&str>,
    ) -> Self {
        self.hmac_secrets.push(HmacSecretConfig {
            algorithm: algorithm.into(),
            secret: Some(secret.into()),
            secret_env: None,
            kid: kid.map(str::to_string),
        });
        self
    }
    /// Sets the clock-skew leeway.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }
    /// Sets the maximum token age (from `iat`).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = Some(age);
        self
    }
    /// Requires a `typ` header value.
    pub fn required_typ(mut self, typ: impl Into<String>) -> Self {
        self.required_typ = Some(typ.into());
        self
    }
    /// Requires a claim to be present.
    pub fn required_claim(mut self, name: impl Into<String>) -> Self {
        self.required_claims.push(name.into());
        self
    }
    /// Introspects this issuer's opaque tokens (RFC 7662, see [`crate::introspect`]).
    pub fn introspection(mut self, config: crate::introspect::IntrospectionConfig) -> Self {
        self.introspection = Some(config);
        self
    }
}

/// A PEM public key and the one algorithm it may verify.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PemKeyConfig {
    /// The pinned algorithm (e.g. `RS256`, `ES256`, `EdDSA`).
    pub algorithm: String,
    /// The PEM text.
    #[serde(default)]
    pub pem: Option<String>,
    /// Or a file holding the PEM text.
    #[serde(default)]
    pub pem_file: Option<String>,
    /// The key id tokens name in `kid`; tokens without `kid` may use a key without one.
    #[serde(default)]
    pub kid: Option<String>,
}

/// An HMAC secret and its algorithm.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSecretConfig {
    /// `HS256`, `HS384` or `HS512`.
    pub algorithm: String,
    /// The secret itself (prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<String>,
    /// The name of an environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The key id.
    #[serde(default)]
    pub kid: Option<String>,
}

impl std::fmt::Debug for HmacSecretConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacSecretConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("kid", &self.kid)
            .finish()
    }
}

/// Token sources and the verified-token cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Also read the token from this cookie (off by default).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Also read the raw token from this header (off by default).
    #[serde(default)]
    pub header: Option<String>,
    /// Also read `access_token` from the query string. Off by default: query strings end up
    /// in logs and browser history (RFC 6750 s.2.3).
    #[serde(default)]
    pub dangerous_allow_query_token: bool,
    /// Cache verified tokens (default true). Claims are cached; decisions never are.
    #[serde(default = "default_true")]
    pub cache: bool,
    /// Maximum number of cached verified tokens (default 10 000).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
    /// Tokens longer than this are rejected unparsed (default 8192 bytes).
    #[serde(default = "default_max_token_len")]
    pub max_token_length: usize,
}

fn default_true() -> bool {
    true
}
fn default_cache_capacity() -> usize {
    10_000
}
fn default_max_token_len() -> usize {
    8192
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            cookie: None,
            header: None,
            dangerous_allow_query_token: false,
            cache: true,
            cache_capacity: default_cache_capacity(),
            max_token_length: default_max_token_len(),
        }
    }
}

/// Fetching and refreshing remote key sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteKeysConfig {
    /// Refresh interval when the response has no `Cache-Control: max-age` (default 5 min).
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub default_refresh: Duration,
    /// `max-age` is raised to at least this (default 30 s).
    #[serde(default = "default_floor", with = "humantime_serde")]
    pub refresh_floor: Duration,
    /// `max-age` is lowered to at most this (default 1 h).
    #[serde(default = "default_ceiling", with = "humantime_serde")]
    pub refresh_ceiling: Duration,
    /// An unknown `kid` triggers at most one refetch per this interval (default 30 s).
    #[serde(default = "default_floor", with = "humantime_serde")]
    pub unknown_kid_refetch_interval: Duration,
    /// Per-fetch timeout (default 5 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest accepted document (default 1 MiB).
    #[serde(default = "default_max_doc")]
    pub max_document_bytes: usize,
    /// Allow `http://` key URLs to hosts other than loopback. Never do this in production.
    #[serde(default)]
    pub dangerous_allow_http: bool,
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_floor() -> Duration {
    Duration::from_secs(30)
}
fn default_ceiling() -> Duration {
    Duration::from_secs(3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_doc() -> usize {
    1 << 20
}

impl Default for RemoteKeysConfig {
    fn default() -> Self {
        RemoteKeysConfig {
            default_refresh: default_refresh(),
            refresh_floor: default_floor(),
            refresh_ceiling: default_ceiling(),
            unknown_kid_refetch_interval: default_floor(),
            timeout: default_timeout(),
            max_document_bytes: default_max_doc(),
            dangerous_allow_http: false,
        }
    }
}

/// A route requirement declared in the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The HTTP method (upper case).
    pub method: String,
    /// The route template, e.g. `/orders/{id}`.
    pub path: String,
    /// Public route (no credential needed; one that is sent is verified).
    #[serde(default)]
    pub public: bool,
    /// Required scopes as OR of AND-sets: `[["a", "b"], ["c"]]` means (a and b) or c.
    #[serde(default)]
    pub scopes: Option<Vec<Vec<String>>>,
    /// The trust zone of this route.
    #[serde(default)]
    pub zone: Option<String>,
}

impl RouteConfig {
    pub(crate) fn requirement(&self, at: &str) -> Result<Requirement, PolicyError> {
        match (self.public, &self.scopes) {
            (true, None) => Ok(Requirement::Public),
            (false, Some(sets)) => Ok(Requirement::Scopes(sets.clone())),
            (true, Some(_)) => Err(PolicyError::invalid(at, "a route cannot be both public and scoped")),
            (false, None) => Err(PolicyError::invalid(at, "a route needs `public = true` or `scopes`")),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::default(),
            realm: None,
            issuers: Vec::new(),
            tokens: TokenConfig::default(),
            remote_keys: RemoteKeysConfig::default(),
            routes: Vec::new(),
            paths: crate::canonical::PathPolicy::default(),
            max_body_bytes: default_max_body(),
            zones: Vec::new(),
            bindings: Vec::new(),
            contract: None,
            limits: None,
            observe: None,
            graphql: Vec::new(),
            span_level: crate::telemetry::SpanLevel::default(),
            request_id: crate::correlation::RequestIdConfig::default(),
            fleet: None,
            dpop: crate::dpop::DpopConfig::default(),
            resource: None,
            signals: None,
        }
    }
}

impl Policy {
    /// Starts building a policy in code.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder { policy: Policy::default() }
    }

    /// Parses a TOML policy.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        toml::from_str(text).map_err(|e| PolicyError::Parse {
            file: None,
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })
    }

    /// Parses a YAML policy.
    pub fn from_yaml_str(text: &str) -> Result<Policy, PolicyError> {
        serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Parse {
            file: None,
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })
    }

    /// Reads a policy file; `.yaml`/`.yml` is YAML, anything else TOML.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Io { file: path.display().to_string(), message: e.to_string() })?;
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let parsed = if yaml { Self::from_yaml_str(&text) } else { Self::from_toml_str(&text) };
        parsed.map_err(|e| e.in_file(path))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// Builds a [`Policy`] in code.
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.policy.mode = mode;
        self
    }
    /// Sets the challenge realm.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.policy.realm = Some(realm.into());
        self
    }
    /// Adds a trusted issuer.
    pub fn issuer(mut self, issuer: IssuerConfig) -> Self {
        self.policy.issuers.push(issuer);
        self
    }
    /// Sets token sources and caching.
    pub fn tokens(mut self, tokens: TokenConfig) -> Self {
        self.policy.tokens = tokens;
        self
    }
    /// Sets remote key fetching.
    pub fn remote_keys(mut self, remote: RemoteKeysConfig) -> Self {
        self.policy.remote_keys = remote;
        self
    }
    /// Sets path canonicalization.
    pub fn paths(mut self, paths: crate::canonical::PathPolicy) -> Self {
        self.policy.paths = paths;
        self
    }
    /// Adds a trust zone.
    pub fn zone(mut self, zone: crate::zones::ZoneConfig) -> Self {
        self.policy.zones.push(zone);
        self
    }
    /// Binds a path parameter to a claim (ownership).
    pub fn binding(mut self, param: impl Into<String>, claim: impl Into<String>) -> Self {
        self.policy
            .bindings
            .push(crate::zones::OwnershipBinding { param: param.into(), claim: claim.into() });
        self
    }
    /// Enforces an OpenAPI contract file.
    pub fn contract_file(mut self, file: impl Into<String>) -> Self {
        self.policy.contract = Some(ContractConfig { file: file.into(), ..ContractConfig::default() });
        self
    }
    /// Sets the contract settings.
    pub fn contract(mut self, contract: ContractConfig) -> Self {
        self.policy.contract = Some(contract);
        self
    }
    /// Sets rate limits and lockout.
    pub fn limits(mut self, limits: crate::limit::LimitConfig) -> Self {
        self.policy.limits = Some(limits);
        self
    }
    /// Sets the default body size limit.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.policy.max_body_bytes = limit;
        self
    }
    /// Declares a route requirement.
    pub fn route(mut self, method: &str, path: &str, requirement: Requirement) -> Self {
        let (public, scopes) = match requirement {
            Requirement::Public => (true, None),
            Requirement::Scopes(s) => (false, Some(s)),
        };
        self.policy.routes.push(RouteConfig {
            method: method.into(),
            path: path.into(),
            public,
            scopes,
            zone: None,
        });
        self
    }
    /// The level of the per-request span (default `Debug`).
    pub fn span_level(mut self, level: crate::telemetry::SpanLevel) -> Self {
        self.policy.span_level = level;
        self
    }
    /// Shares this service's security posture with its other replicas through `fleet`.
    pub fn fleet(mut self, fleet: crate::fleet::FleetConfig) -> Self {
        self.policy.fleet = Some(fleet);
        self
    }
    /// Finishes the policy (validation happens in `Guard::new`).
    pub fn build(self) -> Policy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_carry_line() {
        let err = Policy::from_toml_str("mode = \"enforce\"\n\n[[issuers]]\nissuer = 3\n").unwrap_err();
        match err {
            PolicyError::Parse { line, .. } => assert_eq!(line, Some(4)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(Policy::from_toml_str("mod = \"enforce\"").is_err());
    }

    #[test]
    fn observe_mode_is_an_unknown_key_naming_itself() {
        // The observer acts in the policy's top-level mode; a second `mode` under
        // `[observe]` would be silently overridden, so it is refused like any unknown key.
        let err = Policy::from_toml_str("mode = \"enforce\"\n[observe]\nmode = \"report\"\n").unwrap_err();
        let PolicyError::Parse { line, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*line, Some(3), "{err}");
        assert!(message.contains("unknown field `mode`"), "{err}");
        let yaml = Policy::from_yaml_str("observe:\n  mode: report\n").unwrap_err();
        assert!(yaml.to_string().contains("unknown field `mode`"), "{yaml}");
        let policy = Policy::from_toml_str("mode = \"report\"\n[observe]\n").unwrap();
        assert_eq!(policy.mode, Mode::Report);
    }

    #[test]
    fn yaml_parses_durations() {
        let p = Policy::from_yaml_str(
            "issuers:\n  - issuer: https://i\n    audiences: [a]\n    jwks_url: https://i/jwks\n    leeway: 30s\nremote_keys:\n  refresh_floor: 250ms\n",
        )
        .unwrap();
        assert_eq!(p.issuers[0].leeway, Some(Duration::from_secs(30)));
        assert_eq!(p.remote_keys.refresh_floor, Duration::from_millis(250));
        assert_eq!(p.tokens.cache_capacity, 10_000);
    }

    #[test]
    fn hmac_secret_is_redacted_in_debug() {
        let c = HmacSecretConfig {
            algorithm: "HS256".into(),
            secret: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
