//! The actix-web middleware: every request goes through [`Guard::check`] first.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::Payload;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;
use tracing::Instrument;
use tracing::Span;
use zt_core::{
    BodyError, Check, Denial, Guard, HeaderLookup, Observed, Outcome, RequestId, RequestView, Verdict,
    telemetry,
};

/// What the middleware leaves in request extensions for extractors.
#[derive(Clone)]
pub(crate) struct RequestContext {
    pub(crate) request_id: RequestId,
    pub(crate) guard: Guard,
}

struct Headers<'a>(&'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.0.get_all(name).nth(index).map(HeaderValue::as_bytes)
    }

    fn line_count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    // One map lookup instead of two (`nth(0)` and `nth(1)`).
    fn get_one(&self, name: &str) -> zt_core::HeaderValue<'_> {
        let mut values = self.0.get_all(name);
        match (values.next(), values.next()) {
            (None, _) => zt_core::HeaderValue::Absent,
            (Some(v), None) => zt_core::HeaderValue::One(v.as_bytes()),
            (Some(_), Some(_)) => zt_core::HeaderValue::Repeated,
        }
    }
}

pub(crate) fn denial_response(guard: &Guard, denial: &Denial, request_id: &RequestId) -> HttpResponse {
    let rendered = guard.render(denial, request_id);
    let mut response = HttpResponse::with_body(
        StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::FORBIDDEN),
        rendered.body,
    );
    for (name, value) in rendered.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response.map_into_boxed_body()
}

/// The zero-trust middleware (an actix-web `Transform`).
///
/// Usually made by [`Routes::middleware`](crate::Routes::middleware), which carries the
/// route requirements; `ZeroTrust::new` takes a guard that already has its routes.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard, RouteTable};
///
/// let mut routes = RouteTable::new();
/// routes.add("GET", "/health", scopes::public()).unwrap();
/// let guard = Guard::new(Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build()).unwrap().with_routes(&routes).unwrap();
/// let app = actix_web::App::new()
///     .wrap(zt_actix::ZeroTrust::new(guard))
///     .route("/health", actix_web::web::get().to(|| async { "ok" }));
/// ```
#[derive(Clone)]
pub struct ZeroTrust {
    guard: Guard,
}

impl ZeroTrust {
    /// A middleware enforcing `guard`.
    pub fn new(guard: Guard) -> Self {
        ZeroTrust { guard }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ZeroTrust
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ZeroTrustMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ZeroTrustMiddleware { service: Rc::new(service), guard: self.guard.clone() }))
    }
}

/// The service made by [`ZeroTrust`].
pub struct ZeroTrustMiddleware<S> {
    service: Rc<S>,
    guard: Guard,
}

pin_project! {
    /// The middleware's response future: the inner future (in the request span), a denial,
    /// or a decision waiting for keys.
    pub struct ZtFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = Projected]
    enum State<F, B> {
        Inner {
            #[pin] future: F,
            span: Span,
            headers: Vec<(&'static str, String)>,
            observed: Option<Observed>,
        },
        Done { response: Option<ServiceResponse<EitherBody<B>>> },
        Waiting { future: LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>> },
    }
}

fn view<'a>(request: &'a ServiceRequest, headers: &'a Headers<'a>) -> RequestView<'a> {
    RequestView {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers,
        peer_addr: request.peer_addr(),
        // Put there per connection by the TLS glue (`HttpServer::on_connect`).
        peer_certificates: request.conn_data::<zt_core::PeerCertificates>(),
    }
}

/// Puts the identity and context into the request and applies a normalized path.
fn prepare(
    guard: &Guard,
    verdict: &mut Verdict,
    identity: Option<zt_core::Identity>,
    request: &mut ServiceRequest,
) {
    if let Some(path) = verdict.rewritten_path.take() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
                // Routing reads the match-info path, so update both (as actix's own
                // NormalizePath does).
                request.match_info_mut().get_mut().update(&uri);
                request.head_mut().uri = uri;
            }
        }
    }
    let mut extensions = request.extensions_mut();
    if let Some(identity) = identity {
        extensions.insert(crate::Identity(identity));
    }
    extensions.insert(RequestContext { request_id: verdict.request_id, guard: guard.clone() });
    if let Some(route) = &verdict.route {
        extensions.insert(zt_core::CheckedRoute(route.clone()));
    }
}

fn denied<B>(
    guard: &Guard,
    verdict: &mut Verdict,
    denial: &Denial,
    request: ServiceRequest,
) -> ServiceResponse<EitherBody<B>> {
    let response = denial_response(guard, denial, &verdict.request_id);
    telemetry::record_status(&verdict.span, response.status().as_u16());
    if let Some(observed) = verdict.observed.take() {
        observed.finish(response.status().as_u16(), 0, None);
    }
    request.into_response(response).map_into_right_body()
}

/// Reads the payload (bounded) for the body phase.
async fn read_payload(request: &mut ServiceRequest, limit: usize) -> Result<Bytes, BodyError> {
    let mut payload = request.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Everything after a verdict, for the paths that may wait (keys, body).
async fn dispatch<S, B>(
    service: Rc<S>,
    guard: Guard,
    mut verdict: Verdict,
    mut request: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let identity = match std::mem::replace(&mut verdict.outcome, Outcome::Allow(None)) {
        Outcome::Deny(denial) => return Ok(denied(&guard, &mut verdict, &denial, request)),
        Outcome::Allow(identity) => identity,
    };
    if let Some(check) = verdict.body.take() {
        let read = read_payload(&mut request, check.limit).await;
        let denial = {
            let headers = Headers(request.headers());
            guard.check_body(&view(&request, &headers), &mut verdict, &check, read.as_deref().map_err(|e| *e))
        };
        if let Some(denial) = denial {
            return Ok(denied(&guard, &mut verdict, &denial, request));
        }
        request.set_payload(Payload::from(read.unwrap_or_default()));
    }
    prepare(&guard, &mut verdict, identity, &mut request);
    let span = verdict.span.clone();
    let response = service.call(request).instrument(span.clone()).await?;
    let mut response = checked_response(&guard, &mut verdict, response).await;
    add_headers(&mut response, std::mem::take(&mut verdict.response_headers));
    telemetry::record_status(&span, response.status().as_u16());
    Ok(response)
}

/// Adds the verdict's response headers (e.g. RateLimit) unless the service set them.
fn add_headers<B>(response: &mut ServiceResponse<B>, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value)
            && !response.headers().contains_key(name)
        {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
}

/// The largest response body buffered for sampling alone.
const SAMPLE_BUFFER_LIMIT: usize = 1 << 20;

/// Response validation and sampling, when the verdict asks for them (see
/// `zt_core::response` and `zt_core::observe`); then the observer sees the outcome.
async fn checked_response<B: MessageBody>(
    guard: &Guard,
    verdict: &mut Verdict,
    response: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    use actix_web::body::{BodySize, BoxBody};
    use zt_core::response::ResponseAction;
    let observed = verdict.observed.take();
    let sample = observed.as_ref().and_then(Observed::wants_sample);
    let limit = verdict.response.as_ref().map_or(SAMPLE_BUFFER_LIMIT, |c| c.limit);
    let size = match response.response().body().size() {
        BodySize::Sized(n) => Some(n),
        _ => None,
    };
    if (verdict.response.is_none() && sample.is_none()) || size.is_some_and(|n| n > limit as u64) {
        if let Some(check) = &verdict.response {
            // Too large to check: passed on unread (and logged).
            let _ = guard.check_response(verdict, check, response.status().as_u16(), None, None);
        }
        if let Some(observed) = observed {
            observed.finish(response.status().as_u16(), size.unwrap_or(0), None);
        }
        return response.map_into_left_body();
    }
    let (request, response) = response.into_parts();
    let content_type = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status();
    let (head, body) = response.into_parts();
    let blocked = |request: actix_web::HttpRequest| {
        let rendered = guard.blocked_response(verdict);
        let mut response = HttpResponse::with_body(
            StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::BAD_GATEWAY),
            rendered.body,
        );
        for (name, value) in rendered.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(HeaderName::from_static(name), value);
            }
        }
        ServiceResponse::new(request, response.map_into_boxed_body()).map_into_right_body()
    };
    let Ok(Ok(bytes)) = actix_web::body::to_bytes_limited(body, limit).await else {
        // Unreadable, or longer than the limit: nothing trustworthy to forward.
        if let Some(observed) = observed {
            observed.finish(502, 0, None);
        }
        return blocked(request);
    };
    let action = match &verdict.response {
        Some(check) => {
            guard.check_response(verdict, check, status.as_u16(), content_type.as_deref(), Some(&bytes))
        }
        None => ResponseAction::Pass,
    };
    let response = match action {
        ResponseAction::Pass => {
            ServiceResponse::new(request, head.set_body(BoxBody::new(bytes.clone()))).map_into_right_body()
        }
        ResponseAction::Replace(body) => {
            ServiceResponse::new(request, head.set_body(BoxBody::new(Bytes::from(body))))
                .map_into_right_body()
        }
        ResponseAction::Block => blocked(request),
    };
    if let Some(observed) = observed {
        let sampled = sample.map(|n| &bytes[..n.min(bytes.len())]);
        observed.finish(response.status().as_u16(), bytes.len() as u64, sampled);
    }
    response
}

impl<S, B> Service<ServiceRequest> for ZeroTrustMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ZtFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let check = {
            let headers = Headers(request.headers());
            self.guard.check(&view(&request, &headers))
        };
        let mut verdict = match check {
            Check::Ready(verdict) => verdict,
            Check::Pending(pending) => {
                let service = Rc::clone(&self.service);
                let guard = self.guard.clone();
                let future = Box::pin(async move {
                    let resume = pending.await;
                    let verdict = {
                        let headers = Headers(request.headers());
                        guard.resume(&view(&request, &headers), resume)
                    };
                    dispatch(service, guard, verdict, request).await
                });
                return ZtFuture { state: State::Waiting { future } };
            }
        };
        let sample = verdict.observed.as_ref().and_then(Observed::wants_sample);
        if verdict.body.is_some() || verdict.response.is_some() || sample.is_some() {
            let future = Box::pin(dispatch(Rc::clone(&self.service), self.guard.clone(), verdict, request));
            return ZtFuture { state: State::Waiting { future } };
        }
        let identity = match std::mem::replace(&mut verdict.outcome, Outcome::Allow(None)) {
            Outcome::Deny(denial) => {
                let response = denied(&self.guard, &mut verdict, &denial, request);
                return ZtFuture { state: State::Done { response: Some(response) } };
            }
            Outcome::Allow(identity) => identity,
        };
        prepare(&self.guard, &mut verdict, identity, &mut request);
        let future = {
            let _entered = verdict.span.enter();
            self.service.call(request)
        };
        let (span, headers, observed) = (verdict.span, verdict.response_headers, verdict.observed);
        ZtFuture { state: State::Inner { future, span, headers, observed } }
    }
}

impl<F, B: MessageBody> Future for ZtFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Projected::Inner { future, span, headers, observed } => {
                let _entered = span.enter();
                match future.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => Poll::Ready(result.map(|mut response| {
                        add_headers(&mut response, std::mem::take(headers));
                        telemetry::record_status(span, response.status().as_u16());
                        if let Some(observed) = observed.take() {
                            let size = match response.response().body().size() {
                                actix_web::body::BodySize::Sized(n) => n,
                                _ => 0,
                            };
                            observed.finish(response.status().as_u16(), size, None);
                        }
                        response.map_into_left_body()
                    })),
                }
            }
            Projected::Done { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            Projected::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}
