//! Serving a [`TokenIssuer`]: its JWK set and its token-exchange endpoint as axum handlers.
//!
//! Both are registered in a zt [`Router`](crate::Router) like any other route, so the Guard
//! decides first: the JWK set is public, the exchange endpoint needs an authenticated caller,
//! whose verified [`Identity`] is the subject of the exchange.
//!
//! ```
//! use zt_core::issuer::{TokenIssuer, TokenIssuerConfig};
//! use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
//! use zt_tower::issuer::{exchange_handler, jwks_handler};
//! use zt_tower::{routing::{get, post}, Router};
//!
//! let issuer = TokenIssuer::new(TokenIssuerConfig::new("https://service-a.example")
//!     .audience("service-b")).unwrap();
//! let guard = Guard::new(Policy::builder()
//!     .issuer(IssuerConfig::new("https://idp.example").audience("service-a")
//!         .jwks_url("https://idp.example/jwks"))
//!     .build()).unwrap();
//! let app: zt_tower::GuardedApp = Router::new(guard)
//!     .route("/.well-known/jwks.json", get(jwks_handler(issuer.clone())), scopes::public())
//!     .route("/token", post(exchange_handler(issuer)), scopes::authenticated())
//!     .into_axum();
//! ```
//!
//! All the logic (form parsing, scope narrowing, error bodies) is in
//! [`zt_core::issuer`]; these handlers only translate.

use std::future::Future;
use std::pin::Pin;

use axum::extract::{FromRequestParts, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use zt_core::issuer::{ExchangeError, IssuerResponse, TokenIssuer};

use crate::Identity;

/// Largest token-exchange form read; a real one is a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

fn respond(answer: IssuerResponse) -> Response {
    let (status, headers, body) = answer.into_parts();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// Serves the issuer's JWK set (`GET`), with its recommended `Cache-Control`.
pub fn jwks_handler(issuer: TokenIssuer) -> JwksHandler {
    JwksHandler { issuer }
}

/// Serves RFC 8693 token exchange (`POST`, form body) for the caller's verified identity.
/// Answers 200 with the RFC 8693 body, or 400 with an RFC 6749 error (`invalid_request`,
/// `invalid_scope`, `invalid_target`, `unsupported_grant_type`).
pub fn exchange_handler(issuer: TokenIssuer) -> ExchangeHandler {
    ExchangeHandler { issuer }
}

/// The axum handler made by [`jwks_handler`].
#[derive(Clone, Debug)]
pub struct JwksHandler {
    issuer: TokenIssuer,
}

/// The axum handler made by [`exchange_handler`].
#[derive(Clone, Debug)]
pub struct ExchangeHandler {
    issuer: TokenIssuer,
}

type BoxedResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

impl<S: Clone + Send + Sync + 'static> Handler<(), S> for JwksHandler {
    type Future = std::future::Ready<Response>;

    fn call(self, _request: Request, _state: S) -> Self::Future {
        std::future::ready(respond(self.issuer.jwks_response()))
    }
}

impl<S: Clone + Send + Sync + 'static> Handler<(), S> for ExchangeHandler {
    type Future = BoxedResponse;

    fn call(self, request: Request, state: S) -> Self::Future {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            // The same extractor as in application handlers: a request without a verified
            // identity (no zt layer, or a public route called anonymously) is refused.
            let who = match Identity::from_request_parts(&mut parts, &state).await {
                Ok(who) => who,
                Err(rejection) => return rejection.into_response(),
            };
            let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
                return respond(ExchangeError::MalformedBody.to_response());
            };
            let content_type = parts.headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
            respond(self.issuer.exchange_response(&who, content_type, &body))
        })
    }
}
