//! The Tower layer: every request goes through [`Guard::check`] before the inner service.
//!
//! The whole lifecycle lives in `zt-core` ([`Decision`], [`Admitted`], [`Responding`]); this
//! file only converts `http` types to and from it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, OriginalUri};
use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use zt_core::{
    BodyError, BodyHint, Check, Decision, Guard, HeaderLookup, Reply, RequestView, ResponseBody,
    ResponseHeaders, ResponsePlan,
};

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

/// A request's headers for the Guard, and the path the client sent when an outer axum
/// router stripped a prefix (`nest_service("/api", app)`): axum keeps the URI as received
/// in `OriginalUri`, which the span's `url.path` reports (issue 18).
struct Headers<'a> {
    map: &'a HeaderMap,
    sent_path: Option<&'a str>,
}

impl HeaderLookup for Headers<'_> {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.map.nth(name, index)
    }

    fn line_count(&self) -> Option<usize> {
        self.map.line_count()
    }

    fn get_one(&self, name: &str) -> zt_core::HeaderValue<'_> {
        self.map.get_one(name)
    }

    fn has_any(&self, names: &[&str]) -> bool {
        self.map.has_any(names)
    }

    fn sent_path(&self) -> Option<&str> {
        self.sent_path
    }
}

impl<'a> Headers<'a> {
    fn of(uri: &'a Uri, headers: &'a HeaderMap, extensions: &'a Extensions) -> Self {
        // Present only once a router has seen the request: zt in front of the whole app sees
        // none (its own inner router adds it later), a nested one the outer router's.
        let sent_path = extensions
            .get::<OriginalUri>()
            .map(|original| original.path())
            .filter(|sent| *sent != uri.path());
        Headers { map: headers, sent_path }
    }
}

/// The view the Guard decides on, borrowed from the request's parts.
fn view<'a>(
    parts: (&'a http::Method, &'a Uri, &'a Headers<'a>, &'a Extensions),
    body: BodyHint,
) -> RequestView<'a> {
    let (method, uri, headers, extensions) = parts;
    RequestView {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers,
        peer_addr: extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
        peer_certificates: extensions.get::<zt_core::PeerCertificates>(),
        body,
    }
}

/// Decides on `request` (or resumes a waiting decision). The body's end of stream and
/// size hint tell the Guard what the headers may not (HTTP/2 needs no `Content-Length`).
fn decide<B: Body>(guard: &Guard, request: &Request<B>, resume: Option<zt_core::Resume>) -> Check {
    let body = match (request.body().is_end_stream(), request.body().size_hint().exact()) {
        (true, _) => BodyHint::Empty,
        (false, Some(n)) => BodyHint::Exact(n),
        (false, None) => BodyHint::Unknown,
    };
    let headers = Headers::of(request.uri(), request.headers(), request.extensions());
    let parts = (request.method(), request.uri(), &headers, request.extensions());
    match resume {
        None => guard.check(&view(parts, body)),
        Some(resume) => guard.resume(&view(parts, body), resume),
    }
}

/// A zt [`Reply`] (a denial, a blocked response, a controls answer) as an `http` response.
pub(crate) fn reply<B: From<String>>(reply: Reply) -> Response<B> {
    let (status, headers, body) = reply.into_parts();
    let mut response = Response::new(B::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response
}

/// A body read whole, up to `limit` bytes.
pub(crate) async fn collect<B: Body>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// `x-request-id`, on every response: built at compile time (`from_static` at run time
/// checks every byte of the name on each call).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds zt's headers (e.g. RateLimit) unless the service set them.
fn add_headers<B>(mut response: Response<B>, headers: &ResponseHeaders) -> Response<B> {
    for (name, value) in headers.iter() {
        // The name parsed once (a `&str` key would be parsed again by each map call).
        let name = if name == "x-request-id" { X_REQUEST_ID } else { HeaderName::from_static(name) };
        if let http::header::Entry::Vacant(slot) = response.headers_mut().entry(name)
            && let Ok(value) = HeaderValue::from_str(value)
        {
            slot.insert(value);
        }
    }
    response
}

/// A decision as `dispatch` starts from: made, or waiting with the guard that resumes it.
// The decided variant is the common one and stays unboxed (as in `Check`): boxing it would
// allocate on every request to save a move on the rare waiting one.
#[allow(clippy::large_enum_variant)]
enum Start {
    Ready(Decision),
    Pending(zt_core::Pending, Guard),
}

/// Everything after the decision: its waits, the body phase, the service, the response.
async fn dispatch<S, ReqBody, ResBody>(
    mut service: S,
    start: Start,
    request: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + From<String> + From<Bytes>,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let decision = match start {
        Start::Ready(decision) => decision,
        Start::Pending(mut pending, guard) => loop {
            // Awaited before the request is borrowed (a borrow held across the await would
            // make the future need a `Sync` body).
            let resume = pending.await;
            match decide(&guard, &request, Some(resume)) {
                Check::Pending(again) => pending = again,
                Check::Ready(decision) => break decision,
            }
        },
    };
    let mut admitted = match decision {
        Decision::Rejected(rejected) => return Ok(reply(rejected.into_response())),
        Decision::Admitted(admitted) => admitted,
    };
    let (mut parts, mut body) = request.into_parts();
    if let Some(limit) = admitted.body_limit() {
        let read = collect(body, limit).await;
        let headers = Headers::of(&parts.uri, &parts.headers, &parts.extensions);
        let parts = (&parts.method, &parts.uri, &headers, &parts.extensions);
        admitted = match admitted.body(&view(parts, BodyHint::Unknown), read.as_deref().map_err(|e| *e)).await
        {
            Ok(admitted) => admitted,
            Err(rejected) => return Ok(reply(rejected.into_response())),
        };
        // Report-only mode forwards even an unreadable body: forward what was read.
        body = ReqBody::from(read.unwrap_or_default());
    }
    if let Some(path) = admitted.rewritten_path() {
        // The normalized path the Guard checked is the one the service routes on.
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        };
        let mut uri = parts.uri.clone().into_parts();
        if let Ok(path_and_query) = path_and_query.parse() {
            uri.path_and_query = Some(path_and_query);
            parts.uri = Uri::from_parts(uri).unwrap_or(parts.uri);
        }
    }
    let span = admitted.span().clone();
    let (admission, responding) = admitted.forward();
    parts.extensions.insert(admission);
    let request = Request::from_parts(parts, body);
    let response = span.in_scope(|| service.call(request)).instrument(span).await?;
    // The response phase: sent as it is (streams stay streams), or read, checked, rebuilt.
    let content_type = response.headers().get(http::header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    let length = response.body().size_hint().exact();
    let read = match responding.head(response.status().as_u16(), content_type, length) {
        ResponsePlan::Send(headers) => return Ok(add_headers(response, &headers)),
        ResponsePlan::Block(blocked) => return Ok(reply(blocked)),
        ResponsePlan::Read(read) => read,
    };
    let (mut parts, body) = response.into_parts();
    let bytes = collect(body, read.limit()).await;
    Ok(match read.finish(bytes.as_deref().map_err(|e| *e)) {
        ResponseBody::Keep(headers) => {
            add_headers(Response::from_parts(parts, ResBody::from(bytes.unwrap_or_default())), &headers)
        }
        ResponseBody::Replace(body, headers) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            add_headers(Response::from_parts(parts, ResBody::from(Bytes::from(body))), &headers)
        }
        ResponseBody::Block(blocked) => reply(blocked),
    })
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
        // The guard goes along only when the decision waits (to resume it): cloning it for
        // every request wrote two reference counts shared by every worker core.
        let start = match check {
            Check::Ready(decision) => Start::Ready(decision),
            Check::Pending(pending) => Start::Pending(pending, self.guard.clone()),
        };
        Box::pin(dispatch(service, start, request))
    }
}
