use switchback_provisioning::RenderError;
use switchback_store::StoreError;

/// Why the orchestration could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot render the phone files: {0}")]
    Render(#[from] RenderError),
    #[error("the renderer crashed: {0}")]
    Renderer(#[from] tokio::task::JoinError),
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}
