//! What can go wrong in the store, named by what failed.

/// An error of the store. URLs in it are redacted: no variant ever holds a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no backend this store has.
    #[error("unsupported store URL scheme `{scheme}`: use sqlite://PATH, sqlite::memory: or postgres://")]
    UnsupportedScheme { scheme: String },

    /// The URL could not be read at all.
    #[error("bad store URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },

    /// Opening the database failed. `reason` is the driver's message with any password
    /// scrubbed, kept as text because the driver's error may quote the URL.
    #[error("cannot connect to the store at {url}: {reason}")]
    Connect { url: String, reason: String },

    /// Applying the embedded migrations failed.
    #[error("cannot migrate the store at {url}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A statement failed; `what` names it (`insert event`, `load route states`, ...).
    #[error("store query failed: {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The SQLite file was deleted or replaced while switchback had it open: writes
    /// would go to a file nobody will ever read again.
    #[error(
        "the store file {path} was deleted or replaced while running; restore it and restart switchback"
    )]
    Vanished { path: String },

    /// The store does not exist yet (no SQLite file, or a database without switchback's
    /// tables) and the caller did not ask for a new one.
    #[error(
        "the store {url} does not exist or is empty; on a first start run `switchback run --init` \
         (or `switchback phones import`) to create it; if it existed, restore it from a backup"
    )]
    Missing { url: String },

    /// The SQLite file's folder does not exist (a fresh machine): nothing creates it.
    #[error(
        "the folder {folder} of the store {url} does not exist: create it, owned by the user switchback \
         runs as (`install -d -o switchback -g switchback -m 0750 {folder}`), or set \
         `StateDirectory=switchback` in its systemd unit"
    )]
    NoFolder { url: String, folder: String },

    /// switchback's tables are in another PostgreSQL schema than the connection's
    /// current one (a changed search path): nothing is created beside them.
    #[error(
        "the store {url} has switchback's tables in schema `{schema}`, not in the connection's current \
         schema; set the role's search_path (or options=-csearch_path={schema} in the URL)"
    )]
    OtherSchema { url: String, schema: String },

    /// A store opened to read only whose schema is not this binary's.
    #[error(
        "the store {url} has {} schema than this switchback; it is read only as it is: {}",
        if *older { "an older" } else { "a newer" },
        if *older {
            "start `switchback run` (the new version) once, which brings it up to date, then try again"
        } else {
            "use the switchback version that runs against it"
        }
    )]
    OtherVersion { url: String, older: bool },

    /// A leader's write refused: its term no longer holds the lease (another instance
    /// took over while it was paused, cut off or slow).
    #[error("node {node} no longer leads (term {term} was taken over); nothing was written")]
    Fenced { node: String, term: i64 },

    /// The store did not answer in time.
    #[error("the store did not answer in time: {what}")]
    TimedOut { what: &'static str },

    /// A group operation (`[cluster]`) on a store that is not PostgreSQL.
    #[error("a group of instances ([cluster]) needs a PostgreSQL store")]
    NeedsPostgres,

    /// A stored row holds a value the code cannot read back (an unknown enum spelling,
    /// a time out of range, a missing row that every save writes).
    #[error("corrupt row in {table}.{column}: {detail}")]
    Corrupt { table: &'static str, column: &'static str, detail: String },

    /// [`Store::remove_phones`](crate::Store::remove_phones) was asked for phones the
    /// inventory does not hold: nothing was removed, so that a typo never half-applies.
    #[error("not in the inventory: {}; nothing removed", list_macs(.macs))]
    UnknownPhones { macs: Vec<switchback_provisioning::Mac> },
}

fn list_macs(macs: &[switchback_provisioning::Mac]) -> String {
    macs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl StoreError {
    /// Wraps a driver error, naming the statement that failed.
    pub(crate) fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { what, source }
    }

    pub(crate) fn corrupt(table: &'static str, column: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt { table, column, detail: detail.into() }
    }
}
