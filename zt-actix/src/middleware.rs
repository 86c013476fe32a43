//! The actix-web middleware: every request goes through [`Guard::check`] first.
//!
//! The whole lifecycle lives in `zt-core` ([`Decision`], [`Admitted`], [`Responding`]); this
//! file only converts actix-web types to and from it.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{StatusCode, Version};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use tracing::Instrument;
use zt_core::{
    BodyError, BodyHint, Check, Decision, Guard, HeaderLookup, Rejected, Reply, RequestView, Responding,
    ResponseBody, ResponseHeaders, ResponsePlan,
};

struct Headers<'a>(&'a HeaderMap);

/// The names the Guard looks up on most requests, as actix (`http` 0.2) header names built at
/// compile time. actix's map parses a `&str` key on every lookup (`HeaderName::from_str`),
/// and a name that is not a standard header (`x-forwarded-for`, `x-request-id`, the method
/// overrides) is copied into a fresh allocation each time: five lookups a request.
fn known_name(name: &str) -> Option<HeaderName> {
    use actix_web::http::header;
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    const X_HTTP_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");
    const X_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-method-override");
    const X_HTTP_METHOD: HeaderName = HeaderName::from_static("x-http-method");
    Some(match name {
        "authorization" => header::AUTHORIZATION,
        "content-type" => header::CONTENT_TYPE,
        "content-length" => header::CONTENT_LENGTH,
        "transfer-encoding" => header::TRANSFER_ENCODING,
        "accept" => header::ACCEPT,
        "accept-encoding" => header::ACCEPT_ENCODING,
        "accept-language" => header::ACCEPT_LANGUAGE,
        "user-agent" => header::USER_AGENT,
        "cookie" => header::COOKIE,
        "forwarded" => header::FORWARDED,
        "x-forwarded-for" => X_FORWARDED_FOR,
        "x-request-id" => X_REQUEST_ID,
        "x-http-method-override" => X_HTTP_METHOD_OVERRIDE,
        "x-method-override" => X_METHOD_OVERRIDE,
        "x-http-method" => X_HTTP_METHOD,
        _ => return None,
    })
}

impl Headers<'_> {
    fn all(&self, name: &str) -> std::slice::Iter<'_, HeaderValue> {
        match known_name(name) {
            Some(known) => self.0.get_all(known),
            None => self.0.get_all(name),
        }
    }
}

impl HeaderLookup for Headers<'_> {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.all(name).nth(index).map(HeaderValue::as_bytes)
    }

    fn line_count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    // One map lookup instead of two (`nth(0)` and `nth(1)`).
    fn get_one(&self, name: &str) -> zt_core::HeaderValue<'_> {
        let mut values = self.all(name);
        match (values.next(), values.next()) {
            (None, _) => zt_core::HeaderValue::Absent,
            (Some(v), None) => zt_core::HeaderValue::One(v.as_bytes()),
            (Some(_), Some(_)) => zt_core::HeaderValue::Repeated,
        }
    }
}

/// Decides on `request` (or resumes a waiting decision) over a view of it.
fn decide(guard: &Guard, request: &ServiceRequest, resume: Option<zt_core::Resume>) -> Check {
    let headers = Headers(request.headers());
    // HTTP/1.x without framing headers has no body (RFC 9112 s.6.3; an upgrade's payload is
    // the connection, not a body). HTTP/2 needs no framing headers: there only a payload
    // actix knows is absent is no body.
    let body = match (request.version() < Version::HTTP_2, request.parts().1) {
        (true, _) | (false, Payload::None) => BodyHint::Empty,
        (false, _) => BodyHint::Unknown,
    };
    match resume {
        None => guard.check(&view(request, &headers, body)),
        Some(resume) => guard.resume(&view(request, &headers, body), resume),
    }
}

fn view<'a>(request: &'a ServiceRequest, headers: &'a Headers<'a>, body: BodyHint) -> RequestView<'a> {
    RequestView {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers,
        peer_addr: request.peer_addr(),
        // Put there per connection by the TLS glue (`HttpServer::on_connect`).
        peer_certificates: request.conn_data::<zt_core::PeerCertificates>(),
        body,
    }
}

/// A zt [`Reply`] (a denial, a blocked response, a controls answer) as an actix response.
pub(crate) fn reply(reply: Reply) -> HttpResponse {
    let (status, headers, body) = reply.into_parts();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, body);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response.map_into_boxed_body()
}

/// The zero-trust middleware (an actix-web `Transform`).
///
/// Usually installed by [`Routes::service`](crate::Routes::service), which carries the route
/// requirements; `ZeroTrust::new` takes a guard that already has its routes.
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

fn rejected<B>(rejected: Rejected, request: ServiceRequest) -> ServiceResponse<EitherBody<B>> {
    request.into_response(reply(rejected.into_response())).map_into_right_body()
}

/// Puts the admission into the request's extensions and applies a normalized path.
/// Adds zt's headers (e.g. RateLimit) unless the service set them.
fn add_headers<B>(response: &mut ServiceResponse<B>, headers: &ResponseHeaders) {
    for (name, value) in headers.iter() {
        // The name parsed once (a `&str` key would be parsed again by the lookup), and
        // `x-request-id` (on every response) not at all: a constant.
        const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
        let name = if name == "x-request-id" { X_REQUEST_ID } else { HeaderName::from_static(name) };
        if !response.headers().contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(value)
        {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Reads a payload whole, up to `limit` bytes (the body phase, zt's own endpoints).
pub(crate) async fn read_payload(mut payload: Payload, limit: usize) -> Result<Bytes, BodyError> {
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

/// The response phase: sent as it is (streams stay streams), or read, checked and rebuilt.
async fn respond<B: MessageBody>(
    responding: Responding,
    response: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    let length = match response.response().body().size() {
        BodySize::Sized(n) => Some(n),
        BodySize::None => Some(0),
        BodySize::Stream => None,
    };
    let content_type =
        response.headers().get(actix_web::http::header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    let read = match responding.head(response.status().as_u16(), content_type, length) {
        ResponsePlan::Send(headers) => {
            let mut response = response;
            add_headers(&mut response, &headers);
            return response.map_into_left_body();
        }
        ResponsePlan::Block(blocked) => {
            return ServiceResponse::new(response.into_parts().0, reply(blocked)).map_into_right_body();
        }
        ResponsePlan::Read(read) => read,
    };
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes_limited(body, read.limit()).await {
        Ok(Ok(bytes)) => Ok(bytes),
        _ => Err(BodyError::Unreadable),
    };
    let (body, headers) = match read.finish(bytes.as_deref().map_err(|e| *e)) {
        ResponseBody::Keep(headers) => (bytes.unwrap_or_default(), headers),
        ResponseBody::Replace(body, headers) => (Bytes::from(body), headers),
        ResponseBody::Block(blocked) => {
            return ServiceResponse::new(request, reply(blocked)).map_into_right_body();
        }
    };
    let mut response = ServiceResponse::new(request, head.set_body(BoxBody::new(body))).map_into_right_body();
    add_headers(&mut response, &headers);
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
async fn dispatch<S, B>(
    service: Rc<S>,
    start: Start,
    mut request: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
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
        Decision::Rejected(r) => return Ok(rejected(r, request)),
        Decision::Admitted(admitted) => admitted,
    };
    if let Some(limit) = admitted.body_limit() {
        let read = read_payload(request.take_payload(), limit).await;
        let headers = Headers(request.headers());
        let view = view(&request, &headers, BodyHint::Unknown);
        admitted = match admitted.body(&view, read.as_deref().map_err(|e| *e)).await {
            Ok(admitted) => admitted,
            Err(r) => return Ok(rejected(r, request)),
        };
        // Report-only mode forwards even an unreadable body: forward what was read.
        request.set_payload(Payload::from(read.unwrap_or_default()));
    }
    if let Some(path) = admitted.rewritten_path() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
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
    let span = admitted.span().clone();
    let (admission, responding) = admitted.forward();
    request.extensions_mut().insert(admission);
    let response = span.in_scope(|| service.call(request)).instrument(span.clone()).await?;
    Ok(respond(responding, response).instrument(span).await)
}

impl<S, B> Service<ServiceRequest> for ZeroTrustMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // The guard goes along only when the decision waits (to resume it): cloning it for
        // every request wrote two reference counts shared by every worker thread.
        let start = match decide(&self.guard, &request, None) {
            Check::Ready(decision) => Start::Ready(decision),
            Check::Pending(pending) => Start::Pending(pending, self.guard.clone()),
        };
        Box::pin(dispatch(Rc::clone(&self.service), start, request))
    }
}
