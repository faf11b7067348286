//! Generations: every phone file rendered for one set of active sites, and the live
//! holder that swaps a whole new generation in at once.
//!
//! A reader takes an `Arc<Generation>` and answers from it alone, so no response mixes
//! two generations, and an old generation stays whole until its last reader is done.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use md5::{Digest, Md5};
use rayon::prelude::*;
use secrecy::SecretString;
use tokio::sync::watch;

use crate::mac::Mac;
use crate::names::{FileName, CONTENT_TYPE_CFG};
use crate::phone::{Phone, PhoneError, Vendor};
use crate::sites::{ActiveSites, RenderSettings};
use crate::templates::{self, Shared};

/// Why a generation could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("phone {mac}: {source}")]
    Phone { mac: Mac, source: PhoneError },
    #[error("phone {mac} is in the inventory twice")]
    DuplicateMac { mac: Mac },
    #[error("template {template}: {source}")]
    Template { template: &'static str, source: askama::Error },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// One rendered file: its bytes, strong ETag and content type.
#[derive(Clone)]
pub struct PhoneFile {
    bytes: Bytes,
    etag: Box<str>,
    content_type: &'static str,
}

impl PhoneFile {
    /// The ETag is the quoted hex MD5 of the bytes: the digest Yealink phones compare.
    pub fn new(bytes: Bytes, content_type: &'static str) -> Self {
        let digest = Md5::digest(&bytes);
        let mut etag = String::with_capacity(34);
        etag.push('"');
        for byte in digest {
            etag.push(char::from(HEX[usize::from(byte >> 4)]));
            etag.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        etag.push('"');
        Self { bytes, etag: etag.into_boxed_str(), content_type }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `"<32 hex digits>"`, quotes included, ready for an `ETag` header.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The hex MD5 of the bytes, without quotes.
    pub fn md5_hex(&self) -> &str {
        self.etag.trim_matches('"')
    }

    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// Whether an `If-None-Match` header value names this file (RFC 9110 weak comparison:
    /// `*`, or a comma-separated list of tags, `W/` ignored).
    pub fn etag_matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == &*self.etag)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for PhoneFile {
    // The bytes hold a SIP password, so only their size and digest are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneFile")
            .field("len", &self.bytes.len())
            .field("etag", &self.etag)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// One phone's part of a generation. No `Debug`: it holds the provisioning password.
#[derive(Clone)]
struct Entry {
    vendor: Vendor,
    file: PhoneFile,
    /// Kept beside the file so that a request is authenticated from the same generation
    /// it is answered from, without the store.
    prov_password: Option<SecretString>,
}

/// Every file of one generation. Immutable once rendered.
pub struct Generation {
    number: u64,
    sites: ActiveSites,
    phones: HashMap<Mac, Entry>,
    /// How many of `phones` are of each vendor, in [`Vendor::ALL`]'s order.
    per_vendor: [usize; Vendor::ALL.len()],
    /// One file for every `y0000000000xx.cfg`: it carries nothing model-specific.
    yealink_common: PhoneFile,
}

impl Generation {
    /// Renders every phone's file, in parallel. Each phone is validated first
    /// ([`Phone::validate`]), wherever it came from; one bad phone fails the generation.
    pub fn render(
        number: u64,
        sites: &ActiveSites,
        settings: &RenderSettings,
        phones: &[Phone],
    ) -> Result<Self, RenderError> {
        let shared = Shared::new(sites, settings);
        let rendered: Vec<(Mac, Entry)> =
            phones.par_iter().map(|phone| render_phone(&shared, phone)).collect::<Result<_, _>>()?;
        let mut by_mac = HashMap::with_capacity(rendered.len());
        for (mac, entry) in rendered {
            if by_mac.insert(mac, entry).is_some() {
                return Err(RenderError::DuplicateMac { mac });
            }
        }
        let common = templates::yealink_common()
            .map_err(|source| RenderError::Template { template: "yealink_common.cfg", source })?;
        let per_vendor =
            Vendor::ALL.map(|vendor| by_mac.values().filter(|entry| entry.vendor == vendor).count());
        Ok(Self {
            number,
            sites: sites.clone(),
            phones: by_mac,
            per_vendor,
            yealink_common: PhoneFile::new(Bytes::from(common), CONTENT_TYPE_CFG),
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn sites(&self) -> &ActiveSites {
        &self.sites
    }

    /// How many phones have a file in this generation.
    pub fn phone_count(&self) -> usize {
        self.phones.len()
    }

    /// How many phones of `vendor` have a file in this generation.
    pub fn phone_count_of(&self, vendor: Vendor) -> usize {
        Vendor::ALL.iter().position(|v| *v == vendor).map_or(0, |i| self.per_vendor[i])
    }

    /// The file a name stands for; `None` for an unknown phone or a phone of the other vendor.
    pub fn get(&self, name: FileName) -> Option<&PhoneFile> {
        match name {
            FileName::YealinkCommon(_) => Some(&self.yealink_common),
            FileName::YealinkPhone(mac) | FileName::LinksysPhone(mac) => {
                self.phones.get(&mac).filter(|entry| entry.vendor == name.vendor()).map(|entry| &entry.file)
            }
        }
    }

    /// The file for a request to `/prov/{vendor_path}/{file_name}`, parsed strictly
    /// ([`FileName::parse`]); `None` means 404.
    pub fn lookup(&self, vendor_path: &str, file_name: &str) -> Option<&PhoneFile> {
        self.get(FileName::parse(vendor_path, file_name)?)
    }

    /// The file for `/prov/yealink/{file_name}`.
    pub fn yealink_file(&self, file_name: &str) -> Option<&PhoneFile> {
        self.lookup("yealink", file_name)
    }

    /// The file for `/prov/linksys/{file_name}`.
    pub fn linksys_file(&self, file_name: &str) -> Option<&PhoneFile> {
        self.lookup("linksys", file_name)
    }

    /// The model-wide Yealink file, the same for every model code.
    pub fn yealink_common(&self) -> &PhoneFile {
        &self.yealink_common
    }

    /// The password phone `mac` fetches its own file with (HTTP Digest, the username
    /// being the MAC as 12 lowercase hex digits); `None` for an unknown phone or a phone
    /// without one.
    pub fn prov_password(&self, mac: Mac) -> Option<&SecretString> {
        self.phones.get(&mac).and_then(|entry| entry.prov_password.as_ref())
    }

    /// Every phone's own file, in no particular order (the common file is not included).
    pub fn phone_files(&self) -> impl Iterator<Item = (FileName, &PhoneFile)> + '_ {
        self.phones.iter().map(|(mac, entry)| (FileName::for_phone(entry.vendor, *mac), &entry.file))
    }
}

fn render_phone(shared: &Shared, phone: &Phone) -> Result<(Mac, Entry), RenderError> {
    phone.validate().map_err(|source| RenderError::Phone { mac: phone.mac, source })?;
    let (text, template) = match phone.vendor {
        Vendor::Yealink => (templates::yealink_mac(shared, phone), "yealink_mac.cfg"),
        Vendor::Linksys => (templates::spa(shared, phone), "spa.xml"),
    };
    let text = text.map_err(|source| RenderError::Template { template, source })?;
    let name = FileName::for_phone(phone.vendor, phone.mac);
    let file = PhoneFile::new(Bytes::from(text), name.content_type());
    let prov_password = phone.prov_password.clone();
    Ok((phone.mac, Entry { vendor: phone.vendor, file, prov_password }))
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("sites", &self.sites)
            .field("phones", &self.phones.len())
            .finish_non_exhaustive()
    }
}

/// The generation being served. Cheap to read from many tasks at once.
#[derive(Debug)]
pub struct Generations {
    current: ArcSwap<Generation>,
    /// Counts swaps, so that a watcher (the dashboard's) learns of a new generation,
    /// or of a new inventory under the same number, without polling.
    swaps: watch::Sender<u64>,
}

impl Generations {
    pub fn new(first: Generation) -> Self {
        Self::from_arc(Arc::new(first))
    }

    /// Starts with a generation that is already shared (say, with a render-dir writer).
    pub fn from_arc(first: Arc<Generation>) -> Self {
        Self { current: ArcSwap::new(first), swaps: watch::Sender::new(0) }
    }

    /// The generation to answer one request from. Hold it for the whole response.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Makes `next` current at once and hands back the previous generation. Dropping it
    /// frees every old file, which for 100,000 phones is worth doing off an async thread.
    pub fn swap(&self, next: Generation) -> Arc<Generation> {
        let old = self.current.swap(Arc::new(next));
        self.swaps.send_modify(|swaps| *swaps += 1);
        old
    }

    /// How many swaps there have been: a new count, a new generation.
    pub fn swaps(&self) -> u64 {
        *self.swaps.borrow()
    }

    /// Changes after every swap.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.swaps.subscribe()
    }
}

#[cfg(test)]
mod tests;
