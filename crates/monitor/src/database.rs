//! The database probe: open a fresh connection and run `SELECT 1`. A fresh one each time,
//! because the question is whether the server still accepts a client, not whether an old
//! connection survives.
//!
//! Failure reasons come from our own wording or the server's error message, never from the
//! URL, and any text that could echo the password is scrubbed of it.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use switchback_core::config::DatabaseConfig;
use tokio::time::{timeout_at, Instant};
use url::Url;

use crate::probe::{io_failure, unresolved, with_retries, Failure, Outcome, ProbeSettings};

/// Server messages can be long (MariaDB adds hints); a reason is a short line.
const MAX_REASON: usize = 120;

/// Checks a database with a fresh connection and `SELECT 1`, retrying per `settings`.
pub async fn select_one(config: &DatabaseConfig, settings: &ProbeSettings) -> Outcome {
    with_retries(settings, |deadline| attempt(config, deadline)).await
}

async fn attempt(config: &DatabaseConfig, deadline: Instant) -> Outcome {
    let raw = config.url.expose_secret();
    let url = Url::parse(raw).map_err(|_| Failure::Error("bad database url".to_owned()))?;
    let password = url.password().map(str::to_owned);
    let host = url.host_str().map(str::to_owned);
    let outcome = match url.scheme() {
        "postgres" | "postgresql" => {
            let options = PgConnectOptions::from_url(&url).map_err(|_| bad_url())?;
            run::<PgConnection>(options, deadline).await
        }
        "mysql" | "mariadb" => {
            let options = MySqlConnectOptions::from_url(&url).map_err(|_| bad_url())?;
            run::<MySqlConnection>(options, deadline).await
        }
        "sqlite" => {
            // Parsed from the text, since `sqlite://file.db` is a path, not a host. The probe
            // must never create a missing file: a missing database is a down one.
            let options =
                SqliteConnectOptions::from_str(raw).map_err(|_| bad_url())?.create_if_missing(false);
            run::<SqliteConnection>(options, deadline).await
        }
        other => Err(Failure::Error(format!("unsupported database scheme {other}"))),
    };
    outcome.map_err(|failure| scrub(named_host(failure, host.as_deref()), password.as_deref()))
}

/// What the system resolver says of a name it cannot resolve, as drivers pass it on.
const LOOKUP_FAILED: &str = "failed to lookup address information";

/// A driver's failed name lookup in the words the other probes use.
fn named_host(failure: Failure, host: Option<&str>) -> Failure {
    match (failure, host) {
        (Failure::Error(text), Some(host)) if text.starts_with(LOOKUP_FAILED) => unresolved(host),
        (failure, _) => failure,
    }
}

fn bad_url() -> Failure {
    Failure::Error("bad database url".to_owned())
}

/// Connects, runs `SELECT 1`, and closes, all before `deadline`. The latency covers the
/// connection and the query: that is what a softswitch waits for when it needs the database.
async fn run<C>(options: <C as Connection>::Options, deadline: Instant) -> Outcome
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    let options = options.disable_statement_logging();
    let start = Instant::now();
    let mut conn = match timeout_at(deadline, options.connect()).await {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(err)) => return Err(failure(err)),
        Ok(Ok(conn)) => conn,
    };
    // A plain string runs as a simple (unprepared) query: one round trip, nothing cached.
    match timeout_at(deadline, conn.fetch_one("SELECT 1")).await {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(err)) => return Err(failure(err)),
        Ok(Ok(_row)) => {}
    }
    let latency = start.elapsed();
    // The answer is in; a slow goodbye does not make the server unhealthy.
    let _ = timeout_at(deadline, conn.close()).await;
    Ok(latency)
}

/// The reason a driver error stands for.
fn failure(err: sqlx::Error) -> Failure {
    match err {
        sqlx::Error::Io(err) => io_failure(&err),
        // The server's own words ("password authentication failed for user ...",
        // "database ... does not exist", "unable to open database file").
        sqlx::Error::Database(err) => Failure::Error(err.message().to_owned()),
        sqlx::Error::Tls(_) => Failure::Error("tls handshake failed".to_owned()),
        sqlx::Error::Configuration(_) => bad_url(),
        sqlx::Error::Protocol(_) | sqlx::Error::RowNotFound => Failure::BadResponse,
        other => Failure::Error(other.to_string()),
    }
}

/// Cuts a reason to one short line and hides the password, should a message echo it.
fn scrub(failure: Failure, password: Option<&str>) -> Failure {
    let clean = |text: String| {
        let mut text = text.lines().next().unwrap_or_default().to_owned();
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            text = text.replace(password, "***");
            let decoded = percent_decode(password);
            if !decoded.is_empty() {
                text = text.replace(&decoded, "***");
            }
        }
        if text.chars().count() > MAX_REASON {
            text = text.chars().take(MAX_REASON - 1).chain(['…']).collect();
        }
        text
    };
    match failure {
        Failure::Error(text) => Failure::Error(clean(text)),
        Failure::Unreachable(text) => Failure::Unreachable(clean(text)),
        other => other,
    }
}

/// `%XX` escapes undone, as drivers do before sending a URL's password.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_never_show_the_password() {
        let echoed = Failure::Error("login as monitor:p@ss/w0rd! refused\nsecond line".to_owned());
        let clean = scrub(echoed, Some("p%40ss%2Fw0rd!"));
        assert_eq!(clean, Failure::Error("login as monitor:*** refused".to_owned()));
        assert_eq!(scrub(Failure::Status(1), Some("x")), Failure::Status(1));
    }

    #[test]
    fn long_reasons_are_cut_to_one_short_line() {
        let Failure::Error(text) = scrub(Failure::Error("x".repeat(500)), None) else {
            panic!("scrub changed the kind of failure");
        };
        assert_eq!(text.chars().count(), MAX_REASON);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn a_driver_failing_to_resolve_says_it_as_the_other_probes_do() {
        let io = std::io::Error::other("failed to lookup address information: Name or service not known");
        let failure = failure(sqlx::Error::Io(io));
        assert_eq!(named_host(failure, Some("db1.chi.example.net")), unresolved("db1.chi.example.net"));
        let other = Failure::Error("password authentication failed".to_owned());
        assert_eq!(named_host(other.clone(), Some("db1")), other);
    }

    #[tokio::test]
    async fn a_database_host_that_does_not_resolve_is_named() {
        let settings = ProbeSettings { timeout: std::time::Duration::from_secs(5), retries: 0 };
        for url in [
            "postgres://mon:pw@db1.switchback-test.invalid/voip",
            "mysql://mon@db1.switchback-test.invalid/voip",
        ] {
            let config = DatabaseConfig { url: url.into() };
            match select_one(&config, &settings).await {
                Err(Failure::Timeout) => {} // no resolver answered in time
                other => assert_eq!(other, Err(unresolved("db1.switchback-test.invalid")), "{url}"),
            }
        }
    }

    #[test]
    fn escapes_are_undone() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }

    #[tokio::test]
    async fn unusable_urls_are_errors_without_the_url() {
        let settings = ProbeSettings { timeout: std::time::Duration::from_millis(200), retries: 0 };
        for (url, reason) in [
            ("redis://:hunter2@127.0.0.1/0", "unsupported database scheme redis"),
            ("not a url hunter2", "bad database url"),
        ] {
            let config = DatabaseConfig { url: url.into() };
            assert_eq!(select_one(&config, &settings).await, Err(Failure::Error(reason.to_owned())));
        }
    }
}
