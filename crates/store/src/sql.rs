//! [`SqlStore`]: the one [`Store`] implementation, on sqlx's Any driver.
//!
//! Any runs the same query text on SQLite and PostgreSQL (`$1` placeholders, which
//! SQLite takes as numbered parameters), so each query is written once; the two
//! backends differ only in their migrations, their pool settings and how a
//! transaction begins.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use switchback_core::engine::{EngineState, Event};
use switchback_core::model::{CheckResult, ServiceId};

use crate::error::StoreError;
use crate::sqlite_file;
use crate::tables::{checks, cluster, events, generations, outbox, phone_page, phones, state};
use crate::url::{Backend, StoreUrl};
use crate::write::WriteTx;
use crate::Create;
use crate::{
    AlertCounts, AlertDelivery, Claim, Convergence, Enqueue, Fence, FetchRecord, GenerationStart, Lease,
    Listener, NodeSeen, OperatorRequest, OutboxAlert, PhoneImport, PhonePage, PhoneQuery, PhonesRevision,
    RequestOutcome, Store, StoredEvent, VantageCheck,
};
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::{Mac, Phone};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long opening the store may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a statement waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache per SQLite connection, in KiB (at most 4 connections).
const SQLITE_CACHE_KIB: u32 = 16 * 1024;

pub(crate) struct SqlStore {
    pool: AnyPool,
    url: StoreUrl,
    /// The SQLite file and its (device, inode) when opened: a file deleted or replaced
    /// under a running switchback is noticed before the next write.
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.url.backend)
            .field("url", &self.url.redacted)
            .finish()
    }
}

impl SqlStore {
    /// Connects, prepares the connection settings and applies the embedded migrations.
    pub(crate) async fn open(url: &str, create: Create) -> Result<Self, StoreError> {
        let url = StoreUrl::parse(url)?;
        if let Some(file) = url.sqlite_file() {
            sqlite_file::check_folder(&file, &url.redacted)?;
        }
        if let Some(file) = url.sqlite_file().filter(|_| create != Create::IfMissing) {
            if !file.path.exists() {
                return Err(StoreError::Missing { url: url.redacted.clone() });
            }
        }
        if let Some(file) = url.sqlite_file().filter(|_| create != Create::ReadOnly) {
            sqlite_file::secure(&file, &url.redacted)?;
        }
        sqlx::any::install_default_drivers();
        let connect_error = |reason: String| StoreError::Connect { url: url.redacted.clone(), reason };
        // One plain connection first: a pool that cannot connect retries until its acquire
        // timeout and then reports only that it timed out, hiding "connection refused" or
        // "database does not exist".
        let first = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&url.connect))
            .await
            .map_err(|_| connect_error(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(|err| connect_error(url.scrub(&err.to_string())))?;
        // Closing a connection that just opened can only fail to say goodbye cleanly.
        let _ = first.close().await;
        let pool = pool_options(&url)
            .connect(&url.connect)
            .await
            .map_err(|err| connect_error(url.scrub(&err.to_string())))?;
        let file = url.sqlite_file().and_then(|f| identity(&f.path).map(|id| (f.path, id)));
        let store = Self { pool, url, file };
        // Before anything is written (WAL files included) to a store that is refused.
        if !store.url.in_memory && !store.has_schema().await? {
            if let Some(schema) = store.schema_elsewhere().await? {
                return Err(StoreError::OtherSchema { url: store.url.redacted.clone(), schema });
            }
            if create != Create::IfMissing {
                return Err(StoreError::Missing { url: store.url.redacted.clone() });
            }
        }
        let migrator = match store.url.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        if create == Create::ReadOnly {
            store.same_schema(migrator).await?;
            return Ok(store);
        }
        if store.url.backend == Backend::Sqlite && !store.url.in_memory {
            store.use_wal().await?;
        }
        migrator
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate { url: store.url.redacted.clone(), source })?;
        tracing::info!(backend = %store.url.backend, url = %store.url.redacted, "store ready");
        Ok(store)
    }

    /// Refuses a store whose applied migrations are not exactly this binary's: reading it
    /// could misread it, and migrating it is for `switchback run`.
    async fn same_schema(&self, migrator: &Migrator) -> Result<(), StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("read the store's schema version"))?;
        let known: Vec<i64> =
            migrator.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).collect();
        if applied == known {
            return Ok(());
        }
        let older = applied.last() < known.last();
        Err(StoreError::OtherVersion { url: self.url.redacted.clone(), older })
    }

    /// Whether the migrations ever ran here.
    async fn has_schema(&self) -> Result<bool, StoreError> {
        let sql = match self.url.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let tables: i64 = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("look for the schema"))?;
        Ok(tables > 0)
    }

    /// A schema later on the search path than the current one that holds switchback's
    /// tables: the search path changed (a schema named after the role was made), and
    /// migrating now would start an empty store in front of them. Schemas off the search
    /// path (another deployment's, a restored copy) are not this store's.
    async fn schema_elsewhere(&self) -> Result<Option<String>, StoreError> {
        if self.url.backend != Backend::Postgres {
            return Ok(None);
        }
        // Another application's migrations table is not ours: switchback's own tables
        // must be there too.
        sqlx::query_scalar(
            "SELECT m.table_schema::text FROM information_schema.tables m \
             JOIN information_schema.tables e ON e.table_schema = m.table_schema AND e.table_name = 'engine_state' \
             WHERE m.table_name = '_sqlx_migrations' AND m.table_schema <> current_schema() \
             AND m.table_schema = ANY(current_schemas(false)) \
             ORDER BY m.table_schema LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("look for the schema elsewhere"))
    }

    fn require_postgres(&self) -> Result<(), StoreError> {
        match self.url.backend {
            Backend::Postgres => Ok(()),
            Backend::Sqlite => Err(StoreError::NeedsPostgres),
        }
    }

    /// Write-ahead logging lets readers (the dashboard) proceed while the engine writes.
    /// The mode is kept in the file, so setting it once per open is enough.
    async fn use_wal(&self) -> Result<(), StoreError> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("set journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(url = %self.url.redacted, mode, "sqlite store not in wal mode");
        }
        Ok(())
    }

    /// A transaction for writes. SQLite's `BEGIN IMMEDIATE` takes the write lock up front,
    /// so a second writer waits (busy timeout) instead of failing with SQLITE_BUSY when
    /// its first read would have to be upgraded to a write.
    /// Fails when the SQLite file is no longer the one opened.
    fn check_file(&self) -> Result<(), StoreError> {
        match &self.file {
            Some((path, opened)) if identity(path) != Some(*opened) => {
                Err(StoreError::Vanished { path: path.display().to_string() })
            }
            _ => Ok(()),
        }
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.check_file()?;
        let begin = match self.url.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        WriteTx::begin(&self.pool, begin).await
    }

    /// A transaction that reads one consistent snapshot (SQLite in WAL mode takes one
    /// at the first read; PostgreSQL needs REPEATABLE READ for it).
    async fn begin_read(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.url.backend {
            Backend::Sqlite => self.pool.begin().await,
            Backend::Postgres => {
                self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await
            }
        }
        .map_err(StoreError::query("begin read transaction"))
    }
}

/// The (device, inode) of a file, if it exists.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn pool_options(url: &StoreUrl) -> AnyPoolOptions {
    // While the store is unreachable every round waits this long to learn it: short, so
    // that the services view keeps updating and a store that returns is seen soon.
    let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    match url.backend {
        Backend::Postgres => options.max_connections(8),
        // A private in-memory database lives and dies with its one connection.
        Backend::Sqlite if url.in_memory => options
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await })),
        Backend::Sqlite => options
            .max_connections(4)
            .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await })),
    }
}

/// Per-connection settings. sqlx already turns foreign keys on; saying so here keeps
/// that from depending on a driver default.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute(format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()).as_str()).await?;
    // With WAL, NORMAL loses no committed data on a crash of the process, only possibly
    // the last transactions on a power cut, and saves an fsync per commit.
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    // 16 MiB of page cache instead of SQLite's 2 MiB: reads that visit the whole
    // inventory (the phone list's count joins every phone with its fetch record; a
    // generation loads every phone) touch about 15 MB at 100,000 phones, and with the
    // default cache every such read fetched most pages from the kernel again.
    conn.execute(format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB}").as_str()).await?;
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.url.backend
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.check_file()?;
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("check the store"))
    }

    async fn load_state(&self) -> Result<Option<EngineState>, StoreError> {
        let mut tx = self.begin_read().await?;
        let loaded = state::load(&mut tx).await?;
        tx.commit().await.map_err(StoreError::query("end read transaction"))?;
        Ok(loaded)
    }

    async fn save_step_with_alerts(
        &self,
        fence: Option<&Fence>,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
        alerts: &[Enqueue],
    ) -> Result<Vec<i64>, StoreError> {
        if fence.is_some() {
            self.require_postgres()?;
        }
        let mut tx = self.begin_write().await?;
        let conn = tx.conn();
        let result = async {
            if let Some(fence) = fence {
                cluster::check_fence(conn, fence).await?;
                cluster::notify(conn, cluster::STATE_CHANNEL).await?;
            }
            state::save(conn, next).await?;
            let started = events.iter().map(|e| e.at).min().unwrap_or_else(Utc::now);
            generations::start(conn, next.generation, started).await?;
            checks::insert(conn, checks, None).await?;
            let ids = events::insert(conn, events).await?;
            outbox::enqueue(conn, &ids, alerts, Utc::now()).await?;
            Ok(ids)
        }
        .await;
        tx.finish(result, "commit step").await
    }

    async fn record_events(&self, events: &[Event], alerts: &[Enqueue]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let conn = tx.conn();
        let result = async {
            let ids = events::insert(conn, events).await?;
            outbox::enqueue(conn, &ids, alerts, Utc::now()).await?;
            Ok(ids)
        }
        .await;
        tx.finish(result, "commit events").await
    }

    async fn due_alerts(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxAlert>, StoreError> {
        outbox::due(&self.pool, now, limit).await
    }

    async fn next_alert_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_due(&self.pool).await
    }

    async fn record_delivery(
        &self,
        fence: Option<&Fence>,
        id: i64,
        delivery: &AlertDelivery,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(fence) = fence else {
            let mut conn =
                self.pool.acquire().await.map_err(StoreError::query("acquire a store connection"))?;
            return outbox::record(&mut conn, id, delivery, now).await;
        };
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let conn = tx.conn();
        let result = async {
            cluster::check_fence(conn, fence).await?;
            outbox::record(conn, id, delivery, now).await
        }
        .await;
        tx.finish(result, "commit alert delivery").await
    }

    async fn alert_counts(&self) -> Result<AlertCounts, StoreError> {
        outbox::counts(&self.pool).await
    }

    async fn recent_alerts(&self, limit: u32) -> Result<Vec<OutboxAlert>, StoreError> {
        outbox::recent(&self.pool, limit).await
    }

    async fn import_phones(&self, list: &[Phone]) -> Result<PhoneImport, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = phones::upsert(tx.conn(), list, Utc::now()).await;
        tx.finish(result, "commit phone import").await
    }

    async fn remove_phones(&self, macs: &[Mac]) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = phones::remove(tx.conn(), macs).await;
        tx.finish(result, "commit phone removal").await
    }

    async fn phones(&self) -> Result<Vec<Phone>, StoreError> {
        phones::all(&self.pool).await
    }

    async fn phone_page(&self, query: &PhoneQuery) -> Result<PhonePage, StoreError> {
        let mut tx = self.begin_read().await?;
        let page = phone_page::page(&mut tx, query).await?;
        tx.commit().await.map_err(StoreError::query("end read transaction"))?;
        Ok(page)
    }

    async fn phones_revision(&self) -> Result<PhonesRevision, StoreError> {
        phones::revision(&self.pool).await
    }

    async fn record_fetches(&self, fetches: &[PhoneFetch]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let result = phones::record_fetches(tx.conn(), fetches).await;
        tx.finish(result, "commit phone fetches").await
    }

    async fn fetch_records(&self) -> Result<Vec<FetchRecord>, StoreError> {
        phones::fetch_records(&self.pool).await
    }

    async fn recent_checks(&self, service: ServiceId, limit: u32) -> Result<Vec<CheckResult>, StoreError> {
        checks::recent(&self.pool, service, limit).await
    }

    async fn events(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        events::page(&self.pool, before_id, limit).await
    }

    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        events::since(&self.pool, since, limit).await
    }

    async fn generation_convergence(&self, generation: u64) -> Result<Convergence, StoreError> {
        generations::convergence(&self.pool, generation).await
    }

    async fn generations_since(&self, since: DateTime<Utc>) -> Result<Vec<GenerationStart>, StoreError> {
        generations::since(&self.pool, since).await
    }

    async fn prune_checks(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let pruned = checks::prune(&self.pool, older_than).await?;
        cluster::prune(&self.pool, older_than).await?;
        generations::prune(&self.pool, older_than).await?;
        Ok(pruned)
    }

    async fn fetch_records_since(&self, after: DateTime<Utc>) -> Result<Vec<FetchRecord>, StoreError> {
        phones::fetch_records_since(&self.pool, after).await
    }

    async fn claim_lease(&self, node: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let result = cluster::claim(tx.conn(), node, lease).await;
        tx.finish(result, "commit the lease's claim").await
    }

    async fn renew_lease(&self, fence: &Fence, lease: Duration) -> Result<bool, StoreError> {
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let result = cluster::renew(tx.conn(), fence, lease).await;
        tx.finish(result, "commit the lease's renewal").await
    }

    async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        self.require_postgres()?;
        cluster::release(&self.pool, fence).await
    }

    async fn lease(&self) -> Result<Lease, StoreError> {
        self.require_postgres()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::query("acquire a store connection"))?;
        cluster::current(&mut conn).await
    }

    async fn heartbeat(
        &self,
        node: &str,
        vantage: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.require_postgres()?;
        cluster::heartbeat(&self.pool, node, vantage, started_at).await
    }

    async fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        self.require_postgres()?;
        cluster::nodes(&self.pool).await
    }

    async fn record_round(
        &self,
        vantage: &str,
        node: &str,
        checks: &[CheckResult],
    ) -> Result<(), StoreError> {
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let result = cluster::record_round(tx.conn(), vantage, node, checks).await;
        tx.finish(result, "commit a vantage's round").await
    }

    async fn vantage_checks(&self, fresh: Duration) -> Result<Vec<VantageCheck>, StoreError> {
        self.require_postgres()?;
        cluster::vantage_checks(&self.pool, fresh).await
    }

    async fn request_operation(&self, request: &OperatorRequest) -> Result<i64, StoreError> {
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let result = cluster::request(tx.conn(), request).await;
        tx.finish(result, "commit an operator action").await
    }

    async fn take_operation(
        &self,
        fence: &Fence,
        within: Duration,
    ) -> Result<Option<(i64, OperatorRequest)>, StoreError> {
        self.require_postgres()?;
        let mut tx = self.begin_write().await?;
        let result = cluster::take_request(tx.conn(), fence, within).await;
        tx.finish(result, "commit taking an operator action").await
    }

    async fn finish_operation(&self, id: i64, outcome: &RequestOutcome) -> Result<(), StoreError> {
        self.require_postgres()?;
        cluster::finish_request(&self.pool, id, outcome, Utc::now()).await
    }

    async fn operation_outcome(&self, id: i64) -> Result<RequestOutcome, StoreError> {
        self.require_postgres()?;
        cluster::request_outcome(&self.pool, id).await
    }

    async fn withdraw_operation(&self, id: i64) -> Result<bool, StoreError> {
        self.require_postgres()?;
        cluster::withdraw(&self.pool, id, Utc::now()).await
    }

    async fn listen(&self) -> Result<Listener, StoreError> {
        self.require_postgres()?;
        Listener::connect(&self.url.connect).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await.map_err(StoreError::query("ping"))?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
