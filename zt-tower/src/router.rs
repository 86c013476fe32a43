//! A router that registers each route's requirement next to its handler.

use axum::handler::Handler;
use axum::routing::MethodRouter;
use zt_core::{Guard, PolicyError, Requirement, RouteTable};

use crate::ZeroTrustLayer;

/// One handler for one method, made by the functions in [`routing`].
pub struct MethodRoute<S = ()> {
    method: &'static str,
    router: MethodRouter<S>,
}

/// Handlers bound to a method, like `axum::routing`, but the method stays known so the
/// requirement can be registered for exactly that method.
pub mod routing {
    use super::*;

    macro_rules! method_fn {
        ($name:ident, $method:literal) => {
            #[doc = concat!("Routes `", $method, "` requests to `handler`.")]
            pub fn $name<H, T, S>(handler: H) -> MethodRoute<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                MethodRoute { method: $method, router: axum::routing::$name(handler) }
            }
        };
    }
    method_fn!(get, "GET");
    method_fn!(post, "POST");
    method_fn!(put, "PUT");
    method_fn!(patch, "PATCH");
    method_fn!(delete, "DELETE");
    method_fn!(head, "HEAD");
    method_fn!(options, "OPTIONS");
}

/// An axum router whose every route carries its requirement; [`Router::into_axum`] installs
/// the [`ZeroTrustLayer`] that enforces them. Anything reachable in the resulting router but
/// not registered here (routes added to the axum router later, fallbacks) is denied.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
/// use zt_tower::{routing::{get, post}, Router};
///
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap();
/// let orders = Router::new(guard.clone())
///     .route("/", get(|| async { "list" }), scopes::all(["orders:read"]))
///     .route("/", post(|| async { "created" }), scopes::all(["orders:write"]));
/// let app: axum::Router = Router::new(guard)
///     .route("/health", get(|| async { "ok" }), scopes::public())
///     .nest("/orders", orders)
///     .into_axum();
/// ```
pub struct Router<S = ()> {
    inner: axum::Router<S>,
    guard: Guard,
    table: RouteTable,
    errors: Vec<PolicyError>,
}

fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if path == "/" { prefix.to_string() } else { format!("{prefix}{path}") }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router enforced by `guard`.
    pub fn new(guard: Guard) -> Self {
        Router { inner: axum::Router::new(), guard, table: RouteTable::new(), errors: Vec::new() }
    }

    /// Adds `route` at `path`, reachable only by callers meeting `requirement`.
    pub fn route(mut self, path: &str, route: MethodRoute<S>, requirement: Requirement) -> Self {
        if let Err(e) = self.table.add(route.method, path, requirement) {
            self.errors.push(e);
        }
        self.inner = self.inner.route(path, route.router);
        self
    }

    /// Nests `router` under `prefix` (its requirements move with it).
    pub fn nest(mut self, prefix: &str, router: Router<S>) -> Self {
        self.errors.extend(router.errors);
        let mut prefixed = RouteTable::new();
        for (method, path, requirement) in router.table.entries() {
            if let Err(e) = prefixed.add(method, &join(prefix, path), requirement.clone()) {
                self.errors.push(e);
            }
        }
        if let Err(e) = self.table.merge(&prefixed) {
            self.errors.push(e);
        }
        self.inner = self.inner.nest(prefix, router.inner);
        self
    }

    /// Merges another router's routes and requirements.
    pub fn merge(mut self, router: Router<S>) -> Self {
        self.errors.extend(router.errors);
        if let Err(e) = self.table.merge(&router.table) {
            self.errors.push(e);
        }
        self.inner = self.inner.merge(router.inner);
        self
    }

    /// Sets the fallback handler. It only runs for requests the Guard forwards, which in
    /// enforce mode never includes unregistered routes (they get a 404 problem).
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.inner = self.inner.fallback(handler);
        self
    }

    /// Provides the state, like `axum::Router::with_state`.
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        Router {
            inner: self.inner.with_state(state),
            guard: self.guard,
            table: self.table,
            errors: self.errors,
        }
    }
}

impl Router<()> {
    /// Finishes the router, failing when a requirement was invalid or conflicting.
    ///
    /// The [`ZeroTrustLayer`] wraps the whole router (not `Router::layer`, which runs after
    /// axum's routing): every request is checked before axum routes it, so the router sees
    /// exactly the path that was checked, including a normalized one.
    pub fn try_into_axum(self) -> Result<axum::Router, PolicyError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let guard = self.guard.with_routes(&self.table)?;
        let service = tower_layer::Layer::layer(&ZeroTrustLayer::new(guard), self.inner);
        Ok(axum::Router::new().fallback_service(service))
    }

    /// Finishes the router. Panics (at start-up, like axum on overlapping routes) when a
    /// requirement was invalid or conflicting; use [`Router::try_into_axum`] to handle it.
    pub fn into_axum(self) -> axum::Router {
        match self.try_into_axum() {
            Ok(router) => router,
            Err(e) => panic!("zt: invalid route requirements: {e}"),
        }
    }
}
