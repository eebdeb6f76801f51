//! `gitship deploy ENV`.
//!
//! The orchestration is: static checks -> (build || terraform plan) -> terraform apply -> render
//! -> the Kubernetes stage ([`crate::kube::deploy_objects`]: lock, apply in stages, wait, prune,
//! record, unlock). This file holds the command-layer glue of the Kubernetes stage: which cluster
//! (kubeconfig/context or the `--sandbox`), the deploy options from the environment config and
//! the flags, and how the report is printed.

use std::path::Path;

use anyhow::Result;

use crate::build::{self, BuildOptions};
use crate::commands::Context;
use crate::commands::render::{load_terraform_outputs, render_with};
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::kube::deploy::{DeployOptions, DeployReport, Environment, ObjectAction};
use crate::kube::lock::LockOptions;
use crate::kube::sandbox::Sandbox;
use crate::kube::{ClientOptions, DesiredObject, KubeError};
use crate::output::Printer;
use crate::render::{RenderInputs, UnknownOutputs};
use crate::repo::{EnvConfig, Repository};
use crate::settings::{DeploySettings, GlobalSettings, OutputFormat};
use crate::terraform;

pub async fn run(ctx: &Context, settings: DeploySettings) -> Result<Outcome> {
    let printer = &ctx.printer;
    if let Some(plan) = &settings.plan {
        return crate::plan::saved::deploy(ctx, &settings, plan).await;
    }
    let sandbox = settings.cluster.sandbox;
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let config = repo
        .load_env(&settings.cluster.env)
        .map_err(UserError::from)?;
    if sandbox {
        printer.status(&format!(
            "sandbox: deploying `{}` to a simulated cluster (state in `{}`); images are not built",
            config.name,
            repo.relative(&crate::kube::sandbox::state_file(&repo.root, &config.name))
                .display()
        ));
    }

    // 1. Static checks: nothing has changed yet when one fails.
    let sha = crate::git::head_sha(&repo.root).ok();
    let requests = if sandbox {
        Vec::new()
    } else {
        build::requests_for(&repo, &config, settings.build.allow_dirty)
            .map_err(crate::commands::build::request_error)?
    };
    let terraform_settings = match settings.cluster.terraform_outputs {
        Some(_) => None,
        None => terraform::TerraformSettings::for_environment(&repo, &config),
    };
    let module = terraform_settings
        .as_ref()
        .map(terraform::static_check::check_static)
        .transpose()
        .map_err(terraform::TerraformError::into_anyhow)?;
    let given_outputs = settings
        .cluster
        .terraform_outputs
        .as_deref()
        .map(load_terraform_outputs)
        .transpose()?;
    let static_outputs = given_outputs
        .clone()
        .unwrap_or_else(|| crate::commands::validate::static_outputs(module.as_ref()));
    let unknown = if given_outputs.is_some() {
        UnknownOutputs::Error
    } else {
        UnknownOutputs::Placeholder
    };
    render_with(&repo, &config, static_outputs, unknown)?;
    if sandbox {
        for image in crate::render::image_refs(&repo, &config)
            .map_err(UserError::from)?
            .values()
        {
            printer.status(&format!(
                "sandbox: image `{}` not built: {}",
                image.app,
                image.reference()
            ));
        }
    }

    // 2. Images and the Terraform plan concurrently; then apply exactly that plan.
    let terraform = match terraform_settings {
        Some(settings) => Some(terraform_driver(settings, printer).await?),
        None => None,
    };
    let build_options = BuildOptions {
        builder: repo.layout.builder.clone(),
        jobs: settings.build.jobs,
        force: settings.build.force_build,
        environment: Default::default(),
    };
    let registry = build::Registry::new();
    let images = async {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        build::build_images(&requests, &build_options, &registry, printer)
            .await
            .map_err(crate::commands::build::stage_error)
    };
    let plan = async {
        match &terraform {
            Some(driver) => driver
                .plan(
                    terraform::PlanMode::Normal,
                    &driver.settings().data_dir.join("gitship-deploy.tfplan"),
                )
                .await
                .map(Some)
                .map_err(terraform::TerraformError::into_anyhow),
            None => Ok(None),
        }
    };
    let (images, plan) = tokio::join!(images, plan);
    let (images, plan) = (images?, plan?);
    let outputs = match (given_outputs, &terraform, plan) {
        (Some(outputs), _, _) => outputs,
        (None, Some(driver), Some(plan)) => terraform_apply(driver, &plan, printer).await?,
        _ => terraform::Outputs::new(),
    };

    // 3. Render with the real outputs, images pinned to the digests just built or found.
    let mut inputs =
        RenderInputs::for_environment(&repo, &config, outputs).map_err(UserError::from)?;
    for image in &images {
        if let Some(reference) = inputs.images.get_mut(&image.app)
            && reference.tag == image.tag
        {
            reference.digest = Some(image.digest.clone());
        }
    }
    let manifests =
        crate::render::render_environment(&repo, &config, &inputs, UnknownOutputs::Error)
            .map_err(UserError::from)?;
    let desired: Vec<DesiredObject> = manifests.into_iter().map(DesiredObject::from).collect();

    // 4. The Kubernetes stage: lock, apply, wait, prune, record, unlock.
    let connection = connect(&ctx.global, &config, sandbox.then_some(repo.root.as_path())).await?;
    let options = deploy_options(&config, &settings, sha);
    let simulated = if sandbox {
        " (sandbox: simulated cluster)"
    } else {
        ""
    };
    printer.status(&format!(
        "applying {} objects to `{}`{simulated}",
        desired.len(),
        config.name
    ));
    let report = kubernetes_stage(&connection.client, &config, desired, &options, printer)
        .await
        .map_err(|error| {
            if sandbox {
                // Says so even with `-q`, where the status lines are not shown.
                error.context(format!(
                    "sandbox deploy of `{}` failed (a simulated cluster; no real cluster was touched)",
                    config.name
                ))
            } else {
                error
            }
        })?;
    if let Some(sandbox) = &connection.sandbox {
        sandbox
            .server
            .save_state()
            .map_err(|e| UserError::bare(format!("cannot save the sandbox state: {e}")))?;
    }
    print_report(printer, &report, sandbox)?;
    Ok(Outcome::Success)
}

/// The environment's Terraform driver, reporting progress as status lines.
async fn terraform_driver(
    settings: terraform::TerraformSettings,
    printer: &Printer,
) -> Result<terraform::Terraform> {
    let status = printer.clone();
    Ok(terraform::Terraform::new(settings)
        .await
        .map_err(terraform::TerraformError::into_anyhow)?
        .with_progress(std::sync::Arc::new(move |line: &str| {
            status.status(&format!("terraform: {line}"))
        })))
}

/// Apply exactly `plan` when it changes anything; then the outputs.
async fn terraform_apply(
    driver: &terraform::Terraform,
    plan: &terraform::PlanSummary,
    printer: &Printer,
) -> Result<terraform::Outputs> {
    if plan.has_changes {
        printer.status(&format!(
            "terraform: applying {} to add, {} to change, {} to replace, {} to destroy",
            plan.counts.add, plan.counts.change, plan.counts.replace, plan.counts.destroy
        ));
        driver
            .apply(&plan.planfile)
            .await
            .map_err(terraform::TerraformError::into_anyhow)?;
    } else {
        printer.status("terraform: no changes");
    }
    let _ = std::fs::remove_file(&plan.planfile);
    driver
        .outputs()
        .await
        .map_err(terraform::TerraformError::into_anyhow)
}

/// A connection to an environment's cluster; keeps the sandbox server alive when there is one.
pub struct ClusterConnection {
    pub client: kube::Client,
    pub sandbox: Option<Sandbox>,
}

impl std::fmt::Debug for ClusterConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterConnection")
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

/// Connect to `config`'s cluster, or start its sandbox (state in `<root>/.gitship/sandbox/`).
pub async fn connect(
    global: &GlobalSettings,
    config: &EnvConfig,
    sandbox_root: Option<&Path>,
) -> Result<ClusterConnection> {
    match sandbox_root {
        Some(root) => {
            let sandbox = crate::kube::sandbox::start(root, &config.name).await?;
            Ok(ClusterConnection {
                client: sandbox.client.clone(),
                sandbox: Some(sandbox),
            })
        }
        None => {
            let options =
                ClientOptions::for_environment(global.kubeconfig.as_deref(), &config.cluster);
            let client = crate::kube::connect(&options).await.map_err(user_error)?;
            Ok(ClusterConnection {
                client,
                sandbox: None,
            })
        }
    }
}

/// The deploy options for `config` and the command line: flags override the config.
pub fn deploy_options(
    config: &EnvConfig,
    settings: &DeploySettings,
    sha: Option<String>,
) -> DeployOptions {
    DeployOptions {
        force_conflicts: config.cluster.force_conflicts,
        timeout: settings.timeout.unwrap_or(config.deploy.timeout),
        lock: LockOptions {
            timeout: settings.lock_timeout.unwrap_or(config.deploy.lock_timeout),
            ..LockOptions::default()
        },
        prune: !settings.no_prune,
        allow_empty: settings.allow_empty,
        prune_protected: settings.prune_protected,
        history: config.deploy.history,
        sha,
        ..DeployOptions::default()
    }
}

/// The Kubernetes stage of a deploy: apply `desired` to `config`'s environment.
pub async fn kubernetes_stage(
    client: &kube::Client,
    config: &EnvConfig,
    desired: Vec<DesiredObject>,
    options: &DeployOptions,
    printer: &Printer,
) -> Result<DeployReport> {
    let environment = Environment {
        name: config.name.clone(),
        namespace: config.cluster.namespace.clone(),
    };
    crate::kube::deploy_objects(client, &environment, desired, options, printer)
        .await
        .map_err(user_error)
}

/// A [`KubeError`] as an error chain carrying its hint.
pub fn user_error(error: KubeError) -> anyhow::Error {
    if matches!(error, KubeError::Interrupted) {
        return UserError::interrupted().into();
    }
    let hint = error.hint();
    let message = error.to_string();
    match hint {
        Some(hint) => anyhow::Error::from(error).context(UserError::new(message, hint)),
        None => anyhow::Error::from(error),
    }
}

/// Print the report: JSON as data with `--output json`, otherwise a per-kind table and a summary.
pub fn print_report(printer: &Printer, report: &DeployReport, sandbox: bool) -> Result<()> {
    match printer.format {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(report)?;
            value["sandbox"] = serde_json::Value::Bool(sandbox);
            value["changed"] = serde_json::Value::Bool(!is_no_op(report));
            printer.data(&serde_json::to_string_pretty(&value)?)?;
        }
        OutputFormat::Human | OutputFormat::Markdown => {
            let simulated = if sandbox {
                " (sandbox: simulated cluster)"
            } else {
                ""
            };
            let mut text = report.render_table();
            let summary = if is_no_op(report) {
                format!("no changes ({})", report.summary_line())
            } else {
                report.summary_line()
            };
            text.push_str(&format!(
                "deployed `{}`{simulated}: {summary}\n",
                report.environment,
            ));
            printer.data(&text)?;
        }
    }
    Ok(())
}

/// Whether the deploy changed no object (every one unchanged or kept).
fn is_no_op(report: &DeployReport) -> bool {
    report
        .objects
        .iter()
        .all(|o| matches!(o.action, ObjectAction::Unchanged | ObjectAction::Kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::config::{ClusterConfig, DeployConfig, DriftConfig, SpanMap, TerraformConfig};
    use crate::settings::{BuildSettings, ClusterSettings};
    use std::time::Duration;

    fn config() -> EnvConfig {
        EnvConfig {
            name: "production".into(),
            file: "config/production.yaml".into(),
            cluster: ClusterConfig {
                context: Some("prod".into()),
                namespace: "blog".into(),
                kubeconfig: None,
                force_conflicts: false,
            },
            registry: None,
            terraform: TerraformConfig::default(),
            deploy: DeployConfig {
                timeout: Duration::from_secs(120),
                lock_timeout: Duration::from_secs(60),
                require_clean_tree: true,
                history: 7,
            },
            drift: DriftConfig::default(),
            values: serde_json::json!({}),
            spans: SpanMap::default(),
        }
    }

    fn settings() -> DeploySettings {
        DeploySettings {
            cluster: ClusterSettings {
                env: "production".into(),
                sandbox: false,
                terraform_outputs: None,
            },
            build: BuildSettings {
                force_build: false,
                jobs: 1,
                allow_dirty: false,
            },
            plan: None,
            allow_empty: false,
            prune_protected: true,
            no_prune: false,
            timeout: Some(Duration::from_secs(9)),
            lock_timeout: None,
        }
    }

    #[test]
    fn flags_override_the_environment_config() {
        let options = deploy_options(&config(), &settings(), Some("abc".into()));
        assert_eq!(options.timeout, Duration::from_secs(9));
        assert_eq!(options.lock.timeout, Duration::from_secs(60));
        assert!(!options.force_conflicts);
        assert!(options.prune && options.prune_protected && !options.allow_empty);
        assert_eq!(options.history, 7);
        assert_eq!(options.sha.as_deref(), Some("abc"));
        let client = ClientOptions::for_environment(Some(Path::new("/k")), &config().cluster);
        assert_eq!(client.kubeconfig.as_deref(), Some(Path::new("/k")));
        assert_eq!(client.context.as_deref(), Some("prod"));
    }

    #[test]
    fn kube_errors_keep_their_hint() {
        let error = user_error(KubeError::EmptyDesiredSet {
            env: "production".into(),
            count: 4,
        });
        let rendered = crate::diagnostics::render(&error);
        assert!(
            rendered.starts_with("error: refusing to prune all 4 object(s)"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hint: pass `--allow-empty`"),
            "{rendered}"
        );
    }
}
