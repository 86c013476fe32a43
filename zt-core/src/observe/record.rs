// The module's documentation is on `RequestRecord`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::request::HeaderLookup;

use super::geo::CountryCode;

/// The Guard's decision on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded.
    Allow,
    /// Denied and answered with a problem response.
    Deny,
    /// Would have been denied; forwarded because the Guard runs in report-only mode.
    WouldDeny,
}

impl Decision {
    /// `allow`, `deny` or `would_deny` (the `zt.decision` field values).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would_deny",
        }
    }

    /// True for `deny` and `would_deny`.
    pub fn is_denial(self) -> bool {
        self != Decision::Allow
    }
}

/// Facts about the request headers that bot signals use. Only presence and a count: no
/// header values are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    /// An `accept` header was sent.
    pub accept: bool,
    /// An `accept-language` header was sent.
    pub accept_language: bool,
    /// An `accept-encoding` header was sent.
    pub accept_encoding: bool,
    /// How many header lines the request carried.
    pub count: u16,
}

impl HeaderFacts {
    /// Reads the facts from an adapter's header lookup; `count` is the number of header
    /// lines (adapters know it from their map; [`HeaderLookup`] cannot enumerate).
    pub fn from_lookup(headers: &dyn HeaderLookup, count: usize) -> HeaderFacts {
        HeaderFacts {
            accept: headers.nth("accept", 0).is_some(),
            accept_language: headers.nth("accept-language", 0).is_some(),
            accept_encoding: headers.nth("accept-encoding", 0).is_some(),
            count: u16::try_from(count).unwrap_or(u16::MAX),
        }
    }

    /// Reads the facts. The count is the adapter's number of header lines when the lookup
    /// knows it ([`HeaderLookup::line_count`]), else how many of the usual request headers
    /// were sent.
    pub(crate) fn of(headers: &dyn HeaderLookup) -> HeaderFacts {
        let facts = HeaderFacts::from_lookup(headers, 0);
        let count = headers.line_count().unwrap_or_else(|| {
            let others = ["user-agent", "authorization", "cookie", "content-type"];
            [facts.accept, facts.accept_language, facts.accept_encoding]
                .into_iter()
                .filter(|&sent| sent)
                .count()
                + others.into_iter().filter(|name| headers.nth(name, 0).is_some()).count()
        });
        HeaderFacts { count: u16::try_from(count).unwrap_or(u16::MAX), ..facts }
    }

    /// What a mainstream browser sends: accept, language, encoding, and a handful more.
    pub fn browser_like() -> HeaderFacts {
        HeaderFacts { accept: true, accept_language: true, accept_encoding: true, count: 8 }
    }
}

/// One request as seen after its response: the input of [`Observer::observe`](super::Observer::observe).
///
/// Everything is borrowed. Fill what is known; unknown fields stay `None`/empty (see
/// [`RequestRecord::new`] for a record with only the required fields).
///
/// What the Guard knows about a request once its response is known.
///
/// A [`RequestRecord`] borrows everything: building one costs no allocation, and observers
/// copy only what they keep (hashes and counters, never raw values beyond the documented
/// log fields).
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// When the request arrived.
    pub timestamp: SystemTime,
    /// The request id (`zt.request_id`, also in problem bodies and `x-request-id`).
    pub request_id: &'a str,
    /// The method as sent.
    pub method: &'a str,
    /// The matched route template (`/orders/{id}`); `None` when no declared route matched
    /// (a shadow endpoint, or a 404/405).
    pub route: Option<&'a str>,
    /// For a GraphQL endpoint: the accepted operation (`/graphql query Orders`). The
    /// inventory and the behaviour baselines key on it instead of the route, so each
    /// operation is an endpoint of its own; metrics keep the route (bounded labels).
    pub operation: Option<&'a str>,
    /// The path as received, without the query string.
    pub path: &'a str,
    /// The status sent.
    pub status: u16,
    /// The Guard's decision.
    pub decision: Decision,
    /// The denial reason's slug (`Reason::slug`, e.g. `token-expired`), or the observer's
    /// own (`blocked`, `challenged`, `token-revoked`: see [`super::Hint`]); `None` when
    /// allowed.
    pub reason: Option<&'a str>,
    /// The verified subject.
    pub subject: Option<&'a str>,
    /// The verified OAuth client id.
    pub client_id: Option<&'a str>,
    /// For a failed authentication: the subject or user name it claimed (unverified). Only
    /// its hash is kept, to count how many accounts one network tries (credential
    /// stuffing); never logged.
    pub attempted_subject: Option<&'a str>,
    /// How the caller authenticated (`jwt`, `mtls`, ...); `None` when anonymous.
    pub auth_method: Option<&'a str>,
    /// The client address, already resolved through trusted proxies.
    pub client_ip: Option<IpAddr>,
    /// The client's country, when known ([`super::GeoResolver`]).
    pub country: Option<CountryCode>,
    /// The `user-agent` header, when sent once and valid UTF-8.
    pub user_agent: Option<&'a str>,
    /// Header facts for bot signals.
    pub headers: HeaderFacts,
    /// Request body size in bytes (0 without a body).
    pub request_bytes: u64,
    /// Response body size in bytes, when known.
    pub response_bytes: u64,
    /// A prefix of the response body, when [`Observer::wants_response_sample`](super::Observer::wants_response_sample)
    /// asked for one: scanned for sensitive data classes, never stored or logged.
    pub response_sample: Option<&'a [u8]>,
    /// The values of path parameters that name objects (`("id", "42")`; typically every
    /// path parameter of the matched route): distinct values per verified caller per window
    /// are the enumeration (BOLA) signal; requests without a verified caller
    /// ([`subject`](Self::subject) or [`auth_method`](Self::auth_method)) are not counted.
    /// Only hashes are kept.
    pub object_ids: &'a [(&'a str, &'a str)],
    /// The W3C trace id, when the request is traced.
    pub trace_id: Option<&'a str>,
    /// The trust zone the request was admitted to, when zones are configured.
    pub zone: Option<&'a str>,
    /// The OpenAPI operation id, when a contract is loaded.
    pub operation_id: Option<&'a str>,
    /// For an accepted GraphQL document: the largest share of a limit it used (depth,
    /// aliases, root fields, cost, batch size; `0.9` for depth 9 of 10), when known. Many
    /// documents near a limit in one window are the GraphQL abuse signal.
    pub graphql_pressure: Option<f32>,
}

impl<'a> RequestRecord<'a> {
    /// A record with the required fields; everything else empty.
    pub fn new(
        timestamp: SystemTime,
        request_id: &'a str,
        method: &'a str,
        path: &'a str,
        status: u16,
        decision: Decision,
    ) -> RequestRecord<'a> {
        RequestRecord {
            timestamp,
            request_id,
            method,
            route: None,
            operation: None,
            path,
            status,
            decision,
            reason: None,
            subject: None,
            client_id: None,
            attempted_subject: None,
            auth_method: None,
            client_ip: None,
            country: None,
            user_agent: None,
            headers: HeaderFacts::default(),
            request_bytes: 0,
            response_bytes: 0,
            response_sample: None,
            object_ids: &[],
            trace_id: None,
            zone: None,
            operation_id: None,
            graphql_pressure: None,
        }
    }

    /// True when the request presented a credential that failed verification (the Guard's
    /// 401 reasons other than a missing credential), or when the application itself
    /// answered 401 (e.g. a failed login).
    pub fn is_auth_failure(&self) -> bool {
        match self.reason {
            Some(slug) => AUTH_FAILURE_SLUGS.contains(&slug),
            None => self.decision == Decision::Allow && self.status == 401,
        }
    }

    /// True when the request names a verified caller (a subject or an authentication
    /// method): it passed authentication, whatever was decided after.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.subject.is_some() || self.auth_method.is_some()
    }

    /// True when the application refused the object the request named: forwarded and
    /// answered 404 (missing) or 403 (foreign). Only these ids count as enumeration.
    pub(crate) fn refused_object(&self) -> bool {
        self.decision == Decision::Allow && matches!(self.status, 403 | 404)
    }

    /// True when a limiter refused the request (`rate-limited`, `locked-out`).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self.reason, Some("rate-limited" | "locked-out"))
    }

    /// True when the response is an error (4xx/5xx) from the caller's point of view.
    pub(crate) fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// Slugs of the Guard's reasons that mean "a credential was presented and failed"
/// (`Reason::is_authentication_failure`). Kept as text so records from any source (and
/// reasons added later) classify the same way; a test checks it against `Reason`.
pub(crate) const AUTH_FAILURE_SLUGS: &[&str] = &[
    "malformed-token",
    "algorithm-not-allowed",
    "unsupported-critical-header",
    "untrusted-issuer",
    "unknown-key",
    "invalid-signature",
    "token-expired",
    "token-not-yet-valid",
    "wrong-audience",
    "invalid-claims",
    "token-revoked",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;
    use crate::request::HeaderList;

    #[test]
    fn auth_failure_slugs_match_reason() {
        let reasons = [
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
            Reason::RateLimited,
            Reason::LockedOut,
        ];
        for r in reasons {
            assert_eq!(AUTH_FAILURE_SLUGS.contains(&r.slug()), r.is_authentication_failure(), "{}", r.slug());
        }
    }

    #[test]
    fn classifies_records() {
        let t = SystemTime::UNIX_EPOCH;
        let mut r = RequestRecord::new(t, "r", "GET", "/x", 401, Decision::Deny);
        r.reason = Some("missing-credentials");
        assert!(!r.is_auth_failure());
        r.reason = Some("invalid-signature");
        assert!(r.is_auth_failure());
        let app_401 = RequestRecord::new(t, "r", "POST", "/login", 401, Decision::Allow);
        assert!(app_401.is_auth_failure());
        r.reason = Some("locked-out");
        assert!(r.is_rate_limited());
    }

    #[test]
    fn header_facts_from_lookup() {
        let h = HeaderList::default().with("Accept", "*/*").with("accept-encoding", "gzip");
        let f = HeaderFacts::from_lookup(&h, 2);
        assert!(f.accept && f.accept_encoding && !f.accept_language);
        assert_eq!(f.count, 2);
    }
}
