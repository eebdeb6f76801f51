//! The agent's HTTP server. STUB: being written by a helper.

use std::sync::Arc;

use anyhow::Result;

use crate::agent::state::AgentState;

/// Serve until `shutdown` completes.
pub async fn serve(
    _listener: tokio::net::TcpListener,
    _state: Arc<AgentState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    shutdown.await;
    Ok(())
}
