//! The reviewed plan: `gitship deploy ENV --reviewed PLAN.json`, the Atlantis way.
//!
//! A pull request's plan job keeps its redacted JSON report (`plan --report FILE`, the same
//! document as `plan -o json`) as a CI artifact: it holds no Secret value and no Terraform
//! planfile, so anyone who can read the repository may read it. After the merge, the deploy
//! plans again on the runner and [`compare`]s that fresh plan with the reviewed one: the same
//! tree (compare trees, not SHAs: a `--no-ff` merge of exactly what was reviewed holds the same
//! files) and the same changes, object by object, resource by resource, mean the plan that is
//! applied is the one that was reviewed. Otherwise every [`Difference`] is named (the tree moved,
//! or the same tree met a changed world: which objects, resources or images).
//!
//! The artifact is never trusted for what to apply: what is applied is always the fresh plan;
//! the reviewed report only decides whether it is what people reviewed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Result;

use crate::plan::{FORMAT_VERSION, ObjectAction, ObjectChange, Plan, ResourceChange};
use gitship_foundation::diagnostics::UserError;

/// Why a fresh plan is not the reviewed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The reviewed plan names no tree: planned with uncommitted changes, or by an older gitship.
    NoTree,
    /// The deploy's work tree has uncommitted changes.
    Dirty,
    /// The commit deployed has another tree than the one reviewed.
    TreeMoved { reviewed: String, current: String },
    /// An image is another reference than the one reviewed (`None`: not in that plan).
    Image {
        app: String,
        reviewed: Option<String>,
        now: Option<String>,
    },
    /// A Terraform resource or output changes otherwise than reviewed.
    Terraform {
        address: String,
        reviewed: String,
        now: String,
    },
    /// A Kubernetes object changes otherwise than reviewed.
    Object {
        object: String,
        reviewed: String,
        now: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::NoTree => write!(
                f,
                "the reviewed plan names no Git tree (it was made with uncommitted changes, or by an older gitship)"
            ),
            Difference::Dirty => write!(f, "the work tree has uncommitted changes"),
            Difference::TreeMoved { reviewed, current } => write!(
                f,
                "the tree moved: the reviewed plan is of tree {}, this commit's tree is {}",
                crate::git::short_sha(reviewed),
                crate::git::short_sha(current)
            ),
            Difference::Image { app, reviewed, now } => write!(
                f,
                "image `{app}`: {} in the reviewed plan, {} now",
                reviewed.as_deref().unwrap_or("absent"),
                now.as_deref().unwrap_or("absent")
            ),
            Difference::Terraform {
                address,
                reviewed,
                now,
            } => write!(f, "`{address}`: {reviewed} in the reviewed plan, {now} now"),
            Difference::Object {
                object,
                reviewed,
                now,
            } => write!(f, "{object}: {reviewed} in the reviewed plan, {now} now"),
        }
    }
}

/// What to pass instead of a file that is no plan report.
const HINT: &str = "pass the JSON report of `gitship plan ENV --report FILE` (or `-o json`)";

/// Read the reviewed plan report at `path` for `environment`: bounded
/// ([`crate::repo::limits::MAX_FILE_BYTES`]), a plan report of this format version, of this
/// environment and sandbox setting; anything else is an error saying what and where.
pub fn load(path: &Path, environment: &str, sandbox: bool) -> Result<Plan> {
    let text = crate::repo::files::read_text(Path::new(""), path).map_err(|error| {
        let message = format!(
            "cannot read the reviewed plan `{}`: {error}",
            path.display()
        );
        UserError::new(message, HINT)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        let shown = path.display();
        let message =
            format!("`{shown}` is not a plan report: line {line}, column {column}: {error}");
        UserError::new(message, HINT)
    })?;
    if value.get("manifests").is_some() && value.get("live").is_some() {
        return Err(UserError::new(
            format!(
                "`{}` is a saved plan (`plan --out`), not a plan report",
                path.display()
            ),
            "a saved plan holds Secret values: deploy it with `--plan`, and never keep it as a CI artifact; `--reviewed` takes `plan --report FILE`",
        )
        .into());
    }
    let plan: Plan = serde_json::from_value(value).map_err(|error| {
        let message = format!("`{}` is not a plan report: {error}", path.display());
        UserError::new(message, HINT)
    })?;
    check(&plan, environment, sandbox).map_err(|(what, hint)| {
        UserError::new(
            format!("the reviewed plan `{}` {what}", path.display()),
            hint,
        )
    })?;
    Ok(plan)
}

/// Whether `plan` is of this format version, `environment` and sandbox setting: else what it
/// is, and the hint.
fn check(plan: &Plan, environment: &str, sandbox: bool) -> Result<(), (String, &'static str)> {
    if plan.format_version != FORMAT_VERSION {
        let version = plan.format_version;
        return Err((
            format!("has format version {version}, this gitship reads version {FORMAT_VERSION}"),
            "plan the pull request again with this gitship",
        ));
    }
    if plan.environment != environment {
        return Err((
            format!(
                "is of environment `{}`, not `{environment}`",
                plan.environment
            ),
            "pass the plan of the environment deployed",
        ));
    }
    if plan.sandbox != sandbox {
        let made = if plan.sandbox { "in" } else { "outside" };
        return Err((
            format!("was made {made} the sandbox"),
            "deploy with the same `--sandbox` setting as the plan",
        ));
    }
    Ok(())
}

/// Every way `fresh` (planned now, for the commit deployed) differs from `reviewed`; empty when
/// it is the reviewed plan: same tree, same image references, same Terraform changes, same
/// Kubernetes changes. Image digests are compared by tag (`app:<content tag>@sha256:...` equals
/// `app:<content tag>`): a content tag names the source, and the image a plan still had to
/// build has its digest once a deploy or `build` pushed it.
pub fn compare(reviewed: &Plan, fresh: &Plan) -> Vec<Difference> {
    let mut differences = Vec::new();
    match (&reviewed.tree, &fresh.tree) {
        _ if fresh.git.dirty => differences.push(Difference::Dirty),
        (None, _) => differences.push(Difference::NoTree),
        (Some(planned), Some(current)) if planned == current => {}
        (Some(planned), current) => differences.push(Difference::TreeMoved {
            reviewed: planned.clone(),
            current: current.clone().unwrap_or_else(|| "unknown".into()),
        }),
    }
    compare_images(reviewed, fresh, &mut differences);
    compare_terraform(reviewed, fresh, &mut differences);
    compare_objects(reviewed, fresh, &mut differences);
    compare_hooks(reviewed, fresh, &mut differences);
    differences
}

/// The hooks a deploy runs (ARCHITECTURE.md, "Waves and hooks"), by phase and object: one
/// reviewed to run and not run now, or the other way round, is a difference.
fn compare_hooks(reviewed: &Plan, fresh: &Plan, differences: &mut Vec<Difference>) {
    let hooks = |plan: &Plan| -> BTreeMap<String, String> {
        plan.kubernetes
            .iter()
            .flat_map(|part| &part.hooks)
            .map(|hook| {
                (
                    format!("{} hook {}", hook.phase, hook.object),
                    hook.detail.clone(),
                )
            })
            .collect()
    };
    let (before, now) = (hooks(reviewed), hooks(fresh));
    for (object, reviewed, now) in pairs(&before, &now) {
        if reviewed != now {
            let state = |detail: Option<&String>| match detail {
                Some(detail) => format!("runs ({detail})"),
                None => "does not run".to_string(),
            };
            differences.push(Difference::Object {
                object,
                reviewed: state(reviewed),
                now: state(now),
            });
        }
    }
}

fn compare_images(reviewed: &Plan, fresh: &Plan, differences: &mut Vec<Difference>) {
    let references = |plan: &Plan| -> BTreeMap<String, String> {
        plan.images
            .iter()
            .map(|image| (image.app.clone(), without_digests(&image.reference)))
            .collect()
    };
    let (before, now) = (references(reviewed), references(fresh));
    for (app, reviewed, now) in pairs(&before, &now) {
        if reviewed != now {
            differences.push(Difference::Image {
                app,
                reviewed: reviewed.cloned(),
                now: now.cloned(),
            });
        }
    }
}

fn compare_terraform(reviewed: &Plan, fresh: &Plan, differences: &mut Vec<Difference>) {
    let resources = |plan: &Plan| -> BTreeMap<String, ResourceChange> {
        let parts = plan.terraform.iter();
        parts
            .flat_map(|part| &part.resources)
            .map(|change| (change.address.clone(), change.clone()))
            .collect()
    };
    let (before, now) = (resources(reviewed), resources(fresh));
    for (address, reviewed, now) in pairs(&before, &now) {
        if reviewed != now {
            let (reviewed, now) = (resource_summary(reviewed), resource_summary(now));
            differences.push(Difference::Terraform {
                address,
                now: distinct(&reviewed, now),
                reviewed,
            });
        }
    }
    let outputs = |plan: &Plan| -> BTreeMap<String, crate::plan::OutputChange> {
        let parts = plan.terraform.iter();
        parts
            .flat_map(|part| &part.outputs)
            .map(|change| (format!("output.{}", change.name), change.clone()))
            .collect()
    };
    let (before, now) = (outputs(reviewed), outputs(fresh));
    for (address, reviewed, now) in pairs(&before, &now) {
        if reviewed != now {
            let summary = |change: Option<&crate::plan::OutputChange>| match change {
                None => "no change".to_string(),
                Some(change) => format!("{:?}", change.action).to_lowercase(),
            };
            let (reviewed, now) = (summary(reviewed), summary(now));
            differences.push(Difference::Terraform {
                address,
                now: distinct(&reviewed, now),
                reviewed,
            });
        }
    }
}

fn compare_objects(reviewed: &Plan, fresh: &Plan, differences: &mut Vec<Difference>) {
    let changed = |plan: &Plan| -> BTreeMap<String, ObjectChange> {
        let parts = plan.kubernetes.iter();
        parts
            .flat_map(|part| &part.objects)
            .filter(|change| change.action != ObjectAction::Unchanged)
            .map(|change| (change.object.to_string(), normalised(change)))
            .collect()
    };
    let (before, now) = (changed(reviewed), changed(fresh));
    for (object, reviewed, now) in pairs(&before, &now) {
        if reviewed != now {
            let (reviewed, now) = (object_summary(reviewed), object_summary(now));
            differences.push(Difference::Object {
                object,
                now: distinct(&reviewed, now),
                reviewed,
            });
        }
    }
}

/// Each key of either map, with its value on both sides.
fn pairs<'a, T>(
    before: &'a BTreeMap<String, T>,
    now: &'a BTreeMap<String, T>,
) -> Vec<(String, Option<&'a T>, Option<&'a T>)> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(now.keys()).collect();
    keys.into_iter()
        .map(|key| (key.clone(), before.get(key), now.get(key)))
        .collect()
}

/// `now`, or `now` said to differ in its values when it reads as `reviewed`.
fn distinct(reviewed: &str, now: String) -> String {
    match now == reviewed {
        true => format!("{now} with other values"),
        false => now,
    }
}

/// `update (replicas)`-like: the action and the fields' paths, never their values.
fn resource_summary(change: Option<&ResourceChange>) -> String {
    match change {
        None => "no change".into(),
        Some(change) => with_paths(
            &format!("{:?}", change.action).to_lowercase(),
            change.attributes.iter().map(|field| field.path.as_str()),
        ),
    }
}

fn object_summary(change: Option<&ObjectChange>) -> String {
    match change {
        None => "no change".into(),
        Some(change) => with_paths(
            &format!("{:?}", change.action).to_lowercase(),
            change.fields.iter().map(|field| field.path.as_str()),
        ),
    }
}

fn with_paths<'a>(action: &str, paths: impl Iterator<Item = &'a str>) -> String {
    let paths: Vec<&str> = paths.collect();
    match paths.is_empty() {
        true => action.to_string(),
        false => format!("{action} of {}", paths.join(", ")),
    }
}

/// An object's change as compared: its image digests dropped (see [`compare`]).
fn normalised(change: &ObjectChange) -> ObjectChange {
    let mut change = change.clone();
    for field in &mut change.fields {
        for value in [&mut field.before, &mut field.after].into_iter().flatten() {
            *value = without_digests(value);
        }
    }
    if let Some(diff) = &mut change.diff {
        *diff = without_digests(diff);
    }
    change
}

/// `text` without any `@sha256:<64 hex digits>`.
fn without_digests(text: &str) -> String {
    const MARK: &str = "@sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let hex = after
            .bytes()
            .take_while(|byte| byte.is_ascii_hexdigit())
            .count();
        out.push_str(&rest[..at]);
        if hex == 64 {
            rest = &after[hex..];
        } else {
            out.push_str(MARK);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        FieldChange, GitInfo, ImageAction, ImageChange, KubernetesPart, ObjectRef, ResourceAction,
        TerraformPart,
    };

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn plan(tree: &str, replicas: &str) -> Plan {
        let mut plan = Plan::new(
            "production",
            GitInfo {
                sha: "abc".into(),
                dirty: false,
            },
            false,
        );
        plan.tree = Some(tree.into());
        plan.images = vec![ImageChange {
            app: "web".into(),
            reference: "reg/web:t1".into(),
            action: ImageAction::Build,
            reason: None,
        }];
        let web = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("blog".into()),
            name: "web".into(),
        };
        plan.kubernetes = Some(KubernetesPart {
            hooks: Vec::new(),
            objects: vec![ObjectChange {
                object: web,
                action: ObjectAction::Update,
                source: Some("k8s/web.yaml:1".into()),
                fields: vec![
                    FieldChange::new("spec.replicas", Some("2".into()), Some(replicas.into())),
                    FieldChange::new(
                        "spec.template.spec.containers[name=web].image",
                        Some("reg/web:t0".into()),
                        Some("reg/web:t1".into()),
                    ),
                ],
                diff: None,
            }],
        });
        plan.terraform = Some(TerraformPart {
            resources: vec![ResourceChange {
                address: "aws_s3_bucket.assets".into(),
                action: ResourceAction::Create,
                replace_reasons: vec![],
                attributes: vec![],
            }],
            outputs: vec![],
        });
        plan
    }

    #[test]
    fn the_same_tree_and_changes_are_the_reviewed_plan_whatever_the_digests() {
        let reviewed = plan("t", "3");
        let mut fresh = plan("t", "3");
        fresh.git.sha = "merge".into();
        // Built since the review: the same content tag, now with its digest.
        fresh.images[0].reference = format!("reg/web:t1@sha256:{DIGEST}");
        fresh.images[0].action = ImageAction::Reuse;
        let image = &mut fresh.kubernetes.as_mut().unwrap().objects[0].fields[1];
        image.after = Some(format!("reg/web:t1@sha256:{DIGEST}"));
        assert_eq!(compare(&reviewed, &fresh), vec![]);
    }

    /// A hook reviewed to run that no longer runs (or the other way round) is a difference.
    #[test]
    fn a_hook_that_runs_otherwise_is_named() {
        let mut reviewed = plan("t", "3");
        reviewed
            .kubernetes
            .as_mut()
            .unwrap()
            .hooks
            .push(crate::plan::PlannedHook {
                phase: "PreSync".into(),
                object: "Job blog/migrate-".into(),
                source: "k8s/migrate.yaml:1:1".into(),
                weight: 0,
                detail: "BeforeHookCreation".into(),
            });
        let differences = compare(&reviewed, &plan("t", "3"));
        assert_eq!(differences.len(), 1, "{differences:?}");
        let text = differences[0].to_string();
        assert!(text.contains("PreSync hook Job blog/migrate-"), "{text}");
        assert!(text.contains("does not run"), "{text}");
    }

    #[test]
    fn a_moved_tree_or_a_changed_world_is_named() {
        let reviewed = plan("t", "3");
        let moved = compare(&reviewed, &plan("u", "3"));
        assert_eq!(
            moved,
            vec![Difference::TreeMoved {
                reviewed: "t".into(),
                current: "u".into()
            }]
        );
        // Same tree, someone scaled the Deployment: the object is named, values are not.
        let mut fresh = plan("t", "3");
        fresh.kubernetes.as_mut().unwrap().objects[0].fields[0].before = Some("5".into());
        let differences = compare(&reviewed, &fresh);
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert_eq!(
            differences[0].to_string(),
            "Deployment blog/web: update of spec.replicas, spec.template.spec.containers[name=web].image in the reviewed plan, update of spec.replicas, spec.template.spec.containers[name=web].image with other values now"
        );
        // A Terraform resource that is no longer created, an image that is new.
        let mut fresh = plan("t", "3");
        fresh.terraform = None;
        fresh.images.push(ImageChange {
            app: "api".into(),
            reference: "reg/api:t9".into(),
            action: ImageAction::Build,
            reason: None,
        });
        let lines: Vec<String> = compare(&reviewed, &fresh)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "image `api`: absent in the reviewed plan, reg/api:t9 now",
                "`aws_s3_bucket.assets`: create in the reviewed plan, no change now"
            ]
        );
        let mut untreed = plan("t", "3");
        untreed.tree = None;
        assert_eq!(compare(&untreed, &plan("t", "3")), vec![Difference::NoTree]);
        let mut dirty = plan("t", "3");
        dirty.git.dirty = true;
        assert_eq!(compare(&reviewed, &dirty), vec![Difference::Dirty]);
    }

    #[test]
    fn digests_are_dropped_only_when_whole() {
        assert_eq!(
            without_digests(&format!("a@sha256:{DIGEST} b@sha256:12")),
            "a b@sha256:12"
        );
        assert_eq!(without_digests("plain"), "plain");
    }
}
