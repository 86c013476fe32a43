// Replacing the fallback of the finished app would route every request around zt: there is
// no `fallback` (nor `fallback_service`) on it.
use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
use zt_tower::{routing::get, Router};

fn main() {
    let guard = Guard::new(Policy::builder()
        .issuer(IssuerConfig::new("https://issuer.example").audience("api").jwks_url("https://issuer.example/jwks"))
        .build()).unwrap();
    let app = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).into_axum();
    let _ = app.fallback(|| async { "unprotected" });
}
