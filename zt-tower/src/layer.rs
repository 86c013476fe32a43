//! The Tower layer: every request goes through [`Guard::check`] before the inner service.
//!
//! The whole lifecycle lives in `zt-core` ([`Decision`], [`Admitted`], [`Responding`]); this
//! file only converts `http` types to and from it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};
use zt_core::{
    Admitted, BodyError, Check, Decision, DenialResponse, Guard, HeaderLookup, ReadResponse, Rejected, Responding,
    ResponseBody, ResponseHeaders, ResponsePlan, RequestView,
};

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

fn view<'a>(parts: (&'a http::Method, &'a Uri, &'a http::Extensions), headers: &'a Headers<'a>) -> RequestView<'a> {
    let (method, uri, extensions) = parts;
    RequestView {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers,
        peer_addr: extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
        peer_certificates: extensions.get::<zt_core::PeerCertificates>(),
    }
}

/// Decides on `request` (or resumes a waiting decision) over a view of it.
fn decide<B>(guard: &Guard, request: &Request<B>, resume: Option<zt_core::Resume>) -> Check {
    let headers = Headers(request.headers());
    let view = view((request.method(), request.uri(), request.extensions()), &headers);
    match resume {
        None => guard.check(&view),
        Some(resume) => guard.resume(&view, resume),
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
/// Prefer [`Router`](crate::Router), which registers the requirements for you and cannot
/// be bypassed.
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

/// A rendered zt response (denial or blocked response) as an `http` response.
pub(crate) fn rendered<B: From<String>>(rendered: DenialResponse) -> Response<B> {
    let mut response = Response::new(B::from(rendered.body));
    *response.status_mut() = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in rendered.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response
}

fn rejected<B: From<String>>(rejected: Rejected) -> Response<B> {
    rendered(rejected.into_response())
}

/// Puts the admission into the request's extensions and applies a normalized path.
fn forward<B>(admitted: Admitted, request: &mut Request<B>) -> (Span, Responding) {
    if let Some(path) = admitted.rewritten_path() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    let span = admitted.span().clone();
    let (admission, responding) = admitted.forward();
    request.extensions_mut().insert(admission);
    (span, responding)
}

/// Adds zt's headers (e.g. RateLimit) unless the service set them.
fn add_headers<B>(response: &mut Response<B>, headers: &ResponseHeaders) {
    for (name, value) in headers.iter() {
        if let Ok(value) = HeaderValue::from_str(value)
            && !response.headers().contains_key(name)
        {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
}

/// The response phase: sent as it is (streams stay streams), or read, checked and rebuilt.
enum Finished<B> {
    Done(Response<B>),
    Read(ReadResponse, Response<B>),
}

fn respond<B: Body>(responding: Responding, mut response: Response<B>) -> Finished<B> {
    let content_type = response.headers().get(http::header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    match responding.head(response.status().as_u16(), content_type, response.body().size_hint().exact()) {
        ResponsePlan::Send(headers) => {
            add_headers(&mut response, &headers);
            Finished::Done(response)
        }
        ResponsePlan::Read(read) => Finished::Read(read, response),
    }
}

async fn read_response<B>(read: ReadResponse, response: Response<B>) -> Response<B>
where
    B: Body + From<String> + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = response.into_parts();
    let bytes = Limited::new(body, read.limit()).collect().await.map(|c| c.to_bytes()).map_err(|_| BodyError::Unreadable);
    match read.finish(bytes.as_deref().map_err(|e| *e)) {
        ResponseBody::Keep(headers) => {
            let mut response = Response::from_parts(parts, B::from(bytes.unwrap_or_default()));
            add_headers(&mut response, &headers);
            response
        }
        ResponseBody::Replace(body, headers) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            let mut response = Response::from_parts(parts, B::from(Bytes::from(body)));
            add_headers(&mut response, &headers);
            response
        }
        ResponseBody::Block(blocked) => rendered(blocked),
    }
}

/// Everything after a decision that waits: the decision's own waits, the body phase, the
/// service, and a response that must be read.
async fn slow_path<S, ReqBody, ResBody>(mut service: S, guard: Guard, mut check: Check, request: Request<ReqBody>) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + From<String> + From<Bytes>,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let admitted = loop {
        match check {
            Check::Pending(pending) => {
                let resume = pending.await;
                check = decide(&guard, &request, Some(resume));
            }
            Check::Ready(Decision::Rejected(r)) => return Ok(rejected(r)),
            Check::Ready(Decision::Admitted(admitted)) => break admitted,
        }
    };
    let mut request = match admitted.body_limit() {
        None => request,
        Some(limit) => {
            let (parts, body) = request.into_parts();
            let read = Limited::new(body, limit).collect().await.map(|c| c.to_bytes()).map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() { BodyError::TooLarge } else { BodyError::Unreadable }
            });
            let headers = Headers(&parts.headers);
            let view = view((&parts.method, &parts.uri, &parts.extensions), &headers);
            let admitted = match admitted.body(&view, read.as_deref().map_err(|e| *e)) {
                Ok(admitted) => admitted,
                Err(r) => return Ok(rejected(r)),
            };
            // Report-only mode forwards even an unreadable body: forward what was read.
            let mut request = Request::from_parts(parts, ReqBody::from(read.unwrap_or_default()));
            let (span, responding) = forward(admitted, &mut request);
            let response = service.call(request).instrument(span).await?;
            return Ok(finish(responding, response).await);
        }
    };
    let (span, responding) = forward(admitted, &mut request);
    let response = service.call(request).instrument(span).await?;
    Ok(finish(responding, response).await)
}

async fn finish<B>(responding: Responding, response: Response<B>) -> Response<B>
where
    B: Body + From<String> + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match respond(responding, response) {
        Finished::Done(response) => response,
        Finished::Read(read, response) => read_response(read, response).await,
    }
}

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`ZeroTrustService`]: the inner future (in the request span)
    /// on the fast path, a denial, or a boxed future when something must be awaited first
    /// (keys, a shared store, the body) or a response must be read.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = Projected]
    enum State<F, B, E> {
        Inner { #[pin] future: F, span: Span, responding: Option<Responding> },
        Ready { response: Option<Response<B>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ZeroTrustService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + From<String> + From<Bytes> + Send + 'static,
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
        let state = match decide(&self.guard, &request, None) {
            Check::Ready(Decision::Rejected(r)) => State::Ready { response: Some(rejected(r)) },
            // The common case: decided at once, no body to read first.
            Check::Ready(Decision::Admitted(admitted)) if admitted.body_limit().is_none() => {
                let (span, responding) = forward(admitted, &mut request);
                let future = span.in_scope(|| self.inner.call(request));
                State::Inner { future, span, responding: Some(responding) }
            }
            check => {
                // The service that was polled ready goes along; a clone stays behind.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                State::Boxed { future: Box::pin(slow_path(service, self.guard.clone(), check, request)) }
            }
        };
        ResponseFuture { state }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body + From<String> + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.as_mut().project();
        let read = match this.state.as_mut().project() {
            Projected::Inner { future, span, responding } => {
                let result = ready!(span.in_scope(|| future.poll(cx)));
                let (response, responding) = match (result, responding.take()) {
                    (Ok(response), Some(responding)) => (response, responding),
                    (result, _) => return Poll::Ready(result),
                };
                match respond(responding, response) {
                    Finished::Done(response) => return Poll::Ready(Ok(response)),
                    Finished::Read(read, response) => Box::pin(read_response(read, response)),
                }
            }
            // Polled after completion: a contract violation by the caller.
            Projected::Ready { response } => return response.take().map_or(Poll::Pending, |r| Poll::Ready(Ok(r))),
            Projected::Boxed { future } => return future.as_mut().poll(cx),
        };
        let mut future: Boxed<B, E> = Box::pin(async move { Ok(read.await) });
        let poll = future.as_mut().poll(cx);
        this.state.set(State::Boxed { future });
        poll
    }
}
