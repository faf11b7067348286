//! The ops dashboard at `/`: rendered on the server from the same answers as
//! `/api/status`, `/api/events` and `/api/phones` (so it is useful without JavaScript),
//! then kept live by `assets/dashboard.js`, which follows `/api/stream` (polling
//! `/api/status` only while the stream is down) and polls the APIs that need a session.
//! Without a session the page shows routes, services and convergence counts only: events
//! and the stale-phone list (phone names, MACs) wait for a login, and the script does not
//! ask for them. Its assets are compiled in and served by exact name; nothing from the
//! URL touches the file system.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use switchback_core::{EventKind, Role, Route, ServiceId, ServiceKind};

use crate::api::{self, EventView, EventsQuery, PhoneView, PhonesQuery};
use crate::auth::SessionView;
use crate::live::Live;
use crate::status::{RouteStatus, ServiceStatus, Status};
use crate::AppState;

/// The page may only load its own script, styles and data: no inline script, no CDN.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// As many events as the page polls for (`/api/events?limit=20` in dashboard.js).
const EVENTS_SHOWN: u32 = 20;
/// As many stale phones as the page polls for (`/api/phones?stale=true&limit=50`).
const STALE_SHOWN: usize = 50;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Page {
    session: Option<SessionView>,
    login_message: Option<&'static str>,
    demo: bool,
    /// The server's clock as the page is rendered: the script's clock may be off.
    now: String,
    /// `None` when the store did not answer: the page shows a banner and placeholders.
    generation: Option<u64>,
    monitor_blind: bool,
    routes: Vec<RouteCard>,
    sites: Vec<SiteGroup>,
    convergence: Option<Convergence>,
    events: Vec<EventRow>,
    stale: Vec<StaleRow>,
    primary_site: String,
    backup_site: String,
    roles: [&'static str; 2],
    kinds: [&'static str; 3],
}

/// A moment, shown as "3 min ago" with the absolute UTC time beside it.
struct Stamp {
    iso: String,
    abs: String,
    rel: String,
}

impl Stamp {
    fn new(at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Stamp {
            iso: at.to_rfc3339(),
            abs: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            rel: relative(at, now),
        }
    }

    fn maybe(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        at.map_or_else(
            || Stamp { iso: String::new(), abs: String::new(), rel: "never".to_owned() },
            |at| Self::new(at, now),
        )
    }
}

struct RouteCard {
    route: &'static str,
    label: &'static str,
    state: String,
    active_site: String,
    active_role: String,
    since: Stamp,
    reason: String,
    mode: String,
}

/// One site's three services, under a heading with the site's name and role.
struct SiteGroup {
    role: &'static str,
    site: String,
    services: Vec<ServiceRow>,
}

struct ServiceRow {
    role: &'static str,
    kind: &'static str,
    health: &'static str,
    latency: String,
    checked: Stamp,
    reason: String,
    /// Oldest first, so the newest check is at the right.
    recent: Vec<Cell>,
}

struct Cell {
    health: &'static str,
    title: String,
}

struct Convergence {
    on_current: usize,
    total: usize,
    /// `<progress>` needs a positive maximum even with no phones.
    progress_max: usize,
    vendors: Vec<(&'static str, usize, usize)>,
    stale: usize,
    stale_after: String,
}

struct EventRow {
    id: i64,
    at: Stamp,
    label: &'static str,
    tone: &'static str,
    summary: String,
    reason: String,
    /// `by alice`; empty when the event names no person (a blocked scanner's source is
    /// in the summary).
    actor: String,
}

struct StaleRow {
    name: String,
    mac: String,
    phone: String,
    last_seen: Stamp,
    generation: String,
}

pub async fn page(
    State(state): State<AppState>,
    State(live): State<Live>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let snapshot = live.current(&state);
    let status = Some(&snapshot.status);
    let session = state.auth.session(&headers);
    let (events, stale) = if session.is_some() {
        let events = EventsQuery { before: None, limit: Some(EVENTS_SHOWN) };
        let stale =
            PhonesQuery { stale: Some(true), generation: None, offset: None, limit: Some(STALE_SHOWN) };
        (
            api::events_page(&state, events).await.map(|p| p.events).unwrap_or_default(),
            api::phones_page(&state, stale).await.map(|p| p.phones).unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let page = Page {
        session,
        login_message: login_message(query.as_deref().unwrap_or_default()),
        demo: state.demo,
        now: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        generation: status.map(|s| s.generation),
        monitor_blind: status.is_some_and(|s| s.monitor_blind),
        routes: route_cards(status, now),
        sites: site_groups(&state, status, now),
        convergence: status.map(convergence),
        events: events.iter().map(|e| event_row(e, now)).collect(),
        stale: stale.iter().map(|p| stale_row(p, now)).collect(),
        primary_site: state.site_name(Role::Primary).to_owned(),
        backup_site: state.site_name(Role::Backup).to_owned(),
        roles: Role::ALL.map(Role::as_str),
        kinds: ServiceKind::ALL.map(ServiceKind::as_str),
    };
    match page.render() {
        Ok(html) => with_page_headers(Html(html).into_response()),
        Err(err) => {
            tracing::error!(error = %err, "dashboard render failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the dashboard could not be rendered\n").into_response()
        }
    }
}

/// The page carries the session's CSRF token: never cached, never framed.
fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `/assets/{file}`: only the names below exist.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "dashboard.js" => (include_str!("../assets/dashboard.js"), "text/javascript; charset=utf-8"),
        "dashboard.css" => (include_str!("../assets/dashboard.css"), "text/css; charset=utf-8"),
        "favicon.svg" => (include_str!("../assets/favicon.svg"), "image/svg+xml"),
        _ => return crate::prov::not_found().await,
    };
    let headers = [
        (header::CONTENT_TYPE, content_type),
        // Revalidated on every load, so an upgrade never leaves an old script behind.
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, body).into_response()
}

fn login_message(query: &str) -> Option<&'static str> {
    query.split('&').find_map(|pair| match pair {
        "login=failed" => Some("Wrong admin token."),
        "login=limited" => Some("Too many login attempts from here; wait a minute and try again."),
        _ => None,
    })
}

/// Mirrors `relative()` in dashboard.js.
fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..5 => "just now".to_owned(),
        5..90 => format!("{seconds} s ago"),
        90..5400 => format!("{} min ago", seconds / 60),
        5400..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

fn route_cards(status: Option<&Status>, now: DateTime<Utc>) -> Vec<RouteCard> {
    Route::ALL
        .into_iter()
        .map(|route| {
            let found: Option<&RouteStatus> = status.map(|s| match route {
                Route::Sip => &s.routes.sip,
                Route::Stun => &s.routes.stun,
            });
            let label = match route {
                Route::Sip => "where phones register: softswitch + database",
                Route::Stun => "the phones' NAT traversal server",
            };
            match found {
                Some(r) => RouteCard {
                    route: route.as_str(),
                    label,
                    state: r.state.to_owned(),
                    active_site: r.active_site.clone(),
                    active_role: r.active_role.to_owned(),
                    since: Stamp::new(r.since, now),
                    reason: r.reason.clone(),
                    mode: r.mode.to_owned(),
                },
                None => RouteCard {
                    route: route.as_str(),
                    label,
                    state: "unknown".to_owned(),
                    active_site: "—".to_owned(),
                    active_role: String::new(),
                    since: Stamp::maybe(None, now),
                    reason: String::new(),
                    mode: "unknown".to_owned(),
                },
            }
        })
        .collect()
}

fn site_groups(state: &AppState, status: Option<&Status>, now: DateTime<Utc>) -> Vec<SiteGroup> {
    Role::ALL
        .into_iter()
        .map(|role| SiteGroup {
            role: role.as_str(),
            site: state.site_name(role).to_owned(),
            services: ServiceKind::ALL
                .into_iter()
                .map(|kind| service_row(ServiceId::new(role, kind), status, now))
                .collect(),
        })
        .collect()
}

fn service_row(id: ServiceId, status: Option<&Status>, now: DateTime<Utc>) -> ServiceRow {
    let found: Option<&ServiceStatus> = status
        .and_then(|s| s.services.iter().find(|x| x.role == id.role.as_str() && x.kind == id.kind.as_str()));
    ServiceRow {
        role: id.role.as_str(),
        kind: id.kind.as_str(),
        health: health_word(found.and_then(|s| s.healthy)),
        latency: latency(found.and_then(|s| s.latency_ms)),
        checked: Stamp::maybe(found.and_then(|s| s.checked_at), now),
        reason: found.and_then(|s| s.reason.clone()).unwrap_or_default(),
        recent: found
            .map(|s| {
                s.recent
                    .iter()
                    .rev()
                    .map(|c| cell(c.healthy, c.checked_at, c.latency_ms, &c.reason))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn health_word(healthy: Option<bool>) -> &'static str {
    match healthy {
        Some(true) => "up",
        Some(false) => "down",
        None => "unknown",
    }
}

fn latency(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "—".to_owned())
}

/// Mirrors `cellTitle()` in dashboard.js.
fn cell(healthy: bool, at: DateTime<Utc>, latency_ms: Option<u64>, reason: &Option<String>) -> Cell {
    let mut title = format!("{} {}", at.format("%H:%M:%S UTC"), health_word(Some(healthy)));
    if let Some(ms) = latency_ms {
        title.push_str(&format!(", {ms} ms"));
    }
    if let Some(reason) = reason {
        title.push_str(&format!(": {reason}"));
    }
    Cell { health: health_word(Some(healthy)), title }
}

fn convergence(status: &Status) -> Convergence {
    let phones = &status.phones;
    let vendors = switchback_provisioning::Vendor::ALL
        .into_iter()
        .map(|v| {
            let count = phones.by_vendor.get(&v);
            (v.as_str(), count.map_or(0, |c| c.on_current_generation), count.map_or(0, |c| c.total))
        })
        .collect();
    Convergence {
        on_current: phones.on_current_generation,
        total: phones.total,
        progress_max: phones.total.max(1),
        vendors,
        stale: phones.stale,
        stale_after: duration_words(phones.stale_after_seconds),
    }
}

/// Mirrors `durationWords()` in dashboard.js.
fn duration_words(seconds: u64) -> String {
    if seconds >= 120 && seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

/// Mirrors `renderEvents()` in dashboard.js; the wording comes from the API's view.
fn event_row(e: &EventView, now: DateTime<Utc>) -> EventRow {
    let scan = e.kind == EventKind::ProvisioningScan;
    EventRow {
        id: e.id,
        at: Stamp::new(e.at, now),
        label: e.label,
        tone: e.tone.as_str(),
        summary: e.summary.clone(),
        reason: e.reason.clone(),
        // A blocked scanner's source is in the summary; it is nobody to name.
        actor: if scan { String::new() } else { format!("by {}", e.actor) },
    }
}

fn stale_row(p: &PhoneView, now: DateTime<Utc>) -> StaleRow {
    StaleRow {
        name: p.display_name.clone(),
        mac: p.mac.to_string(),
        phone: format!("{} {}", p.vendor.as_str(), p.model),
        last_seen: Stamp::maybe(p.last_seen, now),
        generation: p.last_generation.map_or_else(|| "—".to_owned(), |g| g.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use switchback_core::{Event, RouteState, SiteNames};

    #[test]
    fn relative_times_read_like_the_script_writes_them() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z").unwrap().with_timezone(&Utc);
        let ago = |s: i64| relative(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(-30), "just now");
        assert_eq!(ago(4), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(600), "10 min ago");
        assert_eq!(ago(3 * 3600), "3 h ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
    }

    fn page(session: Option<SessionView>) -> Page {
        let now = Utc::now();
        Page {
            session,
            login_message: login_message("login=failed"),
            demo: true,
            now: now.to_rfc3339(),
            generation: None,
            monitor_blind: false,
            routes: route_cards(None, now),
            sites: Vec::new(),
            convergence: None,
            events: Vec::new(),
            stale: vec![StaleRow {
                name: "Lobby & Co <main>".to_owned(),
                mac: "001565000001".to_owned(),
                phone: "yealink T46S".to_owned(),
                last_seen: Stamp::maybe(None, now),
                generation: "—".to_owned(),
            }],
            primary_site: "chicago".to_owned(),
            backup_site: "virginia".to_owned(),
            roles: Role::ALL.map(Role::as_str),
            kinds: ServiceKind::ALL.map(ServiceKind::as_str),
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows_and_runs_no_inline_script() {
        let name = "<script>alert(1)</script>".to_owned();
        let html = page(Some(SessionView { name, csrf: "c5rf".to_owned() })).render().unwrap();
        assert!(
            html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
            "{html}"
        );
        assert!(
            html.contains("Lobby &#38; Co &#60;main&#62;") || html.contains("Lobby &amp; Co &lt;main&gt;")
        );
        // The one script is the external file; initial state is in the markup.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="/assets/dashboard.js" defer></script>"#));
        assert!(html.contains(r#"<meta name="csrf-token" content="c5rf">"#));
        assert!(html.contains(r#"data-testid="action-sip-failback""#));
        assert!(html.contains(r#"data-testid="logout""#));
        assert!(html.contains(r#"data-testid="demo-primary-softswitch-break""#));
        assert!(html.contains(r#"data-testid="store-unavailable""#));
    }

    #[test]
    fn logged_out_the_page_has_a_login_form_and_no_csrf_token() {
        let html = page(None).render().unwrap();
        assert!(html.contains(r#"data-testid="login-form""#));
        assert!(html.contains("Wrong admin token."));
        assert!(!html.contains("csrf-token"));
        assert!(!html.contains("data-action="));
    }

    #[test]
    fn logged_out_the_page_shows_no_phones_and_no_events_and_tells_the_script() {
        let html = page(None).render().unwrap();
        assert!(html.contains(r#"data-session="false""#));
        assert!(!html.contains("Lobby"), "a phone name before login");
        assert!(!html.contains("001565000001"), "a MAC before login");
        assert!(!html.contains(r#"data-testid="stale-phones""#));
        assert!(!html.contains(r#"data-testid="events""#));
        assert!(html.contains(r#"data-testid="events-login""#));
        assert!(html.contains("Log in to see phones and events."));
        // The counts stay: they name no phone.
        assert!(html.contains(r#"data-testid="convergence-stale""#));
        assert!(html.contains(r#"data-testid="route-sip-state""#));

        let html = page(Some(SessionView { name: "alice".into(), csrf: "c5rf".into() })).render().unwrap();
        assert!(html.contains(r#"data-session="true""#));
        assert!(html.contains(r#"data-testid="events""#) && html.contains(r#"data-testid="stale-phones""#));
        assert!(!html.contains(r#"data-testid="events-login""#));
    }

    #[test]
    fn a_blocked_scan_reads_as_a_warning_about_its_source() {
        let now = Utc::now();
        let names = SiteNames::new("chicago", "virginia");
        let scan = Event::note(
            now,
            EventKind::ProvisioningScan,
            "2001:db8:1:2::/64",
            "20 bad phone-file requests within 10m; blocked for 1h",
        );
        let row = event_row(&EventView::new(9, scan, &names), now);
        assert_eq!((row.label, row.tone), ("source blocked for scanning", "warn"));
        assert_eq!(row.summary, "2001:db8:1:2::/64 blocked from phone files");
        assert_eq!(row.actor, "");
    }

    #[test]
    fn an_operator_holding_a_route_reads_as_what_they_did_without_a_no_change_arrow() {
        let now = Utc::now();
        let names = SiteNames::new("chicago", "virginia");
        let mut pause = Event::note(now, EventKind::Operator, "alice", "maintenance window");
        pause.route = Some(Route::Stun);
        (pause.from, pause.to, pause.active) =
            (Some(RouteState::FailedOver), Some(RouteState::FailedOver), Some(Role::Backup));
        let row = event_row(&EventView::new(3, pause, &names), now);
        assert_eq!((row.label, row.tone), ("operator action", "operator"));
        assert_eq!(row.summary, "stun · phones on virginia");
        assert_eq!(row.actor, "by alice");
    }

    #[tokio::test]
    async fn assets_are_served_by_exact_name_only() {
        for name in ["dashboard.js", "dashboard.css", "favicon.svg"] {
            let response = asset(Path(name.to_owned())).await;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert!(response.headers().contains_key(header::CONTENT_TYPE));
        }
        for name in ["../Cargo.toml", "..%2Flib.rs", "dashboard.js.map", "Dashboard.js", "", "lib.rs"] {
            assert_eq!(asset(Path(name.to_owned())).await.status(), StatusCode::NOT_FOUND, "{name}");
        }
    }

    #[test]
    fn only_known_login_outcomes_show_a_message() {
        assert_eq!(login_message("login=failed"), Some("Wrong admin token."));
        assert!(login_message("x=1&login=limited").is_some());
        assert_eq!(login_message("login=<script>"), None);
        assert_eq!(login_message(""), None);
    }
}
