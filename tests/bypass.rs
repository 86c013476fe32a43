//! Nothing reaches a handler without zt, in both frameworks, over real HTTP on 127.0.0.1:
//! unannotated routes, routes and fallbacks added after wrapping (axum: a compile error, see
//! `zt-tower/tests/ui`; actix: shadowed and denied), nested routers, static files with their
//! own requirement (and traversal attempts), `any` and chained methods, and the control
//! plane, which stays enforced in report-only mode and parses its bodies strictly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::*;
use zt::observe::ObserverConfig;
use zt::{Mode, scopes};

const FILE_TEXT: &str = "hello from disk";

fn guard(mode: Mode) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.mode = mode;
    policy.observe = Some(ObserverConfig::default());
    zt::Guard::new(policy).unwrap()
}

fn bearer(sub: &str, scope: &str) -> String {
    format!("Bearer {}", token(sub, scope))
}

/// A bearer token of `sub` issued to its own OAuth client `client`.
fn bearer_of_client(sub: &str, scope: &str, client: &str) -> String {
    let mut c = claims(sub, scope);
    c["client_id"] = serde_json::json!(client);
    format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &c))
}

/// A directory with `hello.txt` in it, removed on drop.
fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), FILE_TEXT).unwrap();
    dir
}

async fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> RawResponse {
    send(addr, "GET", path, authorization).await
}

async fn send(addr: SocketAddr, method: &str, path: &str, authorization: Option<&str>) -> RawResponse {
    let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
    raw_request(addr, method, path, &headers, None).await
}

/// The routes both apps share, built with each framework's zt router.
mod apps {
    use super::*;

    pub async fn axum(guard: zt::Guard, dir: &Path) -> (SocketAddr, zt::Guard) {
        use axum::response::Response;
        use zt::axum::routing::{any, get};
        let nested = zt::axum::Router::new(guard.clone())
            .route("/", get(|| async { "nested index" }), scopes::all(["nested:read"]))
            .route("/{id}", get(|| async { "nested item" }), scopes::all(["nested:read"]));
        let echo = tower::service_fn(|request: axum::http::Request<axum::body::Body>| async move {
            Ok::<_, std::convert::Infallible>(format!("service saw {}", request.uri().path()))
        });
        let app = zt::axum::Router::new(guard)
            .route("/annotated", get(|| async { "annotated" }), scopes::public())
            .route(
                "/orders",
                get(|| async { "list" }).post(|| async { "created" }),
                scopes::all(["orders:write"]),
            )
            .route("/any", any(|| async { "any" }), scopes::authenticated())
            // A path with a `HEAD` handler of its own (and a `GET`).
            .route(
                "/probe",
                get(|| async { "probe" }).head(|| async { ([("x-handler", "head")], "") }),
                scopes::public(),
            )
            .nest("/nested", nested)
            .route_service("/svc", echo, scopes::all(["svc"]))
            .nest_service("/static", tower_http::services::ServeDir::new(dir), scopes::all(["files:read"]))
            .fallback(|| async { "zt fallback" })
            // Inner layer: after zt's decision, on admitted requests only.
            .layer(axum::middleware::map_response(|mut r: Response| async move {
                r.headers_mut().insert("x-inner", axum::http::HeaderValue::from_static("1"));
                r
            }))
            .controls("/zt/controls")
            .into_axum()
            // Outer layer: sees every response, denials included.
            .layer(axum::middleware::map_response(|mut r: Response| async move {
                r.headers_mut().insert("x-outer", axum::http::HeaderValue::from_static("1"));
                r
            }));
        let guard = app.guard().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        (addr, guard)
    }

    pub fn actix(guard: zt::Guard, dir: &Path) -> (SocketAddr, zt::Guard) {
        use actix_web::{HttpResponse, web};
        use zt::actix::{any, get};
        let nested = zt::actix::Router::new(guard.clone())
            .route("/", get(|| async { "nested index" }), scopes::all(["nested:read"]))
            .route("/{id}", get(|| async { "nested item" }), scopes::all(["nested:read"]));
        let dir = dir.to_path_buf();
        let routes = zt::actix::Router::new(guard)
            .route("/annotated", get(|| async { "annotated" }), scopes::public())
            .route(
                "/orders",
                get(|| async { "list" }).post(|| async { "created" }),
                scopes::all(["orders:write"]),
            )
            .route("/any", any(|| async { "any" }), scopes::authenticated())
            .route(
                "/probe",
                get(|| async { "probe" })
                    .head(|| async { HttpResponse::Ok().insert_header(("x-handler", "head")).finish() }),
                scopes::public(),
            )
            .nest("/nested", nested)
            .nest_service(
                "/static",
                // Without a default handler of its own, `Files` answers a missing file with
                // the App's `default_service` (see `Router::nest_service`).
                move || {
                    actix_files::Files::new("/static", &dir)
                        .default_handler(web::to(|| async { HttpResponse::NotFound().body("no such file") }))
                },
                scopes::all(["files:read"]),
            )
            .fallback(|| async { "zt fallback" })
            .controls("/zt/controls")
            .finish()
            .unwrap();
        let guard = routes.guard().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .service(routes.service())
                        // Registered after zt: shadowed by zt's scope, never served.
                        .route("/late", web::get().to(|| async { HttpResponse::Ok().body("late route") }))
                        .default_service(web::to(|| async { HttpResponse::Ok().body("app default") }))
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
                let _ = server.await;
            });
        });
        (addr, guard)
    }
}

async fn both(mode: Mode, dir: &Path) -> [(&'static str, SocketAddr, zt::Guard); 2] {
    let (axum_addr, axum_guard) = apps::axum(guard(mode), dir).await;
    let (actix_addr, actix_guard) = apps::actix(guard(mode), dir);
    [("axum", axum_addr, axum_guard), ("actix", actix_addr, actix_guard)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_routes_and_late_additions_are_denied() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let r = get(addr, "/annotated", None).await;
        assert_eq!((r.status, r.body.as_str()), (200, "annotated"), "{name}");
        for path in ["/late", "/unregistered", "/annotated/more"] {
            let r = get(addr, path, Some(&bearer("alice", "orders:write"))).await;
            assert_eq!(r.status, 404, "{name} {path}: {r:?}");
            assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:route-not-found"), "{name} {path}");
            assert!(!r.body.contains("late route") && !r.body.contains("default"), "{name} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_outside_the_route_table_is_unreachable_behind_the_layer() {
    // The low-level layer over a plain axum router: `/unannotated` has a handler but no
    // requirement, so the Guard answers 404 before axum routes.
    let mut table = zt::RouteTable::new();
    table.add("GET", "/annotated", scopes::public()).unwrap();
    let guard = guard(Mode::Enforce).with_routes(&table).unwrap();
    let app = axum::Router::new()
        .route("/annotated", axum::routing::get(|| async { "annotated" }))
        .route("/unannotated", axum::routing::get(|| async { "leaked" }))
        .layer(zt::axum::ZeroTrustLayer::new(guard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(get(addr, "/annotated", None).await.status, 200);
    let r = get(addr, "/unannotated", Some(&bearer("alice", "anything"))).await;
    assert_eq!((r.status, r.problem_type().as_deref()), (404, Some("urn:zt:problem:route-not-found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_forwards_unregistered_paths_to_the_fallback_through_zt() {
    let dir = files();
    for (name, addr, guard) in both(Mode::Report, dir.path()).await {
        // Report-only mode forwards what it would deny; the zt router's fallback answers,
        // not a route or default service added to the actix App later.
        let r = get(addr, "/late", None).await;
        assert_eq!((r.status, r.body.as_str()), (200, "zt fallback"), "{name}: {r:?}");
        // ... and the request went through zt: the inventory saw an undeclared endpoint.
        let inventory = serde_json::to_value(guard.observer().unwrap().inventory().snapshot()).unwrap();
        let late = inventory["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["route"] == "/late")
            .unwrap_or_else(|| panic!("{name}: {inventory}"));
        assert_eq!(
            (late["declared"].as_bool(), late["decisions"]["would_deny"].as_u64()),
            (Some(false), Some(1))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_scope_404_goes_through_the_middleware() {
    // No fallback and report-only mode: the zt scope's own 404 is the answer (the App's
    // `default_service` is shadowed), and zt saw and recorded the request.
    let guard = guard(Mode::Report);
    let routes = zt::actix::Router::new(guard)
        .route("/annotated", zt::actix::get(|| async { "annotated" }), scopes::public())
        .finish()
        .unwrap();
    let observed = routes.guard().clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().service(routes.service()).default_service(actix_web::web::to(
                    || async { actix_web::HttpResponse::Ok().body("app default") },
                ))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
            let _ = server.await;
        });
    });
    let r = get(addr, "/nowhere", None).await;
    assert_eq!(r.status, 404, "zt's scope answers, not the App's default service: {r:?}");
    let inventory = serde_json::to_value(observed.observer().unwrap().inventory().snapshot()).unwrap();
    let nowhere = inventory["endpoints"].as_array().unwrap().iter().find(|e| e["route"] == "/nowhere");
    let nowhere = nowhere.unwrap_or_else(|| panic!("{inventory}"));
    assert_eq!(nowhere["status_classes"]["4xx"], 1, "{inventory}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_methods_share_one_requirement_and_any_excludes_trace() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let writer = bearer("alice", "orders:write");
        let reader = bearer("bob", "orders:read");
        for (method, body) in [("GET", "list"), ("POST", "created")] {
            let r = send(addr, method, "/orders", Some(&writer)).await;
            assert_eq!((r.status, r.body.as_str()), (200, body), "{name} {method}");
            let r = send(addr, method, "/orders", Some(&reader)).await;
            assert_eq!(r.status, 403, "{name} {method}: the chained method has the same requirement");
            assert_eq!(send(addr, method, "/orders", None).await.status, 401, "{name} {method}");
        }
        let r = send(addr, "PUT", "/orders", Some(&writer)).await;
        assert_eq!(r.status, 405, "{name}");
        let allow = r.header("allow").unwrap_or_default().to_string();
        assert!(allow.contains("GET") && allow.contains("POST") && !allow.contains("PUT"), "{name}: {allow}");

        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let r = send(addr, method, "/any", Some(&reader)).await;
            assert_eq!(r.status, 200, "{name} {method} /any");
            assert_eq!(send(addr, method, "/any", None).await.status, 401, "{name} {method} /any");
        }
        let r = send(addr, "TRACE", "/any", Some(&reader)).await;
        assert_eq!(r.status, 405, "{name}: TRACE is not part of any()");

        // HEAD on a GET route is that route (same requirement); a path's own HEAD handler
        // keeps its requests.
        let r = send(addr, "HEAD", "/orders", Some(&writer)).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "{name} HEAD /orders");
        assert_eq!(send(addr, "HEAD", "/orders", Some(&reader)).await.status, 403, "{name} HEAD /orders");
        assert_eq!(send(addr, "HEAD", "/orders", None).await.status, 401, "{name} HEAD /orders");
        let r = send(addr, "HEAD", "/probe", None).await;
        assert_eq!((r.status, r.header("x-handler")), (200, Some("head")), "{name} HEAD /probe: {r:?}");
        let r = send(addr, "GET", "/probe", None).await;
        assert_eq!(
            (r.status, r.header("x-handler"), r.body.as_str()),
            (200, None, "probe"),
            "{name} GET /probe"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_routers_keep_their_requirements() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let nested = bearer("alice", "nested:read");
        let r = get(addr, "/nested", Some(&nested)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "nested index"), "{name}");
        let r = get(addr, "/nested/7", Some(&nested)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "nested item"), "{name}");
        assert_eq!(get(addr, "/nested/7", Some(&bearer("bob", "orders:read"))).await.status, 403, "{name}");
        assert_eq!(get(addr, "/nested/7", None).await.status, 401, "{name}");
        assert_eq!(get(addr, "/nested/7/deeper", Some(&nested)).await.status, 404, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_have_their_own_requirement_and_refuse_traversal() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let files = bearer("alice", "files:read");
        let r = get(addr, "/static/hello.txt", None).await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
        assert_eq!(
            get(addr, "/static/hello.txt", Some(&bearer("bob", "orders:read"))).await.status,
            403,
            "{name}"
        );
        let r = get(addr, "/static/hello.txt", Some(&files)).await;
        assert_eq!((r.status, r.body.as_str()), (200, FILE_TEXT), "{name}");
        assert_eq!(get(addr, "/static/missing.txt", Some(&files)).await.status, 404, "{name}");
        for path in [
            "/static/../Cargo.toml",
            "/static/%2e%2e/Cargo.toml",
            "/static/%2E%2E/x",
            "/static/..%2fCargo.toml",
        ] {
            let r = get(addr, path, Some(&files)).await;
            assert!(matches!(r.status, 400 | 404), "{name} {path}: {r:?}");
            assert!(r.problem_type().is_some(), "{name} {path}: refused by zt, not the file service: {r:?}");
            assert!(!r.body.contains("[package]"), "{name} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_services_and_layers() {
    let dir = files();
    let (addr, _) = apps::axum(guard(Mode::Enforce), dir.path()).await;
    let r = get(addr, "/svc", Some(&bearer("alice", "svc"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "service saw /svc"));
    assert_eq!(get(addr, "/svc", Some(&bearer("alice", "other"))).await.status, 403);
    // The outer layer sees everything, the inner one only what zt admitted.
    let denied = get(addr, "/svc", None).await;
    assert_eq!((denied.status, denied.header("x-outer"), denied.header("x-inner")), (401, Some("1"), None));
    let admitted = get(addr, "/annotated", None).await;
    assert_eq!((admitted.header("x-outer"), admitted.header("x-inner")), (Some("1"), Some("1")));
}

async fn post(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    content_type: &str,
    body: &str,
) -> RawResponse {
    let mut headers = vec![("content-type", content_type)];
    if let Some(authorization) = authorization {
        headers.push(("authorization", authorization));
    }
    raw_request(addr, "POST", path, &headers, Some(body.as_bytes())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_is_enforced_even_in_report_only_mode() {
    let dir = files();
    for mode in [Mode::Enforce, Mode::Report] {
        for (name, addr, guard) in both(mode, dir.path()).await {
            let at = format!("{name} {mode:?}");
            if mode == Mode::Report {
                // Report-only mode is on: an ordinary route is forwarded without its scope.
                assert_eq!(get(addr, "/orders", None).await.status, 200, "{at}");
            }
            let block = r#"{"kind": "subject", "value": "mallory", "seconds": 600}"#;
            let json = "application/json";
            let r = post(addr, "/zt/controls/blocks", None, json, block).await;
            assert_eq!(r.status, 401, "{at}: {r:?}");
            assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{at}");
            let r =
                post(addr, "/zt/controls/blocks", Some(&bearer("alice", "orders:write")), json, block).await;
            assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:insufficient-scope"), "{at}: {r:?}");
            assert_eq!(r.status, 403, "{at}");
            assert_eq!(
                get(addr, "/zt/controls", Some(&bearer("alice", "orders:write"))).await.status,
                403,
                "{at}"
            );
            assert_eq!(guard.observer().unwrap().controls().active_blocks(), 0, "{at}: nothing was blocked");
            let r = post(addr, "/zt/controls/blocks", Some(&bearer("root", "zt:admin")), json, block).await;
            assert_eq!(r.status, 201, "{at}: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_blocks_by_client_principal_and_subject() {
    let dir = files();
    for (name, addr, guard) in both(Mode::Enforce, dir.path()).await {
        let admin = bearer("root", "zt:admin");
        let json = "application/json";
        let writer = bearer("alice", "orders:write");
        assert_eq!(get(addr, "/orders", Some(&writer)).await.status, 200, "{name}");

        // A subject block names the bare `sub`.
        let r = post(
            addr,
            "/zt/controls/blocks",
            Some(&admin),
            json,
            r#"{"kind": "subject", "value": "alice", "seconds": 60}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        let r = get(addr, "/orders", Some(&writer)).await;
        assert_eq!((r.status, r.problem_type().as_deref()), (403, Some("urn:zt:problem:blocked")), "{name}");
        let unblock = r#"{"kind": "subject", "value": "alice"}"#;
        assert_eq!(
            post(addr, "/zt/controls/unblock", Some(&admin), json, unblock).await.status,
            204,
            "{name}"
        );
        assert_eq!(get(addr, "/orders", Some(&writer)).await.status, 200, "{name}");

        // Client and principal blocks are stored under the names the API was given, and
        // `Controls::is_caller_blocked` finds them (the Guard's use of it is tested below).
        let principal = format!("{ISSUER}|sub:carol");
        for (kind, value) in [("client", "carol-cli"), ("principal", principal.as_str())] {
            let body = serde_json::json!({"kind": kind, "value": value, "seconds": 60, "reason": "test"})
                .to_string();
            let r = post(addr, "/zt/controls/blocks", Some(&admin), json, &body).await;
            assert_eq!(r.status, 201, "{name} {kind}: {r:?}");
            let created: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(created["target"], format!("{kind}:{value}"), "{name}");
            assert_eq!(created["reason"], "test", "{name}");
        }
        let listed: serde_json::Value =
            serde_json::from_str(&get(addr, "/zt/controls", Some(&admin)).await.body).unwrap();
        assert_eq!(listed["blocks"].as_array().unwrap().len(), 2, "{name}: {listed}");
        let controls = guard.observer().unwrap().controls();
        assert!(controls.unblock(&zt::observe::Target::Client("carol-cli".into())), "{name}");
        assert!(controls.unblock(&zt::observe::Target::Principal(principal.clone())), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_principal_blocks_refuse_the_caller() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let admin = bearer("root", "zt:admin");
        let json = "application/json";
        // Carol's own client: blocking it must not block the operator's.
        let carol = bearer_of_client("carol", "orders:write", "carol-cli");
        let principal = format!("{ISSUER}|sub:carol");
        for (kind, value) in [("client", "carol-cli"), ("principal", principal.as_str())] {
            let body = serde_json::json!({"kind": kind, "value": value, "seconds": 60}).to_string();
            assert_eq!(
                post(addr, "/zt/controls/blocks", Some(&admin), json, &body).await.status,
                201,
                "{name}"
            );
            let r = get(addr, "/orders", Some(&carol)).await;
            assert_eq!(
                (r.status, r.problem_type().as_deref()),
                (403, Some("urn:zt:problem:blocked")),
                "{name} {kind}"
            );
            let body = serde_json::json!({"kind": kind, "value": value}).to_string();
            assert_eq!(
                post(addr, "/zt/controls/unblock", Some(&admin), json, &body).await.status,
                204,
                "{name}"
            );
            assert_eq!(get(addr, "/orders", Some(&carol)).await.status, 200, "{name} {kind}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_take_a_string_or_integer_jti() {
    let dir = files();
    for (name, addr, guard) in both(Mode::Enforce, dir.path()).await {
        let admin = bearer("root", "zt:admin");
        let exp = now() + 600;
        for jti in [serde_json::json!(4711), serde_json::json!(format!("jti-{name}"))] {
            let body = serde_json::json!({"jti": jti, "expires_at": exp}).to_string();
            let r = post(addr, "/zt/controls/revocations", Some(&admin), "application/json", &body).await;
            assert_eq!((r.status, r.body.as_str()), (201, ""), "{name} {jti}");
        }
        let controls = guard.observer().unwrap().controls();
        assert!(controls.is_revoked("4711"), "{name}: an integer jti is matched as its decimal text");
        assert!(controls.is_revoked(&format!("jti-{name}")), "{name}");
        let listed: serde_json::Value =
            serde_json::from_str(&get(addr, "/zt/controls", Some(&admin)).await.body).unwrap();
        assert_eq!(listed["revocations"], 2, "{name}: {listed}");
        // A string revoked token is refused from then on.
        let mut claims = claims("alice", "orders:write");
        claims["jti"] = serde_json::json!(format!("jti-{name}"));
        let revoked = format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &claims));
        let r = get(addr, "/orders", Some(&revoked)).await;
        assert_eq!(
            (r.status, r.problem_type().as_deref()),
            (401, Some("urn:zt:problem:token-revoked")),
            "{name}"
        );
    }
}

/// Needs the Guard to read the `jti` through `Identity::token_id` (an integer as its decimal
/// text) instead of as a JSON string only; remove the `ignore` with the Guard rewrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_revoked_integer_jti_is_refused() {
    let dir = files();
    for (name, addr, _) in both(Mode::Enforce, dir.path()).await {
        let admin = bearer("root", "zt:admin");
        let mut claims = claims("alice", "orders:write");
        claims["jti"] = serde_json::json!(90210);
        let token = format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &claims));
        assert_eq!(get(addr, "/orders", Some(&token)).await.status, 200, "{name}");
        let body = serde_json::json!({"jti": 90210, "expires_at": claims["exp"]}).to_string();
        assert_eq!(
            post(addr, "/zt/controls/revocations", Some(&admin), "application/json", &body).await.status,
            201
        );
        let r = get(addr, "/orders", Some(&token)).await;
        assert_eq!(
            (r.status, r.problem_type().as_deref()),
            (401, Some("urn:zt:problem:token-revoked")),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_control_bodies_are_400_problems() {
    let dir = files();
    for (name, addr, guard) in both(Mode::Enforce, dir.path()).await {
        let admin = bearer("root", "zt:admin");
        let json = "application/json";
        let cases = [
            ("/zt/controls/blocks", "{\"kind\":", "the body is not valid JSON"),
            ("/zt/controls/blocks", "[]", "the body must be a JSON object"),
            (
                "/zt/controls/blocks",
                r#"{"kind": "tenant", "value": "x", "seconds": 600}"#,
                "`kind` must be one of principal, subject, client, address, network",
            ),
            (
                "/zt/controls/blocks",
                r#"{"kind": "address", "value": "not-an-ip", "seconds": 600}"#,
                "`value` must be an IP address for an address block, a CIDR or an IP address for a network block",
            ),
            (
                "/zt/controls/blocks",
                r#"{"kind": "subject", "value": "x", "seconds": 0}"#,
                "`seconds` must be an integer from 1 to 86400",
            ),
            (
                "/zt/controls/blocks",
                r#"{"kind": "subject", "value": "x", "seconds": 60, "extra": true}"#,
                "the body has an unknown member (allowed: kind, value, seconds, reason)",
            ),
            ("/zt/controls/unblock", r#"{"kind": "subject"}"#, "`value` is required"),
            (
                "/zt/controls/revocations",
                r#"{"jti": ["a"], "expires_at": 1}"#,
                "`jti` must be a string of 1 to 256 characters or an integer",
            ),
            (
                "/zt/controls/revocations",
                r#"{"jti": "a", "expires_at": "soon"}"#,
                "`expires_at` must be an integer from 0 to 253402300799 (the token's exp, Unix seconds)",
            ),
        ];
        for (path, body, detail) in cases {
            let r = post(addr, path, Some(&admin), json, body).await;
            assert_eq!(r.status, 400, "{name} {path} {body}: {r:?}");
            assert_eq!(r.header("content-type"), Some("application/problem+json"), "{name} {body}");
            let problem: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(problem["detail"], detail, "{name} {body}");
            assert_eq!(problem["type"], "urn:zt:problem:invalid-body", "{name} {body}");
            assert_eq!(problem["request_id"].as_str(), r.header("x-request-id"), "{name} {body}");
        }
        let block = r#"{"kind": "subject", "value": "x", "seconds": 60}"#;
        assert_eq!(
            post(addr, "/zt/controls/blocks", Some(&admin), "text/plain", block).await.status,
            415,
            "{name}"
        );
        let huge = format!(
            r#"{{"kind": "subject", "value": "x", "seconds": 60, "reason": "{}"}}"#,
            "r".repeat(20_000)
        );
        let r = post(addr, "/zt/controls/blocks", Some(&admin), json, &huge).await;
        assert!(matches!(r.status, 413), "{name}: {r:?}");
        assert_eq!(guard.observer().unwrap().controls().active_blocks(), 0, "{name}: nothing was blocked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_answer_404_when_monitoring_is_off() {
    let guard = zt::Guard::new(policy_with_jwks(trusted_jwks())).unwrap();
    let app = zt::axum::Router::new(guard.clone()).controls("/ops").into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axum_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let routes = zt::actix::Router::new(guard).controls("/ops").finish().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let actix_addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().service(routes.service()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
            let _ = server.await;
        });
    });
    for (name, addr) in [("axum", axum_addr), ("actix", actix_addr)] {
        let r = get(addr, "/ops", Some(&bearer("root", "zt:admin"))).await;
        assert_eq!(
            (r.status, r.problem_type().as_deref()),
            (404, Some("urn:zt:problem:monitoring-off")),
            "{name}"
        );
        assert_eq!(get(addr, "/ops", None).await.status, 401, "{name}: the requirement still comes first");
    }
}

#[test]
fn a_public_control_plane_is_refused() {
    let guard = guard(Mode::Enforce);
    let axum =
        zt::axum::Router::new(guard.clone()).controls_with("/zt/controls", scopes::public()).try_into_axum();
    assert!(axum.unwrap_err().to_string().contains("cannot be public"));
    let actix = zt::actix::Router::new(guard).controls_with("/zt/controls", scopes::public()).finish();
    assert!(actix.err().unwrap().to_string().contains("cannot be public"));
}
