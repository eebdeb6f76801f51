//! `gitship env new NAME --from ENV`: bootstrap a new environment's config from an existing one
//! ([`crate::ops::env_new`]); with `--ephemeral`, record a preview in its cluster instead
//! ([`crate::ops::preview::create`]).

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;

pub fn run(ctx: &Context, name: &str, from: &str, namespace: Option<&str>) -> Result<Outcome> {
    let kubeconfig = ctx.global.workspace.kubeconfig.as_deref();
    let report = crate::ops::env_new::env_new(
        ctx.global.workspace.repo.as_deref(),
        name,
        from,
        namespace,
        |config| {
            crate::ops::block_on(crate::ops::preview::refuse_preview_namespace(
                kubeconfig,
                config,
                &ctx.printer,
            ))
        },
    )?;
    for warning in &report.warnings {
        ctx.printer.warn(warning);
    }
    ctx.printer.status(&format!(
        "created `{}` from `{from}`: {}",
        report.file.display(),
        report.notes.join(", ")
    ));
    ctx.printer.status(&format!(
        "review it (domains, replicas, cluster context), then run `gitship validate {name}`"
    ));
    Ok(Outcome::Success)
}

/// `env new NAME --from ENV --ephemeral`: record (or update) the preview, print its report.
pub async fn ephemeral(
    ctx: &Context,
    name: String,
    from: String,
    settings: crate::settings::EphemeralSettings,
) -> Result<Outcome> {
    let request = crate::ops::preview::EphemeralRequest {
        name,
        base: from,
        ttl: settings.ttl,
        sets: settings.sets,
        kubeconfig: ctx.global.workspace.kubeconfig.clone(),
    };
    let report =
        crate::ops::preview::create(ctx.global.workspace.repo.as_deref(), &request).await?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
