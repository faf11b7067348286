//! Reading a store URL: which backend it names, what sqlx is given, and a redacted form
//! for logs and errors.

use std::fmt;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use crate::error::StoreError;
use crate::sqlite_file::SqliteFile;

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed store URL. Its `Debug` shows only the redacted form.
pub(crate) struct StoreUrl {
    pub backend: Backend,
    /// What sqlx connects to; may hold a password, so never logged.
    pub connect: String,
    /// Safe to log: passwords replaced by `***`.
    pub redacted: String,
    /// A private in-memory SQLite database, which lives only as long as its one connection.
    pub in_memory: bool,
    /// Passwords (raw and percent-decoded) to scrub from driver messages.
    secrets: Vec<String>,
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreUrl").field("backend", &self.backend).field("url", &self.redacted).finish()
    }
}

const MASK: &str = "***";
const SECRET_PARAMS: [&str; 2] = ["password", "sslpassword"];

impl StoreUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let Some((scheme, _)) = url.split_once(':') else {
            return Err(StoreError::BadUrl {
                url: url.to_owned(),
                reason: "no scheme: use sqlite://PATH or postgres://".to_owned(),
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::sqlite(url)),
            "postgres" | "postgresql" => Self::postgres(url),
            _ => Err(StoreError::UnsupportedScheme { scheme: scheme.to_owned() }),
        }
    }

    /// SQLite URLs rarely carry credentials. A missing file is created (`mode=rwc`) unless
    /// the URL already says which mode it wants.
    fn sqlite(url: &str) -> Self {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let connect = if in_memory || url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        // A path needs no hiding, but a `?password=` someone added must not be shown.
        let (redacted, secrets) = redact(url).unwrap_or_else(|_| (url.to_owned(), Vec::new()));
        Self { backend: Backend::Sqlite, connect, redacted, in_memory, secrets }
    }

    fn postgres(url: &str) -> Result<Self, StoreError> {
        let (redacted, secrets) = redact(url).map_err(|reason| StoreError::BadUrl {
            url: format!("{}://…", url.split(':').next().unwrap_or_default()),
            reason,
        })?;
        Ok(Self { backend: Backend::Postgres, connect: url.to_owned(), redacted, in_memory: false, secrets })
    }

    /// The SQLite file this URL names, as sqlx reads the URL; `None` for an in-memory
    /// database, another backend, or a URL sqlx would refuse (it then says why).
    pub(crate) fn sqlite_file(&self) -> Option<SqliteFile> {
        if self.backend != Backend::Sqlite || self.in_memory {
            return None;
        }
        // The Any driver parses the URL, then hands SQLite the parsed form: the same steps
        // give the same path (dot segments removed, percent escapes decoded).
        let url = url::Url::parse(&self.connect).ok()?;
        let options = SqliteConnectOptions::from_url(&url).ok()?;
        let path = options.get_filename().to_owned();
        if path.as_os_str().is_empty() {
            return None;
        }
        let create = url.query_pairs().any(|(key, value)| key == "mode" && value == "rwc");
        Some(SqliteFile { path, create })
    }

    /// `message` with every password of this URL replaced by `***`.
    pub(crate) fn scrub(&self, message: &str) -> String {
        self.secrets.iter().fold(message.to_owned(), |text, secret| text.replace(secret.as_str(), MASK))
    }
}

/// A database URL of any scheme with its password (in the user info or a `password`
/// parameter) replaced by `***`, fit for logs. A URL that cannot be parsed is shown as
/// its scheme alone, since where a password would sit in it is unknown.
pub fn redact_url(url: &str) -> String {
    match redact(url) {
        Ok((redacted, _)) => redacted,
        Err(_) => format!("{}://…", url.split(':').next().unwrap_or_default()),
    }
}

/// The redacted URL (the original text when it holds no secret) and the secrets found.
fn redact(url: &str) -> Result<(String, Vec<String>), String> {
    let mut parsed = url::Url::parse(url).map_err(|err| err.to_string())?;
    let mut secrets = Vec::new();
    if let Some(password) = parsed.password().map(str::to_owned) {
        remember(&mut secrets, &password);
        // Fails only for URLs that cannot have a password (no host), and this one had one.
        let _ = parsed.set_password(Some(MASK));
    }
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    if pairs.iter().any(|(key, _)| SECRET_PARAMS.contains(&key.as_str())) {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (key, value) in &pairs {
            if SECRET_PARAMS.contains(&key.as_str()) {
                remember(&mut secrets, value);
                query.append_pair(key, MASK);
            } else {
                query.append_pair(key, value);
            }
        }
    }
    let redacted = if secrets.is_empty() { url.to_owned() } else { parsed.to_string() };
    Ok((redacted, secrets))
}

/// Keeps a password in both spellings a message might quote it in.
fn remember(secrets: &mut Vec<String>, password: &str) {
    if password.is_empty() {
        return;
    }
    secrets.push(password.to_owned());
    let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !decoded.is_empty() && decoded != password {
        secrets.push(decoded);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn postgres_password_is_redacted() {
        let url = StoreUrl::parse("postgres://sb:s3cr%40t@db.example.net:5432/switchback").unwrap();
        assert_eq!(url.backend, Backend::Postgres);
        assert_eq!(url.redacted, "postgres://sb:***@db.example.net:5432/switchback");
        assert_eq!(url.scrub("auth failed for s3cr@t and s3cr%40t"), "auth failed for *** and ***");
        assert!(!format!("{url:?}").contains("s3cr"));
    }

    #[test]
    fn postgres_password_parameter_is_redacted() {
        let url = StoreUrl::parse("postgresql://sb@db/switchback?sslmode=disable&password=hunter2").unwrap();
        assert!(!url.redacted.contains("hunter2"), "{}", url.redacted);
        assert!(url.redacted.contains("sslmode=disable"));
        assert!(url.connect.contains("hunter2"));
    }

    #[test]
    fn a_sqlite_password_parameter_is_redacted_and_a_plain_path_kept_as_written() {
        let url = StoreUrl::parse("sqlite:///tmp/x.db?password=QSecret&mode=rwc").unwrap();
        assert!(!url.redacted.contains("QSecret") && url.redacted.contains("mode=rwc"), "{}", url.redacted);
        assert_eq!(url.scrub("bad key QSecret"), "bad key ***");
        let plain = StoreUrl::parse("sqlite://switchback.db").unwrap();
        assert_eq!(plain.redacted, "sqlite://switchback.db");
    }

    #[test]
    fn sqlite_file_is_created_when_missing() {
        let url = StoreUrl::parse("sqlite:///var/lib/switchback/state.db").unwrap();
        assert_eq!(url.connect, "sqlite:///var/lib/switchback/state.db?mode=rwc");
        assert!(!url.in_memory);
        assert!(StoreUrl::parse("sqlite::memory:").unwrap().in_memory);
        assert_eq!(StoreUrl::parse("sqlite://x.db?mode=ro").unwrap().connect, "sqlite://x.db?mode=ro");
    }

    #[test]
    fn sqlite_file_is_the_path_sqlx_opens() {
        let file = |url: &str| StoreUrl::parse(url).unwrap().sqlite_file();
        let path = |url: &str| file(url).map(|f| f.path.display().to_string());
        assert_eq!(
            path("sqlite:///var/lib/switchback/state.db").as_deref(),
            Some("/var/lib/switchback/state.db")
        );
        assert_eq!(path("sqlite://switchback.db").as_deref(), Some("switchback.db"));
        assert_eq!(path("sqlite:switchback.db").as_deref(), Some("switchback.db"));
        assert_eq!(path("sqlite:///srv/a/../my%20store.db").as_deref(), Some("/srv/my store.db"));
        assert_eq!(file("sqlite:///x.db").map(|f| f.create), Some(true));
        assert_eq!(file("sqlite:///x.db?mode=rw").map(|f| f.create), Some(false));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://?mode=memory"), None);
        assert_eq!(file("postgres://sb@db/switchback"), None);
    }

    #[test]
    fn any_url_is_redacted_for_logs() {
        assert_eq!(redact_url("mysql://mon:pw@db1/voip"), "mysql://mon:***@db1/voip");
        assert_eq!(redact_url("sqlite://switchback.db"), "sqlite://switchback.db");
        assert_eq!(redact_url("postgres://u:p w@"), "postgres://…");
    }

    #[test]
    fn other_schemes_are_named() {
        let err = StoreUrl::parse("mysql://root:pw@db/x").unwrap_err();
        assert!(matches!(&err, StoreError::UnsupportedScheme { scheme } if scheme == "mysql"));
        assert!(!err.to_string().contains("pw"));
        assert!(matches!(StoreUrl::parse("switchback.db"), Err(StoreError::BadUrl { .. })));
    }
}
