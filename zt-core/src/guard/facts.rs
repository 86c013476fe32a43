//! What the stages know about one request, each fact computed once.

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use tracing::Span;

use crate::cert::CertificateIdentity;
use crate::denial::{Denial, Reason};
use crate::identity::Identity;
use crate::limit::RateDecision;
use crate::telemetry::RequestId;
use crate::token::CachedToken;

/// The facts of one request. Built by the route stage and filled in by each later stage;
/// a request that waits carries them (owned) to its resumption, so nothing is computed twice.
pub(crate) struct Facts<'a> {
    pub(crate) request_id: RequestId,
    pub(crate) span: Span,
    /// The canonical path (borrowed from the request unless normalization rewrote it).
    pub(crate) path: Cow<'a, str>,
    /// The matched route (index into the compiled table), once the route stage ran.
    pub(crate) route: Option<usize>,
    /// Raw (percent-encoded) path parameters; only templated routes have any, so only they
    /// allocate.
    pub(crate) params: Vec<(String, String)>,
    /// The connection's parsed client certificate (mutual TLS).
    pub(crate) certificate: Option<Arc<CertificateIdentity>>,
    /// The client's address (the peer, or behind trusted proxies the first untrusted hop).
    pub(crate) client_ip: Option<IpAddr>,
    /// The address quotas and lockouts are keyed by (IPv6 grouped by prefix).
    pub(crate) client_key: Option<IpAddr>,
    /// The credential as presented.
    pub(crate) credential: Presented<'a>,
    /// The DPoP proof, when the credential came with the DPoP scheme.
    pub(crate) proof: Proof<'a>,
    /// The verified-token cache entry of a presented bearer token.
    pub(crate) cached: Option<Arc<CachedToken>>,
    /// The verified caller, once authenticated.
    pub(crate) identity: Option<Identity>,
    /// The tightest rate-limit decision taken so far (for the response headers).
    pub(crate) rate: Option<RateDecision>,
    /// The result of the last wait, for the stage that waited.
    pub(crate) waited: Option<Waited>,
    /// Whether this request's body framing was valid, absent or present.
    pub(crate) framing: Framing,
    /// The GraphQL operation key (`/graphql query Name`), once accepted.
    pub(crate) graphql_operation: Option<String>,
    /// How near the accepted GraphQL document came to its limits (the largest share of
    /// one, `0..=1`): detection's near-limit signal.
    pub(crate) graphql_pressure: Option<f32>,
    /// The contract operation, when a contract applies to the route.
    pub(crate) operation: Option<usize>,
    /// The operation's path parameters when the contract's own lookup found it under
    /// another template than the route's (else they are [`Facts::params`]).
    pub(crate) operation_params: Option<Vec<(String, String)>>,
    /// Set by the contract stage when a body must be read and checked: its limit.
    pub(crate) body_limit: Option<usize>,
    /// The GraphQL schema whose request is in the body (a POST to a GraphQL endpoint).
    pub(crate) graphql_body: Option<Arc<super::graphql::EndpointSchema>>,
    /// The response check, when response validation applies to the operation.
    pub(crate) response_check: Option<crate::response::ResponseCheck>,
}

/// The DPoP proof of a request that used the DPoP scheme.
pub(crate) enum Proof<'a> {
    /// The Bearer scheme (or no credential): no proof expected.
    NotUsed,
    /// The DPoP scheme without exactly one `DPoP` header.
    Missing,
    /// The `DPoP` header's value.
    Header(Cow<'a, str>),
}

/// A presented credential.
pub(crate) enum Presented<'a> {
    None,
    /// A bearer token (borrowed from the request until a wait needs it owned).
    Bearer(Cow<'a, str>),
    /// Malformed, repeated, or sent in more than one way.
    Malformed,
}

impl<'a> Facts<'a> {
    /// The facts of a request before any stage ran.
    pub(crate) fn new(request_id: RequestId, span: Span, path: &'a str) -> Facts<'a> {
        Facts {
            request_id,
            span,
            path: Cow::Borrowed(path),
            route: None,
            params: Vec::new(),
            certificate: None,
            client_ip: None,
            client_key: None,
            credential: Presented::None,
            proof: Proof::NotUsed,
            cached: None,
            identity: None,
            rate: None,
            waited: None,
            framing: Framing::NoBody,
            graphql_operation: None,
            graphql_pressure: None,
            operation: None,
            operation_params: None,
            body_limit: None,
            graphql_body: None,
            response_check: None,
        }
    }

    /// The operation's path parameters (see [`Facts::operation_params`]).
    pub(crate) fn operation_params(&self) -> &[(String, String)] {
        self.operation_params.as_deref().unwrap_or(&self.params)
    }

    /// The facts without borrows from the request: what a waiting request carries.
    pub(crate) fn into_owned(self) -> Facts<'static> {
        Facts {
            request_id: self.request_id,
            span: self.span,
            path: Cow::Owned(self.path.into_owned()),
            route: self.route,
            params: self.params,
            certificate: self.certificate,
            client_ip: self.client_ip,
            client_key: self.client_key,
            credential: match self.credential {
                Presented::None => Presented::None,
                Presented::Bearer(token) => Presented::Bearer(Cow::Owned(token.into_owned())),
                Presented::Malformed => Presented::Malformed,
            },
            proof: match self.proof {
                Proof::Header(proof) => Proof::Header(Cow::Owned(proof.into_owned())),
                Proof::Missing => Proof::Missing,
                Proof::NotUsed => Proof::NotUsed,
            },
            cached: self.cached,
            identity: self.identity,
            rate: self.rate,
            waited: self.waited,
            framing: self.framing,
            graphql_operation: self.graphql_operation,
            graphql_pressure: self.graphql_pressure,
            operation: self.operation,
            operation_params: self.operation_params,
            body_limit: self.body_limit,
            graphql_body: self.graphql_body,
            response_check: self.response_check,
        }
    }

    /// Keeps the tighter of the decision so far and `decision`.
    pub(crate) fn add_rate(&mut self, decision: Option<RateDecision>) {
        self.rate = match (self.rate.take(), decision) {
            (Some(a), Some(b)) => Some(a.tighter(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Framing facts: from the headers, else from what the adapter knows of the body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Framing {
    NoBody,
    /// Framing headers announce a body (`declared`: its `Content-Length`).
    Body {
        declared: Option<u64>,
    },
    /// No framing headers, and the adapter cannot tell whether a body follows (HTTP/2
    /// without `END_STREAM` on the headers): read it, and judge an empty one as no body.
    Unknown,
    Invalid,
}

/// What a stage decided.
pub(crate) enum Flow {
    /// On to the next stage.
    Continue,
    /// Refuse the request.
    Deny(Denial),
    /// Wait for I/O, then run the same stage again with [`Facts::waited`] set.
    Wait(Wait),
}

impl Flow {
    pub(crate) fn deny(reason: Reason) -> Flow {
        Flow::Deny(Denial::new(reason))
    }
}

/// A stage's wait: resolves to what the stage needs on its second run.
pub(crate) type Wait = Pin<Box<dyn Future<Output = Waited> + Send>>;

/// What a wait produced.
pub(crate) enum Waited {
    /// The shared store's per-address decision.
    AddressQuota(RateDecision),
    /// The shared store's per-caller decision.
    CallerQuota(RateDecision),
    /// An issuer's keys were fetched (or the fetch failed: the last good set stays).
    Keys,
    /// The shared store's replay record of a DPoP proof: `Some(true)` when it was new,
    /// `Some(false)` when another replica had seen it, `None` when the store did not answer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    DpopReplay(Option<bool>),
    /// An opaque token's introspection (RFC 7662), judged: the caller, or why not.
    Introspected(Result<Identity, Reason>),
}
