//! What the adapters' routers share: the bookkeeping of registering routes with their
//! requirements ([`RouteRegistry`]) and the endpoints zt answers itself ([`BuiltinEndpoint`]).
//!
//! An adapter's router only pairs framework handlers with these calls; every rule (which
//! methods a route covers, what a nest prefix may be, how a nested router's requirements
//! move, which routes stay enforced in report-only mode, how an error surfaces) is here,
//! once, for both frameworks.

use std::sync::{Arc, OnceLock};

use crate::Reply;
use crate::controls_api::{self, ControlRequest, ControlsApi};
use crate::denial::Reason;
use crate::error::PolicyError;
use crate::guard::{Admission, BodyError, Guard};
use crate::issuer::{ExchangeError, TokenIssuer};
use crate::routes::{ANY_METHODS, RouteTable, join};
use crate::scopes::Requirement;

/// The routes an adapter's router registered, with their requirements, and the first
/// error any registration made (reported when the router is finished, so a builder chain
/// never has to handle an error midway).
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard, RouteRegistry};
///
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap();
/// let mut orders = RouteRegistry::new(guard.clone());
/// orders.add(&["GET", "POST"], "/", &scopes::all(["orders"]));
/// let mut app = RouteRegistry::new(guard);
/// app.add(&["GET"], "/health", &scopes::public());
/// assert!(app.nest("/orders", orders));
/// assert!(!app.add_subtree("static", &scopes::authenticated())); // not absolute
/// assert!(app.finish().is_err());
/// ```
pub struct RouteRegistry {
    guard: Guard,
    table: RouteTable,
    errors: Vec<PolicyError>,
    /// The metadata endpoints registered here or in nested registries, filled in by
    /// [`finish`](Self::finish) once every route (and so every scope) is known.
    metadata: Vec<Arc<OnceLock<String>>>,
}

impl RouteRegistry {
    /// An empty registry for routes `guard` will enforce.
    pub fn new(guard: Guard) -> Self {
        RouteRegistry { guard, table: RouteTable::new(), errors: Vec::new(), metadata: Vec::new() }
    }

    /// The guard the routes are for.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    fn keep(&mut self, result: Result<(), PolicyError>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                self.errors.push(e);
                false
            }
        }
    }

    /// Registers `path` for each of `methods`, reachable only by callers meeting
    /// `requirement`.
    pub fn add(&mut self, methods: &[&str], path: &str, requirement: &Requirement) {
        for method in methods {
            let added = self.table.add(method, path, requirement.clone());
            self.keep(added);
        }
    }

    /// Registers `prefix` and everything below it for the methods of [`ANY_METHODS`] (a
    /// nested service, e.g. static files). False, with the error kept, when the prefix is
    /// not one a service can be nested at: the adapter then mounts nothing.
    pub fn add_subtree(&mut self, prefix: &str, requirement: &Requirement) -> bool {
        if !self.keep(nest_prefix("nest_service", prefix)) {
            return false;
        }
        ANY_METHODS.iter().all(|method| {
            let added = self.table.add_subtree(method, prefix, requirement.clone());
            self.keep(added)
        })
    }

    /// Moves a nested router's routes (and its errors) under `prefix`. False when the
    /// prefix is invalid: the adapter then mounts nothing.
    pub fn nest(&mut self, prefix: &str, nested: RouteRegistry) -> bool {
        if !self.keep(nest_prefix("nest", prefix)) {
            return false;
        }
        self.errors.extend(nested.errors);
        self.metadata.extend(nested.metadata);
        let merged = nested.table.prefixed(prefix).and_then(|prefixed| self.table.merge(&prefixed));
        self.keep(merged)
    }

    /// Takes another router's routes (and its errors) as they are.
    pub fn merge(&mut self, other: RouteRegistry) {
        self.errors.extend(other.errors);
        self.metadata.extend(other.metadata);
        let merged = self.table.merge(&other.table);
        self.keep(merged);
    }

    /// Registers the runtime controls API ([`controls_api`]) under `prefix`, enforced even
    /// in report-only mode, and returns each endpoint with its path for the adapter to
    /// route (with [`BuiltinEndpoint::method`]). Nothing when `requirement` is public or
    /// monitoring is off (the error is kept).
    pub fn controls(&mut self, prefix: &str, requirement: Requirement) -> Vec<(String, BuiltinEndpoint)> {
        let api = match ControlsApi::new(self.guard.clone(), requirement.clone()) {
            Ok(api) => api,
            Err(e) => {
                self.errors.push(e);
                return Vec::new();
            }
        };
        let mut endpoints = Vec::new();
        for endpoint in controls_api::Endpoint::ALL {
            let path = endpoint.path(prefix);
            let added = self.table.add_always_enforced(endpoint.method(), &path, requirement.clone());
            if self.keep(added) {
                endpoints.push((path, BuiltinEndpoint(Builtin::Controls(api.clone(), endpoint))));
            }
        }
        endpoints
    }

    /// Registers the RFC 9728 protected-resource metadata ([`crate::resource`]) as a public
    /// `GET` route at [`ResourceConfig::metadata_path`](crate::resource::ResourceConfig::metadata_path)
    /// and returns it with its path for the adapter to route. Nothing when the policy has
    /// no `[resource]` (an error is kept: the call asks for something the policy lacks).
    pub fn resource_metadata(&mut self) -> Option<(String, BuiltinEndpoint)> {
        let Some(resource) = self.guard.shared.policy.resource.as_ref() else {
            self.errors.push(PolicyError::invalid(
                "resource",
                "resource_metadata() needs a [resource] section naming the API's identifier",
            ));
            return None;
        };
        let path = resource.metadata_path();
        // zt's own endpoint, like the controls: not part of the service's contract.
        let added = self.table.add_always_enforced("GET", &path, crate::scopes::public());
        if !self.keep(added) {
            return None;
        }
        let document = Arc::new(OnceLock::new());
        self.metadata.push(document.clone());
        Some((path, BuiltinEndpoint(Builtin::ResourceMetadata(document))))
    }

    /// Registers the Shared Signals push endpoint ([`crate::signals`]) as a public `POST`
    /// route at the policy's `[signals] push_path` (the SET's signature authenticates the
    /// transmitter), starts polling when `[signals.poll]` is set and a Tokio runtime is
    /// current, and returns the endpoint with its path. Nothing without `[signals]` (the
    /// error is kept).
    pub fn signals(&mut self) -> Option<(String, BuiltinEndpoint)> {
        let receiver = match crate::signals::SignalReceiver::new(&self.guard) {
            Ok(receiver) => receiver,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        let path = receiver.config().push_path.clone();
        // The SET's signature (and the transmitter's own `Authorization`, when configured)
        // authenticates the push: the Guard reads no credential there.
        let added = self.table.add_self_authenticating("POST", &path);
        if !self.keep(added) {
            return None;
        }
        if receiver.config().poll.is_some() && !receiver.spawn_poller() {
            tracing::warn!(target: "zt::signals", "[signals.poll] is set but no Tokio runtime is current: call SignalReceiver::spawn_poller yourself");
        }
        Some((path, BuiltinEndpoint(Builtin::Signals(receiver))))
    }

    /// The guard with every registered route compiled in, or the first error any
    /// registration made.
    pub fn finish(self) -> Result<Guard, PolicyError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let guard = self.guard.with_routes(&self.table)?;
        if let Some(document) = guard.resource_metadata() {
            for slot in &self.metadata {
                let _ = slot.set(document.clone());
            }
        }
        Ok(guard)
    }
}

/// A prefix a router can nest at: absolute, not the root, no wildcard.
/// Checked here so that finishing the router reports it instead of the framework panicking.
fn nest_prefix(what: &str, prefix: &str) -> Result<(), PolicyError> {
    let at = format!("{what} {prefix}");
    if !prefix.starts_with('/') {
        return Err(PolicyError::invalid(at, "the prefix must start with '/'"));
    }
    if prefix == "/" {
        return Err(PolicyError::invalid(at, "cannot nest at the root (use merge, or a route)"));
    }
    if prefix.contains("{*") {
        return Err(PolicyError::invalid(at, "the prefix cannot contain a wildcard"));
    }
    Ok(())
}

/// `prefix` joined to a route's `path` as a nested router sees it (`/orders` + `/` is
/// `/orders`).
pub fn nested_path(prefix: &str, path: &str) -> String {
    join(prefix, path)
}

/// The largest body a token-exchange request may have.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// An endpoint zt answers itself, behind the Guard like any route: one of the controls
/// API's endpoints, or a [`TokenIssuer`]'s JWK set or token exchange. An adapter reads the
/// body (up to [`BuiltinEndpoint::body_limit`]) and hands it to [`BuiltinEndpoint::answer`].
///
/// ```
/// # #[cfg(feature = "aws-lc-rs")] {
/// use zt_core::issuer::{TokenIssuer, TokenIssuerConfig};
/// use zt_core::BuiltinEndpoint;
///
/// let issuer = TokenIssuer::new(TokenIssuerConfig::new("https://a.example").audience("b")).unwrap();
/// let jwks = BuiltinEndpoint::jwks(issuer);
/// assert_eq!((jwks.method(), jwks.body_limit()), ("GET", None));
/// let request = zt_core::BuiltinRequest::default();
/// let reply = futures_util::FutureExt::now_or_never(jwks.answer(None, request, Ok(b""))).unwrap();
/// assert_eq!(reply.status(), 200);
/// assert!(reply.body().contains("\"keys\""));
/// # }
/// ```
#[derive(Clone)]
pub struct BuiltinEndpoint(Builtin);

/// The request headers a [`BuiltinEndpoint`] reads (the adapters fill it in).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinRequest<'a> {
    /// The `Content-Type` header.
    pub content_type: Option<&'a [u8]>,
    /// The `Authorization` header (the Shared Signals push checks it when configured).
    pub authorization: Option<&'a [u8]>,
}

#[derive(Clone)]
enum Builtin {
    Controls(ControlsApi, controls_api::Endpoint),
    Jwks(TokenIssuer),
    Exchange(TokenIssuer),
    /// The RFC 9728 document, set when the router is finished.
    ResourceMetadata(Arc<OnceLock<String>>),
    /// The Shared Signals push endpoint (RFC 8935).
    Signals(crate::signals::SignalReceiver),
}

impl std::fmt::Debug for BuiltinEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Builtin::Controls(_, endpoint) => format!("controls {endpoint:?}"),
            Builtin::Jwks(_) => "jwks".into(),
            Builtin::Exchange(_) => "token exchange".into(),
            Builtin::ResourceMetadata(_) => "resource metadata".into(),
            Builtin::Signals(_) => "signals push".into(),
        };
        f.debug_tuple("BuiltinEndpoint").field(&kind).finish()
    }
}

impl BuiltinEndpoint {
    /// The issuer's public JWK set (public: route it with `scopes::public()`).
    pub fn jwks(issuer: TokenIssuer) -> Self {
        BuiltinEndpoint(Builtin::Jwks(issuer))
    }

    /// The issuer's RFC 8693 token exchange: the verified caller is the subject (route it
    /// with a requirement that authenticates, e.g. `scopes::authenticated()`).
    pub fn token_exchange(issuer: TokenIssuer) -> Self {
        BuiltinEndpoint(Builtin::Exchange(issuer))
    }

    /// The HTTP method it answers.
    pub fn method(&self) -> &'static str {
        match &self.0 {
            Builtin::Controls(_, endpoint) => endpoint.method(),
            Builtin::Jwks(_) | Builtin::ResourceMetadata(_) => "GET",
            Builtin::Exchange(_) | Builtin::Signals(_) => "POST",
        }
    }

    /// The largest body it reads; `None`: it reads none.
    pub fn body_limit(&self) -> Option<usize> {
        match &self.0 {
            Builtin::Controls(_, controls_api::Endpoint::List)
            | Builtin::Jwks(_)
            | Builtin::ResourceMetadata(_) => None,
            Builtin::Controls(..) => Some(controls_api::MAX_BODY_BYTES),
            Builtin::Exchange(_) => Some(MAX_FORM_BYTES),
            Builtin::Signals(_) => Some(crate::signals::MAX_SET_BYTES),
        }
    }

    /// The answer to a request zt admitted (`admission`, from the request's extensions),
    /// with its `Content-Type` and its body as read (an empty one when
    /// [`body_limit`](Self::body_limit) is `None`). A request without an admission did not
    /// come through zt (a wiring bug): it gets a 500, never an action.
    ///
    /// Async for the controls API, whose writes wait for the fleet's shared store when there
    /// is one (see [`ControlsApi::handle`]); every other answer is ready at once.
    pub async fn answer(
        &self,
        admission: Option<&Admission>,
        request: BuiltinRequest<'_>,
        body: Result<&[u8], BodyError>,
    ) -> Reply {
        let BuiltinRequest { content_type, authorization } = request;
        match (&self.0, admission) {
            // Public: answered with or without a decision.
            (Builtin::Jwks(issuer), _) => issuer.jwks_response(),
            // Public: the SET's signature authenticates the transmitter.
            (Builtin::Signals(receiver), _) => match body {
                Ok(body) => {
                    let reply: futures_util::future::BoxFuture<'_, Reply> =
                        Box::pin(receiver.push_authorized(authorization, content_type, body));
                    reply.await
                }
                Err(_) => Reply {
                    status: 400,
                    headers: vec![("content-type", "application/json".into())],
                    body:
                        r#"{"err":"invalid_request","description":"the body could not be read (too large?)"}"#
                            .into(),
                },
            },
            (Builtin::ResourceMetadata(document), _) => match document.get() {
                Some(document) => Reply {
                    status: 200,
                    headers: vec![
                        ("content-type", "application/json".into()),
                        ("cache-control", "public, max-age=300".into()),
                    ],
                    body: document.clone(),
                },
                // Only before the router is finished, which serves nothing.
                None => Reply {
                    status: 503,
                    headers: vec![("content-type", "text/plain; charset=utf-8".into())],
                    body: "zt: the resource metadata is not ready (the router was not finished)".into(),
                },
            },
            (_, None) => Reply {
                status: 500,
                headers: vec![("content-type", "text/plain; charset=utf-8".into())],
                body: "zt: this endpoint was reached without zt's decision (is the zt layer in front of it?)"
                    .into(),
            },
            (Builtin::Controls(api, endpoint), Some(admission)) => {
                let request_id = admission.request_id();
                let request = ControlRequest {
                    identity: admission.identity(),
                    content_type,
                    body,
                    request_id: request_id.as_str(),
                };
                // Boxed: the fleet's round trip is a deep future type, and the adapters'
                // handlers would otherwise each carry (and lay out) all of it.
                let reply: futures_util::future::BoxFuture<'_, Reply> =
                    Box::pin(api.handle(*endpoint, request));
                reply.await
            }
            (Builtin::Exchange(issuer), Some(admission)) => match (admission.identity(), body) {
                (None, _) => admission.reject(Reason::MissingCredentials),
                (Some(_), Err(_)) => ExchangeError::MalformedBody.to_response(),
                (Some(who), Ok(body)) => issuer.exchange_response(who, content_type, body),
            },
        }
    }
}
