//! `/metrics` in Prometheus text format, every name `switchback_…`. Counters and the
//! latency histogram are fed as things happen; gauges are read off the engine state,
//! the current generation and the fetch log at scrape time.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use switchback_core::{CheckResult, Event, EventKind, Role, Route, RouteState, ServiceId, SiteNames};

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    site: String,
    role: String,
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    vendor: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    route: String,
    to: String,
    /// `monitor` or `operator`: never the operator's name, which is free text and would
    /// add a series per person.
    by: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStateLabels {
    route: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteSiteLabels {
    route: String,
    site: String,
    role: String,
}

pub struct Metrics {
    registry: Registry,
    site_names: SiteNames,
    probe_latency: Family<ServiceLabels, Histogram>,
    probe_failures: Family<ServiceLabels, Counter>,
    service_up: Family<ServiceLabels, Gauge>,
    route_state: Family<RouteStateLabels, Gauge>,
    route_active_site: Family<RouteSiteLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    generation: Gauge,
    phones_total: Gauge,
    phones_on_current: Gauge,
    phone_fetches: Family<FetchLabels, Counter>,
    /// The series every phone request bumps, looked up once at start so the request path
    /// neither allocates labels nor hashes them (and the series show 0 from the start).
    common_fetches: Vec<((&'static str, u16), Counter)>,
    fetches_pending: Gauge,
    alerts: Family<AlertLabels, Gauge>,
    connections_open: Gauge,
    connections_refused: Counter,
    dashboard_streams: Gauge,
    provisioning_blocks: Gauge,
    store_up: Gauge,
    leader: Gauge,
    term: Gauge,
}

/// Counts one connection or dashboard stream as open until dropped.
#[derive(Debug)]
pub struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    status: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~8 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

impl Metrics {
    pub fn new(site_names: SiteNames) -> Self {
        let mut registry = Registry::default();
        let probe_latency = Family::<ServiceLabels, Histogram>::new_with_constructor(latency_histogram);
        let mut m = Self {
            site_names,
            probe_latency,
            probe_failures: Family::default(),
            service_up: Family::default(),
            route_state: Family::default(),
            route_active_site: Family::default(),
            transitions: Family::default(),
            generation: Gauge::default(),
            phones_total: Gauge::default(),
            phones_on_current: Gauge::default(),
            phone_fetches: Family::default(),
            common_fetches: Vec::new(),
            fetches_pending: Gauge::default(),
            alerts: Family::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            dashboard_streams: Gauge::default(),
            provisioning_blocks: Gauge::default(),
            store_up: Gauge::default(),
            leader: Gauge::default(),
            term: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "switchback_probe_latency_seconds",
            "Latency of healthy probes",
            m.probe_latency.clone(),
        );
        registry.register(
            "switchback_probe_failures",
            "Failed checks (after retries)",
            m.probe_failures.clone(),
        );
        registry.register("switchback_service_up", "1 when the latest check passed", m.service_up.clone());
        registry.register("switchback_route_state", "1 for the route's current state", m.route_state.clone());
        registry.register(
            "switchback_route_active_site",
            "1 for the site the route points phones at",
            m.route_active_site.clone(),
        );
        registry.register(
            "switchback_transitions",
            "Route transitions and operator actions",
            m.transitions.clone(),
        );
        registry.register(
            "switchback_generation",
            "The generation of phone files being served",
            m.generation.clone(),
        );
        registry.register("switchback_phones_total", "Phones in the inventory", m.phones_total.clone());
        registry.register(
            "switchback_phones_on_current_generation",
            "Phones whose latest fetch was of the current generation",
            m.phones_on_current.clone(),
        );
        registry.register("switchback_phone_fetches", "Phone file requests", m.phone_fetches.clone());
        for vendor in ["yealink", "linksys", "unknown"] {
            for status in [200, 304, 401, 403, 404] {
                let labels = FetchLabels { vendor: vendor.to_owned(), status: status.to_string() };
                let counter = m.phone_fetches.get_or_create(&labels).clone();
                m.common_fetches.push(((vendor, status), counter));
            }
        }
        registry.register(
            "switchback_phone_fetch_records_pending",
            "Phones whose latest fetches are not yet in the store (flushed every 2 s)",
            m.fetches_pending.clone(),
        );
        registry.register(
            "switchback_alerts",
            "Webhook deliveries in the outbox, by status",
            m.alerts.clone(),
        );
        registry.register(
            "switchback_http_connections_open",
            "Client connections open on both listeners",
            m.connections_open.clone(),
        );
        registry.register(
            "switchback_http_connections_refused",
            "Connections closed at once: server.max_connections were open, or their source held 256",
            m.connections_refused.clone(),
        );
        registry.register(
            "switchback_dashboard_streams",
            "Dashboard event streams (/api/stream) open",
            m.dashboard_streams.clone(),
        );
        registry.register(
            "switchback_provisioning_blocks",
            "Source addresses blocked from phone files for scanning",
            m.provisioning_blocks.clone(),
        );
        registry.register(
            "switchback_store_up",
            "1 when the store takes writes; 0 while it refuses them and nothing is decided",
            m.store_up.clone(),
        );
        registry.register(
            "switchback_cluster_leader",
            "1 while this instance decides and alerts (always, for a single instance)",
            m.leader.clone(),
        );
        registry.register(
            "switchback_cluster_term",
            "The group's current leadership term as this instance last read it (0 alone)",
            m.term.clone(),
        );
        Self { registry, ..m }
    }

    pub fn connection_opened(&self) -> Open {
        self.connections_open.inc();
        Open(self.connections_open.clone())
    }

    pub fn dashboard_stream_opened(&self) -> Open {
        self.dashboard_streams.inc();
        Open(self.dashboard_streams.clone())
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    fn labels(&self, service: ServiceId) -> ServiceLabels {
        ServiceLabels {
            site: self.site(service.role).to_owned(),
            role: service.role.to_string(),
            service: service.kind.to_string(),
        }
    }

    fn site(&self, role: Role) -> &str {
        self.site_names.get(role)
    }

    pub fn observe_checks(&self, results: &[CheckResult]) {
        for result in results {
            let labels = self.labels(result.service);
            match (result.healthy, result.latency) {
                (true, Some(latency)) => {
                    self.probe_latency.get_or_create(&labels).observe(latency.as_secs_f64())
                }
                (false, _) => {
                    self.probe_failures.get_or_create(&labels).inc();
                }
                _ => {}
            }
        }
    }

    pub fn observe_events(&self, events: &[Event]) {
        for event in events {
            if !matches!(event.kind, EventKind::Transition | EventKind::Operator) {
                continue;
            }
            let (Some(route), Some(to)) = (event.route, event.to) else { continue };
            let by = if event.kind == EventKind::Operator { "operator" } else { "monitor" };
            let labels = TransitionLabels { route: route.to_string(), to: to.to_string(), by };
            self.transitions.get_or_create(&labels).inc();
        }
    }

    pub fn fetched(&self, vendor: &str, status: u16) {
        if let Some((_, counter)) = self.common_fetches.iter().find(|(key, _)| *key == (vendor, status)) {
            counter.inc();
            return;
        }
        let labels = FetchLabels { vendor: vendor.to_owned(), status: status.to_string() };
        self.phone_fetches.get_or_create(&labels).inc();
    }
}

#[utoipa::path(get, path = "/metrics", tag = "open",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let engine = state.engine.borrow().clone();
    for service in ServiceId::all() {
        let up = engine.service(service).healthy == Some(true);
        m.service_up.get_or_create(&m.labels(service)).set(i64::from(up));
    }
    for route in Route::ALL {
        let status = engine.route(route);
        for s in [RouteState::Primary, RouteState::Failing, RouteState::FailedOver, RouteState::Recovering] {
            let labels = RouteStateLabels { route: route.to_string(), state: s.to_string() };
            m.route_state.get_or_create(&labels).set(i64::from(status.state == s));
        }
        for role in Role::ALL {
            let labels = RouteSiteLabels {
                route: route.to_string(),
                site: m.site(role).to_owned(),
                role: role.to_string(),
            };
            m.route_active_site.get_or_create(&labels).set(i64::from(status.active == role));
        }
    }
    let generation = state.generations.current();
    m.generation.set(i64::try_from(generation.number()).unwrap_or(i64::MAX));
    m.phones_total.set(i64::try_from(generation.phone_count()).unwrap_or(i64::MAX));
    let on_current = state.fetches.on_generation(generation.number());
    m.phones_on_current.set(i64::try_from(on_current).unwrap_or(i64::MAX));
    m.fetches_pending.set(i64::try_from(state.fetches.pending()).unwrap_or(i64::MAX));
    m.store_up.set(i64::from(state.store_health.fault().is_none()));
    let (leads, term) = match &state.group {
        Some(group) => {
            let view = group.borrow();
            (view.leads, view.term)
        }
        None => (true, 0),
    };
    m.leader.set(i64::from(leads));
    m.term.set(term);
    m.provisioning_blocks.set(i64::try_from(state.access.blocks_in_force()).unwrap_or(i64::MAX));

    match state.store_health.read(state.store.alert_counts()).await {
        Ok(counts) => {
            for (status, n) in
                [("pending", counts.pending), ("delivered", counts.delivered), ("failed", counts.failed)]
            {
                let labels = AlertLabels { status: status.to_owned() };
                m.alerts.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        Err(err) => tracing::warn!(error = %err, "alert counts unavailable for metrics"),
    }
    let mut body = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut body, &m.registry) {
        tracing::error!(error = %err, "metrics not encoded");
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}
