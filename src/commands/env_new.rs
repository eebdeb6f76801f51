//! `gitship env new NAME --from ENV`: bootstrap a new environment's config from an existing one.
//!
//! The source file is copied as text (comments and layout survive) with the namespace and the
//! Terraform workspace (or the environment's name in `backend_config` values, so the new
//! environment never shares the source's state) renamed. An existing file is never overwritten.

use std::io::Write;

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::repo::config::{find, is_dns_label};
use crate::repo::yaml::{self, Node, NodeKind};
use crate::repo::{EnvConfig, Repository};

pub fn run(ctx: &Context, name: &str, from: &str, namespace: Option<&str>) -> Result<Outcome> {
    if !is_dns_label(name) {
        return Err(UserError::usage(
            format!("invalid environment name `{name}`"),
            "environment names are DNS labels: lowercase letters, digits and `-`, at most 63 characters",
        )
        .into());
    }
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let source = repo.load_env(from).map_err(UserError::from)?;
    let extension = source
        .file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml");
    let target = repo.layout.config_dir.join(format!("{name}.{extension}"));
    let shown = repo.relative(&target);
    if repo.environments.contains_key(name) || target.exists() {
        return Err(UserError::new(
            format!(
                "environment `{name}` already exists (`{}`)",
                shown.display()
            ),
            "gitship never overwrites a config: choose another name, or delete the file first",
        )
        .into());
    }

    let new_namespace = match namespace {
        Some(ns) => ns.to_string(),
        None if source.cluster.namespace.contains(from) => {
            source.cluster.namespace.replace(from, name)
        }
        None => format!("{}-{name}", source.cluster.namespace),
    };
    if !is_dns_label(&new_namespace) {
        return Err(UserError::usage(
            format!("invalid namespace `{new_namespace}`"),
            "pass a DNS label with `--namespace`",
        )
        .into());
    }

    let text = std::fs::read_to_string(&source.file).map_err(|err| {
        UserError::bare(format!(
            "cannot read `{}`: {err}",
            source.spans.file.display()
        ))
    })?;
    let root = yaml::parse_single(&text).map_err(|err| {
        UserError::bare(format!(
            "{}:{}:{}: {}",
            source.spans.file.display(),
            err.line,
            err.column,
            err.message
        ))
    })?;
    let mut edits: Vec<Edit> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if let Some(NodeKind::Mapping(top)) = root.as_ref().map(|r| &r.kind) {
        if let Some(NodeKind::Mapping(cluster)) = find(top, "cluster").map(|n| &n.kind)
            && let Some(node) = find(cluster, "namespace")
        {
            edits.push(Edit::new(node, &source.cluster.namespace, &new_namespace));
            notes.push(format!(
                "namespace `{}` -> `{new_namespace}`",
                source.cluster.namespace
            ));
        }
        if let Some(NodeKind::Mapping(terraform)) = find(top, "terraform").map(|n| &n.kind) {
            if let (Some(node), Some(workspace)) =
                (find(terraform, "workspace"), &source.terraform.workspace)
            {
                let renamed = if workspace.contains(from) {
                    workspace.replace(from, name)
                } else {
                    name.to_string()
                };
                edits.push(Edit::new(node, workspace, &renamed));
                notes.push(format!("Terraform workspace `{workspace}` -> `{renamed}`"));
            }
            if let Some(NodeKind::Mapping(backend)) =
                find(terraform, "backend_config").map(|n| &n.kind)
            {
                let mut renamed_any = false;
                for (key, node) in backend {
                    if let Some(value) = node.as_scalar()
                        && value.contains(from)
                    {
                        edits.push(Edit::new(node, value, &value.replace(from, name)));
                        notes.push(format!(
                            "backend_config `{}` renamed",
                            key.as_scalar().unwrap_or_default()
                        ));
                        renamed_any = true;
                    }
                }
                if !renamed_any && !backend.is_empty() {
                    ctx.printer.warn(&format!(
                        "no `terraform.backend_config` value mentions `{from}`: make sure `{name}` does not share `{from}`'s Terraform state"
                    ));
                }
            }
        }
    }

    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    for edit in &edits {
        edit.apply(&mut lines).map_err(|message| {
            UserError::bare(format!("{}: {message}", source.spans.file.display()))
        })?;
    }
    let header = format!(
        "# Bootstrapped from `{from}` by `gitship env new {name} --from {from}`: review the values below.\n"
    );
    let new_text = format!("{header}{}", lines.join("\n"));
    // The new config must itself be valid before it is written.
    EnvConfig::parse(name, &target, &shown, &new_text).map_err(UserError::from)?;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|err| {
            UserError::new(
                format!("cannot create `{}`: {err}", shown.display()),
                "gitship never overwrites a config",
            )
        })?;
    file.write_all(new_text.as_bytes())
        .map_err(|err| UserError::bare(format!("cannot write `{}`: {err}", shown.display())))?;
    ctx.printer.status(&format!(
        "created `{}` from `{from}`: {}",
        shown.display(),
        notes.join(", ")
    ));
    ctx.printer.status(&format!(
        "review it (domains, replicas, cluster context), then run `gitship validate {name}`"
    ));
    Ok(Outcome::Success)
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
