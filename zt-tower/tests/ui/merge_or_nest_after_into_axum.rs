// Merging or nesting an unannotated axum router into the finished app is refused too.
use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
use zt_tower::{routing::get, Router};

fn main() {
    let guard = Guard::new(Policy::builder()
        .issuer(IssuerConfig::new("https://issuer.example").audience("api").jwks_url("https://issuer.example/jwks"))
        .build()).unwrap();
    let app = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).into_axum();
    let extra = axum::Router::new().route("/admin", axum::routing::get(|| async { "unprotected" }));
    let _ = app.clone().merge(extra.clone());
    let _ = app.nest("/more", extra);
}
