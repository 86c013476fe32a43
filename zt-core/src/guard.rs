//! The Guard: one decision engine for every framework.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Span;

use crate::cert::CertificateIdentity;
use crate::contract::{Contract, ContractOptions, ContractRequest, Lookup, ViolationKind, Violations};
use crate::denial::{Denial, DenialResponse, Reason};
use crate::error::PolicyError;
use crate::graphql::{GraphqlDenial, GraphqlRequestBody, GraphqlSchema, OperationInfo};
use crate::identity::AuthMethod;
use crate::identity::Identity;
use crate::keys::{KeyFetcher, ReqwestFetcher};
use crate::limit::{LimitCheck, LimitKey, Limiter, Lockout, PendingLimit, RateDecision};
use crate::observe::{Decision as ObserveDecision, HeaderFacts, Hint, HintRequest, Observer};
use crate::observed::{LimiterSink, ObservationContext, Observed};
use crate::policy::{ContractConfig, ResponseValidation};
use crate::response::{ResponseAction, ResponseCheck};

/// Responses larger than this are not validated (passed on, logged).
const RESPONSE_CHECK_LIMIT: usize = 1 << 20;
use crate::policy::{Mode, Policy};
use crate::request::{PeerCertificates, RequestView};
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
    zones: crate::zones::Zones,
    /// Parsed client certificates by DER: one parse per certificate, not per request.
    certificates: quick_cache::sync::Cache<Vec<u8>, Arc<CertificateIdentity>>,
    contract: Option<Arc<Contract>>,
    contract_config: ContractConfig,
    limiter: Option<Limiter>,
    observer: Option<Observer>,
    /// GraphQL endpoints by route template.
    graphql: std::collections::HashMap<String, Arc<GraphqlSchema>>,
}

/// Most parsed client certificates kept (a connection's certificate is parsed once).
const CERTIFICATE_CACHE: usize = 1024;

/// Options for [`Guard::builder`].
pub struct GuardBuilder {
    policy: Policy,
    fetcher: Option<Arc<dyn KeyFetcher>>,
    contract: Option<Contract>,
    challenge_hook: Option<crate::observe::ChallengeHook>,
    graphql: Vec<(String, GraphqlSchema)>,
}

impl GuardBuilder {
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
    pub fn graphql(mut self, path: impl Into<String>, schema: GraphqlSchema) -> Self {
        self.graphql.push((path.into(), schema));
        self
    }

    /// The response to a `challenge` action of the observer (e.g. a bot challenge page);
    /// `None` declines (the observer then blocks).
    pub fn challenge_hook(mut self, hook: crate::observe::ChallengeHook) -> Self {
        self.challenge_hook = Some(hook);
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
        let graphql = graphql_endpoints(&policy, self.graphql)?;
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
        let routes = policy_routes.compile()?;
        let zones = crate::zones::Zones::compile(&policy.zones, &route_zones, &policy.bindings)?;
        let certificates = quick_cache::sync::Cache::new(CERTIFICATE_CACHE);
        let limiter = match &policy.limits {
            Some(config) => Some(Limiter::new(config)?),
            None => None,
        };
        let observer = match &policy.observe {
            Some(config) => {
                let mut config = config.clone();
                config.mode = policy.mode;
                let mut builder = Observer::builder(config);
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
        Ok(Guard {
            shared: Arc::new(Shared {
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
            }),
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
    /// When the request carries a body: read it (at most `limit` bytes) and pass it to
    /// [`Guard::check_body`] before forwarding.
    pub body: Option<BodyCheck>,
    /// When path normalization is enabled and rewrote the path: forward this path instead,
    /// so the application sees exactly the path that was checked.
    pub rewritten_path: Option<String>,
    /// When response validation applies: read the response body (at most `limit` bytes) and
    /// pass it to [`Guard::check_response`] before sending it.
    pub response: Option<ResponseCheck>,
    /// Headers to add to the forwarded response (e.g. `RateLimit`, `RateLimit-Policy`).
    pub response_headers: Vec<(&'static str, String)>,
    /// When monitoring is on: call [`Observed::finish`] once the response is known.
    pub observed: Option<Observed>,
    /// The reason of a denial, enforced or (report-only mode) not.
    denial_reason: Option<Reason>,
    /// The GraphQL operation key (`/graphql query Name`) for the observer, once known.
    operation: Option<String>,
}

/// The second phase of a request that carries a body.
#[derive(Debug, Clone)]
pub struct BodyCheck {
    /// The most bytes to read; more is a 413.
    pub limit: usize,
    /// The contract operation and its path parameters, when a contract applies.
    operation: Option<(usize, Vec<(String, String)>)>,
    /// The GraphQL endpoint's schema and the verified caller, when the route is one.
    graphql: Option<(Arc<GraphqlSchema>, Option<Identity>)>,
}

/// Why reading a body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The body was longer than [`BodyCheck::limit`].
    TooLarge,
    /// The body could not be read (client went away, framing error).
    Unreadable,
}

/// The result of [`Guard::check`]: decided at once (the common case: no allocation, no
/// future), or waiting for I/O (an issuer's keys).
pub enum Check {
    /// Decided.
    Ready(Verdict),
    /// Waiting: await it, then call [`Guard::resume`] with the same request.
    Pending(PendingCheck),
}

/// Waits for what a decision needs (a key fetch, a shared rate-limit store), then yields a
/// [`Resume`].
pub struct PendingCheck {
    wait: Pin<Box<dyn Future<Output = Carried> + Send>>,
    resume: Option<Resume>,
}

/// Carries a pending decision's span, request id and what was already decided (rate-limit
/// decisions are never taken twice) to [`Guard::resume`].
#[derive(Debug)]
pub struct Resume {
    span: Span,
    request_id: RequestId,
    carried: Carried,
}

/// Decisions already taken for a request, so that resuming does not count it twice.
#[derive(Debug, Clone, Default)]
struct Carried {
    /// `Some(decision)` once the per-address check ran (`Some(None)`: no quota applied).
    address: Option<Option<RateDecision>>,
    identity: Option<Option<RateDecision>>,
}

impl Future for PendingCheck {
    type Output = Resume;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resume> {
        match self.wait.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(carried) => match self.resume.take() {
                Some(mut resume) => {
                    resume.carried = carried;
                    Poll::Ready(resume)
                }
                // Polled again after completion: never resolves twice.
                None => Poll::Pending,
            },
        }
    }
}

/// The outcome of one rate-limit stage inside `run`.
enum Limited {
    Pass(Option<RateDecision>),
    Deny(Denial),
    Wait(PendingLimit),
}

fn limit_stage(check: LimitCheck) -> Limited {
    match check {
        LimitCheck::Unlimited => Limited::Pass(None),
        LimitCheck::Ready(decision) => judge(Some(decision)),
        LimitCheck::Pending(pending) => Limited::Wait(pending),
    }
}

fn judge(decision: Option<RateDecision>) -> Limited {
    match decision {
        Some(d) if d.unavailable => {
            let mut denial = Denial::new(Reason::LimiterUnavailable);
            denial.headers = d.headers();
            Limited::Deny(denial)
        }
        Some(d) if !d.allowed => {
            let mut denial = Denial::new(Reason::RateLimited);
            denial.headers = d.headers();
            Limited::Deny(denial)
        }
        other => Limited::Pass(other),
    }
}

/// Framing facts from the headers, decided after authentication.
#[derive(Debug, Clone, Copy)]
enum Framing {
    NoBody,
    Body { declared: Option<u64> },
    Invalid,
}

/// True when the body is declared `application/json` (parameters such as `charset` allowed).
fn is_json(view: &RequestView<'_>) -> bool {
    let Some(value) = view.headers.nth("content-type", 0) else { return false };
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(b"application/json")
        && view.headers.nth("content-type", 1).is_none()
}

/// The GraphQL endpoints of a policy (SDL files) and of the builder (compiled in code).
fn graphql_endpoints(
    policy: &Policy,
    in_code: Vec<(String, GraphqlSchema)>,
) -> Result<std::collections::HashMap<String, Arc<GraphqlSchema>>, PolicyError> {
    let mut endpoints = std::collections::HashMap::new();
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
        if endpoint.schema_file.is_empty() {
            return Err(PolicyError::invalid(format!("{at}.schema_file"), "name the SDL schema file"));
        }
        let sdl = std::fs::read_to_string(&endpoint.schema_file).map_err(|e| {
            PolicyError::invalid(format!("{at}.schema_file"), format!("{}: {e}", endpoint.schema_file))
        })?;
        let schema = GraphqlSchema::from_sdl(&sdl, endpoint.options.clone())
            .map_err(|e| PolicyError::invalid(format!("{at}.schema_file"), e.to_string()))?;
        endpoints.insert(endpoint.path.clone(), Arc::new(schema));
    }
    Ok(endpoints)
}

fn framing(view: &RequestView<'_>) -> Framing {
    let mut declared: Option<u64> = None;
    let mut index = 0;
    while let Some(value) = view.headers.nth("content-length", index) {
        index += 1;
        let Some(n) = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()) else {
            return Framing::Invalid;
        };
        if declared.is_some_and(|d| d != n) {
            return Framing::Invalid;
        }
        declared = Some(n);
    }
    let chunked = view.headers.nth("transfer-encoding", 0).is_some();
    if chunked && declared.is_some() {
        // Both framings at once is the request-smuggling shape (RFC 9112 s.6.3).
        return Framing::Invalid;
    }
    match declared {
        Some(0) => Framing::NoBody,
        Some(n) => Framing::Body { declared: Some(n) },
        None if chunked => Framing::Body { declared: None },
        None => Framing::NoBody,
    }
}

/// Method override in any form: never honoured, always refused.
fn has_method_override(view: &RequestView<'_>) -> bool {
    ["x-http-method-override", "x-method-override", "x-http-method"]
        .iter()
        .any(|h| view.headers.nth(h, 0).is_some())
        || view.query.is_some_and(|q| q.split('&').any(|p| p == "_method" || p.starts_with("_method=")))
}

impl Guard {
    /// Validates and compiles `policy` with the default key fetcher.
    pub fn new(policy: Policy) -> Result<Guard, PolicyError> {
        Self::builder(policy).build()
    }

    /// Starts a guard with options (e.g. a custom key fetcher).
    pub fn builder(policy: Policy) -> GuardBuilder {
        GuardBuilder { policy, fetcher: None, contract: None, challenge_hook: None, graphql: Vec::new() }
    }

    /// Loads a TOML or YAML policy file and builds the guard.
    pub fn from_policy_file(path: impl AsRef<std::path::Path>) -> Result<Guard, PolicyError> {
        let path = path.as_ref();
        Self::new(Policy::from_file(path)?).map_err(|e| e.locate_in(path))
    }

    /// A guard that also enforces the routes registered in code (merged with the policy's;
    /// a conflicting requirement for the same route is an error).
    pub fn with_routes(&self, routes: &RouteTable) -> Result<Guard, PolicyError> {
        let mut merged = self.shared.policy_routes.clone();
        if let Some(contract) = &self.shared.contract
            && !self.shared.contract_config.allow_undeclared_routes
        {
            for (method, template, _) in routes.entries() {
                // A GraphQL endpoint's contract is its schema.
                let declared = self.shared.graphql.contains_key(template)
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
        if let Some(observer) = &self.shared.observer {
            for (method, template, _) in merged.entries() {
                observer.inventory().declare(method, template);
            }
            if let Some(contract) = &self.shared.contract {
                for op in contract.operations().iter().filter(|op| op.deprecated) {
                    observer.inventory().deprecate(&op.method, &op.template);
                }
            }
        }
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

    /// Decides on a request. Returns at once unless an issuer's keys must be fetched; then
    /// await the [`PendingCheck`] and call [`Guard::resume`] with the same request.
    pub fn check(&self, view: &RequestView<'_>) -> Check {
        let request_id = RequestId::generate();
        let span = telemetry::request_span(view, &request_id, self.shared.policy.mode.as_str());
        let mut check = self.run(view, span, request_id, true, Carried::default());
        if let Check::Ready(verdict) = &mut check {
            self.attach_observation(view, verdict);
        }
        check
    }

    /// The observer (monitoring, detection, inventory, runtime controls), when configured.
    pub fn observer(&self) -> Option<&Observer> {
        self.shared.observer.as_ref()
    }

    fn attach_observation(&self, view: &RequestView<'_>, verdict: &mut Verdict) {
        let Some(observer) = &self.shared.observer else { return };
        let client_ip = match &self.shared.limiter {
            Some(l) => l.client_address(view.peer_addr, view.headers),
            None => view.peer_addr.map(|a| a.ip()),
        };
        let identity = match &verdict.outcome {
            Outcome::Allow(identity) => identity.as_ref(),
            Outcome::Deny(_) => None,
        };
        let (decision, denied_status) = match (&verdict.outcome, verdict.denial_reason) {
            (Outcome::Deny(d), _) => (ObserveDecision::Deny, Some(d.reason.status())),
            (Outcome::Allow(_), Some(_)) => (ObserveDecision::WouldDeny, None),
            (Outcome::Allow(_), None) => (ObserveDecision::Allow, None),
        };
        // Only templated routes have object ids (the enumeration signal).
        let object_ids = match &verdict.route {
            Some(route) if route.contains('{') => {
                match crate::canonical::canonicalize(view.path, &self.shared.policy.paths) {
                    Ok(path) => self.routes.params(&path),
                    Err(_) => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        let user_agent = view.headers.nth("user-agent", 0);
        let (sample, endpoint) = match denied_status {
            None => observer.arrival(view.method, verdict.route.as_deref()),
            Some(_) => (None, None),
        };
        let context = ObservationContext {
            at: observer.now(),
            request_id: verdict.request_id,
            // The observer keeps the method past the request: static text when standard.
            method: crate::observe::inventory::standard_method(view.method)
                .map_or_else(|| std::borrow::Cow::Owned(view.method.to_string()), std::borrow::Cow::Borrowed),
            path: view.path.to_string(),
            route: verdict.route.clone(),
            operation: verdict.operation.clone(),
            client_ip,
            user_agent: user_agent.map(|ua| String::from_utf8_lossy(&ua[..ua.len().min(512)]).into_owned()),
            headers: HeaderFacts::of(view.headers),
            identity: identity.cloned(),
            auth_method: identity.map(|i| if i.has_auth_method(AuthMethod::Jwt) { "jwt" } else { "mtls" }),
            object_ids,
            decision,
            reason: verdict.denial_reason.map(Reason::slug),
            denied_status,
            request_bytes: 0,
            sample,
            endpoint,
        };
        verdict.observed = Some(Observed { guard: self.clone(), context: Box::new(context) });
    }

    /// Finishes a decision after its [`PendingCheck`] completed. Never waits again.
    pub fn resume(&self, view: &RequestView<'_>, resume: Resume) -> Verdict {
        let Resume { span, request_id, carried } = resume;
        match self.run(view, span.clone(), request_id, false, carried) {
            Check::Ready(mut verdict) => {
                self.attach_observation(view, &mut verdict);
                verdict
            }
            // `run` without fetching always decides; fail closed regardless.
            Check::Pending(_) => {
                self.finish(span, request_id, None, Decided::deny(Denial::new(Reason::KeysUnavailable)))
            }
        }
    }

    /// Checks and, when needed, waits and resumes: the whole decision in one call.
    pub async fn decide(&self, view: &RequestView<'_>) -> Verdict {
        match self.check(view) {
            Check::Ready(verdict) => verdict,
            Check::Pending(pending) => {
                let resume = pending.await;
                self.resume(view, resume)
            }
        }
    }

    fn run(
        &self,
        view: &RequestView<'_>,
        span: Span,
        request_id: RequestId,
        allow_fetch: bool,
        mut carried: Carried,
    ) -> Check {
        let policy = &self.shared.policy;
        let Ok(path) = crate::canonical::canonicalize(view.path, &policy.paths) else {
            let d = Decided::deny(Denial::new(Reason::InvalidPath));
            return Check::Ready(self.finish(span, request_id, None, d));
        };
        let route = match self.routes.find(view.method, &path) {
            Ok(route) => route,
            Err(denial) => return Check::Ready(self.finish(span, request_id, None, Decided::deny(denial))),
        };
        let rewritten_path = match &path {
            std::borrow::Cow::Owned(p) => Some(p.clone()),
            std::borrow::Cow::Borrowed(_) => None,
        };
        if !span.is_disabled() {
            span.record("http.route", &**route.template);
            span.record("zt.required_scopes", route.described);
        }
        let template = Some(route.template.clone());
        if has_method_override(view) {
            let d = Decided::deny(Denial::new(Reason::MethodOverride));
            return Check::Ready(self.finish(span, request_id, template, d));
        }
        let certificate = match view.peer_certificates.map(|chain| self.certificate(chain)) {
            None => None,
            Some(Ok(certificate)) => Some(certificate),
            Some(Err(())) => {
                let d = Decided::deny(Denial::new(Reason::InvalidClientCertificate));
                return Check::Ready(self.finish(span, request_id, template, d));
            }
        };
        // Abuse protection before any signature work: lockouts and the per-address ceiling.
        let limiter = self.shared.limiter.as_ref();
        let client_key = limiter.and_then(|l| l.client_key(view.peer_addr, view.headers));
        let client_ip = match limiter {
            Some(l) => l.client_address(view.peer_addr, view.headers),
            None => view.peer_addr.map(|a| a.ip()),
        };
        if let Some(observer) = &self.shared.observer
            && let Some(block) = observer.controls().is_blocked(None, client_ip)
        {
            let d = Decided::deny(blocked(&block, &request_id, observer));
            return Check::Ready(self.finish(span, request_id, template, d));
        }
        let credential = token::extract(view, &policy.tokens);
        let cached = match credential {
            Credential::Bearer(token) => self.shared.verifier.cached(token),
            _ => None,
        };
        let mut rate: Option<RateDecision> = None;
        if let (Some(limiter), Some(key)) = (limiter, client_key) {
            if let Some(remaining) = limiter.lockout().locked(LimitKey::Address(key)) {
                let d = Decided::deny(locked_out(remaining));
                return Check::Ready(self.finish(span, request_id, template, d));
            }
            // A token already in the verified cache costs no signature work: it skips the
            // anonymous ceiling (callers behind one NAT are not throttled as one).
            let known = cached.is_some();
            if !known {
                let stage = match carried.address.take() {
                    Some(decided) => judge(decided),
                    None => limit_stage(limiter.check_address(key, view.method, route.template)),
                };
                match stage {
                    Limited::Pass(decision) => {
                        carried.address = Some(decision.clone());
                        rate = decision;
                    }
                    Limited::Deny(denial) => {
                        return Check::Ready(self.finish(span, request_id, template, Decided::deny(denial)));
                    }
                    Limited::Wait(pending) => {
                        let wait = Box::pin(async move {
                            carried.address = Some(Some(pending.await));
                            carried
                        });
                        let resume = Resume { span, request_id, carried: Carried::default() };
                        return Check::Pending(PendingCheck { wait, resume: Some(resume) });
                    }
                }
            }
        }
        let decided = match credential {
            Credential::Malformed => Decided::deny(Denial::new(Reason::MalformedCredentials)),
            // Mutual TLS alone (service to service): the certificate is the identity.
            Credential::None if certificate.is_some() => {
                let identity = certificate.clone().map(Identity::from_certificate);
                self.authorize(identity.ok_or(Reason::MissingCredentials), route.requirement)
            }
            Credential::None if route.requirement.is_public() => Decided::allow(None),
            Credential::None => Decided::deny(Denial::new(Reason::MissingCredentials)),
            Credential::Bearer(token) => match self.shared.verifier.verify_with(token, cached, allow_fetch) {
                Step::Done(result) => {
                    let result = result.and_then(|identity| bind_certificate(identity, certificate.clone()));
                    let result = match (result, limiter) {
                        (Ok(identity), Some(limiter)) => self.subject_lockout(limiter, identity),
                        (Err(reason), Some(limiter)) => {
                            record_failure(limiter, client_key, reason, None);
                            Err(reason)
                        }
                        (result, None) => result,
                    };
                    self.authorize(result, route.requirement)
                }
                Step::Rejected(reason, subject) => {
                    if let Some(limiter) = limiter {
                        record_failure(limiter, client_key, reason, subject.as_deref());
                    }
                    Decided::deny(Denial::new(reason))
                }
                Step::Fetch(issuer) => {
                    let keys = self.clone();
                    let wait = Box::pin(async move {
                        if let Some(refresh) = keys.shared.verifier.issuers[issuer].keys.refresh() {
                            // A failed fetch keeps the last good set; `resume` then decides
                            // with what there is (and fails closed without any set).
                            let _ = refresh.await;
                        }
                        carried
                    });
                    let resume = Resume { span, request_id, carried: Carried::default() };
                    return Check::Pending(PendingCheck { wait, resume: Some(resume) });
                }
            },
        };
        if decided.denial.is_some() {
            return Check::Ready(self.finish(span, request_id, template, decided));
        }
        // Runtime controls and detection: blocks, challenges, revoked tokens.
        if let (Some(observer), Some(identity)) = (&self.shared.observer, &decided.identity) {
            let hint = observer.verdict_hint(&HintRequest {
                subject: identity.subject(),
                client_ip,
                // Reading a claim is a map lookup: only when some token is revoked.
                jti: match observer.controls().has_revocations() {
                    true => identity.claim("jti").and_then(serde_json::Value::as_str),
                    false => None,
                },
            });
            let denial = match hint {
                Hint::Proceed => None,
                Hint::Block(block) | Hint::Challenge(block) => Some(blocked(&block, &request_id, observer)),
                Hint::Revoked => Some(Denial::new(Reason::TokenRevoked)),
            };
            if let Some(denial) = denial {
                let d = Decided { identity: decided.identity, denial: Some(denial) };
                return Check::Ready(self.finish(span, request_id, template, d));
            }
        }
        // Segmentation: the route's trust zone, then ownership bindings.
        let zones = &self.shared.zones;
        if !zones.is_empty() || !zones.bindings.is_empty() {
            let zone = zones.zone_of(view.method, route.template).and_then(|zone| match zone {
                Some(zone) => zone.admit(decided.identity.as_ref(), client_ip, token::unix_now()),
                None => Ok(()),
            });
            let owned = zone.and_then(|()| {
                if zones.bindings.is_empty() {
                    return Ok(());
                }
                let params = self.routes.params(&path);
                zones.check_bindings(&params, decided.identity.as_ref()).inspect_err(|_| {
                    let _entered = span.enter();
                    tracing::event!(
                        target: "zt::security",
                        tracing::Level::WARN,
                        event.action = "zt.bola_attempt",
                        zt.request_id = request_id.as_str(),
                        http.route = &**route.template,
                        user.id = decided.identity.as_ref().and_then(Identity::subject).unwrap_or(""),
                        "object access outside the caller's ownership"
                    );
                })
            });
            if let Err(reason) = owned {
                let d = Decided { identity: decided.identity, denial: Some(Denial::new(reason)) };
                return Check::Ready(self.finish(span, request_id, template, d));
            }
        }
        // The caller's own quota: per identity, else per client address.
        if let Some(limiter) = limiter {
            let subject = decided.identity.as_ref().map(Identity::principal);
            let key = match (subject, client_key) {
                (Some(subject), _) => Some(LimitKey::Identity(subject)),
                (None, Some(addr)) => Some(LimitKey::Address(addr)),
                (None, None) => None,
            };
            if let Some(key) = key {
                let stage = match carried.identity.take() {
                    Some(decided) => judge(decided),
                    None => limit_stage(limiter.check_identity(key, view.method, route.template)),
                };
                match stage {
                    Limited::Pass(decision) => {
                        rate = match (rate, decision) {
                            (Some(a), Some(b)) => Some(a.tighter(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Limited::Deny(denial) => {
                        let d = Decided { identity: decided.identity, denial: Some(denial) };
                        return Check::Ready(self.finish(span, request_id, template, d));
                    }
                    Limited::Wait(pending) => {
                        let wait = Box::pin(async move {
                            carried.identity = Some(Some(pending.await));
                            carried
                        });
                        let resume = Resume { span, request_id, carried: Carried::default() };
                        return Check::Pending(PendingCheck { wait, resume: Some(resume) });
                    }
                }
            }
        }
        // Authenticated and authorized: now the cheap checks that need no body.
        let framing = framing(view);
        // Most guards serve no GraphQL endpoint: no lookup on their requests.
        let graphql = match self.shared.graphql.is_empty() {
            true => None,
            false => self.shared.graphql.get(&**route.template).cloned(),
        };
        let operation = match &graphql {
            // A GraphQL endpoint's contract is its schema.
            Some(_) => None,
            None => self.shared.contract.as_ref().and_then(|c| match c.lookup(view.method, &path) {
                Lookup::Found { op, path_params } => Some((op, path_params)),
                _ => None,
            }),
        };
        let limit = match (&operation, &self.shared.contract, &graphql) {
            (_, _, Some(schema)) => schema.config().max_request_bytes,
            (Some((op, _)), Some(c), _) => c.operation(*op).map_or(policy.max_body_bytes, |o| o.body_limit),
            _ => policy.max_body_bytes,
        };
        let mut graphql_operation = None;
        if let Some(schema) = &graphql {
            match self.graphql_without_body(schema, view, framing, decided.identity.as_ref(), &request_id) {
                Ok(Some(operations)) => {
                    graphql_operation =
                        self.record_operations(&span, &request_id, route.template, &operations);
                }
                Ok(None) => {}
                Err(denial) => {
                    let d = Decided { identity: decided.identity, denial: Some(denial) };
                    return Check::Ready(self.finish(span, request_id, template, d));
                }
            }
        }
        let response = match (&operation, self.shared.contract_config.responses) {
            (Some((op, _)), mode) if mode != ResponseValidation::Off => {
                Some(ResponseCheck { operation: *op, limit: RESPONSE_CHECK_LIMIT })
            }
            _ => None,
        };
        if let (Some((op, path_params)), Some(contract)) = (&operation, &self.shared.contract) {
            let checked = match framing {
                // 415 before reading a body that could never be accepted.
                Framing::Body { .. } => contract.check_media_type(*op, view.headers),
                // No body: parameters (and a required body's absence) are checked now.
                Framing::NoBody => contract.validate_request(
                    *op,
                    &ContractRequest { path_params, query: view.query, headers: view.headers, body: None },
                ),
                Framing::Invalid => Ok(()),
            };
            if let Err(violations) = checked {
                let d = Decided { identity: decided.identity, denial: Some(violation_denial(violations)) };
                return Check::Ready(self.finish(span, request_id, template, d));
            }
        }
        let body = match framing {
            Framing::NoBody => None,
            Framing::Invalid => {
                let d = Decided {
                    identity: decided.identity,
                    denial: Some(Denial::new(Reason::MalformedRequest)),
                };
                return Check::Ready(self.finish(span, request_id, template, d));
            }
            Framing::Body { declared: Some(n) } if n > limit as u64 => {
                // Early 413: Content-Length already says it is too large.
                let d = Decided {
                    identity: decided.identity,
                    denial: Some(Denial::new(Reason::PayloadTooLarge)),
                };
                return Check::Ready(self.finish(span, request_id, template, d));
            }
            Framing::Body { .. } => Some(BodyCheck {
                limit,
                operation,
                // A GET's GraphQL request was checked above; its body is not one.
                graphql: graphql
                    .filter(|_| graphql_operation.is_none())
                    .map(|schema| (schema, decided.identity.clone())),
            }),
        };
        let mut verdict = self.finish(span, request_id, template, decided);
        verdict.operation = graphql_operation;
        if matches!(verdict.outcome, Outcome::Allow(_)) {
            verdict.body = body;
            verdict.rewritten_path = rewritten_path;
            verdict.response = response;
            if let (Some(limiter), Some(decision)) = (limiter, &rate) {
                verdict.response_headers = limiter.response_headers(decision);
            }
        }
        Check::Ready(verdict)
    }

    /// The second phase for requests with a body: `body` is what was read (or why it could
    /// not be). Returns the denial to answer with, if any (never in report-only mode, where
    /// it is logged instead).
    pub fn check_body(
        &self,
        view: &RequestView<'_>,
        verdict: &mut Verdict,
        check: &BodyCheck,
        body: Result<&[u8], BodyError>,
    ) -> Option<Denial> {
        let denial = match body {
            Err(BodyError::TooLarge) => Denial::new(Reason::PayloadTooLarge),
            Err(BodyError::Unreadable) => Denial::new(Reason::MalformedRequest),
            Ok(bytes) if bytes.len() > check.limit => Denial::new(Reason::PayloadTooLarge),
            Ok(bytes) => match (&check.graphql, &check.operation, &self.shared.contract) {
                (Some((schema, identity)), _, _) => {
                    match schema.check(GraphqlRequestBody::Json(bytes), identity.as_ref()) {
                        Ok(operations) => {
                            let template = verdict.route.as_deref().unwrap_or("");
                            let key = self.record_operations(
                                &verdict.span,
                                &verdict.request_id,
                                template,
                                &operations,
                            );
                            if let Some(observed) = &mut verdict.observed {
                                observed.context.operation = key;
                            }
                            return None;
                        }
                        Err(denial) => self.graphql_denial(&denial, view, &verdict.request_id),
                    }
                }
                (None, Some((op, path_params)), Some(contract)) => {
                    let request = ContractRequest {
                        path_params,
                        query: view.query,
                        headers: view.headers,
                        body: Some(bytes),
                    };
                    match contract.validate_request(*op, &request) {
                        Ok(()) => return None,
                        Err(violations) => violation_denial(violations),
                    }
                }
                _ => return None,
            },
        };
        let caller = check.graphql.as_ref().and_then(|(_, identity)| identity.as_ref());
        self.log_denial(&verdict.span, &verdict.request_id, verdict.route.as_deref(), caller, &denial);
        let enforce = self.shared.policy.mode == Mode::Enforce;
        if let Some(observed) = &mut verdict.observed {
            // The observer learns of body-phase denials too (baselines, KPIs, detection).
            let context = &mut observed.context;
            context.reason = Some(denial.reason.slug());
            if enforce {
                context.decision = ObserveDecision::Deny;
                context.denied_status = Some(denial.reason.status());
            } else {
                context.decision = ObserveDecision::WouldDeny;
            }
        }
        enforce.then_some(denial)
    }

    /// What a GraphQL route can decide before any body is read: a GET's whole request (its
    /// query string; `Ok(Some)` carries its operations), the media type of a POST (415
    /// unless JSON), and a POST without a body. Everything else waits for the body phase.
    fn graphql_without_body(
        &self,
        schema: &GraphqlSchema,
        view: &RequestView<'_>,
        framing: Framing,
        caller: Option<&Identity>,
        request_id: &RequestId,
    ) -> Result<Option<Vec<OperationInfo>>, Denial> {
        match (view.method, framing) {
            ("GET" | "HEAD", _) => {
                let request = GraphqlRequestBody::Get { query: view.query.unwrap_or("") };
                match schema.check(request, caller) {
                    Ok(operations) => Ok(Some(operations)),
                    Err(denial) => Err(self.graphql_denial(&denial, view, request_id)),
                }
            }
            (_, Framing::Body { .. }) if !is_json(view) => Err(Denial::new(Reason::UnsupportedMediaType)),
            // A POST without a body carries no GraphQL request (the check says so).
            (_, Framing::NoBody) => match schema.check(GraphqlRequestBody::Json(b""), None) {
                Ok(_) => Err(Denial::new(Reason::MalformedRequest)),
                Err(denial) => Err(self.graphql_denial(&denial, view, request_id)),
            },
            _ => Ok(None),
        }
    }

    /// Records accepted GraphQL operations on the span (name, type, document hash), logs a
    /// report-only safelist miss, and returns the observer's operation key.
    fn record_operations(
        &self,
        span: &Span,
        request_id: &RequestId,
        template: &str,
        operations: &[OperationInfo],
    ) -> Option<String> {
        let first = operations.first()?;
        if !span.is_disabled() {
            let names: Vec<&str> = operations.iter().map(|o| o.name.as_deref().unwrap_or("")).collect();
            span.record("graphql.operation.name", names.join(",").as_str());
            span.record("graphql.operation.type", first.kind.as_str());
            span.record("zt.graphql.document_hash", first.hash.as_str());
            span.record("zt.graphql.cost", operations.iter().map(|o| o.cost).sum::<u64>());
        }
        for operation in operations.iter().filter(|o| o.safelisted == Some(false)) {
            let _entered = span.enter();
            tracing::event!(
                target: "zt::decision",
                tracing::Level::WARN,
                zt.request_id = request_id.as_str(),
                zt.decision = "would_deny",
                zt.reason = "graphql-persisted-query-not-allowed",
                http.route = template,
                graphql.operation.name = operation.name.as_deref().unwrap_or(""),
                zt.graphql.document_hash = operation.hash.as_str(),
                "GraphQL operation outside the safelist (report-only safelisting)"
            );
        }
        // Detection and inventory key on the operation: named operations by name, anonymous
        // ones by a prefix of their document hash. Bounded by the inventory's limits.
        let label = match &first.name {
            Some(name) => name.clone(),
            None => format!("#{}", &first.hash[..first.hash.len().min(12)]),
        };
        Some(format!("{template} {} {label}", first.kind.as_str()))
    }

    /// A GraphQL denial as a zt denial: GraphQL-shaped body (`application/graphql-response+json`
    /// when the client accepts it), the standard status, challenge and `Allow` headers.
    fn graphql_denial(
        &self,
        denial: &GraphqlDenial,
        view: &RequestView<'_>,
        request_id: &RequestId,
    ) -> Denial {
        let mut zt_denial = Denial::new(Reason::Graphql(denial.reason));
        let mut rendered = zt_denial.render(&self.shared.realm, request_id.as_str());
        let media = crate::graphql::response_media_type(view.headers.nth("accept", 0));
        for (name, value) in &mut rendered.headers {
            if *name == "content-type" {
                *value = media.to_string();
            }
        }
        if let Some(allow) = denial.allow() {
            rendered.headers.push(("allow", allow.to_string()));
        }
        rendered.body = denial.body(request_id.as_str());
        zt_denial.rendered = Some(Box::new(rendered));
        zt_denial
    }

    /// Checks a response body against the contract (see [`crate::response`]). `body` is
    /// `None` when it was larger than [`ResponseCheck::limit`] (passed on, logged).
    pub fn check_response(
        &self,
        verdict: &Verdict,
        check: &ResponseCheck,
        status: u16,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> ResponseAction {
        let Some(contract) = &self.shared.contract else { return ResponseAction::Pass };
        let _entered = verdict.span.enter();
        let Some(body) = body else {
            tracing::event!(target: "zt::security", tracing::Level::WARN, zt.request_id = verdict.request_id.as_str(), "response too large to validate; passed on");
            return ResponseAction::Pass;
        };
        let report = contract.validate_response(check.operation, status, content_type, body);
        if report.is_clean() {
            return ResponseAction::Pass;
        }
        let undeclared: Vec<&str> = report.undeclared_fields.iter().map(String::as_str).collect();
        let violations: Vec<String> =
            report.violations.iter().map(|v| format!("{} {}", v.pointer, v.keyword)).collect();
        let mode = self.shared.contract_config.responses;
        tracing::event!(
            target: "zt::security",
            tracing::Level::WARN,
            event.action = "zt.data_exposure",
            zt.request_id = verdict.request_id.as_str(),
            http.route = verdict.route.as_deref().unwrap_or(""),
            http.response.status_code = status,
            zt.undeclared_fields = ?undeclared,
            zt.response_violations = ?violations,
            zt.response_action = format!("{mode:?}").to_lowercase(),
            "response does not match the contract"
        );
        if self.shared.policy.mode == Mode::Report {
            return ResponseAction::Pass;
        }
        match mode {
            ResponseValidation::Off | ResponseValidation::Report => ResponseAction::Pass,
            ResponseValidation::Block => ResponseAction::Block,
            ResponseValidation::Strip if report.violations.is_empty() && !report.truncated => {
                match crate::response::strip(body, &report.undeclared_fields) {
                    Some(stripped) => ResponseAction::Replace(stripped),
                    // Cannot strip safely (unnamed fields, not JSON): fail closed.
                    None => ResponseAction::Block,
                }
            }
            // Schema violations beyond extra fields cannot be stripped away.
            ResponseValidation::Strip => ResponseAction::Block,
        }
    }

    /// The 502 problem sent instead of a blocked response.
    pub fn blocked_response(&self, verdict: &Verdict) -> DenialResponse {
        Denial::new(Reason::ResponseContractViolation).render(&self.shared.realm, verdict.request_id.as_str())
    }

    /// Refuses a locked-out subject; a verified token resets the subject's failure count.
    fn subject_lockout(&self, limiter: &Limiter, identity: Identity) -> Result<Identity, Reason> {
        let subject = identity.principal();
        if limiter.lockout().locked(LimitKey::Identity(subject)).is_some() {
            return Err(Reason::LockedOut);
        }
        limiter.lockout().record_success(LimitKey::Identity(subject));
        Ok(identity)
    }

    /// The parsed identity of a verified client certificate (cached by DER).
    fn certificate(&self, chain: &PeerCertificates) -> Result<Arc<CertificateIdentity>, ()> {
        let leaf = chain.leaf().ok_or(())?;
        if let Some(found) = self.shared.certificates.get(leaf) {
            return Ok(found);
        }
        let parsed = Arc::new(CertificateIdentity::from_der(leaf).map_err(|_| ())?);
        self.shared.certificates.insert(leaf.to_vec(), parsed.clone());
        Ok(parsed)
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
        let denial_reason = denial.as_ref().map(|d| d.reason);
        if !span.is_disabled() {
            record_identity(&span, identity.as_ref());
        }
        let outcome = match denial {
            None => {
                span.record("zt.decision", "allow");
                Outcome::Allow(identity)
            }
            Some(denial) => {
                self.log_denial(&span, &request_id, route.as_deref(), identity.as_ref(), &denial);
                if report { Outcome::Allow(identity) } else { Outcome::Deny(denial) }
            }
        };
        Verdict {
            outcome,
            span,
            request_id,
            route,
            body: None,
            rewritten_path: None,
            response: None,
            response_headers: Vec::new(),
            observed: None,
            denial_reason,
            operation: None,
        }
    }

    /// Records a denial on the span and emits the `zt::decision` WARN event.
    fn log_denial(
        &self,
        span: &Span,
        request_id: &RequestId,
        route: Option<&str>,
        identity: Option<&Identity>,
        denial: &Denial,
    ) {
        let decision = if self.shared.policy.mode == Mode::Report { "would_deny" } else { "deny" };
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
            http.route = route.unwrap_or(""),
            http.response.status_code = denial.reason.status(),
            enduser.id = identity.and_then(Identity::subject).unwrap_or(""),
            zt.client_id = identity.and_then(Identity::client_id).unwrap_or(""),
            "request denied"
        );
    }
}

/// The denial for a block or challenge from the observer's controls.
fn blocked(block: &crate::observe::Block, request_id: &RequestId, observer: &Observer) -> Denial {
    let mut denial = Denial::new(Reason::Blocked);
    denial.rendered = Some(Box::new(block.response(request_id.as_str(), observer.now())));
    denial
}

/// Counts a failed authentication against the client address and, when the signature
/// verified (so the subject is not forged), against the subject.
fn record_failure(
    limiter: &Limiter,
    address: Option<std::net::IpAddr>,
    reason: Reason,
    subject: Option<&str>,
) {
    if !reason.is_authentication_failure() {
        return;
    }
    if let Some(address) = address {
        limiter.lockout().record_failure(LimitKey::Address(address));
    }
    if let Some(subject) = subject
        && Lockout::counts_subject(reason)
    {
        limiter.lockout().record_failure(LimitKey::Identity(subject));
    }
}

fn locked_out(remaining: std::time::Duration) -> Denial {
    let mut denial = Denial::new(Reason::LockedOut);
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    denial.headers.push(("retry-after", secs.max(1).to_string()));
    denial
}

/// The denial for contract violations: the reason by kind, the violations listed.
fn violation_denial(violations: Violations) -> Denial {
    let reason = match violations.kind {
        ViolationKind::Parameters => Reason::InvalidParameters,
        ViolationKind::Body => Reason::InvalidBody,
        ViolationKind::UnsupportedMediaType => Reason::UnsupportedMediaType,
        ViolationKind::MethodOverride => Reason::MethodOverride,
    };
    let mut denial = Denial::new(reason);
    denial.violations = violations
        .items
        .into_iter()
        .map(|v| crate::denial::Violation { pointer: v.pointer, keyword: v.keyword })
        .collect();
    denial.violations_truncated = violations.truncated;
    denial
}

/// Attaches the connection's certificate and enforces a token's certificate binding
/// (RFC 8705): a bound token is only valid with the certificate it names.
fn bind_certificate(
    identity: Identity,
    certificate: Option<Arc<CertificateIdentity>>,
) -> Result<Identity, Reason> {
    let identity = match certificate {
        Some(certificate) => identity.with_certificate(certificate),
        None => identity,
    };
    if identity.certificate_binding().is_some() && !identity.is_certificate_bound() {
        return Err(Reason::CertificateBindingMismatch);
    }
    Ok(identity)
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
