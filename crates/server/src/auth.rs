//! Who may read and who may act.
//!
//! - **Reads** of phone data and history ([`Auth::authorize_read`]): `Authorization:
//!   Bearer` with the admin token or the read token (`server.read_token`, for Grafana and
//!   scripts), or a live dashboard session. No CSRF token: a GET changes nothing.
//! - **Actions** ([`Auth::authorize_action`]): the admin token as a bearer, or a dashboard
//!   session (a login with the admin token sets an HttpOnly, SameSite=Strict cookie) whose
//!   request also carries the session's CSRF token in `X-CSRF-Token`. The read token is
//!   refused with 403.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither their bytes nor
//! their length leak through timing. Failed logins and wrong bearer tokens share one count
//! per source ([`Failures`]): after [`FAILURES_PER_MINUTE`] within a minute, every login
//! and every bearer attempt from that source gets 429, the right token too, until the
//! oldest of those failures is a minute old; otherwise a limited guesser would still learn
//! which guess was right.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::prov::guard::Source;
use crate::window::SlidingCounts;

pub const SESSION_COOKIE: &str = "sb_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Names the person behind a bearer-token call in the event history.
pub const ACTOR_HEADER: &str = "x-switchback-actor";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins plus wrong bearer tokens per source address per minute.
pub const FAILURES_PER_MINUTE: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many source addresses are remembered (a few MiB at most).
const MAX_SOURCES: usize = 100_000;

/// A token's SHA-256: what is kept and compared, never the token itself.
type Digest = [u8; 32];

pub struct Auth {
    admin: Option<Digest>,
    read: Option<Digest>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
    secure_cookie: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("admin_token_set", &self.admin.is_some())
            .field("read_token_set", &self.read.is_some())
            .finish_non_exhaustive()
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

/// What a right bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bearer {
    Admin,
    Read,
}

impl Auth {
    /// `admin` acts and reads, `read` only reads; an empty token is no token.
    /// `secure_cookie`: mark the session cookie `Secure` (the public URL is https).
    pub fn new(admin: Option<SecretString>, read: Option<SecretString>, secure_cookie: bool) -> Self {
        let digest_of = |token: Option<SecretString>| {
            token.filter(|t| !t.expose_secret().is_empty()).map(|t| digest(t.expose_secret()))
        };
        Self {
            admin: digest_of(admin),
            read: digest_of(read),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::new(FAILURES_PER_MINUTE, FAILURE_WINDOW, MAX_SOURCES)),
            secure_cookie,
        }
    }

    /// The actor of an operator request from `source`, or why it is refused: 401 without
    /// valid credentials, 403 for the read token, 429 while `source` is limited.
    pub fn authorize_action(&self, headers: &HeaderMap, source: IpAddr) -> Result<String, ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            return match self.check_bearer(value, source)? {
                Some(Bearer::Admin) => Ok(actor_of(headers)),
                Some(Bearer::Read) => Err(ApiError::Forbidden("the read token cannot act".into())),
                None if self.admin.is_none() => Err(actions_off()),
                None => Err(invalid(value)),
            };
        }
        let Some(session) = self.session(headers) else {
            return Err(if self.admin.is_none() {
                actions_off()
            } else if from_dashboard(headers) {
                ApiError::Unauthorized("log in, or send Authorization: Bearer with the admin token".into())
            } else {
                ApiError::Unauthorized(format!("{MISSING_TOKEN} (the admin token)"))
            });
        };
        let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !same(&digest(&session.csrf), &digest(csrf)) {
            return Err(ApiError::Unauthorized("missing or wrong CSRF token".into()));
        }
        Ok(session.name)
    }

    /// Whether a request from `source` may read phone data and history: 401 without
    /// valid credentials, 429 while `source` is limited.
    pub fn authorize_read(&self, headers: &HeaderMap, source: IpAddr) -> Result<(), ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            return match self.check_bearer(value, source)? {
                Some(_) => Ok(()),
                None => Err(invalid(value)),
            };
        }
        if self.session(headers).is_some() {
            return Ok(());
        }
        Err(ApiError::Unauthorized(if from_dashboard(headers) {
            "log in, or send Authorization: Bearer with the admin or the read token".into()
        } else {
            format!("{MISSING_TOKEN} (the admin or the read token)")
        }))
    }

    /// Which token an `Authorization` header carries; `None` (a failure, counted) when it
    /// is none of them. 429 while the source is limited, whatever the header holds.
    fn check_bearer(&self, value: &HeaderValue, source: IpAddr) -> Result<Option<Bearer>, ApiError> {
        // Hashed before the lock; compared against both tokens, whichever matches.
        let candidate = value.to_str().ok().and_then(bearer_token).map(digest);
        let matches = |token: &Option<Digest>| match (token, &candidate) {
            (Some(token), Some(candidate)) => same(token, candidate),
            _ => false,
        };
        let (admin, read) = (matches(&self.admin), matches(&self.read));
        let found = if admin {
            Some(Bearer::Admin)
        } else if read {
            Some(Bearer::Read)
        } else {
            None
        };
        // The verdict and the count under one lock: concurrent guesses cannot all slip
        // in before the first of them is counted.
        let mut failures = self.failures();
        let now = Instant::now();
        if failures.limited(source, now) {
            tracing::debug!(source = %source, "bearer attempt refused: source limited");
            return Err(ApiError::TooManyRequests);
        }
        if found.is_none() {
            tracing::warn!(source = %source, "bearer token refused");
            if failures.record(source, now) {
                tracing::warn!(source = %source, "source limited for a minute: too many failed attempts");
            }
        }
        Ok(found)
    }

    /// The dashboard session named by the request's cookie, if it is live.
    pub fn session(&self, headers: &HeaderMap) -> Option<SessionView> {
        let id = session_id(headers)?;
        let mut sessions = self.sessions();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(&id).map(|s| SessionView { name: s.name.clone(), csrf: s.csrf.clone() })
    }

    /// Checks the admin token and opens a session; answers the `Set-Cookie` value.
    pub fn login(&self, source: IpAddr, name: &str, token: &str) -> Result<String, ApiError> {
        let token = token.trim();
        let right = !token.is_empty() && self.admin.as_ref().is_some_and(|admin| same(admin, &digest(token)));
        {
            let mut failures = self.failures();
            let now = Instant::now();
            if failures.limited(source, now) {
                // Said once at warn when the limit starts; a flood of refusals is not news.
                tracing::debug!(source = %source, "login refused: source limited");
                return Err(ApiError::TooManyRequests);
            }
            if !right {
                tracing::warn!(source = %source, "login failed");
                if failures.record(source, now) {
                    tracing::warn!(source = %source, "source limited for a minute: too many failed attempts");
                }
                return Err(ApiError::Unauthorized("wrong admin token".into()));
            }
        }
        let name = clean_name(name);
        let name = if name.is_empty() { "operator".to_owned() } else { name };
        let id = random_hex();
        let session =
            Session { name: name.clone(), csrf: random_hex(), expires: Instant::now() + SESSION_LIFETIME };
        self.sessions().insert(id.clone(), session);
        tracing::info!(source = %source, actor = %name, "login");
        Ok(self.cookie(&id, SESSION_LIFETIME.as_secs()))
    }

    /// Ends the request's session; answers the `Set-Cookie` value that clears it.
    pub fn logout(&self, headers: &HeaderMap) -> String {
        if let Some(id) = session_id(headers) {
            self.sessions().remove(&id);
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failures(&self) -> MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What an API call without credentials is told.
const MISSING_TOKEN: &str = "missing token: send Authorization: Bearer <token>";

/// Whether a request without a live session comes from the dashboard (a session cookie
/// that ended, or the page's CSRF header): it is told to log in, a script to send a token.
fn from_dashboard(headers: &HeaderMap) -> bool {
    session_id(headers).is_some() || headers.contains_key(CSRF_HEADER)
}

/// A wrong `Authorization` header: a wrong token, or not a bearer token at all.
fn invalid(value: &HeaderValue) -> ApiError {
    if value.to_str().ok().and_then(bearer_token).is_some() {
        ApiError::Unauthorized("invalid token".into())
    } else {
        ApiError::Unauthorized("invalid Authorization header: send Authorization: Bearer <token>".into())
    }
}

fn actions_off() -> ApiError {
    ApiError::Unauthorized("no admin_token is configured; operator actions are off".into())
}

fn digest(text: &str) -> Digest {
    Sha256::digest(text.as_bytes()).into()
}

/// Constant time; digests have one length, so a token's length does not show either.
fn same(a: &Digest, b: &Digest) -> bool {
    bool::from(a[..].ct_eq(&b[..]))
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 7235 section 2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The name a bearer call acts under: its `X-Switchback-Actor`, else `api`.
fn actor_of(headers: &HeaderMap) -> String {
    let actor = headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()).map(clean_name);
    actor.filter(|a| !a.is_empty()).unwrap_or_else(|| "api".to_owned())
}

/// Failed attempts per source (an IPv4 address, an IPv6 /64) within a sliding window.
/// A full table of live sources gives up one of them for a new one.
#[derive(Debug)]
pub(crate) struct Failures(SlidingCounts<Source>);

impl Failures {
    pub(crate) fn new(limit: usize, window: Duration, max_sources: usize) -> Self {
        Self(SlidingCounts::new(limit, window, max_sources))
    }

    /// Whether `source` made `limit` failures within the window before `now`.
    pub(crate) fn limited(&self, source: IpAddr, now: Instant) -> bool {
        self.0.count(Source::of(source), now) >= self.0.limit()
    }

    /// Counts a failure of `source` at `now`; answers whether that limits it.
    pub(crate) fn record(&mut self, source: IpAddr, now: Instant) -> bool {
        let key = Source::of(source);
        if !self.0.has_room(key, now) {
            self.0.evict_any();
        }
        self.0.record(key, now) >= self.0.limit()
    }

    /// How many sources are remembered.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.0.keys()
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
    clean_text(name, 64)
}

/// Free text from a client fit for the event history, logs and the dashboard: no control
/// characters, no bidirectional overrides (which make a line read other than it is),
/// at most `max` characters, trimmed.
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars().filter(|c| !c.is_control() && !bidi(*c)).take(max).collect::<String>().trim().to_owned()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::net::Ipv4Addr;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    const ADMIN: &str = "admin-token-0123456789";
    const READ: &str = "read-token-0123456789";

    fn auth() -> Auth {
        Auth::new(Some(ADMIN.into()), Some(READ.into()), false)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn bearer(token: &str) -> HeaderMap {
        with(&[("authorization", &format!("Bearer {token}"))])
    }

    fn status<T: std::fmt::Debug>(result: Result<T, ApiError>) -> StatusCode {
        match result {
            Ok(_) => StatusCode::OK,
            Err(err) => err.into_response().status(),
        }
    }

    fn session_headers(auth: &Auth, source: IpAddr) -> (HeaderMap, String) {
        let set_cookie = auth.login(source, "alice", ADMIN).unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let headers = with(&[("cookie", &cookie)]);
        let csrf = auth.session(&headers).unwrap().csrf;
        (headers, csrf)
    }

    // ---- the sliding window ----

    #[test]
    fn five_failures_within_a_minute_limit_a_source_until_the_oldest_is_a_minute_old() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut failures = Failures::new(5, Duration::from_secs(60), 100);
        for s in [0, 10, 20, 30] {
            assert!(!failures.record(ip(1), at(s)));
            assert!(!failures.limited(ip(1), at(s)));
        }
        assert!(failures.record(ip(1), at(40)), "the fifth failure limits");
        assert!(failures.limited(ip(1), at(40)));
        assert!(failures.limited(ip(1), at(59)));
        assert!(!failures.limited(ip(2), at(59)), "another source is not limited");
        // At 60 s the first failure leaves the window: four remain, one more is allowed.
        assert!(!failures.limited(ip(1), at(60)));
        assert!(failures.record(ip(1), at(61)));
        assert!(failures.limited(ip(1), at(69)));
        assert!(!failures.limited(ip(1), at(70)));
        assert!(!failures.limited(ip(1), at(200)));
    }

    #[test]
    fn a_failure_every_15_s_never_limits_one_every_14_s_does() {
        let t0 = Instant::now();
        let mut failures = Failures::new(5, Duration::from_secs(60), 100);
        for n in 0..100u64 {
            assert!(!failures.record(ip(1), t0 + Duration::from_secs(n * 15)), "failure {n}");
        }
        let limited = (0..5u64).map(|n| failures.record(ip(2), t0 + Duration::from_secs(n * 14))).last();
        assert_eq!(limited, Some(true), "five within 56 s");
    }

    #[test]
    fn memory_is_bounded_in_sources_and_in_instants_per_source() {
        let t0 = Instant::now();
        let mut failures = Failures::new(5, Duration::from_secs(60), 3);
        for n in 0..50u8 {
            failures.record(ip(n), t0 + Duration::from_millis(u64::from(n)));
            assert!(failures.sources() <= 3, "{} sources after {n}", failures.sources());
        }
        for _ in 0..1000 {
            failures.record(ip(200), t0);
        }
        assert!(failures.0.longest() <= 5);
        // A minute later the old sources are gone at the next record.
        failures.record(ip(201), t0 + Duration::from_secs(61));
        assert_eq!(failures.sources(), 1);
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Source::of(mapped), Source::of(ip(1)));
    }

    // ---- tokens ----

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_is_a_bearer() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc", "", "Token abc"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
        let auth = auth();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let headers = with(&[("authorization", &format!("{scheme} {ADMIN}"))]);
            assert_eq!(auth.authorize_action(&headers, ip(1)).unwrap(), "api", "{scheme}");
        }
    }

    #[test]
    fn a_script_without_a_token_is_told_to_send_one_the_dashboard_to_log_in() {
        let auth = auth();
        fn said<T: std::fmt::Debug>(result: Result<T, ApiError>) -> String {
            result.unwrap_err().to_string()
        }
        let none = HeaderMap::new();
        assert_eq!(
            said(auth.authorize_read(&none, ip(1))),
            "missing token: send Authorization: Bearer <token> (the admin or the read token)"
        );
        assert_eq!(
            said(auth.authorize_action(&none, ip(1))),
            "missing token: send Authorization: Bearer <token> (the admin token)"
        );
        // A session that ended, or the page's CSRF header without a cookie: the dashboard.
        for headers in
            [with(&[("cookie", "sb_session=ended0123456789")]), with(&[(CSRF_HEADER, "0123456789abcdef")])]
        {
            assert!(said(auth.authorize_read(&headers, ip(1))).starts_with("log in, or send"), "{headers:?}");
            assert!(
                said(auth.authorize_action(&headers, ip(1))).starts_with("log in, or send"),
                "{headers:?}"
            );
        }
        // A wrong token, and a header that is no bearer token at all.
        assert_eq!(said(auth.authorize_read(&bearer("wrong-token-0123456789"), ip(2))), "invalid token");
        let basic = with(&[("authorization", &format!("Basic {ADMIN}"))]);
        let refused = said(auth.authorize_action(&basic, ip(3)));
        assert_eq!(refused, "invalid Authorization header: send Authorization: Bearer <token>");
    }

    #[test]
    fn the_admin_token_acts_under_the_actor_header() {
        let auth = auth();
        let mut headers = bearer(ADMIN);
        headers.insert(ACTOR_HEADER, HeaderValue::from_static("ops-bot"));
        assert_eq!(auth.authorize_action(&headers, ip(1)).unwrap(), "ops-bot");
        assert_eq!(status(auth.authorize_read(&headers, ip(1))), StatusCode::OK);
    }

    #[test]
    fn the_read_token_reads_but_cannot_act() {
        let auth = auth();
        assert_eq!(status(auth.authorize_read(&bearer(READ), ip(1))), StatusCode::OK);
        let refused = auth.authorize_action(&bearer(READ), ip(1)).unwrap_err();
        assert_eq!(refused.to_string(), "the read token cannot act");
        assert_eq!(refused.into_response().status(), StatusCode::FORBIDDEN);
        // A right token is no failure: many of them never limit the source.
        for _ in 0..20 {
            assert_eq!(status(auth.authorize_action(&bearer(READ), ip(1))), StatusCode::FORBIDDEN);
        }
        assert_eq!(status(auth.authorize_read(&bearer(READ), ip(1))), StatusCode::OK);
    }

    #[test]
    fn without_credentials_reads_and_actions_are_401() {
        let auth = auth();
        assert_eq!(status(auth.authorize_read(&HeaderMap::new(), ip(1))), StatusCode::UNAUTHORIZED);
        assert_eq!(status(auth.authorize_action(&HeaderMap::new(), ip(1))), StatusCode::UNAUTHORIZED);
        let forged = with(&[("cookie", "sb_session=forged0123456789")]);
        assert_eq!(status(auth.authorize_read(&forged, ip(1))), StatusCode::UNAUTHORIZED);
        // No token is no guess: a thousand of them do not limit the source.
        for _ in 0..1000 {
            let _ = auth.authorize_read(&HeaderMap::new(), ip(1));
        }
        assert_eq!(status(auth.authorize_read(&bearer(ADMIN), ip(1))), StatusCode::OK);
    }

    #[test]
    fn the_sixth_wrong_bearer_is_429_and_so_is_the_right_token_after_it() {
        let auth = auth();
        let wrong = [
            with(&[("authorization", "Bearer wrong-token-0123456789")]),
            with(&[("authorization", &format!("Basic {ADMIN}"))]),
            with(&[("authorization", "Bearer ")]),
            bearer(&format!("{ADMIN}x")),
            bearer(&ADMIN[..ADMIN.len() - 1]),
        ];
        for headers in &wrong {
            assert_eq!(
                status(auth.authorize_action(headers, ip(1))),
                StatusCode::UNAUTHORIZED,
                "{headers:?}"
            );
        }
        assert_eq!(
            status(auth.authorize_read(&bearer("sixth-guess-0123456789"), ip(1))),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(status(auth.authorize_action(&bearer(ADMIN), ip(1))), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(auth.authorize_read(&bearer(READ), ip(1))), StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(auth.login(ip(1), "eve", ADMIN), Err(ApiError::TooManyRequests)));
        // Without a token it is no attempt: the usual 401, not 429.
        assert_eq!(status(auth.authorize_read(&HeaderMap::new(), ip(1))), StatusCode::UNAUTHORIZED);
        // Another source is not limited.
        assert_eq!(status(auth.authorize_action(&bearer(ADMIN), ip(2))), StatusCode::OK);
    }

    #[test]
    fn failed_logins_and_wrong_bearers_share_one_count() {
        let auth = auth();
        for n in 0..3 {
            assert!(matches!(
                auth.login(ip(1), "eve", &format!("guess-{n}")),
                Err(ApiError::Unauthorized(_))
            ));
        }
        for n in 3..5 {
            assert_eq!(
                status(auth.authorize_read(&bearer(&format!("guess-{n}")), ip(1))),
                StatusCode::UNAUTHORIZED
            );
        }
        assert!(matches!(auth.login(ip(1), "alice", ADMIN), Err(ApiError::TooManyRequests)));
        assert_eq!(status(auth.authorize_read(&bearer(READ), ip(1))), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn a_session_reads_without_a_csrf_token_and_acts_only_with_it() {
        let auth = auth();
        let (headers, csrf) = session_headers(&auth, ip(1));
        assert_eq!(status(auth.authorize_read(&headers, ip(1))), StatusCode::OK);
        assert_eq!(status(auth.authorize_action(&headers, ip(1))), StatusCode::UNAUTHORIZED);
        let mut wrong = headers.clone();
        wrong.insert(CSRF_HEADER, HeaderValue::from_static("0123456789abcdef"));
        assert_eq!(status(auth.authorize_action(&wrong, ip(1))), StatusCode::UNAUTHORIZED);
        let mut right = headers.clone();
        right.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert_eq!(auth.authorize_action(&right, ip(1)).unwrap(), "alice");
        auth.logout(&headers);
        assert_eq!(status(auth.authorize_read(&headers, ip(1))), StatusCode::UNAUTHORIZED);
        assert_eq!(status(auth.authorize_action(&right, ip(1))), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_session_keeps_working_while_its_source_is_limited() {
        let auth = auth();
        let (headers, csrf) = session_headers(&auth, ip(1));
        for n in 0..5 {
            let _ = auth.authorize_read(&bearer(&format!("guess-{n}")), ip(1));
        }
        assert_eq!(status(auth.authorize_read(&bearer(ADMIN), ip(1))), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(auth.authorize_read(&headers, ip(1))), StatusCode::OK);
        let mut acting = headers.clone();
        acting.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert_eq!(auth.authorize_action(&acting, ip(1)).unwrap(), "alice");
    }

    #[test]
    fn an_empty_token_never_logs_in_or_reads() {
        for auth in [Auth::new(None, None, false), Auth::new(Some("".into()), Some("".into()), false), auth()]
        {
            assert!(auth.login(ip(1), "eve", "").is_err());
            assert!(auth.login(ip(1), "eve", "   ").is_err());
            assert_eq!(status(auth.authorize_read(&bearer(""), ip(1))), StatusCode::UNAUTHORIZED);
        }
        let off = Auth::new(None, Some(READ.into()), false);
        let refused = off.authorize_action(&HeaderMap::new(), ip(1)).unwrap_err();
        assert!(refused.to_string().contains("no admin_token"), "{refused}");
        assert!(off.login(ip(2), "eve", READ).is_err(), "the read token opened a session");
    }

    #[test]
    fn the_session_cookie_is_strict_http_only_and_secure_when_asked() {
        let plain = auth().login(ip(1), "alice", ADMIN).unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict") && !plain.contains("Secure"));
        let secure = Auth::new(Some(ADMIN.into()), None, true).login(ip(1), "alice", ADMIN).unwrap();
        assert!(secure.ends_with("; Secure"), "{secure}");
        assert!(!format!("{:?}", auth()).contains(ADMIN));
    }
}
