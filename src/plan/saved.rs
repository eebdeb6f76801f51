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

use crate::plan::{GitInfo, Plan};
use gitship_foundation::diagnostics::UserError;
use gitship_foundation::model::{ImageRef, Manifest, ObjectId};

/// Version of the saved-plan file format.
pub const SAVED_FORMAT_VERSION: u32 = 1;

/// A saved plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub environment: String,
    pub sandbox: bool,
    pub git: GitInfo,
    /// The id of the planned commit's tree: a commit with the same tree (the merge of the
    /// reviewed pull request) may deploy the plan ([`check_git`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// The plan as shown (redacted).
    pub plan: Plan,
    /// File name of the copied Terraform planfile, in the saved plan's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_planfile: Option<String>,
    pub images: Vec<ImageRef>,
    pub manifests: Vec<Manifest>,
    /// The live objects the plan was computed against.
    pub live: Vec<LiveVersion>,
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

/// Read a saved plan.
pub fn load(path: &Path) -> Result<SavedPlan> {
    // Bounded, regular files only (`repo::limits`): a FIFO or a huge file is an error.
    let text = crate::repo::files::read_text(Path::new(""), path)
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

/// The repository's commit, as a saved plan is checked against it.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub sha: &'a str,
    /// Its tree's id, when known.
    pub tree: Option<&'a str>,
    /// The work tree has uncommitted changes.
    pub dirty: bool,
}

/// Whether `saved` may deploy at `current`: made at that commit, or at a commit with the same
/// tree (compare trees, not SHAs: a `--no-ff` merge of exactly what was reviewed holds the same
/// files), neither side with uncommitted changes.
pub fn check_git(saved: &SavedPlan, current: Current<'_>) -> Result<(), StaleReason> {
    let same_tree = !saved.git.dirty
        && !current.dirty
        && saved.tree.is_some()
        && saved.tree.as_deref() == current.tree;
    if saved.git.sha == current.sha || same_tree {
        Ok(())
    } else {
        Err(StaleReason::GitSha {
            planned: saved.git.sha.clone(),
            current: current.sha.to_string(),
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

/// The error for a saved plan at `path` that is stale for `reason`.
pub fn stale(path: &Path, reason: StaleReason) -> anyhow::Error {
    UserError::new(
        format!("the saved plan `{}` is stale: {reason}", path.display()),
        "run `gitship plan --out` again, review it, then deploy the new plan",
    )
    .into()
}

/// Whether any manifest still holds a value that was unknown when it was planned.
pub fn mentions_unknown(manifests: &[Manifest]) -> bool {
    manifests
        .iter()
        .any(|m| gitship_foundation::model::holds_unknown(&m.object))
}

/// An object's `metadata.resourceVersion`.
pub fn resource_version(object: &Value) -> Option<String> {
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

/// Write `saved` to `out`, with `planfile` (Terraform's saved plan) copied next to it as
/// `out.tfplan`. Both hold secrets: see [`gitship_foundation::private_file`].
pub fn write(out: &Path, saved: &mut SavedPlan, planfile: Option<&Path>) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        gitship_foundation::private_file::create_dir(parent)
            .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
    }
    saved.terraform_planfile = match planfile {
        Some(planfile) => {
            let copy = sidecar(out);
            let bytes = std::fs::read(planfile).with_context(|| {
                format!("cannot read the Terraform plan `{}`", planfile.display())
            })?;
            gitship_foundation::private_file::write(&copy, &bytes).with_context(|| {
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
    gitship_foundation::private_file::write(out, &serde_json::to_vec(saved)?)
        .with_context(|| format!("cannot write the saved plan `{}`", out.display()))
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
            tree: None,
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
        let at = |sha, tree, dirty| Current { sha, tree, dirty };
        assert!(check_git(&plan, at("abc", None, false)).is_ok());
        assert_eq!(
            check_git(&plan, at("def", None, false))
                .unwrap_err()
                .to_string(),
            "it was made at Git commit `abc`, the repository is at `def`"
        );
        // Another commit of the same tree (the merge of what was reviewed): deployable, unless
        // either side has uncommitted changes or the trees differ.
        let mut plan = plan;
        plan.tree = Some("t1".into());
        assert!(check_git(&plan, at("merge", Some("t1"), false)).is_ok());
        assert!(check_git(&plan, at("merge", Some("t1"), true)).is_err());
        assert!(check_git(&plan, at("merge", Some("t2"), false)).is_err());
        assert!(check_git(&plan, at("merge", None, false)).is_err());
        plan.git.dirty = true;
        assert!(check_git(&plan, at("merge", Some("t1"), false)).is_err());
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
        assert!(gitship_foundation::model::holds_unknown(
            &serde_json::json!({"a": [{"b": "x (known after apply)"}]})
        ));
        assert!(!gitship_foundation::model::holds_unknown(
            &serde_json::json!({"a": 1})
        ));
    }
}
