//! Write transactions that can never leave a pooled connection inside a transaction.
//!
//! sqlx's `Transaction` rolls back on drop by queueing a `ROLLBACK` for the
//! connection's next use, and trusts its own count of open transactions. When `COMMIT`
//! itself fails (a full disk, a read-only file, a cut network), SQLite and sqlx can
//! disagree about whether a transaction is still open, and every later `BEGIN` on that
//! connection is refused: one failed commit stopped every later decision until a
//! restart. Here a transaction is plain `BEGIN`/`COMMIT` on a connection of its own, and
//! any failure, or a future dropped half-way, closes that connection instead of
//! returning it to the pool: the next write gets a fresh one.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use crate::error::StoreError;

/// A connection inside `BEGIN`; closed on drop unless [`WriteTx::finish`] committed.
pub(crate) struct WriteTx {
    conn: PoolConnection<Any>,
    committed: bool,
}

impl WriteTx {
    pub(crate) async fn begin(pool: &AnyPool, begin: &'static str) -> Result<Self, StoreError> {
        let conn = pool.acquire().await.map_err(StoreError::query("acquire a store connection"))?;
        // Made before BEGIN is sent: a future dropped while it is in flight closes the
        // connection too, rather than handing it back to the pool inside a transaction.
        let mut tx = Self { conn, committed: false };
        tx.conn.execute(begin).await.map_err(StoreError::query("begin write transaction"))?;
        Ok(tx)
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// Commits when `result` is `Ok`, rolls back otherwise; a failure of either closes
    /// the connection. Answers `result`, or the commit's error.
    pub(crate) async fn finish<T>(
        mut self,
        result: Result<T, StoreError>,
        what: &'static str,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => match self.conn.execute("COMMIT").await {
                Ok(_) => {
                    self.committed = true;
                    Ok(value)
                }
                Err(err) => {
                    // Best effort: the connection is closed on drop either way.
                    let _ = self.conn.execute("ROLLBACK").await;
                    Err(StoreError::query(what)(err))
                }
            },
            Err(err) => {
                if self.conn.execute("ROLLBACK").await.is_ok() {
                    // Rolled back cleanly: the connection is fine to reuse.
                    self.committed = true;
                }
                Err(err)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}
