//! Route registration: each route's requirement sits next to its handler, and one service
//! carries both the middleware and the routes.
//!
//! Why one service: with a middleware and a route configuration handed out separately,
//! `App::new().configure(..)` without the matching `.wrap(..)` served every route
//! unprotected. [`Routes::service`] returns a `web::scope("")` (an empty prefix matches
//! every path) wrapped in [`ZeroTrust`] and holding every resource: actix routes each
//! request to the first service that matches, so everything registered on the `App` after
//! it, routes and `default_service` alike, is shadowed and reaches zt instead, which denies
//! what was not registered here. Register the zt service first (or alone) on its `App`.

use std::sync::Arc;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{FromRequest, Handler, HttpMessage, HttpRequest, HttpResponse, Responder};
use zt_core::{ANY_METHODS, Admission, BuiltinEndpoint, Guard, PolicyError, Requirement, RouteRegistry};
use zt_core::{controls_api, nested_path};

use crate::ZeroTrust;
use crate::middleware::{read_payload, reply};

type RouteFactory = Arc<dyn Fn() -> actix_web::Route + Send + Sync>;
/// Registers a service in the zt scope; called once per worker (actix builds each worker's
/// `App` anew, and services such as `actix_files::Files` are not `Send`).
type ServiceFactory = Arc<dyn Fn(&mut ServiceConfig) + Send + Sync>;

/// Handlers for one or more methods of one path, made by [`get`], [`post`], ..., [`any`]
/// and chained: `get(list).post(create)`. The methods are known when the requirement is
/// registered; every chained method shares the requirement given to [`Router::route`].
#[derive(Clone)]
pub struct MethodRoute {
    routes: Vec<(&'static str, RouteFactory)>,
}

fn method_of(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

fn route_for<F, Args>(method: &'static str, handler: F) -> (&'static str, RouteFactory)
where
    F: Handler<Args> + Send + Sync,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    // `web::route().method(..)` rather than `web::get()`: one shape for every method.
    // A `GET` route answers `HEAD` too (RFC 9110, 9.3.2; actix-web sends no body for it), as
    // the Guard admits `HEAD` on a `GET` route: otherwise actix would refuse what zt allowed.
    (
        method,
        Arc::new(move || {
            let route = web::route();
            let route = if method == "GET" {
                route.guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
            } else {
                route.method(method_of(method))
            };
            route.to(handler.clone())
        }),
    )
}

macro_rules! method_fn {
    ($name:ident, $method:literal) => {
        #[doc = concat!("Routes `", $method, "` requests to `handler`.")]
        pub fn $name<F, Args>(handler: F) -> MethodRoute
        where
            F: Handler<Args> + Send + Sync,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            MethodRoute { routes: vec![route_for($method, handler)] }
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

/// Routes every method of [`ANY_METHODS`](zt_core::ANY_METHODS) to `handler`: not `TRACE`
/// or `CONNECT`, which are answered 405.
pub fn any<F, Args>(handler: F) -> MethodRoute
where
    F: Handler<Args> + Send + Sync,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    MethodRoute { routes: ANY_METHODS.iter().map(|m| route_for(m, handler.clone())).collect() }
}

macro_rules! chain_fn {
    ($name:ident, $method:literal) => {
        #[doc = concat!("Also routes `", $method, "` requests to `handler`.")]
        pub fn $name<F, Args>(mut self, handler: F) -> Self
        where
            F: Handler<Args> + Send + Sync,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.routes.push(route_for($method, handler));
            self
        }
    };
}

impl MethodRoute {
    chain_fn!(get, "GET");
    chain_fn!(post, "POST");
    chain_fn!(put, "PUT");
    chain_fn!(patch, "PATCH");
    chain_fn!(delete, "DELETE");
    chain_fn!(head, "HEAD");
    chain_fn!(options, "OPTIONS");

    /// The methods this route serves.
    pub fn methods(&self) -> Vec<&'static str> {
        self.routes.iter().map(|(m, _)| *m).collect()
    }
}

/// Collects routes with their requirements; [`Router::finish`] checks them against the
/// guard's policy and returns the [`Routes`] to install in each worker's `App` with
/// `App::new().service(routes.service())`.
///
/// ```
/// use zt_actix::{get, Router};
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
///
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap();
/// let routes = Router::new(guard)
///     .route("/health", get(|| async { "ok" }), scopes::public())
///     .route("/orders", get(|| async { "list" }).post(|| async { "created" }), scopes::all(["orders"]))
///     .finish()
///     .unwrap();
/// let app = actix_web::App::new().service(routes.service());
/// ```
pub struct Router {
    routes: RouteRegistry,
    registered: Vec<(String, MethodRoute)>,
    services: Vec<ServiceFactory>,
    fallback: Option<RouteFactory>,
}

impl Router {
    /// An empty router enforced by `guard`.
    pub fn new(guard: Guard) -> Self {
        Router {
            routes: RouteRegistry::new(guard),
            registered: Vec::new(),
            services: Vec::new(),
            fallback: None,
        }
    }

    /// Adds `route` at `path`, reachable only by callers meeting `requirement` (for every
    /// method the route chains).
    pub fn route(mut self, path: &str, route: MethodRoute, requirement: Requirement) -> Self {
        self.routes.add(&route.methods(), path, &requirement);
        self.registered.push((path.to_string(), route));
        self
    }

    /// Mounts a service made by `factory` (once per worker) under `prefix`: `requirement`
    /// covers the prefix and everything below it (`/static`, `/static/`,
    /// `/static/{*rest}`) for the methods of [`ANY_METHODS`](zt_core::ANY_METHODS). The
    /// service registers its own paths, so mount it at the same prefix, e.g.
    /// `nest_service("/static", || Files::new("/static", "assets"), scopes::all(["files:read"]))`
    /// with `actix_files::Files`; anything it registers elsewhere is not in zt's table and
    /// is denied. A path below the prefix that the service does not serve goes to the
    /// service's own default (for `Files`: `default_handler`), which actix takes from the
    /// App's `default_service` when it is unset; only callers meeting `requirement` get
    /// there. Set it (`Files::default_handler`) for an answer of your own.
    ///
    /// The Guard checks the canonical path before the service sees it: `..`, `%2e%2e` and
    /// other ambiguous spellings are refused (400) or resolved before matching.
    ///
    /// ```
    /// use zt_actix::Router;
    /// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
    ///
    /// # let guard = Guard::new(Policy::builder()
    /// #     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    /// #         .jwks_url("https://issuer.example/jwks"))
    /// #     .build()).unwrap();
    /// // Any `HttpServiceFactory`: here a scope answering everything below `/static`.
    /// let routes = Router::new(guard)
    ///     .nest_service(
    ///         "/static",
    ///         || actix_web::web::scope("/static").default_service(actix_web::web::to(|| async { "file" })),
    ///         scopes::all(["files:read"]),
    ///     )
    ///     .finish()
    ///     .unwrap();
    /// ```
    pub fn nest_service<F, T>(mut self, prefix: &str, factory: F, requirement: Requirement) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
        T: HttpServiceFactory + 'static,
    {
        if self.routes.add_subtree(prefix, &requirement) {
            self.services.push(Arc::new(move |cfg: &mut ServiceConfig| {
                cfg.service(factory());
            }));
        }
        self
    }

    /// Nests `router`'s routes, services and fallback under `prefix` (its requirements move
    /// with them).
    pub fn nest(mut self, prefix: &str, router: Router) -> Self {
        if !self.routes.nest(prefix, router.routes) {
            return self;
        }
        for (path, route) in router.registered {
            self.registered.push((nested_path(prefix, &path), route));
        }
        if !router.services.is_empty() || router.fallback.is_some() {
            // A scope under the prefix: services mounted in it register below it, and its
            // default service is the nested router's fallback.
            let (services, fallback, prefix) = (router.services, router.fallback, prefix.to_string());
            self.services.push(Arc::new(move |cfg: &mut ServiceConfig| {
                let mut scope = web::scope(&prefix);
                for service in &services {
                    let service = service.clone();
                    scope = scope.configure(move |cfg| service(cfg));
                }
                if let Some(fallback) = &fallback {
                    scope = scope.default_service(fallback());
                }
                cfg.service(scope);
            }));
        }
        self
    }

    /// Merges another router's routes, services and requirements (its fallback too, when
    /// this one has none).
    pub fn merge(mut self, router: Router) -> Self {
        self.routes.merge(router.routes);
        self.registered.extend(router.registered);
        self.services.extend(router.services);
        if self.fallback.is_none() {
            self.fallback = router.fallback;
        }
        self
    }

    /// Sets the handler for requests the Guard admitted but no route here takes (the zt
    /// scope's `default_service`). It never makes an unregistered route reachable: in
    /// enforce mode the Guard answers those itself with its 404 problem. What reaches it:
    /// routes the policy or the OpenAPI contract declares that have no handler here, and,
    /// in report-only mode, the unregistered requests the Guard logs as `would_deny`.
    pub fn fallback<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.fallback = Some(Arc::new(move || web::to(handler.clone())));
        self
    }

    /// Mounts the runtime controls API ([`zt_core::controls_api`]) at `prefix`
    /// (`GET {prefix}`, `POST {prefix}/blocks`, `POST {prefix}/unblock`,
    /// `POST {prefix}/revocations`) for callers with the scope `zt:admin`. The routes are
    /// enforced even in report-only mode.
    ///
    /// ```
    /// use zt_actix::Router;
    /// use zt_core::{observe::ObserverConfig, policy::{IssuerConfig, Policy}, Guard};
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.observe = Some(ObserverConfig::default()); // the controls need monitoring on
    /// let routes = Router::new(Guard::new(policy).unwrap()).controls("/zt/controls").finish().unwrap();
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
    /// use zt_actix::Router;
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("https://api.example")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.resource = Some(ResourceConfig::new("https://api.example"));
    /// let app = Router::new(Guard::new(policy).unwrap()).resource_metadata().finish().unwrap();
    /// ```
    pub fn resource_metadata(mut self) -> Self {
        if let Some((path, endpoint)) = self.routes.resource_metadata() {
            self.registered.push((path, MethodRoute { routes: vec![route_for("GET", builtin(endpoint))] }));
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
    /// use zt_actix::Router;
    ///
    /// let mut policy = Policy::builder()
    ///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    ///         .jwks_url("https://issuer.example/jwks"))
    ///     .build();
    /// policy.observe = Some(Default::default());
    /// policy.signals = Some(SignalsConfig::new("https://idp.example", "api").jwks_url("https://idp.example/jwks"));
    /// let app = Router::new(Guard::new(policy).unwrap()).signals().finish().unwrap();
    /// ```
    pub fn signals(mut self) -> Self {
        if let Some((path, endpoint)) = self.routes.signals() {
            self.registered.push((path, MethodRoute { routes: vec![route_for("POST", builtin(endpoint))] }));
        }
        self
    }

    /// [`Router::controls`] with another requirement (never public: that is an error).
    pub fn controls_with(mut self, prefix: &str, requirement: Requirement) -> Self {
        for (path, endpoint) in self.routes.controls(prefix, requirement) {
            let method = endpoint.method();
            self.registered.push((path, MethodRoute { routes: vec![route_for(method, builtin(endpoint))] }));
        }
        self
    }

    /// Checks the requirements and compiles the guard's route table.
    pub fn finish(self) -> Result<Routes, PolicyError> {
        let guard = self.routes.finish()?;
        // Group by path: actix answers 405 from the first resource matching a path, so all
        // methods of one path must live in one resource.
        let mut grouped: Vec<(String, Vec<(&'static str, RouteFactory)>)> = Vec::new();
        for (path, route) in self.registered {
            match grouped.iter_mut().find(|(p, _)| *p == path) {
                Some((_, routes)) => routes.extend(route.routes),
                None => grouped.push((path, route.routes)),
            }
        }
        // actix takes the first route whose guards match, and a `GET` route also answers
        // `HEAD`: a path's own `HEAD` handler goes first, so it keeps its requests.
        let by_path = grouped
            .into_iter()
            .map(|(path, mut routes)| {
                routes.sort_by_key(|(method, _)| *method != "HEAD");
                (path, routes.into_iter().map(|(_, factory)| factory).collect())
            })
            .collect();
        Ok(Routes {
            guard,
            by_path: Arc::new(by_path),
            services: Arc::new(self.services),
            fallback: self.fallback,
        })
    }
}

/// Finished routes: [`Routes::service`] makes each worker's zt service.
#[derive(Clone)]
pub struct Routes {
    guard: Guard,
    by_path: Arc<Vec<(String, Vec<RouteFactory>)>>,
    services: Arc<Vec<ServiceFactory>>,
    fallback: Option<RouteFactory>,
}

impl Routes {
    /// Every route behind the [`ZeroTrust`] middleware, as one service for
    /// `App::service`: a `web::scope("")` that matches every path, so nothing registered
    /// on the `App` after it is reached without zt (it is shadowed: zt answers 404 for what
    /// it does not know). Register it first, or alone: actix serves a route registered
    /// before it without zt. Middleware added with `App::wrap` runs before zt.
    ///
    /// ```
    /// use actix_web::{App, HttpServer};
    /// use zt_actix::{get, Router};
    /// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
    ///
    /// # fn run() -> std::io::Result<()> {
    /// # let guard = Guard::new(Policy::builder()
    /// #     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
    /// #         .jwks_url("https://issuer.example/jwks"))
    /// #     .build()).unwrap();
    /// let routes = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).finish().unwrap();
    /// let server = HttpServer::new(move || App::new().service(routes.service())).bind("127.0.0.1:0")?;
    /// # drop(server); Ok(()) }
    /// ```
    pub fn service(&self) -> impl HttpServiceFactory + 'static {
        let mut scope = web::scope("");
        for (path, factories) in self.by_path.iter() {
            let mut resource = web::resource(path.as_str());
            for factory in factories {
                resource = resource.route(factory());
            }
            scope = scope.service(resource);
        }
        for service in self.services.iter() {
            let service = service.clone();
            scope = scope.configure(move |cfg| service(cfg));
        }
        // Always a default of zt's own, so the App's `default_service` is never reached
        // through this scope (report-only mode forwards unregistered paths to it).
        scope = match &self.fallback {
            Some(fallback) => scope.default_service(fallback()),
            None => scope.default_service(web::to(not_implemented)),
        };
        scope.wrap(ZeroTrust::new(self.guard.clone()))
    }

    /// The guard, with the routes compiled in.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

/// The default fallback. A route zt matched (declared by the policy or the contract) that
/// no handler serves answers zt's 404 problem, rendered through the admission (its request
/// id, the application's denial renderer), not an empty 404. An unmatched path only gets
/// here in report-only mode, where zt enforces nothing: it keeps actix's own empty 404.
async fn not_implemented(request: HttpRequest) -> HttpResponse {
    let answer = match request.extensions().get::<Admission>() {
        Some(admission) if admission.route().is_some() => {
            Some(admission.reject(zt_core::Reason::RouteNotFound))
        }
        _ => None,
    };
    match answer {
        Some(answer) => reply(answer),
        None => HttpResponse::NotFound().finish(),
    }
}

/// An endpoint zt answers itself ([`BuiltinEndpoint`]: the controls API, a token issuer's
/// JWK set and exchange) as an actix-web handler.
pub(crate) fn builtin(
    endpoint: BuiltinEndpoint,
) -> impl Handler<(HttpRequest, web::Payload), Output = HttpResponse> + Send + Sync {
    move |request: HttpRequest, payload: web::Payload| {
        let endpoint = endpoint.clone();
        async move {
            let read = match endpoint.body_limit() {
                Some(limit) => read_payload(payload.into_inner(), limit).await,
                None => Ok(Bytes::new()),
            };
            let headers = zt_core::BuiltinRequest {
                content_type: request.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes),
                authorization: request.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes),
            };
            // Cloned out: the extensions' borrow must not be held while the answer waits
            // (a controls write awaits the fleet's store).
            let admission = request.extensions().get::<Admission>().cloned();
            reply(endpoint.answer(admission.as_ref(), headers, read.as_deref().map_err(|e| *e)).await)
        }
    }
}
