//! Who may act: the admin token as `Authorization: Bearer …` (scripts), or a dashboard
//! session (a login with the same token sets an HttpOnly, SameSite=Strict cookie; every
//! action from the page must also carry the session's CSRF token in `X-CSRF-Token`).
//! Login attempts are rate-limited per source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "sb_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Names the person behind a bearer-token call in the event history.
pub const ACTOR_HEADER: &str = "x-switchback-actor";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Login attempts per source address per minute.
const LOGINS_PER_MINUTE: u32 = 5;

pub struct Auth {
    token: Option<SecretString>,
    sessions: Mutex<HashMap<String, Session>>,
    logins: DefaultKeyedRateLimiter<IpAddr>,
    secure_cookie: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("token_set", &self.token.is_some()).finish_non_exhaustive()
    }
}

struct Session {
    name: String,
    csrf: String,
    expires: Instant,
}

/// A logged-in dashboard user, as the page needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub name: String,
    pub csrf: String,
}

impl Auth {
    /// `secure_cookie`: mark the session cookie `Secure` (the public URL is https).
    pub fn new(token: Option<SecretString>, secure_cookie: bool) -> Self {
        let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            token,
            sessions: Mutex::new(HashMap::new()),
            logins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            secure_cookie,
        }
    }

    fn token_matches(&self, candidate: &str) -> bool {
        match &self.token {
            Some(token) => bool::from(token.expose_secret().as_bytes().ct_eq(candidate.as_bytes())),
            None => false,
        }
    }

    /// The actor of an operator request, or why it is refused.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if self.token.is_none() {
            return Err(ApiError::Unauthorized(
                "no admin_token is configured; operator actions are off".into(),
            ));
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let bearer = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
            if !self.token_matches(bearer.trim()) {
                return Err(ApiError::Unauthorized("invalid admin token".into()));
            }
            let actor = headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()).map(clean_name);
            return Ok(actor.filter(|a| !a.is_empty()).unwrap_or_else(|| "api".to_owned()));
        }
        let session = self.session(headers).ok_or_else(|| ApiError::Unauthorized("log in first".into()))?;
        let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !bool::from(session.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(ApiError::Unauthorized("missing or wrong CSRF token".into()));
        }
        Ok(session.name)
    }

    /// The dashboard session named by the request's cookie, if it is live.
    pub fn session(&self, headers: &HeaderMap) -> Option<SessionView> {
        let id = session_id(headers)?;
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(&id).map(|s| SessionView { name: s.name.clone(), csrf: s.csrf.clone() })
    }

    /// Checks the token and opens a session; answers the `Set-Cookie` value.
    pub fn login(&self, source: IpAddr, name: &str, token: &str) -> Result<String, ApiError> {
        if self.logins.check_key(&source).is_err() {
            tracing::warn!(source = %source, "login rate-limited");
            return Err(ApiError::TooManyRequests);
        }
        if !self.token_matches(token.trim()) {
            tracing::warn!(source = %source, "login failed");
            return Err(ApiError::Unauthorized("wrong admin token".into()));
        }
        let name = clean_name(name);
        let name = if name.is_empty() { "operator".to_owned() } else { name };
        let id = random_hex();
        let session =
            Session { name: name.clone(), csrf: random_hex(), expires: Instant::now() + SESSION_LIFETIME };
        self.lock().insert(id.clone(), session);
        tracing::info!(source = %source, actor = %name, "login");
        Ok(self.cookie(&id, SESSION_LIFETIME.as_secs()))
    }

    /// Ends the request's session; answers the `Set-Cookie` value that clears it.
    pub fn logout(&self, headers: &HeaderMap) -> String {
        if let Some(id) = session_id(headers) {
            self.lock().remove(&id);
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|value| {
        cookie::Cookie::split_parse(value)
            .filter_map(Result::ok)
            .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
            .map(|c| c.value().to_owned())
    })
}

/// A name fit for the event history: printable, at most 64 characters.
fn clean_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect::<String>().trim().to_owned()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
