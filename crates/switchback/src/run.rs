//! `switchback run`: opens the store, starts the orchestration and serves it on the
//! configured listeners until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use secrecy::ExposeSecret;
use switchback_core::config::redact_url;
use switchback_core::{Clock, Config, Role, SystemClock};
use switchback_monitor::scheduler::ConfigProber;
use switchback_orchestration::Orchestrator;
use switchback_server::tls::{Tls, TlsFiles};
use switchback_server::{Limits, Listeners};
use switchback_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `init`: a first start, which may create the store.
pub async fn run(config: Config, init: bool) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let opened = open(config, init).await?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    serve(opened, listener, Router::new(), shutdown).await
}

/// The orchestration, and the HTTPS listener's certificate when `tls_listen` is set.
#[derive(Debug)]
pub struct Opened {
    pub orchestrator: Orchestrator,
    tls: Option<Arc<Tls>>,
}

/// The orchestration on the config's store and the system clock. Without `init`, the
/// store must exist already.
pub async fn open(config: Config, init: bool) -> anyhow::Result<Opened> {
    warn_if_open(&config);
    // A bad certificate stops the start before the store is touched (or created).
    let tls = load_tls(&config)?;
    let config = Arc::new(config);
    let store = if init { open_store(&config).await? } else { open_existing_store(&config).await? };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(Opened { orchestrator: Orchestrator::open(config, store, clock).await?, tls })
}

/// Serves the orchestration's HTTP on `listener` (and `tls_listen` when set) with the
/// `extra` routes, and runs it with the real probes until `shutdown`.
pub async fn serve(
    Opened { orchestrator, tls }: Opened,
    listener: TcpListener,
    extra: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = orchestrator.config.clone();
    let tls_listener = match (&tls, config.server.tls_listen) {
        (Some(tls), Some(addr)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (tls_listen)"))?;
            tracing::info!(tls_listen = %listener.local_addr()?, "https listening");
            Some((listener, tls.clone()))
        }
        _ => None,
    };
    let limits = Limits::new(switchback_server::listen::fit_connections(config.server.max_connections));
    tracing::info!(
        listen = %listener.local_addr()?,
        auth = config.provisioning.auth.as_str(),
        primary = config.site_name(Role::Primary),
        backup = config.site_name(Role::Backup),
        interval = %humantime::format_duration(config.monitor.interval),
        "switchback running"
    );
    let router = switchback_server::router(orchestrator.app_state(), extra, &shutdown);
    let listeners = Listeners { plain: listener, tls: tls_listener };
    let server = tokio::spawn(switchback_server::serve(
        listeners,
        router,
        limits,
        orchestrator.metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(reload_on_hangup(tls, shutdown.clone()));
    let orchestrator = orchestrator.run(Arc::new(ConfigProber::new(config)), shutdown).await;
    let served = server.await.context("server task")?;
    // What phones fetched while the server drained.
    orchestrator.flush().await;
    orchestrator.store.close().await;
    served.context("http server")?;
    tracing::info!("switchback stopped");
    Ok(())
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store.url.expose_secret();
    switchback_store::connect(url).await.map_err(|err| naming_the_store(url, err))
}

/// The config's store, which must exist already: nothing is created in place of a
/// store that went missing.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store.url.expose_secret();
    switchback_store::connect_existing(url).await.map_err(|err| naming_the_store(url, err))
}

/// The store to read, for `report`, `phones list` and `phones export`: changed in no way.
pub async fn open_store_to_read(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store.url.expose_secret();
    switchback_store::connect_to_read(url).await.map_err(|err| naming_the_store(url, err))
}

/// A store that could not be opened, named once: most of the store's errors name it
/// already, the others get `cannot open the store URL` in front.
fn naming_the_store(url: &str, err: switchback_store::StoreError) -> anyhow::Error {
    let redacted = redact_url(url);
    if err.to_string().contains(&redacted) {
        anyhow::Error::new(err)
    } else {
        anyhow::Error::new(err).context(format!("cannot open the store {redacted}"))
    }
}

/// The HTTPS listener's files, read now so that a bad one stops the start.
fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<Tls>>> {
    let server = &config.server;
    let (Some(_), Some(cert), Some(key)) = (server.tls_listen, &server.tls_cert, &server.tls_key) else {
        return Ok(None);
    };
    let files =
        TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: config.provisioning.client_ca.clone() };
    Ok(Some(Arc::new(Tls::load(files)?)))
}

/// Without `provisioning.auth`, anyone who can reach `public_url` and guess a MAC gets
/// that phone's SIP password: fine on a closed network, said loudly otherwise.
fn warn_if_open(config: &Config) {
    let loopback = match config.server.public_url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if config.provisioning.auth == switchback_core::config::ProvisioningAuth::None && !loopback {
        tracing::warn!(
            public_url = %config.server.public_url,
            "provisioning.auth is none: anyone who reaches public_url can fetch any phone's file and its SIP \
             password; set auth = \"digest\" or \"client_cert\" unless this network is closed"
        );
    }
}

/// Re-reads the TLS certificate and key on SIGHUP; a bad file keeps the old ones.
async fn reload_on_hangup(tls: Option<Arc<Tls>>, shutdown: CancellationToken) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP");
            return;
        }
    };
    loop {
        tokio::select! {
            received = hangups.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        match &tls {
            None => tracing::info!("SIGHUP: no tls_listen, nothing to reload"),
            Some(tls) => match tls.reload() {
                Ok(()) => tracing::info!("tls certificate reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "tls certificate not reloaded; the old one stays in use")
                }
            },
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
