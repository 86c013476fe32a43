//! Signing keys generated in memory, and the few other primitives the issuer needs (random
//! bytes, SHA-256).
//!
//! The private half of a key lives only inside the aws-lc-rs key pair: zt never holds it as
//! bytes (no PKCS#8 document is kept), so there is nothing to log, serialize or leak through
//! `Debug`. Without the `aws-lc-rs` feature the key type is uninhabited and every primitive
//! fails, so a [`TokenIssuer`](super::TokenIssuer) cannot be built.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The signature algorithm of the issuer's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256 (the default): verified everywhere.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519: smaller and faster, where verifiers support it.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// The backend is missing or failed. Carries no detail on purpose: crypto errors must not
/// describe key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CryptoFailure;

/// One signing key: its id, its public JWK, and the key pair.
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) algorithm: SigningAlgorithm,
    /// The public JWK as published: `kty`, `crv`, `x`, (`y`), `kid`, `alg`, `use`.
    pub(super) public_jwk: Value,
    pair: Pair,
}

enum Pair {
    #[cfg(feature = "aws-lc-rs")]
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    #[cfg(feature = "aws-lc-rs")]
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    // Written by hand so that no field of the key pair can ever reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 7638 JWK thumbprint over the required public members (in lexicographic order,
/// no whitespace): a stable, collision-resistant key id that reveals nothing new.
#[cfg(feature = "aws-lc-rs")]
fn thumbprint(required_members: &str) -> String {
    b64(&sha256(required_members.as_bytes()))
}

impl SigningKey {
    /// Generates a fresh key pair for `algorithm`.
    #[cfg(feature = "aws-lc-rs")]
    pub(super) fn generate(algorithm: SigningAlgorithm) -> Result<SigningKey, CryptoFailure> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
        match algorithm {
            SigningAlgorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| CryptoFailure)?;
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 0x04 {
                    return Err(CryptoFailure);
                }
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let kid = thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
                let public_jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": x, "y": y,
                    "kid": kid, "alg": "ES256", "use": "sig",
                });
                Ok(SigningKey { kid, algorithm, public_jwk, pair: Pair::Ecdsa(pair) })
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::generate().map_err(|_| CryptoFailure)?;
                let x = b64(pair.public_key().as_ref());
                let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
                let public_jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": x,
                    "kid": kid, "alg": "EdDSA", "use": "sig",
                });
                Ok(SigningKey { kid, algorithm, public_jwk, pair: Pair::Ed25519(pair) })
            }
        }
    }

    /// Without a backend no key can exist.
    #[cfg(not(feature = "aws-lc-rs"))]
    pub(super) fn generate(_algorithm: SigningAlgorithm) -> Result<SigningKey, CryptoFailure> {
        Err(CryptoFailure)
    }

    /// Signs `message`; the result is the JWS signature (ES256: fixed-width `r || s`).
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
        match &self.pair {
            #[cfg(feature = "aws-lc-rs")]
            Pair::Ecdsa(pair) => {
                // aws-lc-rs draws the nonce itself; the rng argument is only for API symmetry.
                let rng = aws_lc_rs::rand::SystemRandom::new();
                pair.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| CryptoFailure)
            }
            #[cfg(feature = "aws-lc-rs")]
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            #[cfg(not(feature = "aws-lc-rs"))]
            _ => {
                let _ = message;
                Err(CryptoFailure)
            }
        }
    }
}

/// `N` bytes from the system CSPRNG.
pub(super) fn random<const N: usize>() -> Result<[u8; N], CryptoFailure> {
    #[cfg(feature = "aws-lc-rs")]
    {
        let mut out = [0u8; N];
        aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoFailure)?;
        Ok(out)
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        Err(CryptoFailure)
    }
}

/// SHA-256 of `data`.
#[cfg(feature = "aws-lc-rs")]
pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The `x5t#S256` confirmation value (RFC 8705 s.3.1) of a DER certificate.
pub(super) fn certificate_thumbprint(der: &[u8]) -> Result<String, CryptoFailure> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Ok(b64(&sha256(der)))
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        let _ = der;
        Err(CryptoFailure)
    }
}

pub(super) fn base64url(bytes: &[u8]) -> String {
    b64(bytes)
}
