//! The phones CSV: all or nothing, and every bad row is reported with its line and field.

use std::collections::HashMap;
use std::io::{self, Read};

use secrecy::SecretString;

use crate::limits;
use crate::mac::Mac;
use crate::phone::{check_text, Phone, Vendor};

/// The columns of a phones CSV, in this order. The first seven are required; the last,
/// `prov_password`, may be left out (then no phone of the file has one).
pub const CSV_HEADER: [&str; 8] =
    ["mac", "vendor", "model", "display_name", "user_id", "auth_id", "password", "prov_password"];

/// How many of [`CSV_HEADER`]'s columns every file has.
pub const CSV_REQUIRED_COLUMNS: usize = 7;

/// Why a phones CSV was rejected. Line numbers count from 1, the header being line 1.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line 1 (header): {problem}")]
    Header { problem: String },
    #[error("line {line}, field {field}: {problem}")]
    Field { line: u64, field: &'static str, problem: String },
    #[error("line {line}: {problem}")]
    Row { line: u64, problem: String },
    #[error("the phones file is larger than {} MiB ({max_bytes} bytes)", max_bytes / (1024 * 1024))]
    TooLarge { max_bytes: u64 },
    #[error("line {line}: more than {max_rows} phones in one file (import it in parts)")]
    TooManyRows { line: u64, max_rows: usize },
    #[error("cannot read the phones file: {0}")]
    Read(#[source] io::Error),
    /// Several bad rows: the first [`MAX_REPORTED_ROWS`] of them, one a line, and how
    /// many more there were.
    #[error("{} bad rows:\n{}{}", .rows.len() + .more, list(.rows), and_more(*.more))]
    Rows { rows: Vec<ImportError>, more: usize },
}

/// How many bad rows one error lists; the rest are counted.
pub const MAX_REPORTED_ROWS: usize = 50;

fn list(rows: &[ImportError]) -> String {
    rows.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn and_more(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!("\nand {more} more")
    }
}

/// The bad rows of a file as they are found: every one counted, the first
/// [`MAX_REPORTED_ROWS`] kept.
#[derive(Default)]
struct BadRows {
    rows: Vec<ImportError>,
    more: usize,
}

impl BadRows {
    fn push(&mut self, error: ImportError) {
        if self.rows.len() < MAX_REPORTED_ROWS {
            self.rows.push(error);
        } else {
            self.more += 1;
        }
    }

    /// One bad row is reported as it is; several as [`ImportError::Rows`].
    fn into_result(mut self) -> Result<(), ImportError> {
        match (self.rows.len(), self.more) {
            (0, _) => Ok(()),
            (1, 0) => Err(self.rows.remove(0)),
            _ => Err(ImportError::Rows { rows: self.rows, more: self.more }),
        }
    }
}

/// Parses a whole phones CSV. Any bad row rejects the file, so nothing is half-imported;
/// every bad row is reported (the first [`MAX_REPORTED_ROWS`], then how many more), each
/// with its line and what is wrong, so that one run shows all there is to fix.
/// A file larger than [`limits::CSV_BYTES`] or with more than [`limits::CSV_ROWS`] phones
/// is refused, and every field is held to its limit in [`limits::FIELDS`].
pub fn parse_phones_csv<R: io::Read>(reader: R) -> Result<Vec<Phone>, ImportError> {
    parse_within(reader, limits::CSV_BYTES, limits::CSV_ROWS)
}

/// [`parse_phones_csv`] with the file limits as parameters, so that tests need not
/// build a million rows.
fn parse_within<R: io::Read>(reader: R, max_bytes: u64, max_rows: usize) -> Result<Vec<Phone>, ImportError> {
    // Read whole so that errors can name the file line: the csv crate's own line count
    // skips blank lines. An inventory of 100,000 phones is a few megabytes.
    let mut text = Vec::new();
    reader.take(max_bytes.saturating_add(1)).read_to_end(&mut text).map_err(ImportError::Read)?;
    if text.len() as u64 > max_bytes {
        return Err(ImportError::TooLarge { max_bytes });
    }
    let mut lines = LineCounter::new(&text);

    // `flexible` so that a short or long row gets our message, which names the line.
    let mut csv = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_slice());
    let header = csv.headers().map_err(|e| from_csv(e, &mut lines))?.clone();
    check_header(&header)?;

    let mut phones = Vec::new();
    let mut bad = BadRows::default();
    let mut first_line_of: HashMap<Mac, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            // A row that is not UTF-8 is consumed whole: the rows after it still read.
            Err(err) if matches!(err.kind(), csv::ErrorKind::Utf8 { .. }) => {
                rows += 1;
                bad.push(from_csv(err, &mut lines));
                continue;
            }
            Err(err) => return Err(from_csv(err, &mut lines)),
        }
        let line = lines.line_at(record.position().map_or(0, csv::Position::byte));
        if rows == max_rows {
            return Err(ImportError::TooManyRows { line, max_rows });
        }
        rows += 1;
        if record.len() != header.len() {
            bad.push(ImportError::Row {
                line,
                problem: format!("has {} fields, the header has {}", record.len(), header.len()),
            });
            continue;
        }
        let phone = match parse_row(&record, line) {
            Ok(phone) => phone,
            Err(err) => {
                bad.push(err);
                continue;
            }
        };
        if let Some(first) = first_line_of.get(&phone.mac) {
            bad.push(ImportError::Field {
                line,
                field: "mac",
                problem: format!("{} is already on line {first}", phone.mac),
            });
            continue;
        }
        first_line_of.insert(phone.mac, line);
        phones.push(phone);
    }
    bad.into_result()?;
    Ok(phones)
}

/// Maps a record's byte offset to the 1-based line it starts on, counting `\n`, `\r\n`
/// and a lone `\r` as one line break each, as the csv reader does. The reader's offset
/// points before any blank lines it skipped, so those are skipped here too. Offsets are
/// asked for in increasing order, so each byte is scanned once.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self { text, offset: 0, line: 1 }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut target = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        if target < self.offset {
            *self = Self::new(self.text);
        }
        while matches!(self.text.get(target), Some(b'\r' | b'\n')) {
            target += 1;
        }
        let scanned = &self.text[self.offset..target];
        let breaks = scanned
            .iter()
            .enumerate()
            .filter(|&(i, &b)| {
                b == b'\n' || (b == b'\r' && self.text.get(self.offset + i + 1) != Some(&b'\n'))
            })
            .count();
        self.line += breaks as u64;
        self.offset = target;
        self.line
    }
}

fn check_header(header: &csv::StringRecord) -> Result<(), ImportError> {
    let problem = |problem: String| Err(ImportError::Header { problem });
    if header.iter().all(str::is_empty) {
        return problem(format!(
            "the file is empty; expected the header `{}` (`{}` optional)",
            CSV_HEADER.join(","),
            CSV_HEADER[CSV_REQUIRED_COLUMNS..].join(",")
        ));
    }
    if let Some(unknown) = header.iter().find(|name| !CSV_HEADER.contains(name)) {
        return problem(format!("unknown column `{unknown}`"));
    }
    for (i, name) in header.iter().enumerate() {
        if header.iter().take(i).any(|earlier| earlier == name) {
            return problem(format!("column `{name}` appears twice"));
        }
    }
    let required = &CSV_HEADER[..CSV_REQUIRED_COLUMNS];
    if let Some(missing) = required.iter().find(|name| !header.iter().any(|h| h == **name)) {
        return problem(format!("missing column `{missing}`"));
    }
    // Every name is known and none twice, so there are at most as many as CSV_HEADER.
    for (i, (name, expected)) in header.iter().zip(CSV_HEADER).enumerate() {
        if name != expected {
            return problem(format!("column {} is `{name}`, expected `{expected}`", i + 1));
        }
    }
    Ok(())
}

fn parse_row(record: &csv::StringRecord, line: u64) -> Result<Phone, ImportError> {
    let field_error = |field: &'static str, problem: String| ImportError::Field { line, field, problem };
    let get = |i: usize| record.get(i).unwrap_or_default();

    check_text("mac", get(0), true, limits::MAC).map_err(|e| field_error(e.field, e.problem))?;
    let mac = Mac::parse(get(0)).map_err(|e| field_error("mac", e.to_string()))?;
    check_text("vendor", get(1), true, limits::VENDOR).map_err(|e| field_error(e.field, e.problem))?;
    let vendor: Vendor =
        get(1).trim().parse().map_err(|e: crate::UnknownVendor| field_error("vendor", e.to_string()))?;
    // An empty cell, like a missing column, means no provisioning password.
    let prov_password = Some(get(7)).filter(|text| !text.is_empty()).map(SecretString::from);
    let phone = Phone {
        mac,
        vendor,
        model: get(2).to_owned(),
        display_name: get(3).to_owned(),
        user_id: get(4).to_owned(),
        auth_id: get(5).to_owned(),
        password: SecretString::from(get(6)),
        prov_password,
    };
    phone.validate().map_err(|e| field_error(e.field, e.problem))?;
    Ok(phone)
}

fn from_csv(err: csv::Error, lines: &mut LineCounter<'_>) -> ImportError {
    let line = lines.line_at(err.position().map_or(0, csv::Position::byte));
    match err.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Read(source),
        csv::ErrorKind::Utf8 { err, .. } => match CSV_HEADER.get(err.field()) {
            Some(field) if line > 1 => {
                ImportError::Field { line, field, problem: "is not valid UTF-8".to_owned() }
            }
            _ => ImportError::Row { line, problem: "is not valid UTF-8".to_owned() },
        },
        other => ImportError::Row { line, problem: format!("{other:?}") },
    }
}

#[cfg(test)]
mod tests;
