//! `kubernetes.helm` of an environment's config: the Helm charts of the repository rendered
//! for it (`helm template`), and the checks on a chart that need no Helm.
//!
//! ```yaml
//! kubernetes:
//!   helm:
//!     - chart: charts/web            # a chart directory of the repository
//!       release: web                 # the release name (a DNS label)
//!       values: [charts/web/values-prod.yaml]  # templated with `${...}` first, in order
//!       namespace: web               # default: the environment's namespace
//! ```
//!
//! Every path is confined to the repository (lexically when parsed, after symlinks when the
//! environment is loaded). A chart's dependencies must be vendored in its `charts/` directory:
//! gitship never lets Helm reach a network ([`missing_dependencies`]).

use std::path::{Path, PathBuf};

use crate::repo::reader::{Reader, find, is_dns_label};
use crate::repo::yaml::{Node, NodeKind};
use crate::repo::{RepoError, files};
use gitship_foundation::diagnostics::Location;

pub use crate::repo::files::CHART_FILE;

/// One item of `kubernetes.helm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRelease {
    /// `chart` as written: a directory relative to the repository root.
    pub chart: String,
    /// `release`: the release name `helm template` is given.
    pub release: String,
    /// `values` as written, in order: files relative to the repository root.
    pub values: Vec<String>,
    /// `namespace`: the release's namespace; `None`: the environment's.
    pub namespace: Option<String>,
    /// Where the item was written.
    pub location: Location,
    /// The absolute chart directory, set by [`resolve`].
    pub chart_dir: PathBuf,
    /// The absolute values files, in order, set by [`resolve`].
    pub values_files: Vec<PathBuf>,
}

/// `kubernetes.helm`: a list of releases, each with a distinct release name.
pub(crate) fn parse(reader: &Reader, node: &Node) -> Result<Vec<HelmRelease>, RepoError> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let NodeKind::Sequence(items) = &node.kind else {
        return Err(reader.invalid(
            node,
            "kubernetes.helm",
            format!(
                "expected a list such as `[{{chart: charts/web, release: web}}]`, found {}",
                node.type_name()
            ),
        ));
    };
    let mut releases: Vec<HelmRelease> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let release = parse_release(reader, item, index)?;
        if let Some(first) = releases.iter().find(|r| r.release == release.release) {
            return Err(reader.invalid(
                item,
                &format!("kubernetes.helm.{index}.release"),
                format!(
                    "the release `{}` is also rendered at {}: release names must differ",
                    release.release, first.location
                ),
            ));
        }
        releases.push(release);
    }
    Ok(releases)
}

fn parse_release(reader: &Reader, item: &Node, index: usize) -> Result<HelmRelease, RepoError> {
    let path = format!("kubernetes.helm.{index}");
    let fields = reader.mapping(item, &path)?;
    reader.check_keys(fields, &path, &["chart", "release", "values", "namespace"])?;
    let required = |key: &str| {
        let node = find(fields, key).filter(|n| !n.is_null()).ok_or_else(|| {
            reader.invalid(
                item,
                &path,
                format!("`{key}` is missing: each chart needs `chart` (its directory) and `release` (its name)"),
            )
        })?;
        Ok::<_, RepoError>((node, reader.string(node, &format!("{path}.{key}"))?))
    };
    let (chart_node, chart) = required("chart")?;
    let chart = repository_path(reader, chart_node, &format!("{path}.chart"), chart)?;
    let (release_node, release) = required("release")?;
    check_name(reader, release_node, &format!("{path}.release"), &release)?;
    let namespace = match find(fields, "namespace").filter(|n| !n.is_null()) {
        None => None,
        Some(node) => {
            let namespace = reader.string(node, &format!("{path}.namespace"))?;
            check_name(reader, node, &format!("{path}.namespace"), &namespace)?;
            Some(namespace)
        }
    };
    Ok(HelmRelease {
        chart,
        release,
        values: parse_values(reader, fields, &path)?,
        namespace,
        // The item's first key: where a reader sees the item start.
        location: reader.location(fields.first().map_or(item, |(key, _)| key)),
        chart_dir: PathBuf::new(),
        values_files: Vec::new(),
    })
}

/// `values`: a list of files (a single file is accepted as a one-item list).
fn parse_values(
    reader: &Reader,
    fields: &[(Node, Node)],
    path: &str,
) -> Result<Vec<String>, RepoError> {
    let Some(node) = find(fields, "values").filter(|n| !n.is_null()) else {
        return Ok(Vec::new());
    };
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Sequence(items) => items.iter().collect(),
        NodeKind::Scalar { .. } => vec![node],
        NodeKind::Mapping(_) => {
            return Err(reader.invalid(
                node,
                &format!("{path}.values"),
                "expected a list of values files relative to the repository root (inline values belong in the environment's `values`, used as `${values.x}` in a values file)".into(),
            ));
        }
    };
    let mut values = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let key = format!("{path}.values.{index}");
        let text = reader.string(item, &key)?;
        values.push(repository_path(reader, item, &key, text)?);
    }
    Ok(values)
}

/// A path relative to the repository root that stays inside it as written.
fn repository_path(
    reader: &Reader,
    node: &Node,
    key: &str,
    path: String,
) -> Result<String, RepoError> {
    if path.trim().is_empty() {
        return Err(reader.invalid(
            node,
            key,
            "expected a path relative to the repository root".into(),
        ));
    }
    if !files::lexically_inside(Path::new(&path)) {
        return Err(RepoError::OutsideRepository {
            location: Some(reader.location(node)),
            path: PathBuf::from(&path),
            target: PathBuf::from(&path),
        });
    }
    Ok(path)
}

fn check_name(reader: &Reader, node: &Node, key: &str, name: &str) -> Result<(), RepoError> {
    if is_dns_label(name) {
        return Ok(());
    }
    Err(reader.invalid(
        node,
        key,
        format!("`{name}` is not a DNS label (lowercase letters, digits and `-`, at most 63)"),
    ))
}

/// Resolve each release's chart directory and values files below `root` (after symlinks): the
/// chart must be a directory holding [`CHART_FILE`], each values file a file.
pub fn resolve(root: &Path, env: &str, releases: &mut [HelmRelease]) -> Result<(), RepoError> {
    for release in releases {
        let location = release.location.clone();
        let chart_dir = files::confine(root, &root.join(&release.chart), Some(&location))?;
        if !chart_dir.join(CHART_FILE).is_file() {
            return Err(RepoError::BrokenLayout {
                message: format!(
                    "{location}: `{}` (the chart of release `{}` in environment `{env}`) is not a Helm chart: it has no `{CHART_FILE}`",
                    release.chart, release.release
                ),
                hint: "set `chart` to the directory that holds the chart's `Chart.yaml`".into(),
            });
        }
        release.chart_dir = chart_dir;
        release.values_files = Vec::with_capacity(release.values.len());
        for values in &release.values {
            let file = files::confine(root, &root.join(values), Some(&location))?;
            if !file.is_file() {
                return Err(RepoError::BrokenLayout {
                    message: format!(
                        "{location}: the values file `{values}` of release `{}` in environment `{env}` does not exist",
                        release.release
                    ),
                    hint: "create it or fix `values` of this chart".into(),
                });
            }
            release.values_files.push(file);
        }
    }
    Ok(())
}

/// A dependency of a chart (`Chart.yaml` `dependencies`) with no vendored copy in its
/// `charts/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingDependency {
    /// `name` (or `alias`'s chart `name`).
    pub name: String,
    /// `version` as written, when it was.
    pub version: Option<String>,
    /// `repository` as written, when it was.
    pub repository: Option<String>,
    /// The chart directory that declares it, relative to the repository root.
    pub chart: PathBuf,
}

/// The dependencies of the chart in `chart_dir` (and, recursively, of the vendored charts that
/// are directories) that are not vendored: neither `charts/<name>/` nor `charts/<name>-*.tgz`.
pub fn missing_dependencies(
    root: &Path,
    chart_dir: &Path,
) -> Result<Vec<MissingDependency>, RepoError> {
    let mut missing = Vec::new();
    let mut pending = vec![(chart_dir.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let file = dir.join(CHART_FILE);
        let text = files::read_text(root, &file)?;
        let shown = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
        let reader = Reader { file: &shown };
        let node = crate::repo::yaml::parse_single(&text).map_err(|err| reader.syntax(err))?;
        for dependency in dependencies(node.as_ref()) {
            match vendored(&dir, &dependency.0) {
                Some(sub) if sub.join(CHART_FILE).is_file() && depth < 16 => {
                    pending.push((sub, depth + 1));
                }
                Some(_) => {}
                None => missing.push(MissingDependency {
                    name: dependency.0,
                    version: dependency.1,
                    repository: dependency.2,
                    chart: dir.strip_prefix(root).unwrap_or(&dir).to_path_buf(),
                }),
            }
        }
    }
    missing.sort_by(|a, b| (&a.chart, &a.name).cmp(&(&b.chart, &b.name)));
    Ok(missing)
}

/// `(name, version, repository)` of each item of `dependencies` that names a chart.
fn dependencies(chart: Option<&Node>) -> Vec<(String, Option<String>, Option<String>)> {
    let Some(NodeKind::Mapping(top)) = chart.map(|n| &n.kind) else {
        return Vec::new();
    };
    let Some(NodeKind::Sequence(items)) = find(top, "dependencies").map(|n| &n.kind) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let NodeKind::Mapping(fields) = &item.kind else {
                return None;
            };
            let text = |key: &str| find(fields, key).and_then(|n| n.as_scalar().map(String::from));
            Some((text("name")?, text("version"), text("repository")))
        })
        .collect()
}

/// The vendored copy of the dependency `name` in `chart_dir/charts`: its directory or archive.
fn vendored(chart_dir: &Path, name: &str) -> Option<PathBuf> {
    let charts = chart_dir.join("charts");
    let dir = charts.join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(&charts)
        .ok()?
        .flatten()
        .find_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let version = file.strip_prefix(&prefix)?.strip_suffix(".tgz")?;
            version
                .starts_with(|c: char| c.is_ascii_digit() || c == 'v')
                .then(|| entry.path())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<HelmRelease>, RepoError> {
        let file = PathBuf::from("config/dev.yaml");
        let reader = Reader { file: &file };
        let node = crate::repo::yaml::parse_single(text).unwrap().unwrap();
        parse(&reader, &node)
    }

    #[test]
    fn releases_are_parsed_with_their_positions() {
        let releases = parse_text(
            "- chart: charts/web\n  release: web\n  values: [charts/web/values-dev.yaml]\n  namespace: front\n- {chart: charts/api, release: api, values: a.yaml}\n",
        )
        .unwrap();
        assert_eq!(releases.len(), 2);
        assert_eq!(releases[0].chart, "charts/web");
        assert_eq!(releases[0].values, ["charts/web/values-dev.yaml"]);
        assert_eq!(releases[0].namespace.as_deref(), Some("front"));
        assert_eq!(releases[0].location.to_string(), "config/dev.yaml:1:3");
        assert_eq!(releases[1].values, ["a.yaml"]);
    }

    #[test]
    fn bad_items_are_refused_at_their_line() {
        let unknown = parse_text("- chart: c\n  release: r\n  valeus: [x]\n").unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("config/dev.yaml:3:3: unknown key `kubernetes.helm.0.valeus`"),
            "{unknown}"
        );
        assert_eq!(
            unknown.hint().as_deref(),
            Some("did you mean `kubernetes.helm.0.values`?")
        );
        let outside = parse_text("- chart: c\n  release: r\n  values: [../secrets.yaml]\n")
            .unwrap_err()
            .to_string();
        assert!(outside.contains("config/dev.yaml:3:12"), "{outside}");
        assert!(outside.contains("../secrets.yaml"), "{outside}");
        let missing = parse_text("- chart: c\n").unwrap_err().to_string();
        assert!(missing.contains("`release` is missing"), "{missing}");
        let twice = parse_text("- {chart: a, release: r}\n- {chart: b, release: r}\n")
            .unwrap_err()
            .to_string();
        assert!(
            twice.contains("also rendered at config/dev.yaml:1:4"),
            "{twice}"
        );
        let name = parse_text("- {chart: a, release: Web}\n")
            .unwrap_err()
            .to_string();
        assert!(name.contains("not a DNS label"), "{name}");
    }

    #[test]
    fn dependencies_must_be_vendored() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let chart = root.join("charts/web");
        std::fs::create_dir_all(chart.join("charts/common")).unwrap();
        std::fs::write(
            chart.join(CHART_FILE),
            "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n  - name: common\n    version: 1.0.0\n    repository: file://../common\n  - name: redis\n    version: 19.0.0\n    repository: https://charts.bitnami.com/bitnami\n  - name: cache\n    version: 2.0.0\n    repository: oci://example.com/charts\n",
        )
        .unwrap();
        std::fs::write(
            chart.join("charts/common").join(CHART_FILE),
            "apiVersion: v2\nname: common\nversion: 1.0.0\n",
        )
        .unwrap();
        std::fs::write(chart.join("charts/cache-2.0.0.tgz"), b"").unwrap();
        let missing = missing_dependencies(&root, &chart).unwrap();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].name, "redis");
        assert_eq!(
            missing[0].repository.as_deref(),
            Some("https://charts.bitnami.com/bitnami")
        );
        assert_eq!(missing[0].chart, Path::new("charts/web"));
    }
}
