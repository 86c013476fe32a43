//! A router that registers each route's requirement next to its handler, and the finished,
//! guarded app it turns into.
//!
//! Why a wrapper and not `axum::Router` plus a layer: axum will not enumerate a router's
//! routes, so nothing could tell a route nobody annotated from one that was. Here every way
//! of adding a route takes a [`Requirement`], the [`RouteTable`] the Guard enforces is built
//! alongside the axum router, and [`Router::into_axum`] hands back a [`GuardedApp`]: it can
//! be served and wrapped from the outside, but it has no `route`, `merge`, `nest` or
//! `fallback`, so nothing can be added behind zt's back (that is a compile error).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{IntoMakeService, MethodFilter, MethodRouter, Route};
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use tower_layer::Layer;
use tower_service::Service;
use zt_core::{Admission, BuiltinEndpoint, Guard, PolicyError, Requirement, RouteRegistry, controls_api};

use crate::layer::{collect, reply};
use crate::{ZeroTrustLayer, ZeroTrustService};

/// The methods [`routing::any`], [`Router::route_service`] and [`Router::nest_service`]
/// register: [`zt_core::ANY_METHODS`], every standard method but `TRACE` and `CONNECT`
/// (answered 405).
pub use zt_core::ANY_METHODS;

// The same methods, as axum's filter.
const ANY_FILTER: MethodFilter = MethodFilter::GET
    .or(MethodFilter::HEAD)
    .or(MethodFilter::POST)
    .or(MethodFilter::PUT)
    .or(MethodFilter::PATCH)
    .or(MethodFilter::DELETE)
    .or(MethodFilter::OPTIONS);

/// Handlers for one or more methods of one path, made by the functions in [`routing`] and
/// chained like axum's: `get(list).post(create)`. The methods stay known so the requirement
/// is registered for exactly them; every chained method shares the requirement given to
/// [`Router::route`] (register the path again for another requirement).
pub struct MethodRoute<S = ()> {
    methods: Vec<&'static str>,
    router: MethodRouter<S>,
}

macro_rules! chain_fn {
    ($name:ident, $method:literal) => {
        #[doc = concat!("Also routes `", $method, "` requests to `handler`.")]
        pub fn $name<H, T>(mut self, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.methods.push($method);
            self.router = self.router.$name(handler);
            self
        }
    };
}

impl<S: Clone + Send + Sync + 'static> MethodRoute<S> {
    chain_fn!(get, "GET");
    chain_fn!(post, "POST");
    chain_fn!(put, "PUT");
    chain_fn!(patch, "PATCH");
    chain_fn!(delete, "DELETE");
    chain_fn!(head, "HEAD");
    chain_fn!(options, "OPTIONS");

    /// The methods this route serves.
    pub fn methods(&self) -> &[&'static str] {
        &self.methods
    }
}

/// Handlers bound to methods, like `axum::routing`, but the methods stay known so the
/// requirement can be registered for exactly them.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
/// use zt_tower::{routing::{any, get}, Router};
///
/// # let guard = Guard::new(Policy::builder()
/// #     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
/// #         .jwks_url("https://issuer.example/jwks"))
/// #     .build()).unwrap();
/// let app = Router::new(guard)
///     // One requirement for both methods.
///     .route("/orders", get(|| async { "list" }).post(|| async { "created" }), scopes::all(["orders"]))
///     // Every standard method but TRACE and CONNECT (405 for those).
///     .route("/echo", any(|| async { "echo" }), scopes::authenticated())
///     .into_axum();
/// ```
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
                MethodRoute { methods: vec![$method], router: axum::routing::$name(handler) }
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

    /// Routes every method of [`ANY_METHODS`] to `handler` (not `TRACE` or `CONNECT`:
    /// those are answered 405).
    pub fn any<H, T, S>(handler: H) -> MethodRoute<S>
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        MethodRoute { methods: ANY_METHODS.to_vec(), router: axum::routing::on(ANY_FILTER, handler) }
    }
}

/// An axum router whose every route carries its requirement; [`Router::into_axum`] puts the
/// [`ZeroTrustLayer`] in front of all of it and returns the [`GuardedApp`] to serve.
///
/// Every request is checked before axum routes it, and only `(method, route)` pairs
/// registered here (or in the policy) get through: a path nobody annotated is a 404
/// problem, an unannotated method a 405.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
/// use zt_tower::{routing::{get, post}, GuardedApp, Router};
///
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap();
/// let orders = Router::new(guard.clone())
///     .route("/", get(|| async { "list" }), scopes::all(["orders:read"]))
///     .route("/", post(|| async { "created" }), scopes::all(["orders:write"]));
/// let app: GuardedApp = Router::new(guard)
///     .route("/health", get(|| async { "ok" }), scopes::public())
///     .nest("/orders", orders)
///     .into_axum();
/// ```
pub struct Router<S = ()> {
    inner: axum::Router<S>,
    routes: RouteRegistry,
    /// Whether a fallback was set (here or in a merged router): axum refuses to merge two
    /// routers that both have one, so zt's default is added only when finishing.
    fallback: bool,
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router enforced by `guard`.
    pub fn new(guard: Guard) -> Self {
        Router { inner: axum::Router::new(), routes: RouteRegistry::new(guard), fallback: false }
    }

    /// Adds `route` at `path`, reachable only by callers meeting `requirement` (for every
    /// method the route chains).
    pub fn route(mut self, path: &str, route: MethodRoute<S>, requirement: Requirement) -> Self {
        self.routes.add(&route.methods, path, &requirement);
        self.inner = self.inner.route(path, route.router);
        self
    }

    /// Routes the methods of [`ANY_METHODS`] on `path` to a Tower service, reachable only
    /// by callers meeting `requirement`.
    pub fn route_service<T>(mut self, path: &str, service: T, requirement: Requirement) -> Self
    where
        T: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse + 'static,
        T::Future: Send + 'static,
    {
        self.routes.add(&ANY_METHODS, path, &requirement);
        self.inner = self.inner.route(path, axum::routing::on_service(ANY_FILTER, service));
        self
    }

    /// Nests a Tower service under `prefix`: `requirement` covers the prefix and everything
    /// below it (`/static`, `/static/`, `/static/{*rest}`), for the methods of
    /// [`ANY_METHODS`]. The service sees the path without the prefix, as with axum's
    /// `nest_service`; tower-http's `ServeDir` for static files is the typical one
    /// (`.nest_service("/static", ServeDir::new("assets"), scopes::all(["files:read"]))`).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
    /// use zt_tower::Router;
    ///
    /// # let guard = Guard::new(Policy::builder()
    /// #     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    /// #         .jwks_url("https://issuer.example/jwks"))
    /// #     .build()).unwrap();
    /// // Answers with the path it was given: `/static/a/b.css` arrives as `/a/b.css`.
    /// let files = tower::service_fn(|request: http::Request<axum::body::Body>| async move {
    ///     Ok::<_, Infallible>(request.uri().path().to_string())
    /// });
    /// let app = Router::new(guard).nest_service("/static", files, scopes::all(["files:read"])).into_axum();
    /// ```
    ///
    /// The Guard checks the canonical path before the service sees it: `..`, `%2e%2e` and
    /// other ambiguous spellings are refused (400) or resolved before matching, so no path
    /// outside the prefix reaches the service.
    pub fn nest_service<T>(mut self, prefix: &str, service: T, requirement: Requirement) -> Self
    where
        T: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse + 'static,
        T::Future: Send + 'static,
    {
        if !self.routes.add_subtree(prefix, &requirement) {
            return self;
        }
        // Filtered like `any`: in report-only mode too, TRACE and CONNECT never reach it.
        let filtered: MethodRouter<(), Infallible> = axum::routing::on_service(ANY_FILTER, service);
        self.inner = self.inner.nest_service(prefix, filtered);
        self
    }

    /// Nests `router` under `prefix` (its requirements move with it).
    pub fn nest(mut self, prefix: &str, router: Router<S>) -> Self {
        if self.routes.nest(prefix, router.routes) {
            self.inner = self.inner.nest(prefix, router.inner);
        }
        self
    }

    /// Merges another router's routes and requirements.
    pub fn merge(mut self, router: Router<S>) -> Self {
        self.routes.merge(router.routes);
        self.fallback |= router.fallback;
        self.inner = self.inner.merge(router.inner);
        self
    }

    /// Sets the handler for requests the Guard admitted but no route here takes. It never
    /// makes an unregistered route reachable: in enforce mode the Guard answers those
    /// itself with its 404 problem before axum routes anything. What reaches the fallback:
    /// routes the policy or the OpenAPI contract declares that have no handler here, and, in
    /// report-only mode, the unregistered requests the Guard logs as `would_deny` and lets
    /// through. A custom "not implemented" answer is its typical use.
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.inner = self.inner.fallback(handler);
        self.fallback = true;
        self
    }

    /// Applies a Tower layer to every route added so far and to the fallback, like
    /// `axum::Router::layer`. It runs after zt's decision, on admitted requests only
    /// (with the caller's [`Identity`](crate::Identity) in the request); wrap the [`GuardedApp`] with
    /// [`GuardedApp::layer`] for middleware that must see every request.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        self.inner = self.inner.layer(layer);
        self
    }

    /// Applies a Tower layer to the routes added so far, not to the fallback, like
    /// `axum::Router::route_layer`. Runs after zt's decision.
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        self.inner = self.inner.route_layer(layer);
        self
    }

    /// Mounts the runtime controls API ([`zt_core::controls_api`]) at `prefix`
    /// (`GET {prefix}`, `POST {prefix}/blocks`, `POST {prefix}/unblock`,
    /// `POST {prefix}/revocations`) for callers with the scope `zt:admin`. The routes are
    /// enforced even in report-only mode.
    ///
    /// ```
    /// use zt_core::{observe::ObserverConfig, policy::{IssuerConfig, Policy}, Guard};
    /// use zt_tower::Router;
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.observe = Some(ObserverConfig::default()); // the controls need monitoring on
    /// let app = Router::new(Guard::new(policy).unwrap()).controls("/zt/controls").into_axum();
    /// ```
    pub fn controls(self, prefix: &str) -> Self {
        self.controls_with(prefix, controls_api::default_requirement())
    }

    /// Serves the RFC 9728 protected-resource metadata of the policy's `[resource]` at
    /// `/.well-known/oauth-protected-resource` (plus the identifier's path), public, with
    /// `scopes_supported` from every route of the finished router (see
    /// [`zt_core::resource`]). Without a `[resource]`, finishing the router fails.
    ///
    /// ```
    /// use zt_core::{policy::{IssuerConfig, Policy}, resource::ResourceConfig, Guard};
    /// use zt_tower::Router;
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("https://api.example")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.resource = Some(ResourceConfig::new("https://api.example"));
    /// let app = Router::new(Guard::new(policy).unwrap()).resource_metadata().into_axum();
    /// ```
    pub fn resource_metadata(mut self) -> Self {
        if let Some((path, endpoint)) = self.routes.resource_metadata() {
            self.inner =
                self.inner.route(&path, axum::routing::on(MethodFilter::GET, BuiltinHandler(endpoint)));
        }
        self
    }

    /// Serves the Shared Signals push endpoint (RFC 8935) of the policy's `[signals]` at its
    /// `push_path` (default `/zt/signals/push`), public: each SET's signature authenticates
    /// the transmitter (see [`zt_core::signals`]). Without `[signals]` or `[observe]`,
    /// finishing the router fails.
    ///
    /// ```
    /// use zt_core::{policy::{IssuerConfig, Policy}, signals::SignalsConfig, Guard};
    /// use zt_tower::Router;
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.observe = Some(Default::default());
    /// policy.signals = Some(SignalsConfig::new("https://idp.example", "api").jwks_url("https://idp.example/jwks"));
    /// let app = Router::new(Guard::new(policy).unwrap()).signals().into_axum();
    /// ```
    pub fn signals(mut self) -> Self {
        if let Some((path, endpoint)) = self.routes.signals() {
            self.inner =
                self.inner.route(&path, axum::routing::on(MethodFilter::POST, BuiltinHandler(endpoint)));
        }
        self
    }

    /// [`Router::controls`] with another requirement (never public: that is an error).
    pub fn controls_with(mut self, prefix: &str, requirement: Requirement) -> Self {
        for (path, endpoint) in self.routes.controls(prefix, requirement) {
            let filter = if endpoint.method() == "GET" { MethodFilter::GET } else { MethodFilter::POST };
            self.inner = self.inner.route(&path, axum::routing::on(filter, BuiltinHandler(endpoint)));
        }
        self
    }

    /// Provides the state, like `axum::Router::with_state`.
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        Router { inner: self.inner.with_state(state), routes: self.routes, fallback: self.fallback }
    }
}

impl Router<()> {
    /// Finishes the router, failing when a requirement was invalid or conflicting.
    ///
    /// The [`ZeroTrustLayer`] wraps the whole router (not `Router::layer`, which runs after
    /// axum's routing): every request is checked before axum routes it, so the router sees
    /// exactly the path that was checked, including a normalized one.
    pub fn try_into_axum(self) -> Result<GuardedApp, PolicyError> {
        let guard = self.routes.finish()?;
        let mut inner = self.inner;
        if !self.fallback {
            // A route the policy or the contract declares but no handler serves answers
            // zt's 404 problem, not axum's empty 404.
            inner = inner.fallback(|request: Request<Body>| {
                std::future::ready(not_implemented(request.extensions().get::<Admission>()))
            });
        }
        Ok(GuardedApp { inner: ZeroTrustLayer::new(guard.clone()).layer(inner), guard })
    }

    /// Finishes the router. Panics (at start-up, like axum on overlapping routes) when a
    /// requirement was invalid or conflicting; use [`Router::try_into_axum`] to handle it.
    pub fn into_axum(self) -> GuardedApp {
        match self.try_into_axum() {
            Ok(app) => app,
            Err(e) => panic!("zt: invalid route requirements: {e}"),
        }
    }
}

/// The finished app: every route of a [`Router`] behind the [`ZeroTrustLayer`]. Serve it
/// with `axum::serve` (as it is, or through [`GuardedApp::into_make_service`] or
/// [`GuardedApp::into_make_service_with_connect_info`]; the latter gives zt the client
/// address), [`crate::tls::serve`], or call it as a Tower service
/// (`tower::ServiceExt::oneshot`).
///
/// It takes no more routes: there is no `route`, `merge`, `nest` or `fallback` here, and no
/// way back to the inner `axum::Router`, so nothing can be added that zt does not know.
/// [`GuardedApp::layer`] wraps it from the outside (tracing, CORS, compression).
///
/// ```no_run
/// # async fn run(guard: zt_core::Guard) -> std::io::Result<()> {
/// use zt_core::scopes;
/// use zt_tower::{routing::get, Router};
///
/// let app = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).into_axum();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
/// # }
/// ```
#[derive(Clone)]
pub struct GuardedApp<S = ZeroTrustService<axum::Router>> {
    guard: Guard,
    inner: S,
}

impl<S> std::fmt::Debug for GuardedApp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedApp").finish_non_exhaustive()
    }
}

impl<S> GuardedApp<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    /// The guard enforcing this app, with its routes compiled in (e.g. for its observer).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Wraps the whole guarded app in `layer`, which then sees every request before zt
    /// does, and every response after (tower-http's `TraceLayer`, `CorsLayer`,
    /// `CompressionLayer`). Same bounds as `axum::Router::layer`.
    pub fn layer<L>(self, layer: L) -> GuardedApp<axum::Router>
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        // axum's router erases the layered service's types (body, error) as it does for its own.
        let inner = axum::Router::new().fallback_service(self.inner).layer(layer);
        GuardedApp { guard: self.guard, inner }
    }

    /// The make-service `axum::serve` takes.
    pub fn into_make_service(self) -> IntoMakeService<Self> {
        axum::ServiceExt::<Request<Body>>::into_make_service(self)
    }

    /// The make-service `axum::serve` takes, putting each connection's `C` (e.g.
    /// `SocketAddr`, which zt uses for address limits and blocks) into the requests.
    pub fn into_make_service_with_connect_info<C>(self) -> IntoMakeServiceWithConnectInfo<Self, C> {
        axum::ServiceExt::<Request<Body>>::into_make_service_with_connect_info(self)
    }
}

impl<S, B> Service<Request<B>> for GuardedApp<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        self.inner.call(request.map(Body::new))
    }
}

/// `axum::serve(listener, app)`, as with an `axum::Router`: each connection gets a clone.
impl<L: axum::serve::Listener, S: Clone> Service<axum::serve::IncomingStream<'_, L>> for GuardedApp<S> {
    type Response = GuardedApp<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<GuardedApp<S>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _stream: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(self.clone()))
    }
}

/// The default fallback's answer. A route zt matched (declared by the policy or the
/// contract) that no handler serves is zt's 404 problem, rendered through the admission
/// (its request id, the application's denial renderer). An unmatched path only gets here in
/// report-only mode, where zt enforces nothing: it keeps the framework's own empty 404.
fn not_implemented(admission: Option<&Admission>) -> Response {
    match admission {
        Some(admission) if admission.route().is_some() => {
            reply::<Body>(admission.reject(zt_core::Reason::RouteNotFound))
        }
        _ => http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// An endpoint zt answers itself ([`BuiltinEndpoint`]: the controls API, a token issuer's
/// JWK set and exchange) as an axum handler.
#[derive(Clone, Debug)]
pub struct BuiltinHandler(pub(crate) BuiltinEndpoint);

impl<S: Clone + Send + Sync + 'static> Handler<(), S> for BuiltinHandler {
    type Future = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn call(self, request: Request<Body>, _state: S) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let read = match self.0.body_limit() {
                Some(limit) => collect(body, limit).await,
                None => Ok(Bytes::new()),
            };
            let request = zt_core::BuiltinRequest {
                content_type: parts.headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
                authorization: parts.headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes),
            };
            reply(
                self.0
                    .answer(parts.extensions.get::<Admission>(), request, read.as_deref().map_err(|e| *e))
                    .await,
            )
        })
    }
}
