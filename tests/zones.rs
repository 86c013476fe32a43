//! Trust zones, context conditions, certificate-bound tokens and ownership bindings: first
//! through the Guard's own API with real certificates, then over real mutual-TLS
//! handshakes against both demo services.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;
use support::pki::{Issued, Pki, pki};
use support::*;
use zt::policy::{IssuerConfig, Policy};
use zt::request::HeaderList;
use zt::zones::ZoneConfig;
use zt::{Decision, Guard, PeerCertificates, Reason, RequestView, scopes};

fn admin_zone() -> ZoneConfig {
    ZoneConfig {
        name: "admin".into(),
        routes: vec!["DELETE /orders/{id}".into()],
        require_mtls: true,
        require_bound_token: true,
        spiffe_trust_domains: vec!["prod.example".into()],
        ..Default::default()
    }
}

fn policy(zones: Vec<ZoneConfig>) -> Policy {
    let mut b = Policy::builder()
        .realm(AUDIENCE)
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
        .route("GET", "/orders", scopes::all(["orders:read"]))
        .route("DELETE", "/orders/{id}", scopes::all(["orders:admin"]))
        .route("GET", "/tenants/{tenant_id}/orders", scopes::all(["orders:read"]))
        .route("GET", "/internal/metrics", scopes::authenticated())
        .binding("tenant_id", "tenant_id");
    for z in zones {
        b = b.zone(z);
    }
    b.build()
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<String>,
    cert: Option<&'a Issued>,
    peer: &'a str,
}

async fn decide(guard: &Guard, call: Call<'_>) -> Result<Option<String>, Reason> {
    let mut headers = HeaderList::default();
    if let Some(t) = &call.token {
        headers = headers.with("authorization", format!("Bearer {t}"));
    }
    let peer: Option<PeerCertificates> = call.cert.map(Issued::peer);
    let view = RequestView {
        method: call.method,
        path: call.path,
        query: None,
        headers: &headers,
        peer_addr: Some(call.peer.parse().unwrap()),
        peer_certificates: peer.as_ref(),
        body: zt::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(a) => Ok(a.identity().and_then(|i| i.subject().map(str::to_string))),
        Decision::Rejected(r) => Err(r.reason()),
    }
}

fn bound_token(sub: &str, scope: &str, cert: &Issued) -> String {
    let mut c = claims(sub, scope);
    c["cnf"] = json!({"x5t#S256": cert.thumbprint()});
    sign(key(Algorithm::ES256), &c)
}

const LOCAL: &str = "127.0.0.1:40000";

#[tokio::test]
async fn admin_zone_requires_mtls_spiffe_and_a_bound_token() {
    let pki = pki();
    let g =
        Guard::new(policy(vec![admin_zone(), ZoneConfig { name: "default".into(), ..Default::default() }]))
            .unwrap();
    fn del(token: Option<String>, cert: Option<&Issued>) -> Call<'_> {
        Call { method: "DELETE", path: "/orders/7", token, cert, peer: LOCAL }
    }
    let admin = token("root", "orders:admin");
    assert_eq!(decide(&g, del(Some(admin.clone()), None)).await, Err(Reason::MtlsRequired));
    assert_eq!(decide(&g, del(Some(admin.clone()), Some(&pki.admin))).await, Err(Reason::BoundTokenRequired));
    // Bound to another certificate: invalid wherever it is used (RFC 8705).
    let bound_elsewhere = bound_token("root", "orders:admin", &pki.plain);
    assert_eq!(
        decide(&g, del(Some(bound_elsewhere.clone()), Some(&pki.admin))).await,
        Err(Reason::CertificateBindingMismatch)
    );
    let r = decide(
        &g,
        Call {
            method: "GET",
            path: "/orders",
            token: Some(bound_elsewhere),
            cert: Some(&pki.admin),
            peer: LOCAL,
        },
    )
    .await;
    assert_eq!(r, Err(Reason::CertificateBindingMismatch));
    // A bound token, but the workload is from another trust domain.
    let other = bound_token("root", "orders:admin", &pki.other_domain);
    assert_eq!(decide(&g, del(Some(other), Some(&pki.other_domain))).await, Err(Reason::WorkloadNotAllowed));
    // Everything right.
    let good = bound_token("root", "orders:admin", &pki.admin);
    assert_eq!(decide(&g, del(Some(good.clone()), Some(&pki.admin))).await, Ok(Some("root".into())));
    // A bound token without any certificate.
    let r =
        decide(&g, Call { method: "GET", path: "/orders", token: Some(good), cert: None, peer: LOCAL }).await;
    assert_eq!(r, Err(Reason::CertificateBindingMismatch));
    // The default zone admits ordinary calls.
    let r = decide(
        &g,
        Call {
            method: "GET",
            path: "/orders",
            token: Some(token("a", "orders:read")),
            cert: None,
            peer: LOCAL,
        },
    )
    .await;
    assert_eq!(r, Ok(Some("a".into())));
}

#[tokio::test]
async fn routes_in_no_zone_are_denied_without_a_default_zone() {
    let g = Guard::new(policy(vec![admin_zone()])).unwrap();
    let r = decide(
        &g,
        Call {
            method: "GET",
            path: "/orders",
            token: Some(token("a", "orders:read")),
            cert: None,
            peer: LOCAL,
        },
    )
    .await;
    assert_eq!(r, Err(Reason::ZoneDenied));
    // Without any zone the stage is off.
    let g = Guard::new(policy(vec![])).unwrap();
    let r = decide(
        &g,
        Call {
            method: "GET",
            path: "/orders",
            token: Some(token("a", "orders:read")),
            cert: None,
            peer: LOCAL,
        },
    )
    .await;
    assert!(r.is_ok());
}

#[tokio::test]
async fn mtls_alone_is_a_service_identity() {
    let pki = pki();
    let g = Guard::new(policy(vec![])).unwrap();
    let r = decide(
        &g,
        Call { method: "GET", path: "/internal/metrics", token: None, cert: Some(&pki.admin), peer: LOCAL },
    )
    .await;
    assert_eq!(r, Ok(Some("spiffe://prod.example/ns/orders/sa/admin".into())));
    // A certificate carries no scopes.
    let r =
        decide(&g, Call { method: "GET", path: "/orders", token: None, cert: Some(&pki.admin), peer: LOCAL })
            .await;
    assert_eq!(r, Err(Reason::InsufficientScope));
    // Without SPIFFE, the subject DN names the caller.
    let r = decide(
        &g,
        Call { method: "GET", path: "/internal/metrics", token: None, cert: Some(&pki.plain), peer: LOCAL },
    )
    .await;
    assert_eq!(r, Ok(Some("CN=plain client".into())));
}

#[tokio::test]
async fn source_networks_token_age_issuers_and_acr() {
    let zone = ZoneConfig {
        name: "default".into(),
        source_cidrs: vec!["10.1.0.0/16".into(), "::1/128".into()],
        max_token_age: Some(Duration::from_secs(300)),
        issuers: vec![ISSUER.into()],
        acr_values: vec!["urn:mfa".into()],
        amr_values: vec!["hwk".into()],
        ..Default::default()
    };
    let g = Guard::new(policy(vec![zone])).unwrap();
    let mut c = claims("a", "orders:read");
    c["acr"] = json!("urn:mfa");
    c["amr"] = json!(["pwd", "hwk"]);
    let call = |t: &str, peer: &'static str| Call {
        method: "GET",
        path: "/orders",
        token: Some(t.to_string()),
        cert: None,
        peer,
    };
    let ok = sign(key(Algorithm::ES256), &c);
    assert!(decide(&g, call(&ok, "10.1.2.3:5000")).await.is_ok());
    assert_eq!(decide(&g, call(&ok, "10.2.0.1:5000")).await, Err(Reason::SourceNotAllowed));
    let mut old = c.clone();
    old["auth_time"] = json!(now() - 3600);
    assert_eq!(
        decide(&g, call(&sign(key(Algorithm::ES256), &old), "10.1.0.9:1")).await,
        Err(Reason::AuthenticationTooOld)
    );
    let mut weak = c.clone();
    weak["acr"] = json!("urn:pwd");
    assert_eq!(
        decide(&g, call(&sign(key(Algorithm::ES256), &weak), "10.1.0.9:1")).await,
        Err(Reason::AuthenticationContextNotMet)
    );
    let mut no_hwk = c.clone();
    no_hwk["amr"] = json!(["pwd"]);
    assert_eq!(
        decide(&g, call(&sign(key(Algorithm::ES256), &no_hwk), "10.1.0.9:1")).await,
        Err(Reason::AuthenticationContextNotMet)
    );
    assert_eq!(Reason::AuthenticationTooOld.bearer_error(), Some("insufficient_user_authentication"));
}

#[tokio::test]
async fn tenant_binding_stops_cross_tenant_access() {
    let g = Guard::new(policy(vec![])).unwrap();
    let mut c = claims("a", "orders:read");
    c["tenant_id"] = json!("acme");
    let t = sign(key(Algorithm::ES256), &c);
    let call = |path: &'static str, t: &str| Call {
        method: "GET",
        path,
        token: Some(t.to_string()),
        cert: None,
        peer: LOCAL,
    };
    assert!(decide(&g, call("/tenants/acme/orders", &t)).await.is_ok());
    assert_eq!(decide(&g, call("/tenants/globex/orders", &t)).await, Err(Reason::OwnershipMismatch));
    assert_eq!(
        decide(&g, call("/tenants/ac%6De/orders", &t)).await,
        Err(Reason::InvalidPath),
        "no encoded alias"
    );
    c["tenant_id"] = json!(["globex", "initech"]);
    let multi = sign(key(Algorithm::ES256), &c);
    assert!(decide(&g, call("/tenants/globex/orders", &multi)).await.is_ok());
    // No claim at all: not an owner of anything.
    assert_eq!(
        decide(&g, call("/tenants/acme/orders", &token("a", "orders:read"))).await,
        Err(Reason::OwnershipMismatch)
    );
}

#[test]
fn zone_policy_errors_name_the_entry() {
    let bad = |z: ZoneConfig| match Guard::new(policy(vec![z])).err().unwrap() {
        zt::PolicyError::Invalid { at, .. } => at,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bad(ZoneConfig { name: "x".into(), source_cidrs: vec!["10.0.0/8".into()], ..Default::default() }),
        "zones[0].source_cidrs[0]"
    );
    assert_eq!(
        bad(ZoneConfig { name: "x".into(), spiffe_ids: vec!["spiffe://A/b".into()], ..Default::default() }),
        "zones[0].spiffe_ids[0]"
    );
    assert_eq!(
        bad(ZoneConfig { name: "x".into(), routes: vec!["/orders".into()], ..Default::default() }),
        "zones[0].routes[0]"
    );
    assert_eq!(
        bad(ZoneConfig { name: "x".into(), require_bound_token: true, ..Default::default() }),
        "zones[0].require_bound_token"
    );
    let text = "[[zones]]\nname = \"admin\"\nrequire_mtls = \"yes\"\n";
    match Policy::from_toml_str(text).err().unwrap() {
        zt::PolicyError::Parse { line, .. } => assert_eq!(line, Some(3)),
        other => panic!("{other:?}"),
    }
}

// ---- over real mutual TLS, both adapters ----

async fn serve_axum_tls(guard: Guard, tls: zt::tls::TlsConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = crate::orders::axum_app::app(guard, None).unwrap();
    tokio::spawn(zt::axum::tls::serve(listener, app, tls));
    addr
}

fn serve_actix_tls(guard: Guard, tls: zt::tls::TlsConfig) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = crate::orders::actix_app::routes(guard, None).unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = crate::orders::actix_app::server_tls(routes, listener, 1, tls).unwrap();
            let _ = server.await;
        });
    });
    addr
}

fn client(pki: &Pki, cert: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

/// One request over TLS; `Err` when the handshake or connection was refused.
async fn tls_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    token: &str,
) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_enforce_the_admin_zone_over_mutual_tls() {
    let pki = pki();
    let guard =
        Guard::new(policy(vec![admin_zone(), ZoneConfig { name: "default".into(), ..Default::default() }]))
            .unwrap();
    let tls = || {
        zt::tls::TlsConfig::builder()
            .server_cert_pem(&pki.server.cert_pem, &pki.server.key_pem)
            .client_ca_pem(&pki.ca_pem)
            .client_auth(zt::tls::ClientAuth::Optional)
            .build()
            .unwrap()
    };
    let servers =
        [("axum", serve_axum_tls(guard.clone(), tls()).await), ("actix", serve_actix_tls(guard, tls()))];
    let admin = token("root", "orders:admin orders:read");
    let bound = bound_token("root", "orders:admin orders:read", &pki.admin);
    for (name, addr) in servers {
        let mut ready = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ready, "{name} up");
        let anon = client(&pki, None);
        let admin_cert = client(&pki, Some(&pki.admin));
        // Ordinary route without a client certificate: fine (default zone).
        assert_eq!(tls_request(addr, anon.clone(), "GET", "/orders", &admin).await, Ok(200), "{name}");
        assert_eq!(
            tls_request(addr, anon.clone(), "DELETE", "/orders/1", &admin).await,
            Ok(403),
            "{name}: mTLS required"
        );
        assert_eq!(
            tls_request(addr, admin_cert.clone(), "DELETE", "/orders/1", &admin).await,
            Ok(401),
            "{name}: bound token required"
        );
        let wrong = bound_token("root", "orders:admin", &pki.plain);
        assert_eq!(
            tls_request(addr, admin_cert.clone(), "DELETE", "/orders/1", &wrong).await,
            Ok(401),
            "{name}: bound elsewhere"
        );
        assert_eq!(
            tls_request(addr, admin_cert.clone(), "DELETE", "/orders/1", &bound).await,
            Ok(404),
            "{name}: admitted"
        );
        // Certificates the TLS layer refuses never reach the Guard.
        assert!(
            tls_request(addr, client(&pki, Some(&pki.foreign)), "GET", "/orders", &admin).await.is_err(),
            "{name}: foreign CA"
        );
        assert!(
            tls_request(addr, client(&pki, Some(&pki.expired)), "GET", "/orders", &admin).await.is_err(),
            "{name}: expired"
        );
    }
}
