//! Building a Guard: the policy validated and compiled up front, then the routes resolved
//! (each route's contract operation, zone, GraphQL schema and body limit, once).

use std::collections::HashMap;
use std::sync::Arc;

use super::engine::{Guard, RouteInfo, Routing, Shared};
use super::graphql::EndpointSchema;
use super::observation::LimiterSink;
use super::stage::CERTIFICATE_CACHE;
use crate::contract::{Contract, ContractOptions};
use crate::error::PolicyError;
use crate::keys::{KeyFetcher, ReqwestFetcher};
use crate::limit::Limiter;
use crate::observe::Observer;
use crate::policy::{GraphqlEndpointConfig, Policy};
use crate::routes::RouteTable;
use crate::token::Verifier;

/// Options for [`Guard::builder`].
pub struct GuardBuilder {
    policy: Policy,
    fetcher: Option<Arc<dyn KeyFetcher>>,
    contract: Option<Contract>,
    challenge_hook: Option<crate::observe::ChallengeHook>,
    graphql: Vec<(String, EndpointSchema)>,
    renderer: Option<Arc<dyn crate::denial::DenialRenderer>>,
}

impl GuardBuilder {
    pub(super) fn new(policy: Policy) -> GuardBuilder {
        GuardBuilder {
            policy,
            fetcher: None,
            contract: None,
            challenge_hook: None,
            graphql: Vec::new(),
            renderer: None,
        }
    }

    /// Fetches remote key documents with this fetcher (your own HTTP client, CA, proxy).
    pub fn key_fetcher(mut self, fetcher: Arc<dyn KeyFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Enforces this compiled contract (e.g. a document your service generates with utoipa,
    /// via `Contract::from_value`). Settings come from the policy's `[contract]` table, or
    /// its defaults.
    pub fn contract(mut self, contract: Contract) -> Self {
        self.contract = Some(contract);
        self
    }

    /// Guards the GraphQL endpoint routed at `path` with this compiled schema (e.g. SDL
    /// embedded with `include_str!`): its requests are checked against the schema, limits
    /// and field rules instead of the OpenAPI contract. Declare the route itself (methods,
    /// route-level requirement) as usual.
    ///
    /// ```
    /// use zt_core::graphql::{GraphqlConfig, GraphqlSchema};
    /// use zt_core::{Guard, Policy};
    ///
    /// let schema = GraphqlSchema::from_sdl("type Query { version: String }", GraphqlConfig::default()).unwrap();
    /// let guard = Guard::builder(Policy::default()).graphql("/graphql", schema).build().unwrap();
    /// # let _ = guard;
    /// ```
    #[cfg(feature = "graphql")]
    pub fn graphql(mut self, path: impl Into<String>, schema: crate::graphql::GraphqlSchema) -> Self {
        self.graphql.push((path.into(), schema));
        self
    }

    /// The response to a `challenge` action of the observer (e.g. a bot challenge page);
    /// `None` declines (the observer then blocks).
    pub fn challenge_hook(mut self, hook: crate::observe::ChallengeHook) -> Self {
        self.challenge_hook = Some(hook);
        self
    }

    /// Shapes the body of every denial with `renderer` instead of the default problem+json
    /// document (status and headers stay zt's; see [`crate::denial::DenialRenderer`]).
    pub fn denial_renderer(mut self, renderer: Arc<dyn crate::denial::DenialRenderer>) -> Self {
        self.renderer = Some(renderer);
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
        #[cfg(feature = "redis")]
        let fleet = policy.fleet.as_ref().map(crate::fleet::Fleet::new).transpose()?;
        #[cfg(feature = "redis")]
        if let Some(fleet) = &fleet {
            crate::fleet::share_key_changes(&verifier, fleet);
        }
        let graphql = graphql_endpoints(&policy, self.graphql)?;
        let dpop = policy.dpop.enabled.then(|| crate::dpop::DpopVerifier::new(&policy.dpop)).transpose()?;
        let resource_metadata_url = match &policy.resource {
            Some(resource) => {
                resource.validate(&policy.issuers)?;
                Some(resource.metadata_url())
            }
            None => None,
        };
        let contract_config = policy.contract.clone().unwrap_or_default();
        let contract = match (self.contract, &policy.contract) {
            (Some(contract), _) => Some(Arc::new(contract)),
            (None, Some(config)) if !config.file.is_empty() => {
                let options = ContractOptions {
                    strict: config.strict,
                    max_violations: config.max_violations.max(1),
                    default_body_limit: policy.max_body_bytes,
                };
                let compiled = Contract::from_file(&config.file, options)
                    .map_err(|e| PolicyError::invalid("contract.file", e.to_string()))?;
                Some(Arc::new(compiled))
            }
            (None, Some(_)) => {
                return Err(PolicyError::invalid("contract.file", "name the OpenAPI document"));
            }
            (None, None) => None,
        };
        let mut policy_routes = RouteTable::new();
        for (i, route) in policy.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            let requirement = route.requirement(&at)?;
            policy_routes.add(&route.method, &route.path, requirement).map_err(|e| match e {
                PolicyError::Invalid { message, .. } => PolicyError::invalid(&at, message),
                other => other,
            })?;
        }
        let realm = policy.realm.clone().unwrap_or_else(|| "zt".to_string());
        if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            return Err(PolicyError::invalid(
                "realm",
                "the realm must not contain quotes, backslashes or control characters",
            ));
        }
        let mut route_zones: Vec<(String, String, String)> = policy
            .routes
            .iter()
            .filter_map(|r| r.zone.as_ref().map(|z| (r.method.clone(), r.path.clone(), z.clone())))
            .collect();
        if let Some(contract) = &contract {
            // `x-zt-zone` on an operation.
            route_zones.extend(contract.operations().iter().filter_map(|op| {
                op.zone.as_ref().map(|z| (op.method.clone(), op.template.clone(), z.clone()))
            }));
            // The spec's `security` becomes each operation's requirement.
            for op in contract.operations() {
                if let Some(requirement) = &op.requirement {
                    policy_routes.add(&op.method, &op.template, requirement.clone())?;
                }
            }
        }
        let table = policy_routes.compile()?;
        let zones = crate::zones::Zones::compile(&policy.zones, &route_zones, &policy.bindings)?;
        let certificates = quick_cache::sync::Cache::new(CERTIFICATE_CACHE);
        #[cfg(not(feature = "redis"))]
        if policy.fleet.is_some() {
            return Err(PolicyError::invalid("fleet", "a shared store needs zt's `redis` feature"));
        }
        let limiter = match &policy.limits {
            Some(config) => {
                let builder = Limiter::builder(config);
                #[cfg(feature = "redis")]
                let builder = match &fleet {
                    Some(fleet) => builder.fleet(fleet.clone()),
                    None => builder,
                };
                Some(builder.build()?)
            }
            None => None,
        };
        let observer = match &policy.observe {
            Some(config) => {
                // The observer acts in the Guard's mode; its config has none of its own.
                let mut builder = Observer::builder(config.clone()).mode(policy.mode);
                #[cfg(feature = "redis")]
                if let Some(fleet) = &fleet {
                    builder = builder.fleet(fleet.clone());
                }
                if let Some(limiter) = &limiter {
                    builder = builder.action_sink(Arc::new(LimiterSink(limiter.clone())));
                }
                if let Some(hook) = self.challenge_hook {
                    builder = builder.challenge_hook(move |record| hook(record));
                }
                Some(builder.build()?)
            }
            None => None,
        };
        if let Some(observer) = &observer {
            // A token verifies until `exp` plus its issuer's leeway: its revocation lasts as long.
            let leeway =
                policy.issuers.iter().map(|i| i.leeway.unwrap_or(std::time::Duration::from_secs(60))).max();
            observer.controls().set_revocation_leeway(leeway.unwrap_or_default());
            #[cfg(feature = "redis")]
            if let Some(fleet) = &fleet {
                crate::fleet::controls::share_controls(observer.controls(), fleet);
            }
        }
        let shared = Arc::new(Shared {
            verifier,
            policy,
            realm,
            policy_routes,
            zones,
            certificates,
            contract,
            contract_config,
            limiter,
            observer,
            graphql,
            #[cfg(feature = "redis")]
            fleet,
            dpop,
            resource_metadata_url,
            renderer: self.renderer,
        });
        let routing = Arc::new(resolve(&shared, table));
        Ok(Guard { shared, routing })
    }
}

/// The GraphQL endpoints of a policy (SDL files) and of the builder (compiled in code).
fn graphql_endpoints(
    policy: &Policy,
    in_code: Vec<(String, EndpointSchema)>,
) -> Result<HashMap<String, Arc<EndpointSchema>>, PolicyError> {
    let mut endpoints = HashMap::new();
    for (path, schema) in in_code {
        if !path.starts_with('/') {
            return Err(PolicyError::invalid(format!("graphql {path:?}"), "the path must start with `/`"));
        }
        if endpoints.insert(path.clone(), Arc::new(schema)).is_some() {
            return Err(PolicyError::invalid(format!("graphql {path}"), "this endpoint is given twice"));
        }
    }
    for (index, endpoint) in policy.graphql.iter().enumerate() {
        let at = format!("graphql[{index}]");
        if !endpoint.path.starts_with('/') {
            return Err(PolicyError::invalid(format!("{at}.path"), "the path must start with `/`"));
        }
        if endpoints.contains_key(&endpoint.path) {
            return Err(PolicyError::invalid(
                format!("{at}.path"),
                "this endpoint is given twice (in the policy and in code, or twice in the policy)",
            ));
        }
        let schema = compile_endpoint(&at, endpoint)?;
        endpoints.insert(endpoint.path.clone(), Arc::new(schema));
    }
    Ok(endpoints)
}

/// One `[[graphql]]` endpoint's schema, compiled from its SDL file.
#[cfg(feature = "graphql")]
fn compile_endpoint(at: &str, endpoint: &GraphqlEndpointConfig) -> Result<EndpointSchema, PolicyError> {
    if endpoint.schema_file.is_empty() {
        return Err(PolicyError::invalid(format!("{at}.schema_file"), "name the SDL schema file"));
    }
    let sdl = std::fs::read_to_string(&endpoint.schema_file).map_err(|e| {
        PolicyError::invalid(format!("{at}.schema_file"), format!("{}: {e}", endpoint.schema_file))
    })?;
    EndpointSchema::from_sdl(&sdl, endpoint.options.clone())
        .map_err(|e| PolicyError::invalid(format!("{at}.schema_file"), e.to_string()))
}

/// Without the `graphql` feature no endpoint can be guarded: fail closed when the Guard is
/// built (serving the route unchecked, or as an ordinary contract route, would let any
/// document through), and say which feature the build lacks.
#[cfg(not(feature = "graphql"))]
fn compile_endpoint(at: &str, _endpoint: &GraphqlEndpointConfig) -> Result<EndpointSchema, PolicyError> {
    Err(PolicyError::invalid(
        at.to_string(),
        "GraphQL endpoints need the `graphql` feature, which this build does not have \
         (enable it on the `zt` dependency: `features = [\"graphql\"]`)",
    ))
}

/// [`Guard::with_routes`].
pub(super) fn with_routes(guard: &Guard, routes: &RouteTable) -> Result<Guard, PolicyError> {
    let shared = &guard.shared;
    let mut merged = shared.policy_routes.clone();
    if let Some(contract) = &shared.contract
        && !shared.contract_config.allow_undeclared_routes
    {
        for (method, template, _) in routes.entries() {
            // A GraphQL endpoint's contract is its schema; zt's own control plane (always
            // enforced) checks its bodies itself and need not be in the service's contract.
            let declared = shared.graphql.contains_key(template)
                || routes.is_always_enforced(method, template)
                || contract.operations().iter().any(|op| op.method == method && op.template == template);
            if !declared {
                return Err(PolicyError::invalid(
                    format!("route {method} {template}"),
                    "not declared in the OpenAPI contract (declare it, or set contract.allow_undeclared_routes)",
                ));
            }
        }
    }
    merged.merge(routes)?;
    let served =
        |method: &str, template: &str| merged.entries().any(|(m, t, _)| m == method && t == template);
    // Fail loud: a quota or a zone for a route that is not served is a typo that would
    // leave the real route on the defaults.
    if let Some(limits) = &shared.policy.limits {
        for (i, route) in limits.routes.iter().enumerate() {
            let method = route.method.trim().to_ascii_uppercase();
            if !served(&method, &route.path) {
                return Err(PolicyError::invalid(
                    format!("limits.routes[{i}]"),
                    format!("{method} {} is not a route of this service", route.path),
                ));
            }
        }
    }
    let mut named: Vec<(&str, &str)> = shared.zones.named_routes().collect();
    named.sort_unstable();
    if let Some((method, template)) = named.into_iter().find(|(m, t)| !served(m, t)) {
        return Err(PolicyError::invalid(
            format!("zones: {method} {template}"),
            "a zone names this route, but it is not a route of this service",
        ));
    }
    if let Some(observer) = &shared.observer {
        for (method, template, _) in merged.entries() {
            observer.inventory().declare(method, template);
        }
        if let Some(contract) = &shared.contract {
            for op in contract.operations().iter().filter(|op| op.deprecated) {
                observer.inventory().deprecate(&op.method, &op.template);
            }
        }
    }
    let routing = Arc::new(resolve(shared, merged.compile()?));
    Ok(Guard { shared: shared.clone(), routing })
}

/// Resolves what each route's stages need, once.
fn resolve(shared: &Shared, table: crate::routes::CompiledRoutes) -> Routing {
    let info = (0..table.len())
        .filter_map(|index| table.get(index))
        .map(|route| {
            let graphql = shared.graphql.get(&**route.template).cloned();
            let operation = match (&graphql, &shared.contract) {
                (None, Some(contract)) => contract
                    .operations()
                    .iter()
                    .position(|op| op.method == route.method && op.template == **route.template),
                _ => None,
            };
            let body_limit = match (&graphql, operation, &shared.contract) {
                (Some(schema), _, _) => schema.config().max_request_bytes,
                (None, Some(op), Some(contract)) => {
                    contract.operation(op).map_or(shared.policy.max_body_bytes, |o| o.body_limit)
                }
                _ => shared.policy.max_body_bytes,
            };
            RouteInfo {
                operation,
                zone: shared.zones.zone_of(route.method, route.template),
                graphql,
                body_limit,
                own_authentication: route.own_authentication,
            }
        })
        .collect();
    Routing { table, info }
}

#[cfg(test)]
#[cfg(not(feature = "graphql"))]
mod without_graphql {
    use crate::{Guard, Policy};

    // Run by CI as `cargo test -p zt-core --lib without_graphql` (the workspace's tests
    // build zt-core with the feature on).
    #[test]
    fn a_graphql_endpoint_is_refused_by_a_build_without_the_graphql_feature() {
        let policy = Policy::from_toml_str(
            "[[graphql]]\npath = \"/graphql\"\nschema_file = \"examples/orders.graphql\"\n",
        )
        .expect("the section parses in every build");
        let Err(error) = Guard::new(policy) else { panic!("a build without GraphQL guarded an endpoint") };
        let message = error.to_string();
        assert!(message.contains("graphql[0]"), "{message}");
        assert!(message.contains("`graphql` feature"), "{message}");
    }
}
