//! Phone files: `/prov/yealink/{mac}.cfg`, `/prov/yealink/y0000000000{xx}.cfg`,
//! `/prov/linksys/spa{mac}.xml`, handed only to the phone they belong to.
//!
//! Every request passes, in order: the `allow` networks (403, not counted), the scan
//! guard's blocks (403), `https_only` (403), a strict parse of the name (404, counted),
//! and the `provisioning.auth` mode. A request for an unknown MAC is answered exactly
//! like one for a known MAC without valid credentials, so answers do not tell a scanner
//! which MACs exist. Only requests that passed `auth` are recorded as a phone's fetch.
//! Nothing from the URL is ever used as a path; every answer comes from one generation.

mod access;
pub mod digest;
pub mod guard;

use std::net::SocketAddr;
use std::time::Instant;

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use switchback_core::config::ProvisioningAuth;
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::{FileName, Generation, Mac};

pub use access::Access;

use crate::listen::Connection;
use crate::tls::ClientIdentity;
use crate::AppState;
use digest::{Credentials, Verdict};
use guard::Source;

/// The request is taken whole and read in place: the extractors for path, headers, URI
/// and method each copy what they extract, on the path every phone takes.
pub async fn phone_file(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (vendor, file) =
        request.uri().path().strip_prefix("/prov/").and_then(|rest| rest.split_once('/')).unwrap_or(("", ""));
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    // Requests served by this crate's listeners always carry it; a router driven
    // in-process has none and counts as plain HTTP without a certificate.
    let connection = request.extensions().get::<Connection>();
    let tls = connection.is_some_and(|c| c.tls);
    let client = connection.map_or(&NO_CLIENT, |c| &*c.client);
    let state = &*state;
    let source = Source::of(peer.ip());
    let access = &state.access;
    let name = FileName::parse(vendor, file);
    let vendor_label = name.map_or("unknown", |n| n.vendor().as_str());
    let answer = |status: StatusCode| {
        state.metrics.fetched(vendor_label, status.as_u16());
        plain(status)
    };
    if !access.allows(peer.ip()) {
        return answer(StatusCode::FORBIDDEN);
    }
    if access.guard.is_blocked(source, Instant::now()) {
        return answer(StatusCode::FORBIDDEN);
    }
    if access.https_only() && !tls {
        return answer(StatusCode::FORBIDDEN);
    }
    let Some(name) = name else {
        // Files real phones ask for on every poll that switchback does not serve are
        // not a scan (Yealink's `.boot` files, for one).
        if !housekeeping(vendor, file) {
            access.strike(state, source);
        }
        return answer(StatusCode::NOT_FOUND);
    };
    let generation = state.generations.current();
    let passed = match access.mode() {
        ProvisioningAuth::None => Ok(()),
        ProvisioningAuth::Digest => digest_gate(state, &generation, source, name, method, uri, headers),
        ProvisioningAuth::ClientCert => certificate_gate(name, client),
    };
    let generation_file = generation.get(name);
    match (passed, generation_file) {
        (Ok(()), Some(found)) => {
            if let Some(mac) = name.mac() {
                record_fetch(state, &generation, name, mac, peer, headers);
            }
            serve(state, name, found, headers)
        }
        (Ok(()), None) => {
            // Only possible with `none`, or for a phone that proved who it is.
            access.strike(state, source);
            answer(StatusCode::NOT_FOUND)
        }
        (Err(refusal), _) => {
            if refusal.counts() {
                access.strike(state, source);
            }
            let response = match refusal {
                Refusal::Challenge { stale, .. } => access.challenge_response(unix_now(state), stale),
                Refusal::Forbidden => plain(StatusCode::FORBIDDEN),
            };
            state.metrics.fetched(vendor_label, response.status().as_u16());
            response
        }
    }
}

const NO_CLIENT: ClientIdentity = ClientIdentity::None;

/// Why a request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 401 with a Digest challenge; `counts`: a bad request for the scan guard.
    Challenge { stale: bool, counts: bool },
    /// 403: no or the wrong certificate (always a bad request).
    Forbidden,
}

impl Refusal {
    fn counts(self) -> bool {
        match self {
            Refusal::Challenge { counts, .. } => counts,
            Refusal::Forbidden => true,
        }
    }
}

fn digest_gate(
    state: &AppState,
    generation: &Generation,
    source: Source,
    name: FileName,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let now = unix_now(state);
    let challenge = |stale: bool, counts: bool| Refusal::Challenge { stale, counts };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        // The first request of every fetch. Counted, known MAC or not (so that even the
        // blocks say nothing about which MACs exist), unless this source authenticated
        // recently: a phone's challenge costs nothing once it has proved itself, and
        // its next authentication clears the count anyway.
        return Err(challenge(false, !state.access.guard.is_trusted(source, Instant::now())));
    };
    let credentials = match value.to_str().map_err(|_| "not text").and_then(Credentials::parse) {
        Ok(credentials) => credentials,
        Err(why) => {
            tracing::debug!(why, "phone-file credentials refused");
            return Err(challenge(false, true));
        }
    };
    let claimed = Mac::parse(&credentials.username).ok();
    // A MAC-named file only for that MAC; the common file for any phone.
    let user = match name.mac() {
        Some(mac) => claimed.filter(|c| *c == mac),
        None => claimed,
    };
    let password = user.and_then(|mac| generation.prov_password(mac));
    let target = uri.path_and_query().map_or_else(|| uri.path(), |p| p.as_str());
    match state.access.digest.verify(
        &credentials,
        method.as_str(),
        target,
        password.map(|p| p.expose_secret()),
        now,
    ) {
        Verdict::Authenticated => {
            state.access.guard.trust(source, Instant::now());
            Ok(())
        }
        Verdict::Stale => Err(challenge(true, false)),
        Verdict::Refused(why) => {
            tracing::debug!(why, "phone-file credentials refused");
            Err(challenge(false, true))
        }
    }
}

/// Names a phone asks for that switchback has no file for, and that say nothing about a
/// scan: Yealink's `{mac}.boot` and `y000000000000.boot` (firmware V81 and later ask for
/// them first on every poll), and its per-phone `-local.cfg`, `-contact.xml` and
/// `-calllog.xml` uploads and downloads.
fn housekeeping(vendor: &str, file: &str) -> bool {
    vendor == "yealink"
        && (file.len() <= 32
            && (file.ends_with(".boot")
                || file.ends_with("-local.cfg")
                || file.ends_with("-contact.xml")
                || file.ends_with("-calllog.xml")))
}

fn certificate_gate(name: FileName, client: &ClientIdentity) -> Result<(), Refusal> {
    match (client, name.mac()) {
        (ClientIdentity::Verified { .. }, None) => Ok(()),
        (ClientIdentity::Verified { macs }, Some(mac)) if macs.contains(&mac) => Ok(()),
        _ => Err(Refusal::Forbidden),
    }
}

fn record_fetch(
    state: &AppState,
    generation: &Generation,
    name: FileName,
    mac: Mac,
    peer: SocketAddr,
    headers: &HeaderMap,
) {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    state.fetches.record(PhoneFetch {
        mac,
        vendor: name.vendor(),
        at: state.clock.now(),
        generation: generation.number(),
        source: peer.ip().to_canonical(),
        user_agent: user_agent.chars().filter(|c| !c.is_control()).take(200).collect(),
        count: 1,
    });
}

fn serve(
    state: &AppState,
    name: FileName,
    found: &switchback_provisioning::PhoneFile,
    headers: &HeaderMap,
) -> Response {
    let etag = HeaderValue::from_str(found.etag()).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| found.etag_matches(v));
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if not_modified {
        state.metrics.fetched(name.vendor().as_str(), 304);
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    state.metrics.fetched(name.vendor().as_str(), 200);
    let content_type = HeaderValue::from_static(found.content_type());
    (common, [(header::CONTENT_TYPE, content_type)], found.bytes().clone()).into_response()
}

fn unix_now(state: &AppState) -> u64 {
    u64::try_from(state.clock.now().timestamp()).unwrap_or(0)
}

/// A short plain-text answer: the same body for every refusal of its status.
fn plain(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::UNAUTHORIZED => "unauthorized\n",
        _ => "\n",
    };
    (status, body).into_response()
}

/// A plain 404 for every path nothing else answers.
pub async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND)
}
