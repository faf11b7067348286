//! The inventory as `/api/phones` lists it: `phones` LEFT JOIN `phone_fetches`, filtered,
//! ordered by MAC and paged in SQL, with no credential column ever selected.
//!
//! Both statements (the page and, when needed, the count) run in one read transaction,
//! so `total` always describes the snapshot the page came from.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, FromRow};
use switchback_provisioning::{Mac, Vendor};

use crate::codec::{micros, signed, Column};
use crate::error::StoreError;

const PHONES: &str = "phones";
const FETCHES: &str = "phone_fetches";

/// Which phones [`Store::phone_page`](crate::Store::phone_page) lists, and which page of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneQuery {
    /// Only phones whose latest stored fetch is on this side of an instant.
    pub seen: Option<Seen>,
    /// Only phones whose latest stored fetch was of this generation.
    pub generation: Option<u64>,
    /// Matching phones to skip, in MAC order.
    pub offset: u64,
    /// At most this many phones in the page.
    pub limit: u32,
    /// How many phones match, when the caller knows it already (from counts kept in
    /// memory): the count, which joins the whole inventory, is then skipped.
    pub known_total: Option<u64>,
}

/// A filter on the time of a phone's latest stored fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never fetched, or last fetched before this instant: a stale phone.
    Before(DateTime<Utc>),
    /// Last fetched at or after this instant.
    Since(DateTime<Utc>),
}

/// A page of phones and how many match the query in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhonePage {
    pub total: u64,
    pub phones: Vec<ListedPhone>,
}

/// A phone without its credentials, with its latest stored fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPhone {
    pub mac: Mac,
    pub vendor: Vendor,
    pub model: String,
    pub display_name: String,
    /// The SIP user (extension): not a credential.
    pub user_id: String,
    /// `None`: no fetch of this phone has been stored.
    pub fetch: Option<ListedFetch>,
}

/// A phone's latest stored fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFetch {
    pub at: DateTime<Utc>,
    pub generation: u64,
    pub source: IpAddr,
    pub user_agent: String,
}

#[derive(FromRow)]
struct Row {
    mac: String,
    vendor: String,
    model: String,
    display_name: String,
    user_id: String,
    at: Option<i64>,
    generation: Option<i64>,
    source: Option<String>,
    user_agent: Option<String>,
}

/// The WHERE clause of a query and the values of its `$n` placeholders, in order.
struct Filter {
    clause: String,
    binds: Vec<i64>,
}

impl Filter {
    fn of(query: &PhoneQuery) -> Self {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        match query.seen {
            Some(Seen::Before(at)) => {
                binds.push(micros(at));
                conditions.push(format!("(f.at IS NULL OR f.at < ${})", binds.len()));
            }
            Some(Seen::Since(at)) => {
                binds.push(micros(at));
                conditions.push(format!("f.at >= ${}", binds.len()));
            }
            None => {}
        }
        if let Some(generation) = query.generation {
            binds.push(signed(generation));
            conditions.push(format!("f.generation = ${}", binds.len()));
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        Self { clause, binds }
    }
}

const FROM: &str = "FROM phones p LEFT JOIN phone_fetches f ON f.mac = p.mac";

/// Runs the page, then the count unless the page itself tells it, on `conn` (a read
/// transaction's connection).
pub(crate) async fn page(conn: &mut AnyConnection, query: &PhoneQuery) -> Result<PhonePage, StoreError> {
    let filter = Filter::of(query);
    let n = filter.binds.len();
    let sql = format!(
        "SELECT p.mac, p.vendor, p.model, p.display_name, p.user_id, \
         f.at, f.generation, f.source, f.user_agent \
         {FROM}{} ORDER BY p.mac LIMIT ${} OFFSET ${}",
        filter.clause,
        n + 1,
        n + 2
    );
    let mut select = sqlx::query_as::<_, Row>(&sql);
    for value in &filter.binds {
        select = select.bind(*value);
    }
    let rows = select
        .bind(i64::from(query.limit))
        .bind(signed(query.offset))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("list phones"))?;
    let phones = rows.into_iter().map(Row::decode).collect::<Result<Vec<_>, _>>()?;
    // A page that is not full is the last one: its end is the total, and counting
    // (which joins the whole inventory) is saved. An empty page past the first may lie
    // beyond the end, so it still counts.
    let shown = phones.len() as u64;
    let total = if shown < u64::from(query.limit) && (shown > 0 || query.offset == 0) {
        query.offset.saturating_add(shown)
    } else if let Some(known) = query.known_total {
        // The page and the known count may be a flush apart: a full page says there are
        // at least as many as the pages so far have shown.
        if shown == 0 {
            known
        } else {
            known.max(query.offset.saturating_add(shown))
        }
    } else {
        count(conn, &filter).await?
    };
    Ok(PhonePage { total, phones })
}

/// Without a filter the join is left out: it yields each phone once (`mac` is the
/// primary key of both tables), and counting one table is cheaper than joining two.
async fn count(conn: &mut AnyConnection, filter: &Filter) -> Result<u64, StoreError> {
    let from = if filter.binds.is_empty() { "FROM phones p" } else { FROM };
    let sql = format!("SELECT COUNT(*) {from}{}", filter.clause);
    let mut count = sqlx::query_scalar::<_, i64>(&sql);
    for value in &filter.binds {
        count = count.bind(*value);
    }
    let total = count.fetch_one(&mut *conn).await.map_err(StoreError::query("count phones"))?;
    // COUNT(*) is never negative.
    Ok(u64::try_from(total).unwrap_or(0))
}

impl Row {
    fn decode(self) -> Result<ListedPhone, StoreError> {
        // A LEFT JOIN fills every column of the fetch or none: `mac` is its primary key.
        let fetch = match (self.at, self.generation, self.source, self.user_agent) {
            (Some(at), Some(generation), Some(source), Some(user_agent)) => Some(ListedFetch {
                at: Column::new(FETCHES, "at").time(at)?,
                generation: Column::new(FETCHES, "generation").unsigned(generation)?,
                source: Column::new(FETCHES, "source").parse(&source)?,
                user_agent,
            }),
            _ => None,
        };
        Ok(ListedPhone {
            mac: Column::new(PHONES, "mac").parse(&self.mac)?,
            vendor: Column::new(PHONES, "vendor").parse(&self.vendor)?,
            model: self.model,
            display_name: self.display_name,
            user_id: self.user_id,
            fetch,
        })
    }
}
