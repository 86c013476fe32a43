//! Mutual TLS for actix-web: the client certificate chain in every request's connection data.
//!
//! actix-web terminates TLS itself (`bind_rustls_0_23` / `listen_rustls_0_23`); what it lacks
//! is a way to reach the verified client certificate from a handler (actix-web #1727). Build
//! the rustls configuration with a [`TlsConfig`] and register [`on_connect`]: each connection
//! whose client presented a certificate the CA bundle verified then carries its chain as
//! [`PeerCertificates`] (leaf first), which [`ZeroTrust`](crate::ZeroTrust) hands to the Guard
//! and handlers read with `req.conn_data::<PeerCertificates>()`.
//!
//! ```no_run
//! use actix_web::{App, HttpRequest, HttpServer, web};
//! use zt_core::{CertificateIdentity, PeerCertificates};
//! use zt_actix::tls::{self, ClientAuth, TlsConfig};
//!
//! async fn whoami(req: HttpRequest) -> String {
//!     let Some(chain) = req.conn_data::<PeerCertificates>() else { return "anonymous".into() };
//!     match CertificateIdentity::from_peer(chain) {
//!         Ok(id) => id.spiffe_id().map(ToString::to_string).unwrap_or_else(|| id.subject().to_owned()),
//!         Err(_) => "unreadable certificate".to_owned(),
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TlsConfig::builder()
//!     .server_cert_files("server-chain.pem", "server-key.pem")
//!     .client_ca_file("clients-ca.pem")
//!     .client_auth(ClientAuth::Required)
//!     .build()?;
//! HttpServer::new(|| App::new().route("/whoami", web::get().to(whoami)))
//!     .on_connect(tls::on_connect) // before `bind_*`: actix captures it when binding
//!     .bind_rustls_0_23("0.0.0.0:8443", config.server_config())?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! actix-web announces the ALPN protocols it serves (`http/1.1`, and `h2` with its `http2`
//! feature), so [`TlsConfig::server_config`] carries none. Its own limits apply: a TLS
//! handshake must finish within 3 s (`HttpServer::tls_handshake_timeout`), at most 256
//! handshakes run at once per worker, and `HttpServer::max_connections` bounds open
//! connections (25 000 per worker by default).

use std::any::Any;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use zt_core::PeerCertificates;

pub use zt_core::tls::{ClientAuth, TlsConfig, TlsConfigBuilder, TlsError};

/// Puts the verified client certificate chain of a rustls 0.23 connection into its connection
/// data, for `HttpServer::on_connect`.
///
/// Does nothing for a plain TCP connection or a TLS connection without a client certificate,
/// so a handler or the Guard never mistakes such a connection for an authenticated one.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    // rustls only reports certificates its verifier accepted: with a client CA configured
    // every presented chain was verified; without one, none is requested.
    if let Some(chain) = tls.get_ref().1.peer_certificates()
        && !chain.is_empty()
    {
        data.insert(PeerCertificates::new(chain.iter().map(|cert| cert.as_ref().to_vec()).collect()));
    }
}
