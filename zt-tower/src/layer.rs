//! The Tower layer: every request goes through [`Guard::check`] before the inner service.
//!
//! The whole lifecycle lives in `zt-core` ([`Decision`], [`Admitted`], [`Responding`]); this
//! file only converts `http` types to and from it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};
use zt_core::{
    Admitted, BodyError, Check, Decision, DenialResponse, Guard, HeaderLookup, ReadResponse, Rejected,
    RequestView, Responding, ResponseBody, ResponseHeaders, ResponsePlan,
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

fn view<'a>(
    parts: (&'a http::Method, &'a Uri, &'a http::Extensions),
    headers: &'a Headers<'a>,
) -> RequestView<'a> {
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
    *response.status_mut() =
        StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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

async fn read_response<B>(read: ReadResponse, response: Response<B>) -> Response<B>
where
    B: Body + From<String> + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = response.into_parts();
    let bytes = Limited::new(body, read.limit())
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| BodyError::Unreadable);
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

/// Everything after the decision: its waits, the body phase, the service, the response.
async fn dispatch<S, ReqBody, ResBody>(
    mut service: S,
    guard: Guard,
    mut check: Check,
    request: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
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
    let (admitted, mut request) = match admitted.body_limit() {
        None => (admitted, request),
        Some(limit) => match read_body(admitted, request, limit).await {
            Ok(admitted) => admitted,
            Err(r) => return Ok(rejected(r)),
        },
    };
    let (span, responding) = forward(admitted, &mut request);
    let response = span.in_scope(|| service.call(request)).instrument(span).await?;
    Ok(finish(responding, response).await)
}

/// The body phase: the body read (bounded), checked, and put back for the service.
async fn read_body<B>(
    admitted: Admitted,
    request: Request<B>,
    limit: usize,
) -> Result<(Admitted, Request<B>), Rejected>
where
    B: Body + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, limit).collect().await.map(|c| c.to_bytes()).map_err(|e| {
        match e.downcast_ref::<http_body_util::LengthLimitError>() {
            Some(_) => BodyError::TooLarge,
            None => BodyError::Unreadable,
        }
    });
    let headers = Headers(&parts.headers);
    let admitted = admitted.body(
        &view((&parts.method, &parts.uri, &parts.extensions), &headers),
        read.as_deref().map_err(|e| *e),
    )?;
    // Report-only mode forwards even an unreadable body: forward what was read.
    Ok((admitted, Request::from_parts(parts, B::from(read.unwrap_or_default()))))
}

/// The response phase: sent as it is (streams stay streams), or read, checked and rebuilt.
async fn finish<B>(responding: Responding, mut response: Response<B>) -> Response<B>
where
    B: Body + From<String> + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = response.headers().get(http::header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    match responding.head(response.status().as_u16(), content_type, response.body().size_hint().exact()) {
        ResponsePlan::Send(headers) => {
            add_headers(&mut response, &headers);
            response
        }
        ResponsePlan::Read(read) => read_response(read, response).await,
    }
}

/// The response future of [`ZeroTrustService`].
pub type ResponseFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

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
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let check = decide(&self.guard, &request, None);
        // The service that was polled ready goes along; a clone stays behind.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        Box::pin(dispatch(service, self.guard.clone(), check, request))
    }
}
