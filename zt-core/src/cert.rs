//! The identity a client certificate asserts (mutual TLS).
//!
//! The TLS layer verifies the chain (signature, validity, trust anchor); this module only reads
//! what the verified leaf says about its holder: the subject, its DNS and URI names, at most one
//! [SPIFFE ID](https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md), and the
//! certificate's SHA-256 thumbprint, which binds certificate-bound access tokens (RFC 8705
//! `cnf.x5t#S256`) to the connection.
//!
//! ```
//! use zt_core::cert::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://prod.example/ns/orders/sa/api".parse().unwrap();
//! assert_eq!(id.trust_domain(), "prod.example");
//! assert_eq!(id.path(), "/ns/orders/sa/api");
//! assert_eq!(id.to_string(), "spiffe://prod.example/ns/orders/sa/api");
//! assert!("spiffe://Prod.example/api".parse::<SpiffeId>().is_err()); // upper-case trust domain
//! ```
//!
//! Parsing is strict and fails closed: a certificate that claims a SPIFFE identity it does not
//! validly carry (a malformed `spiffe:` URI, two URI names, a CA certificate) is an error, never
//! a certificate "without" a SPIFFE ID.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::request::PeerCertificates;

/// The maximum length of a SPIFFE ID in bytes (SPIFFE ID specification, section 2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The maximum length of a trust domain name in bytes (the URI `host` limit of RFC 3986).
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// What a verified client certificate says about its holder.
///
/// Built from the leaf certificate of a chain that the TLS layer has already verified; this
/// type does no path validation of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    subject: String,
    issuer: String,
    dns_names: Vec<String>,
    uris: Vec<String>,
    spiffe_id: Option<SpiffeId>,
    thumbprint: String,
    /// The SPIFFE ID, else `x5t#S256:{thumbprint}`: see `Identity::principal`.
    principal: String,
    not_before: i64,
    not_after: i64,
}

impl CertificateIdentity {
    /// Reads the identity of a DER-encoded X.509 certificate.
    ///
    /// Fails on anything that does not parse as exactly one certificate, on a malformed
    /// subject-alternative-name extension, and on a certificate that carries a `spiffe:` URI
    /// but is not a valid X.509-SVID leaf (see [`SpiffeId`]).
    pub fn from_der(der: &[u8]) -> Result<CertificateIdentity, CertError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        // Trailing bytes would make the thumbprint cover data that is not the certificate.
        if !rest.is_empty() {
            return Err(CertError::TrailingData);
        }
        let subject = rfc4514(cert.subject())?;
        let issuer = rfc4514(cert.issuer())?;

        let mut dns_names = Vec::new();
        let mut uris = Vec::new();
        // Counts URI entries that are not valid UTF-8 too: the one-URI rule of X.509-SVIDs
        // must not be sidestepped by an entry we cannot represent.
        let mut uri_entries = 0usize;
        let san = cert.subject_alternative_name().map_err(|_| CertError::InvalidSubjectAltName)?;
        if let Some(san) = san {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::URI(uri) => {
                        uri_entries += 1;
                        uris.push((*uri).to_owned());
                    }
                    // [6] is uniformResourceIdentifier (RFC 5280, 4.2.1.6).
                    GeneralName::Invalid(tag, _) if tag.0 == 6 => uri_entries += 1,
                    _ => {}
                }
            }
        }

        let spiffe_id = spiffe_of(&cert, &uris, uri_entries)?;
        let thumbprint = thumbprint_sha256(der);
        let principal = match &spiffe_id {
            Some(id) => id.to_string(),
            None => format!("x5t#S256:{thumbprint}"),
        };
        Ok(CertificateIdentity {
            subject,
            issuer,
            dns_names,
            uris,
            spiffe_id,
            thumbprint,
            principal,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Reads the identity of the leaf of a verified client certificate chain.
    pub fn from_peer(chain: &PeerCertificates) -> Result<CertificateIdentity, CertError> {
        CertificateIdentity::from_der(chain.leaf().ok_or(CertError::NoCertificate)?)
    }

    /// The subject distinguished name as an RFC 4514 string, e.g. `CN=api,O=Example,C=DE`.
    ///
    /// Empty when the certificate has an empty subject (allowed for SPIFFE SVIDs).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer distinguished name as an RFC 4514 string.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The DNS names of the subject-alternative-name extension, as encoded.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The URIs of the subject-alternative-name extension, as encoded (including the SPIFFE
    /// ID, if any).
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The certificate's SPIFFE ID, if it is an X.509-SVID.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.spiffe_id.as_ref()
    }

    /// The caller key of a certificate-only caller: its SPIFFE ID, else
    /// `x5t#S256:{thumbprint}` (see [`Identity::principal`](crate::Identity::principal)).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The SHA-256 thumbprint of the DER certificate, base64url without padding: the value
    /// RFC 8705 puts into a certificate-bound token's `cnf.x5t#S256`.
    pub fn thumbprint_sha256(&self) -> &str {
        &self.thumbprint
    }

    /// The start of the validity period, in seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// The end of the validity period, in seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
}

/// The RFC 8705 `x5t#S256` thumbprint of a DER certificate: SHA-256, base64url, no padding.
pub fn thumbprint_sha256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// Applies the X.509-SVID rules (X509-SVID specification, sections 2, 3.1 and 5.2) to a
/// certificate that carries a `spiffe:` URI.
fn spiffe_of(
    cert: &X509Certificate<'_>,
    uris: &[String],
    uri_entries: usize,
) -> Result<Option<SpiffeId>, CertError> {
    // The scheme is compared case-insensitively here so that `SPIFFE://...` is rejected as a
    // malformed SPIFFE ID instead of being silently ignored as some other URI.
    let mut candidates =
        uris.iter().filter(|u| u.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("spiffe:")));
    let Some(candidate) = candidates.next() else {
        return Ok(None);
    };
    if uri_entries > 1 {
        return Err(CertError::MultipleUriSans);
    }
    let id = SpiffeId::parse(candidate)?;
    if id.path.is_empty() {
        return Err(CertError::Spiffe(SpiffeIdError::RootPath));
    }
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| CertError::Malformed(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    let signs = cert
        .key_usage()
        .map_err(|e| CertError::Malformed(e.to_string()))?
        .is_some_and(|ku| ku.value.key_cert_sign() || ku.value.crl_sign());
    if is_ca || signs {
        return Err(CertError::SpiffeSigningCertificate);
    }
    Ok(Some(id))
}

/// A validated SPIFFE ID: `spiffe://<trust-domain><path>`.
///
/// The rules of the SPIFFE ID specification: the scheme is exactly `spiffe`; the trust
/// domain is 1 to 255 characters of `[a-z0-9._-]` (so no upper case, port, user info or
/// percent-encoding); the path is empty or `/`-separated segments of `[a-zA-Z0-9._-]`, none
/// empty, `.` or `..` (so no trailing `/`); no query or fragment; at most
/// [`MAX_SPIFFE_ID_LEN`] bytes in all. An ID with an empty path names the trust domain
/// itself; a client certificate's ID must have a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(id: &str) -> Result<SpiffeId, SpiffeIdError> {
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = id.strip_prefix("spiffe://").ok_or(SpiffeIdError::Scheme)?;
        let (trust_domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if trust_domain.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        if !trust_domain.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')) {
            return Err(SpiffeIdError::TrustDomainCharacter);
        }
        if !path.is_empty() {
            // `path` starts with '/', so the first split item is the empty string before it.
            for segment in path.split('/').skip(1) {
                match segment {
                    "" => return Err(SpiffeIdError::EmptySegment),
                    "." | ".." => return Err(SpiffeIdError::DotSegment),
                    s if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) => {
                        return Err(SpiffeIdError::PathCharacter);
                    }
                    _ => {}
                }
            }
        }
        Ok(SpiffeId { trust_domain: trust_domain.to_owned(), path: path.to_owned() })
    }

    /// The trust domain, e.g. `prod.example`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, e.g. `/ns/orders/sa/api`; empty for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this ID belongs to `trust_domain` (compared exactly: trust domains are lower
    /// case by definition).
    pub fn is_member_of(&self, trust_domain: &str) -> bool {
        self.trust_domain == trust_domain
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::parse(s)
    }
}

/// Why a string is not a valid SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The ID does not start with `spiffe://` (the scheme must be lower case).
    #[error("SPIFFE ID must start with `spiffe://`")]
    Scheme,
    /// The trust domain is empty.
    #[error("SPIFFE ID has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain has a character outside `[a-z0-9._-]` (this also rejects a port,
    /// user info and percent-encoding).
    #[error("SPIFFE trust domain may only contain [a-z0-9._-]")]
    TrustDomainCharacter,
    /// The path has an empty segment (`//` or a trailing `/`).
    #[error("SPIFFE ID path has an empty segment")]
    EmptySegment,
    /// The path has a `.` or `..` segment.
    #[error("SPIFFE ID path has a `.` or `..` segment")]
    DotSegment,
    /// The path has a character outside `[a-zA-Z0-9._-]` (this also rejects a query,
    /// fragment and percent-encoding).
    #[error("SPIFFE ID path may only contain [a-zA-Z0-9._-] and `/`")]
    PathCharacter,
    /// The ID is longer than 2048 bytes, or the trust domain longer than 255.
    #[error("SPIFFE ID is too long")]
    TooLong,
    /// A client certificate's SPIFFE ID has no path (it names the trust domain itself).
    #[error("a client certificate's SPIFFE ID must have a path")]
    RootPath,
}

/// Why a certificate's identity cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The chain is empty.
    #[error("no certificate")]
    NoCertificate,
    /// The bytes are not a DER X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// Bytes follow the certificate.
    #[error("malformed certificate: trailing data")]
    TrailingData,
    /// The subject-alternative-name extension is malformed or repeated.
    #[error("malformed subject alternative name extension")]
    InvalidSubjectAltName,
    /// A certificate with a SPIFFE ID has more than one URI name (X509-SVID, section 2).
    #[error("a certificate with a SPIFFE ID must have exactly one URI name")]
    MultipleUriSans,
    /// The certificate's SPIFFE ID is invalid.
    #[error("invalid SPIFFE ID: {0}")]
    Spiffe(#[from] SpiffeIdError),
    /// A CA (signing) certificate carries a SPIFFE ID and was presented as a client
    /// certificate (X509-SVID, section 5.2).
    #[error("a signing (CA) certificate cannot authenticate a client")]
    SpiffeSigningCertificate,
}

/// Formats a distinguished name per RFC 4514: last RDN first, `,` between RDNs, `+` between
/// the values of a multi-valued RDN.
fn rfc4514(name: &X509Name<'_>) -> Result<String, CertError> {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = ava.attr_type().to_id_string();
            let short = short_name(&oid);
            out.push_str(short.unwrap_or(&oid));
            out.push('=');
            // RFC 4514, 2.4: a type in dotted-decimal form always has its value in `#hex` form,
            // as does a value that has no string form.
            match short.and_then(|_| string_value(ava.attr_value())) {
                Some(value) => escape_value(&value, &mut out),
                None => {
                    let der =
                        ava.attr_value().to_der_vec().map_err(|e| CertError::Malformed(e.to_string()))?;
                    out.push('#');
                    for b in der {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The attribute types RFC 4514 (section 3) gives a short name.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a directory string value, or `None` when it has no faithful string form
/// (T.61 has no unambiguous mapping to Unicode, so it is shown as hex).
fn string_value(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// Escapes an attribute value per RFC 4514, section 2.4; control characters are escaped as
/// `\hh` as well, so that a subject can never break a log line.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, DnValue, IsCa, KeyPair, KeyUsagePurpose, SanType,
        date_time_ymd,
    };

    fn leaf(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn with_sans(sans: &[SanType]) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans.to_vec();
        params
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn valid_spiffe_ids() {
        for (id, td, path) in [
            ("spiffe://example.org/workload", "example.org", "/workload"),
            ("spiffe://prod-1.example_x/ns/a.b/sa/Web-API_2", "prod-1.example_x", "/ns/a.b/sa/Web-API_2"),
            ("spiffe://td", "td", ""),
            ("spiffe://td/..a/.b./...", "td", "/..a/.b./..."),
        ] {
            let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!((parsed.trust_domain(), parsed.path()), (td, path), "{id}");
            assert_eq!(parsed.to_string(), id);
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN - "spiffe://td/".len()));
        assert_eq!(long.len(), MAX_SPIFFE_ID_LEN);
        assert!(SpiffeId::parse(&long).is_ok());
    }

    #[test]
    fn invalid_spiffe_ids() {
        use SpiffeIdError::*;
        let too_long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        for (id, want) in [
            ("SPIFFE://td/a", Scheme),
            ("Spiffe://td/a", Scheme),
            ("https://td/a", Scheme),
            ("spiffe:td/a", Scheme),
            ("spiffe:/td/a", Scheme),
            ("", Scheme),
            ("spiffe://", EmptyTrustDomain),
            ("spiffe:///a", EmptyTrustDomain),
            ("spiffe://Example.org/a", TrustDomainCharacter),
            ("spiffe://td:8443/a", TrustDomainCharacter),
            ("spiffe://user@td/a", TrustDomainCharacter),
            ("spiffe://user:pw@td/a", TrustDomainCharacter),
            ("spiffe://t%41/a", TrustDomainCharacter),
            ("spiffe://td?q=1", TrustDomainCharacter),
            ("spiffe://td#f", TrustDomainCharacter),
            ("spiffe://td/", EmptySegment),
            ("spiffe://td//a", EmptySegment),
            ("spiffe://td/a/", EmptySegment),
            ("spiffe://td/a//b", EmptySegment),
            ("spiffe://td/.", DotSegment),
            ("spiffe://td/a/../b", DotSegment),
            ("spiffe://td/a/./b", DotSegment),
            ("spiffe://td/a?x=1", PathCharacter),
            ("spiffe://td/a#frag", PathCharacter),
            ("spiffe://td/a%2Fb", PathCharacter),
            ("spiffe://td/a b", PathCharacter),
            ("spiffe://td/ä", PathCharacter),
            ("spiffe://td/a:b", PathCharacter),
            (too_long.as_str(), TooLong),
            (long_td.as_str(), TooLong),
        ] {
            assert_eq!(SpiffeId::parse(id), Err(want), "{id}");
        }
    }

    #[test]
    fn certificate_with_a_spiffe_id() {
        let mut params = with_sans(&[
            SanType::DnsName("api.example".try_into().unwrap()),
            uri("spiffe://prod.example/ns/orders/sa/api"),
            SanType::DnsName("localhost".try_into().unwrap()),
        ]);
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2030, 1, 1);
        let der = leaf(params);
        let id = CertificateIdentity::from_der(&der).unwrap();
        let spiffe = id.spiffe_id().unwrap();
        assert_eq!(spiffe.to_string(), "spiffe://prod.example/ns/orders/sa/api");
        assert!(spiffe.is_member_of("prod.example"));
        assert_eq!(id.dns_names(), ["api.example", "localhost"]);
        assert_eq!(id.uris(), ["spiffe://prod.example/ns/orders/sa/api"]);
        assert_eq!(id.not_before(), 1_704_067_200);
        assert_eq!(id.not_after(), 1_893_456_000);
    }

    #[test]
    fn certificate_without_a_spiffe_id() {
        let der = leaf(with_sans(&[uri("https://client.example/a"), uri("urn:example:client")]));
        let id = CertificateIdentity::from_der(&der).unwrap();
        assert_eq!(id.spiffe_id(), None);
        assert_eq!(id.uris(), ["https://client.example/a", "urn:example:client"]);
        assert!(id.dns_names().is_empty());
    }

    #[test]
    fn certificates_with_invalid_spiffe_ids_are_rejected() {
        let two_spiffe = with_sans(&[uri("spiffe://td/a"), uri("spiffe://td/b")]);
        let spiffe_and_other = with_sans(&[uri("spiffe://td/a"), uri("https://td.example/")]);
        let other_and_spiffe = with_sans(&[uri("https://td.example/"), uri("spiffe://td/a")]);
        let root_path = with_sans(&[uri("spiffe://td")]);
        let upper_scheme = with_sans(&[uri("SPIFFE://td/a")]);
        let bad_path = with_sans(&[uri("spiffe://td/a/../b")]);
        let mut ca = with_sans(&[uri("spiffe://td/a")]);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut cert_sign = with_sans(&[uri("spiffe://td/a")]);
        cert_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign];
        for (params, want) in [
            (two_spiffe, CertError::MultipleUriSans),
            (spiffe_and_other, CertError::MultipleUriSans),
            (other_and_spiffe, CertError::MultipleUriSans),
            (root_path, CertError::Spiffe(SpiffeIdError::RootPath)),
            (upper_scheme, CertError::Spiffe(SpiffeIdError::Scheme)),
            (bad_path, CertError::Spiffe(SpiffeIdError::DotSegment)),
            (ca, CertError::SpiffeSigningCertificate),
            (cert_sign, CertError::SpiffeSigningCertificate),
        ] {
            assert_eq!(CertificateIdentity::from_der(&leaf(params)), Err(want));
        }
    }

    #[test]
    fn thumbprint_is_the_base64url_sha256_of_the_der() {
        let der = leaf(with_sans(&[uri("spiffe://td/a")]));
        let id = CertificateIdentity::from_der(&der).unwrap();
        let digest = Sha256::digest(&der);
        assert_eq!(URL_SAFE_NO_PAD.decode(id.thumbprint_sha256()).unwrap(), digest.as_slice());
        assert_eq!(id.thumbprint_sha256().len(), 43);
        assert!(!id.thumbprint_sha256().contains(['=', '+', '/']));
        // Independent of the identity parser: the same digest for the same bytes.
        assert_eq!(thumbprint_sha256(&der), id.thumbprint_sha256());
    }

    #[test]
    fn subject_is_formatted_per_rfc_4514() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CountryName, DnValue::PrintableString("DE".try_into().unwrap()));
        params.distinguished_name.push(DnType::OrganizationName, "Example, Inc.");
        params.distinguished_name.push(DnType::OrganizationalUnitName, " #ops+dev; <x> \"q\" \\ ");
        params.distinguished_name.push(DnType::CommonName, "api\u{0}\nname");
        params.distinguished_name.push(DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]), "a@b.example");
        let der = leaf(params);
        let id = CertificateIdentity::from_der(&der).unwrap();
        assert_eq!(
            id.subject(),
            "1.2.840.113549.1.9.1=#0c0b6140622e6578616d706c65,CN=api\\00\\0aname,\
             OU=\\ #ops\\+dev\\; \\<x\\> \\\"q\\\" \\\\\\ ,O=Example\\, Inc.,C=DE"
        );
        // Self-signed: the issuer is the subject.
        assert_eq!(id.issuer(), id.subject());
    }

    #[test]
    fn non_utf8_string_types_are_decoded() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, DnValue::BmpString("Grüße".try_into().unwrap()));
        params
            .distinguished_name
            .push(DnType::OrganizationName, DnValue::UniversalString("Zoë".try_into().unwrap()));
        let id = CertificateIdentity::from_der(&leaf(params)).unwrap();
        assert_eq!(id.subject(), "O=Zoë,CN=Grüße");
    }

    #[test]
    fn empty_subject() {
        let mut params = with_sans(&[uri("spiffe://td/a")]);
        params.distinguished_name = rcgen::DistinguishedName::new();
        let id = CertificateIdentity::from_der(&leaf(params)).unwrap();
        assert_eq!(id.subject(), "");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let der = leaf(with_sans(&[uri("spiffe://td/a")]));
        assert!(matches!(CertificateIdentity::from_der(&[]), Err(CertError::Malformed(_))));
        assert!(matches!(CertificateIdentity::from_der(b"not a certificate"), Err(CertError::Malformed(_))));
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(CertificateIdentity::from_der(&trailing), Err(CertError::TrailingData));
        // Every truncation and every single-byte corruption: errors or identities, no panics.
        for n in 0..der.len() {
            let _ = CertificateIdentity::from_der(&der[..n]);
            let mut flipped = der.clone();
            flipped[n] ^= 0xff;
            let _ = CertificateIdentity::from_der(&flipped);
        }
    }

    #[test]
    fn from_peer_reads_the_leaf() {
        let leaf_der = leaf(with_sans(&[uri("spiffe://td/leaf")]));
        let other = leaf(with_sans(&[uri("spiffe://td/other")]));
        let chain = PeerCertificates::new(vec![leaf_der, other]);
        let id = CertificateIdentity::from_peer(&chain).unwrap();
        assert_eq!(id.spiffe_id().map(ToString::to_string).as_deref(), Some("spiffe://td/leaf"));
        assert_eq!(
            CertificateIdentity::from_peer(&PeerCertificates::new(vec![])),
            Err(CertError::NoCertificate)
        );
    }
}
