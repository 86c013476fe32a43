//! Why a request was denied, and how that becomes an HTTP response.
//!
//! Every denial has one [`Reason`]; each reason has a fixed status, a stable problem `type`
//! URI (RFC 9457) and a fixed, safe `detail` text. Nothing from the token, no key ids and
//! no internal error text ever reaches the response.

use crate::Reply;
use serde::Serialize;

use crate::dpop::DpopError;
use crate::graphql::GraphqlReason;
pub use crate::problem::PROBLEM_TYPE_BASE;

/// Why a request was denied. Each variant maps to one status and one problem `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No credential was sent to a route that needs one (401, no `error` attribute).
    MissingCredentials,
    /// The `Authorization` header (or another credential source) is malformed, repeated,
    /// or more than one credential was sent (400 `invalid_request`).
    MalformedCredentials,
    /// The token is not a well-formed JWS compact JWT.
    MalformedToken,
    /// The token's algorithm is `none`, unsupported, or not the one pinned for its key.
    AlgorithmNotAllowed,
    /// The token's header lists `crit` extensions zt does not understand.
    UnsupportedCriticalHeader,
    /// The token's `iss` is not a configured issuer.
    UntrustedIssuer,
    /// No key of the issuer matches the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    InvalidSignature,
    /// The token has expired (`exp`).
    TokenExpired,
    /// The token is not yet valid (`nbf`) or was issued in the future (`iat`).
    TokenNotYetValid,
    /// The token's `aud` does not name this service.
    WrongAudience,
    /// A required claim is missing or has the wrong value (`exp`, `typ`, custom claims,
    /// maximum token age).
    InvalidClaims,
    /// The issuer's keys could not be obtained and no earlier key set is known (503).
    KeysUnavailable,
    /// The identity lacks the scopes the route requires (403 `insufficient_scope`).
    InsufficientScope,
    /// The path is not in canonical form (400).
    InvalidPath,
    /// No route matches the path (404).
    RouteNotFound,
    /// The path exists but not for this method (405 with `Allow`).
    MethodNotAllowed,
    /// A method-override header or `_method` parameter was sent (400): never honoured.
    MethodOverride,
    /// The request framing is invalid (e.g. an unparsable or repeated `Content-Length`).
    MalformedRequest,
    /// The body is larger than the route allows (413).
    PayloadTooLarge,
    /// The body's `Content-Type` is not one the operation declares (415).
    UnsupportedMediaType,
    /// Path, query, header or cookie parameters violate the contract (400).
    InvalidParameters,
    /// The body violates the contract (400).
    InvalidBody,
    /// The caller exceeded its quota (429 with `Retry-After`).
    RateLimited,
    /// The caller is locked out after repeated failed authentications (429).
    LockedOut,
    /// The rate-limit store is unavailable and the policy says fail closed (503).
    LimiterUnavailable,
    /// The route is in no trust zone and there is no `default` zone (403).
    ZoneDenied,
    /// The route's zone requires a verified client certificate (403).
    MtlsRequired,
    /// The client certificate's SPIFFE identity is not admitted by the zone (403).
    WorkloadNotAllowed,
    /// The client's network is not admitted by the zone (403).
    SourceNotAllowed,
    /// The token's issuer is not admitted by the zone (403).
    IssuerNotAllowed,
    /// The zone requires a certificate-bound token (RFC 8705) and this one is not (401).
    BoundTokenRequired,
    /// The token is bound to another certificate than the one presented (401, RFC 8705).
    CertificateBindingMismatch,
    /// The authentication is older than the zone allows (401, RFC 9470 step-up).
    AuthenticationTooOld,
    /// The token's `acr`/`amr` do not meet the zone's requirements (401, RFC 9470).
    AuthenticationContextNotMet,
    /// A path parameter bound to a claim names an object the caller does not own (403).
    OwnershipMismatch,
    /// The verified client certificate does not carry a usable identity (403).
    InvalidClientCertificate,
    /// The service's response did not match the contract and was blocked (502).
    ResponseContractViolation,
    /// The caller (subject or network) is blocked by a runtime control or a detection (403).
    Blocked,
    /// The token's `jti` was revoked (401).
    TokenRevoked,
    /// A GraphQL request was refused by the endpoint's schema, limits or field rules
    /// (status and problem `type` per [`GraphqlReason`]).
    Graphql(GraphqlReason),
    /// The DPoP proof that came with `Authorization: DPoP` was refused (401 with a
    /// `WWW-Authenticate: DPoP` challenge; see [`crate::dpop`]).
    Dpop(DpopError),
    /// A DPoP-bound token (`cnf.jkt`) was presented as a bearer token (401, RFC 9449 s.7.2):
    /// without its proof it is as good as stolen.
    DpopBoundTokenAsBearer,
    /// The zone requires a sender-constrained token (DPoP or certificate-bound) and this
    /// one is not (401).
    SenderConstrainedRequired,
    /// The introspection endpoint said the opaque token is not active (401
    /// `invalid_token`, RFC 7662; see [`crate::introspect`]).
    TokenInactive,
    /// The introspection endpoint gave no answer (down, slow, overloaded, or not RFC 7662)
    /// and the issuer's `fail_mode` is `closed` (503 with `Retry-After`).
    IntrospectionUnavailable,
}

impl Reason {
    /// The HTTP status code for this reason.
    pub fn status(self) -> u16 {
        match self {
            Reason::MalformedCredentials
            | Reason::InvalidPath
            | Reason::MethodOverride
            | Reason::MalformedRequest
            | Reason::InvalidParameters
            | Reason::InvalidBody => 400,
            Reason::InsufficientScope
            | Reason::ZoneDenied
            | Reason::MtlsRequired
            | Reason::WorkloadNotAllowed
            | Reason::SourceNotAllowed
            | Reason::IssuerNotAllowed
            | Reason::OwnershipMismatch
            | Reason::InvalidClientCertificate
            | Reason::Blocked => 403,
            Reason::RouteNotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::PayloadTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::RateLimited | Reason::LockedOut => 429,
            Reason::KeysUnavailable | Reason::LimiterUnavailable | Reason::IntrospectionUnavailable => 503,
            Reason::ResponseContractViolation => 502,
            Reason::Graphql(reason) => reason.status(),
            // Listed one by one: a new reason must choose its status, never inherit 401.
            Reason::MissingCredentials
            | Reason::MalformedToken
            | Reason::AlgorithmNotAllowed
            | Reason::UnsupportedCriticalHeader
            | Reason::UntrustedIssuer
            | Reason::UnknownKey
            | Reason::InvalidSignature
            | Reason::TokenExpired
            | Reason::TokenNotYetValid
            | Reason::WrongAudience
            | Reason::InvalidClaims
            | Reason::BoundTokenRequired
            | Reason::CertificateBindingMismatch
            | Reason::AuthenticationTooOld
            | Reason::AuthenticationContextNotMet
            | Reason::TokenRevoked
            | Reason::Dpop(_)
            | Reason::DpopBoundTokenAsBearer
            | Reason::SenderConstrainedRequired
            | Reason::TokenInactive => 401,
        }
    }

    /// A short stable identifier, used in the problem `type` and in span fields.
    pub fn slug(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "missing-credentials",
            Reason::MalformedCredentials => "malformed-credentials",
            Reason::MalformedToken => "malformed-token",
            Reason::AlgorithmNotAllowed => "algorithm-not-allowed",
            Reason::UnsupportedCriticalHeader => "unsupported-critical-header",
            Reason::UntrustedIssuer => "untrusted-issuer",
            Reason::UnknownKey => "unknown-key",
            Reason::InvalidSignature => "invalid-signature",
            Reason::TokenExpired => "token-expired",
            Reason::TokenNotYetValid => "token-not-yet-valid",
            Reason::WrongAudience => "wrong-audience",
            Reason::InvalidClaims => "invalid-claims",
            Reason::KeysUnavailable => "keys-unavailable",
            Reason::InsufficientScope => "insufficient-scope",
            Reason::InvalidPath => "invalid-path",
            Reason::RouteNotFound => "route-not-found",
            Reason::MethodNotAllowed => "method-not-allowed",
            Reason::MethodOverride => "method-override",
            Reason::MalformedRequest => "malformed-request",
            Reason::PayloadTooLarge => "payload-too-large",
            Reason::UnsupportedMediaType => "unsupported-media-type",
            Reason::InvalidParameters => "invalid-parameters",
            Reason::InvalidBody => "invalid-body",
            Reason::RateLimited => "rate-limited",
            Reason::LockedOut => "locked-out",
            Reason::LimiterUnavailable => "limiter-unavailable",
            Reason::ZoneDenied => "zone-denied",
            Reason::MtlsRequired => "mtls-required",
            Reason::WorkloadNotAllowed => "workload-not-allowed",
            Reason::SourceNotAllowed => "source-not-allowed",
            Reason::IssuerNotAllowed => "issuer-not-allowed",
            Reason::BoundTokenRequired => "bound-token-required",
            Reason::CertificateBindingMismatch => "certificate-binding-mismatch",
            Reason::AuthenticationTooOld => "authentication-too-old",
            Reason::AuthenticationContextNotMet => "authentication-context-not-met",
            Reason::OwnershipMismatch => "ownership-mismatch",
            Reason::InvalidClientCertificate => "invalid-client-certificate",
            Reason::ResponseContractViolation => "response-contract-violation",
            Reason::Blocked => "blocked",
            Reason::TokenRevoked => "token-revoked",
            Reason::Graphql(reason) => reason.slug(),
            Reason::Dpop(error) => error.slug(),
            Reason::DpopBoundTokenAsBearer => "dpop-bound-token-as-bearer",
            Reason::SenderConstrainedRequired => "sender-constrained-token-required",
            Reason::TokenInactive => "token-inactive",
            Reason::IntrospectionUnavailable => "introspection-unavailable",
        }
    }

    /// The problem `title`.
    pub fn title(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "Authentication required",
            Reason::MalformedCredentials => "Malformed credentials",
            Reason::InsufficientScope => "Insufficient scope",
            Reason::KeysUnavailable | Reason::IntrospectionUnavailable => "Token verification unavailable",
            Reason::InvalidPath => "Invalid path",
            Reason::RouteNotFound => "Not found",
            Reason::MethodNotAllowed => "Method not allowed",
            Reason::MethodOverride | Reason::MalformedRequest => "Bad request",
            Reason::PayloadTooLarge => "Payload too large",
            Reason::UnsupportedMediaType => "Unsupported media type",
            Reason::InvalidParameters => "Invalid parameters",
            Reason::InvalidBody => "Invalid body",
            Reason::RateLimited => "Too many requests",
            Reason::LockedOut => "Temporarily locked out",
            Reason::LimiterUnavailable => "Rate limiting unavailable",
            Reason::ZoneDenied
            | Reason::MtlsRequired
            | Reason::WorkloadNotAllowed
            | Reason::SourceNotAllowed
            | Reason::IssuerNotAllowed => "Not admitted to this zone",
            Reason::AuthenticationTooOld | Reason::AuthenticationContextNotMet => {
                "Stronger or more recent authentication required"
            }
            Reason::OwnershipMismatch => "Forbidden",
            Reason::InvalidClientCertificate => "Invalid client certificate",
            Reason::ResponseContractViolation => "Bad gateway",
            Reason::Blocked => "Blocked",
            Reason::Graphql(reason) => graphql_title(reason),
            Reason::MalformedToken
            | Reason::AlgorithmNotAllowed
            | Reason::UnsupportedCriticalHeader
            | Reason::UntrustedIssuer
            | Reason::UnknownKey
            | Reason::InvalidSignature
            | Reason::TokenExpired
            | Reason::TokenNotYetValid
            | Reason::WrongAudience
            | Reason::InvalidClaims
            | Reason::BoundTokenRequired
            | Reason::CertificateBindingMismatch
            | Reason::TokenRevoked
            | Reason::DpopBoundTokenAsBearer
            | Reason::SenderConstrainedRequired
            | Reason::TokenInactive => "Invalid access token",
            Reason::Dpop(_) => "Invalid DPoP proof",
        }
    }

    /// The safe, fixed `detail` text (also the RFC 6750 `error_description`).
    pub fn detail(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "This resource requires a bearer access token.",
            Reason::MalformedCredentials => {
                "The credentials are malformed, repeated, or sent in more than one way."
            }
            Reason::MalformedToken => "The access token is not a well-formed JWT.",
            Reason::AlgorithmNotAllowed => "The access token's signing algorithm is not accepted.",
            Reason::UnsupportedCriticalHeader => {
                "The access token requires header extensions that are not supported."
            }
            Reason::UntrustedIssuer => "The access token was not issued by a trusted issuer.",
            Reason::UnknownKey => "The access token was signed with an unknown key.",
            Reason::InvalidSignature => "The access token's signature is invalid.",
            Reason::TokenExpired => "The access token expired.",
            Reason::TokenNotYetValid => "The access token is not valid yet.",
            Reason::WrongAudience => "The access token is not intended for this service.",
            Reason::InvalidClaims => "The access token's claims do not meet this service's requirements.",
            Reason::KeysUnavailable => "Access tokens cannot be verified right now; retry later.",
            Reason::InsufficientScope => "The access token lacks the scope this resource requires.",
            Reason::InvalidPath => "The request path is not in canonical form.",
            Reason::RouteNotFound => "No such resource.",
            Reason::MethodNotAllowed => "The method is not allowed for this resource.",
            Reason::MethodOverride => "Method-override headers and parameters are not accepted.",
            Reason::MalformedRequest => "The request framing is invalid.",
            Reason::PayloadTooLarge => "The request body is larger than this resource accepts.",
            Reason::UnsupportedMediaType => "The request body's media type is not accepted here.",
            Reason::InvalidParameters => "The request parameters do not match the API contract.",
            Reason::InvalidBody => "The request body does not match the API contract.",
            Reason::RateLimited => "Too many requests; retry after the time given in Retry-After.",
            Reason::LockedOut => {
                "Too many failed authentication attempts; retry after the time given in Retry-After."
            }
            Reason::LimiterUnavailable => "Requests cannot be admitted right now; retry later.",
            Reason::ZoneDenied => "This resource is not in any trust zone that admits callers.",
            Reason::MtlsRequired => "This resource requires a verified client certificate.",
            Reason::WorkloadNotAllowed => "The client certificate's workload identity is not admitted here.",
            Reason::SourceNotAllowed => "Requests from this network are not admitted here.",
            Reason::IssuerNotAllowed => "Tokens from this issuer are not admitted here.",
            Reason::BoundTokenRequired => {
                "This resource requires an access token bound to the client certificate."
            }
            Reason::CertificateBindingMismatch => {
                "The access token is bound to a different client certificate."
            }
            Reason::AuthenticationTooOld => {
                "The authentication is too old for this resource; authenticate again."
            }
            Reason::AuthenticationContextNotMet => "This resource requires a stronger authentication method.",
            Reason::OwnershipMismatch => "The caller may not access this object.",
            Reason::InvalidClientCertificate => "The client certificate does not carry a usable identity.",
            Reason::ResponseContractViolation => {
                "The service's response did not match its contract and was withheld."
            }
            Reason::Blocked => "Requests from this caller are blocked for now.",
            Reason::TokenRevoked => "The access token has been revoked.",
            Reason::Graphql(reason) => reason.message(),
            Reason::Dpop(error) => dpop_detail(error),
            Reason::DpopBoundTokenAsBearer => {
                "The access token is DPoP-bound: present it with the DPoP scheme and a proof."
            }
            Reason::SenderConstrainedRequired => {
                "This resource requires a sender-constrained access token (DPoP or certificate-bound)."
            }
            Reason::TokenInactive => "The access token is not active.",
            Reason::IntrospectionUnavailable => {
                "The access token cannot be checked with its issuer right now; retry later."
            }
        }
    }

    /// The RFC 6750 `error` code carried in `WWW-Authenticate`, if any.
    pub fn bearer_error(self) -> Option<&'static str> {
        // Every reason listed: a new one must say whether it challenges, and with what.
        match self {
            Reason::MissingCredentials => None,
            Reason::MalformedCredentials => Some("invalid_request"),
            Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::AuthenticationTooOld | Reason::AuthenticationContextNotMet => {
                Some("insufficient_user_authentication")
            }
            Reason::MalformedToken
            | Reason::AlgorithmNotAllowed
            | Reason::UnsupportedCriticalHeader
            | Reason::UntrustedIssuer
            | Reason::UnknownKey
            | Reason::InvalidSignature
            | Reason::TokenExpired
            | Reason::TokenNotYetValid
            | Reason::WrongAudience
            | Reason::InvalidClaims
            | Reason::BoundTokenRequired
            | Reason::CertificateBindingMismatch
            | Reason::TokenRevoked
            | Reason::DpopBoundTokenAsBearer
            | Reason::SenderConstrainedRequired
            | Reason::TokenInactive => Some("invalid_token"),
            Reason::Graphql(reason) => graphql_bearer_error(reason),
            // Said in the `DPoP` challenge, not the Bearer one.
            Reason::Dpop(_) => None,
            // Not authentication failures (no 401): no `error` attribute.
            Reason::KeysUnavailable
            | Reason::IntrospectionUnavailable
            | Reason::InvalidPath
            | Reason::RouteNotFound
            | Reason::MethodNotAllowed
            | Reason::MethodOverride
            | Reason::MalformedRequest
            | Reason::PayloadTooLarge
            | Reason::UnsupportedMediaType
            | Reason::InvalidParameters
            | Reason::InvalidBody
            | Reason::RateLimited
            | Reason::LockedOut
            | Reason::LimiterUnavailable
            | Reason::ZoneDenied
            | Reason::MtlsRequired
            | Reason::WorkloadNotAllowed
            | Reason::SourceNotAllowed
            | Reason::IssuerNotAllowed
            | Reason::OwnershipMismatch
            | Reason::InvalidClientCertificate
            | Reason::ResponseContractViolation
            | Reason::Blocked => None,
        }
    }

    /// True for reasons that carry a `WWW-Authenticate: Bearer` challenge (RFC 6750).
    pub fn challenges(self) -> bool {
        matches!(
            self,
            Reason::MalformedCredentials
                | Reason::InsufficientScope
                | Reason::Graphql(GraphqlReason::ForbiddenField)
        ) || self.status() == 401
    }

    /// True for reasons that mean the credential was presented but failed verification.
    pub fn is_authentication_failure(self) -> bool {
        self.status() == 401 && self != Reason::MissingCredentials
    }

    /// The problem `type` URI, e.g. `urn:zt:problem:token-expired`.
    pub fn problem_type(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.slug())
    }
}

/// The fixed `detail` of a refused DPoP proof (the error's own text: it names the check,
/// never the proof).
fn dpop_detail(error: DpopError) -> &'static str {
    match error {
        DpopError::Missing => "Exactly one DPoP proof header is required with the DPoP scheme.",
        DpopError::Malformed => "The DPoP proof is not a well-formed JWT.",
        DpopError::WrongType => "The DPoP proof's typ must be dpop+jwt.",
        DpopError::AlgorithmNotAllowed => "The DPoP proof's algorithm is not accepted.",
        DpopError::BadKey => "The DPoP proof's key is missing, private or unusable.",
        DpopError::InvalidSignature => "The DPoP proof's signature is invalid.",
        DpopError::MissingClaim => "The DPoP proof lacks a required claim.",
        DpopError::WrongMethod => "The DPoP proof is for another method.",
        DpopError::WrongUri => "The DPoP proof is for another URI.",
        DpopError::Stale => "The DPoP proof is not fresh.",
        DpopError::WrongAccessToken => "The DPoP proof is not bound to this access token.",
        DpopError::ThumbprintMismatch => "The DPoP proof's key is not the one the access token is bound to.",
        DpopError::Replayed => "The DPoP proof was already used.",
        DpopError::NonceRequired => "A DPoP nonce is required; use the one in DPoP-Nonce.",
        DpopError::StaleNonce => "The DPoP nonce is stale; use the one in DPoP-Nonce.",
    }
}

/// The problem `title` of a GraphQL refusal (every reason listed, so a new one chooses).
fn graphql_title(reason: GraphqlReason) -> &'static str {
    match reason {
        GraphqlReason::Unauthenticated => "Authentication required",
        GraphqlReason::ForbiddenField => "Insufficient scope",
        GraphqlReason::BadRequest
        | GraphqlReason::RequestTooLarge
        | GraphqlReason::DocumentTooLarge
        | GraphqlReason::TokenLimit
        | GraphqlReason::ParseFailed
        | GraphqlReason::ValidationFailed
        | GraphqlReason::InvalidVariables
        | GraphqlReason::DepthLimit
        | GraphqlReason::AliasLimit
        | GraphqlReason::RootFieldLimit
        | GraphqlReason::DirectiveLimit
        | GraphqlReason::CostLimit
        | GraphqlReason::BatchLimit
        | GraphqlReason::IntrospectionDisabled
        | GraphqlReason::PersistedQueryNotAllowed
        | GraphqlReason::PersistedQueryNotFound
        | GraphqlReason::MutationOverGet
        | GraphqlReason::GetNotAllowed => "Invalid GraphQL request",
    }
}

/// The RFC 6750 `error` of a GraphQL refusal: only a forbidden field is a scope problem;
/// an unauthenticated one is a missing credential (no `error`), the rest are no
/// authentication matter at all.
fn graphql_bearer_error(reason: GraphqlReason) -> Option<&'static str> {
    match reason {
        GraphqlReason::ForbiddenField => Some("insufficient_scope"),
        GraphqlReason::Unauthenticated
        | GraphqlReason::BadRequest
        | GraphqlReason::RequestTooLarge
        | GraphqlReason::DocumentTooLarge
        | GraphqlReason::TokenLimit
        | GraphqlReason::ParseFailed
        | GraphqlReason::ValidationFailed
        | GraphqlReason::InvalidVariables
        | GraphqlReason::DepthLimit
        | GraphqlReason::AliasLimit
        | GraphqlReason::RootFieldLimit
        | GraphqlReason::DirectiveLimit
        | GraphqlReason::CostLimit
        | GraphqlReason::BatchLimit
        | GraphqlReason::IntrospectionDisabled
        | GraphqlReason::PersistedQueryNotAllowed
        | GraphqlReason::PersistedQueryNotFound
        | GraphqlReason::MutationOverGet
        | GraphqlReason::GetNotAllowed => None,
    }
}

/// A denial: the reason plus what the response needs to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Why.
    pub reason: Reason,
    /// For [`Reason::InsufficientScope`]: the scopes of the closest alternative.
    pub required_scopes: Vec<String>,
    /// For [`Reason::MethodNotAllowed`]: the methods the route allows.
    pub allowed_methods: Vec<String>,
    /// For contract violations: where and which rule (never the offending value).
    pub violations: Vec<Violation>,
    /// True when more violations were found than are listed.
    pub violations_truncated: bool,
    /// Extra response headers (e.g. `Retry-After`, `RateLimit`, `RateLimit-Policy`).
    pub headers: Vec<(&'static str, String)>,
    /// A complete response to send instead of the standard problem (blocks, challenges).
    pub rendered: Option<Box<Reply>>,
}

/// One contract violation: a JSON pointer into the request and the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where, e.g. `/query/limit` or `/body/items/0/quantity`.
    pub pointer: String,
    /// The rule, e.g. `maximum`, `required`, `unevaluatedProperties`.
    pub keyword: String,
}

impl Denial {
    /// A denial with nothing beyond its reason.
    pub fn new(reason: Reason) -> Self {
        Denial {
            reason,
            required_scopes: Vec::new(),
            allowed_methods: Vec::new(),
            violations: Vec::new(),
            violations_truncated: false,
            headers: Vec::new(),
            rendered: None,
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_scope: Option<String>,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    violations: &'a [Violation],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    violations_truncated: bool,
}

/// Quotes a value for an RFC 7235 auth-param; our values never contain `"` or `\`
/// (scope names are validated), but escape anyway so this can never break the header.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl Denial {
    /// Renders the denial as status, headers and an `application/problem+json` body.
    pub fn render(&self, realm: &str, request_id: &str) -> Reply {
        if let Some(rendered) = &self.rendered {
            return (**rendered).clone();
        }
        let reason = self.reason;
        let scope = (!self.required_scopes.is_empty()).then(|| self.required_scopes.join(" "));
        let mut headers = vec![
            ("content-type", "application/problem+json".to_string()),
            ("cache-control", "no-store".to_string()),
            ("x-request-id", request_id.to_string()),
        ];
        if reason.challenges() {
            let mut challenge = format!("Bearer realm={}", quoted(realm));
            if let Some(error) = reason.bearer_error() {
                challenge.push_str(&format!(
                    ", error={}, error_description={}",
                    quoted(error),
                    quoted(reason.detail())
                ));
            }
            if let Some(scope) = &scope {
                challenge.push_str(&format!(", scope={}", quoted(scope)));
            }
            headers.push(("www-authenticate", challenge));
        }
        if reason == Reason::MethodNotAllowed {
            headers.push(("allow", self.allowed_methods.join(", ")));
        }
        if matches!(reason, Reason::KeysUnavailable | Reason::IntrospectionUnavailable) {
            headers.push(("retry-after", "5".to_string()));
        }
        headers.extend(self.headers.iter().cloned());
        let problem = Problem {
            kind: reason.problem_type(),
            title: reason.title(),
            status: reason.status(),
            detail: reason.detail(),
            request_id,
            required_scope: scope,
            violations: &self.violations,
            violations_truncated: self.violations_truncated,
        };
        let body =
            serde_json::to_string(&problem).unwrap_or_else(|_| String::from("{\"title\":\"Forbidden\"}"));
        Reply { status: reason.status(), headers, body }
    }
}

/// Shapes the body of zt's denials: the hook behind [`GuardBuilder::denial_renderer`]
/// (both adapters answer through it, so one renderer serves axum and actix-web alike).
///
/// zt keeps the status and every header that carries meaning (`WWW-Authenticate`, `Allow`,
/// `Retry-After`, `RateLimit`, `x-request-id`, `cache-control: no-store`); the renderer
/// chooses only the body and its media type. Returning `None` keeps the default RFC 9457
/// `application/problem+json` document. It is called for every denial zt renders as a
/// problem document: not for GraphQL endpoints (their clients read GraphQL `errors`), nor
/// for answers that are complete already (an observer block or challenge page).
///
/// Build the body from the [`Denial`]'s typed parts ([`Reason::slug`], [`Reason::title`],
/// [`Reason::detail`], [`Denial::violations`]): they are safe to show, never the token or
/// the offending value.
///
/// ```
/// use std::sync::Arc;
/// use zt_core::{denial::{DenialRenderer, ErrorBody}, Denial, Guard, Policy};
///
/// // Your API's error envelope instead of problem+json.
/// let renderer = |denial: &Denial, request_id: &str| {
///     Some(ErrorBody::json(&serde_json::json!({
///         "error": { "code": denial.reason.slug(), "message": denial.reason.detail(), "trace": request_id }
///     })))
/// };
/// let guard = Guard::builder(Policy::default()).denial_renderer(Arc::new(renderer)).build().unwrap();
/// # drop(guard);
/// ```
///
/// [`GuardBuilder::denial_renderer`]: crate::GuardBuilder::denial_renderer
pub trait DenialRenderer: Send + Sync {
    /// The body for `denial` (its request id is `request_id`, as in `x-request-id`);
    /// `None` keeps the problem document.
    fn render(&self, denial: &Denial, request_id: &str) -> Option<ErrorBody>;
}

impl<F> DenialRenderer for F
where
    F: Fn(&Denial, &str) -> Option<ErrorBody> + Send + Sync,
{
    fn render(&self, denial: &Denial, request_id: &str) -> Option<ErrorBody> {
        self(denial, request_id)
    }
}

/// A denial body chosen by a [`DenialRenderer`]: its media type and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    content_type: String,
    body: String,
}

impl ErrorBody {
    /// A body of media type `content_type` (e.g. `text/plain; charset=utf-8`). A media type
    /// that is no valid header value (control characters, non-ASCII) is replaced by
    /// `application/octet-stream` rather than breaking the response.
    ///
    /// ```
    /// use zt_core::denial::ErrorBody;
    /// let body = ErrorBody::new("text/plain; charset=utf-8", "denied");
    /// assert_eq!(body.content_type(), "text/plain; charset=utf-8");
    /// assert_eq!(ErrorBody::new("text/plain\r\nx: y", "").content_type(), "application/octet-stream");
    /// ```
    pub fn new(content_type: impl Into<String>, body: impl Into<String>) -> ErrorBody {
        let content_type = content_type.into();
        let valid =
            !content_type.is_empty() && content_type.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        ErrorBody {
            content_type: if valid { content_type } else { String::from("application/octet-stream") },
            body: body.into(),
        }
    }

    /// A JSON body (`application/json`).
    ///
    /// ```
    /// use zt_core::denial::ErrorBody;
    /// let body = ErrorBody::json(&serde_json::json!({"code": "token-expired"}));
    /// assert_eq!(body.body(), r#"{"code":"token-expired"}"#);
    /// ```
    pub fn json(value: &serde_json::Value) -> ErrorBody {
        ErrorBody { content_type: String::from("application/json"), body: value.to_string() }
    }

    /// The media type sent as `content-type`.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body text.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Applies `renderer` to the default `reply` of `denial` (see [`DenialRenderer`] for what it
/// may change and when it is asked).
pub(crate) fn apply_renderer(
    renderer: &dyn DenialRenderer,
    denial: &Denial,
    request_id: &str,
    reply: &mut Reply,
) {
    if denial.rendered.is_some() || matches!(denial.reason, Reason::Graphql(_)) {
        return;
    }
    let Some(custom) = renderer.render(denial, request_id) else { return };
    for (name, value) in &mut reply.headers {
        if *name == "content-type" {
            value.clone_from(&custom.content_type);
        }
    }
    reply.body = custom.body;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_credentials_has_no_error_attribute() {
        let r = Denial::new(Reason::MissingCredentials).render("orders", "rid");
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer realm=\"orders\""));
    }

    #[test]
    fn insufficient_scope_names_scope() {
        let mut d = Denial::new(Reason::InsufficientScope);
        d.required_scopes = vec!["orders:read".into(), "x".into()];
        let r = d.render("orders", "rid-1");
        assert_eq!(r.status, 403);
        let challenge = header(&r, "www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"insufficient_scope\""));
        assert!(challenge.contains("scope=\"orders:read x\""));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        assert_eq!(body["type"], "urn:zt:problem:insufficient-scope");
        assert_eq!(body["request_id"], "rid-1");
        assert_eq!(header(&r, "content-type"), Some("application/problem+json"));
    }

    #[test]
    fn every_reason_has_distinct_slug() {
        use std::collections::HashSet;
        let all = [
            Reason::MissingCredentials,
            Reason::MalformedCredentials,
            Reason::MalformedToken,
            Reason::AlgorithmNotAllowed,
            Reason::UnsupportedCriticalHeader,
            Reason::UntrustedIssuer,
            Reason::UnknownKey,
            Reason::InvalidSignature,
            Reason::TokenExpired,
            Reason::TokenNotYetValid,
            Reason::WrongAudience,
            Reason::InvalidClaims,
            Reason::KeysUnavailable,
            Reason::InsufficientScope,
            Reason::InvalidPath,
            Reason::RouteNotFound,
            Reason::MethodNotAllowed,
            Reason::MethodOverride,
            Reason::MalformedRequest,
            Reason::PayloadTooLarge,
            Reason::UnsupportedMediaType,
            Reason::InvalidParameters,
            Reason::InvalidBody,
            Reason::RateLimited,
            Reason::LockedOut,
            Reason::LimiterUnavailable,
            Reason::ZoneDenied,
            Reason::MtlsRequired,
            Reason::WorkloadNotAllowed,
            Reason::SourceNotAllowed,
            Reason::IssuerNotAllowed,
            Reason::BoundTokenRequired,
            Reason::CertificateBindingMismatch,
            Reason::AuthenticationTooOld,
            Reason::AuthenticationContextNotMet,
            Reason::OwnershipMismatch,
            Reason::InvalidClientCertificate,
            Reason::ResponseContractViolation,
            Reason::Blocked,
            Reason::TokenRevoked,
            Reason::TokenInactive,
            Reason::IntrospectionUnavailable,
        ];
        let slugs: HashSet<_> = all.iter().map(|r| r.slug()).collect();
        assert_eq!(slugs.len(), all.len());
        for r in all {
            assert!(!r.detail().is_empty());
        }
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let mut d = Denial::new(Reason::MethodNotAllowed);
        d.allowed_methods = vec!["GET".into(), "POST".into()];
        let r = d.render("x", "r");
        assert_eq!(header(&r, "allow"), Some("GET, POST"));
        assert_eq!(header(&r, "www-authenticate"), None);
    }
}
