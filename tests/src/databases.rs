//! The machine's PostgreSQL and MariaDB, and fresh throw-away databases on them (and in
//! SQLite files) for tests.
//!
//! Servers default to `postgres://postgres@127.0.0.1:5432/postgres` and
//! `mysql://root@127.0.0.1:3306/mysql` (trust / no password, as on the dev and CI
//! machines); `SWITCHBACK_TEST_POSTGRES` and `SWITCHBACK_TEST_MARIADB` override them. Every
//! function here that needs a server returns an error when it is unreachable, for
//! [`require!`](crate::require) to turn into a skip or, under CI, a failure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::{AnyConnection, Connection};

/// How long a reachability check or an admin statement may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Names of test databases start with this, then the pid of the test process.
const PREFIX: &str = "sbtest_";

/// Which database server a temporary database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    MariaDb,
}

impl Server {
    /// The URL of the server's admin database.
    pub fn admin_url(self) -> String {
        let (var, default) = match self {
            Server::Postgres => ("SWITCHBACK_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"),
            Server::MariaDb => ("SWITCHBACK_TEST_MARIADB", "mysql://root@127.0.0.1:3306/mysql"),
        };
        std::env::var(var).unwrap_or_else(|_| default.to_owned())
    }

    fn name(self) -> &'static str {
        match self {
            Server::Postgres => "postgresql",
            Server::MariaDb => "mariadb",
        }
    }
}

/// The machine's PostgreSQL (its `postgres` database), once it answers `SELECT 1`.
pub async fn postgres_url() -> anyhow::Result<String> {
    reachable(Server::Postgres).await
}

/// The machine's MariaDB (its `mysql` database, `mysql://` scheme), once it answers `SELECT 1`.
pub async fn mariadb_url() -> anyhow::Result<String> {
    reachable(Server::MariaDb).await
}

async fn reachable(server: Server) -> anyhow::Result<String> {
    let url = server.admin_url();
    exec(&url, "SELECT 1").await.with_context(|| {
        format!("{} at {} is unreachable", server.name(), switchback_store::redact_url(&url))
    })?;
    Ok(url)
}

/// Runs `sql` (one or more statements) on a fresh connection to `url`; for tests that
/// need to plant something behind the code under test (a trigger, a corrupt row).
pub async fn exec(url: &str, sql: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let work = async {
        let mut conn = AnyConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await
    };
    tokio::time::timeout(ADMIN_TIMEOUT, work)
        .await
        .with_context(|| format!("no answer within {ADMIN_TIMEOUT:?}"))?
        .with_context(|| format!("running `{sql}`"))
}

/// A database created for one test and dropped (best effort) when this is dropped.
#[derive(Debug)]
pub struct TempDatabase {
    server: Server,
    name: String,
    url: String,
}

/// A temporary PostgreSQL database.
pub type TempPg = TempDatabase;

/// A fresh, empty, uniquely named PostgreSQL database.
pub async fn fresh_postgres() -> anyhow::Result<TempPg> {
    TempDatabase::create(Server::Postgres).await
}

/// A fresh, empty, uniquely named MariaDB database.
pub async fn fresh_mariadb() -> anyhow::Result<TempDatabase> {
    TempDatabase::create(Server::MariaDb).await
}

impl TempDatabase {
    async fn create(server: Server) -> anyhow::Result<Self> {
        let admin = reachable(server).await?;
        sweep_leftovers(server, &admin).await;
        let name = unique_name();
        exec(&admin, &format!("CREATE DATABASE {name}")).await?;
        let url = with_database(&admin, &name)?;
        Ok(Self { server, name, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server(&self) -> Server {
        self.server
    }

    /// Runs raw SQL in this database.
    pub async fn exec_sql(&self, sql: &str) -> anyhow::Result<()> {
        exec(&self.url, sql).await
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let statement = drop_statement(self.server, &self.name);
        let admin = self.server.admin_url();
        // Drop runs inside a test's runtime, which cannot be blocked on; a thread with its
        // own runtime can.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(exec(&admin, &statement))
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("note: could not drop test database {}: {err:#}", self.name),
            Err(_) => eprintln!("note: dropping test database {} panicked", self.name),
        }
    }
}

fn drop_statement(server: Server, name: &str) -> String {
    match server {
        // FORCE ends sessions a test left open (a store not yet closed).
        Server::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        Server::MariaDb => format!("DROP DATABASE IF EXISTS {name}"),
    }
}

/// `sbtest_<pid>_<n>_<nanos>`: unique across concurrent test processes and reruns, and a
/// plain identifier that needs no quoting.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{PREFIX}{}_{n}_{nanos}", std::process::id())
}

/// Drops databases left by test processes that died before their `Drop` ran, once per
/// process and server. Best effort: a failure here only leaves clutter.
async fn sweep_leftovers(server: Server, admin: &str) {
    static SWEPT: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    if SWEPT[server as usize].swap(true, Ordering::Relaxed) {
        return;
    }
    let list = match server {
        Server::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 'sbtest\\_%'",
        Server::MariaDb => {
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'sbtest\\_%'"
        }
    };
    let names: Vec<String> = match list_names(admin, list).await {
        Ok(names) => names,
        Err(_) => return,
    };
    for name in names {
        let pid = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next());
        let alive = pid.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if !alive {
            let _ = exec(admin, &drop_statement(server, &name)).await;
        }
    }
}

async fn list_names(url: &str, sql: &str) -> anyhow::Result<Vec<String>> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    let names = sqlx::query_scalar(sql).fetch_all(&mut conn).await?;
    conn.close().await?;
    Ok(names)
}

/// `url` with its path (the database) replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i).or(Some(base.len())))
        .with_context(|| format!("no `scheme://` in {url}"))?;
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// A SQLite file in a temporary folder, removed with it.
#[derive(Debug)]
pub struct TempSqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempSqlite {
    /// A path for a database file that does not exist yet.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary folder")?;
        let path = dir.path().join("switchback.db");
        Ok(Self { _dir: dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

/// A fresh database for a store test on either backend.
#[derive(Debug)]
pub enum StoreDb {
    Sqlite(TempSqlite),
    Postgres(TempPg),
}

impl StoreDb {
    pub fn sqlite() -> anyhow::Result<Self> {
        Ok(StoreDb::Sqlite(TempSqlite::new()?))
    }

    pub async fn postgres() -> anyhow::Result<Self> {
        Ok(StoreDb::Postgres(fresh_postgres().await?))
    }

    pub fn url(&self) -> String {
        match self {
            StoreDb::Sqlite(db) => db.url(),
            StoreDb::Postgres(db) => db.url().to_owned(),
        }
    }

    /// Runs raw SQL on the database, outside the store.
    pub async fn exec(&self, sql: &str) -> anyhow::Result<()> {
        exec(&self.url(), sql).await
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_swapped_into_the_url() {
        let swap = |url| with_database(url, "x").ok();
        assert_eq!(
            swap("postgres://p@127.0.0.1:5432/postgres").as_deref(),
            Some("postgres://p@127.0.0.1:5432/x")
        );
        assert_eq!(swap("mysql://root@h:3306").as_deref(), Some("mysql://root@h:3306/x"));
        assert_eq!(
            swap("postgres://p@h/db?sslmode=disable").as_deref(),
            Some("postgres://p@h/x?sslmode=disable")
        );
    }
}
