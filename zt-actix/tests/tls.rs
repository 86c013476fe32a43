//! Mutual TLS over real handshakes on 127.0.0.1: actix-web's rustls listener with
//! `zt_actix::tls::on_connect`, certificates made here (rcgen), driven by a rustls client. The
//! same expectations as zt-tower's `tests/tls.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpServer, web};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zt_actix::tls::{self, ClientAuth, TlsConfig};
use zt_core::cert::thumbprint_sha256;
use zt_core::{CertificateIdentity, PeerCertificates};

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

/// Answers with what the connection data says about the client.
async fn whoami(req: HttpRequest) -> String {
    let remote = req.peer_addr().unwrap();
    match req.conn_data::<PeerCertificates>() {
        None => format!("anonymous from {remote}"),
        Some(chain) => {
            let id = CertificateIdentity::from_peer(chain).unwrap();
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
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

fn start(config: TlsConfig) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| App::new().route("/whoami", web::get().to(whoami)))
        .workers(1)
        .disable_signals()
        .on_connect(tls::on_connect)
        .listen_rustls_0_23(listener, config.server_config())
        .unwrap()
        .run();
    let handle = server.handle();
    let task = actix_web::rt::spawn(server);
    Server { addr, handle, task }
}

fn config(pki: &Pki, mode: Option<ClientAuth>) -> TlsConfig {
    let builder = TlsConfig::builder().server_cert_pem(&pki.server.cert_pem, &pki.server.key_pem);
    match mode {
        None => builder.build().unwrap(),
        Some(mode) => builder.client_ca_pem(&pki.ca_pem).client_auth(mode).build().unwrap(),
    }
}

fn client_config(pki: &Pki, identity: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
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

#[actix_web::test]
async fn required_client_auth() {
    let pki = pki();
    let server = start(config(&pki, Some(ClientAuth::Required)));

    // A valid client certificate: the handler sees the verified chain and its identity.
    let (status, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, format!("{SPIFFE_ID} {} chain=1", thumbprint_sha256(&pki.client.der)));

    // No certificate, one from another CA, an expired one: no handshake.
    assert_refused(
        get_whoami(server.addr, client_config(&pki, None)).await,
        AlertDescription::CertificateRequired,
    );
    let other_ca = get_whoami(server.addr, client_config(&pki, Some(&pki.client_of_other_ca))).await;
    assert_refused(other_ca, AlertDescription::UnknownCA);
    let expired = get_whoami(server.addr, client_config(&pki, Some(&pki.client_expired))).await;
    assert_refused(expired, AlertDescription::CertificateExpired);

    // Refused handshakes did not hurt the server.
    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[actix_web::test]
async fn optional_client_auth() {
    let pki = pki();
    let server = start(config(&pki, Some(ClientAuth::Optional)));

    let (status, body) = get_whoami(server.addr, client_config(&pki, None)).await.unwrap();
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "anonymous"));

    let (_, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!(body, format!("{SPIFFE_ID} {} chain=1", thumbprint_sha256(&pki.client.der)));

    // Optional is not "unverified": a certificate that is presented must verify.
    let other_ca = get_whoami(server.addr, client_config(&pki, Some(&pki.client_of_other_ca))).await;
    assert_refused(other_ca, AlertDescription::UnknownCA);
    let expired = get_whoami(server.addr, client_config(&pki, Some(&pki.client_expired))).await;
    assert_refused(expired, AlertDescription::CertificateExpired);
    server.stop().await;
}

#[actix_web::test]
async fn no_client_ca_means_no_client_auth() {
    let pki = pki();
    let server = start(config(&pki, None));
    // The server does not ask, so even a client with a certificate is anonymous.
    let (status, body) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "anonymous"));
    server.stop().await;
}

#[actix_web::test]
async fn bad_handshakes_do_not_stop_the_server() {
    let pki = pki();
    let server = start(config(&pki, Some(ClientAuth::Required)));

    // Garbage instead of a ClientHello, then a client that hangs up mid-handshake.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\xff\xff junk").await.unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink).await;
    drop(TcpStream::connect(server.addr).await.unwrap());

    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[test]
fn on_connect_ignores_other_connection_types() {
    let mut data = actix_web::dev::Extensions::new();
    tls::on_connect(&42u8, &mut data);
    tls::on_connect(&"plain", &mut data);
    assert!(data.get::<PeerCertificates>().is_none());
}

#[actix_web::test]
async fn revoked_client_certificates_are_refused() {
    let pki = pki();
    let config = TlsConfig::builder()
        .server_cert_pem(&pki.server.cert_pem, &pki.server.key_pem)
        .client_ca_pem(&pki.ca_pem)
        .client_crl_pem(&pki.crl_pem)
        .build()
        .unwrap();
    let server = start(config);
    let revoked = get_whoami(server.addr, client_config(&pki, Some(&pki.client_revoked))).await;
    assert_refused(revoked, AlertDescription::CertificateRevoked);
    let (status, _) = get_whoami(server.addr, client_config(&pki, Some(&pki.client))).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop().await;
}
