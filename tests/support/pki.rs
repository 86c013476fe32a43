//! Certificates for mutual-TLS tests, made per test run with rcgen.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};

/// A certificate with its key (PEM) and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Issued {
    /// The RFC 8705 `x5t#S256` of this certificate.
    pub fn thumbprint(&self) -> String {
        zt::cert::thumbprint_sha256(&self.der)
    }

    /// The verified chain as the TLS glue hands it to the Guard.
    pub fn peer(&self) -> zt::PeerCertificates {
        zt::PeerCertificates::new(vec![self.der.clone()])
    }
}

pub struct Pki {
    pub ca_pem: String,
    pub server: Issued,
    /// SPIFFE `spiffe://prod.example/ns/orders/sa/admin`.
    pub admin: Issued,
    /// SPIFFE `spiffe://dev.example/ns/orders/sa/admin`.
    pub other_domain: Issued,
    /// No SPIFFE ID, CN only.
    pub plain: Issued,
    /// Signed by a CA the server does not trust.
    pub foreign: Issued,
    /// Expired.
    pub expired: Issued,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
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

fn client(cn: &str, spiffe: Option<&str>, not_after_year: i32) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(id) = spiffe {
        params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if not_after_year < 2020 {
        params.not_before = date_time_ymd(2000, 1, 1);
    }
    params.not_after = date_time_ymd(not_after_year, 1, 1);
    params
}

pub fn pki() -> Pki {
    let root = ca("zt test CA");
    let other = ca("untrusted CA");
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Pki {
        ca_pem: root.pem(),
        server: issue(server, &root),
        admin: issue(client("admin", Some("spiffe://prod.example/ns/orders/sa/admin"), 4000), &root),
        other_domain: issue(
            client("dev admin", Some("spiffe://dev.example/ns/orders/sa/admin"), 4000),
            &root,
        ),
        plain: issue(client("plain client", None, 4000), &root),
        foreign: issue(client("foreign", Some("spiffe://prod.example/ns/orders/sa/admin"), 4000), &other),
        expired: issue(client("expired", Some("spiffe://prod.example/ns/orders/sa/admin"), 2001), &root),
    }
}
