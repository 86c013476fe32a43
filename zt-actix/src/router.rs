//! Route registration: each route's requirement sits next to its handler.

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use actix_web::{FromRequest, Handler, Responder};
use zt_core::{Guard, PolicyError, Requirement, RouteTable};

use crate::ZeroTrust;

type RouteFactory = Arc<dyn Fn() -> actix_web::Route + Send + Sync>;

/// One handler for one method, made by [`get`], [`post`], ... so the method is known when the
/// requirement is registered.
#[derive(Clone)]
pub struct MethodRoute {
    method: &'static str,
    factory: RouteFactory,
}

macro_rules! method_fn {
    ($name:ident, $method:literal, $actix:ident) => {
        #[doc = concat!("Routes `", $method, "` requests to `handler`.")]
        pub fn $name<F, Args>(handler: F) -> MethodRoute
        where
            F: Handler<Args> + Send + Sync,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            MethodRoute { method: $method, factory: Arc::new(move || web::$actix().to(handler.clone())) }
        }
    };
}
method_fn!(get, "GET", get);
method_fn!(post, "POST", post);
method_fn!(put, "PUT", put);
method_fn!(patch, "PATCH", patch);
method_fn!(delete, "DELETE", delete);
method_fn!(head, "HEAD", head);

/// Routes `OPTIONS` requests to `handler`.
pub fn options<F, Args>(handler: F) -> MethodRoute
where
    F: Handler<Args> + Send + Sync,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    MethodRoute {
        method: "OPTIONS",
        factory: Arc::new(move || web::route().method(actix_web::http::Method::OPTIONS).to(handler.clone())),
    }
}

/// Collects routes with their requirements; [`Router::finish`] checks them against the
/// guard's policy and returns the [`Routes`] to install in each worker's `App`.
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
///     .finish()
///     .unwrap();
/// let app = actix_web::App::new()
///     .wrap(routes.middleware())
///     .configure(|cfg| routes.configure(cfg));
/// ```
pub struct Router {
    guard: Guard,
    table: RouteTable,
    registered: Vec<(String, MethodRoute, Requirement)>,
    errors: Vec<PolicyError>,
}

impl Router {
    /// An empty router enforced by `guard`.
    pub fn new(guard: Guard) -> Self {
        Router { guard, table: RouteTable::new(), registered: Vec::new(), errors: Vec::new() }
    }

    /// Adds `route` at `path`, reachable only by callers meeting `requirement`.
    pub fn route(mut self, path: &str, route: MethodRoute, requirement: Requirement) -> Self {
        if let Err(e) = self.table.add(route.method, path, requirement.clone()) {
            self.errors.push(e);
        }
        self.registered.push((path.to_string(), route, requirement));
        self
    }

    /// Nests `router`'s routes under `prefix`.
    pub fn nest(mut self, prefix: &str, router: Router) -> Self {
        self.errors.extend(router.errors);
        let prefix = prefix.trim_end_matches('/');
        for (path, route, requirement) in router.registered {
            let full = if path == "/" { prefix.to_string() } else { format!("{prefix}{path}") };
            self = self.route(&full, route, requirement);
        }
        self
    }

    /// Checks the requirements and compiles the guard's route table.
    pub fn finish(self) -> Result<Routes, PolicyError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let guard = self.guard.with_routes(&self.table)?;
        // Group by path: actix answers 405 from the first resource matching a path, so all
        // methods of one path must live in one resource.
        let mut by_path: Vec<(String, Vec<RouteFactory>)> = Vec::new();
        for (path, route, _) in self.registered {
            match by_path.iter_mut().find(|(p, _)| *p == path) {
                Some((_, routes)) => routes.push(route.factory),
                None => by_path.push((path, vec![route.factory])),
            }
        }
        Ok(Routes { guard, by_path: Arc::new(by_path) })
    }
}

/// Finished routes: a middleware and a service configuration for each worker's `App`.
#[derive(Clone)]
pub struct Routes {
    guard: Guard,
    by_path: Arc<Vec<(String, Vec<RouteFactory>)>>,
}

impl Routes {
    /// The middleware enforcing these routes' requirements.
    pub fn middleware(&self) -> ZeroTrust {
        ZeroTrust::new(self.guard.clone())
    }

    /// Registers the handlers (pass to `App::configure`).
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        for (path, factories) in self.by_path.iter() {
            let mut resource = web::resource(path.as_str());
            for factory in factories {
                resource = resource.route(factory());
            }
            cfg.service(resource);
        }
    }

    /// The guard, with the routes compiled in.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}
