//! Server TLS configuration with client-certificate verification (mutual TLS), shared by the
//! adapters' TLS glue (`zt_tower::tls`, `zt_actix::tls`). Needs the `tls` feature.
//!
//! ```no_run
//! use zt_core::tls::{ClientAuth, TlsConfig};
//!
//! # fn run() -> Result<(), zt_core::tls::TlsError> {
//! let config = TlsConfig::builder()
//!     .server_cert_files("server-chain.pem", "server-key.pem")
//!     .client_ca_file("clients-ca.pem")          // verify client certificates against this bundle
//!     .client_auth(ClientAuth::Required)        // the default once a client CA is set
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! The configuration is secure by construction, in the manner of rustls:
//! - TLS 1.3 and 1.2 only, with the aws-lc-rs provider's default (safe) cipher suites, chosen
//!   explicitly so that a second rustls provider elsewhere in the binary changes nothing;
//! - a client certificate is verified by rustls' `WebPkiClientVerifier` (chain to the bundle,
//!   validity period, `clientAuth` extended key usage, signatures); there is no way to accept
//!   an unverified certificate;
//! - asking for client authentication without a CA bundle is an error, never a silent
//!   downgrade to "no client authentication";
//! - revocation lists are optional ([`TlsConfigBuilder::client_crl_pem`]); once given, a
//!   client certificate whose revocation status they do not settle is refused;
//! - the key must match the certificate, and a key file with two keys is refused as ambiguous.
//!
//! Every problem is a [`TlsError`] that names the input at fault.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Whether a client must present a certificate.
///
/// A certificate that is presented is always verified, in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// The handshake fails unless the client presents a certificate the CA bundle verifies.
    Required,
    /// A client may connect without a certificate (its requests then carry no
    /// [`PeerCertificates`](crate::PeerCertificates)); a certificate it does present must
    /// verify, or the handshake fails.
    Optional,
}

/// A validated server TLS configuration: certificate, key and client-certificate policy.
///
/// Built with [`TlsConfig::builder`]. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
    client_auth: Option<ClientAuth>,
}

impl TlsConfig {
    /// Starts a configuration.
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder::default()
    }

    /// The client-certificate policy; `None` when no client CA bundle was configured (no
    /// client authentication).
    pub fn client_auth(&self) -> Option<ClientAuth> {
        self.client_auth
    }

    /// The rustls configuration, without ALPN protocols: each adapter announces the HTTP
    /// versions it serves (actix-web adds its own, and fails on a protocol it was not built
    /// for).
    pub fn server_config(&self) -> rustls::ServerConfig {
        (*self.server).clone()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The rustls configuration holds the private key: never print it.
        f.debug_struct("TlsConfig").field("client_auth", &self.client_auth).finish_non_exhaustive()
    }
}

/// Where PEM text comes from.
#[derive(Clone)]
enum Pem {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Pem {
    fn load(&self, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => {
                std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.clone(), source })
            }
        }
    }
}

/// Builds a [`TlsConfig`]; nothing is parsed or read until [`build`](Self::build).
#[derive(Clone, Default)]
pub struct TlsConfigBuilder {
    server_chain: Option<Pem>,
    server_key: Option<Pem>,
    client_ca: Option<Pem>,
    client_auth: Option<ClientAuth>,
    client_crls: Vec<Pem>,
}

impl fmt::Debug for TlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigBuilder")
            .field("server_cert", &self.server_chain.is_some())
            .field("client_ca", &self.client_ca.is_some())
            .field("client_auth", &self.client_auth)
            .field("client_crls", &self.client_crls.len())
            .finish_non_exhaustive()
    }
}

impl TlsConfigBuilder {
    /// The server's certificate chain (leaf first, PEM `CERTIFICATE` blocks) and its private
    /// key (PEM PKCS#8, PKCS#1 or SEC1).
    pub fn server_cert_pem(mut self, chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        self.server_chain = Some(Pem::Bytes(chain.as_ref().to_vec()));
        self.server_key = Some(Pem::Bytes(key.as_ref().to_vec()));
        self
    }

    /// Like [`server_cert_pem`](Self::server_cert_pem), read from two files at
    /// [`build`](Self::build).
    pub fn server_cert_files(mut self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.server_chain = Some(Pem::File(chain.as_ref().to_path_buf()));
        self.server_key = Some(Pem::File(key.as_ref().to_path_buf()));
        self
    }

    /// The CA certificates (PEM `CERTIFICATE` blocks) that client certificates must chain to.
    /// Turns client authentication on ([`ClientAuth::Required`] unless
    /// [`client_auth`](Self::client_auth) says otherwise). Replaces an earlier bundle.
    pub fn client_ca_pem(mut self, bundle: impl AsRef<[u8]>) -> Self {
        self.client_ca = Some(Pem::Bytes(bundle.as_ref().to_vec()));
        self
    }

    /// Like [`client_ca_pem`](Self::client_ca_pem), read from a file at
    /// [`build`](Self::build).
    pub fn client_ca_file(mut self, bundle: impl AsRef<Path>) -> Self {
        self.client_ca = Some(Pem::File(bundle.as_ref().to_path_buf()));
        self
    }

    /// Whether a client certificate is required or optional. Needs a client CA bundle: without
    /// one, [`build`](Self::build) fails with [`TlsError::ClientAuthWithoutCa`].
    pub fn client_auth(mut self, mode: ClientAuth) -> Self {
        self.client_auth = Some(mode);
        self
    }

    /// Certificate revocation lists (PEM `X509 CRL` blocks) for client certificates; may be
    /// called once per issuing CA, the lists add up. Needs a client CA bundle.
    ///
    /// Fails closed: once any CRL is given, every certificate of a client's chain below the
    /// trust anchor must be covered by a CRL of its issuer, or the handshake fails. A CRL past
    /// its `nextUpdate` is still used (a stale list should not lock every client out).
    pub fn client_crl_pem(mut self, crls: impl AsRef<[u8]>) -> Self {
        self.client_crls.push(Pem::Bytes(crls.as_ref().to_vec()));
        self
    }

    /// Like [`client_crl_pem`](Self::client_crl_pem), read from a file at
    /// [`build`](Self::build).
    pub fn client_crl_file(mut self, crls: impl AsRef<Path>) -> Self {
        self.client_crls.push(Pem::File(crls.as_ref().to_path_buf()));
        self
    }

    /// Reads, parses and checks everything.
    pub fn build(self) -> Result<TlsConfig, TlsError> {
        let (Some(chain), Some(key)) = (&self.server_chain, &self.server_key) else {
            return Err(TlsError::NoServerCertificate);
        };
        let chain = certificates(&chain.load(SERVER_CHAIN)?, SERVER_CHAIN)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { what: SERVER_CHAIN });
        }
        let key = private_key(&key.load(SERVER_KEY)?)?;

        let client_auth = match (&self.client_ca, self.client_auth) {
            (None, None) if self.client_crls.is_empty() => None,
            (None, _) => return Err(TlsError::ClientAuthWithoutCa),
            (Some(_), mode) => Some(mode.unwrap_or(ClientAuth::Required)),
        };

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Rustls)?;
        let builder = match (&self.client_ca, client_auth) {
            (Some(bundle), Some(mode)) => {
                let crls =
                    self.client_crls.iter().map(|crl| crl.load(CLIENT_CRL)).collect::<Result<Vec<_>, _>>()?;
                builder.with_client_cert_verifier(client_verifier(
                    &bundle.load(CLIENT_CA)?,
                    &crls,
                    mode,
                    provider,
                )?)
            }
            _ => builder.with_no_client_auth(),
        };
        let server = builder.with_single_cert(chain, key).map_err(TlsError::ServerKey)?;
        Ok(TlsConfig { server: Arc::new(server), client_auth })
    }
}

const SERVER_CHAIN: &str = "server certificate chain";
const SERVER_KEY: &str = "server private key";
const CLIENT_CA: &str = "client CA bundle";
const CLIENT_CRL: &str = "client CRL";

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what, message: e.to_string() })
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut keys = PrivateKeyDer::pem_slice_iter(pem);
    let key = match keys.next() {
        None => return Err(TlsError::NoPrivateKey),
        Some(key) => key.map_err(|e| TlsError::Pem { what: SERVER_KEY, message: e.to_string() })?,
    };
    // Two keys: which one is meant is a guess we refuse to make.
    if keys.next().is_some() {
        return Err(TlsError::MultiplePrivateKeys);
    }
    Ok(key)
}

fn client_verifier(
    pem: &[u8],
    crl_pems: &[Vec<u8>],
    mode: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let cas = certificates(pem, CLIENT_CA)?;
    if cas.is_empty() {
        return Err(TlsError::EmptyClientCaBundle);
    }
    let mut roots = RootCertStore::empty();
    for (index, ca) in cas.into_iter().enumerate() {
        roots.add(ca).map_err(|source| TlsError::ClientCa { index, source })?;
    }
    let mut crls = Vec::new();
    for pem in crl_pems {
        let found = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem { what: CLIENT_CRL, message: e.to_string() })?;
        if found.is_empty() {
            return Err(TlsError::NoCrl);
        }
        crls.extend(found);
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).with_crls(crls);
    let builder = match mode {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    builder.build().map_err(|e| TlsError::Verifier(e.to_string()))
}

/// A TLS configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No server certificate and key were given.
    #[error("no server certificate: call `server_cert_pem` or `server_cert_files`")]
    NoServerCertificate,
    /// A file could not be read.
    #[error("{what}: cannot read {}: {source}", path.display())]
    Read {
        /// Which input.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The PEM text is malformed.
    #[error("{what}: bad PEM: {message}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The PEM text holds no `CERTIFICATE` block.
    #[error("{what}: no CERTIFICATE in the PEM")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// The key PEM holds no private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not
    /// supported).
    #[error("server private key: no unencrypted PRIVATE KEY in the PEM")]
    NoPrivateKey,
    /// The key PEM holds more than one private key.
    #[error("server private key: more than one private key in the PEM")]
    MultiplePrivateKeys,
    /// The key is unusable or does not belong to the certificate.
    #[error("server certificate and key: {0}")]
    ServerKey(#[source] rustls::Error),
    /// A client CA bundle was given but holds no certificate.
    #[error("client CA bundle: no CERTIFICATE in the PEM (an empty bundle would trust no client)")]
    EmptyClientCaBundle,
    /// A certificate of the client CA bundle cannot be a trust anchor.
    #[error("client CA bundle: certificate {index} (0-based) is not a usable trust anchor: {source}")]
    ClientCa {
        /// Its 0-based position in the bundle.
        index: usize,
        /// Why.
        source: rustls::Error,
    },
    /// [`client_auth`](TlsConfigBuilder::client_auth) or a CRL was set without a client CA
    /// bundle.
    #[error("client authentication needs a client CA bundle: call `client_ca_pem` or `client_ca_file`")]
    ClientAuthWithoutCa,
    /// A client CRL input holds no `X509 CRL` block.
    #[error("client CRL: no X509 CRL in the PEM")]
    NoCrl,
    /// The client-certificate verifier could not be built (e.g. a CRL does not parse).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    struct Pki {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert =
            CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
        Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn err(builder: TlsConfigBuilder) -> TlsError {
        match builder.build() {
            Ok(_) => panic!("built"),
            Err(e) => e,
        }
    }

    #[test]
    fn builds_with_and_without_client_auth() {
        let p = pki();
        let plain = TlsConfig::builder().server_cert_pem(&p.cert_pem, &p.key_pem).build().unwrap();
        assert_eq!(plain.client_auth(), None);
        assert!(plain.server_config().alpn_protocols.is_empty());
        let mtls = TlsConfig::builder()
            .server_cert_pem(&p.cert_pem, &p.key_pem)
            .client_ca_pem(&p.ca_pem)
            .build()
            .unwrap();
        assert_eq!(mtls.client_auth(), Some(ClientAuth::Required), "a CA bundle means required by default");
        let optional = TlsConfig::builder()
            .server_cert_pem(&p.cert_pem, &p.key_pem)
            .client_ca_pem(&p.ca_pem)
            .client_auth(ClientAuth::Optional)
            .build()
            .unwrap();
        assert_eq!(optional.client_auth(), Some(ClientAuth::Optional));
        assert!(!format!("{optional:?}").contains("PRIVATE"));
    }

    #[test]
    fn errors_name_the_problem() {
        let p = pki();
        let other = pki();
        let ok = || TlsConfig::builder().server_cert_pem(&p.cert_pem, &p.key_pem);
        assert!(matches!(err(TlsConfig::builder()), TlsError::NoServerCertificate));
        assert!(matches!(
            err(TlsConfig::builder().server_cert_pem("", &p.key_pem)),
            TlsError::NoCertificate { what: SERVER_CHAIN }
        ));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = err(TlsConfig::builder().server_cert_pem(broken, &p.key_pem));
        assert!(matches!(e, TlsError::Pem { what: SERVER_CHAIN, .. }), "{e}");
        assert!(e.to_string().starts_with("server certificate chain: bad PEM"), "{e}");
        assert!(matches!(err(TlsConfig::builder().server_cert_pem(&p.cert_pem, "")), TlsError::NoPrivateKey));
        assert!(matches!(
            err(TlsConfig::builder().server_cert_pem(&p.cert_pem, &p.cert_pem)),
            TlsError::NoPrivateKey
        ));
        let two_keys = format!("{}{}", p.key_pem, other.key_pem);
        assert!(matches!(
            err(TlsConfig::builder().server_cert_pem(&p.cert_pem, two_keys)),
            TlsError::MultiplePrivateKeys
        ));
        assert!(matches!(
            err(TlsConfig::builder().server_cert_pem(&p.cert_pem, &other.key_pem)),
            TlsError::ServerKey(_)
        ));
        assert!(matches!(err(ok().client_ca_pem("")), TlsError::EmptyClientCaBundle));
        assert!(matches!(err(ok().client_ca_pem(&p.key_pem)), TlsError::EmptyClientCaBundle));
        assert!(matches!(
            err(ok().client_ca_pem(format!("{}{}", p.ca_pem, broken))),
            TlsError::Pem { what: CLIENT_CA, .. }
        ));
        let garbage_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = err(ok().client_ca_pem(format!("{}{}", p.ca_pem, garbage_der)));
        assert!(matches!(e, TlsError::ClientCa { index: 1, .. }), "{e}");
        assert!(matches!(err(ok().client_auth(ClientAuth::Required)), TlsError::ClientAuthWithoutCa));
        assert!(matches!(err(ok().client_auth(ClientAuth::Optional)), TlsError::ClientAuthWithoutCa));
        assert!(matches!(err(ok().client_crl_pem(&p.ca_pem)), TlsError::ClientAuthWithoutCa));
        assert!(matches!(err(ok().client_ca_pem(&p.ca_pem).client_crl_pem(&p.ca_pem)), TlsError::NoCrl));
        let bad_crl = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
        assert!(matches!(err(ok().client_ca_pem(&p.ca_pem).client_crl_pem(bad_crl)), TlsError::Verifier(_)));
        let e =
            err(TlsConfig::builder().server_cert_files("/nonexistent/zt-chain.pem", "/nonexistent/k.pem"));
        assert!(matches!(&e, TlsError::Read { what: SERVER_CHAIN, .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/zt-chain.pem"), "{e}");
    }

    #[test]
    fn reads_files() {
        let p = pki();
        let dir = std::env::temp_dir().join(format!("zt-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chain.pem"), &p.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &p.key_pem).unwrap();
        std::fs::write(dir.join("ca.pem"), &p.ca_pem).unwrap();
        let config = TlsConfig::builder()
            .server_cert_files(dir.join("chain.pem"), dir.join("key.pem"))
            .client_ca_file(dir.join("ca.pem"))
            .build()
            .unwrap();
        assert_eq!(config.client_auth(), Some(ClientAuth::Required));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
