//! Serving a [`TokenIssuer`]: its JWK set and its token-exchange endpoint as actix-web
//! handlers, for [`get`](crate::get) and [`post`](crate::post).
//!
//! Both are registered in a zt [`Router`](crate::Router) like any other route, so the Guard
//! decides first: the JWK set is public, the exchange endpoint needs an authenticated caller,
//! whose verified [`Identity`](crate::Identity) is the subject of the exchange. Answers are identical to
//! `zt_tower::issuer`'s.
//!
//! ```
//! use zt_actix::issuer::{exchange, jwks};
//! use zt_actix::{get, post, Router};
//! use zt_core::issuer::{TokenIssuer, TokenIssuerConfig};
//! use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
//!
//! let issuer = TokenIssuer::new(TokenIssuerConfig::new("https://service-a.example")
//!     .audience("service-b")).unwrap();
//! let guard = Guard::new(Policy::builder()
//!     .issuer(IssuerConfig::new("https://idp.example").audience("service-a")
//!         .jwks_url("https://idp.example/jwks"))
//!     .build()).unwrap();
//! let routes = Router::new(guard)
//!     .route("/.well-known/jwks.json", get(jwks(issuer.clone())), scopes::public())
//!     .route("/token", post(exchange(issuer)), scopes::authenticated())
//!     .finish()
//!     .unwrap();
//! let app = actix_web::App::new().service(routes.service());
//! ```

use actix_web::web::Payload;
use actix_web::{Handler, HttpRequest, HttpResponse};
use zt_core::BuiltinEndpoint;
use zt_core::issuer::TokenIssuer;

use crate::router::builtin;

/// Serves the issuer's JWK set (`GET`), with its recommended `Cache-Control`.
pub fn jwks(
    issuer: TokenIssuer,
) -> impl Handler<(HttpRequest, Payload), Output = HttpResponse> + Send + Sync {
    builtin(BuiltinEndpoint::jwks(issuer))
}

/// Serves RFC 8693 token exchange (`POST`, form body) for the caller's verified identity.
/// Answers 200 with the RFC 8693 body, or 400 with an RFC 6749 error (`invalid_request`,
/// `invalid_scope`, `invalid_target`, `unsupported_grant_type`).
pub fn exchange(
    issuer: TokenIssuer,
) -> impl Handler<(HttpRequest, Payload), Output = HttpResponse> + Send + Sync {
    builtin(BuiltinEndpoint::token_exchange(issuer))
}
