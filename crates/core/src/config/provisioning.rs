//! `[provisioning]`: who may fetch phone files. The checks that need the file system
//! (certificates, CA bundles) run at start in the server; here only what the text says.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigError, ServerConfig};

/// How a phone proves it is the phone whose file it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningAuth {
    /// Anyone who knows a MAC gets its file (trusted networks only).
    None,
    /// HTTP Digest (RFC 7616): username = MAC, password = the phone's `prov_password`.
    Digest,
    /// A device certificate, verified against `client_ca`, whose CN or a SAN holds the MAC.
    ClientCert,
}

impl ProvisioningAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningAuth::None => "none",
            ProvisioningAuth::Digest => "digest",
            ProvisioningAuth::ClientCert => "client_cert",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningConfig {
    pub auth: ProvisioningAuth,
    /// `client_cert`: PEM bundle of the CAs that issue the phones' device certificates.
    pub client_ca: Option<PathBuf>,
    /// Source networks that may fetch phone files; `None` (the key left out): any.
    pub allow: Option<Vec<IpNet>>,
    /// Phone files over plain HTTP get 403.
    pub https_only: bool,
    /// Bad phone-file requests from one source within [`SCAN_WINDOW`] before it is blocked.
    pub scan_limit: u32,
    /// How long a blocked source gets 403 for every phone file.
    #[serde(deserialize_with = "super::duration::deserialize")]
    pub block_for: Duration,
}

/// The window `scan_limit` counts bad requests in.
pub const SCAN_WINDOW: Duration = Duration::from_secs(600);

impl Default for ProvisioningConfig {
    fn default() -> Self {
        Self {
            auth: ProvisioningAuth::None,
            client_ca: None,
            allow: None,
            https_only: false,
            scan_limit: 20,
            block_for: Duration::from_secs(3600),
        }
    }
}

impl ProvisioningConfig {
    pub(super) fn validate(&self, server: &ServerConfig) -> Result<(), ConfigError> {
        match self.auth {
            ProvisioningAuth::ClientCert => {
                if server.tls_listen.is_none() {
                    return Err(ConfigError::invalid(
                        "provisioning.auth",
                        "client_cert needs an HTTPS listener: set server.tls_listen, tls_cert and tls_key",
                    ));
                }
                if self.client_ca.is_none() {
                    return Err(ConfigError::invalid(
                        "provisioning.client_ca",
                        "auth = \"client_cert\" needs client_ca (a PEM bundle of the phones' CAs)",
                    ));
                }
            }
            ProvisioningAuth::None | ProvisioningAuth::Digest => {
                if self.client_ca.is_some() {
                    return Err(ConfigError::invalid(
                        "provisioning.client_ca",
                        format!("is only used with auth = \"client_cert\", not \"{}\"", self.auth.as_str()),
                    ));
                }
            }
        }
        if self.https_only && server.tls_listen.is_none() {
            return Err(ConfigError::invalid(
                "provisioning.https_only",
                "no phone could fetch its file: set server.tls_listen too",
            ));
        }
        if self.scan_limit == 0 {
            return Err(ConfigError::invalid("provisioning.scan_limit", "must be at least 1"));
        }
        if self.auth == ProvisioningAuth::Digest && self.scan_limit < 2 {
            return Err(ConfigError::invalid(
                "provisioning.scan_limit",
                "must be at least 2 with digest: a phone's first challenge counts once before it authenticates",
            ));
        }
        if let Some(allow) = &self.allow {
            if allow.is_empty() {
                return Err(ConfigError::invalid(
                    "provisioning.allow",
                    "is empty, which would let no one fetch a file; leave the key out to allow any source",
                ));
            }
            for (i, net) in allow.iter().enumerate() {
                if net.trunc() != *net {
                    return Err(ConfigError::invalid(
                        format!("provisioning.allow[{i}]"),
                        format!("`{net}` has host bits set; the network is `{}`", net.trunc()),
                    ));
                }
            }
        }
        if self.block_for.is_zero() {
            return Err(ConfigError::invalid("provisioning.block_for", "must be longer than 0s"));
        }
        Ok(())
    }

    /// Whether `source` may fetch phone files at all.
    pub fn allows(&self, source: IpAddr) -> bool {
        self.allow.as_ref().is_none_or(|allow| allow.iter().any(|net| net.contains(&source)))
    }
}
