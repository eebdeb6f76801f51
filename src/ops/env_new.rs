//! `env new NAME --from ENV`: bootstrap a new environment's config from an existing one.
//!
//! The source file is copied as text (comments and layout survive) with the namespace and the
//! Terraform workspace (or the environment's name in `backend_config` values, so the new
//! environment never shares the source's state) renamed. An existing file is never overwritten.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::repo::config::{find, is_dns_label};
use crate::repo::yaml::{self, Node, NodeKind};
use crate::repo::{EnvConfig, Repository};
use gitship_foundation::diagnostics::{UserError, user_error};

/// What `env new` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNewReport {
    /// The new config file, relative to the repository.
    pub file: PathBuf,
    /// What was renamed (`namespace `a` -> `b``, ...).
    pub notes: Vec<String>,
    /// What the user should check by hand.
    pub warnings: Vec<String>,
}

/// Create `config/<name>.yaml` from `from`'s config; `check` sees the new config before it is
/// written and may refuse it (the command's: its namespace must not hold a preview's record).
pub fn env_new(
    repo_dir: Option<&Path>,
    name: &str,
    from: &str,
    namespace: Option<&str>,
    check: impl FnOnce(&EnvConfig) -> Result<()>,
) -> Result<EnvNewReport> {
    check_dns_label(
        name,
        "environment name",
        "environment names are DNS labels: lowercase letters, digits and `-`, at most 63 characters",
    )?;
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let source = repo.load_env(from).map_err(user_error)?;
    let (target, shown) = target_file(&repo, &source, name)?;
    let new_namespace = match namespace {
        Some(ns) => ns.to_string(),
        None if source.cluster.namespace.contains(from) => {
            source.cluster.namespace.replace(from, name)
        }
        None => format!("{}-{name}", source.cluster.namespace),
    };
    check_dns_label(
        &new_namespace,
        "namespace",
        "pass a DNS label with `--namespace`",
    )?;

    let text = std::fs::read_to_string(&source.file).map_err(|err| {
        UserError::bare(format!(
            "cannot read `{}`: {err}",
            source.spans.file.display()
        ))
    })?;
    let renames = Renames {
        from,
        name,
        new_namespace: &new_namespace,
    };
    let planned = plan_edits(&repo.root, &source, &text, &renames)?;
    let new_text = apply_edits(&source, &text, &planned.edits, &renames)?;
    // The new config must itself be valid before it is written.
    let config = EnvConfig::parse(name, &target, &shown, &new_text).map_err(user_error)?;
    check(&config)?;
    super::repo_files::write(&repo.root, &target, &new_text, false)?;
    Ok(EnvNewReport {
        file: shown,
        notes: planned.notes,
        warnings: planned.warnings,
    })
}

fn check_dns_label(value: &str, what: &str, hint: &str) -> Result<()> {
    if is_dns_label(value) {
        return Ok(());
    }
    Err(UserError::usage(format!("invalid {what} `{value}`"), hint).into())
}

/// The new file's path (absolute, and as shown), refusing an existing environment.
fn target_file(repo: &Repository, source: &EnvConfig, name: &str) -> Result<(PathBuf, PathBuf)> {
    let extension = source
        .file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml");
    let target = repo.layout.config_dir.join(format!("{name}.{extension}"));
    let shown = repo.relative(&target).to_path_buf();
    let existing = super::repo_files::existing(&repo.root, std::slice::from_ref(&target))?;
    if repo.environments.contains_key(name) || !existing.is_empty() {
        return Err(UserError::new(
            format!(
                "environment `{name}` already exists (`{}`)",
                shown.display()
            ),
            "gitship never overwrites a config: choose another name, or delete the file first",
        )
        .into());
    }
    Ok((target, shown))
}

/// The names being changed.
struct Renames<'a> {
    from: &'a str,
    name: &'a str,
    new_namespace: &'a str,
}

/// The edits to the source's text, what they do, and what to check by hand.
struct PlannedEdits {
    edits: Vec<Edit>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

fn plan_edits(
    repo_root: &Path,
    source: &EnvConfig,
    text: &str,
    renames: &Renames<'_>,
) -> Result<PlannedEdits> {
    let root = yaml::parse_single(text).map_err(|err| {
        UserError::bare(format!(
            "{}:{}:{}: {}",
            source.spans.file.display(),
            err.line,
            err.column,
            err.message
        ))
    })?;
    let mut planned = PlannedEdits {
        edits: Vec::new(),
        notes: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(NodeKind::Mapping(top)) = root.as_ref().map(|r| &r.kind) else {
        return Ok(planned);
    };
    if let Some(NodeKind::Mapping(cluster)) = find(top, "cluster").map(|n| &n.kind)
        && let Some(node) = find(cluster, "namespace")
    {
        planned.edits.push(Edit::new(
            node,
            &source.cluster.namespace,
            renames.new_namespace,
        ));
        planned.notes.push(format!(
            "namespace `{}` -> `{}`",
            source.cluster.namespace, renames.new_namespace
        ));
    }
    if let Some(NodeKind::Mapping(terraform)) = find(top, "terraform").map(|n| &n.kind) {
        plan_terraform_edits(source, terraform, renames, &mut planned);
    }
    if let Some(NodeKind::Mapping(kubernetes)) = find(top, "kubernetes").map(|n| &n.kind)
        && let Some(node) = find(kubernetes, "path")
        && let Some(path) = &source.kubernetes.path
    {
        plan_overlay_edit(repo_root, source, node, path, renames, &mut planned)?;
    }
    if let Some(NodeKind::Mapping(kubernetes)) = find(top, "kubernetes").map(|n| &n.kind)
        && let Some(NodeKind::Sequence(releases)) = find(kubernetes, "helm").map(|n| &n.kind)
    {
        for release in releases {
            plan_helm_values_edits(repo_root, source, release, renames, &mut planned)?;
        }
    }
    Ok(planned)
}

/// A values file of a `kubernetes.helm` chart that names the source environment
/// (`charts/web/values-staging.yaml`): the new environment's file of the same name
/// (`values-production.yaml`) when it exists; when it does not, a refusal, as for an overlay:
/// production must never silently get staging's values.
fn plan_helm_values_edits(
    root: &Path,
    source: &EnvConfig,
    release: &Node,
    renames: &Renames<'_>,
    planned: &mut PlannedEdits,
) -> Result<()> {
    let NodeKind::Mapping(fields) = &release.kind else {
        return Ok(());
    };
    let nodes: Vec<&Node> = match find(fields, "values").map(|n| (n, &n.kind)) {
        Some((_, NodeKind::Sequence(items))) => items.iter().collect(),
        Some((node, NodeKind::Scalar { .. })) => vec![node],
        _ => return Ok(()),
    };
    for node in nodes {
        let Some(path) = node.as_scalar() else {
            continue;
        };
        let Some(mapped) = rename_word(path, renames.from, renames.name) else {
            continue;
        };
        let named = NamedPath {
            node,
            path,
            exists: root.join(&mapped).is_file(),
            mapped,
            role: "renders its chart with its own values",
            gets: "values",
            create: "",
            label: "Helm values",
        };
        edit_named_path(source, named, renames, planned)?;
    }
    Ok(())
}

/// `text` with each whole-word `from` (between characters that are not letters or digits)
/// replaced by `to`; `None` when there is none.
fn rename_word(text: &str, from: &str, to: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut renamed = false;
    while let Some(at) = rest.find(from) {
        let before = rest[..at]
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back());
        let after = rest[at + from.len()..].chars().next();
        let word = before.is_none_or(|c| !c.is_ascii_alphanumeric())
            && after.is_none_or(|c| !c.is_ascii_alphanumeric());
        out.push_str(&rest[..at]);
        out.push_str(if word { to } else { from });
        renamed |= word;
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    renamed.then_some(out)
}

/// `kubernetes.path` naming the source environment (`apps/staging`): the new environment's
/// overlay of the same name (`apps/production`) when it exists; when it does not, a refusal, so
/// that production never silently deploys staging's overlay. A path that names no environment
/// (a shared directory) is kept.
fn plan_overlay_edit(
    root: &Path,
    source: &EnvConfig,
    node: &Node,
    path: &str,
    renames: &Renames<'_>,
    planned: &mut PlannedEdits,
) -> Result<()> {
    let segments: Vec<&str> = path.split('/').collect();
    if !segments.contains(&renames.from) {
        return Ok(());
    }
    let mapped: Vec<&str> = segments
        .iter()
        .map(|s| if *s == renames.from { renames.name } else { s })
        .collect();
    let mapped = mapped.join("/");
    let named = NamedPath {
        node,
        path,
        exists: root.join(&mapped).is_dir(),
        mapped,
        role: "deploys its own overlay",
        gets: "manifests",
        create: "the overlay ",
        label: "kubernetes.path",
    };
    edit_named_path(source, named, renames, planned)
}

/// A path of the source's config that names the source environment, and the new
/// environment's path of the same name.
struct NamedPath<'a> {
    node: &'a Node,
    path: &'a str,
    mapped: String,
    /// Whether `mapped` exists in the repository.
    exists: bool,
    /// What the source environment does with `path` ("deploys its own overlay").
    role: &'static str,
    /// What the new environment would silently share ("manifests").
    gets: &'static str,
    /// How the hint names what to create ("the overlay ").
    create: &'static str,
    /// How the note names the key ("kubernetes.path").
    label: &'static str,
}

/// The edit of `named.path` to `named.mapped`; when `mapped` does not exist, a refusal at the
/// value's file:line, so that the new environment never silently gets the source's.
fn edit_named_path(
    source: &EnvConfig,
    named: NamedPath<'_>,
    renames: &Renames<'_>,
    planned: &mut PlannedEdits,
) -> Result<()> {
    let NamedPath {
        node, path, mapped, ..
    } = &named;
    if !named.exists {
        let location = gitship_foundation::diagnostics::Location::new(
            &source.spans.file,
            node.line,
            node.column,
        );
        return Err(UserError::new(
            format!(
                "{location}: `{}` {} `{path}`, and `{mapped}` does not exist: `{}` would silently get `{}`'s {}",
                renames.from, named.role, renames.name, renames.from, named.gets
            ),
            format!(
                "create {}`{mapped}` (for instance from `{path}`), then run `gitship env new {} --from {}` again",
                named.create, renames.name, renames.from
            ),
        )
        .into());
    }
    planned.edits.push(Edit::new(node, path, mapped));
    planned
        .notes
        .push(format!("{} `{path}` -> `{mapped}`", named.label));
    Ok(())
}

/// The Terraform workspace and the `backend_config` values that name the source environment.
fn plan_terraform_edits(
    source: &EnvConfig,
    terraform: &[(Node, Node)],
    renames: &Renames<'_>,
    planned: &mut PlannedEdits,
) {
    let Renames { from, name, .. } = *renames;
    if let (Some(node), Some(workspace)) =
        (find(terraform, "workspace"), &source.terraform.workspace)
    {
        let renamed = if workspace.contains(from) {
            workspace.replace(from, name)
        } else {
            name.to_string()
        };
        planned.edits.push(Edit::new(node, workspace, &renamed));
        planned
            .notes
            .push(format!("Terraform workspace `{workspace}` -> `{renamed}`"));
    }
    let Some(NodeKind::Mapping(backend)) = find(terraform, "backend_config").map(|n| &n.kind)
    else {
        return;
    };
    let mut renamed_any = false;
    for (key, node) in backend {
        if let Some(value) = node.as_scalar()
            && value.contains(from)
        {
            planned
                .edits
                .push(Edit::new(node, value, &value.replace(from, name)));
            planned.notes.push(format!(
                "backend_config `{}` renamed",
                key.as_scalar().unwrap_or_default()
            ));
            renamed_any = true;
        }
    }
    if !renamed_any && !backend.is_empty() {
        planned.warnings.push(format!(
            "no `terraform.backend_config` value mentions `{from}`: make sure `{name}` does not share `{from}`'s Terraform state"
        ));
    }
}

/// The new file's text: the edits applied, under a header saying where it came from.
fn apply_edits(
    source: &EnvConfig,
    text: &str,
    edits: &[Edit],
    renames: &Renames<'_>,
) -> Result<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    for edit in edits {
        edit.apply(&mut lines).map_err(|message| {
            UserError::bare(format!("{}: {message}", source.spans.file.display()))
        })?;
    }
    let Renames { from, name, .. } = *renames;
    let header = format!(
        "# Bootstrapped from `{from}` by `gitship env new {name} --from {from}`: review the values below.\n"
    );
    Ok(format!("{header}{}", lines.join("\n")))
}

/// Replace a scalar's text on its line.
struct Edit {
    line: usize,
    column: usize,
    old: String,
    new: String,
}

impl Edit {
    fn new(node: &Node, old: &str, new: &str) -> Edit {
        Edit {
            line: node.line,
            column: node.column,
            old: old.to_string(),
            new: new.to_string(),
        }
    }

    fn apply(&self, lines: &mut [String]) -> Result<(), String> {
        let line = lines
            .get_mut(self.line.saturating_sub(1))
            .ok_or_else(|| format!("line {} is missing", self.line))?;
        let start = line
            .char_indices()
            .nth(self.column.saturating_sub(1))
            .map(|(i, _)| i)
            .unwrap_or(line.len());
        let Some(offset) = line[start..].find(&self.old) else {
            return Err(format!("cannot find `{}` on line {}", self.old, self.line));
        };
        let at = start + offset;
        line.replace_range(at..at + self.old.len(), &self.new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::rename_word;

    #[test]
    fn only_whole_words_are_renamed() {
        assert_eq!(
            rename_word("charts/web/values-dev.yaml", "dev", "prod").as_deref(),
            Some("charts/web/values-prod.yaml")
        );
        assert_eq!(
            rename_word("dev/values.dev.yaml", "dev", "prod").as_deref(),
            Some("prod/values.prod.yaml")
        );
        assert_eq!(
            rename_word("charts/devtools/values.yaml", "dev", "prod"),
            None
        );
    }
}
