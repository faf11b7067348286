//! `switchback demo`: a self-contained lab on loopback. Simulated primary and backup
//! softswitches and STUN servers, SQLite files as the two sites' databases, an embedded
//! store, sample phones that poll like real ones, short timers, and `/demo/…` endpoints
//! to break and mend each service.

mod inbox;
mod phones;
mod scan;
mod sim;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use switchback_core::{Config, Role, ServiceKind};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::run::{cancel_on_signal, open_store};
use sim::{Sim, SimDatabase};

/// A demo service that can be broken and mended.
#[derive(Debug, Clone)]
enum Breakable {
    Udp(Sim),
    Database(SimDatabase),
}

impl Breakable {
    fn set_broken(&self, broken: bool) -> anyhow::Result<()> {
        match self {
            Breakable::Udp(sim) => {
                sim.set_broken(broken);
                Ok(())
            }
            Breakable::Database(db) => db.set_broken(broken),
        }
    }

    fn is_broken(&self) -> bool {
        match self {
            Breakable::Udp(sim) => sim.is_broken(),
            Breakable::Database(db) => db.is_broken(),
        }
    }
}

/// The lab's services, and the webhook inbox the demo's alerts go to.
#[derive(Debug, Clone)]
struct Lab {
    services: Arc<BTreeMap<(Role, ServiceKind), Breakable>>,
    inbox: inbox::Inbox,
}

/// Each site's services on a loopback address of its own, so that a file that moved
/// shows another address, not only another port. Where 127.0.0.2 and .3 cannot be bound
/// (not every system routes all of 127/8 to loopback), both sites share 127.0.0.1.
async fn site_addresses() -> [IpAddr; 2] {
    let own = [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))];
    for ip in own {
        if tokio::net::UdpSocket::bind((ip, 0)).await.is_err() {
            tracing::warn!(%ip, "cannot bind this loopback address; both demo sites use 127.0.0.1");
            return [IpAddr::V4(Ipv4Addr::LOCALHOST); 2];
        }
    }
    own
}

/// The demo's admin token, printed in its banner: a lab, not a secret.
pub const DEMO_TOKEN: &str = "demo-admin-token";

pub async fn demo(listen: SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "--listen {listen} is reachable from other machines, and the demo's admin token is printed \
             on the screen and its /demo endpoints need no token; use a 127.x address, or add \
             --allow-remote on a lab network"
        );
    }
    if allow_remote {
        tracing::warn!(listen = %listen, "the demo is reachable from other machines (--allow-remote)");
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; pick another address with --listen"))?;
    let listen = listener.local_addr()?;
    let dir =
        tempfile::Builder::new().prefix("switchback-demo-").tempdir().context("cannot make a temp dir")?;
    let shutdown = CancellationToken::new();

    let mut lab = BTreeMap::new();
    let ips = site_addresses().await;
    for (role, ip) in Role::ALL.into_iter().zip(ips) {
        let softswitch = sim::softswitch(ip, shutdown.clone()).await?;
        let stun = sim::stun(ip, shutdown.clone()).await?;
        let database = SimDatabase::create(dir.path().join(format!("{role}-voip.db")))?;
        lab.insert((role, ServiceKind::Softswitch), Breakable::Udp(softswitch));
        lab.insert((role, ServiceKind::Stun), Breakable::Udp(stun));
        lab.insert((role, ServiceKind::Database), Breakable::Database(database));
    }
    let config = Config::parse(&demo_config(listen, dir.path(), &lab)).context("demo config")?;

    let phones = phones::samples();
    let store = open_store(&config).await?;
    store.import_phones(&phones).await.context("cannot load the sample phones")?;
    store.close().await;
    let mut opened = crate::run::open(config, false).await?;
    opened.orchestrator.demo = true;
    let lab = Lab { services: Arc::new(lab), inbox: inbox::Inbox::default() };
    let routes = Router::new()
        .route("/demo", get(show))
        .route("/demo/{role}/{service}/{action}", post(act))
        .route("/demo/inbox", post(inbox::receive).with_state(lab.inbox.clone()))
        .with_state(lab)
        .route("/demo/scan", post(scan::start).with_state(scan::Scanner::new(listen)));

    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tokio::spawn(phones::poll_forever(format!("http://{listen}"), phones, shutdown.clone()));
    print_banner(listen, dir.path(), ips);
    let outcome = crate::run::serve(opened, listener, routes, shutdown).await;
    drop(dir);
    outcome
}

fn demo_config(
    listen: SocketAddr,
    dir: &std::path::Path,
    lab: &BTreeMap<(Role, ServiceKind), Breakable>,
) -> String {
    let addr = |role, kind| match lab.get(&(role, kind)) {
        Some(Breakable::Udp(sim)) => sim.addr,
        _ => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    };
    let db = |role| match lab.get(&(role, ServiceKind::Database)) {
        Some(Breakable::Database(db)) => db.url(),
        _ => String::new(),
    };
    let site = |name: &str, role: Role| {
        format!(
            "[[sites]]\nname = \"{name}\"\nrole = \"{role}\"\n\
             softswitch = {{ host = \"{}\", port = {}, transport = \"udp\" }}\n\
             database = {{ url = \"{}\" }}\nstun = {{ host = \"{}\", port = {} }}\n",
            addr(role, ServiceKind::Softswitch).ip(),
            addr(role, ServiceKind::Softswitch).port(),
            db(role),
            addr(role, ServiceKind::Stun).ip(),
            addr(role, ServiceKind::Stun).port(),
        )
    };
    format!(
        "[server]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}\"\nadmin_token = \"{DEMO_TOKEN}\"\n\n\
         [store]\nurl = \"sqlite://{}/switchback.db\"\n\n\
         [monitor]\ninterval = \"5s\"\ntimeout = \"300ms\"\nretries = 1\nrecheck_interval = \"1s\"\n\
         failover_after = \"3s\"\nfailback_after = \"15s\"\n\n\
         [provisioning]\nauth = \"digest\"\nscan_limit = {}\nblock_for = \"5m\"\n\n\
         [[alerts]]\nname = \"demo-inbox\"\nurl = \"http://{listen}/demo/inbox\"\nformat = \"generic\"\n\n{}\n{}",
        dir.display(),
        scan::SCAN_LIMIT,
        site("chicago", Role::Primary),
        site("virginia", Role::Backup),
    )
}

fn print_banner(listen: SocketAddr, dir: &std::path::Path, [primary, backup]: [IpAddr; 2]) {
    let base = format!("http://{listen}");
    println!(
        "\nswitchback demo is running (Ctrl-C to stop)\n\n\
         \x20 dashboard     {base}/\n\
         \x20 status JSON   {base}/api/status\n\
         \x20 Yealink file  curl --digest -u 001565000001:demo-prov-101 {base}/prov/yealink/001565000001.cfg\n\
         \x20 Linksys file  curl --digest -u 000e08000001:demo-prov-201 {base}/prov/linksys/spa000e08000001.xml\n\
         \x20               (the sip and stun addresses in them: chicago on {primary}, virginia on {backup})\n\
         \x20 alerts        {base}/demo  (\"inbox\": what the demo's webhook received)\n\
         \x20 lab state     {base}/demo\n\
         \x20 break it      curl -X POST {base}/demo/primary/softswitch/break\n\
         \x20 mend it       curl -X POST {base}/demo/primary/softswitch/mend\n\
         \x20               (roles: primary, backup; services: softswitch, database, stun)\n\
         \x20 a scan        curl -X POST {base}/demo/scan   (then see {base}/api/provisioning/blocks)\n\
         \x20 admin token   {DEMO_TOKEN}\n\
         \x20 files in      {}\n",
        dir.display()
    );
}

async fn show(State(lab): State<Lab>) -> Json<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for role in Role::ALL {
        let services: serde_json::Map<_, _> = ServiceKind::ALL
            .into_iter()
            .filter_map(|kind| {
                lab.services.get(&(role, kind)).map(|b| (kind.to_string(), json!(state_word(b))))
            })
            .collect();
        out.insert(role.to_string(), services.into());
    }
    out.insert("inbox".to_owned(), json!(lab.inbox.newest_first()));
    Json(out.into())
}

fn state_word(b: &Breakable) -> &'static str {
    if b.is_broken() {
        "broken"
    } else {
        "up"
    }
}

async fn act(
    State(lab): State<Lab>,
    Path((role, service, action)): Path<(String, String, String)>,
) -> Response {
    let (Ok(role), Ok(kind)) = (role.parse::<Role>(), service.parse::<ServiceKind>()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such demo service; roles: primary, backup; services: softswitch, database, stun",
        );
    };
    let broken = match action.as_str() {
        "break" => true,
        "mend" => false,
        _ => return error(StatusCode::NOT_FOUND, "actions: break, mend"),
    };
    let Some(target) = lab.services.get(&(role, kind)) else {
        return error(StatusCode::NOT_FOUND, "no such demo service");
    };
    if let Err(err) = target.set_broken(broken) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}"));
    }
    tracing::info!(role = %role, service = %kind, action = %action, "demo service changed");
    Json(json!({ "role": role, "service": kind, "state": state_word(target) })).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
