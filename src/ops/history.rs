//! `history`: an environment's deploy records, newest first, as its inventory in the cluster
//! holds them (`deploy.history` of them). Read-only: nothing is written, not even the sandbox's
//! state.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::kube::inventory::DeployRecord;
use crate::ops::session::Session;

/// The version of `history -o json`'s shape; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 2;

/// What `gitship history ENV` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    /// The inventory exists: gitship deployed this environment at least once.
    pub deployed: bool,
    /// The deploy records, newest first (at most the limit asked for).
    pub records: Vec<DeployRecord>,
}

/// Read the environment's last `limit` deploy records from its cluster.
pub async fn history(session: &Session, limit: usize) -> Result<HistoryReport> {
    let connection = session.connect_announced().await?;
    let (deployed, records) = match session.inventory(&connection).await? {
        Some(inventory) => (true, inventory.history.into_iter().take(limit).collect()),
        None => (false, Vec::new()),
    };
    Ok(HistoryReport {
        format_version: FORMAT_VERSION,
        environment: session.config.name.clone(),
        deployed,
        records,
    })
}
