//! Serving a [`TokenIssuer`]: its JWK set and its token-exchange endpoint as axum handlers.
//!
//! Both are registered in a zt [`Router`](crate::Router) like any other route, so the Guard
//! decides first: the JWK set is public, the exchange endpoint needs an authenticated caller,
//! whose verified [`Identity`](crate::Identity) is the subject of the exchange.
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

use zt_core::BuiltinEndpoint;
use zt_core::issuer::TokenIssuer;

use crate::BuiltinHandler;

/// Serves the issuer's JWK set (`GET`), with its recommended `Cache-Control`.
pub fn jwks_handler(issuer: TokenIssuer) -> BuiltinHandler {
    BuiltinHandler(BuiltinEndpoint::jwks(issuer))
}

/// Serves RFC 8693 token exchange (`POST`, form body) for the caller's verified identity.
/// Answers 200 with the RFC 8693 body, or 400 with an RFC 6749 error (`invalid_request`,
/// `invalid_scope`, `invalid_target`, `unsupported_grant_type`).
pub fn exchange_handler(issuer: TokenIssuer) -> BuiltinHandler {
    BuiltinHandler(BuiltinEndpoint::token_exchange(issuer))
}
