//! `switchback run`: the orchestrator until SIGINT or SIGTERM.

use anyhow::Context;
use axum::Router;
use switchback_core::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::orchestrator::{cancel_on_signal, Orchestrator};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let orchestrator = Orchestrator::open(config).await?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    orchestrator.run(listener, Router::new(), shutdown).await
}
