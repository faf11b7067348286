//! [`Listener`]: PostgreSQL's LISTEN on the group's channels. Notifications sent while
//! the connection is down are lost, so whoever listens also polls (the backstop).

use sqlx::postgres::PgListener;

use crate::error::StoreError;
use crate::tables::cluster::{CHECKS_CHANNEL, LEASE_CHANNEL, REQUESTS_CHANNEL, STATE_CHANNEL};
use crate::Change;

pub struct Listener {
    inner: PgListener,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut inner = PgListener::connect(url).await.map_err(StoreError::query("listen to the group"))?;
        inner
            .listen_all([STATE_CHANNEL, CHECKS_CHANNEL, REQUESTS_CHANNEL, LEASE_CHANNEL])
            .await
            .map_err(StoreError::query("listen to the group"))?;
        Ok(Self { inner })
    }

    /// The next change; an error when the connection broke (the next call reconnects).
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        loop {
            let note = self.inner.recv().await.map_err(StoreError::query("hear the group"))?;
            match note.channel() {
                STATE_CHANNEL => return Ok(Change::State),
                CHECKS_CHANNEL => return Ok(Change::Checks),
                REQUESTS_CHANNEL => return Ok(Change::Requests),
                LEASE_CHANNEL => return Ok(Change::Lease),
                _ => {}
            }
        }
    }
}
