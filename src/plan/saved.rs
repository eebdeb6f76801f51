//! Saved plans: `gitship plan ENV --out FILE` and `gitship deploy ENV --plan FILE`.
//!
//! A saved plan is a JSON document ([`SavedPlan`]) holding everything the deploy needs to apply
//! exactly what was reviewed: the Git SHA, the rendered manifests, the image references (the
//! digest where the image exists, the content tag where it is still to be built), the
//! resourceVersion of every live object the plan was computed against, and the shown plan itself.
//! The Terraform planfile is copied next to it (`FILE.tfplan`) and referenced by name.
//!
//! Like Terraform's own planfile, the manifests hold real values (a Secret's data): the file is
//! written with mode 0600 and must be treated as a secret. Nothing of it is ever printed.
//!
//! The deploy refuses a stale plan, before any change, with the reason: another Git SHA, a live
//! object changed (or appeared, or vanished) since the plan, or Terraform's "saved plan is stale".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::Context;
use crate::commands::deploy;
use crate::commands::plan::{self as plan_command, Computed, Session};
use crate::diagnostics::{Location, UserError};
use crate::exit::Outcome;
use crate::kube::{DesiredObject, ObjectId};
use crate::plan::{GitInfo, ImageAction, KNOWN_AFTER_APPLY, Plan};
use crate::render::{ImageRef, Manifest};
use crate::settings::DeploySettings;

/// Version of the saved-plan file format.
pub const SAVED_FORMAT_VERSION: u32 = 1;

/// A saved plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub environment: String,
    pub sandbox: bool,
    pub git: GitInfo,
    /// The plan as shown (redacted).
    pub plan: Plan,
    /// File name of the copied Terraform planfile, in the saved plan's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_planfile: Option<String>,
    pub images: Vec<ImageRef>,
    pub manifests: Vec<SavedManifest>,
    /// The live objects the plan was computed against.
    pub live: Vec<LiveVersion>,
}

/// One rendered manifest (real values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedManifest {
    pub source: Location,
    pub object: Value,
}

/// A desired object's live resourceVersion when planned (`None`: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveVersion {
    pub object: ObjectId,
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaleReason {
    /// The repository is at another commit.
    #[error("it was made at Git commit `{planned}`, the repository is at `{current}`")]
    GitSha { planned: String, current: String },
    /// A live object changed since the plan.
    #[error(
        "{object} changed in the cluster since the plan (resourceVersion {planned} -> {current})"
    )]
    LiveObject {
        object: String,
        planned: String,
        current: String,
    },
}

/// Write `computed` to `out` (and its Terraform planfile to `out.tfplan`).
pub fn save(out: &Path, session: &Session, computed: &Computed) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
    }
    let terraform_planfile = match &computed.planfile {
        Some(planfile) => {
            let copy = sidecar(out);
            std::fs::copy(planfile, &copy).with_context(|| {
                format!(
                    "cannot copy the Terraform plan `{}` to `{}`",
                    planfile.display(),
                    copy.display()
                )
            })?;
            copy.file_name().map(|n| n.to_string_lossy().into_owned())
        }
        None => None,
    };
    let live = computed
        .kubernetes
        .iter()
        .flat_map(|diff| &diff.objects)
        .map(|(id, object_diff)| LiveVersion {
            object: id.clone(),
            resource_version: object_diff.live.as_ref().and_then(resource_version),
        })
        .collect();
    let saved = SavedPlan {
        format_version: SAVED_FORMAT_VERSION,
        environment: session.config.name.clone(),
        sandbox: session.sandbox,
        git: session.git.clone(),
        plan: computed.plan.clone(),
        terraform_planfile,
        images: computed.images.values().cloned().collect(),
        manifests: computed
            .manifests
            .iter()
            .map(|m| SavedManifest {
                source: m.source.clone(),
                object: m.object.clone(),
            })
            .collect(),
        live,
    };
    write_private(out, &serde_json::to_vec(&saved)?)
        .with_context(|| format!("cannot write the saved plan `{}`", out.display()))
}

/// Read a saved plan.
pub fn load(path: &Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved plan `{}`", path.display()))?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|error| {
        UserError::new(
            format!(
                "`{}` is not a saved plan: line {}, column {}",
                path.display(),
                error.line(),
                error.column()
            ),
            "write it with `gitship plan ENV --out FILE`",
        )
    })?;
    if saved.format_version != SAVED_FORMAT_VERSION {
        return Err(UserError::new(
            format!(
                "the saved plan `{}` has format version {}, this gitship reads version {SAVED_FORMAT_VERSION}",
                path.display(),
                saved.format_version
            ),
            "run `gitship plan --out` again with this gitship",
        )
        .into());
    }
    Ok(saved)
}

/// Whether `saved` was made at `current_sha`.
pub fn check_git(saved: &SavedPlan, current_sha: &str) -> Result<(), StaleReason> {
    if saved.git.sha == current_sha {
        Ok(())
    } else {
        Err(StaleReason::GitSha {
            planned: saved.git.sha.clone(),
            current: current_sha.to_string(),
        })
    }
}

/// Whether every live object still has the resourceVersion the plan saw.
pub fn check_live(
    saved: &SavedPlan,
    current: &BTreeMap<ObjectId, Option<String>>,
) -> Result<(), StaleReason> {
    for entry in &saved.live {
        let now = current.get(&entry.object).cloned().flatten();
        if now != entry.resource_version {
            return Err(StaleReason::LiveObject {
                object: entry.object.to_string(),
                planned: entry
                    .resource_version
                    .clone()
                    .unwrap_or_else(|| "absent".into()),
                current: now.unwrap_or_else(|| "absent".into()),
            });
        }
    }
    Ok(())
}

/// `gitship deploy ENV --plan FILE`: apply exactly the saved plan, or refuse it as stale.
pub async fn deploy(ctx: &Context, settings: &DeploySettings, path: &Path) -> Result<Outcome> {
    let saved = load(path)?;
    let session = plan_command::open(ctx, &settings.cluster)?;
    if saved.environment != session.config.name {
        return Err(UserError::new(
            format!(
                "the saved plan `{}` is for environment `{}`, not `{}`",
                path.display(),
                saved.environment,
                session.config.name
            ),
            format!(
                "deploy it with `gitship deploy {} --plan ...`",
                saved.environment
            ),
        )
        .into());
    }
    if saved.sandbox != session.sandbox {
        return Err(UserError::new(
            format!(
                "the saved plan `{}` was made {} the sandbox",
                path.display(),
                if saved.sandbox { "in" } else { "outside" }
            ),
            "deploy it with the same `--sandbox` setting as the plan",
        )
        .into());
    }
    check_git(&saved, &session.git.sha).map_err(|reason| stale(path, reason))?;

    let connection = plan_command::connect(ctx, &session).await?;
    let mut manifests: Vec<Manifest> = saved
        .manifests
        .iter()
        .map(|m| Manifest {
            source: m.source.clone(),
            object: m.object.clone(),
        })
        .collect();
    let environment_diff = plan_command::kubernetes_diff(
        &connection.client,
        &session,
        plan_command::desired_objects(&manifests),
    )
    .await?;
    let current = environment_diff
        .objects
        .iter()
        .map(|(id, object_diff)| {
            (
                id.clone(),
                object_diff.live.as_ref().and_then(resource_version),
            )
        })
        .collect();
    check_live(&saved, &current).map_err(|reason| stale(path, reason))?;

    if let Some(planfile) = &saved.terraform_planfile {
        let planfile = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(planfile);
        let Some(driver) = plan_command::terraform_driver(&session).await? else {
            return Err(UserError::new(
                "the saved plan has a Terraform plan but the repository has no Terraform layer",
                "run `gitship plan --out` again",
            )
            .into());
        };
        ctx.printer.status(&format!(
            "applying the saved Terraform plan `{}`",
            planfile.display()
        ));
        driver
            .apply(&PathBuf::from(&planfile))
            .await
            .map_err(|e| e.into_anyhow())?;
        if mentions_unknown(&saved.manifests) {
            // Outputs were unknown at plan time: render the same commit with the real outputs.
            let outputs = driver.outputs().await.map_err(|e| e.into_anyhow())?;
            let images = saved
                .images
                .iter()
                .map(|image| (image.app.clone(), image.clone()))
                .collect();
            manifests = plan_command::render_manifests(&session, images, outputs)?;
            if mentions_unknown_in(&manifests) {
                return Err(UserError::new(
                    "a Terraform output the manifests use still has no value after apply",
                    "check the module's outputs",
                )
                .into());
            }
        }
    }

    build_missing_images(ctx, &saved, &session, settings).await?;

    let desired: Vec<DesiredObject> = plan_command::desired_objects(&manifests);
    let options = deploy::deploy_options(&session.config, settings, Some(session.git.sha.clone()));
    let report = deploy::kubernetes_stage(
        &connection.client,
        &session.config,
        desired,
        &options,
        &ctx.printer,
    )
    .await;
    if let Some(sandbox) = &connection.sandbox {
        sandbox
            .server
            .save_state()
            .with_context(|| format!("cannot save `{}`", sandbox.state_file.display()))?;
    }
    deploy::print_report(&ctx.printer, &report?, session.sandbox)?;
    Ok(Outcome::Success)
}

/// Build and push the images the plan said are still to be built (under the content tags the
/// manifests already reference). Nothing is built in the sandbox.
async fn build_missing_images(
    ctx: &Context,
    saved: &SavedPlan,
    session: &Session,
    settings: &DeploySettings,
) -> Result<()> {
    let missing: Vec<&str> = saved
        .plan
        .images
        .iter()
        .filter(|image| image.action == ImageAction::Build)
        .map(|image| image.app.as_str())
        .collect();
    if session.sandbox || missing.is_empty() {
        return Ok(());
    }
    let source = crate::build::image_source(&session.repo.root);
    let requests: Vec<crate::build::BuildRequest> = saved
        .images
        .iter()
        .filter(|image| missing.contains(&image.app.as_str()))
        .filter_map(|image| {
            Some(crate::build::BuildRequest {
                app: session.repo.app(&image.app)?.clone(),
                image_repository: image.repository.clone(),
                tag: image.tag.clone(),
                revision: saved.git.sha.clone(),
                source: source.clone(),
            })
        })
        .collect();
    let options = crate::build::BuildOptions {
        builder: session.repo.layout.builder.clone(),
        jobs: settings.build.jobs.max(1),
        force: settings.build.force_build,
        ..crate::build::BuildOptions::default()
    };
    crate::build::build_images(
        &requests,
        &options,
        &crate::build::Registry::new(),
        &ctx.printer,
    )
    .await?;
    Ok(())
}

fn stale(path: &Path, reason: StaleReason) -> anyhow::Error {
    UserError::new(
        format!("the saved plan `{}` is stale: {reason}", path.display()),
        "run `gitship plan --out` again, review it, then deploy the new plan",
    )
    .into()
}

fn mentions_unknown(manifests: &[SavedManifest]) -> bool {
    manifests.iter().any(|m| contains_unknown(&m.object))
}

fn mentions_unknown_in(manifests: &[Manifest]) -> bool {
    manifests.iter().any(|m| contains_unknown(&m.object))
}

fn contains_unknown(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains(KNOWN_AFTER_APPLY),
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Object(map) => map.values().any(contains_unknown),
        _ => false,
    }
}

fn resource_version(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `FILE.tfplan` next to `FILE`.
fn sidecar(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tfplan");
    out.with_file_name(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedPlan {
        SavedPlan {
            format_version: SAVED_FORMAT_VERSION,
            environment: "production".into(),
            sandbox: false,
            git: GitInfo {
                sha: "abc".into(),
                dirty: false,
            },
            plan: Plan::new(
                "production",
                GitInfo {
                    sha: "abc".into(),
                    dirty: false,
                },
                false,
            ),
            terraform_planfile: Some("p.tfplan".into()),
            images: vec![],
            manifests: vec![],
            live: vec![LiveVersion {
                object: ObjectId {
                    group: "apps".into(),
                    kind: "Deployment".into(),
                    namespace: Some("blog".into()),
                    name: "web".into(),
                },
                resource_version: Some("7".into()),
            }],
        }
    }

    #[test]
    fn round_trips_and_detects_staleness() {
        let plan = saved();
        let text = serde_json::to_string(&plan).unwrap();
        let back: SavedPlan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plan);
        assert!(check_git(&plan, "abc").is_ok());
        assert_eq!(
            check_git(&plan, "def").unwrap_err().to_string(),
            "it was made at Git commit `abc`, the repository is at `def`"
        );
        let id = plan.live[0].object.clone();
        let same = BTreeMap::from([(id.clone(), Some("7".to_string()))]);
        assert!(check_live(&plan, &same).is_ok());
        let changed = BTreeMap::from([(id.clone(), Some("9".to_string()))]);
        assert_eq!(
            check_live(&plan, &changed).unwrap_err().to_string(),
            "Deployment blog/web changed in the cluster since the plan (resourceVersion 7 -> 9)"
        );
        let gone = BTreeMap::from([(id, None)]);
        assert!(check_live(&plan, &gone).is_err());
    }

    #[test]
    fn sidecar_and_unknown_values() {
        assert_eq!(
            sidecar(Path::new("/t/p.json")),
            PathBuf::from("/t/p.json.tfplan")
        );
        assert!(contains_unknown(
            &serde_json::json!({"a": [{"b": "x (known after apply)"}]})
        ));
        assert!(!contains_unknown(&serde_json::json!({"a": 1})));
    }
}
