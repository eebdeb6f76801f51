//! `gitship deploy ENV`.
//!
//! The orchestration is: static checks -> (build || terraform plan) -> terraform apply -> render
//! -> the Kubernetes stage ([`crate::kube::deploy_objects`]: lock, apply in stages, wait, prune,
//! record, unlock). This file holds the command-layer glue of the Kubernetes stage: which cluster
//! (kubeconfig/context or the `--sandbox`), the deploy options from the environment config and
//! the flags, and how the report is printed.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::kube::deploy::{DeployOptions, DeployReport, Environment};
use crate::kube::lock::LockOptions;
use crate::kube::sandbox::Sandbox;
use crate::kube::{ClientOptions, DesiredObject, KubeError};
use crate::output::Printer;
use crate::repo::EnvConfig;
use crate::settings::{DeploySettings, GlobalSettings, OutputFormat};

pub async fn run(ctx: &Context, settings: DeploySettings) -> Result<Outcome> {
    if let Some(plan) = &settings.plan {
        return crate::plan::saved::deploy(ctx, &settings, plan).await;
    }
    let _ = (ctx, settings);
    Err(UserError::new(
        "`gitship deploy` is not available yet",
        "see the Kubernetes-stage issue",
    )
    .into())
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
            printer.data(&serde_json::to_string_pretty(&value)?)?;
        }
        OutputFormat::Human | OutputFormat::Markdown => {
            let simulated = if sandbox {
                " (sandbox: simulated cluster)"
            } else {
                ""
            };
            let mut text = report.render_table();
            text.push_str(&format!(
                "deployed `{}`{simulated}: {}\n",
                report.environment,
                report.summary_line()
            ));
            printer.data(&text)?;
        }
    }
    Ok(())
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
