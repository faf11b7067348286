//! `switchback phones list`, `phones export` and `phones remove`: the inventory as the
//! store holds it, read or changed by an operator while `switchback run` may be running.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use switchback_core::Config;
use switchback_provisioning::{write_phones_csv, Mac};
use switchback_server::stale_before_at;
use switchback_store::{ListedPhone, PhoneQuery, Seen, StoreError};

use crate::run::{open_existing_store, open_store_to_read};

/// Phones per page read from the store: the list is paged in SQL, never loaded whole in
/// one statement.
const PAGE: u32 = 500;

/// How `phones list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header; `-` where there is nothing.
    Table,
    /// A header, then one phone a row.
    Csv,
    /// An array of objects; `last_fetch` is null for a phone never seen.
    Json,
}

/// Prints the inventory without any credential; with `stale`, only the phones not seen
/// for more than three poll intervals (as `/api/phones?stale=true` counts them).
pub async fn list(config: Config, stale: bool, format: Format) -> anyhow::Result<()> {
    let seen = stale.then(|| Seen::Before(stale_before_at(Utc::now(), config.phones.poll_interval)));
    let store = open_store_to_read(&config).await?;
    let mut phones: Vec<ListedPhone> = Vec::new();
    let mut known_total = None;
    loop {
        let offset = phones.len() as u64;
        let query = PhoneQuery { seen, generation: None, offset, limit: PAGE, known_total };
        let page = store.phone_page(&query).await.context("cannot list the phones")?;
        let last = page.phones.len() < PAGE as usize;
        known_total = Some(page.total);
        phones.extend(page.phones);
        if last {
            break;
        }
    }
    store.close().await;
    let text = match format {
        Format::Table => table(&phones),
        Format::Csv => csv(&phones)?,
        Format::Json => format!("{:#}\n", json(&phones)),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write to stdout")
}

const COLUMNS: [&str; 8] =
    ["mac", "vendor", "model", "display_name", "user_id", "last_fetch", "generation", "source"];

/// A phone's cells, in [`COLUMNS`] order; empty where there is nothing.
fn cells(phone: &ListedPhone) -> [String; 8] {
    let fetch = phone.fetch.as_ref();
    [
        phone.mac.to_string(),
        phone.vendor.to_string(),
        phone.model.clone(),
        phone.display_name.clone(),
        phone.user_id.clone(),
        fetch.map(|f| f.at.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default(),
        fetch.map(|f| f.generation.to_string()).unwrap_or_default(),
        fetch.map(|f| f.source.to_string()).unwrap_or_default(),
    ]
}

fn table(phones: &[ListedPhone]) -> String {
    let header = ["MAC", "VENDOR", "MODEL", "NAME", "USER", "LAST FETCH", "GENERATION", "SOURCE"];
    let mut rows = vec![header.map(str::to_owned)];
    rows.extend(phones.iter().map(|phone| cells(phone).map(|c| if c.is_empty() { "-".into() } else { c })));
    let width = |i: usize| rows.iter().map(|row| row[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn csv(phones: &[ListedPhone]) -> anyhow::Result<String> {
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    csv.write_record(COLUMNS)?;
    for phone in phones {
        csv.write_record(cells(phone).map(|cell| inert(&cell)))?;
    }
    let bytes = csv.into_inner().map_err(|err| anyhow::anyhow!("cannot write the csv: {}", err.error()))?;
    Ok(String::from_utf8(bytes)?)
}

/// A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a carriage
/// return first: a display name can be anything an importer let through) gets a `'` in
/// front, so that opening the list in a spreadsheet runs nothing. The list is for
/// reading; `phones export`, which must round-trip, writes cells as they are.
fn inert(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

fn json(phones: &[ListedPhone]) -> serde_json::Value {
    phones
        .iter()
        .map(|phone| {
            let last_fetch = phone.fetch.as_ref().map(|f| {
                serde_json::json!({
                    "at": f.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "generation": f.generation,
                    "source": f.source.to_string(),
                })
            });
            serde_json::json!({
                "mac": phone.mac.to_string(),
                "vendor": phone.vendor.as_str(),
                "model": phone.model,
                "display_name": phone.display_name,
                "user_id": phone.user_id,
                "last_fetch": last_fetch,
            })
        })
        .collect()
}

/// Writes the inventory as a phones CSV in the import's format, SIP passwords included:
/// to `output` (created owner-only, never over an existing file unless `force`), or
/// to stdout.
pub async fn export(config: Config, output: Option<&Path>, force: bool) -> anyhow::Result<()> {
    // `-` is stdout, as for most commands, not a file of that name.
    let output = output.filter(|path| *path != Path::new("-"));
    let store = open_store_to_read(&config).await?;
    let phones = store.phones().await.context("cannot read the phones")?;
    store.close().await;
    let mut csv = Vec::new();
    write_phones_csv(&phones, &mut csv).context("cannot write the csv")?;
    match output {
        None => std::io::stdout().lock().write_all(&csv).context("cannot write to stdout"),
        Some(path) => {
            write_private(path, &csv, force)?;
            eprintln!(
                "exported {} phones to {} (it holds their SIP passwords)",
                phones.len(),
                path.display()
            );
            Ok(())
        }
    }
}

/// Writes `bytes` to a new owner-only (0600) file beside `path`, then moves it into
/// place: a reader never sees half a file, and a failure leaves nothing behind.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !force && path.symlink_metadata().is_ok() {
        anyhow::bail!("{} exists; pass --force to replace it (nothing written)", path.display());
    }
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".switchback-export-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    let persisted = if force { file.persist(path) } else { file.persist_noclobber(path) };
    persisted.map_err(|err| match err.error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists; pass --force to replace it (nothing written)", path.display())
        }
        _ => anyhow::Error::new(err.error).context(format!("cannot write {}", path.display())),
    })?;
    Ok(())
}

/// Removes the phones, all or none: false (nothing removed) when any is not in the
/// inventory, so that a typo never half-applies.
pub async fn remove(config: Config, macs: &[Mac]) -> anyhow::Result<bool> {
    let store = open_existing_store(&config).await?;
    let outcome = store.remove_phones(macs).await;
    store.close().await;
    match outcome {
        Ok(removed) => {
            let mut named: Vec<String> = macs.iter().map(Mac::to_string).collect();
            named.sort();
            named.dedup();
            println!("removed {removed} phones: {}", named.join(", "));
            Ok(true)
        }
        Err(err @ StoreError::UnknownPhones { .. }) => {
            eprintln!("error: {err}");
            Ok(false)
        }
        Err(err) => Err(anyhow::Error::new(err).context("nothing removed")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_list_cell_a_spreadsheet_would_run_is_made_inert() {
        assert_eq!(super::inert("=HYPERLINK(\"http://x/\")"), "'=HYPERLINK(\"http://x/\")");
        for formula in ["+1002", "-1", "@SUM(1)", "\tx"] {
            assert!(super::inert(formula).starts_with('\''), "{formula}");
        }
        assert_eq!(super::inert("Front desk"), "Front desk");
        assert_eq!(super::inert(""), "");
    }
}
