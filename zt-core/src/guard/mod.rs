//! The Guard: one decision engine for every framework.
//!
//! A request is decided by the [stages](stage) in their fixed order over [`Facts`]
//! computed once; a stage that must wait for I/O suspends the decision, which resumes at
//! that stage (any number of times). The decision, the body phase and the response phase
//! are the [lifecycle] types, which record and observe each request exactly once.

mod build;
mod engine;
mod facts;
mod graphql;
mod lifecycle;
mod observation;
mod stage;

use std::sync::Arc;

pub use build::GuardBuilder;
pub use engine::Guard;
pub use lifecycle::{
    Admission, Admitted, BodyError, Check, Decision, Pending, ReadResponse, Rejected, Responding,
    ResponseBody, ResponseHeaders, ResponsePlan, Resume,
};

use self::engine::record_identity;
use self::facts::{Facts, Flow};
use self::lifecycle::{BodyPhase, Suspended};
use self::observation::Observation;
use crate::Reply;
use crate::denial::{Denial, Reason};
use crate::error::PolicyError;
use crate::observe::{Decision as ObserveDecision, Observer};
use crate::policy::{Mode, Policy};
use crate::request::RequestView;
use crate::routes::RouteTable;
use crate::telemetry::{self, RequestId};

impl Guard {
    /// Validates and compiles `policy` with the default key fetcher.
    pub fn new(policy: Policy) -> Result<Guard, PolicyError> {
        Self::builder(policy).build()
    }

    /// Starts a guard with options (e.g. a custom key fetcher).
    pub fn builder(policy: Policy) -> GuardBuilder {
        GuardBuilder::new(policy)
    }

    /// Loads a TOML or YAML policy file and builds the guard.
    pub fn from_policy_file(path: impl AsRef<std::path::Path>) -> Result<Guard, PolicyError> {
        let path = path.as_ref();
        Self::new(Policy::from_file(path)?).map_err(|e| e.locate_in(path))
    }

    /// A guard that also enforces the routes registered in code (merged with the policy's;
    /// a conflicting requirement for the same route is an error, and so is a `[limits.routes]`
    /// entry or a zone naming a route that is not served).
    pub fn with_routes(&self, routes: &RouteTable) -> Result<Guard, PolicyError> {
        build::with_routes(self, routes)
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

    /// Fetches every remote key set now (optional: otherwise the first request does) and,
    /// with a `[fleet]`, loads the shared controls (blocks, revocations, lockouts) before
    /// the first request, waiting at most `fleet.timeout` plus one `fleet.sync_interval`.
    /// Returns the issuers whose keys could not be fetched.
    pub async fn warm_up(&self) -> Vec<String> {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared.fleet
            && !fleet.synced(fleet.timeout() + fleet.sync_interval()).await
        {
            tracing::warn!(
                target: "zt::fleet",
                "the shared controls could not be loaded at start-up; serving with an empty copy until the store answers"
            );
        }
        self.fetch_keys_detailed().await.into_iter().map(|(issuer, _)| issuer).collect()
    }

    /// Whether the policy has a `[signals]` receiver (Shared Signals, see [`crate::signals`]).
    pub fn receives_signals(&self) -> bool {
        self.shared.policy.signals.is_some()
    }

    /// The policy's `[resource]` (this API as an OAuth protected resource), if any.
    pub fn resource(&self) -> Option<&crate::resource::ResourceConfig> {
        self.shared.policy.resource.as_ref()
    }

    /// The RFC 9728 protected-resource metadata (JSON) when the policy has a `[resource]`
    /// (see [`crate::resource`]): `scopes_supported` lists every scope the routes compiled
    /// into this guard require.
    pub fn resource_metadata(&self) -> Option<String> {
        let config = self.shared.policy.resource.as_ref()?;
        let table = &self.routing.table;
        let scopes =
            (0..table.len()).filter_map(|i| table.get(i)).flat_map(|route| match route.requirement {
                crate::scopes::Requirement::Public => [].iter(),
                crate::scopes::Requirement::Scopes(sets) => sets.iter(),
            });
        let scopes = scopes.flat_map(|set| set.iter().map(String::as_str));
        let algs = self
            .shared
            .dpop
            .as_ref()
            .map(|_| self.shared.policy.dpop.algorithms.iter().map(String::as_str).collect());
        Some(crate::resource::document(
            config,
            &self.shared.policy.issuers,
            scopes,
            algs,
            self.shared.policy.tokens.dangerous_allow_query_token,
        ))
    }

    /// The store shared with the other replicas, when the policy has a `[fleet]`.
    #[cfg(feature = "redis")]
    pub fn fleet(&self) -> Option<&crate::fleet::Fleet> {
        self.shared.fleet.as_ref()
    }

    /// Fetches every remote key set now and fails, naming the issuer and the cause, when
    /// one cannot be fetched: for services that must not start without their issuers' keys
    /// (the demos call it before serving).
    ///
    /// ```no_run
    /// # async fn f(guard: zt_core::Guard) -> Result<(), zt_core::PolicyError> {
    /// guard.fetch_keys().await?; // e.g. "issuers[0]: keys of https://issuer.example: ..."
    /// # Ok(()) }
    /// ```
    pub async fn fetch_keys(&self) -> Result<(), PolicyError> {
        match self.fetch_keys_detailed().await.into_iter().next() {
            None => Ok(()),
            Some((issuer, cause)) => {
                let index = self.shared.verifier.issuers.iter().position(|i| i.issuer == issuer).unwrap_or(0);
                Err(PolicyError::invalid(
                    format!("issuers[{index}]"),
                    format!("the keys of {issuer} could not be fetched at start-up: {cause}"),
                ))
            }
        }
    }

    async fn fetch_keys_detailed(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for issuer in &self.shared.verifier.issuers {
            if let Some(refresh) = issuer.keys.refresh()
                && let Err(cause) = refresh.await
            {
                failed.push((issuer.issuer.clone(), cause.to_string()));
            }
        }
        failed
    }

    /// Renders a denial as status, headers and problem+json body.
    pub fn render(&self, denial: &Denial, request_id: &RequestId) -> Reply {
        self.shared.render(denial, request_id)
    }

    /// The observer (monitoring, detection, inventory, runtime controls), when configured.
    pub fn observer(&self) -> Option<&Observer> {
        self.shared.observer.as_ref()
    }

    /// True when rate limits or anything keyed by the client address is configured: the
    /// adapter must then give the Guard the peer address (see the adapters' docs).
    pub fn needs_peer_address(&self) -> bool {
        self.shared.limiter.is_some()
    }

    /// Reports a failed authentication your application decided itself (a wrong password or
    /// one-time code on a route of yours) for the caller `principal` (see
    /// [`Identity::principal`](crate::Identity::principal)). It feeds the caller's lockout
    /// (`[limits.lockout]`): past the threshold, the Guard refuses the principal's valid
    /// tokens with 429 until the lockout ends. Returns how long the principal is now locked
    /// out, if it is. Does nothing without `[limits]`.
    ///
    /// zt never counts its own token failures against the caller a token names: anyone who
    /// holds an expired or foreign-audience token of a victim could replay it to lock the
    /// victim out. They count against the presenting address instead.
    ///
    /// ```
    /// # fn f(guard: &zt_core::Guard, who: &zt_core::Identity, otp_ok: bool) {
    /// if !otp_ok {
    ///     if let Some(wait) = guard.report_authentication_failure(who.principal()) {
    ///         eprintln!("locked out for {wait:?}");
    ///     }
    /// } else {
    ///     guard.report_authentication_success(who.principal());
    /// }
    /// # }
    /// ```
    pub fn report_authentication_failure(&self, principal: &str) -> Option<std::time::Duration> {
        let lockout = self.shared.limiter.as_ref()?.lockout();
        lockout.record_failure(crate::limit::LimitKey::Identity(principal))
    }

    /// Reports a successful authentication your application decided itself: resets the
    /// principal's failure count (see [`Guard::report_authentication_failure`]).
    pub fn report_authentication_success(&self, principal: &str) {
        if let Some(limiter) = &self.shared.limiter {
            limiter.lockout().record_success(crate::limit::LimitKey::Identity(principal));
        }
    }

    /// Decides on a request. Returns at once unless a stage must wait for I/O; then await
    /// the [`Pending`] and call [`Guard::resume`] with the same request.
    pub fn check(&self, view: &RequestView<'_>) -> Check {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared.fleet {
            // One atomic load once running: the shared controls follow the fleet from the
            // first request inside the application's runtime.
            fleet.start();
        }
        // Fresh, or the trusted incoming x-request-id; with the traceparent's trace id.
        let request_id = crate::correlation::request_id(view, &self.shared.policy.request_id);
        let span = telemetry::request_span(
            view,
            &request_id,
            self.shared.policy.mode.as_str(),
            self.shared.policy.span_level,
        );
        self.drive(view, Facts::new(request_id, span, view.path), 0)
    }

    /// Continues a decision after its [`Pending`] completed, at the stage that waited. It
    /// may wait again (a later stage may need I/O too).
    pub fn resume(&self, view: &RequestView<'_>, resume: Resume) -> Check {
        let Suspended { facts, stage } = *resume.0;
        self.drive(view, facts, stage)
    }

    /// Checks and waits (as often as the stages need): the whole decision in one call.
    pub async fn decide(&self, view: &RequestView<'_>) -> Decision {
        let mut check = self.check(view);
        loop {
            match check {
                Check::Ready(decision) => return decision,
                Check::Pending(pending) => {
                    let resume = pending.await;
                    check = self.resume(view, resume);
                }
            }
        }
    }

    /// Runs the stages from `from` on.
    fn drive<'a>(&self, view: &RequestView<'a>, mut facts: Facts<'a>, from: usize) -> Check {
        for (position, stage) in stage::ORDER.iter().enumerate().skip(from) {
            match stage::run(*stage, self, view, &mut facts) {
                Flow::Continue => {}
                Flow::Deny(denial) => return Check::Ready(self.denied(view, facts, denial)),
                Flow::Wait(wait) => {
                    let suspended = Box::new(Suspended { facts: facts.into_owned(), stage: position });
                    return Check::Pending(Pending { wait, suspended: Some(suspended) });
                }
            }
        }
        Check::Ready(Decision::Admitted(self.admit(view, facts, None)))
    }

    /// A stage denied: rejected, or (report-only mode, outside the control plane) logged
    /// and admitted as it is, without the later stages or a body phase.
    fn denied(&self, view: &RequestView<'_>, facts: Facts<'_>, denial: Denial) -> Decision {
        let route = facts.route.and_then(|i| self.routing.table.get(i));
        let always = route.as_ref().is_some_and(|r| r.always_enforce);
        let enforced = self.shared.enforces(always);
        let template = route.map(|r| r.template.clone());
        record_identity(&facts.span, facts.identity.as_ref());
        self.shared.log_denial(
            &facts.span,
            &facts.request_id,
            template.as_deref(),
            facts.identity.as_ref(),
            &denial,
            enforced,
        );
        if !enforced {
            let mut admitted = self.admit_with(view, facts, template, Some(denial.reason), false);
            admitted.body = None;
            admitted.response_check = None;
            admitted.rewritten_path = None;
            admitted.headers.clear();
            return Decision::Admitted(admitted);
        }
        let observation = self.shared.observer.as_ref().map(|observer| {
            let status = denial.reason.status();
            Observation::of(
                observer,
                view,
                &facts,
                template.as_ref(),
                ObserveDecision::Deny,
                Some(denial.reason.slug()),
                Some(status),
            )
        });
        let response = self.shared.render(&denial, &facts.request_id);
        Decision::Rejected(Rejected {
            shared: self.shared.clone(),
            span: facts.span,
            request_id: facts.request_id,
            route: template,
            denial,
            response: Some(response),
            observation,
        })
    }

    fn admit(&self, view: &RequestView<'_>, facts: Facts<'_>, would_deny: Option<Reason>) -> Admitted {
        let template = facts.route.and_then(|i| self.routing.table.get(i)).map(|r| r.template.clone());
        record_identity(&facts.span, facts.identity.as_ref());
        self.admit_with(view, facts, template, would_deny, true)
    }

    fn admit_with(
        &self,
        view: &RequestView<'_>,
        mut facts: Facts<'_>,
        route: Option<Arc<str>>,
        would_deny: Option<Reason>,
        allowed: bool,
    ) -> Admitted {
        let observation = self.shared.observer.as_ref().map(|observer| {
            let decision = if allowed { ObserveDecision::Allow } else { ObserveDecision::WouldDeny };
            let reason = would_deny.map(Reason::slug);
            Observation::of(observer, view, &facts, route.as_ref(), decision, reason, None)
        });
        let headers = match (&self.shared.limiter, &facts.rate) {
            (Some(limiter), Some(decision)) => limiter.response_headers(decision),
            _ => Vec::new(),
        };
        let body = facts.body_limit.map(|limit| BodyPhase {
            limit,
            operation: facts.operation.map(|op| {
                let params =
                    facts.operation_params.take().unwrap_or_else(|| std::mem::take(&mut facts.params));
                (op, params)
            }),
            graphql: facts.graphql_body.take(),
        });
        let rewritten_path = match facts.path {
            std::borrow::Cow::Owned(path) => Some(path),
            std::borrow::Cow::Borrowed(_) => None,
        };
        Admitted {
            shared: self.shared.clone(),
            request_id: facts.request_id,
            span: facts.span,
            identity: facts.identity,
            route,
            rewritten_path,
            body,
            response_check: facts.response_check,
            headers,
            observation,
            would_deny,
        }
    }
}
