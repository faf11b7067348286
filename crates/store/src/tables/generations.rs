//! `generations` (when each generation started) and `generation_fetches` (when each phone
//! first fetched each generation): the convergence curve and the post-incident report.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, FromRow};

use crate::codec::{micros, signed, Column};
use crate::error::StoreError;
use crate::{Convergence, ConvergenceStep, GenerationStart};

const GENERATIONS: &str = "generations";
const FETCHES: &str = "generation_fetches";

/// Records that `generation` started `at`, unless it is known already.
pub(crate) async fn start(
    conn: &mut AnyConnection,
    generation: u64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO generations (generation, started_at) VALUES ($1, $2) ON CONFLICT (generation) DO NOTHING",
    )
    .bind(signed(generation))
    .bind(micros(at))
    .execute(conn)
    .await
    .map_err(StoreError::query("record a generation's start"))?;
    Ok(())
}

#[derive(FromRow)]
struct StepRow {
    vendor: String,
    second: i64,
    phones: i64,
}

pub(crate) async fn convergence(pool: &AnyPool, generation: u64) -> Result<Convergence, StoreError> {
    let started: Option<i64> = sqlx::query_scalar("SELECT started_at FROM generations WHERE generation = $1")
        .bind(signed(generation))
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("load a generation's start"))?;
    // Counted per whole second by the store: at most one row per vendor and second,
    // however many phones.
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT vendor, first_at / 1000000 AS second, COUNT(*) AS phones FROM generation_fetches \
         WHERE generation = $1 GROUP BY vendor, first_at / 1000000 ORDER BY second, vendor",
    )
    .bind(signed(generation))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load a generation's convergence"))?;
    let steps = rows
        .into_iter()
        .map(|row| {
            Ok(ConvergenceStep {
                vendor: Column::new(FETCHES, "vendor").parse(&row.vendor)?,
                second: row.second,
                phones: Column::new(FETCHES, "first_at").unsigned(row.phones)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Convergence {
        generation,
        started_at: Column::new(GENERATIONS, "started_at").time_opt(started)?,
        steps,
    })
}

/// Forgets the first fetches of generations that ended before `older_than` (a later one
/// had started by then); the generation current at `older_than` and every later one keep
/// theirs, however old, and every generation keeps its start.
pub(crate) async fn prune(pool: &AnyPool, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM generation_fetches WHERE generation < \
         (SELECT MAX(generation) FROM generations WHERE started_at < $1)",
    )
    .bind(micros(older_than))
    .execute(pool)
    .await
    .map_err(StoreError::query("prune first fetches of old generations"))?;
    Ok(done.rows_affected())
}

/// The generations started at or after `since`, oldest first.
pub(crate) async fn since(pool: &AnyPool, since: DateTime<Utc>) -> Result<Vec<GenerationStart>, StoreError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT generation, started_at FROM generations WHERE started_at >= $1 ORDER BY generation",
    )
    .bind(micros(since))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load generations"))?;
    rows.into_iter()
        .map(|(generation, started_at)| {
            Ok(GenerationStart {
                generation: Column::new(GENERATIONS, "generation").unsigned(generation)?,
                started_at: Column::new(GENERATIONS, "started_at").time(started_at)?,
            })
        })
        .collect()
}
