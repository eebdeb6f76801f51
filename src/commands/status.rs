//! `gitship status ENV`: the last deploys, the deploy lock and the agent, as the cluster shows
//! them ([`crate::ops::status`]). Exit 0, also before the first deploy.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::session::SessionTarget;
use crate::settings::StatusSettings;

pub async fn run(
    ctx: &Context,
    settings: StatusSettings,
    wait: Option<(String, std::time::Duration)>,
) -> Result<Outcome> {
    let cluster = SessionTarget {
        env: settings.env,
        sandbox: settings.sandbox,
        terraform_outputs: None,
    };
    let session = Session::open(&ctx.global.workspace, &ctx.printer, &cluster).await?;
    if let Some((revision, timeout)) = wait {
        let target = crate::ops::agent_control::ReadyTarget {
            sha: session.resolve_revision(&revision)?,
            timeout,
        };
        let status = crate::ops::agent_control::wait_ready(&session, &target).await?;
        ctx.printer.status(&format!(
            "`{}` is ready: the agent runs {}, synced",
            session.config.name,
            status
                .revision
                .as_ref()
                .map_or("?", |r| crate::git::short_sha(&r.sha))
        ));
    }
    let report = crate::ops::status::status(&session).await?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
