//! One request's lifecycle, in core: decided ([`Decision`]), its body checked
//! ([`Admitted::body`]), forwarded ([`Admitted::forward`]), and its response finished
//! ([`Responding::head`], [`ReadResponse::finish`]).
//!
//! Each step consumes the previous one, so the status is recorded on the span, the headers
//! are added and the observer is told exactly once, here; the adapters only convert their
//! framework's types to and from these.
//!
//! Streams stay streams: a response is read only when response validation or the
//! observer's sampling applies to it **and** its body is bounded and declared (a known
//! length within the limit). Server-sent events (`text/event-stream`), bodies of unknown
//! length and upgrades (101) pass through untouched, whatever is configured.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Span;

use super::engine::Shared;
use super::facts::{Facts, Wait};
use super::graphql::EndpointSchema;
use super::graphql::{Charged, QuotaWait, charge_operations, graphql_denial, record_operations};
use super::observation::{Observation, ShortText};
use super::stage::violation_denial;
use crate::Reply;
use crate::contract::ContractRequest;
use crate::denial::{Denial, Reason};
use crate::graphql::GraphqlRequestBody;
use crate::identity::Identity;
use crate::policy::ResponseValidation;
use crate::request::RequestView;
use crate::response::ResponseCheck;
use crate::telemetry::RequestId;

/// The result of [`Guard::check`](crate::Guard::check): decided at once (the common case:
/// no future), or waiting for I/O (an issuer's keys, a shared rate-limit store).
// The decided variant is the common one and stays unboxed: boxing it would allocate on
// every request to save a move on the rare waiting one.
#[allow(clippy::large_enum_variant)]
pub enum Check {
    /// Decided.
    Ready(Decision),
    /// Waiting: await it, then call [`Guard::resume`](crate::Guard::resume) with the same
    /// request. A resumed decision may wait again (each stage at most once).
    Pending(Pending),
}

/// The decision on a request.
pub enum Decision {
    /// Forward it (after its body phase, when [`Admitted::body_limit`] says so).
    Admitted(Admitted),
    /// Answer with [`Rejected::into_response`].
    Rejected(Rejected),
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Admitted(a) => f.debug_tuple("Admitted").field(&a.identity).finish(),
            Decision::Rejected(r) => f.debug_tuple("Rejected").field(&r.denial.reason).finish(),
        }
    }
}

/// A decision waiting for I/O; resolves to the [`Resume`] to pass to
/// [`Guard::resume`](crate::Guard::resume).
pub struct Pending {
    pub(super) wait: Wait,
    pub(super) suspended: Option<Box<Suspended>>,
}

/// Where a waiting decision resumes: its facts and the stage that waited.
pub struct Resume(pub(super) Box<Suspended>);

pub(super) struct Suspended {
    pub(super) facts: Facts<'static>,
    pub(super) stage: usize,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").field("request_id", &self.0.facts.request_id).finish_non_exhaustive()
    }
}

impl Future for Pending {
    type Output = Resume;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resume> {
        match self.wait.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(waited) => match self.suspended.take() {
                Some(mut suspended) => {
                    suspended.facts.waited = Some(waited);
                    Poll::Ready(Resume(suspended))
                }
                // Polled again after completion: never resolves twice.
                None => Poll::Pending,
            },
        }
    }
}

/// Why reading a body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The body was longer than the limit.
    TooLarge,
    /// The body could not be read (client went away, framing error).
    Unreadable,
}

/// What a request's body is checked against, once read.
pub(super) struct BodyPhase {
    pub(super) limit: usize,
    pub(super) operation: Option<(usize, Vec<(String, String)>)>,
    pub(super) graphql: Option<Arc<EndpointSchema>>,
}

/// What the body phase found.
enum BodyVerdict {
    Pass,
    Deny(Denial),
    /// Per-field GraphQL quotas kept in the shared store: await their decision.
    Wait(QuotaWait),
}

/// An admitted request: forward it with [`Admitted::forward`], after reading its body and
/// passing it to [`Admitted::body`] when [`Admitted::body_limit`] is `Some`.
pub struct Admitted {
    pub(super) shared: Arc<Shared>,
    pub(super) request_id: RequestId,
    pub(super) span: Span,
    pub(super) identity: Option<Identity>,
    pub(super) route: Option<Arc<str>>,
    pub(super) rewritten_path: Option<String>,
    pub(super) body: Option<BodyPhase>,
    pub(super) response_check: Option<ResponseCheck>,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) observation: Option<Box<Observation>>,
    pub(super) would_deny: Option<Reason>,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("request_id", &self.request_id)
            .field("identity", &self.identity)
            .field("route", &self.route)
            .field("would_deny", &self.would_deny)
            .finish_non_exhaustive()
    }
}

impl Admitted {
    /// The verified caller (none on a public route called anonymously, or in report-only
    /// mode when verification failed).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The request id (also in the span, events and problem bodies).
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The request's `zt.request` span: instrument the handler with it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The matched route template, if any.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// When path normalization rewrote the path: forward this path instead, so the
    /// application sees exactly the path that was checked.
    pub fn rewritten_path(&self) -> Option<&str> {
        self.rewritten_path.as_deref()
    }

    /// In report-only mode, the denial that would have been enforced.
    pub fn would_deny(&self) -> Option<Reason> {
        self.would_deny
    }

    /// `Some(limit)` when the body must be read (at most `limit` bytes; more is a 413) and
    /// passed to [`Admitted::body`] before forwarding.
    pub fn body_limit(&self) -> Option<usize> {
        self.body.as_ref().map(|b| b.limit)
    }

    /// The body phase: `read` is what was read (or why it could not be). In report-only
    /// mode a denial is logged and the request stays admitted. It waits only when a
    /// GraphQL request's per-field quotas are kept in the shared store (Redis); otherwise
    /// it is ready at once.
    // A rejection is returned by value like the admission it replaces: no allocation.
    #[allow(clippy::result_large_err)]
    pub async fn body(
        mut self,
        view: &RequestView<'_>,
        read: Result<&[u8], BodyError>,
    ) -> Result<Admitted, Rejected> {
        let Some(phase) = self.body.take() else { return Ok(self) };
        if let (Some(observation), Ok(bytes)) = (&mut self.observation, read) {
            observation.request_bytes = bytes.len() as u64;
        }
        let denial = match read {
            Err(BodyError::TooLarge) => Denial::new(Reason::PayloadTooLarge),
            Err(BodyError::Unreadable) => Denial::new(Reason::MalformedRequest),
            Ok(bytes) if bytes.len() > phase.limit => Denial::new(Reason::PayloadTooLarge),
            Ok(bytes) => match self.check_body(view, &phase, bytes) {
                BodyVerdict::Pass => return Ok(self),
                BodyVerdict::Deny(denial) => denial,
                BodyVerdict::Wait(quotas) => match quotas.await {
                    Ok(_) => return Ok(self),
                    Err(denial) => denial,
                },
            },
        };
        let enforced = self.shared.enforces(false);
        self.shared.log_denial(
            &self.span,
            &self.request_id,
            self.route.as_deref(),
            self.identity.as_ref(),
            &denial,
            enforced,
        );
        if let Some(observation) = &mut self.observation {
            // The observer learns of body-phase denials too (baselines, KPIs, detection).
            observation.deny(denial.reason.slug(), denial.reason.status(), enforced);
        }
        if !enforced {
            self.would_deny = Some(denial.reason);
            return Ok(self);
        }
        let response = self.shared.render(&denial, &self.request_id);
        Err(Rejected {
            shared: self.shared.clone(),
            span: self.span.clone(),
            request_id: self.request_id,
            route: self.route.clone(),
            denial,
            response: Some(response),
            observation: self.observation.take(),
        })
    }

    /// The body against the GraphQL schema (then its per-field quotas) or the contract
    /// operation.
    fn check_body(&mut self, view: &RequestView<'_>, phase: &BodyPhase, bytes: &[u8]) -> BodyVerdict {
        if let Some(schema) = &phase.graphql {
            let operations = match schema.check(GraphqlRequestBody::Json(bytes), self.identity.as_ref()) {
                Ok(operations) => operations,
                Err(denial) => {
                    return BodyVerdict::Deny(graphql_denial(
                        &self.shared,
                        &denial,
                        view.headers,
                        &self.request_id,
                    ));
                }
            };
            let template = self.route.as_deref().unwrap_or("");
            let key = record_operations(&self.span, &self.request_id, template, &operations);
            if let Some(observation) = &mut self.observation {
                observation.operation = key;
                observation.graphql_pressure = Some(schema.config().pressure(&operations));
            }
            return match charge_operations(&self.shared, view, self.identity.as_ref(), template, &operations)
            {
                Charged::Admitted => BodyVerdict::Pass,
                Charged::Denied(denial) => BodyVerdict::Deny(denial),
                Charged::Wait(quotas) => BodyVerdict::Wait(quotas),
            };
        }
        let (Some((op, path_params)), Some(contract)) = (phase.operation.as_ref(), &self.shared.contract)
        else {
            return BodyVerdict::Pass;
        };
        // An empty body is judged as no body there (a body of unknown length that turned out
        // empty is what HTTP/1.1 would have sent with `Content-Length: 0`).
        let request =
            ContractRequest { path_params, query: view.query, headers: view.headers, body: Some(bytes) };
        match contract.validate_request(*op, &request) {
            Ok(()) => BodyVerdict::Pass,
            Err(violations) => BodyVerdict::Deny(violation_denial(violations)),
        }
    }

    /// What the handler may see of the decision (put it into the request's extensions),
    /// and the response phase.
    pub fn forward(self) -> (Admission, Responding) {
        // Recorded here, after the body phase, so a span never says both `allow` and `deny`
        // (a report-only denial already recorded `would_deny`).
        if self.would_deny.is_none() {
            self.span.record("zt.decision", "allow");
        }
        // Every response names its request, as denials do: callers quote it, and it leads
        // to the span and the events. `ResponseHeaders` adds it from the inline id (no
        // `String` per request, and no growing of the header list to push it).
        let admission = Admission {
            identity: self.identity,
            request_id: self.request_id,
            route: self.route,
            shared: self.shared.clone(),
        };
        let responding = Responding {
            shared: self.shared,
            request_id: self.request_id,
            span: self.span,
            response_check: self.response_check,
            headers: self.headers,
            observation: self.observation,
        };
        (admission, responding)
    }
}

/// What a forwarded request carries for its handler: the verified caller, the request id,
/// the checked route. The adapters put it into request extensions; their extractors read it.
#[derive(Clone)]
pub struct Admission {
    identity: Option<Identity>,
    request_id: RequestId,
    route: Option<Arc<str>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("request_id", &self.request_id)
            .field("identity", &self.identity)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The verified caller, if any.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The request id.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The route template the Guard matched and checked (e.g. `/orders/{id}`).
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// A refusal rendered exactly as the Guard renders its denials (for extractors that
    /// find the request lacks what the handler needs, e.g. an identity).
    pub fn reject(&self, reason: Reason) -> Reply {
        self.shared.render(&Denial::new(reason), &self.request_id)
    }

    /// A 403 `insufficient_scope` naming the scopes that would be enough
    /// (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`, RFC 6750 s.3.1),
    /// for a decision a handler makes on what the request asks for: a JSON-RPC method or an
    /// MCP tool with its own scopes. A client may then ask its authorization server for
    /// those scopes (step-up) and retry.
    pub fn reject_for_scopes(&self, scopes: &[&str]) -> Reply {
        let mut denial = Denial::new(Reason::InsufficientScope);
        denial.required_scopes = scopes.iter().map(|s| (*s).to_string()).collect();
        let request_id = self.request_id.as_str();
        let trace = self.request_id.trace_id();
        let user = self.identity.as_ref().and_then(Identity::subject).unwrap_or("");
        let required = denial.required_scopes.join(" ");
        tracing::event!(
            target: "zt::decision",
            tracing::Level::WARN,
            zt.request_id = request_id,
            trace_id = trace.as_ref().map(crate::telemetry::TraceId::as_str),
            enduser.id = user,
            zt.decision = "deny",
            zt.reason = "insufficient-scope",
            zt.required_scopes = required.as_str(),
            "request denied by the handler's scope check"
        );
        self.shared.render(&denial, &self.request_id)
    }
}

/// A denied request: send [`Rejected::into_response`]. The status is recorded and the
/// observer told when it is rendered (or, if it never is, when it is dropped).
pub struct Rejected {
    pub(super) shared: Arc<Shared>,
    pub(super) span: Span,
    pub(super) request_id: RequestId,
    pub(super) route: Option<Arc<str>>,
    pub(super) denial: Denial,
    pub(super) response: Option<Reply>,
    pub(super) observation: Option<Box<Observation>>,
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected").field("reason", &self.denial.reason).finish_non_exhaustive()
    }
}

impl Rejected {
    /// Why.
    pub fn reason(&self) -> Reason {
        self.denial.reason
    }

    /// The denial (reason, missing scopes, violations, headers).
    pub fn denial(&self) -> &Denial {
        &self.denial
    }

    /// The request id.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The matched route template, when the request got as far as matching one.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The request's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The response to send: status, headers and problem body.
    pub fn into_response(mut self) -> Reply {
        let response =
            self.response.take().unwrap_or_else(|| self.shared.render(&self.denial, &self.request_id));
        self.record(response.status);
        response
    }

    fn record(&mut self, status: u16) {
        crate::telemetry::record_status(&self.span, status);
        if let (Some(observation), Some(observer)) = (self.observation.take(), &self.shared.observer) {
            observation.finish(observer, status, 0, None);
        }
    }
}

impl Drop for Rejected {
    fn drop(&mut self) {
        if let Some(response) = self.response.take() {
            self.record(response.status);
        }
    }
}

/// The response phase of a forwarded request: pass the response head to
/// [`Responding::head`].
pub struct Responding {
    shared: Arc<Shared>,
    request_id: RequestId,
    span: Span,
    response_check: Option<ResponseCheck>,
    headers: Vec<(&'static str, String)>,
    observation: Option<Box<Observation>>,
}

impl std::fmt::Debug for Responding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responding").field("request_id", &self.request_id).finish_non_exhaustive()
    }
}

/// Headers zt adds to a forwarded response (e.g. `RateLimit`, `x-request-id`); add each
/// unless the service set it itself.
#[derive(Debug, Default)]
pub struct ResponseHeaders {
    headers: Vec<(&'static str, String)>,
    /// `x-request-id`, last: kept as the inline id, not a `String` built per request.
    request_id: Option<RequestId>,
}

impl ResponseHeaders {
    fn new(headers: Vec<(&'static str, String)>, request_id: RequestId) -> Self {
        ResponseHeaders { headers, request_id: Some(request_id) }
    }

    /// `(name, value)` pairs, names lower-case.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let request_id = self.request_id.as_ref().map(|id| ("x-request-id", id.as_str()));
        self.headers.iter().map(|(n, v)| (*n, v.as_str())).chain(request_id)
    }
}

/// What to do with a forwarded response.
#[derive(Debug)]
pub enum ResponsePlan {
    /// Send it as it is (a stream stays a stream), with these headers added. Nothing more
    /// is owed: the outcome is recorded.
    Send(ResponseHeaders),
    /// Read its body (at most [`ReadResponse::limit`] bytes), then call
    /// [`ReadResponse::finish`].
    Read(ReadResponse),
    /// Send this 502 problem instead: the response may carry properties the caller must not
    /// see (`x-zt-scopes`) and is a stream zt cannot filter. The outcome is recorded.
    Block(Reply),
}

/// A bounded response body to read for validation or sampling.
#[derive(Debug)]
pub struct ReadResponse {
    responding: Responding,
    status: u16,
    content_type: Option<ContentType>,
    limit: usize,
}

/// A response's `Content-Type`, kept from its head until its body is read: inline when it
/// is short (every usual one), so reading a response allocates nothing for it.
type ContentType = ShortText<64>;

/// The body to send after [`ReadResponse::finish`].
#[derive(Debug)]
pub enum ResponseBody {
    /// The body as read, with these headers added.
    Keep(ResponseHeaders),
    /// This body instead (undeclared fields stripped), same status; drop any
    /// `Content-Length` of the original, and add these headers.
    Replace(Vec<u8>, ResponseHeaders),
    /// This 502 problem instead of the response.
    Block(Reply),
}

/// The largest response body buffered for sampling alone.
const SAMPLE_BUFFER_LIMIT: usize = 1 << 20;

impl Responding {
    /// The response head is known: its status, `Content-Type`, and body length when the
    /// body is bounded and its length declared (`None` for streams and unknown lengths).
    pub fn head(
        mut self,
        status: u16,
        content_type: Option<&[u8]>,
        body_length: Option<u64>,
    ) -> ResponsePlan {
        // The status is recorded once, with the one sent: here when the response is sent as
        // it is, by `ReadResponse::finish` when it is read, by `blocked` when a 502 replaces it
        // (recording 200 here and 502 there would record the field twice).
        let sample = self.observation.as_ref().and_then(|o| o.sample);
        let wanted = self.response_check.is_some() || sample.is_some();
        let limit = self.response_check.as_ref().map_or(SAMPLE_BUFFER_LIMIT, |c| c.limit);
        let stream = status == 101
            || content_type.is_some_and(|t| {
                t.split(|b| *b == b';')
                    .next()
                    .is_some_and(|e| e.trim_ascii().eq_ignore_ascii_case(b"text/event-stream"))
            });
        let bounded = body_length.filter(|n| *n <= limit as u64);
        // Properties some callers may not see (`x-zt-scopes`) never leave unfiltered.
        let fail_closed =
            self.response_check.as_ref().is_some_and(|c| c.guards_fields) && self.shared.enforces(false);
        if fail_closed && stream {
            // They cannot be withheld from a stream: refuse it.
            return ResponsePlan::Block(self.blocked(0));
        }
        // A body of unknown length is read (up to the limit; longer is a 502) when it may
        // carry guarded properties, else only when it declares a bounded length.
        if wanted && !stream && (bounded.is_some() || fail_closed) {
            let content_type = content_type.map(ContentType::lossy);
            return ResponsePlan::Read(ReadResponse { responding: self, status, content_type, limit });
        }
        if self.response_check.is_some() {
            let why = if stream {
                "a stream"
            } else if body_length.is_none() {
                "of unknown length"
            } else {
                "too large"
            };
            let _entered = self.span.enter();
            tracing::event!(
                target: "zt::security",
                tracing::Level::DEBUG,
                zt.request_id = self.request_id.as_str(),
                zt.response_unvalidated = why,
                "response not validated (only bounded bodies with a declared length are)"
            );
        }
        crate::telemetry::record_status(&self.span, status);
        let headers = ResponseHeaders::new(std::mem::take(&mut self.headers), self.request_id);
        if let (Some(observation), Some(observer)) = (self.observation.take(), &self.shared.observer) {
            observation.finish(observer, status, body_length.unwrap_or(0), None);
        }
        ResponsePlan::Send(headers)
    }
}

impl ReadResponse {
    /// The most bytes to read.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The body was read (or could not be: unreadable, or longer than declared).
    pub fn finish(self, body: Result<&[u8], BodyError>) -> ResponseBody {
        let ReadResponse { mut responding, status, content_type, limit } = self;
        let Ok(bytes) = body.map_err(|_| ()).and_then(|b| if b.len() > limit { Err(()) } else { Ok(b) })
        else {
            // Unreadable, or longer than it said: nothing trustworthy to forward.
            return responding.block(0);
        };
        let action = match responding.response_check.take() {
            Some(check) => responding.check_response(
                &check,
                status,
                content_type.as_ref().map(ContentType::as_str),
                bytes,
            ),
            None => Action::Pass,
        };
        let sample = responding.observation.as_ref().and_then(|o| o.sample);
        let (sent, length) = match &action {
            Action::Pass => (status, bytes.len()),
            Action::Replace(body) => (status, body.len()),
            Action::Block => return responding.block(bytes.len() as u64),
        };
        crate::telemetry::record_status(&responding.span, sent);
        if let (Some(observation), Some(observer)) =
            (responding.observation.take(), &responding.shared.observer)
        {
            let sampled = sample.map(|n| &bytes[..n.min(bytes.len())]);
            observation.finish(observer, sent, length as u64, sampled);
        }
        let headers = ResponseHeaders::new(std::mem::take(&mut responding.headers), responding.request_id);
        match action {
            Action::Replace(body) => ResponseBody::Replace(body, headers),
            _ => ResponseBody::Keep(headers),
        }
    }
}

enum Action {
    Pass,
    Replace(Vec<u8>),
    Block,
}

impl Responding {
    /// The 502 sent instead of a response that left the contract or could not be read.
    fn block(self, response_bytes: u64) -> ResponseBody {
        ResponseBody::Block(self.blocked(response_bytes))
    }

    fn blocked(mut self, response_bytes: u64) -> Reply {
        let rendered = self.shared.render(&Denial::new(Reason::ResponseContractViolation), &self.request_id);
        crate::telemetry::record_status(&self.span, rendered.status);
        if let (Some(observation), Some(observer)) = (self.observation.take(), &self.shared.observer) {
            observation.finish(observer, rendered.status, response_bytes, None);
        }
        rendered
    }

    /// Checks a response body against the contract (see [`crate::response`]), then
    /// withholds the properties the caller lacks the scope for (`x-zt-scopes`).
    fn check_response(
        &self,
        check: &ResponseCheck,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Action {
        let action = if check.validate {
            self.validate_response(check, status, content_type, body)
        } else {
            Action::Pass
        };
        let Some(contract) = &self.shared.contract else { return action };
        let sent = match &action {
            Action::Pass => body,
            Action::Replace(stripped) => stripped.as_slice(),
            Action::Block => return Action::Block,
        };
        let withheld =
            contract.withhold_response(check.operation, status, content_type, sent, &|s| check.grants(s));
        let (replacement, fields) = match withheld {
            crate::contract::Withheld::Removed { body, fields } => (Some(body), fields),
            crate::contract::Withheld::Unreadable => (None, vec!["/body".to_string()]),
            _ => return action,
        };
        let enforced = self.shared.enforces(false);
        let _entered = self.span.enter();
        tracing::event!(
            target: "zt::security",
            tracing::Level::INFO,
            event.action = "zt.fields_withheld",
            zt.request_id = self.request_id.as_str(),
            http.response.status_code = status,
            zt.withheld_fields = ?fields,
            zt.enforced = enforced,
            "response properties withheld: the caller lacks the scope they need (x-zt-scopes)"
        );
        match (enforced, replacement) {
            (false, _) => action,
            (true, Some(body)) => Action::Replace(body),
            // Guarded properties in a body that cannot be read: fail closed.
            (true, None) => Action::Block,
        }
    }

    /// Validates a response body against the contract (`contract.responses`).
    fn validate_response(
        &self,
        check: &ResponseCheck,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Action {
        let shared = &*self.shared;
        let Some(contract) = &shared.contract else { return Action::Pass };
        let report = contract.validate_response(check.operation, status, content_type, body);
        if report.is_clean() {
            return Action::Pass;
        }
        let undeclared: Vec<&str> = report.undeclared_fields.iter().map(String::as_str).collect();
        let violations: Vec<String> =
            report.violations.iter().map(|v| format!("{} {}", v.pointer, v.keyword)).collect();
        let mode = shared.contract_config.responses;
        let _entered = self.span.enter();
        tracing::event!(
            target: "zt::security",
            tracing::Level::WARN,
            event.action = "zt.data_exposure",
            zt.request_id = self.request_id.as_str(),
            http.response.status_code = status,
            zt.undeclared_fields = ?undeclared,
            zt.response_violations = ?violations,
            zt.response_action = format!("{mode:?}").to_lowercase(),
            "response does not match the contract"
        );
        if !shared.enforces(false) {
            return Action::Pass;
        }
        match mode {
            ResponseValidation::Off | ResponseValidation::Report => Action::Pass,
            ResponseValidation::Block => Action::Block,
            ResponseValidation::Strip if report.violations.is_empty() && !report.truncated => {
                match crate::response::strip(body, &report.undeclared_fields) {
                    Some(stripped) => Action::Replace(stripped),
                    // Cannot strip safely (unnamed fields, not JSON): fail closed.
                    None => Action::Block,
                }
            }
            // Schema violations beyond extra fields cannot be stripped away.
            ResponseValidation::Strip => Action::Block,
        }
    }
}
