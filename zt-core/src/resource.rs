//! OAuth 2.0 protected-resource metadata (RFC 9728): what a client (an MCP client, an AI
//! agent, a CLI) needs to find out, from the API alone, which authorization servers issue
//! tokens for it, which scopes it knows and how tokens must be presented.
//!
//! With a `[resource]` section the Guard
//! - generates the metadata document from the policy and the route table
//!   ([`Guard::resource_metadata`](crate::Guard::resource_metadata)): `resource`,
//!   `authorization_servers` (the trusted issuers unless listed), `scopes_supported` (every
//!   scope a route requires), `bearer_methods_supported`, `dpop_signing_alg_values_supported`
//!   (when DPoP is on), `tls_client_certificate_bound_access_tokens`;
//! - adds `resource_metadata="<url>"` to every `WWW-Authenticate` challenge of a 401
//!   (RFC 9728 s.5.1, which the MCP authorization specification requires of MCP servers);
//! - checks at start-up that every trusted issuer accepts the resource identifier as an
//!   audience (RFC 8707: a token minted for another resource must not be accepted here).
//!
//! The adapters serve the document at [`ResourceConfig::metadata_path`]
//! (`/.well-known/oauth-protected-resource`, with the identifier's path appended, s.3.1)
//! with their routers' `resource_metadata()`.
//!
//! ```
//! use zt_core::policy::{IssuerConfig, Policy};
//! use zt_core::resource::ResourceConfig;
//!
//! let mut policy = Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("https://api.example")
//!         .jwks_url("https://issuer.example/jwks"))
//!     .build();
//! policy.resource = Some(ResourceConfig::new("https://api.example"));
//! let guard = zt_core::Guard::new(policy).unwrap();
//! let document: serde_json::Value = serde_json::from_str(&guard.resource_metadata().unwrap()).unwrap();
//! assert_eq!(document["resource"], "https://api.example");
//! assert_eq!(document["authorization_servers"][0], "https://issuer.example");
//! ```

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// The well-known suffix of RFC 9728 s.3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// `[resource]`: this API as an OAuth protected resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The resource identifier (RFC 9728 s.1.2): an `https` URL (`http` only for loopback
    /// hosts, for development) without query or fragment, e.g. `https://api.example.com`.
    pub identifier: String,
    /// The authorization servers to name (issuer identifiers). Empty (default): every
    /// trusted issuer of the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// A human-readable name (`resource_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where developers read about the API (`resource_documentation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
}

impl ResourceConfig {
    /// A resource named by `identifier`, its authorization servers the policy's issuers.
    pub fn new(identifier: impl Into<String>) -> ResourceConfig {
        ResourceConfig {
            identifier: identifier.into(),
            authorization_servers: Vec::new(),
            name: None,
            documentation: None,
        }
    }

    /// The path the metadata is served at: the well-known suffix, followed by the
    /// identifier's path when it has one (`https://a.example/api` →
    /// `/.well-known/oauth-protected-resource/api`, RFC 9728 s.3.1).
    pub fn metadata_path(&self) -> String {
        let path = parse(&self.identifier).map(|(_, path)| path).unwrap_or_default();
        format!("{WELL_KNOWN}{}", path.trim_end_matches('/'))
    }

    /// The absolute URL of the metadata, as named in challenges.
    pub fn metadata_url(&self) -> String {
        let origin = parse(&self.identifier).map(|(origin, _)| origin).unwrap_or_default();
        format!("{origin}{}", self.metadata_path())
    }

    /// Checks the identifier and the URLs (a policy error names the field).
    pub(crate) fn validate(&self, issuers: &[crate::policy::IssuerConfig]) -> Result<(), PolicyError> {
        let bad = |why: &str| PolicyError::invalid("resource.identifier", why.to_string());
        let (origin, _) = parse(&self.identifier).ok_or_else(|| {
            bad("must be an absolute https URL (http only for a loopback host) without query or fragment")
        })?;
        if origin.contains(['"', '\\']) || self.identifier.chars().any(|c| c.is_control() || c == '"') {
            return Err(bad("must not contain quotes, backslashes or control characters"));
        }
        for (i, server) in self.authorization_servers.iter().enumerate() {
            if !issuers.iter().any(|issuer| &issuer.issuer == server) {
                return Err(PolicyError::invalid(
                    format!("resource.authorization_servers[{i}]"),
                    "not one of the policy's trusted issuers (a client would be sent to a server whose tokens are refused)",
                ));
            }
        }
        // RFC 8707 / MCP: tokens for this resource carry it as their audience. An issuer
        // that does not accept it would have its tokens for this resource refused, and one
        // that accepts only other audiences shows a token meant for another API is in use.
        if let Some(issuer) = issuers.iter().find(|i| !i.audiences.iter().any(|a| a == &self.identifier)) {
            return Err(PolicyError::invalid(
                "resource.identifier",
                format!(
                    "the issuer {} does not accept it as an audience: add it to the issuer's audiences (RFC 8707)",
                    issuer.issuer
                ),
            ));
        }
        Ok(())
    }
}

/// `(origin, path)` of an acceptable identifier.
fn parse(identifier: &str) -> Option<(String, String)> {
    let url = url::Url::parse(identifier).ok()?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = url.host()?;
    let loopback = match host {
        url::Host::Domain(d) => d == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return None,
    }
    let origin = url.origin().ascii_serialization();
    let path = if url.path() == "/" { String::new() } else { url.path().to_string() };
    Some((origin, path))
}

/// The metadata document.
pub(crate) fn document<'a>(
    config: &ResourceConfig,
    issuers: &[crate::policy::IssuerConfig],
    scopes: impl Iterator<Item = &'a str>,
    dpop_algs: Option<Vec<&str>>,
    query_allowed: bool,
) -> String {
    let mut scopes: Vec<&str> = scopes.collect();
    scopes.sort_unstable();
    scopes.dedup();
    let servers: Vec<&str> = if config.authorization_servers.is_empty() {
        issuers.iter().map(|i| i.issuer.as_str()).collect()
    } else {
        config.authorization_servers.iter().map(String::as_str).collect()
    };
    let mut doc = serde_json::json!({
        "resource": config.identifier,
        "authorization_servers": servers,
        "scopes_supported": scopes,
        "bearer_methods_supported": if query_allowed { vec!["header", "query"] } else { vec!["header"] },
        // Tokens bound to a client certificate (RFC 8705 `cnf.x5t#S256`) are verified
        // against the connection's certificate whenever they are presented.
        "tls_client_certificate_bound_access_tokens": true,
    });
    if let Some(algs) = dpop_algs {
        doc["dpop_signing_alg_values_supported"] = serde_json::json!(algs);
    }
    if let Some(name) = &config.name {
        doc["resource_name"] = serde_json::json!(name);
    }
    if let Some(documentation) = &config.documentation {
        doc["resource_documentation"] = serde_json::json!(documentation);
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_follow_rfc_9728_s3_1() {
        let root = ResourceConfig::new("https://api.example");
        assert_eq!(root.metadata_path(), "/.well-known/oauth-protected-resource");
        assert_eq!(root.metadata_url(), "https://api.example/.well-known/oauth-protected-resource");
        let nested = ResourceConfig::new("https://api.example:8443/v1/");
        assert_eq!(nested.metadata_path(), "/.well-known/oauth-protected-resource/v1");
        assert_eq!(nested.metadata_url(), "https://api.example:8443/.well-known/oauth-protected-resource/v1");
    }

    #[test]
    fn identifiers_must_be_https_urls_without_query_or_fragment() {
        let issuer = |aud: &str| crate::policy::IssuerConfig::new("https://i.example").audience(aud);
        for bad in
            ["api", "http://api.example", "https://api.example/?a=1", "https://api.example/#f", "ftp://x"]
        {
            let config = ResourceConfig::new(bad);
            assert!(config.validate(&[issuer(bad)]).is_err(), "{bad}");
        }
        for good in ["https://api.example", "http://127.0.0.1:8080", "http://localhost/x"] {
            assert!(ResourceConfig::new(good).validate(&[issuer(good)]).is_ok(), "{good}");
        }
    }

    #[test]
    fn every_issuer_must_accept_the_resource_as_audience() {
        let config = ResourceConfig::new("https://api.example");
        let other = crate::policy::IssuerConfig::new("https://i.example").audience("orders-api");
        let error = config.validate(&[other]).unwrap_err().to_string();
        assert!(error.contains("RFC 8707"), "{error}");
        let mut listed = config.clone();
        listed.authorization_servers = vec!["https://elsewhere.example".into()];
        let issuer = crate::policy::IssuerConfig::new("https://i.example").audience("https://api.example");
        assert!(listed.validate(&[issuer]).is_err(), "an unknown authorization server");
    }

    #[test]
    fn the_document_lists_servers_scopes_and_methods() {
        let issuers = [crate::policy::IssuerConfig::new("https://i.example").audience("https://api.example")];
        let mut config = ResourceConfig::new("https://api.example");
        config.name = Some("Orders".into());
        let doc = document(&config, &issuers, ["b", "a", "b"].into_iter(), Some(vec!["ES256"]), false);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc["scopes_supported"], serde_json::json!(["a", "b"]));
        assert_eq!(doc["authorization_servers"], serde_json::json!(["https://i.example"]));
        assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
        assert_eq!(doc["dpop_signing_alg_values_supported"], serde_json::json!(["ES256"]));
        assert_eq!(doc["resource_name"], "Orders");
    }
}
