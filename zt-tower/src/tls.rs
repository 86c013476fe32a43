//! Serving an axum `Router` (or any Tower service) over TLS, with client certificates.
//!
//! `axum::serve` speaks plain TCP only, so mutual TLS needs its own accept loop (axum #2697).
//! [`serve`] is that loop: rustls with the client-certificate policy of a [`TlsConfig`], HTTP/1.1
//! and HTTP/2 (hyper-util's auto connection, ALPN `h2` and `http/1.1`), and in every request's
//! extensions the `ConnectInfo<SocketAddr>` of the peer and, when the client presented a
//! certificate the CA bundle verified, its chain as [`PeerCertificates`] (leaf first) — which
//! the [`ZeroTrustLayer`](crate::ZeroTrustLayer) hands to the Guard.
//!
//! ```no_run
//! use axum::{Extension, routing::get};
//! use zt_core::{CertificateIdentity, PeerCertificates};
//! use zt_tower::tls::{self, ClientAuth, TlsConfig};
//!
//! async fn whoami(Extension(chain): Extension<PeerCertificates>) -> String {
//!     match CertificateIdentity::from_peer(&chain) {
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
//! let app = axum::Router::new().route("/whoami", get(whoami));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! tls::serve(listener, app, config).await?;
//! # Ok(()) }
//! ```
//!
//! Bounds, all per server: at most [`DEFAULT_MAX_CONNECTIONS`] connections at once (further
//! clients wait in the listen backlog, nothing is accepted and dropped), a TLS handshake must
//! finish within [`DEFAULT_HANDSHAKE_TIMEOUT`], and an HTTP/1 request head within hyper's
//! header-read timeout (30 s). [`TlsServer`] changes the first two. A failed handshake, a
//! malformed request or a failed `accept` is logged (target `zt::tls`) and never ends the loop.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::Level;
use zt_core::PeerCertificates;

pub use zt_core::tls::{ClientAuth, TlsConfig, TlsConfigBuilder, TlsError};

/// How many connections a server holds at once unless told otherwise. With rustls' and hyper's
/// buffers a connection costs some tens of KiB, so the bound keeps a flood of idle clients to a
/// few hundred MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// How long a client has to complete the TLS handshake unless told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the loop waits after an `accept` error that is not about one connection (e.g. out
/// of file descriptors) before it tries again, rather than spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `app` over TLS on `listener` until the process ends. See the [module docs](self).
///
/// Errors of `accept` and of single connections are logged, never returned: the future does
/// not resolve. (The `io::Result` is that of `axum::serve`.)
pub async fn serve<S, B>(listener: TcpListener, app: S, config: TlsConfig) -> io::Result<()>
where
    S: Service<Request<axum::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    TlsServer::new(config).serve_with_shutdown(listener, app, std::future::pending()).await
}

/// Like [`serve`], until `signal` completes; then it stops accepting, lets open connections
/// finish their requests (see [`TlsServer::serve_with_shutdown`]) and returns.
pub async fn serve_with_shutdown<S, B>(
    listener: TcpListener,
    app: S,
    config: TlsConfig,
    signal: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<axum::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    TlsServer::new(config).serve_with_shutdown(listener, app, signal).await
}

/// A TLS server with its limits; [`serve`] with [`DEFAULT_MAX_CONNECTIONS`] and
/// [`DEFAULT_HANDSHAKE_TIMEOUT`] is `TlsServer::new(config).serve(..)`.
#[derive(Debug, Clone)]
pub struct TlsServer {
    config: TlsConfig,
    max_connections: usize,
    handshake_timeout: Duration,
}

impl TlsServer {
    /// A server for `config` with the default limits.
    pub fn new(config: TlsConfig) -> Self {
        TlsServer {
            config,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// At most `max` connections (handshaking or open) at once; at least 1.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a client has to complete the TLS handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Serves `app` until the process ends. See [`serve`].
    pub async fn serve<S, B>(self, listener: TcpListener, app: S) -> io::Result<()>
    where
        S: Service<Request<axum::body::Body>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(listener, app, std::future::pending()).await
    }

    /// Serves `app` until `signal` completes. Then the listener is closed, handshakes in
    /// progress are dropped, open connections finish the requests they are serving (HTTP/1
    /// keep-alive and HTTP/2 connections are told to close), and the future resolves once the
    /// last connection is gone. Wrap it in a timeout to bound that drain.
    pub async fn serve_with_shutdown<S, B>(
        self,
        listener: TcpListener,
        app: S,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        S: Service<Request<axum::body::Body>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut server_config = self.config.server_config();
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(server_config));

        let mut http = auto::Builder::new(TokioExecutor::new());
        // The timer makes hyper's HTTP/1 header-read timeout (slow-loris) take effect.
        http.http1().timer(TokioTimer::new());
        http.http2().timer(TokioTimer::new());
        let http = Arc::new(http);

        // Semaphore::new panics above MAX_PERMITS, and the drain below counts permits in u32.
        let max = self.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let permits = Arc::new(Semaphore::new(max));
        let (shutdown, shutdown_rx) = watch::channel(());
        let handshake_timeout = self.handshake_timeout;

        let mut signal = std::pin::pin!(signal);
        loop {
            // A permit first: at the bound we stop accepting, so waiting clients stay in the
            // kernel's backlog instead of being accepted and dropped.
            let permit = tokio::select! {
                biased;
                () = &mut signal => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed; no reason to spin if it were
                },
            };
            let (tcp, remote) = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        tracing::error!(target: "zt::tls", error = %e, "accept failed; retrying");
                        tokio::select! {
                            () = &mut signal => break,
                            () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                        }
                    }
                },
            };
            tokio::spawn(connection(Connection {
                tcp,
                remote,
                acceptor: acceptor.clone(),
                http: http.clone(),
                app: app.clone(),
                handshake_timeout,
                shutdown: shutdown_rx.clone(),
                _permit: permit,
            }));
        }

        drop(listener);
        drop(shutdown_rx);
        // Every connection task watches this; a send error only means none is left.
        let _ = shutdown.send(());
        // Each connection holds one permit until it ends: all permits back = all drained.
        let _ = permits.acquire_many(max as u32).await;
        Ok(())
    }
}

/// Per-connection errors that `accept` reports but that say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

struct Connection<S> {
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    app: S,
    handshake_timeout: Duration,
    shutdown: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
}

async fn connection<S, B>(mut c: Connection<S>)
where
    S: Service<Request<axum::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let remote = c.remote;
    // Small responses should not wait for Nagle; failure to set it is harmless.
    let _ = c.tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(c.handshake_timeout, c.acceptor.accept(c.tcp));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::event!(target: "zt::tls", Level::INFO, client.address = %remote.ip(), client.port = remote.port(),
                    error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::event!(target: "zt::tls", Level::INFO, client.address = %remote.ip(), client.port = remote.port(),
                    "TLS handshake timed out");
                return;
            }
        },
        _ = c.shutdown.changed() => return,
    };

    // rustls only reports certificates its verifier accepted: with a client CA configured
    // every presented chain was verified; without one, none is requested.
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .map(|chain| PeerCertificates::new(chain.iter().map(|cert| cert.as_ref().to_vec()).collect()));

    let app = c.app;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        if let Some(peer) = &peer {
            request.extensions_mut().insert(peer.clone());
        }
        let mut app = app.clone();
        async move {
            poll_fn(|cx| app.poll_ready(cx)).await?;
            app.call(request).await
        }
    });

    let conn = c.http.serve_connection_with_upgrades(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = c.shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::event!(target: "zt::tls", Level::DEBUG, client.address = %remote.ip(), client.port = remote.port(),
            error = %e, "connection ended with an error");
    }
}
