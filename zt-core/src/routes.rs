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

use std::sync::Arc;

use crate::denial::{Denial, Reason};
use crate::error::PolicyError;
use crate::scopes::Requirement;

/// Route requirements, registered in code or loaded from the policy.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<(String, String, Requirement)>,
}

const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

impl RouteTable {
    /// An empty table (denies everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `requirement` for `method` on the route `template` (`/orders/{id}`).
    /// Registering the same route twice is fine if the requirement is the same, an error
    /// otherwise.
    pub fn add(&mut self, method: &str, template: &str, requirement: Requirement) -> Result<(), PolicyError> {
        let at = format!("route {method} {template}");
        if !METHODS.contains(&method) {
            return Err(PolicyError::invalid(&at, "unknown HTTP method (use upper case)"));
        }
        if !template.starts_with('/') {
            return Err(PolicyError::invalid(&at, "route templates start with '/'"));
        }
        requirement.validate().map_err(|m| PolicyError::invalid(&at, m))?;
        if let Some((_, _, existing)) = self.entries.iter().find(|(m, t, _)| m == method && t == template) {
            if *existing != requirement {
                return Err(PolicyError::invalid(
                    &at,
                    format!(
                        "conflicting requirements: {} vs {}",
                        existing.describe(),
                        requirement.describe()
                    ),
                ));
            }
            return Ok(());
        }
        self.entries.push((method.to_string(), template.to_string(), requirement));
        Ok(())
    }

    /// Adds every route of `other` (conflicts are errors).
    pub fn merge(&mut self, other: &RouteTable) -> Result<(), PolicyError> {
        for (m, t, r) in &other.entries {
            self.add(m, t, r.clone())?;
        }
        Ok(())
    }

    /// The registered routes as `(method, template, requirement)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Requirement)> {
        self.entries.iter().map(|(m, t, r)| (m.as_str(), t.as_str(), r))
    }

    /// True when no route is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compiles the table for matching; a template the router cannot take is an error.
    pub(crate) fn compile(&self) -> Result<CompiledRoutes, PolicyError> {
        let mut router = matchit::Router::new();
        let mut paths: Vec<PathRoutes> = Vec::new();
        for (method, template, requirement) in &self.entries {
            let index = match paths.iter().position(|p| &*p.template == template) {
                Some(i) => i,
                None => {
                    router.insert(template.as_str(), paths.len()).map_err(|e| {
                        PolicyError::invalid(
                            format!("route {method} {template}"),
                            format!("invalid route template: {e}"),
                        )
                    })?;
                    paths.push(PathRoutes { template: Arc::from(template.as_str()), methods: Vec::new() });
                    paths.len() - 1
                }
            };
            paths[index].methods.push((
                method.clone(),
                Arc::new(requirement.clone()),
                Arc::from(requirement.describe()),
            ));
        }
        for p in &mut paths {
            p.methods.sort_by(|a, b| a.0.cmp(&b.0));
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

struct PathRoutes {
    template: Arc<str>,
    /// Method, requirement, and its description (computed once: it is a span field).
    methods: Vec<(String, Arc<Requirement>, Arc<str>)>,
}

/// The matched route.
/// Borrowed from the table: every request matches one, and cloning the shared `Arc`s
/// would make the worker threads write to the same cache lines.
pub(crate) struct RouteMatch<'a> {
    /// Dense index of this (method, template), `0..CompiledRoutes::len()`.
    pub(crate) index: usize,
    pub(crate) method: &'a str,
    pub(crate) template: &'a Arc<str>,
    /// Enforced in report-only mode too (zt's own control plane).
    pub(crate) always_enforce: bool,
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
        let (name, requirement, described) = &routes.methods[method];
        Some(RouteMatch {
            index,
            method: name,
            template: &routes.template,
            always_enforce: false,
            requirement,
            described,
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
        match routes.methods.iter().position(|(m, _, _)| m == method) {
            Some(position) => {
                if let Some(params) = params {
                    params.extend(found.params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                }
                let (name, requirement, described) = &routes.methods[position];
                let index = self.offsets[path_index] + position;
                Ok(RouteMatch {
                    index,
                    method: name,
                    template: &routes.template,
                    always_enforce: false,
                    requirement,
                    described,
                })
            }
            None => {
                let mut denial = Denial::new(Reason::MethodNotAllowed);
                denial.allowed_methods = routes.methods.iter().map(|(m, _, _)| m.clone()).collect();
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
        assert_eq!(denial.allowed_methods, ["DELETE", "GET"]);
        assert_eq!(c.find("GET", "/nope", None).err().unwrap().reason, Reason::RouteNotFound);
        assert_eq!(c.find("GET", "/orders/7/", None).err().unwrap().reason, Reason::RouteNotFound);
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
