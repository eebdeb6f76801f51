//! The Terraform stage: drive the real `terraform` / `tofu` CLI safely, per environment.
//!
//! gitship never reimplements Terraform; it runs the CLI the way hashicorp/terraform-exec does,
//! with Atlantis-style safety:
//! - [`check_static`] reads the module with hcl-rs before anything runs (variables vs the
//!   environment's `terraform.vars`, syntax), with file:line in every finding;
//! - [`Terraform`] runs the binary with an allowlisted environment ([`environment`]), a
//!   `TF_DATA_DIR` and a workspace (or `-backend-config`) per environment, `-input=false
//!   -no-color -lock-timeout`, `init` only when its inputs changed, and a graceful SIGINT on
//!   interrupt so the state lock is released;
//! - plans are read back from `show -json` into a typed, redacted [`PlanSummary`];
//! - failures are typed ([`TerraformError`]) from Terraform's `-json` diagnostics.

pub mod binary;
pub mod driver;
pub mod environment;
pub mod error;
pub mod plan;
pub mod redact;
pub mod static_check;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use driver::{InitOutcome, Terraform};
pub use error::{StaticProblem, TerraformError};
pub use plan::{ChangeAction, DriftReport, OutputChange, PlanMode, PlanSummary, ResourceChange};
pub use redact::REDACTED;
pub use static_check::{ModuleInfo, check_static};

use crate::repo::{EnvConfig, Repository};
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{OutputValue, Outputs};

/// The default `-lock-timeout`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long Terraform gets to stop after SIGINT (releasing its lock) before it is killed.
pub const DEFAULT_INTERRUPT_GRACE: Duration = Duration::from_secs(60);

/// Parse the document printed by `terraform output -json`.
pub fn parse_outputs_json(text: &str) -> Result<Outputs, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Raw {
        value: serde_json::Value,
        #[serde(default)]
        sensitive: bool,
    }
    let raw: BTreeMap<String, Raw> = serde_json::from_str(text)?;
    Ok(raw
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                OutputValue {
                    value: Some(r.value),
                    sensitive: r.sensitive,
                },
            )
        })
        .collect())
}

/// Outputs as a JSON object fit for display: sensitive values replaced by [`REDACTED`].
pub fn redacted_outputs(outputs: &Outputs) -> serde_json::Value {
    let object = outputs
        .iter()
        .map(|(name, output)| {
            let value = match (&output.value, output.sensitive) {
                (_, true) => serde_json::Value::String(REDACTED.to_string()),
                (Some(value), false) => value.clone(),
                (None, false) => serde_json::Value::Null,
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object)
}

/// Everything the driver needs to run Terraform for one environment.
#[derive(Debug, Clone)]
pub struct TerraformSettings {
    /// `terraform` or `tofu` (a name on PATH or a path).
    pub binary: String,
    /// The root module (absolute).
    pub module_dir: PathBuf,
    /// This environment's `TF_DATA_DIR`, `<repo>/.gitship/terraform/<env>` (ignored by Git); also
    /// holds gitship's var file and init fingerprint.
    pub data_dir: PathBuf,
    pub env_name: String,
    /// `config/<env>.yaml` (absolute).
    pub env_file: PathBuf,
    /// The workspace of this environment; `None` with a `backend_config` means the backend
    /// itself is per environment (default workspace). A preview has both: its own workspace
    /// in its base's backend (`repo::preview`).
    pub workspace: Option<String>,
    /// Backend settings for `init`, passed through an owner-only `-backend-config` file (never
    /// on argv).
    pub backend_config: BTreeMap<String, String>,
    /// Variables, written to a generated `-var-file` (JSON).
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// Variable name -> where the environment file sets it.
    pub var_spans: BTreeMap<String, Location>,
    /// Where `terraform.vars` is written in the environment file, when known.
    pub vars_location: Option<Location>,
    pub lock_timeout: Duration,
    /// SIGINT grace before SIGKILL on interrupt.
    pub interrupt_grace: Duration,
    /// Paths in messages are shown relative to this (the repository root).
    pub display_root: PathBuf,
}

impl TerraformSettings {
    /// The settings of `env` in `repo`; `None` when the repository has no Terraform layer or the
    /// environment turns it off (`terraform: false`).
    ///
    /// Isolation: each environment gets its own `TF_DATA_DIR`. The state is separated by the
    /// configured workspace, or by the backend (`backend_config`) when only that is given; with
    /// neither, the workspace is named after the environment.
    pub fn for_environment(repo: &Repository, env: &EnvConfig) -> Option<Self> {
        if env.terraform.disabled {
            return None;
        }
        let module_dir = repo.layout.terraform_dir.clone()?;
        let terraform = &env.terraform;
        let workspace = match (&terraform.workspace, terraform.backend_config.is_empty()) {
            (Some(workspace), _) => Some(workspace.clone()),
            (None, true) => Some(env.name.clone()),
            (None, false) => None,
        };
        let var_spans = terraform
            .vars
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    env.spans.location(&format!("terraform.vars.{name}")),
                )
            })
            .collect();
        let vars_location = ["terraform.vars", "terraform"]
            .iter()
            .find(|key| env.spans.keys.contains_key(**key))
            .map(|key| env.spans.location(key));
        Some(TerraformSettings {
            binary: repo.layout.terraform_binary.clone(),
            module_dir,
            data_dir: repo.root.join(".gitship").join("terraform").join(&env.name),
            env_name: env.name.clone(),
            env_file: env.file.clone(),
            workspace,
            backend_config: terraform.backend_config.clone(),
            vars: terraform.vars.clone(),
            var_spans,
            vars_location,
            lock_timeout: terraform.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            interrupt_grace: DEFAULT_INTERRUPT_GRACE,
            display_root: repo.root.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_and_redact() {
        let outputs =
            parse_outputs_json(r#"{"url":{"value":"https://x","type":"string"},"pw":{"value":"hunter2","sensitive":true}}"#)
                .unwrap();
        assert!(outputs["pw"].sensitive);
        let shown = redacted_outputs(&outputs).to_string();
        assert!(
            shown.contains("https://x") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
