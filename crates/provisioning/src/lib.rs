//! switchback's phone side: the inventory (phones, MACs, the CSV import), the askama
//! phone templates, and generations of rendered files with their atomic swap.
//!
//! Data flow: active sites + phones -> [`Generation::render`] -> [`Generations::swap`]
//! (served over HTTP) and, optionally, [`write_generation`] (a folder for another server).
//! No probing and no SQL here.

pub mod export;
pub mod fetch;
pub mod generation;
pub mod import;
pub mod limits;
pub mod mac;
pub mod names;
pub mod phone;
pub mod render_dir;
pub mod sites;
mod templates;

pub use export::write_phones_csv;
pub use generation::{Generation, Generations, PhoneFile, RenderError};
pub use import::{parse_phones_csv, ImportError, CSV_HEADER, CSV_REQUIRED_COLUMNS, MAX_REPORTED_ROWS};
pub use mac::{Mac, MacError};
pub use names::{FileName, ModelCode, YEALINK_MODEL_CODES};
pub use phone::{Phone, PhoneError, UnknownVendor, Vendor};
pub use render_dir::{write_generation, WriteReport};
pub use sites::{ActiveSites, RenderSettings, SipSite, StunSite};

#[cfg(test)]
pub(crate) mod fixtures;
