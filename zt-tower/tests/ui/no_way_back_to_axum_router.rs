// The finished app is not an `axum::Router` and does not dereference to one, so the inner
// router (and its `route`) cannot be reached.
use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
use zt_tower::{routing::get, Router};

fn main() {
    let guard = Guard::new(Policy::builder()
        .issuer(IssuerConfig::new("https://issuer.example").audience("api").jwks_url("https://issuer.example/jwks"))
        .build()).unwrap();
    let app = Router::new(guard).route("/health", get(|| async { "ok" }), scopes::public()).into_axum();
    let router: &axum::Router = &app;
    let _ = router;
}
