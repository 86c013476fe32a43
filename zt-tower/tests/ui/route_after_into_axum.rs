// A route added after zt's router is finished would be served without a requirement: the
// finished app has no `route` method.
use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
use zt_tower::{routing::get, Router};

fn main() {
    let guard = Guard::new(Policy::builder()
        .issuer(IssuerConfig::new("https://issuer.example").audience("api").jwks_url("https://issuer.example/jwks"))
        .build()).unwrap();
    let app = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).into_axum();
    let _ = app.route("/admin", axum::routing::get(|| async { "unprotected" }));
}
