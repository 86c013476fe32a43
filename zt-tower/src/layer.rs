//! The Tower layer: every request goes through [`Guard::check`] before the inner service.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};
use zt_core::Observed;
use zt_core::response::ResponseAction;
use zt_core::{
    BodyError, Check, Denial, Guard, HeaderLookup, Outcome, RequestId, RequestView, Verdict, telemetry,
};

/// What the layer leaves in request extensions for extractors: the request id and the guard
/// (to render rejections the same way as denials).
#[derive(Clone)]
pub(crate) struct RequestContext {
    pub(crate) request_id: RequestId,
    pub(crate) guard: Guard,
}

struct Headers<'a>(&'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.0.get_all(name).iter().nth(index).map(HeaderValue::as_bytes)
    }

    fn line_count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    // One map lookup instead of two (`nth(0)` and `nth(1)`).
    fn get_one(&self, name: &str) -> zt_core::HeaderValue<'_> {
        let mut values = self.0.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => zt_core::HeaderValue::Absent,
            (Some(v), None) => zt_core::HeaderValue::One(v.as_bytes()),
            (Some(_), Some(_)) => zt_core::HeaderValue::Repeated,
        }
    }
}

fn view<'a, B>(request: &'a Request<B>, headers: &'a Headers<'a>) -> RequestView<'a> {
    RequestView {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers,
        peer_addr: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
        peer_certificates: request.extensions().get::<zt_core::PeerCertificates>(),
    }
}

/// Applies a [`Guard`] to a Tower service.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard, RouteTable};
/// use zt_tower::ZeroTrustLayer;
///
/// let mut routes = RouteTable::new();
/// routes.add("GET", "/health", scopes::public()).unwrap();
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap().with_routes(&routes).unwrap();
/// let app: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .layer(ZeroTrustLayer::new(guard));
/// ```
///
/// Prefer [`Router`](crate::Router), which registers the requirements for you.
#[derive(Clone)]
pub struct ZeroTrustLayer {
    guard: Guard,
}

impl ZeroTrustLayer {
    /// A layer enforcing `guard`.
    pub fn new(guard: Guard) -> Self {
        ZeroTrustLayer { guard }
    }
}

impl<S> Layer<S> for ZeroTrustLayer {
    type Service = ZeroTrustService<S>;
    fn layer(&self, inner: S) -> ZeroTrustService<S> {
        ZeroTrustService { inner, guard: self.guard.clone() }
    }
}

/// The service made by [`ZeroTrustLayer`].
#[derive(Clone)]
pub struct ZeroTrustService<S> {
    inner: S,
    guard: Guard,
}

pub(crate) fn denial_response<B: From<String>>(
    guard: &Guard,
    denial: &Denial,
    request_id: &RequestId,
) -> Response<B> {
    rendered_response(guard.render(denial, request_id))
}

type BoxedResponse<ResBody, E> = Pin<Box<dyn Future<Output = Result<Response<ResBody>, E>> + Send>>;

pin_project! {
    /// The response future of [`ZeroTrustService`]: the inner future (instrumented with the
    /// request span) or a denial on the fast path; a boxed future only when the decision
    /// waits for keys or a body must be read first.
    pub struct ResponseFuture<F, ResBody, E> {
        #[pin]
        state: State<F, ResBody, E>,
    }
}

pin_project! {
    #[project = Projected]
    enum State<F, ResBody, E> {
        Inner {
            #[pin] future: F,
            span: Span,
            headers: Vec<(&'static str, String)>,
            observed: Option<Observed>,
        },
        Denied { response: Option<Response<ResBody>> },
        Boxed { future: BoxedResponse<ResBody, E> },
    }
}

/// Puts the verdict's identity and context into the request and applies a normalized path.
fn prepare<B>(
    guard: &Guard,
    verdict: &mut Verdict,
    identity: Option<zt_core::Identity>,
    request: &mut Request<B>,
) {
    if let Some(path) = verdict.rewritten_path.take() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    let extensions = request.extensions_mut();
    if let Some(identity) = identity {
        extensions.insert(crate::Identity(identity));
    }
    extensions.insert(RequestContext { request_id: verdict.request_id, guard: guard.clone() });
    if let Some(route) = &verdict.route {
        extensions.insert(zt_core::CheckedRoute(route.clone()));
    }
}

fn deny<F, ResBody: From<String>, E>(
    guard: &Guard,
    verdict: &mut Verdict,
    denial: &Denial,
) -> ResponseFuture<F, ResBody, E> {
    let response = denial_response(guard, denial, &verdict.request_id);
    telemetry::record_status(&verdict.span, response.status().as_u16());
    if let Some(observed) = verdict.observed.take() {
        observed.finish(response.status().as_u16(), 0, None);
    }
    ResponseFuture { state: State::Denied { response: Some(response) } }
}

/// Reads the body (bounded), runs the body phase, then calls the service.
async fn with_body<S, ReqBody, ResBody>(
    mut service: S,
    guard: Guard,
    mut verdict: Verdict,
    identity: Option<zt_core::Identity>,
    request: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: http_body::Body + From<String> + From<Bytes>,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(check) = verdict.body.take() else {
        let mut request = request;
        prepare(&guard, &mut verdict, identity, &mut request);
        let response = service.call(request).await?;
        let mut response = checked_response(&guard, &mut verdict, response).await;
        add_headers(&mut response, std::mem::take(&mut verdict.response_headers));
        return Ok(response);
    };
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, check.limit).collect().await.map(|c| c.to_bytes()).map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            BodyError::TooLarge
        } else {
            BodyError::Unreadable
        }
    });
    let denial = {
        let headers = Headers(&parts.headers);
        let view = RequestView {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &headers,
            peer_addr: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            peer_certificates: parts.extensions.get::<zt_core::PeerCertificates>(),
        };
        guard.check_body(&view, &mut verdict, &check, read.as_deref().map_err(|e| *e))
    };
    if let Some(denial) = denial {
        let response: Response<ResBody> = denial_response(&guard, &denial, &verdict.request_id);
        telemetry::record_status(&verdict.span, response.status().as_u16());
        if let Some(observed) = verdict.observed.take() {
            observed.finish(response.status().as_u16(), 0, None);
        }
        return Ok(response);
    }
    // Report-only mode forwards even an unreadable body: forward what was read.
    let bytes = read.unwrap_or_default();
    let mut request = Request::from_parts(parts, ReqBody::from(bytes));
    prepare(&guard, &mut verdict, identity, &mut request);
    let span = verdict.span.clone();
    let response = service.call(request).instrument(span.clone()).await?;
    let mut response = checked_response(&guard, &mut verdict, response).await;
    add_headers(&mut response, std::mem::take(&mut verdict.response_headers));
    telemetry::record_status(&span, response.status().as_u16());
    Ok(response)
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The largest response body buffered for sampling alone.
const SAMPLE_BUFFER_LIMIT: usize = 1 << 20;

/// Response validation and sampling, when the verdict asks for them (see
/// `zt_core::response` and `zt_core::observe`); then the observer sees the outcome.
async fn checked_response<ResBody>(
    guard: &Guard,
    verdict: &mut Verdict,
    response: Response<ResBody>,
) -> Response<ResBody>
where
    ResBody: http_body::Body + From<String> + From<Bytes>,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let observed = verdict.observed.take();
    let sample = observed.as_ref().and_then(Observed::wants_sample);
    let limit = verdict.response.as_ref().map_or(SAMPLE_BUFFER_LIMIT, |c| c.limit);
    let declared = content_length(response.headers());
    if (verdict.response.is_none() && sample.is_none()) || declared > limit as u64 {
        if let Some(check) = &verdict.response {
            // Too large to check: passed on unread (and logged).
            let _ = guard.check_response(verdict, check, response.status().as_u16(), None, None);
        }
        if let Some(observed) = observed {
            observed.finish(response.status().as_u16(), declared, None);
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let content_type =
        parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Ok(collected) = Limited::new(body, limit).collect().await else {
        // Unreadable, or longer than it said: nothing trustworthy to forward.
        if let Some(observed) = observed {
            observed.finish(502, 0, None);
        }
        return rendered_response(guard.blocked_response(verdict));
    };
    let bytes = collected.to_bytes();
    let action = match &verdict.response {
        Some(check) => {
            guard.check_response(verdict, check, parts.status.as_u16(), content_type.as_deref(), Some(&bytes))
        }
        None => ResponseAction::Pass,
    };
    let response = match action {
        ResponseAction::Pass => Response::from_parts(parts, ResBody::from(bytes.clone())),
        ResponseAction::Replace(body) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Response::from_parts(parts, ResBody::from(Bytes::from(body)))
        }
        ResponseAction::Block => rendered_response(guard.blocked_response(verdict)),
    };
    if let Some(observed) = observed {
        let sampled = sample.map(|n| &bytes[..n.min(bytes.len())]);
        observed.finish(response.status().as_u16(), bytes.len() as u64, sampled);
    }
    response
}

/// Adds the verdict's response headers (e.g. RateLimit) unless the service set them.
fn add_headers<B>(response: &mut Response<B>, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value)
            && !response.headers().contains_key(name)
        {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
}

fn rendered_response<B: From<String>>(rendered: zt_core::DenialResponse) -> Response<B> {
    let mut response = Response::new(B::from(rendered.body));
    *response.status_mut() = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in rendered.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ZeroTrustService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: http_body::Body + From<String> + From<Bytes> + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let check = {
            let headers = Headers(request.headers());
            self.guard.check(&view(&request, &headers))
        };
        let mut verdict = match check {
            Check::Ready(verdict) => verdict,
            Check::Pending(pending) => {
                // The service that was polled ready goes along; a clone stays behind.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                let guard = self.guard.clone();
                let future = Box::pin(async move {
                    let resume = pending.await;
                    let mut verdict = {
                        let headers = Headers(request.headers());
                        guard.resume(&view(&request, &headers), resume)
                    };
                    match verdict.outcome.clone() {
                        Outcome::Deny(denial) => {
                            let response: Response<ResBody> =
                                denial_response(&guard, &denial, &verdict.request_id);
                            telemetry::record_status(&verdict.span, response.status().as_u16());
                            if let Some(observed) = verdict.observed.take() {
                                observed.finish(response.status().as_u16(), 0, None);
                            }
                            Ok(response)
                        }
                        Outcome::Allow(identity) => {
                            let span = verdict.span.clone();
                            with_body(service, guard, verdict, identity, request).instrument(span).await
                        }
                    }
                });
                return ResponseFuture { state: State::Boxed { future } };
            }
        };
        let identity = match std::mem::replace(&mut verdict.outcome, Outcome::Allow(None)) {
            Outcome::Deny(denial) => return deny(&self.guard, &mut verdict, &denial),
            Outcome::Allow(identity) => identity,
        };
        let sample = verdict.observed.as_ref().and_then(Observed::wants_sample);
        if verdict.body.is_some() || verdict.response.is_some() || sample.is_some() {
            let clone = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, clone);
            let span = verdict.span.clone();
            let future =
                Box::pin(with_body(service, self.guard.clone(), verdict, identity, request).instrument(span));
            return ResponseFuture { state: State::Boxed { future } };
        }
        prepare(&self.guard, &mut verdict, identity, &mut request);
        let future = {
            let _entered = verdict.span.enter();
            self.inner.call(request)
        };
        let (span, headers, observed) = (verdict.span, verdict.response_headers, verdict.observed);
        ResponseFuture { state: State::Inner { future, span, headers, observed } }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, ResBody, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Projected::Inner { future, span, headers, observed } => {
                let _entered = span.enter();
                let mut result = ready!(future.poll(cx));
                if let Ok(response) = &mut result {
                    add_headers(response, std::mem::take(headers));
                    telemetry::record_status(span, response.status().as_u16());
                    if let Some(observed) = observed.take() {
                        observed.finish(response.status().as_u16(), content_length(response.headers()), None);
                    }
                }
                Poll::Ready(result)
            }
            Projected::Denied { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: a contract violation by the caller.
                None => Poll::Pending,
            },
            Projected::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
