//! Token exchange in the spirit of RFC 8693: the request, its form encoding, its errors and
//! the JSON bodies of the answer.
//!
//! The subject of an exchange is the caller's own bearer token, already verified by a
//! [`Guard`](crate::Guard) in front of the token endpoint. Hence a `subject_token` (or
//! `actor_token`) in the form body is refused: it would be a second credential in one request,
//! which zt refuses everywhere as ambiguous.

use std::time::Duration;

use serde_json::{Value, json};

/// The grant type of RFC 8693 s.2.1.
pub const GRANT_TYPE_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type identifier of an access token (RFC 8693 s.3).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The token type identifier of a JWT (RFC 8693 s.3).
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Most scopes one exchange may ask for.
pub(super) const MAX_REQUESTED_SCOPES: usize = 64;

/// What a caller asks for when it exchanges its token: a token for exactly one downstream
/// audience, with a subset of its own scopes.
///
/// `scopes` must not be empty: an exchange names the scopes it needs (least privilege)
/// instead of inheriting everything the subject holds. An empty list is refused with
/// [`ExchangeError::ScopeRequired`].
///
/// ```
/// use zt_core::issuer::ExchangeRequest;
///
/// let request = ExchangeRequest::from_form(
///     b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
///       &audience=service-b&scope=orders%3Aread",
/// ).unwrap();
/// assert_eq!(request.audience, "service-b");
/// assert_eq!(request.scopes, ["orders:read"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The one audience the new token is for; must be on the issuer's allow-list.
    pub audience: String,
    /// The scopes wanted; each must be held by the subject.
    pub scopes: Vec<String>,
    /// A shorter lifetime than the issuer's default, if wanted. Capped by the issuer's
    /// maximum and, by default, by the subject token's remaining lifetime.
    pub lifetime: Option<Duration>,
}

/// Why an exchange was refused. Each maps to an RFC 6749 s.5.2 / RFC 8693 s.2.2.2 error
/// code ([`ExchangeError::code`]) and a safe description that never contains token contents,
/// key ids or internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The body is not `application/x-www-form-urlencoded`.
    #[error("the request body must be application/x-www-form-urlencoded")]
    UnsupportedContentType,
    /// The body is not valid form data (not UTF-8, or too large).
    #[error("the request body is not a valid form")]
    MalformedBody,
    /// A parameter was sent more than once (RFC 6749 s.3.2).
    #[error("the parameter {0} was sent more than once")]
    DuplicateParameter(&'static str),
    /// `grant_type` is missing.
    #[error("grant_type is required")]
    MissingGrantType,
    /// `grant_type` is not token exchange.
    #[error("only the token-exchange grant type is supported")]
    UnsupportedGrantType,
    /// No `audience` was given.
    #[error("audience is required")]
    MissingAudience,
    /// More than one `audience`: a token is for exactly one.
    #[error("exactly one audience may be requested")]
    MultipleAudiences,
    /// A `resource` parameter: this issuer mints for named audiences only.
    #[error("the resource parameter is not supported; name an audience")]
    ResourceNotSupported,
    /// The audience is not on the issuer's allow-list.
    #[error("the requested audience is not allowed")]
    AudienceNotAllowed,
    /// `requested_token_type` names a type this issuer does not issue.
    #[error("only access tokens can be requested")]
    UnsupportedTokenType,
    /// `subject_token` or `actor_token` in the body: the subject is the bearer token.
    #[error("the subject is the bearer token; do not send subject_token or actor_token")]
    CredentialInBody,
    /// No scope was requested.
    #[error("name the scopes the new token needs")]
    ScopeRequired,
    /// A scope is not a valid scope token (RFC 6749 s.3.3), or too many were asked for.
    #[error("the scope parameter is malformed")]
    MalformedScope,
    /// A requested scope is not held by the subject: an exchange never widens.
    #[error("a requested scope is not held by the subject token")]
    ScopeNotHeld,
    /// The subject token has no `sub`.
    #[error("the subject token has no subject")]
    NoSubject,
    /// The subject token has (all but) expired.
    #[error("the subject token has expired")]
    SubjectExpired,
    /// A requested lifetime of zero.
    #[error("the requested lifetime must be at least one second")]
    InvalidLifetime,
    /// The subject token is bound by a confirmation method the issuer cannot carry over;
    /// issuing an unbound token would weaken it.
    #[error("the subject token's confirmation method is not supported")]
    UnsupportedConfirmation,
    /// The subject token's delegation chain (`act`) is too long or malformed.
    #[error("the delegation chain is too long")]
    DelegationTooDeep,
    /// The token could not be signed. Logged; the caller only learns it was a server error.
    #[error("the token could not be issued")]
    Internal,
}

impl ExchangeError {
    /// The OAuth error code: `invalid_request`, `invalid_scope`, `invalid_target`,
    /// `unsupported_grant_type` or `server_error`.
    pub fn code(&self) -> &'static str {
        use ExchangeError::*;
        match self {
            UnsupportedGrantType => "unsupported_grant_type",
            MultipleAudiences | ResourceNotSupported | AudienceNotAllowed => "invalid_target",
            ScopeRequired | MalformedScope | ScopeNotHeld => "invalid_scope",
            Internal => "server_error",
            UnsupportedContentType
            | MalformedBody
            | DuplicateParameter(_)
            | MissingGrantType
            | MissingAudience
            | UnsupportedTokenType
            | CredentialInBody
            | NoSubject
            | SubjectExpired
            | InvalidLifetime
            | UnsupportedConfirmation
            | DelegationTooDeep => "invalid_request",
        }
    }

    /// The HTTP status: 400, or 500 for [`ExchangeError::Internal`].
    pub fn status(&self) -> u16 {
        if matches!(self, ExchangeError::Internal) { 500 } else { 400 }
    }

    /// The RFC 6749 s.5.2 error body: `{"error": ..., "error_description": ...}`.
    pub fn to_json(&self) -> String {
        json!({"error": self.code(), "error_description": self.to_string()}).to_string()
    }
}

/// True for a scope token as RFC 6749 s.3.3 defines it: `%x21 / %x23-5B / %x5D-7E`, i.e.
/// printable ASCII except space, `"` and `\`.
pub(super) fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// True when a `Content-Type` value is `application/x-www-form-urlencoded` (any parameters).
pub fn is_form_content_type(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else { return false };
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

impl ExchangeRequest {
    /// A request for `audience` with `scopes`, at the issuer's default lifetime.
    pub fn new<I, S>(audience: impl Into<String>, scopes: I) -> ExchangeRequest
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExchangeRequest {
            audience: audience.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            lifetime: None,
        }
    }

    /// Parses an RFC 8693 token-exchange form body.
    ///
    /// Required: `grant_type` (the token-exchange URN), exactly one `audience`, and `scope`.
    /// Optional: `requested_token_type` (access token or JWT). Refused: `resource`,
    /// `subject_token`, `actor_token` (see the module docs), and any known parameter sent
    /// twice. Unknown parameters are ignored (RFC 6749 s.3.2).
    pub fn from_form(body: &[u8]) -> Result<ExchangeRequest, ExchangeError> {
        // Percent-decoding below is lossy for bad UTF-8; refuse such bodies up front
        // instead of matching mangled values.
        if std::str::from_utf8(body).is_err() {
            return Err(ExchangeError::MalformedBody);
        }
        let mut grant_type = None;
        let mut audience = None;
        let mut scope = None;
        let mut requested_token_type = None;
        let mut subject_token_type = None;
        for (name, value) in form_urlencoded::parse(body) {
            let slot = match &*name {
                "grant_type" => (&mut grant_type, "grant_type"),
                "audience" => {
                    if audience.replace(value.into_owned()).is_some() {
                        return Err(ExchangeError::MultipleAudiences);
                    }
                    continue;
                }
                "scope" => (&mut scope, "scope"),
                "requested_token_type" => (&mut requested_token_type, "requested_token_type"),
                "subject_token_type" => (&mut subject_token_type, "subject_token_type"),
                "resource" => return Err(ExchangeError::ResourceNotSupported),
                "subject_token" | "actor_token" | "actor_token_type" => {
                    return Err(ExchangeError::CredentialInBody);
                }
                _ => continue,
            };
            let (slot, param) = slot;
            if slot.replace(value.into_owned()).is_some() {
                return Err(ExchangeError::DuplicateParameter(param));
            }
        }
        match grant_type.as_deref() {
            None | Some("") => return Err(ExchangeError::MissingGrantType),
            Some(GRANT_TYPE_TOKEN_EXCHANGE) => {}
            Some(_) => return Err(ExchangeError::UnsupportedGrantType),
        }
        if let Some(kind) = requested_token_type.as_deref()
            && kind != TOKEN_TYPE_ACCESS_TOKEN
            && kind != TOKEN_TYPE_JWT
        {
            return Err(ExchangeError::UnsupportedTokenType);
        }
        // A client may say what its bearer token is; it must be an access token or a JWT,
        // which is what the Guard verified.
        if let Some(kind) = subject_token_type.as_deref()
            && kind != TOKEN_TYPE_ACCESS_TOKEN
            && kind != TOKEN_TYPE_JWT
        {
            return Err(ExchangeError::UnsupportedTokenType);
        }
        let audience = audience.filter(|a| !a.is_empty()).ok_or(ExchangeError::MissingAudience)?;
        let scopes: Vec<String> = scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if scopes.is_empty() {
            return Err(ExchangeError::ScopeRequired);
        }
        if scopes.len() > MAX_REQUESTED_SCOPES || !scopes.iter().all(|s| is_scope_token(s)) {
            return Err(ExchangeError::MalformedScope);
        }
        Ok(ExchangeRequest { audience, scopes, lifetime: None })
    }

    /// Checks the `Content-Type` (which must be a form), then parses the body like
    /// [`ExchangeRequest::from_form`].
    pub fn from_http(content_type: Option<&[u8]>, body: &[u8]) -> Result<ExchangeRequest, ExchangeError> {
        if !content_type.is_some_and(is_form_content_type) {
            return Err(ExchangeError::UnsupportedContentType);
        }
        Self::from_form(body)
    }
}

/// The RFC 8693 s.2.2.1 success body.
pub(super) fn success_json(access_token: &str, expires_in: u64, scope: &str) -> String {
    let mut body = json!({
        "access_token": access_token,
        "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if !scope.is_empty() {
        body["scope"] = Value::String(scope.to_string());
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";

    fn parse(rest: &str) -> Result<ExchangeRequest, ExchangeError> {
        ExchangeRequest::from_form(format!("{GT}&{rest}").as_bytes())
    }

    #[test]
    fn parses_a_minimal_request() {
        let r = parse("audience=svc&scope=a+b%3Ac&unknown=1").unwrap();
        assert_eq!(r, ExchangeRequest::new("svc", ["a", "b:c"]));
        let r =
            parse(&format!("audience=svc&scope=a&requested_token_type={TOKEN_TYPE_ACCESS_TOKEN}")).unwrap();
        assert_eq!(r.scopes, ["a"]);
    }

    #[test]
    fn typed_errors() {
        assert_eq!(ExchangeRequest::from_form(b"audience=svc&scope=a"), Err(ExchangeError::MissingGrantType));
        assert_eq!(
            ExchangeRequest::from_form(b"grant_type=client_credentials&audience=svc&scope=a"),
            Err(ExchangeError::UnsupportedGrantType)
        );
        assert_eq!(parse("scope=a"), Err(ExchangeError::MissingAudience));
        assert_eq!(parse("audience=a&audience=b&scope=a"), Err(ExchangeError::MultipleAudiences));
        assert_eq!(parse("audience=a&scope=a&scope=b"), Err(ExchangeError::DuplicateParameter("scope")));
        assert_eq!(parse("audience=a"), Err(ExchangeError::ScopeRequired));
        assert_eq!(parse("audience=a&scope=+"), Err(ExchangeError::ScopeRequired));
        assert_eq!(parse("audience=a&scope=%22x%22"), Err(ExchangeError::MalformedScope));
        assert_eq!(
            parse("audience=a&scope=a&resource=https%3A%2F%2Fx"),
            Err(ExchangeError::ResourceNotSupported)
        );
        assert_eq!(parse("audience=a&scope=a&subject_token=x"), Err(ExchangeError::CredentialInBody));
        assert_eq!(
            parse("audience=a&scope=a&requested_token_type=urn:x"),
            Err(ExchangeError::UnsupportedTokenType)
        );
        assert_eq!(ExchangeRequest::from_form(b"\xff=1"), Err(ExchangeError::MalformedBody));
        let too_many: Vec<String> = (0..=MAX_REQUESTED_SCOPES).map(|i| format!("s{i}")).collect();
        assert_eq!(
            parse(&format!("audience=a&scope={}", too_many.join("+"))),
            Err(ExchangeError::MalformedScope)
        );
    }

    #[test]
    fn content_type_must_be_a_form() {
        let body = format!("{GT}&audience=a&scope=b");
        assert!(
            ExchangeRequest::from_http(Some(b"application/x-www-form-urlencoded"), body.as_bytes()).is_ok()
        );
        assert!(
            ExchangeRequest::from_http(
                Some(b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
                body.as_bytes()
            )
            .is_ok()
        );
        assert_eq!(
            ExchangeRequest::from_http(Some(b"application/json"), body.as_bytes()),
            Err(ExchangeError::UnsupportedContentType)
        );
        assert_eq!(
            ExchangeRequest::from_http(None, body.as_bytes()),
            Err(ExchangeError::UnsupportedContentType)
        );
    }

    #[test]
    fn error_codes_and_bodies() {
        assert_eq!(ExchangeError::ScopeNotHeld.code(), "invalid_scope");
        assert_eq!(ExchangeError::AudienceNotAllowed.code(), "invalid_target");
        assert_eq!(ExchangeError::MissingAudience.code(), "invalid_request");
        assert_eq!(ExchangeError::Internal.status(), 500);
        let body: Value = serde_json::from_str(&ExchangeError::ScopeNotHeld.to_json()).unwrap();
        assert_eq!(body["error"], "invalid_scope");
        assert!(body["error_description"].is_string());
    }

    #[test]
    fn scope_tokens() {
        assert!(is_scope_token("orders:read"));
        assert!(is_scope_token("!#[]~"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
    }
}
