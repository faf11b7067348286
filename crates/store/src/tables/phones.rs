//! `phones` (the inventory) and `phone_fetches` (each phone's latest fetch), with
//! `generation_fetches` (each phone's first fetch of each generation) written alongside.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{AnyConnection, AnyPool, FromRow};
use switchback_provisioning::fetch::{LastFetch, PhoneFetch};
use switchback_provisioning::{Mac, Phone, Vendor};

use crate::codec::{micros, signed, Column};
use crate::error::StoreError;
use crate::{PhoneImport, PhonesRevision};

const PHONES: &str = "phones";
const FETCHES: &str = "phone_fetches";

/// Adds new phones and updates known ones; the caller's transaction makes it all or nothing.
/// A known phone gets every field from `phones`, `prov_password` included: a phone without
/// one (a seven-column CSV, or an empty cell) has its stored one cleared to NULL, so the
/// store always holds what the latest import said rather than a password the operator
/// may believe is gone.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    phones: &[Phone],
    now: DateTime<Utc>,
) -> Result<PhoneImport, StoreError> {
    let known: Vec<(String,)> = sqlx::query_as("SELECT mac FROM phones")
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("list phones"))?;
    let known: HashSet<String> = known.into_iter().map(|(mac,)| mac).collect();
    let mut report = PhoneImport::default();
    for phone in phones {
        let mac = phone.mac.to_string();
        if known.contains(&mac) {
            report.updated += 1;
        } else {
            report.added += 1;
        }
        sqlx::query(
            "INSERT INTO phones \
             (mac, vendor, model, display_name, user_id, auth_id, password, prov_password, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (mac) DO UPDATE SET vendor = excluded.vendor, model = excluded.model, \
             display_name = excluded.display_name, user_id = excluded.user_id, auth_id = excluded.auth_id, \
             password = excluded.password, prov_password = excluded.prov_password, \
             updated_at = excluded.updated_at",
        )
        .bind(mac)
        .bind(phone.vendor.as_str())
        .bind(phone.model.as_str())
        .bind(phone.display_name.as_str())
        .bind(phone.user_id.as_str())
        .bind(phone.auth_id.as_str())
        .bind(phone.password.expose_secret())
        .bind(phone.prov_password.as_ref().map(ExposeSecret::expose_secret))
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("save phone"))?;
    }
    Ok(report)
}

/// MACs per statement of a removal: far below SQLite's and PostgreSQL's parameter limits.
const MACS_PER_STATEMENT: usize = 500;

/// Removes exactly `macs` and their fetch records, or nothing when any is unknown; the
/// caller's transaction makes it all or nothing. Answers how many phones went.
pub(crate) async fn remove(conn: &mut AnyConnection, macs: &[Mac]) -> Result<u64, StoreError> {
    let wanted: BTreeSet<Mac> = macs.iter().copied().collect();
    let wanted: Vec<(Mac, String)> = wanted.into_iter().map(|mac| (mac, mac.to_string())).collect();
    let mut known = HashSet::new();
    for chunk in wanted.chunks(MACS_PER_STATEMENT) {
        let sql = format!("SELECT mac FROM phones WHERE mac IN ({})", placeholders(chunk.len()));
        let mut select = sqlx::query_as::<_, (String,)>(&sql);
        for (_, mac) in chunk {
            select = select.bind(mac.as_str());
        }
        let found = select.fetch_all(&mut *conn).await.map_err(StoreError::query("look up phones"))?;
        known.extend(found.into_iter().map(|(mac,)| mac));
    }
    let unknown: Vec<Mac> =
        wanted.iter().filter(|(_, text)| !known.contains(text)).map(|(mac, _)| *mac).collect();
    if !unknown.is_empty() {
        return Err(StoreError::UnknownPhones { macs: unknown });
    }
    let mut removed = 0;
    for chunk in wanted.chunks(MACS_PER_STATEMENT) {
        let list = placeholders(chunk.len());
        // No foreign key ties a fetch record to its phone (fetches of unknown MACs are
        // recorded too), so every table is cleared by hand; a removed phone leaves the
        // convergence curves too.
        for (table, what) in [
            (FETCHES, "remove phone fetches"),
            ("generation_fetches", "remove phones' first fetches"),
            (PHONES, "remove phones"),
        ] {
            let sql = format!("DELETE FROM {table} WHERE mac IN ({list})");
            let mut delete = sqlx::query(&sql);
            for (_, mac) in chunk {
                delete = delete.bind(mac.as_str());
            }
            let done = delete.execute(&mut *conn).await.map_err(StoreError::query(what))?;
            if table == PHONES {
                removed += done.rows_affected();
            }
        }
    }
    Ok(removed)
}

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

#[derive(FromRow)]
struct PhoneRow {
    mac: String,
    vendor: String,
    model: String,
    display_name: String,
    user_id: String,
    auth_id: String,
    password: String,
    prov_password: Option<String>,
}

pub(crate) async fn all(pool: &AnyPool) -> Result<Vec<Phone>, StoreError> {
    let rows: Vec<PhoneRow> = sqlx::query_as(
        "SELECT mac, vendor, model, display_name, user_id, auth_id, password, prov_password \
         FROM phones ORDER BY mac",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load phones"))?;
    rows.into_iter()
        .map(|row| {
            Ok(Phone {
                mac: Column::new(PHONES, "mac").parse(&row.mac)?,
                vendor: Column::new(PHONES, "vendor").parse(&row.vendor)?,
                model: row.model,
                display_name: row.display_name,
                user_id: row.user_id,
                auth_id: row.auth_id,
                password: SecretString::from(row.password),
                // An empty text, written by hand, means none, as an empty CSV cell does.
                prov_password: row.prov_password.filter(|p| !p.is_empty()).map(SecretString::from),
            })
        })
        .collect()
}

pub(crate) async fn revision(pool: &AnyPool) -> Result<PhonesRevision, StoreError> {
    let (count, updated): (i64, Option<i64>) = sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM phones")
        .fetch_one(pool)
        .await
        .map_err(StoreError::query("read phones revision"))?;
    Ok(PhonesRevision { count, updated_at_micros: updated.unwrap_or(0) })
}

/// Folds a batch of fetches into each phone's latest fetch and fetch count.
/// Rows per `INSERT` of fetch records: 7 parameters each stays far below SQLite's
/// and PostgreSQL's parameter limits.
const FETCH_ROWS_PER_STATEMENT: usize = 100;

pub(crate) async fn record_fetches(
    conn: &mut AnyConnection,
    fetches: &[PhoneFetch],
) -> Result<(), StoreError> {
    // One row per phone, folded as the fetch log folds: the batch's latest fetch of it,
    // and how many it made. The fetch log hands over one record per phone already; a
    // batch from elsewhere may hold several, in any order.
    let mut latest: HashMap<Mac, PhoneFetch> = HashMap::new();
    for fetch in fetches {
        match latest.get_mut(&fetch.mac) {
            Some(folded) => folded.absorb(fetch.clone()),
            None => {
                latest.insert(fetch.mac, fetch.clone());
            }
        }
    }
    // Many rows per statement: one statement per phone made the flush of a busy
    // minute cost a quarter of the serving CPU (a round trip to SQLite's worker each).
    let rows: Vec<(Mac, PhoneFetch)> = latest.into_iter().collect();
    for chunk in rows.chunks(FETCH_ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO phone_fetches (mac, vendor, at, generation, source, user_agent, fetches) VALUES ",
        );
        for i in 0..chunk.len() {
            let n = i * 7;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            ));
        }
        sql.push_str(
            " ON CONFLICT (mac) DO UPDATE SET vendor = excluded.vendor, at = excluded.at, \
             generation = excluded.generation, source = excluded.source, \
             user_agent = excluded.user_agent, fetches = phone_fetches.fetches + excluded.fetches",
        );
        let mut query = sqlx::query(&sql);
        for (mac, fetch) in chunk {
            query = query
                .bind(mac.to_string())
                .bind(fetch.vendor.as_str())
                .bind(micros(fetch.at))
                .bind(signed(fetch.generation))
                .bind(fetch.source.to_string())
                .bind(fetch.user_agent.clone())
                .bind(i64::try_from(fetch.count).unwrap_or(i64::MAX));
        }
        query.execute(&mut *conn).await.map_err(StoreError::query("record phone fetches"))?;
        first_fetches(conn, chunk).await?;
    }
    Ok(())
}

/// Keeps when each phone first fetched each generation: a row per (generation, phone),
/// never updated, so the first flush that saw the phone on the generation holds.
async fn first_fetches(conn: &mut AnyConnection, chunk: &[(Mac, PhoneFetch)]) -> Result<(), StoreError> {
    let mut sql = String::from("INSERT INTO generation_fetches (generation, mac, vendor, first_at) VALUES ");
    for i in 0..chunk.len() {
        let n = i * 4;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
    }
    sql.push_str(" ON CONFLICT (generation, mac) DO NOTHING");
    let mut query = sqlx::query(&sql);
    for (mac, fetch) in chunk {
        query = query
            .bind(signed(fetch.generation))
            .bind(mac.to_string())
            .bind(fetch.vendor.as_str())
            .bind(micros(fetch.at));
    }
    query.execute(&mut *conn).await.map_err(StoreError::query("record first fetches of generations"))?;
    Ok(())
}

/// A phone's latest fetch as stored, for the API and dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRecord {
    pub mac: Mac,
    pub vendor: Vendor,
    pub at: DateTime<Utc>,
    pub generation: u64,
    pub source: IpAddr,
    pub user_agent: String,
    pub fetches: u64,
}

#[derive(FromRow)]
struct FetchRow {
    mac: String,
    vendor: String,
    at: i64,
    generation: i64,
    source: String,
    user_agent: String,
    fetches: i64,
}

pub(crate) async fn fetch_records(pool: &AnyPool) -> Result<Vec<FetchRecord>, StoreError> {
    let rows: Vec<FetchRow> = sqlx::query_as(
        "SELECT mac, vendor, at, generation, source, user_agent, fetches FROM phone_fetches ORDER BY mac",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load phone fetches"))?;
    decode_fetches(rows)
}

/// The fetches recorded after `after`; in the group, what the other instances served.
pub(crate) async fn fetch_records_since(
    pool: &AnyPool,
    after: DateTime<Utc>,
) -> Result<Vec<FetchRecord>, StoreError> {
    let rows: Vec<FetchRow> = sqlx::query_as(
        "SELECT mac, vendor, at, generation, source, user_agent, fetches FROM phone_fetches WHERE at > $1",
    )
    .bind(micros(after))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load recent phone fetches"))?;
    decode_fetches(rows)
}

fn decode_fetches(rows: Vec<FetchRow>) -> Result<Vec<FetchRecord>, StoreError> {
    rows.into_iter()
        .map(|row| {
            Ok(FetchRecord {
                mac: Column::new(FETCHES, "mac").parse(&row.mac)?,
                vendor: Column::new(FETCHES, "vendor").parse(&row.vendor)?,
                at: Column::new(FETCHES, "at").time(row.at)?,
                generation: Column::new(FETCHES, "generation").unsigned(row.generation)?,
                source: Column::new(FETCHES, "source").parse(&row.source)?,
                user_agent: row.user_agent,
                fetches: Column::new(FETCHES, "fetches").unsigned(row.fetches)?,
            })
        })
        .collect()
}

impl FetchRecord {
    pub fn last(&self) -> LastFetch {
        LastFetch { generation: self.generation, vendor: self.vendor, at: self.at }
    }
}
