//! The Guard: one decision engine for every framework.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Span;

use crate::denial::{Denial, DenialResponse, Reason};
use crate::error::PolicyError;
use crate::identity::Identity;
use crate::keys::{KeyFetcher, ReqwestFetcher};
use crate::policy::{Mode, Policy};
use crate::request::RequestView;
use crate::routes::{CompiledRoutes, RouteTable};
use crate::scopes::Requirement;
use crate::telemetry::{self, RequestId};
use crate::token::{self, Credential, Step, Verifier};

/// The zero-trust decision engine. Cheap to clone; one `Guard` serves any number of routers
/// in any framework.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard, RouteTable};
///
/// let policy = Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example")
///         .audience("orders-api")
///         .jwks(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
///             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///             "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#))
///     .build();
/// let mut routes = RouteTable::new();
/// routes.add("GET", "/orders", scopes::all(["orders:read"])).unwrap();
/// let guard = Guard::new(policy).unwrap().with_routes(&routes).unwrap();
/// assert_eq!(guard.mode(), zt_core::Mode::Enforce);
/// ```
#[derive(Clone)]
pub struct Guard {
    shared: Arc<Shared>,
    routes: Arc<CompiledRoutes>,
}

struct Shared {
    verifier: Verifier,
    policy: Policy,
    realm: String,
    policy_routes: RouteTable,
}

/// Options for [`Guard::builder`].
pub struct GuardBuilder {
    policy: Policy,
    fetcher: Option<Arc<dyn KeyFetcher>>,
}

impl GuardBuilder {
    /// Fetches remote key documents with this fetcher (your own HTTP client, CA, proxy).
    pub fn key_fetcher(mut self, fetcher: Arc<dyn KeyFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Validates and compiles the policy.
    pub fn build(self) -> Result<Guard, PolicyError> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(PolicyError::NoCryptoProvider);
        }
        let policy = self.policy;
        let fetcher = match self.fetcher {
            Some(f) => f,
            None => Arc::new(
                ReqwestFetcher::new(policy.remote_keys.timeout, policy.remote_keys.max_document_bytes)
                    .map_err(|e| PolicyError::invalid("remote_keys", e.0))?,
            ),
        };
        let verifier = Verifier::new(&policy.issuers, &policy.tokens, &policy.remote_keys, &fetcher)?;
        let mut policy_routes = RouteTable::new();
        for (i, route) in policy.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            let requirement = route.requirement(&at)?;
            policy_routes.add(&route.method, &route.path, requirement).map_err(|e| match e {
                PolicyError::Invalid { message, .. } => PolicyError::invalid(&at, message),
                other => other,
            })?;
        }
        let routes = policy_routes.compile()?;
        let realm = policy.realm.clone().unwrap_or_else(|| "zt".to_string());
        if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            return Err(PolicyError::invalid(
                "realm",
                "the realm must not contain quotes, backslashes or control characters",
            ));
        }
        Ok(Guard {
            shared: Arc::new(Shared { verifier, policy, realm, policy_routes }),
            routes: Arc::new(routes),
        })
    }
}

/// What to do with a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Forward it, with the verified identity (none on a public route called anonymously,
    /// or in report-only mode when verification failed).
    Allow(Option<Identity>),
    /// Answer with this denial.
    Deny(Denial),
}

/// The decision on one request, with its span and request id.
#[derive(Debug)]
pub struct Verdict {
    /// Allow or deny.
    pub outcome: Outcome,
    /// The request's `zt.request` span: instrument the handler with it.
    pub span: Span,
    /// The request id.
    pub request_id: RequestId,
    /// The matched route template, if any.
    pub route: Option<Arc<str>>,
}

/// The result of [`Guard::check`]: decided at once (the common case, no allocation for the
/// future), or waiting for a key fetch.
pub enum Check {
    /// Decided.
    Ready(Verdict),
    /// Waiting for the issuer's keys (first use, or an unknown `kid`).
    Pending(PendingCheck),
}

/// A decision waiting for a key fetch.
pub struct PendingCheck(Pin<Box<dyn Future<Output = Verdict> + Send>>);

impl Future for PendingCheck {
    type Output = Verdict;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        self.0.as_mut().poll(cx)
    }
}

impl Check {
    /// Waits for the verdict.
    pub async fn verdict(self) -> Verdict {
        match self {
            Check::Ready(v) => v,
            Check::Pending(p) => p.await,
        }
    }
}

struct Pending {
    guard: Guard,
    span: Span,
    request_id: RequestId,
    route: Arc<str>,
    requirement: Arc<Requirement>,
}

impl Guard {
    /// Validates and compiles `policy` with the default key fetcher.
    pub fn new(policy: Policy) -> Result<Guard, PolicyError> {
        Self::builder(policy).build()
    }

    /// Starts a guard with options (e.g. a custom key fetcher).
    pub fn builder(policy: Policy) -> GuardBuilder {
        GuardBuilder { policy, fetcher: None }
    }

    /// Loads a TOML or YAML policy file and builds the guard.
    pub fn from_policy_file(path: impl AsRef<std::path::Path>) -> Result<Guard, PolicyError> {
        Self::new(Policy::from_file(path)?)
    }

    /// A guard that also enforces the routes registered in code (merged with the policy's;
    /// a conflicting requirement for the same route is an error).
    pub fn with_routes(&self, routes: &RouteTable) -> Result<Guard, PolicyError> {
        let mut merged = self.shared.policy_routes.clone();
        merged.merge(routes)?;
        Ok(Guard { shared: self.shared.clone(), routes: Arc::new(merged.compile()?) })
    }

    /// Enforce or report-only.
    pub fn mode(&self) -> Mode {
        self.shared.policy.mode
    }

    /// The challenge realm.
    pub fn realm(&self) -> &str {
        &self.shared.realm
    }

    /// How many verified tokens are cached right now.
    pub fn cached_tokens(&self) -> usize {
        self.shared.verifier.cached_tokens()
    }

    /// Fetches every remote key set now (optional: otherwise the first request does).
    /// Returns the issuers whose keys could not be fetched.
    pub async fn warm_up(&self) -> Vec<String> {
        let mut failed = Vec::new();
        for issuer in &self.shared.verifier.issuers {
            if let Some(refresh) = issuer.keys.refresh()
                && refresh.await.is_err()
            {
                failed.push(issuer.issuer.clone());
            }
        }
        failed
    }

    /// Renders a denial as status, headers and problem+json body.
    pub fn render(&self, denial: &Denial, request_id: &RequestId) -> DenialResponse {
        denial.render(&self.shared.realm, request_id.as_str())
    }

    /// Decides on a request. Returns at once unless an issuer's keys must be fetched.
    pub fn check(&self, view: &RequestView<'_>) -> Check {
        let request_id = RequestId::generate();
        let span = telemetry::request_span(view, &request_id, self.shared.policy.mode.as_str());
        let route = match self.routes.find(view.method, view.path) {
            Ok(route) => route,
            Err(denial) => return Check::Ready(self.finish(span, request_id, None, Decided::deny(denial))),
        };
        if !span.is_disabled() {
            span.record("http.route", &*route.template);
            span.record("zt.required_scopes", route.requirement.describe());
        }
        let token = match token::extract(view, &self.shared.policy.tokens) {
            Credential::Malformed => {
                let d = Decided::deny(Denial::new(Reason::MalformedCredentials));
                return Check::Ready(self.finish(span, request_id, Some(route.template), d));
            }
            Credential::None => {
                let decided = if route.requirement.is_public() {
                    Decided::allow(None)
                } else {
                    Decided::deny(Denial::new(Reason::MissingCredentials))
                };
                return Check::Ready(self.finish(span, request_id, Some(route.template), decided));
            }
            Credential::Bearer(token) => token,
        };
        match self.shared.verifier.verify(token, true) {
            Step::Done(result) => {
                let decided = self.authorize(result, &route.requirement);
                Check::Ready(self.finish(span, request_id, Some(route.template), decided))
            }
            Step::Fetch(issuer) => {
                let pending = Pending {
                    guard: self.clone(),
                    span,
                    request_id,
                    route: route.template,
                    requirement: route.requirement,
                };
                let token = token.to_string();
                Check::Pending(PendingCheck(Box::pin(async move {
                    let keys = &pending.guard.shared.verifier.issuers[issuer].keys;
                    if let Some(refresh) = keys.refresh() {
                        // A failed fetch keeps the last good set; verification below then
                        // decides with what there is (and fails closed without any set).
                        let _ = refresh.await;
                    }
                    let result = match pending.guard.shared.verifier.verify(&token, false) {
                        Step::Done(result) => result,
                        Step::Fetch(_) => Err(Reason::UnknownKey),
                    };
                    let decided = pending.guard.authorize(result, &pending.requirement);
                    pending.guard.finish(pending.span, pending.request_id, Some(pending.route), decided)
                })))
            }
        }
    }

    /// Scope check on a verified identity. The identity is kept beside a denial so that
    /// logs name the caller and report-only mode can still forward it.
    fn authorize(&self, verified: Result<Identity, Reason>, requirement: &Requirement) -> Decided {
        let identity = match verified {
            Ok(identity) => identity,
            Err(reason) => return Decided { identity: None, denial: Some(Denial::new(reason)) },
        };
        let denial = requirement.missing_scopes(|s| identity.has_scope(s)).map(|missing| {
            let mut denial = Denial::new(Reason::InsufficientScope);
            denial.required_scopes = missing.to_vec();
            denial
        });
        Decided { identity: Some(identity), denial }
    }

    fn finish(
        &self,
        span: Span,
        request_id: RequestId,
        route: Option<Arc<str>>,
        decided: Decided,
    ) -> Verdict {
        let report = self.shared.policy.mode == Mode::Report;
        let Decided { identity, denial } = decided;
        if !span.is_disabled() {
            record_identity(&span, identity.as_ref());
        }
        let outcome = match denial {
            None => {
                span.record("zt.decision", "allow");
                Outcome::Allow(identity)
            }
            Some(denial) => {
                let decision = if report { "would_deny" } else { "deny" };
                let reason = denial.reason.slug();
                span.record("zt.decision", decision);
                span.record("zt.reason", reason);
                let _entered = span.enter();
                tracing::event!(
                    target: "zt::decision",
                    tracing::Level::WARN,
                    zt.request_id = request_id.as_str(),
                    zt.decision = decision,
                    zt.reason = reason,
                    zt.mode = self.shared.policy.mode.as_str(),
                    http.route = route.as_deref().unwrap_or(""),
                    http.response.status_code = denial.reason.status(),
                    enduser.id = identity.as_ref().and_then(Identity::subject).unwrap_or(""),
                    zt.client_id = identity.as_ref().and_then(Identity::client_id).unwrap_or(""),
                    "request denied"
                );
                if report { Outcome::Allow(identity) } else { Outcome::Deny(denial) }
            }
        };
        Verdict { outcome, span, request_id, route }
    }
}

struct Decided {
    identity: Option<Identity>,
    denial: Option<Denial>,
}

impl Decided {
    fn deny(denial: Denial) -> Self {
        Decided { identity: None, denial: Some(denial) }
    }
    fn allow(identity: Option<Identity>) -> Self {
        Decided { identity, denial: None }
    }
}

fn record_identity(span: &Span, identity: Option<&Identity>) {
    match identity {
        Some(id) => {
            span.record("zt.auth_method", "jwt");
            if let Some(sub) = id.subject() {
                span.record("enduser.id", sub);
            }
            if let Some(client) = id.client_id() {
                span.record("zt.client_id", client);
            }
        }
        None => {
            span.record("zt.auth_method", "none");
        }
    }
}
