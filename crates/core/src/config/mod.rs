//! The config file: one typed struct, defaults as the README lists them, validated at load.
//!
//! Every error names the key that is wrong (`monitor.interval`, `sites[1].role`, …).
//! Secrets (admin token, database URLs, webhook secrets) live in [`SecretString`],
//! whose `Debug` prints `[REDACTED]`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::model::{Role, ServiceId, ServiceKind};

/// Environment variable that overrides `server.admin_token`.
pub const ADMIN_TOKEN_ENV: &str = "SWITCHBACK_ADMIN_TOKEN";
/// The shortest `admin_token` or `read_token` accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;
/// `server.max_connections` when not set.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub render: RenderConfig,
    #[serde(default)]
    pub monitor: MonitorConfig,
    #[serde(default)]
    pub phones: PhonesConfig,
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
    /// Several instances over one PostgreSQL store; `None`: this instance alone.
    pub cluster: Option<ClusterConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// What phones are told to poll.
    pub public_url: Url,
    pub admin_token: Option<SecretString>,
    /// A read-only token for the read APIs (Grafana, scripts).
    pub read_token: Option<SecretString>,
    /// An HTTPS listener serving every route of `listen`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for `tls_listen`; re-read on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Open connections, both listeners together.
    pub max_connections: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: SecretString,
    /// How long check history is kept (an extension).
    #[serde(deserialize_with = "duration::deserialize")]
    pub check_retention: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub recheck_interval: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub failover_after: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub failback_after: Duration,
    pub auto_failback: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhonesConfig {
    #[serde(deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    pub role: Role,
    pub softswitch: SoftswitchConfig,
    pub database: DatabaseConfig,
    pub stun: StunConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2); port 5061 unless `port` says otherwise.
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The well-known SIP port for the transport.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftswitchConfig {
    pub host: String,
    /// `None`: the transport's well-known port (see [`SoftswitchConfig::port`]).
    #[serde(default, rename = "port")]
    pub explicit_port: Option<u16>,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// Replies other than 2xx that still count as healthy (e.g. 404 from a strict proxy).
    #[serde(default)]
    pub healthy_codes: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://`, `mysql://` or `sqlite://`; may hold a password, hence secret.
    pub url: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StunConfig {
    pub host: String,
    #[serde(default = "default_stun_port")]
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    Generic,
    Slack,
    Pagerduty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub name: String,
    pub url: Url,
    pub format: AlertFormat,
    /// `generic`: the Standard Webhooks signing secret, `whsec_<base64>`.
    pub secret: Option<SecretString>,
    /// `pagerduty`: the Events API v2 integration key.
    pub routing_key: Option<SecretString>,
}

impl SoftswitchConfig {
    /// The port probed and written into phone files: 5060, or 5061 for TLS, unless set.
    pub fn port(&self) -> u16 {
        self.explicit_port.unwrap_or_else(|| self.transport.default_port())
    }
}

fn default_stun_port() -> u16 {
    3478
}

fn default_transport() -> Transport {
    Transport::Udp
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            // Infallible: a constant, valid URL.
            #[allow(clippy::expect_used)]
            public_url: Url::parse("http://127.0.0.1:8080").expect("constant URL parses"),
            admin_token: None,
            read_token: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://switchback.db"),
            check_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
            retries: 2,
            recheck_interval: Duration::from_secs(15),
            failover_after: Duration::ZERO,
            failback_after: Duration::from_secs(600),
            auto_failback: true,
        }
    }
}

impl Default for PhonesConfig {
    fn default() -> Self {
        Self { poll_interval: Duration::from_secs(60) }
    }
}

/// A config that could not be read or is not valid; `key` is the dotted path of the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The text is not TOML. `file` is `None` for text parsed without a file.
    #[error("{}line {line}, column {column}: {problem}", file_prefix(file.as_deref()))]
    Syntax { file: Option<PathBuf>, line: usize, column: usize, problem: String },
    /// A key with a wrong type or value; `line` where the parser knows it.
    #[error("config key `{key}`{}: {problem}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid { key: String, problem: String, line: Option<usize> },
}

/// `config file PATH, ` or `config `: what a syntax error's place starts with.
fn file_prefix(file: Option<&Path>) -> String {
    file.map_or_else(|| "config ".to_owned(), |file| format!("config file {}, ", file.display()))
}

impl ConfigError {
    fn invalid(key: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self::Invalid { key: key.into(), problem: problem.to_string(), line: None }
    }

    /// The error of a config read from `path`: a syntax error names the file.
    fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Syntax { file: None, line, column, problem } => {
                Self::Syntax { file: Some(path.to_owned()), line, column, problem }
            }
            other => other,
        }
    }

    /// A deserializer's error: a syntax error (no key, a place in the text) or a key's.
    fn from_toml(text: &str, err: serde_path_to_error::Error<toml::de::Error>) -> Self {
        let key = err.path().to_string();
        let err = err.into_inner();
        // toml's messages run over lines ("invalid table header\nexpected `.`, `]`").
        let problem = err.message().trim().lines().map(str::trim).collect::<Vec<_>>().join("; ");
        let place = err.span().map(|span| line_and_column(text, span.start));
        // A secret's value must not reach the terminal or a log through its error
        // (`invalid type: integer 9876…`, `relative URL without a base: "hooks.slack…"`).
        let problem = if holds_secret(&key) {
            "not valid here (its value is a secret, so it is not repeated; a quoted string is expected)"
                .to_owned()
        } else {
            problem
        };
        match (key.as_str(), place) {
            (".", Some((line, column))) => Self::Syntax { file: None, line, column, problem },
            (".", None) => Self::Invalid { key: "(top level)".to_owned(), problem, line: None },
            _ => Self::Invalid { key, problem, line: place.map(|(line, _)| line) },
        }
    }
}

/// Whether the key at `path` (`alerts[0].url`, `server.admin_token`) holds a secret: a
/// token, a signing secret or routing key, a database URL (a password), or a webhook URL
/// (Slack's and many others carry their credential in the path).
fn holds_secret(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    matches!(leaf, "admin_token" | "read_token" | "secret" | "routing_key")
        || (leaf == "url"
            && (path.starts_with("alerts") || path.starts_with("sites") || path.starts_with("store")))
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

impl Config {
    /// Reads, parses and validates a config file, applying `SWITCHBACK_ADMIN_TOKEN`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Self::parse(&text).map_err(|err| err.in_file(path))?;
        if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
            if !token.is_empty() {
                validate_token(ADMIN_TOKEN_ENV, &token)?;
                config.server.admin_token = Some(SecretString::from(token));
            }
        }
        Ok(config)
    }

    /// Parses and validates config text (no environment overrides).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(deserializer)
            .map_err(|err| ConfigError::from_toml(text, err))?;
        config.validate()?;
        if let Some(cluster) = &mut config.cluster {
            cluster.complete(config.store.url.expose_secret())?;
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sites()?;
        self.validate_monitor()?;
        validate_http_url("server.public_url", &self.server.public_url)?;
        self.validate_server()?;
        self.provisioning.validate(&self.server)?;
        validate_store_url("store.url", self.store.url.expose_secret())?;
        if self.phones.poll_interval < Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                "phones.poll_interval",
                "must be at least 60s (phones count it in minutes)",
            ));
        }
        if self.server.public_url.query().is_some() || self.server.public_url.fragment().is_some() {
            return Err(ConfigError::invalid(
                "server.public_url",
                "must not have a query or fragment: phones append /prov/… to it",
            ));
        }
        for (i, alert) in self.alerts.iter().enumerate() {
            alert.validate(&format!("alerts[{i}]"))?;
            if self.alerts[..i].iter().any(|a| a.name == alert.name) {
                return Err(ConfigError::invalid(
                    format!("alerts[{i}].name"),
                    format!("`{}` names two webhooks; each needs its own name", alert.name),
                ));
            }
        }
        self.validate_bounds()?;
        Ok(())
    }

    fn validate_sites(&self) -> Result<(), ConfigError> {
        for role in Role::ALL {
            let count = self.sites.iter().filter(|s| s.role == role).count();
            if count != 1 {
                return Err(ConfigError::invalid(
                    "sites",
                    format!("need exactly one site with role = \"{role}\", found {count}"),
                ));
            }
        }
        if self.sites.len() != 2 {
            return Err(ConfigError::invalid("sites", "need exactly two sites, one primary and one backup"));
        }
        if self.sites[0].name == self.sites[1].name {
            return Err(ConfigError::invalid("sites[1].name", "both sites have the same name"));
        }
        for (i, site) in self.sites.iter().enumerate() {
            site.validate(&format!("sites[{i}]"))?;
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        for (key, token) in
            [("server.admin_token", &server.admin_token), ("server.read_token", &server.read_token)]
        {
            if let Some(token) = token {
                validate_token(key, token.expose_secret())?;
            }
        }
        if let (Some(admin), Some(read)) = (&server.admin_token, &server.read_token) {
            if admin.expose_secret() == read.expose_secret() {
                return Err(ConfigError::invalid("server.read_token", "must differ from admin_token"));
            }
        }
        if server.max_connections == 0 {
            return Err(ConfigError::invalid("server.max_connections", "must be at least 1"));
        }
        match (server.tls_listen, &server.tls_cert, &server.tls_key) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            (Some(_), None, _) => {
                return Err(ConfigError::invalid(
                    "server.tls_cert",
                    "tls_listen needs tls_cert (a PEM chain)",
                ))
            }
            (Some(_), _, None) => {
                return Err(ConfigError::invalid("server.tls_key", "tls_listen needs tls_key (a PEM key)"))
            }
            (None, _, _) => {
                return Err(ConfigError::invalid(
                    "server.tls_listen",
                    "tls_cert and tls_key are set but tls_listen is not",
                ))
            }
        }
        if server.tls_listen.is_some() && server.tls_listen == Some(server.listen) {
            return Err(ConfigError::invalid("server.tls_listen", "must differ from server.listen"));
        }
        Ok(())
    }

    /// Durations far beyond any sensible setting are typos, and would overflow the
    /// arithmetic of the scheduler and the engine.
    fn validate_bounds(&self) -> Result<(), ConfigError> {
        const DAY: u64 = 24 * 3600;
        let m = &self.monitor;
        let limits = [
            ("monitor.interval", m.interval, DAY),
            ("monitor.timeout", m.timeout, 600),
            ("monitor.recheck_interval", m.recheck_interval, DAY),
            ("monitor.failover_after", m.failover_after, 30 * DAY),
            ("monitor.failback_after", m.failback_after, 30 * DAY),
            ("phones.poll_interval", self.phones.poll_interval, DAY),
            ("provisioning.block_for", self.provisioning.block_for, 30 * DAY),
            ("store.check_retention", self.store.check_retention, 10 * 365 * DAY),
        ];
        for (key, value, max) in limits {
            if value > Duration::from_secs(max) {
                let max = humantime::format_duration(Duration::from_secs(max));
                return Err(ConfigError::invalid(key, format!("at most {max}")));
            }
        }
        Ok(())
    }

    fn validate_monitor(&self) -> Result<(), ConfigError> {
        let m = &self.monitor;
        for (key, value) in [
            ("monitor.interval", m.interval),
            ("monitor.timeout", m.timeout),
            ("monitor.recheck_interval", m.recheck_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than 0s"));
            }
        }
        if m.retries > 10 {
            return Err(ConfigError::invalid("monitor.retries", "at most 10 extra attempts"));
        }
        Ok(())
    }

    /// The site that plays `role`. Validation guarantees there is exactly one.
    pub fn site(&self, role: Role) -> &SiteConfig {
        // Infallible after `validate`: exactly one site per role.
        #[allow(clippy::expect_used)]
        self.sites.iter().find(|s| s.role == role).expect("validated: one site per role")
    }

    /// The display name of the site that hosts `service`.
    pub fn site_name(&self, role: Role) -> &str {
        &self.site(role).name
    }

    pub fn site_names(&self) -> crate::model::SiteNames {
        crate::model::SiteNames::new(self.site_name(Role::Primary), self.site_name(Role::Backup))
    }

    /// The admin token, if one is set (config or environment).
    pub fn admin_token(&self) -> Option<&str> {
        self.server.admin_token.as_ref().map(|t| t.expose_secret())
    }

    /// Every service with the address it is probed at, for display.
    pub fn service_target(&self, service: ServiceId) -> String {
        let site = self.site(service.role);
        match service.kind {
            ServiceKind::Softswitch => format!("{}:{}", site.softswitch.host, site.softswitch.port()),
            ServiceKind::Stun => format!("{}:{}", site.stun.host, site.stun.port),
            ServiceKind::Database => redact_url(site.database.url.expose_secret()),
        }
    }
}

impl SiteConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(format!("{key}.name"), "must be a non-empty name"));
        }
        // Site names are metric label values and appear in phone-file comments.
        if self.name.contains(['"', '\\']) || self.name.chars().count() > 64 {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "at most 64 characters, without `\"` or `\\`",
            ));
        }
        validate_host(&format!("{key}.softswitch.host"), &self.softswitch.host)?;
        validate_port(&format!("{key}.softswitch.port"), self.softswitch.port())?;
        for code in &self.softswitch.healthy_codes {
            if !(100..=699).contains(code) {
                return Err(ConfigError::invalid(
                    format!("{key}.softswitch.healthy_codes"),
                    format!("{code} is not a SIP status code (100-699)"),
                ));
            }
        }
        validate_host(&format!("{key}.stun.host"), &self.stun.host)?;
        validate_port(&format!("{key}.stun.port"), self.stun.port)?;
        validate_database_url(&format!("{key}.database.url"), self.database.url.expose_secret())
    }
}

impl AlertConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        validate_http_url(&format!("{key}.url"), &self.url)?;
        if let Some(secret) = &self.secret {
            let Some(encoded) = secret.expose_secret().strip_prefix("whsec_") else {
                return Err(ConfigError::invalid(format!("{key}.secret"), "must start with `whsec_`"));
            };
            // Checked now: a secret that cannot key the HMAC would fail every alert, for ever.
            let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded);
            if !decoded.is_ok_and(|key| !key.is_empty()) {
                return Err(ConfigError::invalid(
                    format!("{key}.secret"),
                    "must be `whsec_` followed by base64 (as the receiver shows it)",
                ));
            }
        }
        if self.format == AlertFormat::Pagerduty && self.routing_key.is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.routing_key"),
                "format = \"pagerduty\" needs a routing_key",
            ));
        }
        Ok(())
    }
}

/// A token an attacker cannot guess: long enough, printable, no spaces at its ends.
fn validate_token(key: &str, token: &str) -> Result<(), ConfigError> {
    if token.is_empty() {
        return Err(ConfigError::invalid(key, "is empty; remove the key to leave it unset"));
    }
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(ConfigError::invalid(
            key,
            format!("is too short: at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 24`)"),
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::invalid(key, "may not contain spaces or control characters"));
    }
    Ok(())
}

fn validate_host(key: &str, host: &str) -> Result<(), ConfigError> {
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(ConfigError::invalid(key, format!("`{host}` is not a host name or address")));
    }
    Ok(())
}

fn validate_port(key: &str, port: u16) -> Result<(), ConfigError> {
    if port == 0 {
        return Err(ConfigError::invalid(key, "port must be between 1 and 65535"));
    }
    Ok(())
}

fn validate_http_url(key: &str, url: &Url) -> Result<(), ConfigError> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        // A webhook URL is a credential: said by its scheme, not repeated whole.
        let shown = if holds_secret(key) { format!("a `{}:` URL", url.scheme()) } else { format!("`{url}`") };
        return Err(ConfigError::invalid(key, format!("{shown} is not an http(s) URL with a host")));
    }
    Ok(())
}

fn validate_database_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(url).map_err(|e| ConfigError::invalid(key, format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "postgres" | "postgresql" | "mysql" | "mariadb" if parsed.host().is_some() => Ok(()),
        "postgres" | "postgresql" | "mysql" | "mariadb" => {
            Err(ConfigError::invalid(key, "the URL has no host"))
        }
        "sqlite" => Ok(()),
        other => Err(ConfigError::invalid(
            key,
            format!("unsupported scheme `{other}` (use postgres://, mysql:// or sqlite://)"),
        )),
    }
}

fn validate_store_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(url).map_err(|e| ConfigError::invalid(key, format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "sqlite" | "postgres" | "postgresql" => Ok(()),
        other => Err(ConfigError::invalid(
            key,
            format!("unsupported scheme `{other}` (use sqlite:// or postgres://)"),
        )),
    }
}

/// Query parameters that carry a password in database URLs (libpq, sqlx, MySQL).
const SECRET_PARAMS: [&str; 4] = ["password", "sslpassword", "pass", "pwd"];

/// A URL with its password (in the user part or a `?password=` parameter) replaced by
/// `***`, safe to log. Unparseable input is hidden whole.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s));
                        (k.into_owned(), if secret { "***".to_owned() } else { v.into_owned() })
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "[unparseable url]".to_owned(),
    }
}

#[cfg(test)]
mod tests;

mod duration;

mod provisioning;
pub use provisioning::{ProvisioningAuth, ProvisioningConfig, SCAN_WINDOW};

mod cluster;
pub use cluster::{ClusterConfig, DEFAULT_LEASE, DEFAULT_QUORUM};
