//! The cross-layer plan: one model and one JSON schema for images, Terraform and Kubernetes, and
//! the drift report built on the same parts.
//!
//! Every stage's result becomes its part in the plain, serialisable types below, here and only
//! here ([`images`], [`terraform`], [`kubernetes`]), already redacted: sensitive Terraform values
//! and Secret data never reach this module in clear text. The
//! renderers ([`human`], [`markdown`], and `serde_json` for `--output json`) only format.
//!
//! The JSON schema is versioned by [`FORMAT_VERSION`]: fields may be added in a minor change;
//! renaming or removing a field bumps the version.

pub mod human;
pub mod images;
pub mod kubernetes;
pub mod markdown;
pub mod report;
pub mod reviewed;
pub mod saved;
pub mod terraform;

use serde::{Deserialize, Serialize};

/// Version of the JSON schema of [`Plan`] and [`DriftReport`]. 2: drift fields are plan fields
/// (`before`/`after`, was `live`/`git`), with `sensitive` and `manager`.
pub const FORMAT_VERSION: u32 = 2;

pub use gitship_foundation::model::{KNOWN_AFTER_APPLY, REDACTED};

/// One environment's plan across all layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub environment: String,
    /// True when computed against the simulated cluster (`--sandbox`).
    pub sandbox: bool,
    /// The revision the plan was computed for: the work tree, `--rev REV`, or the pinned
    /// revision of a pinned environment ([`Plan::pin`] then keeps the work tree's commit).
    pub git: GitInfo,
    /// The id of the planned commit's tree (absent with uncommitted changes): what
    /// `deploy --reviewed` compares ([`reviewed`]), since a merge of exactly what was reviewed
    /// has the same tree under another SHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// The CI run that made the plan (its URL), where one did: where it was reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run: Option<String>,
    /// The environment's pin, when it is pinned (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    /// The cluster and registry the environment takes from Terraform outputs that have no
    /// value yet (an environment never deployed): its objects are then all to be created, its
    /// images built for a registry known after apply (absent when every value is known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_after_apply: Vec<KnownAfterApply>,
    pub images: Vec<ImageChange>,
    /// Containers whose bare `image: <app>` (Skaffold style) gets the app's image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_substitutions: Vec<ImageSubstitution>,
    /// `None` when the repository has no Terraform layer.
    pub terraform: Option<TerraformPart>,
    /// `None` when the repository has no manifests.
    pub kubernetes: Option<KubernetesPart>,
    /// The preflight's checks (all passed: a failed preflight stops the plan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightCheck>,
}

/// A target of the environment known only after Terraform's apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownAfterApply {
    /// `cluster` or `registry`.
    pub target: String,
    /// The Terraform output it comes from.
    pub output: String,
    /// Where the config names it (`config/dev.yaml:3:15`).
    pub config: String,
}

impl KnownAfterApply {
    /// `cluster: known after apply (Terraform output `kubeconfig`, config/dev.yaml:3:15)`.
    pub fn line(&self) -> String {
        format!(
            "{}: known after apply (Terraform output `{}`, {})",
            self.target, self.output, self.config
        )
    }
}

/// One preflight check's result (see `ops::preflight`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightCheck {
    /// `cluster`, `namespace`, `registry`, `terraform` or `manifests`.
    pub check: String,
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl PreflightCheck {
    pub fn passed(check: &str, detail: impl Into<String>) -> PreflightCheck {
        PreflightCheck {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn failed(check: &str, detail: impl Into<String>, hint: Option<String>) -> PreflightCheck {
        PreflightCheck {
            check: check.into(),
            ok: false,
            detail: detail.into(),
            hint,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    pub sha: String,
    pub dirty: bool,
}

/// The environment's pin (`gitship pin`, `rollback`), as `plan` and `drift` report it: the
/// environment is fixed at `sha` while the work tree is at `git_sha`. Unless `--rev` says
/// otherwise, both compare the cluster with `sha`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// The pinned commit: what the agent heals to, and the only one `deploy` takes without
    /// `--force`.
    pub sha: String,
    /// The work tree's commit (`HEAD`): what a deploy without `--rev` would deploy.
    pub git_sha: String,
    /// Who pinned it (`user@host`).
    pub by: String,
    /// Why: `rollback` or `pin`.
    pub reason: String,
    /// When it was pinned.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Which report a pin line heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Plan,
    Drift,
}

impl PinInfo {
    /// The line a plan or drift report of `environment`, computed for the revision `compared`,
    /// says the pin with: `` `production` is pinned at <sha> (<reason> by <who>, <time>), Git at
    /// <sha>: `` then what was compared and what a deploy does. Every renderer says it so.
    pub fn line(&self, environment: &str, compared: &str, report: Report) -> String {
        use crate::git::short_sha;
        let pinned = format!(
            "`{environment}` is pinned at {} ({} by {}, {}), Git at {}",
            short_sha(&self.sha),
            self.reason,
            self.by,
            self.at.format("%Y-%m-%d %H:%M:%SZ"),
            short_sha(&self.git_sha)
        );
        let resume = format!("`gitship resume {environment}` follows Git again");
        let (what, see_git) = match report {
            Report::Plan => ("planned", "`--rev HEAD` plans Git"),
            Report::Drift => ("compared with", "`--rev HEAD` compares with Git"),
        };
        let (compared, consequence) = if compared != self.sha {
            let revision = match compared == self.git_sha {
                true => "Git".to_string(),
                false => short_sha(compared).to_string(),
            };
            (
                format!("{what} {revision} (`--rev`), not the pinned revision"),
                format!(
                    "a deploy of another revision than the pinned one is refused without `--force`; {resume}"
                ),
            )
        } else if self.sha == self.git_sha {
            (format!("{what} the pinned revision"), resume)
        } else if report == Report::Plan {
            (
                format!("{what} the pinned revision"),
                format!("a deploy of Git is refused while pinned; {resume}, {see_git}"),
            )
        } else {
            (
                format!("{what} the pinned revision"),
                format!("{resume}, {see_git}"),
            )
        };
        format!("{pinned}: {compared} ({consequence})")
    }
}

/// Whether an app's image is built or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageAction {
    Build,
    Reuse,
    /// The registry was not asked (`--sandbox`): the reference is computed, nothing is built.
    Unchecked,
    /// No object of the environment names the app's image: it is neither built nor pushed.
    Unused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    pub app: String,
    /// `<registry>/<app>:<tag>` (with `@<digest>` when reused).
    pub reference: String,
    pub action: ImageAction,
    /// Why it is built (e.g. the tag is missing in the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A container whose `image:` is exactly an app's name, given the app's image (see
/// `render::bare_images`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSubstitution {
    /// The object, as shown to people (`Deployment shop/adservice`).
    pub object: String,
    /// The container (`spec.template.spec.containers[server]`).
    pub container: String,
    /// Where the object is declared (`file:line`).
    pub source: String,
    /// The image as written: the app's name.
    pub image: String,
    /// The image it becomes.
    pub reference: String,
}

/// What Terraform will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceAction {
    Create,
    Update,
    Replace,
    Destroy,
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    pub action: ResourceAction,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_reasons: Vec<String>,
    /// Attribute-level changes, values already redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<FieldChange>,
}

/// What happens to a Terraform output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputAction {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChange {
    pub name: String,
    pub action: OutputAction,
    pub sensitive: bool,
    /// Rendered value (redacted when sensitive; [`KNOWN_AFTER_APPLY`] when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerraformPart {
    pub resources: Vec<ResourceChange>,
    pub outputs: Vec<OutputChange>,
}

/// A Kubernetes object's identity as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What the deploy will do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectAction {
    Create,
    Update,
    Replace,
    Prune,
    Unchanged,
}

/// One changed field, as `plan`, `diff` and `drift` all show it: the path (list items by key,
/// `spec.template.spec.containers[name=app].image`), the live value (`before`) and the value a
/// deploy sets (`after`), rendered as scalars or compact JSON and redacted; `None` means absent.
/// A sensitive value (a Secret's data) is never shown: both sides read `<sensitive>` and
/// `sensitive` is set, so the fact that it changes is. `manager` names the field manager that
/// changed the live value, where one other than gitship did (drift).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}

impl FieldChange {
    /// A change without a manager, of a value that is not sensitive.
    pub fn new(path: impl Into<String>, before: Option<String>, after: Option<String>) -> Self {
        FieldChange {
            path: path.into(),
            before,
            after,
            sensitive: false,
            manager: None,
        }
    }

    /// `+` for a field a deploy adds, `-` for one it removes, `~` for one it changes.
    pub fn symbol(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, Some(_)) => "+",
            (Some(_), None) => "-",
            _ => "~",
        }
    }

    /// The one line every renderer prints for the field:
    /// `spec.replicas: 10 -> 3 (changed by kubectl)`, `data.password: <sensitive> (changed)`,
    /// `spec.template.spec.containers[name=app].env[name=MODE]: (absent) -> "debug"`.
    pub fn line(&self) -> String {
        let body = if self.sensitive {
            let fact = match self.symbol() {
                "+" => "added",
                "-" => "removed",
                _ => "changed",
            };
            format!("{}: {REDACTED} ({fact})", self.path)
        } else {
            format!(
                "{}: {} -> {}",
                self.path,
                self.before.as_deref().unwrap_or("(absent)"),
                self.after.as_deref().unwrap_or("(absent)")
            )
        };
        match &self.manager {
            Some(manager) => format!("{body} (changed by {manager})"),
            None => body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChange {
    pub object: ObjectRef,
    pub action: ObjectAction,
    /// Where the object is declared (`file:line`), absent for objects to prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// A unified diff (live -> desired) of the managed fields, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KubernetesPart {
    pub objects: Vec<ObjectChange>,
    /// The hooks a deploy runs, per phase in order, and the objects it skips (ARCHITECTURE.md,
    /// "Waves and hooks"): no desired objects, so in no count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<PlannedHook>,
}

/// A hook a deploy runs in one phase (a hook of several phases has one entry per phase), or an
/// object it never applies (`phase: Skip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedHook {
    /// `PreSync`, `Sync`, `PostSync`, `SyncFail`, or `Skip`.
    pub phase: String,
    /// `Job blog/migrate-` (a `generateName` prefix: each run gets a new name).
    pub object: String,
    /// Where it is declared (`file:line:column`).
    pub source: String,
    /// Its order within its phase (for Sync: its wave).
    pub weight: i64,
    /// `BeforeHookCreation, HookSucceeded`, or `none`; for `Skip`, why it is skipped.
    pub detail: String,
}

impl PlannedHook {
    /// `PreSync   Job blog/migrate- (deploy/migrate.yaml:1:1), delete policy BeforeHookCreation`
    pub fn line(&self) -> String {
        let detail = if self.phase == "Skip" {
            format!("not applied: {}", self.detail)
        } else {
            format!("weight {}, delete policy {}", self.weight, self.detail)
        };
        format!(
            "{:<9} {} ({}), {detail}",
            self.phase, self.object, self.source
        )
    }
}

/// Counts per layer, for summary lines and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Counts {
    pub fn changes(&self) -> usize {
        self.create + self.update + self.replace + self.delete
    }
}

impl Plan {
    pub fn new(environment: impl Into<String>, git: GitInfo, sandbox: bool) -> Self {
        Plan {
            format_version: FORMAT_VERSION,
            environment: environment.into(),
            sandbox,
            git,
            tree: None,
            ci_run: None,
            pin: None,
            known_after_apply: Vec::new(),
            images: Vec::new(),
            image_substitutions: Vec::new(),
            terraform: None,
            kubernetes: None,
            preflight: Vec::new(),
        }
    }

    pub fn image_counts(&self) -> Counts {
        let count = |action: ImageAction| self.images.iter().filter(|i| i.action == action).count();
        let build = count(ImageAction::Build);
        Counts {
            create: build,
            unchanged: self
                .images
                .len()
                .saturating_sub(build)
                .saturating_sub(count(ImageAction::Unused)),
            ..Counts::default()
        }
    }

    pub fn terraform_counts(&self) -> Counts {
        let mut counts = Counts::default();
        for r in self.terraform.iter().flat_map(|t| &t.resources) {
            match r.action {
                ResourceAction::Create => counts.create += 1,
                ResourceAction::Update => counts.update += 1,
                ResourceAction::Replace => counts.replace += 1,
                ResourceAction::Destroy => counts.delete += 1,
                ResourceAction::Read => {}
            }
        }
        counts
    }

    pub fn kubernetes_counts(&self) -> Counts {
        let mut counts = Counts::default();
        for o in self.kubernetes.iter().flat_map(|k| &k.objects) {
            match o.action {
                ObjectAction::Create => counts.create += 1,
                ObjectAction::Update => counts.update += 1,
                ObjectAction::Replace => counts.replace += 1,
                ObjectAction::Prune => counts.delete += 1,
                ObjectAction::Unchanged => counts.unchanged += 1,
            }
        }
        counts
    }

    /// Whether applying this plan would change anything in any layer.
    pub fn has_changes(&self) -> bool {
        let output_changes = self
            .terraform
            .as_ref()
            .is_some_and(|t| !t.outputs.is_empty());
        self.image_counts().create > 0
            || self.terraform_counts().changes() > 0
            || output_changes
            || self.kubernetes_counts().changes() > 0
    }
}

/// Why a Kubernetes object is reported as drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// Fields gitship manages hold other values than Git declares.
    Modified,
    /// The object is in the inventory but no longer in the cluster.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDrift {
    pub object: ObjectRef,
    pub kind: DriftKind,
    /// What a deploy would change, with the manager that changed each live value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// What a drifted object that was deleted says in place of its fields.
pub const DELETED: &str = "(deleted: in the inventory, missing from the cluster)";

/// One thing a drift report says a deploy would put back: a field of an object, or the whole
/// object when it was deleted.
///
/// This is the one description of drift: `drift` (human and Markdown), the agent's status,
/// Events, heal records and status page all print [`Drifted::line`] or [`Drifted::detail`],
/// whose field part is [`FieldChange::line`], the line `plan` and `diff` print for a change. A
/// sensitive value never shows: the line says `<sensitive>` and whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drifted<'a> {
    pub object: &'a ObjectRef,
    /// The drifted field; `None` for an object that was deleted.
    pub field: Option<&'a FieldChange>,
}

impl Drifted<'_> {
    /// What drifted, the same at every check that finds it whatever the values:
    /// `Deployment blog/web spec.replicas`, `ConfigMap blog/site (deleted)`.
    pub fn key(&self) -> String {
        match self.field {
            Some(field) => format!("{} {}", self.object, field.path),
            None => format!("{} (deleted)", self.object),
        }
    }

    /// How it drifted, without the object: `spec.replicas: 10 -> 3 (changed by kubectl)`,
    /// `data.password: <sensitive> (changed)`, or [`DELETED`].
    pub fn detail(&self) -> String {
        match self.field {
            Some(field) => field.line(),
            None => DELETED.to_string(),
        }
    }

    /// The whole line: `Deployment blog/web spec.replicas: 10 -> 3 (changed by kubectl)`,
    /// `ConfigMap blog/site (deleted: in the inventory, missing from the cluster)`.
    pub fn line(&self) -> String {
        format!("{} {}", self.object, self.detail())
    }

    /// The field manager that changed the live value, when the report names one.
    pub fn manager(&self) -> Option<&str> {
        self.field.and_then(|field| field.manager.as_deref())
    }
}

impl ObjectDrift {
    /// What drifted in the object: each field, or the object itself when it was deleted.
    pub fn drifted(&self) -> Vec<Drifted<'_>> {
        match self.kind {
            DriftKind::Deleted => vec![Drifted {
                object: &self.object,
                field: None,
            }],
            DriftKind::Modified => self
                .fields
                .iter()
                .map(|field| Drifted {
                    object: &self.object,
                    field: Some(field),
                })
                .collect(),
        }
    }
}

impl ResourceChange {
    /// A Terraform resource changed outside Terraform, as one line:
    /// `update aws_s3_bucket.assets (changed outside Terraform)`.
    pub fn drift_line(&self) -> String {
        let action = match self.action {
            ResourceAction::Create => "create",
            ResourceAction::Update => "update",
            ResourceAction::Replace => "replace",
            ResourceAction::Destroy => "destroy",
            ResourceAction::Read => "read",
        };
        format!("{action} {} (changed outside Terraform)", self.address)
    }
}

/// What `gitship drift` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub format_version: u32,
    pub environment: String,
    pub sandbox: bool,
    /// The revision the cluster was compared with: the work tree, `--rev REV`, or the pinned
    /// revision of a pinned environment ([`DriftReport::pin`] then keeps the work tree's
    /// commit).
    pub git: GitInfo,
    /// The environment's pin, when it is pinned (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    pub kubernetes: Vec<ObjectDrift>,
    /// Terraform resources whose real state differs from the configuration or the state.
    pub terraform: Vec<ResourceChange>,
    /// How many differences the environment's ignore rules suppressed.
    pub ignored: usize,
}

impl DriftReport {
    pub fn new(environment: impl Into<String>, git: GitInfo, sandbox: bool) -> Self {
        DriftReport {
            format_version: FORMAT_VERSION,
            environment: environment.into(),
            sandbox,
            git,
            pin: None,
            kubernetes: Vec::new(),
            terraform: Vec::new(),
            ignored: 0,
        }
    }

    pub fn drifted(&self) -> bool {
        !self.kubernetes.is_empty() || !self.terraform.is_empty()
    }
}

/// What an environment without changes or drift matches, for the closing line of a report:
/// `Git`, or `the pinned revision <sha>` when the report compared the pinned revision.
pub fn matched(git: &GitInfo, pin: Option<&PinInfo>) -> String {
    match pin {
        Some(pin) if pin.sha == git.sha && pin.sha != pin.git_sha => {
            format!("the pinned revision {}", crate::git::short_sha(&pin.sha))
        }
        _ => "Git".to_string(),
    }
}

/// A unified diff of two texts (`live` -> `git`), empty when equal.
pub fn unified_diff(before: &str, after: &str, before_name: &str, after_name: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(before_name, after_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("blog".into()),
            name: "web".into(),
        }
    }

    #[test]
    fn a_drifted_field_and_a_deleted_object_are_described_once_for_everyone() {
        let scaled = ObjectDrift {
            object: deployment(),
            kind: DriftKind::Modified,
            fields: vec![
                FieldChange {
                    manager: Some("kubectl".into()),
                    ..FieldChange::new("spec.replicas", Some("10".into()), Some("3".into()))
                },
                FieldChange {
                    sensitive: true,
                    ..FieldChange::new(
                        "data.password",
                        Some(REDACTED.into()),
                        Some(REDACTED.into()),
                    )
                },
            ],
        };
        let drifted = scaled.drifted();
        let keys: Vec<String> = drifted.iter().map(Drifted::key).collect();
        assert_eq!(
            keys,
            [
                "Deployment blog/web spec.replicas",
                "Deployment blog/web data.password"
            ]
        );
        assert_eq!(
            drifted[0].line(),
            "Deployment blog/web spec.replicas: 10 -> 3 (changed by kubectl)"
        );
        assert_eq!(drifted[0].detail(), scaled.fields[0].line());
        assert_eq!(drifted[0].manager(), Some("kubectl"));
        assert_eq!(
            drifted[1].line(),
            "Deployment blog/web data.password: <sensitive> (changed)"
        );
        let deleted = ObjectDrift {
            object: deployment(),
            kind: DriftKind::Deleted,
            fields: Vec::new(),
        };
        let drifted = deleted.drifted();
        assert_eq!(drifted.len(), 1);
        assert_eq!(drifted[0].key(), "Deployment blog/web (deleted)");
        assert_eq!(
            drifted[0].line(),
            "Deployment blog/web (deleted: in the inventory, missing from the cluster)"
        );
        assert_eq!(drifted[0].manager(), None);
        let bucket = ResourceChange {
            address: "aws_s3_bucket.assets".into(),
            action: ResourceAction::Update,
            replace_reasons: Vec::new(),
            attributes: Vec::new(),
        };
        assert_eq!(
            bucket.drift_line(),
            "update aws_s3_bucket.assets (changed outside Terraform)"
        );
    }

    /// A bare image name the render gave an app's image, for the renderers' tests.
    pub(crate) fn sample_substitution() -> ImageSubstitution {
        ImageSubstitution {
            object: "Deployment shop/adservice".into(),
            container: "spec.template.spec.containers[server]".into(),
            source: "kubernetes-manifests/adservice.yaml:12".into(),
            image: "adservice".into(),
            reference: "registry.local/adservice@sha256:abc".into(),
        }
    }

    pub(crate) fn sample() -> Plan {
        let mut plan = Plan::new(
            "production",
            GitInfo {
                sha: "abc123".into(),
                dirty: false,
            },
            false,
        );
        plan.images.push(ImageChange {
            app: "backend".into(),
            reference: "registry.local/blog/backend:3f2a".into(),
            action: ImageAction::Build,
            reason: Some("tag 3f2a missing in registry.local/blog".into()),
        });
        plan.terraform = Some(TerraformPart {
            resources: vec![ResourceChange {
                address: "terraform_data.database".into(),
                action: ResourceAction::Update,
                replace_reasons: vec![],
                attributes: vec![FieldChange::new(
                    "input.size",
                    Some("small".into()),
                    Some("large".into()),
                )],
            }],
            outputs: vec![],
        });
        plan.kubernetes = Some(KubernetesPart {
            hooks: Vec::new(),
            objects: vec![ObjectChange {
                object: ObjectRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("blog".into()),
                    name: "blog-backend".into(),
                },
                action: ObjectAction::Update,
                source: Some("infrastructure/kubernetes/backend.yaml:1".into()),
                fields: vec![FieldChange::new(
                    "spec.replicas",
                    Some("10".into()),
                    Some("3".into()),
                )],
                diff: Some(unified_diff(
                    "spec:\n  replicas: 10\n",
                    "spec:\n  replicas: 3\n",
                    "live",
                    "git",
                )),
            }],
        });
        plan
    }

    #[test]
    fn counts_and_changes() {
        let plan = sample();
        assert!(plan.has_changes());
        assert_eq!(plan.kubernetes_counts().update, 1);
        assert_eq!(plan.terraform_counts().update, 1);
        assert_eq!(plan.image_counts().create, 1);
        let empty = Plan::new(
            "dev",
            GitInfo {
                sha: "x".into(),
                dirty: false,
            },
            true,
        );
        assert!(!empty.has_changes());
    }

    #[test]
    fn json_round_trips() {
        let plan = sample();
        let text = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plan);
        assert!(text.contains("\"format_version\":2"));
    }

    pub(crate) fn sample_pin(sha: &str, git_sha: &str) -> PinInfo {
        PinInfo {
            sha: sha.into(),
            git_sha: git_sha.into(),
            by: "ann@laptop".into(),
            reason: "rollback".into(),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn the_pin_line_says_what_was_compared_and_what_a_deploy_does() {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        let pin = sample_pin(&a, &b);
        let head = "`production` is pinned at aaaaaaaaaaaa (rollback by ann@laptop, 2023-11-14 22:13:20Z), Git at bbbbbbbbbbbb: ";
        let resume = "`gitship resume production` follows Git again";
        assert_eq!(
            pin.line("production", &a, Report::Plan),
            format!(
                "{head}planned the pinned revision (a deploy of Git is refused while pinned; {resume}, `--rev HEAD` plans Git)"
            )
        );
        assert_eq!(
            pin.line("production", &a, Report::Drift),
            format!(
                "{head}compared with the pinned revision ({resume}, `--rev HEAD` compares with Git)"
            )
        );
        let overridden = format!(
            "a deploy of another revision than the pinned one is refused without `--force`; {resume})"
        );
        assert_eq!(
            pin.line("production", &b, Report::Drift),
            format!("{head}compared with Git (`--rev`), not the pinned revision ({overridden}")
        );
        assert_eq!(
            pin.line("production", &c, Report::Plan),
            format!("{head}planned cccccccccccc (`--rev`), not the pinned revision ({overridden}")
        );
        let at_head = sample_pin(&a, &a);
        assert!(
            at_head
                .line("production", &a, Report::Drift)
                .ends_with(&format!("compared with the pinned revision ({resume})")),
        );
    }

    #[test]
    fn a_clean_report_matches_git_or_the_pinned_revision() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let git = |sha: &str| GitInfo {
            sha: sha.into(),
            dirty: false,
        };
        assert_eq!(matched(&git(&a), None), "Git");
        let pin = sample_pin(&a, &b);
        assert_eq!(
            matched(&git(&a), Some(&pin)),
            "the pinned revision aaaaaaaaaaaa"
        );
        assert_eq!(matched(&git(&b), Some(&pin)), "Git", "`--rev HEAD`");
        assert_eq!(matched(&git(&a), Some(&sample_pin(&a, &a))), "Git");
    }

    #[test]
    fn the_pin_is_in_the_json_only_when_pinned() {
        let mut report = DriftReport::new("production", sample().git, false);
        let text = serde_json::to_string(&report).unwrap();
        assert!(!text.contains("\"pin\""), "{text}");
        report.pin = Some(sample_pin(&"a".repeat(40), &"b".repeat(40)));
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["pin"]["sha"], "a".repeat(40));
        assert_eq!(value["pin"]["git_sha"], "b".repeat(40));
        assert_eq!(value["pin"]["by"], "ann@laptop");
        assert_eq!(value["pin"]["reason"], "rollback");
        assert_eq!(value["pin"]["at"], "2023-11-14T22:13:20Z");
        let back: DriftReport = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn diff_is_empty_when_equal() {
        assert_eq!(unified_diff("a\n", "a\n", "x", "y"), "");
        let diff = unified_diff("a\n", "b\n", "live", "git");
        assert!(diff.contains("-a") && diff.contains("+b"), "{diff}");
    }
}
