//! Mutual TLS over real handshakes on 127.0.0.1: `zt_tower::tls::serve` with certificates made
//! here (rcgen), driven by a rustls client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use zt_core::cert::thumbprint_sha256;
use zt_core::{CertificateIdentity, PeerCertificates};
use zt_tower::tls::{self, ClientAuth, TlsConfig, TlsServer};

const SPIFFE_ID: &str = "spiffe://tests.zt.example/ns/tests/sa/client";

/// A certificate and its key, PEM.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// Everything a test needs: the server's CA and certificate, and the client certificates.
struct Pki {
    ca_pem: String,
    server: Issued,
    client: Issued,
    client_of_other_ca: Issued,
    client_expired: Issued,
    client_revoked: Issued,
    /// A CRL of the CA that revokes `client_revoked`.
    crl_pem: String,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn issue(params: CertificateParams, issuer: &CertifiedIssuer<'static, KeyPair>) -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
}

fn client_params(not_after_year: i32) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "test client");
    params.subject_alt_names = vec![SanType::URI(SPIFFE_ID.try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if not_after_year < 2020 {
        params.not_before = date_time_ymd(2000, 1, 1);
    }
    params.not_after = date_time_ymd(not_after_year, 1, 1);
    params
}

fn pki() -> Pki {
    let ca = new_ca("zt test CA");
    let other_ca = new_ca("some other CA");
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut revoked = client_params(4000);
    revoked.serial_number = Some(SerialNumber::from(0x2a_u64));
    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2020, 1, 1),
        next_update: date_time_ymd(4000, 1, 1),
        crl_number: SerialNumber::from(1_u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(0x2a_u64),
            revocation_time: date_time_ymd(2020, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: issue(server, &ca),
        client: issue(client_params(4000), &ca),
        client_of_other_ca: issue(client_params(4000), &other_ca),
        client_expired: issue(client_params(2001), &ca),
        client_revoked: issue(revoked, &ca),
        crl_pem: crl.pem().unwrap(),
    }
}

/// Answers with what the request's extensions say about the client.
async fn whoami(
    peer: Option<Extension<PeerCertificates>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
) -> String {
    match peer {
        None => format!("anonymous from {remote}"),
        Some(Extension(chain)) => {
            let id = CertificateIdentity::from_peer(&chain).unwrap();
            format!(
                "{} {} chain={} from {remote}",
                id.spiffe_id().map(ToString::to_string).unwrap_or_default(),
                id.thumbprint_sha256(),
                chain.0.len()
            )
        }
    }
}

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn start(server: TlsServer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/whoami", get(whoami));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_shutdown(listener, app, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

fn config(pki: &Pki, mode: Option<ClientAuth>) -> TlsConfig {
    let builder = TlsConfig::builder().server_cert_pem(&pki.server.cert_pem, &pki.server.key_pem);
    match mode {
        None => builder.build().unwrap(),
        Some(mode) => builder.client_ca_pem(&pki.ca_pem).client_auth(mode).build().unwrap(),
    }
}

fn client_config(pki: &Pki, identity: Option<&Issued>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A `GET /whoami` over HTTP/1.1; the status line and body, or the error that ended it.
async fn get_whoami(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(String, String), std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let local = tcp.local_addr()?;
    let mut tls = TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    // The handler reports the address it saw: it must be this connection's.
    assert!(body.ends_with(&format!("from {local}")), "{body}");
    Ok((status, body.trim_end_matches(&format!(" from {local}")).to_owned()))
}

/// The handshake was refused. With TLS 1.3 the client only learns it on its first read, from
/// the server's alert; when the server's close overtakes the alert the client sees a reset or
/// an unexpected end instead, so the alert is checked whenever it arrives.
fn assert_refused(result: Result<(String, String), std::io::Error>, alert: AlertDescription) {
    let error = match result {
        Ok(response) => panic!("expected a refused handshake, got {response:?}"),
        Err(error) => error,
    };
    let received =
        error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|e| match e {
            rustls::Error::AlertReceived(received) => Some(*received),
            _ => None,
        });
    if let Some(received) = received {
        assert_eq!(received, alert, "{error}");
    } else {
        assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            ),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn required_client_auth() {
    let pki = pki();
    let server = start(TlsServer::new(config(&pki, Some(ClientAuth::Required)))).await;

    // A valid client certificate: the handler sees the verified chain and its identity.
    let (status, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, format!("{SPIFFE_ID} {} chain=1", thumbprint_sha256(&pki.client.der)));

    // No certificate, one from another CA, an expired one: no handshake.
    let none = get_whoami(server.addr, client_config(&pki, None, &[])).await;
    assert_refused(none, AlertDescription::CertificateRequired);
    let other_ca = get_whoami(server.addr, client_config(&pki, Some(&pki.client_of_other_ca), &[])).await;
    assert_refused(other_ca, AlertDescription::UnknownCA);
    let expired = get_whoami(server.addr, client_config(&pki, Some(&pki.client_expired), &[])).await;
    assert_refused(expired, AlertDescription::CertificateExpired);

    // Refused handshakes did not hurt the server.
    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn optional_client_auth() {
    let pki = pki();
    let server = start(TlsServer::new(config(&pki, Some(ClientAuth::Optional)))).await;

    let (status, body) = get_whoami(server.addr, client_config(&pki, None, &[])).await.unwrap();
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "anonymous"));

    let (_, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(body, format!("{SPIFFE_ID} {} chain=1", thumbprint_sha256(&pki.client.der)));

    // Optional is not "unverified": a certificate that is presented must verify.
    let other_ca = get_whoami(server.addr, client_config(&pki, Some(&pki.client_of_other_ca), &[])).await;
    assert_refused(other_ca, AlertDescription::UnknownCA);
    let expired = get_whoami(server.addr, client_config(&pki, Some(&pki.client_expired), &[])).await;
    assert_refused(expired, AlertDescription::CertificateExpired);
    server.stop().await;
}

#[tokio::test]
async fn no_client_ca_means_no_client_auth() {
    let pki = pki();
    let server = start(TlsServer::new(config(&pki, None))).await;
    // The server does not ask, so even a client with a certificate is anonymous.
    let (status, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "anonymous"));
    server.stop().await;
}

#[tokio::test]
async fn http2_requests_carry_the_certificate() {
    let pki = pki();
    let server = start(TlsServer::new(config(&pki, Some(ClientAuth::Required)))).await;

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let config = client_config(&pki, Some(&pki.client), &[b"h2", b"http/1.1"]);
    let tls =
        TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    let driver = tokio::spawn(conn);
    // Two requests on one connection: every request gets the connection's certificate.
    for _ in 0..2 {
        let request =
            http::Request::get("https://localhost/whoami").body(Empty::<bytes::Bytes>::new()).unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            format!("{SPIFFE_ID} {} chain=1 from {local}", thumbprint_sha256(&pki.client.der))
        );
    }
    drop(send);
    driver.await.unwrap().unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_handshakes_do_not_stop_the_server() {
    let pki = pki();
    // A short handshake timeout: the idle client below is dropped by it. Nothing here
    // depends on how long that takes.
    let server = start(
        TlsServer::new(config(&pki, Some(ClientAuth::Required)))
            .handshake_timeout(Duration::from_millis(200))
            .max_connections(0), // clamped to 1: connections are served one at a time
    )
    .await;

    // Garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\xff\xff junk").await.unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink).await;

    // A client that never starts the handshake: closed when the timeout passes.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let closed = idle.read_to_end(&mut sink).await;
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

    // A client that hangs up mid-handshake.
    let half = TcpStream::connect(server.addr).await.unwrap();
    drop(half);

    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let pki = pki();
    let server = start(TlsServer::new(config(&pki, Some(ClientAuth::Required)))).await;
    let addr = server.addr;
    let (status, _) = get_whoami(addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
    assert!(get_whoami(addr, client_config(&pki, Some(&pki.client), &[])).await.is_err());
}

#[tokio::test]
async fn the_module_level_serve_functions_take_an_axum_router() {
    let pki = pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/whoami", get(whoami));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(tls::serve_with_shutdown(
        listener,
        app,
        config(&pki, Some(ClientAuth::Required)),
        async {
            let _ = stopped.await;
        },
    ));
    let (status, _) = get_whoami(addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    // `serve` runs forever; it only has to be a spawnable future.
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawnable(tls::serve(listener, axum::Router::new(), config(&pki, None)));
}

#[tokio::test]
async fn revoked_client_certificates_are_refused() {
    let pki = pki();
    let config = TlsConfig::builder()
        .server_cert_pem(&pki.server.cert_pem, &pki.server.key_pem)
        .client_ca_pem(&pki.ca_pem)
        .client_crl_pem(&pki.crl_pem)
        .build()
        .unwrap();
    let server = start(TlsServer::new(config)).await;
    let revoked = get_whoami(server.addr, client_config(&pki, Some(&pki.client_revoked), &[])).await;
    assert_refused(revoked, AlertDescription::CertificateRevoked);
    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client), &[])).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}
