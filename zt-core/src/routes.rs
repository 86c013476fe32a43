//! The route table: which requirement guards each `(method, route template)`.
//!
//! Requirements come from the policy and from code (the adapters' routers register each
//! route's requirement next to its handler). A request whose path matches no template is
//! denied with 404, a known path with an unregistered method with 405: a route nobody
//! annotated is unreachable.
//!
//! ```
//! use zt_core::{scopes, RouteTable};
//!
//! let mut routes = RouteTable::new();
//! routes.add("GET", "/orders/{id}", scopes::all(["orders:read"])).unwrap();
//! routes.add("GET", "/health", scopes::public()).unwrap();
//! assert!(routes.add("GET", "/health", scopes::all(["x"])).is_err()); // conflicting requirement
//! ```
//!
//! A template may end in a catch-all segment (`/static/{*rest}`): it matches everything
//! below the prefix (at least one character), which is how a service nested under a prefix
//! (a static-file server) is covered by one requirement. Control-plane routes (blocking,
//! revoking) are registered with [`RouteTable::add_always_enforced`]: they are enforced even
//! when the policy runs in report-only mode, where every other denial is only logged.

use std::sync::Arc;

use crate::denial::{Denial, Reason};
use crate::error::PolicyError;
use crate::scopes::Requirement;

/// Route requirements, registered in code or loaded from the policy.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    method: String,
    template: String,
    requirement: Requirement,
    /// Enforced even in report-only mode (control-plane routes).
    always_enforce: bool,
    /// The endpoint authenticates its caller itself (the Shared Signals push: the SET's
    /// signature): the Guard does not read a credential on it.
    own_authentication: bool,
}

const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

/// The methods an "any method" route registers (the adapters' `any`, `route_service` and
/// `nest_service`): every standard method but `TRACE` and `CONNECT`, which an API does not
/// serve (`TRACE` reflects requests, `CONNECT` opens tunnels). Those are refused with 405:
/// fail closed rather than hand a handler a method it never expected.
pub const ANY_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl RouteTable {
    /// An empty table (denies everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `requirement` for `method` on the route `template` (`/orders/{id}`).
    /// Registering the same route twice is fine if the requirement is the same, an error
    /// otherwise.
    pub fn add(&mut self, method: &str, template: &str, requirement: Requirement) -> Result<(), PolicyError> {
        self.insert(method, template, requirement, false, false)
    }

    /// Registers `requirement` for `method` on `prefix` and everything below it: the
    /// templates `/static`, `/static/` and `/static/{*rest}` for the prefix `/static` (a
    /// prefix ending in `/` adds only itself and its catch-all), which is what a service
    /// nested under a prefix answers (a static-file server).
    ///
    /// ```
    /// use zt_core::{scopes, RouteTable};
    ///
    /// let mut routes = RouteTable::new();
    /// routes.add_subtree("GET", "/static", scopes::all(["files:read"])).unwrap();
    /// let templates: Vec<&str> = routes.entries().map(|(_, t, _)| t).collect();
    /// assert_eq!(templates, ["/static", "/static/", "/static/{*rest}"]);
    /// ```
    pub fn add_subtree(
        &mut self,
        method: &str,
        prefix: &str,
        requirement: Requirement,
    ) -> Result<(), PolicyError> {
        if prefix.contains("{*") {
            return Err(PolicyError::invalid(
                format!("route {method} {prefix}"),
                "a subtree prefix cannot contain a wildcard",
            ));
        }
        let templates = if prefix.ends_with('/') {
            vec![prefix.to_string(), format!("{prefix}{{*rest}}")]
        } else {
            vec![prefix.to_string(), format!("{prefix}/"), format!("{prefix}/{{*rest}}")]
        };
        for template in templates {
            self.add(method, &template, requirement.clone())?;
        }
        Ok(())
    }

    /// Registers a control-plane route: like [`RouteTable::add`], but enforced even when the
    /// policy runs in report-only mode ([`Mode::Report`](crate::Mode::Report)). Report-only
    /// mode exists to try a policy on live traffic without refusing anyone; forwarding an
    /// unauthorized request to block a caller or revoke a token is never part of that trial.
    ///
    /// Registering a route both ways (same requirement) keeps it always enforced: a route is
    /// never weakened by a second registration.
    ///
    /// ```
    /// use zt_core::{scopes, RouteTable};
    ///
    /// let mut routes = RouteTable::new();
    /// routes.add_always_enforced("POST", "/zt/controls/blocks", scopes::all(["zt:admin"])).unwrap();
    /// assert!(routes.is_always_enforced("POST", "/zt/controls/blocks"));
    /// ```
    pub fn add_always_enforced(
        &mut self,
        method: &str,
        template: &str,
        requirement: Requirement,
    ) -> Result<(), PolicyError> {
        self.insert(method, template, requirement, true, false)
    }

    /// A public, always-enforced route whose endpoint authenticates its caller itself (zt's
    /// Shared Signals push endpoint, whose SETs are signed): the Guard reads no credential on
    /// it, so a transmitter's own `Authorization` header is the endpoint's to judge.
    pub(crate) fn add_self_authenticating(
        &mut self,
        method: &str,
        template: &str,
    ) -> Result<(), PolicyError> {
        self.insert(method, template, crate::scopes::public(), true, true)
    }

    fn insert(
        &mut self,
        method: &str,
        template: &str,
        requirement: Requirement,
        always_enforce: bool,
        own_authentication: bool,
    ) -> Result<(), PolicyError> {
        let at = format!("route {method} {template}");
        if !METHODS.contains(&method) {
            return Err(PolicyError::invalid(&at, "unknown HTTP method (use upper case)"));
        }
        if !template.starts_with('/') {
            return Err(PolicyError::invalid(&at, "route templates start with '/'"));
        }
        requirement.validate().map_err(|m| PolicyError::invalid(&at, m))?;
        if let Some(existing) = self.entries.iter_mut().find(|e| e.method == method && e.template == template)
        {
            if existing.requirement != requirement {
                return Err(PolicyError::invalid(
                    &at,
                    format!(
                        "conflicting requirements: {} vs {}",
                        existing.requirement.describe(),
                        requirement.describe()
                    ),
                ));
            }
            existing.always_enforce |= always_enforce;
            // Only when both registrations say so: a service route of its own at the same
            // place keeps the Guard's authentication.
            existing.own_authentication &= own_authentication;
            return Ok(());
        }
        self.entries.push(Entry {
            method: method.to_string(),
            template: template.to_string(),
            requirement,
            always_enforce,
            own_authentication,
        });
        Ok(())
    }

    /// Adds every route of `other` (conflicts are errors).
    pub fn merge(&mut self, other: &RouteTable) -> Result<(), PolicyError> {
        for e in &other.entries {
            self.insert(
                &e.method,
                &e.template,
                e.requirement.clone(),
                e.always_enforce,
                e.own_authentication,
            )?;
        }
        Ok(())
    }

    /// The same routes under `prefix` (`/api` + `/orders` is `/api/orders`, `/api` + `/` is
    /// `/api`), as a router nesting another one places them; each keeps its requirement and
    /// whether it is always enforced.
    ///
    /// ```
    /// use zt_core::{scopes, RouteTable};
    ///
    /// let mut inner = RouteTable::new();
    /// inner.add("GET", "/", scopes::public()).unwrap();
    /// inner.add("GET", "/{id}", scopes::all(["orders:read"])).unwrap();
    /// let nested = inner.prefixed("/orders").unwrap();
    /// let templates: Vec<&str> = nested.entries().map(|(_, t, _)| t).collect();
    /// assert_eq!(templates, ["/orders", "/orders/{id}"]);
    /// ```
    pub fn prefixed(&self, prefix: &str) -> Result<RouteTable, PolicyError> {
        let mut out = RouteTable::new();
        for e in &self.entries {
            let template = join(prefix, &e.template);
            out.insert(&e.method, &template, e.requirement.clone(), e.always_enforce, e.own_authentication)?;
        }
        Ok(out)
    }

    /// The registered routes as `(method, template, requirement)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Requirement)> {
        self.entries.iter().map(|e| (e.method.as_str(), e.template.as_str(), &e.requirement))
    }

    /// True when `method template` is registered as always enforced
    /// ([`RouteTable::add_always_enforced`]).
    pub fn is_always_enforced(&self, method: &str, template: &str) -> bool {
        self.entries.iter().any(|e| e.always_enforce && e.method == method && e.template == template)
    }

    /// True when no route is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compiles the table for matching; a template the router cannot take is an error.
    pub(crate) fn compile(&self) -> Result<CompiledRoutes, PolicyError> {
        let mut router = matchit::Router::new();
        let mut paths: Vec<PathRoutes> = Vec::new();
        for e in &self.entries {
            let index = match paths.iter().position(|p| *p.template == *e.template) {
                Some(i) => i,
                None => {
                    router.insert(e.template.as_str(), paths.len()).map_err(|err| {
                        PolicyError::invalid(
                            format!("route {} {}", e.method, e.template),
                            format!("invalid route template: {err}"),
                        )
                    })?;
                    paths.push(PathRoutes { template: Arc::from(e.template.as_str()), methods: Vec::new() });
                    paths.len() - 1
                }
            };
            paths[index].methods.push(MethodEntry {
                method: e.method.clone(),
                requirement: Arc::new(e.requirement.clone()),
                described: Arc::from(e.requirement.describe()),
                always_enforce: e.always_enforce,
                own_authentication: e.own_authentication,
            });
        }
        for p in &mut paths {
            p.methods.sort_by(|a, b| a.method.cmp(&b.method));
        }
        // Each (path, method) gets a dense index, so the Guard can resolve per-route facts
        // (contract operation, zone, body limit) once at start-up and index them per request.
        let mut index = Vec::new();
        let mut offsets = Vec::with_capacity(paths.len());
        for (path, routes) in paths.iter().enumerate() {
            offsets.push(index.len());
            for method in 0..routes.methods.len() {
                index.push((path, method));
            }
        }
        Ok(CompiledRoutes { router, paths, index, offsets })
    }
}

/// `prefix` + `path` the way axum and actix nest routers: `/api` + `/` is `/api`, and a
/// trailing slash on the prefix is not doubled.
pub(crate) fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if path == "/" { prefix.to_string() } else { format!("{prefix}{path}") }
}

struct PathRoutes {
    template: Arc<str>,
    methods: Vec<MethodEntry>,
}

struct MethodEntry {
    method: String,
    requirement: Arc<Requirement>,
    /// The requirement's description (computed once: it is a span field).
    described: Arc<str>,
    always_enforce: bool,
    own_authentication: bool,
}

/// The matched route.
/// Borrowed from the table: every request matches one, and cloning the shared `Arc`s
/// would make the worker threads write to the same cache lines.
pub(crate) struct RouteMatch<'a> {
    /// Dense index of this (method, template), `0..CompiledRoutes::len()`.
    pub(crate) index: usize,
    pub(crate) method: &'a str,
    pub(crate) template: &'a Arc<str>,
    /// Registered with [`RouteTable::add_always_enforced`]: a denial on this route is
    /// enforced even in report-only mode (zt's own control plane).
    pub(crate) always_enforce: bool,
    /// Registered with `add_self_authenticating`: no credential is read on it.
    pub(crate) own_authentication: bool,
    pub(crate) requirement: &'a Requirement,
    pub(crate) described: &'a str,
}

/// The compiled table.
pub(crate) struct CompiledRoutes {
    router: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
    /// `(path, method)` positions by dense route index.
    index: Vec<(usize, usize)>,
    /// The dense index of each path's first method.
    offsets: Vec<usize>,
}

impl CompiledRoutes {
    /// How many (method, template) routes there are.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The route with dense index `index` (`0..len()`).
    pub(crate) fn get(&self, index: usize) -> Option<RouteMatch<'_>> {
        let &(path, method) = self.index.get(index)?;
        let routes = &self.paths[path];
        let entry = &routes.methods[method];
        Some(RouteMatch {
            index,
            method: &entry.method,
            template: &routes.template,
            always_enforce: entry.always_enforce,
            own_authentication: entry.own_authentication,
            requirement: &entry.requirement,
            described: &entry.described,
        })
    }

    /// Matches a canonical path (see [`crate::canonical`]). With `params`, the path
    /// parameters (as sent, still percent-encoded) are returned too: only templated routes
    /// have any, so only their requests allocate.
    pub(crate) fn find(
        &self,
        method: &str,
        path: &str,
        params: Option<&mut Vec<(String, String)>>,
    ) -> Result<RouteMatch<'_>, Denial> {
        let Ok(found) = self.router.at(path) else {
            return Err(Denial::new(Reason::RouteNotFound));
        };
        let path_index = *found.value;
        let routes = &self.paths[path_index];
        // `HEAD` is `GET` without the body (RFC 9110, 9.3.2): a path that serves `GET` and
        // registers no `HEAD` of its own answers `HEAD` as its `GET` route, with the same
        // requirement, zone, contract operation and quota (axum's routers do the same).
        let position = routes.methods.iter().position(|m| m.method == method).or_else(|| {
            (method == "HEAD").then(|| routes.methods.iter().position(|m| m.method == "GET")).flatten()
        });
        match position {
            Some(position) => {
                if let Some(params) = params {
                    params.extend(found.params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                }
                let entry = &routes.methods[position];
                Ok(RouteMatch {
                    index: self.offsets[path_index] + position,
                    method: &entry.method,
                    template: &routes.template,
                    always_enforce: entry.always_enforce,
                    own_authentication: entry.own_authentication,
                    requirement: &entry.requirement,
                    described: &entry.described,
                })
            }
            None => {
                let mut denial = Denial::new(Reason::MethodNotAllowed);
                denial.allowed_methods = routes.methods.iter().map(|m| m.method.clone()).collect();
                let serves = |name: &str| denial.allowed_methods.iter().any(|m| m == name);
                if serves("GET") && !serves("HEAD") {
                    denial.allowed_methods.push("HEAD".to_string());
                }
                Err(denial)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes;

    #[test]
    fn matching_and_default_deny() {
        let mut t = RouteTable::new();
        t.add("GET", "/orders/{id}", scopes::all(["r"])).unwrap();
        t.add("DELETE", "/orders/{id}", scopes::all(["a"])).unwrap();
        let c = t.compile().unwrap();
        let mut params = Vec::new();
        let found = c.find("GET", "/orders/7", Some(&mut params)).ok().unwrap();
        assert_eq!(&**found.template, "/orders/{id}");
        assert_eq!(params, [("id".to_string(), "7".to_string())]);
        let again = c.get(found.index).unwrap();
        assert_eq!((again.method, &**again.template), ("GET", "/orders/{id}"));
        assert_eq!(c.find("DELETE", "/orders/7", None).ok().unwrap().method, "DELETE");
        assert_eq!(c.len(), 2);
        let denial = c.find("PUT", "/orders/7", None).err().unwrap();
        assert_eq!(denial.reason, Reason::MethodNotAllowed);
        assert_eq!(denial.allowed_methods, ["DELETE", "GET", "HEAD"]);
        // HEAD is the GET route (same index, so the same requirement, zone and quota).
        let head = c.find("HEAD", "/orders/7", None).ok().unwrap();
        assert_eq!((head.index, head.method), (found.index, "GET"));
        assert_eq!(c.find("GET", "/nope", None).err().unwrap().reason, Reason::RouteNotFound);
        assert_eq!(c.find("GET", "/orders/7/", None).err().unwrap().reason, Reason::RouteNotFound);
    }

    #[test]
    fn always_enforced_routes_are_flagged_and_survive_merge_and_prefix() {
        let mut t = RouteTable::new();
        t.add("GET", "/orders", scopes::all(["r"])).unwrap();
        t.add_always_enforced("POST", "/blocks", scopes::all(["zt:admin"])).unwrap();
        // A plain registration of the same route never weakens it.
        t.add("POST", "/blocks", scopes::all(["zt:admin"])).unwrap();
        let nested = t.prefixed("/zt/").unwrap();
        let mut merged = RouteTable::new();
        merged.add("POST", "/zt/blocks", scopes::all(["zt:admin"])).unwrap();
        merged.merge(&nested).unwrap();
        assert!(merged.is_always_enforced("POST", "/zt/blocks"));
        assert!(!merged.is_always_enforced("GET", "/zt/orders"));
        let c = merged.compile().unwrap();
        assert!(c.find("POST", "/zt/blocks", None).ok().unwrap().always_enforce);
        assert!(!c.find("GET", "/zt/orders", None).ok().unwrap().always_enforce);
        // Conflicting requirements stay an error whichever way the route was added.
        assert!(merged.add_always_enforced("GET", "/zt/orders", scopes::all(["x"])).is_err());
    }

    #[test]
    fn catch_all_templates_cover_everything_below_their_prefix() {
        let mut t = RouteTable::new();
        t.add("GET", "/static", scopes::all(["files"])).unwrap();
        t.add("GET", "/static/", scopes::all(["files"])).unwrap();
        t.add("GET", "/static/{*rest}", scopes::all(["files"])).unwrap();
        t.add("GET", "/static/special", scopes::public()).unwrap();
        let c = t.compile().unwrap();
        let template = |path: &str| c.find("GET", path, None).ok().map(|m| m.template.to_string());
        assert_eq!(template("/static/a/b.css").as_deref(), Some("/static/{*rest}"));
        assert_eq!(template("/static/").as_deref(), Some("/static/"));
        assert_eq!(template("/static").as_deref(), Some("/static"));
        assert_eq!(template("/static/special").as_deref(), Some("/static/special"), "static beats catch-all");
        assert_eq!(template("/staticx"), None);
        let mut params = Vec::new();
        c.find("GET", "/static/a/b.css", Some(&mut params)).ok().unwrap();
        assert_eq!(params, [("rest".to_string(), "a/b.css".to_string())]);
    }

    #[test]
    fn bad_registrations() {
        let mut t = RouteTable::new();
        assert!(t.add("get", "/x", scopes::public()).is_err());
        assert!(t.add("GET", "x", scopes::public()).is_err());
        assert!(t.add("GET", "/x", scopes::all(["a b"])).is_err());
        t.add("GET", "/x/{a}", scopes::public()).unwrap();
        t.add("GET", "/x/{b}", scopes::public()).unwrap();
        assert!(t.compile().is_err());
    }
}
