//! The Tower layer: every request goes through [`Guard::check`] before the inner service.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ConnectInfo;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use zt_core::{
    Check, Guard, HeaderLookup, Outcome, PendingCheck, RequestId, RequestView, Verdict, telemetry,
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
    denial: &zt_core::Denial,
    request_id: &RequestId,
) -> Response<B> {
    let rendered = guard.render(denial, request_id);
    let mut response = Response::new(B::from(rendered.body));
    *response.status_mut() = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::FORBIDDEN);
    for (name, value) in rendered.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response
}

pin_project! {
    /// The response future of [`ZeroTrustService`]: the inner future (instrumented with the
    /// request span), a denial, or a decision waiting for keys.
    pub struct ResponseFuture<S, ReqBody, F, ResBody> {
        #[pin]
        state: State<S, ReqBody, F, ResBody>,
    }
}

pin_project! {
    #[project = Projected]
    enum State<S, ReqBody, F, ResBody> {
        Inner { #[pin] future: F, span: Span },
        Denied { response: Option<Response<ResBody>> },
        Waiting {
            #[pin] pending: PendingCheck,
            request: Option<Request<ReqBody>>,
            service: S,
            guard: Guard,
        },
    }
}

fn forward<S, ReqBody, ResBody>(
    service: &mut S,
    guard: &Guard,
    verdict: Verdict,
    mut request: Request<ReqBody>,
) -> ResponseFuture<S, ReqBody, S::Future, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    {
        match verdict.outcome {
            Outcome::Allow(identity) => {
                let extensions = request.extensions_mut();
                if let Some(identity) = identity {
                    extensions.insert(crate::Identity(identity));
                }
                extensions.insert(RequestContext { request_id: verdict.request_id, guard: guard.clone() });
                let future = {
                    let _entered = verdict.span.enter();
                    service.call(request)
                };
                ResponseFuture { state: State::Inner { future, span: verdict.span } }
            }
            Outcome::Deny(denial) => {
                let response = denial_response(guard, &denial, &verdict.request_id);
                telemetry::record_status(&verdict.span, response.status().as_u16());
                ResponseFuture { state: State::Denied { response: Some(response) } }
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ZeroTrustService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let check = {
            let headers = Headers(request.headers());
            let view = RequestView {
                method: request.method().as_str(),
                path: request.uri().path(),
                query: request.uri().query(),
                headers: &headers,
                peer_addr: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            };
            self.guard.check(&view)
        };
        match check {
            Check::Ready(verdict) => forward(&mut self.inner, &self.guard, verdict, request),
            Check::Pending(pending) => {
                // The service that was polled ready is taken along; a clone stays behind.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Waiting {
                        pending,
                        request: Some(request),
                        service,
                        guard: self.guard.clone(),
                    },
                }
            }
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, S::Future, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                Projected::Inner { future, span } => {
                    let _entered = span.enter();
                    let result = ready!(future.poll(cx));
                    if let Ok(response) = &result {
                        telemetry::record_status(span, response.status().as_u16());
                    }
                    return Poll::Ready(result);
                }
                Projected::Denied { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        // Polled after completion: a contract violation by the caller.
                        None => Poll::Pending,
                    };
                }
                Projected::Waiting { pending, request, service, guard } => {
                    let verdict = ready!(pending.poll(cx));
                    let Some(request) = request.take() else {
                        return Poll::Pending;
                    };
                    let guard = guard.clone();
                    let next = forward(service, &guard, verdict, request);
                    state.set(next.state);
                }
            }
        }
    }
}
