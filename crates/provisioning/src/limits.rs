//! How large a phones CSV and each of its fields may be. The import checks every limit
//! and names the line and the field; [`Phone::validate`](crate::Phone::validate) holds a
//! phone from anywhere else to the same field limits.
//!
//! Lengths count characters (Unicode scalar values), not bytes. They bound what one row
//! can add to a phone file, and the file and row limits bound what one import can hold
//! in memory.

/// `mac` as typed, before it is parsed (`00:15:65:12:34:ab` is 17).
pub const MAC: usize = 32;
pub const VENDOR: usize = 16;
pub const MODEL: usize = 64;
pub const DISPLAY_NAME: usize = 64;
pub const USER_ID: usize = 64;
pub const AUTH_ID: usize = 64;
/// The SIP password.
pub const PASSWORD: usize = 128;
/// The password the phone fetches its own file with (HTTP Digest).
pub const PROV_PASSWORD: usize = 128;

/// Every field and its limit in characters, in CSV column order.
pub const FIELDS: [(&str, usize); 8] = [
    ("mac", MAC),
    ("vendor", VENDOR),
    ("model", MODEL),
    ("display_name", DISPLAY_NAME),
    ("user_id", USER_ID),
    ("auth_id", AUTH_ID),
    ("password", PASSWORD),
    ("prov_password", PROV_PASSWORD),
];

/// The largest phones CSV, in bytes: 64 MiB.
pub const CSV_BYTES: u64 = 64 * 1024 * 1024;

/// The most data rows (phones) in one phones CSV.
pub const CSV_ROWS: usize = 1_000_000;
