//! HTTP Digest access authentication (RFC 7616) for phone files: algorithms `MD5` and
//! `SHA-256`, `qop="auth"`, username = the phone's MAC, password = its `prov_password`.
//!
//! Written here rather than taken from a crate: the digest crates on crates.io are
//! clients (they answer challenges); a server needs its own nonces, their expiry and
//! replay refusal, which is the security-relevant part.
//!
//! Nonces are stateless until used: `issued-at || random || HMAC(key, both)`, so any
//! number of challenges costs no memory and a forged or altered nonce is refused. Once
//! a nonce has authenticated a request, the highest nonce count seen for it is kept
//! until it expires, and a request with a count not above it is a replay.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac as _};
use md5::Md5;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const REALM: &str = "switchback";
/// How long a nonce may be used; then the phone is told `stale=true` and retries.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The longest `Authorization` header looked at.
pub const MAX_HEADER: usize = 4096;
/// The longest parameter value looked at (a URI, a cnonce).
const MAX_VALUE: usize = 1024;
/// Nonces whose counts are remembered at once; beyond this the oldest are forgotten
/// early (a phone then gets `stale=true` on its next reuse, never a wrong answer).
const MAX_TRACKED: usize = 1_000_000;
/// Live nonces remembered per phone: a phone needs one or two; someone holding one
/// phone's password must not be able to fill the table for everyone.
const PER_USER: usize = 8;

const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 8 + 8 + TAG_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if text.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn hex(self, parts: &[&[u8]]) -> String {
        fn join<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    hasher.update(b":");
                }
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        let digest = match self {
            Algorithm::Md5 => join::<Md5>(parts),
            Algorithm::Sha256 => join::<Sha256>(parts),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The parts of an `Authorization: Digest …` header this server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    algorithm: Algorithm,
    cnonce: String,
    nc: String,
}

impl Credentials {
    /// Parses the header value. Anything missing, repeated, oversized or unsupported is
    /// an error with a short reason (logged at debug, never sent back).
    pub fn parse(header: &str) -> Result<Self, &'static str> {
        if header.len() > MAX_HEADER {
            return Err("header too long");
        }
        let rest = header.trim_start();
        let (scheme, rest) = rest.split_once([' ', '\t']).ok_or("no parameters")?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err("not the Digest scheme");
        }
        let params = parse_params(rest)?;
        let get = |name: &str| -> Option<&str> {
            params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        };
        let required = |name: &'static str| get(name).filter(|v| !v.is_empty()).ok_or(name);
        if get("qop") != Some("auth") {
            return Err("qop is not auth");
        }
        if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err("userhash is not supported");
        }
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(name) => Algorithm::parse(name).ok_or("unsupported algorithm")?,
        };
        let nc = required("nc")?;
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("nc is not 8 hex digits");
        }
        Ok(Self {
            username: required("username")?.to_owned(),
            realm: required("realm")?.to_owned(),
            nonce: required("nonce")?.to_owned(),
            uri: required("uri")?.to_owned(),
            response: required("response")?.to_ascii_lowercase(),
            algorithm,
            cnonce: required("cnonce")?.to_owned(),
            nc: nc.to_owned(),
        })
    }
}

/// `name=value` pairs separated by commas; values are tokens or quoted strings.
fn parse_params(text: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(char::is_ascii_whitespace) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err("malformed parameter");
        }
        while chars.peek().is_some_and(char::is_ascii_whitespace) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or("unterminated quoted string")?),
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted string"),
                }
                if value.len() > MAX_VALUE {
                    return Err("parameter too long");
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
            return Err("bad parameter value");
        }
        if params.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            return Err("repeated parameter");
        }
        if params.len() >= 16 {
            return Err("too many parameters");
        }
        params.push((name, value));
    }
    Ok(params)
}

/// What checking a request's credentials found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The phone proved it knows the password, with a fresh nonce and count.
    Authenticated,
    /// Right password, but the nonce expired: challenge again with `stale=true`.
    Stale,
    /// Wrong, forged, replayed or meant for another realm or URI.
    Refused(&'static str),
}

/// Issues nonces and checks answers. One per process.
pub struct DigestAuth {
    key: [u8; 32],
    used: Mutex<Nonces>,
}

#[derive(Debug, Default)]
struct Nonces {
    used: HashMap<[u8; TAG_LEN], Used>,
    /// Each user's remembered nonces, oldest first, at most [`PER_USER`].
    by_user: HashMap<String, std::collections::VecDeque<[u8; TAG_LEN]>>,
}

#[derive(Debug, Clone, Copy)]
struct Used {
    last_nc: u32,
    issued_at: u64,
}

impl std::fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuth").finish_non_exhaustive()
    }
}

impl Default for DigestAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestAuth {
    pub fn new() -> Self {
        Self { key: rand::rng().random(), used: Mutex::default() }
    }

    /// A fresh nonce, valid for [`NONCE_LIFETIME`] from `now_unix`.
    pub fn nonce(&self, now_unix: u64) -> String {
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&now_unix.to_be_bytes());
        raw[8..16].copy_from_slice(&rand::rng().random::<[u8; 8]>());
        let tag = self.tag(&raw[..16]);
        raw[16..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        // HMAC takes a key of any length, so this cannot fail.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) {
            mac.update(body);
            tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
        }
        tag
    }

    /// The `WWW-Authenticate` values of a challenge, SHA-256 first, with one nonce.
    pub fn challenge(&self, now_unix: u64, stale: bool) -> [HeaderValue; 2] {
        let nonce = self.nonce(now_unix);
        let stale = if stale { ", stale=true" } else { "" };
        [Algorithm::Sha256, Algorithm::Md5].map(|algorithm| {
            let value = format!(
                "Digest realm=\"{REALM}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\"{stale}",
                algorithm.name()
            );
            HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Digest"))
        })
    }

    /// Checks `credentials` for a request `method uri` against the phone's password
    /// (`None`: an unknown phone or one without a provisioning password; the work done
    /// is the same, so timing does not tell which).
    pub fn verify(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        password: Option<&str>,
        now_unix: u64,
    ) -> Verdict {
        let c = credentials;
        let algorithm = c.algorithm;
        let ha1 = algorithm.hex(&[
            c.username.as_bytes(),
            REALM.as_bytes(),
            password.unwrap_or("\u{0}no password\u{0}").as_bytes(),
        ]);
        let ha2 = algorithm.hex(&[method.as_bytes(), c.uri.as_bytes()]);
        let expected = algorithm.hex(&[
            ha1.as_bytes(),
            c.nonce.as_bytes(),
            c.nc.as_bytes(),
            c.cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        let matches = bool::from(expected.as_bytes().ct_eq(c.response.as_bytes()));
        if password.is_none() || !matches {
            return Verdict::Refused("wrong credentials");
        }
        if c.realm != REALM {
            return Verdict::Refused("wrong realm");
        }
        if c.uri != uri {
            return Verdict::Refused("uri is not the request's");
        }
        // Right password, but a nonce this process did not make: one from before a
        // restart (a new key). The phone is told to retry, not counted as bad; an
        // eavesdropper replaying an old exchange gets no file either way.
        let Some((tag, issued_at)) = self.open_nonce(&c.nonce) else {
            return Verdict::Stale;
        };
        if now_unix.saturating_sub(issued_at) >= NONCE_LIFETIME.as_secs() || issued_at > now_unix + 60 {
            return Verdict::Stale;
        }
        let Ok(nc) = u32::from_str_radix(&c.nc, 16) else {
            return Verdict::Refused("bad nonce count");
        };
        self.use_count(&c.username, tag, issued_at, nc, now_unix)
    }

    fn open_nonce(&self, nonce: &str) -> Option<([u8; TAG_LEN], u64)> {
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        let tag = self.tag(&raw[..16]);
        if !bool::from(tag.ct_eq(&raw[16..])) {
            return None;
        }
        let issued_at = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let mut id = [0u8; TAG_LEN];
        id.copy_from_slice(&raw[..16]);
        Some((id, issued_at))
    }

    fn use_count(&self, user: &str, id: [u8; TAG_LEN], issued_at: u64, nc: u32, now_unix: u64) -> Verdict {
        let mut nonces = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Nonces { used, by_user } = &mut *nonces;
        if let Some(seen) = used.get_mut(&id) {
            if nc <= seen.last_nc {
                return Verdict::Refused("nonce count already used (replay)");
            }
            seen.last_nc = nc;
            return Verdict::Authenticated;
        }
        if used.len() >= MAX_TRACKED {
            let lifetime = NONCE_LIFETIME.as_secs();
            used.retain(|_, u| now_unix.saturating_sub(u.issued_at) < lifetime);
            if used.len() >= MAX_TRACKED {
                // Still full of live nonces: refuse to remember more rather than forget
                // counts that guard against replays. The phone gets a fresh challenge.
                return Verdict::Stale;
            }
        }
        let mine = by_user.entry(user.to_owned()).or_default();
        if mine.len() >= PER_USER {
            // Forgotten early. Only this user's own nonces go, and only when it has
            // authenticated PER_USER times within a nonce's life: whoever makes that
            // happen holds its password already, so a replay of the forgotten nonce
            // gains nothing.
            if let Some(oldest) = mine.pop_front() {
                used.remove(&oldest);
            }
        }
        mine.push_back(id);
        used.insert(id, Used { last_nc: nc, issued_at });
        Verdict::Authenticated
    }

    /// Forgets the counts of expired nonces (called now and then, off the request path).
    pub fn prune(&self, now_unix: u64) {
        let mut nonces = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Nonces { used, by_user } = &mut *nonces;
        let lifetime = NONCE_LIFETIME.as_secs();
        used.retain(|_, u| now_unix.saturating_sub(u.issued_at) < lifetime);
        by_user.retain(|_, ids| {
            ids.retain(|id| used.contains_key(id));
            !ids.is_empty()
        });
    }
}

#[cfg(test)]
mod tests;
