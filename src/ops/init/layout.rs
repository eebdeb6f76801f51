//! What `init` looks for besides apps: where an environment's manifests are (a Flux
//! `clusters/<env>`, an overlay named after the environment, a conventional directory, the
//! repository's root) and whether a Terraform root belongs to every deploy or to bootstrap.
//!
//! Every function here only reads, bounded: a few directory levels, YAML through
//! [`crate::repo::yaml`] (size, depth and alias limits), `.tf` files through hcl-rs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{KUSTOMIZATIONS, MANIFEST_DIRS, relative};
use crate::repo::files;

/// Directories below an overlay's parent that name environments by convention.
const OVERLAY_PARENTS: &[&str] = &[
    "apps",
    "kustomize/overlays",
    "overlays",
    "envs",
    "environments",
    "clusters",
];
/// Files a manifests walk looks at, at most: `init` reads a repository, not a disk.
const MAX_SCANNED_FILES: usize = 2_000;

/// Where the environment's manifests are, as `init` decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ManifestsFound {
    /// The repository's manifests directory (`paths.kubernetes`), when shared.
    pub shared: Option<String>,
    /// The environment's own directory (`kubernetes.path`): an overlay.
    pub own: Option<String>,
    /// Why, one line each.
    pub reasons: Vec<String>,
    /// What looks like Kubernetes configuration but will not be deployed, and why.
    pub not_used: Vec<String>,
    /// `paths.exclude` globs: YAML below the manifests directory that is not objects.
    pub exclude: Vec<String>,
}

/// Whether `dir` (relative to `root`) holds a kustomization file.
pub(super) fn has_kustomization(root: &Path, dir: &str) -> bool {
    KUSTOMIZATIONS
        .iter()
        .any(|k| root.join(dir).join(k).is_file())
}

/// The environment's own overlay: a Flux `clusters/<env>` (followed to the path its
/// `Kustomization`s name) or a kustomization in a directory named after the environment.
pub(super) fn find_own(root: &Path, env: &str, found: &mut ManifestsFound) -> Option<String> {
    if let Some(path) = flux_cluster(root, env, found) {
        return Some(path);
    }
    let mut candidates: Vec<String> = OVERLAY_PARENTS
        .iter()
        .map(|parent| format!("{parent}/{env}"))
        .collect();
    for dir in MANIFEST_DIRS {
        candidates.push(format!("{dir}/overlays/{env}"));
        candidates.push(format!("{dir}/{env}"));
    }
    let overlay = candidates
        .into_iter()
        .find(|dir| has_kustomization(root, dir))?;
    found.reasons.push(format!(
        "`{overlay}/` is a kustomize overlay named after `{env}`: its manifests"
    ));
    Some(overlay)
}

/// Other environments the layout names: overlays beside the environment's own
/// (`apps/production` beside `apps/staging`) and Flux's `clusters/<name>`, in name order.
pub(super) fn other_environments(root: &Path, env: &str) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for parent in OVERLAY_PARENTS {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = format!("{parent}/{name}");
            let named = crate::repo::config::is_dns_label(&name) && name != env && name != "base";
            if named && (has_kustomization(root, &dir) || *parent == "clusters") {
                names.insert(name);
            }
        }
    }
    names.into_iter().take(20).collect()
}

/// A Flux repository's `clusters/<env>`: the `Kustomization`s of `kustomize.toolkit.fluxcd.io`
/// in it say which path Flux deploys; gitship deploys that path in Flux's place. The one named
/// `apps` (else the first) is the environment's; the others, and `flux-system` (Flux itself),
/// are reported as not used.
fn flux_cluster(root: &Path, env: &str, found: &mut ManifestsFound) -> Option<String> {
    let cluster = format!("clusters/{env}");
    let dir = root.join(&cluster);
    if !dir.is_dir() {
        return None;
    }
    let mut kustomizations: Vec<(String, String, String)> = Vec::new();
    for file in yaml_files(root, &dir, 2) {
        for object in objects_in(root, &file) {
            let is_flux = object["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("kustomize.toolkit.fluxcd.io/"))
                && object["kind"] == "Kustomization";
            let path = object.pointer("/spec/path").and_then(Value::as_str);
            if let (true, Some(path)) = (is_flux, path) {
                let name = object.pointer("/metadata/name").and_then(Value::as_str);
                let path = super::clean(path);
                kustomizations.push((name.unwrap_or("").to_string(), path, relative(root, &file)));
            }
        }
    }
    if root.join(&cluster).join("flux-system").is_dir() {
        found.not_used.push(format!(
            "`{cluster}/flux-system/`: Flux's own components (gitship deploys in Flux's place)"
        ));
    }
    let deployable =
        |path: &str| files::lexically_inside(Path::new(path)) && root.join(path).is_dir();
    let chosen = kustomizations
        .iter()
        .filter(|(_, path, _)| deployable(path) && !path.starts_with("clusters/"))
        .min_by_key(|(name, _, _)| name != "apps")
        .cloned();
    for (name, path, file) in &kustomizations {
        if chosen.as_ref().is_some_and(|(_, chosen, _)| chosen == path) {
            continue;
        }
        found.not_used.push(format!(
            "Flux Kustomization `{name}` ({file}) deploys `{path}`: not deployed by gitship, which deploys one manifests path per environment (list it in the chosen kustomization's `resources` to deploy it too)"
        ));
    }
    let (name, path, file) = chosen?;
    found.reasons.push(format!(
        "Flux Kustomization `{name}` in `{file}` deploys `{path}/` to `{env}`: its manifests"
    ));
    Some(path)
}

/// The repository's manifests directory: a conventional one, else the root when it holds a
/// kustomization or Kubernetes objects.
pub(super) fn find_shared(root: &Path, found: &mut ManifestsFound) -> Option<String> {
    // A kustomization at the root is the build's entry point, whatever directories it reads.
    if has_kustomization(root, ".") {
        found
            .reasons
            .push("a `kustomization.yaml` at the repository's root: built with kustomize".into());
        return Some(".".into());
    }
    if let Some(dir) = MANIFEST_DIRS.iter().find(|dir| root.join(dir).is_dir()) {
        found
            .reasons
            .push(format!("`{dir}/` is a conventional manifests directory"));
        return Some(dir.to_string());
    }
    let objects_at_root = yaml_files(root, root, 0)
        .iter()
        .any(|file| is_manifest(root, file));
    if objects_at_root {
        found
            .reasons
            .push("Kubernetes objects in YAML files at the repository's root".into());
        return Some(".".into());
    }
    None
}

/// The YAML below the manifests directory `dir` that gitship would read but that holds no
/// Kubernetes objects (a `docker-compose.yaml`, a CI file, a Helm chart): `paths.exclude` globs,
/// relative to `dir`, each with a line for the report.
pub(super) fn excludes(
    root: &Path,
    dir: &str,
    not_manifests: &[PathBuf],
    found: &mut ManifestsFound,
) {
    let start = root.join(dir);
    let Ok(tree) = files::manifest_tree(root, &start, &globset::GlobSet::empty(), not_manifests)
    else {
        return;
    };
    let mut charts: Vec<String> = Vec::new();
    for file in tree.files.iter().take(MAX_SCANNED_FILES) {
        let inside = file.strip_prefix(&start).unwrap_or(file);
        let shown = inside.to_string_lossy().into_owned();
        if let Some(chart) = chart_of(&start, inside) {
            if !charts.contains(&chart) {
                found.not_used.push(format!(
                    "`{}`: a Helm chart, not plain manifests (excluded from them: rendered through `kubernetes.helm`)",
                    join_shown(dir, &chart)
                ));
                found.exclude.push(format!("{chart}/**"));
                charts.push(chart);
            }
            continue;
        }
        if is_other_yaml(root, file) {
            found.not_used.push(format!(
                "`{}`: YAML that holds no Kubernetes object (excluded)",
                join_shown(dir, &shown)
            ));
            found.exclude.push(shown);
        }
    }
}

/// The chart directory (relative to `start`) that `inside` lies in, if any.
fn chart_of(start: &Path, inside: &Path) -> Option<String> {
    inside
        .ancestors()
        .skip(1)
        .filter(|dir| !dir.as_os_str().is_empty())
        .find(|dir| start.join(dir).join("Chart.yaml").is_file())
        .map(|dir| dir.to_string_lossy().into_owned())
}

fn join_shown(dir: &str, inside: &str) -> String {
    if dir == "." {
        inside.to_string()
    } else {
        format!("{dir}/{inside}")
    }
}

/// Whether `file` holds Kubernetes objects (documents with an `apiVersion` and a `kind`).
fn is_manifest(root: &Path, file: &Path) -> bool {
    objects_in(root, file)
        .iter()
        .any(|o| o["apiVersion"].is_string() && o["kind"].is_string())
}

/// Whether `file` is YAML that is plainly not meant as objects: it parses, and no document has
/// a `kind` (a compose file, values, CI settings). A broken manifest (a `kind` without an
/// `apiVersion`, invalid YAML) is not excluded: `validate` must name it.
fn is_other_yaml(root: &Path, file: &Path) -> bool {
    let Ok(text) = files::read_text(root, file) else {
        return false;
    };
    let Ok(documents) = crate::repo::yaml::parse_documents(&text) else {
        return false;
    };
    documents
        .iter()
        .filter_map(|d| d.root.as_ref())
        .all(|node| node.to_json().get("kind").is_none())
}

/// The documents of a YAML file as JSON (none when it cannot be read or parsed).
fn objects_in(root: &Path, file: &Path) -> Vec<Value> {
    let Ok(text) = files::read_text(root, file) else {
        return Vec::new();
    };
    crate::repo::yaml::parse_documents(&text)
        .map(|documents| {
            documents
                .iter()
                .filter_map(|d| d.root.as_ref())
                .map(|node| node.to_json())
                .filter(|value| !value.is_null())
                .collect()
        })
        .unwrap_or_default()
}

/// The YAML files of `dir`, down to `depth` levels below it, hidden ones left out; bounded.
fn yaml_files(root: &Path, dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.')
                || files::confine(root, &path, None).is_err()
                || found.len() >= MAX_SCANNED_FILES
            {
                continue;
            }
            if path.is_dir() && level < depth {
                stack.push((path, level + 1));
            } else if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Resource types and module sources that create a Kubernetes cluster.
const CLUSTER_RESOURCES: &[&str] = &[
    "aws_eks_cluster",
    "google_container_cluster",
    "azurerm_kubernetes_cluster",
    "digitalocean_kubernetes_cluster",
    "linode_lke_cluster",
    "scaleway_k8s_cluster",
    "oci_containerengine_cluster",
    "civo_kubernetes_cluster",
    "exoscale_sks_cluster",
    "vultr_kubernetes",
    "ovh_cloud_project_kube",
    "kind_cluster",
    "k3d_cluster",
];
const CLUSTER_MODULES: &[&str] = &[
    "terraform-aws-modules/eks",
    "terraform-google-modules/kubernetes-engine",
    "azure/aks",
];

/// Where the Terraform root at `dir` creates a cluster (`resource `aws_eks_cluster.main` at
/// terraform/main.tf:3:1`), read by Terraform's static check ([`crate::terraform::static_check`]):
/// such a module belongs to bootstrap, not to every deploy.
pub(super) fn creates_cluster(root: &Path, dir: &str) -> Option<String> {
    let (module, _) = crate::terraform::static_check::inspect_module(&root.join(dir), root);
    let resource = module.resources.iter().find_map(|(address, at)| {
        let kind = address.split('.').next().unwrap_or_default();
        CLUSTER_RESOURCES
            .contains(&kind)
            .then(|| format!("resource `{address}` at {at}"))
    });
    resource.or_else(|| {
        module.module_calls.iter().find_map(|(name, source, at)| {
            let lower = source.to_ascii_lowercase();
            CLUSTER_MODULES
                .iter()
                .any(|m| lower.contains(m))
                .then(|| format!("module `{name}` ({source}) at {at}"))
        })
    })
}
