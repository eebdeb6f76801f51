//! `gitship agent manifests ENV --image REF`: print what runs the agent in the cluster
//! ([`crate::agent::manifests`]) as multi-document YAML on stdout.

use anyhow::Result;

use crate::agent::manifests::ManifestsRequest;
use crate::commands::Context;
use crate::exit::Outcome;

pub fn run(ctx: &Context, settings: ManifestsRequest) -> Result<Outcome> {
    let manifests =
        crate::agent::manifests::agent_manifests(ctx.global.workspace.repo.as_deref(), &settings)?;
    ctx.printer.data(&manifests.to_yaml())?;
    ctx.printer.status(&format!(
        "agent manifests for environment `{}` in namespace `{}` (the namespace itself is not included)",
        manifests.environment, manifests.namespace
    ));
    Ok(Outcome::Success)
}
