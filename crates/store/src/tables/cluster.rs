//! The group's tables (PostgreSQL only): the leader's lease, the instances, each
//! vantage's latest checks, and operator actions waiting for the leader.
//!
//! Lease times are on the store's clock (`clock_timestamp()`), never an instance's, so
//! instances whose clocks disagree still agree on when a lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, Executor, FromRow};
use switchback_core::model::CheckResult;
use switchback_core::{Action, Route};

use crate::codec::{duration_micros, micros, Column};
use crate::error::StoreError;
use crate::tables::checks::{self, CheckRow};
use crate::{Claim, Fence, Lease, NodeSeen, OperatorRequest, RequestOutcome, VantageCheck};

/// The store's clock, in microseconds since the epoch.
const NOW_US: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)";

/// Notified in the transaction of every step a leader saves: followers reload the state.
pub(crate) const STATE_CHANNEL: &str = "switchback_state";
/// Notified when a vantage records a round: the leader counts again.
pub(crate) const CHECKS_CHANNEL: &str = "switchback_checks";
/// Notified when an operator action waits for the leader.
pub(crate) const REQUESTS_CHANNEL: &str = "switchback_requests";
/// Notified when a leader gives up its lease: followers claim it at once.
pub(crate) const LEASE_CHANNEL: &str = "switchback_lease";

/// Locks the lease row for the rest of the transaction if `fence` still holds it; a
/// lease taken over by another fails here, so nothing of the transaction is written.
/// The lock makes a take-over wait until this transaction ends: a fenced write is
/// either before the next term or refused.
pub(crate) async fn check_fence(conn: &mut AnyConnection, fence: &Fence) -> Result<(), StoreError> {
    bound_locks(conn).await?;
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT term FROM cluster_lease WHERE id = 1 AND holder = $1 AND term = $2 FOR UPDATE",
    )
    .bind(&fence.node)
    .bind(fence.term)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("check the leader's term"))?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced { node: fence.node.clone(), term: fence.term }),
    }
}

/// For the rest of the transaction: a frozen client's transaction (SIGSTOP, a paused VM,
/// a partition that keeps the TCP connection) is ended by the server after
/// [`IDLE_IN_TRANSACTION`], releasing the lease row, so another instance can take over;
/// and a statement waits at most [`LOCK_TIMEOUT`] for a lock instead of piling up
/// behind one. Only the group's transactions on the lease row: migrations and imports
/// keep PostgreSQL's defaults.
async fn bound_locks(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let ms = |d: Duration| d.as_millis();
    let sql = format!(
        "SET LOCAL idle_in_transaction_session_timeout = {}; SET LOCAL lock_timeout = {}",
        ms(IDLE_IN_TRANSACTION),
        ms(LOCK_TIMEOUT)
    );
    conn.execute(sql.as_str()).await.map_err(StoreError::query("bound the transaction's locks"))?;
    Ok(())
}

/// Below the shortest lease (2 s).
const IDLE_IN_TRANSACTION: Duration = Duration::from_millis(1500);
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn notify(conn: &mut AnyConnection, channel: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("notify the group"))?;
    Ok(())
}

/// Takes the lease for `node` with a new term if it has run out (or nobody holds it).
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    node: &str,
    lease: Duration,
) -> Result<Claim, StoreError> {
    bound_locks(conn).await?;
    let won: Option<i64> = sqlx::query_scalar(&format!(
        "UPDATE cluster_lease SET holder = $1, term = term + 1, expires_at = {NOW_US} + $2 \
         WHERE id = 1 AND expires_at <= {NOW_US} RETURNING term"
    ))
    .bind(node)
    .bind(duration_micros(lease))
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("claim the leader's lease"))?;
    match won {
        Some(term) => Ok(Claim::Won(Fence { node: node.to_owned(), term })),
        None => current(conn).await.map(Claim::Held),
    }
}

/// Extends the lease of `fence` by `lease` from now; false when it is no longer its own.
pub(crate) async fn renew(
    conn: &mut AnyConnection,
    fence: &Fence,
    lease: Duration,
) -> Result<bool, StoreError> {
    bound_locks(conn).await?;
    let done = sqlx::query(&format!(
        "UPDATE cluster_lease SET expires_at = {NOW_US} + $1 WHERE id = 1 AND holder = $2 AND term = $3"
    ))
    .bind(duration_micros(lease))
    .bind(&fence.node)
    .bind(fence.term)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("renew the leader's lease"))?;
    Ok(done.rows_affected() == 1)
}

/// Ends the lease of `fence` now, so another instance takes over without waiting.
pub(crate) async fn release(pool: &AnyPool, fence: &Fence) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE cluster_lease SET expires_at = {NOW_US} WHERE id = 1 AND holder = $1 AND term = $2"
    ))
    .bind(&fence.node)
    .bind(fence.term)
    .execute(pool)
    .await
    .map_err(StoreError::query("release the leader's lease"))?;
    let mut conn = pool.acquire().await.map_err(StoreError::query("acquire a store connection"))?;
    notify(&mut conn, LEASE_CHANNEL).await
}

pub(crate) async fn current(conn: &mut AnyConnection) -> Result<Lease, StoreError> {
    let (holder, term, remaining): (Option<String>, i64, i64) = sqlx::query_as(&format!(
        "SELECT holder, term, expires_at - {NOW_US} FROM cluster_lease WHERE id = 1"
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::query("read the leader's lease"))?;
    let remaining = Duration::from_micros(u64::try_from(remaining).unwrap_or(0));
    Ok(Lease { holder: holder.filter(|_| !remaining.is_zero()), term, remaining })
}

/// Says `node` is alive, at `vantage`, on the store's clock.
pub(crate) async fn heartbeat(
    pool: &AnyPool,
    node: &str,
    vantage: &str,
    started_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO cluster_nodes (node, vantage, started_at, last_seen) VALUES ($1, $2, $3, {NOW_US}) \
         ON CONFLICT (node) DO UPDATE SET vantage = $2, started_at = $3, last_seen = {NOW_US}"
    ))
    .bind(node)
    .bind(vantage)
    .bind(micros(started_at))
    .execute(pool)
    .await
    .map_err(StoreError::query("record this instance as alive"))?;
    Ok(())
}

pub(crate) async fn nodes(pool: &AnyPool) -> Result<Vec<NodeSeen>, StoreError> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT node, vantage, started_at, last_seen FROM cluster_nodes ORDER BY node LIMIT 64",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("list the group's instances"))?;
    let table = "cluster_nodes";
    rows.into_iter()
        .map(|(node, vantage, started, seen)| {
            Ok(NodeSeen {
                node,
                vantage,
                started_at: Column::new(table, "started_at").time(started)?,
                last_seen: Column::new(table, "last_seen").time(seen)?,
            })
        })
        .collect()
}

/// Keeps a vantage's round: each check in the history (tagged with the vantage) and as
/// the vantage's latest; tells the leader.
pub(crate) async fn record_round(
    conn: &mut AnyConnection,
    vantage: &str,
    node: &str,
    checks: &[CheckResult],
) -> Result<(), StoreError> {
    checks::insert(conn, checks, Some(vantage)).await?;
    for check in checks {
        let (role, kind) = (check.service.role.as_str(), check.service.kind.as_str());
        let latency = check.latency.map(duration_micros);
        sqlx::query(&format!(
            "INSERT INTO vantage_checks \
                 (vantage, role, kind, node, healthy, latency_us, reason, checked_at, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {NOW_US}) \
                 ON CONFLICT (vantage, role, kind) DO UPDATE SET node = $4, healthy = $5, latency_us = $6, \
                 reason = $7, checked_at = $8, recorded_at = {NOW_US}"
        ))
        .bind(vantage)
        .bind(role)
        .bind(kind)
        .bind(node)
        .bind(check.healthy)
        .bind(latency)
        .bind(check.reason.as_deref())
        .bind(micros(check.checked_at))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("record a vantage's latest check"))?;
    }
    notify(conn, CHECKS_CHANNEL).await
}

#[derive(FromRow)]
struct VantageRow {
    vantage: String,
    node: String,
    #[sqlx(flatten)]
    check: CheckRow,
}

/// Every vantage's latest check of every service, recorded within `fresh` on the
/// store's clock (an instance whose clock is off cannot make its checks stay fresh).
pub(crate) async fn vantage_checks(pool: &AnyPool, fresh: Duration) -> Result<Vec<VantageCheck>, StoreError> {
    let rows: Vec<VantageRow> = sqlx::query_as(&format!(
        "SELECT vantage, node, role, kind, healthy, latency_us, reason, checked_at FROM vantage_checks \
         WHERE recorded_at >= {NOW_US} - $1 ORDER BY vantage, role, kind LIMIT 1000"
    ))
    .bind(duration_micros(fresh))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load the vantages' checks"))?;
    rows.into_iter()
        .map(|row| {
            Ok(VantageCheck {
                vantage: row.vantage,
                node: row.node,
                check: row.check.decode("vantage_checks")?,
            })
        })
        .collect()
}

pub(crate) async fn request(conn: &mut AnyConnection, request: &OperatorRequest) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO operator_requests (route, action, actor, reason, node, created_at, status) \
         VALUES ($1, $2, $3, $4, $5, {NOW_US}, 'pending') RETURNING id"
    ))
    .bind(request.route.as_str())
    .bind(request.action.as_str())
    .bind(&request.actor)
    .bind(&request.reason)
    .bind(&request.node)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::query("queue an operator action"))?;
    notify(conn, REQUESTS_CHANNEL).await?;
    Ok(id)
}

/// Takes the oldest pending request made since `since` for the leader `fence`, and
/// expires the older ones: an action nobody waits for any more is not applied late.
pub(crate) async fn take_request(
    conn: &mut AnyConnection,
    fence: &Fence,
    within: Duration,
) -> Result<Option<(i64, OperatorRequest)>, StoreError> {
    check_fence(conn, fence).await?;
    // Older than `within` on the store's clock: the instance that queued it has given up.
    sqlx::query(&format!(
        "UPDATE operator_requests SET status = 'expired', finished_at = {NOW_US} \
         WHERE status = 'pending' AND created_at < {NOW_US} - $1"
    ))
    .bind(duration_micros(within))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("expire old operator actions"))?;
    // One statement, so that a withdrawal in between cannot be overwritten.
    let row: Option<(i64, String, String, String, String, String)> = sqlx::query_as(
        "UPDATE operator_requests SET status = 'taken' WHERE status = 'pending' AND id = \
         (SELECT id FROM operator_requests WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, route, action, actor, reason, node",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("take an operator action"))?;
    let Some((id, route, action, actor, reason, node)) = row else { return Ok(None) };
    let table = "operator_requests";
    let route: Route = Column::new(table, "route").parse(&route)?;
    let action: Action = Column::new(table, "action").parse(&action)?;
    Ok(Some((id, OperatorRequest { route, action, actor, reason, node })))
}

pub(crate) async fn finish_request(
    pool: &AnyPool,
    id: i64,
    outcome: &RequestOutcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (status, detail) = match outcome {
        RequestOutcome::Done => ("done", None),
        RequestOutcome::Refused(why) => ("refused", Some(why.as_str())),
        RequestOutcome::Failed(why) => ("failed", Some(why.as_str())),
        RequestOutcome::Pending | RequestOutcome::Taken => return Ok(()),
    };
    sqlx::query("UPDATE operator_requests SET status = $1, detail = $2, finished_at = $3 WHERE id = $4")
        .bind(status)
        .bind(detail)
        .bind(micros(now))
        .bind(id)
        .execute(pool)
        .await
        .map_err(StoreError::query("finish an operator action"))?;
    Ok(())
}

pub(crate) async fn request_outcome(pool: &AnyPool, id: i64) -> Result<RequestOutcome, StoreError> {
    let (status, detail): (String, Option<String>) =
        sqlx::query_as("SELECT status, detail FROM operator_requests WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .map_err(StoreError::query("read an operator action"))?;
    let detail = detail.unwrap_or_default();
    Ok(match status.as_str() {
        "done" => RequestOutcome::Done,
        "refused" => RequestOutcome::Refused(detail),
        "failed" => RequestOutcome::Failed(detail),
        "expired" => RequestOutcome::Failed("no leader took the action in time".to_owned()),
        "taken" => RequestOutcome::Taken,
        _ => RequestOutcome::Pending,
    })
}

pub(crate) async fn withdraw(pool: &AnyPool, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE operator_requests SET status = 'expired', finished_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(micros(now))
    .bind(id)
    .execute(pool)
    .await
    .map_err(StoreError::query("withdraw an operator action"))?;
    Ok(done.rows_affected() == 1)
}

/// Forgets operator actions finished, and instances last seen, before `older_than`.
pub(crate) async fn prune(pool: &AnyPool, older_than: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM operator_requests WHERE status <> 'pending' AND status <> 'taken' AND created_at < $1",
    )
    .bind(micros(older_than))
    .execute(pool)
    .await
    .map_err(StoreError::query("prune operator actions"))?;
    sqlx::query("DELETE FROM cluster_nodes WHERE last_seen < $1")
        .bind(micros(older_than))
        .execute(pool)
        .await
        .map_err(StoreError::query("prune the group's instances"))?;
    Ok(())
}
