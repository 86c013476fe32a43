//! The Guard's compiled state, shared by the stages, the lifecycle types and the builder.
//!
//! This is a leaf of the `guard` module: it imports no sibling, so the stages (which read
//! it), the lifecycle types (which finish a request with it) and `guard/mod.rs` (which
//! runs the stages) never import each other in a circle.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::Span;

use super::graphql::EndpointSchema;
use crate::Reply;
use crate::cert::CertificateIdentity;
use crate::contract::Contract;
use crate::denial::{Denial, Reason};
use crate::identity::Identity;
use crate::limit::Limiter;
use crate::observe::Observer;
use crate::policy::{ContractConfig, Mode, Policy};
use crate::routes::{CompiledRoutes, RouteTable};
use crate::telemetry::RequestId;
use crate::token::Verifier;

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
    pub(crate) shared: Arc<Shared>,
    pub(crate) routing: Arc<Routing>,
}

/// Everything compiled from the policy that does not depend on the routes.
pub(crate) struct Shared {
    pub(crate) verifier: Verifier,
    pub(crate) policy: Policy,
    pub(crate) realm: String,
    pub(crate) policy_routes: RouteTable,
    pub(crate) zones: crate::zones::Zones,
    /// Parsed client certificates by DER: one parse per certificate, not per request.
    pub(crate) certificates: quick_cache::sync::Cache<Vec<u8>, Arc<CertificateIdentity>>,
    pub(crate) contract: Option<Arc<Contract>>,
    pub(crate) contract_config: ContractConfig,
    pub(crate) limiter: Option<Limiter>,
    pub(crate) observer: Option<Observer>,
    /// GraphQL endpoints by route template.
    pub(crate) graphql: HashMap<String, Arc<EndpointSchema>>,
    /// The store shared with the other replicas, when the policy has `[fleet]`.
    #[cfg(feature = "redis")]
    pub(crate) fleet: Option<crate::fleet::Fleet>,
    /// DPoP proofs, when the policy accepts the DPoP scheme.
    pub(crate) dpop: Option<crate::dpop::DpopVerifier>,
    /// With a `[resource]`: the URL of its RFC 9728 metadata, named in every 401 challenge.
    pub(crate) resource_metadata_url: Option<String>,
    /// The application's hook for denial bodies (`GuardBuilder::denial_renderer`), if any.
    pub(crate) renderer: Option<Arc<dyn crate::denial::DenialRenderer>>,
}

/// The route table and what each route's stages need, resolved once when the routes are
/// known (not per request): its contract operation, trust zone, GraphQL schema, body limit.
pub(crate) struct Routing {
    pub(crate) table: CompiledRoutes,
    /// Indexed by [`crate::routes::RouteMatch::index`].
    pub(crate) info: Vec<RouteInfo>,
}

/// Per-route facts of the compiled policy.
pub(crate) struct RouteInfo {
    /// The contract operation declared for exactly this method and template, if any.
    pub(crate) operation: Option<usize>,
    /// The route's trust zone (index into the zones), or the denial when zones are
    /// configured and the route has none and there is no default zone.
    pub(crate) zone: Result<Option<usize>, crate::denial::Reason>,
    /// The GraphQL schema when the route is a GraphQL endpoint.
    pub(crate) graphql: Option<Arc<EndpointSchema>>,
    /// The most body bytes a request to this route may carry.
    pub(crate) body_limit: usize,
    /// The endpoint authenticates its caller itself: no credential is read.
    pub(crate) own_authentication: bool,
}

impl Shared {
    /// Whether a denial on this route is enforced: always in enforce mode, and on
    /// control-plane routes in report-only mode too.
    pub(crate) fn enforces(&self, always: bool) -> bool {
        always || self.policy.mode == Mode::Enforce
    }

    /// Renders a denial as status, headers and problem+json body.
    pub(crate) fn render(&self, denial: &Denial, request_id: &RequestId) -> Reply {
        let mut reply = denial.render(&self.realm, request_id.as_str());
        // The application's body shape, if it has one; status and headers stay zt's.
        if let Some(renderer) = &self.renderer {
            crate::denial::apply_renderer(renderer.as_ref(), denial, request_id.as_str(), &mut reply);
        }
        if let Some(dpop) = &self.dpop
            && denial.rendered.is_none()
            && denial.reason.challenges()
            && denial.reason.status() == 401
        {
            // The DPoP scheme is offered beside Bearer (RFC 9449 s.7.1), with the error when
            // the proof was what failed.
            let mut challenge = format!("DPoP algs=\"{}\"", dpop.algorithm_names());
            if let Reason::Dpop(error) = denial.reason {
                challenge.push_str(&format!(
                    ", error=\"{}\", error_description=\"{}\"",
                    error.challenge_error(),
                    denial.reason.detail()
                ));
                if error.challenge_error() == "use_dpop_nonce" {
                    reply.headers.push(("dpop-nonce", dpop.nonce(crate::token::unix_now())));
                }
            }
            reply.headers.push(("www-authenticate", challenge));
        }
        if let Some(url) = &self.resource_metadata_url
            && denial.rendered.is_none()
            && denial.reason.status() == 401
        {
            // RFC 9728 s.5.1: every challenge names the metadata (validated at start-up: no
            // quote or control character can break out of the parameter).
            for (name, value) in reply.headers.iter_mut() {
                if *name == "www-authenticate" {
                    value.push_str(&format!(", resource_metadata=\"{url}\""));
                }
            }
        }
        reply
    }

    /// Records a denial on the span and emits the `zt::decision` WARN event.
    pub(crate) fn log_denial(
        &self,
        span: &Span,
        request_id: &RequestId,
        route: Option<&str>,
        identity: Option<&Identity>,
        denial: &Denial,
        enforced: bool,
    ) {
        let decision = if enforced { "deny" } else { "would_deny" };
        let trace = request_id.trace_id();
        let reason = denial.reason.slug();
        span.record("zt.decision", decision);
        span.record("zt.reason", reason);
        let _entered = span.enter();
        tracing::event!(
            target: "zt::decision",
            tracing::Level::WARN,
            zt.request_id = request_id.as_str(),
            trace_id = trace.as_ref().map(crate::telemetry::TraceId::as_str),
            zt.decision = decision,
            zt.reason = reason,
            zt.mode = self.policy.mode.as_str(),
            http.route = route.unwrap_or(""),
            http.response.status_code = denial.reason.status(),
            enduser.id = identity.map_or("", Identity::principal),
            zt.client_id = identity.and_then(Identity::client_id).unwrap_or(""),
            "request denied"
        );
    }
}

/// Records who the caller is on the request span, once, when authentication decided it.
pub(crate) fn record_identity(span: &Span, identity: Option<&Identity>) {
    if span.is_disabled() {
        return;
    }
    match identity {
        Some(id) => {
            let method = id.auth_method_name();
            span.record("zt.auth_method", method);
            span.record("enduser.id", id.principal());
            if let Some(client) = id.client_id() {
                span.record("zt.client_id", client);
            }
        }
        None => {
            span.record("zt.auth_method", "none");
        }
    }
}
