//! The repository model: where apps, Terraform, manifests and environment configs live
//! (conventions, overridable by `gitship.yaml`), and the typed environment configs.
//!
//! Loading is strict: a layer that is absent is simply not used; a layer that is present but
//! broken is an error saying what was looked for and where.

pub mod config;
pub mod files;
pub mod from_terraform;
pub mod helm;
pub mod limits;
pub mod preview;
pub(crate) mod reader;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use config::EnvConfig;

use config::{Reader, find, is_dns_label};
use gitship_foundation::diagnostics::Location;
use yaml::Node;

/// A gitship repository: its root and what was discovered in it.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Absolute path of the repository root (the directory holding `config/`).
    pub root: PathBuf,
    pub layout: Layout,
    /// Apps in name order.
    pub apps: Vec<App>,
    /// Environment name -> its config file (absolute).
    pub environments: BTreeMap<String, PathBuf>,
    /// `*.yaml` files in the config directory whose name is not a valid environment name: not
    /// environments, skipped with a warning.
    pub skipped_configs: Vec<SkippedConfig>,
    /// The manifests directory's files (absolute, in path order: checked to lie inside the
    /// repository and to be no larger than [`limits::MAX_FILE_BYTES`]) and the kustomizations
    /// below it.
    pub manifests: files::ManifestTree,
}

/// A file in the config directory that is not an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedConfig {
    /// The file's stem: what the environment would be called.
    pub name: String,
    /// The file, relative to the repository root.
    pub file: PathBuf,
}

/// Where each layer lives (absolute paths). A layer that does not exist is `None`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Directory whose subdirectories holding a Dockerfile are apps (`apps/`).
    pub apps_dir: Option<PathBuf>,
    /// The Terraform root module (`infrastructure/terraform`).
    pub terraform_dir: Option<PathBuf>,
    /// The manifests (`infrastructure/kubernetes`).
    pub kubernetes_dir: Option<PathBuf>,
    /// The environment configs (`config/`).
    pub config_dir: PathBuf,
    /// `terraform` (default) or `tofu`, from `gitship.yaml` `terraform.binary`.
    pub terraform_binary: String,
    /// `docker`, `podman` or `buildah` from `gitship.yaml` `build.builder`; `None` = auto-detect.
    pub builder: Option<String>,
    /// The kustomize program from `gitship.yaml` `kustomize.binary`; `None`: `kustomize` on
    /// `PATH`, else `kubectl kustomize`.
    pub kustomize_binary: Option<String>,
    /// The helm program from `gitship.yaml` `helm.binary`; `None`: `helm` on `PATH`.
    pub helm_binary: Option<String>,
    /// `gitship.yaml` `paths.exclude`: globs, relative to the manifests directory, of files that
    /// are not objects (test data, docs, kustomize components).
    pub exclude: globset::GlobSet,
    /// `gitship.yaml` `images.bare_names` (default `true`): a container whose `image` is exactly
    /// an app's name gets the app's image ([`crate::render::bare_images`]).
    pub bare_image_names: bool,
    /// gitship's own files and layers (`gitship.yaml`, `skaffold.yaml`, the config and Terraform
    /// directories): never manifests, even below a manifests directory (`paths.kubernetes: .`).
    pub not_manifests: Vec<PathBuf>,
}

/// One app: one container image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The app's name (its directory name unless `gitship.yaml` says otherwise); the image name.
    pub name: String,
    /// Absolute path of the Dockerfile.
    pub dockerfile: PathBuf,
    /// Absolute path of the build context.
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

impl App {
    /// What goes into the app's content tag ([`crate::git::content_tag_of`]).
    pub fn build_inputs(&self) -> crate::git::BuildInputs<'_> {
        crate::git::BuildInputs {
            context: &self.context,
            dockerfile: &self.dockerfile,
            build_args: &self.build_args,
            target: self.target.as_deref(),
        }
    }
}

/// The file that overrides the layout conventions.
pub const SETTINGS_FILE: &str = "gitship.yaml";

/// Errors of discovering the repository and loading its configs.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No `-C` was given and the current directory is not inside a Git work tree.
    #[error("`{}` is not inside a Git work tree", directory.display())]
    NotInGitWorkTree { directory: PathBuf },
    /// `-C DIR` does not name a directory.
    #[error("repository `{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// A file or directory could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A YAML file is not valid YAML.
    #[error("{location}: invalid YAML: {message}")]
    Syntax { location: Location, message: String },
    /// A key that the schema does not know.
    #[error("{location}: unknown key `{key}`")]
    UnknownKey {
        location: Location,
        key: String,
        suggestion: Option<String>,
        allowed: Vec<String>,
    },
    /// A key whose value has the wrong type or form.
    #[error("{location}: invalid `{key}`: {message}")]
    InvalidValue {
        location: Location,
        key: String,
        message: String,
    },
    /// A key that must be (or may only be) a `${terraform.NAME}` reference is not.
    #[error("{location}: `{key}` {message}")]
    TerraformReference {
        location: Location,
        key: String,
        message: String,
        hint: String,
    },
    /// A required key is missing.
    #[error("{location}: environment `{environment}` is missing the required key `{key}`")]
    MissingKey {
        location: Location,
        key: String,
        environment: String,
    },
    /// No `config/<name>.yaml`.
    #[error("unknown environment `{name}`")]
    UnknownEnvironment {
        name: String,
        available: Vec<String>,
        suggestion: Option<String>,
        config_dir: PathBuf,
    },
    /// An environment name (a config file stem) that is not a DNS label.
    #[error("invalid environment name `{name}` (`{}`): environment names must be DNS labels", file.display())]
    InvalidEnvironmentName { name: String, file: PathBuf },
    /// A layer that exists but cannot be used, or a configured path that does not exist.
    #[error("{message}")]
    BrokenLayout { message: String, hint: String },
    /// A path that leaves the repository: `..`, an absolute path, or a symlink pointing out.
    #[error("{}`{}` is outside the repository{}", location_prefix(location), path.display(), resolves_to(path, target))]
    OutsideRepository {
        location: Option<Location>,
        path: PathBuf,
        target: PathBuf,
    },
    /// A symlink in the manifest tree that leads back to a directory containing it.
    #[error("`{}` is a symlink loop: it leads back to `{}`", path.display(), target.display())]
    SymlinkLoop { path: PathBuf, target: PathBuf },
    /// A file over [`limits::MAX_FILE_BYTES`].
    #[error("`{}` is {}, larger than the {} gitship reads from one file", path.display(), limits::human_bytes(*size), files::max_file_size())]
    TooLarge { path: PathBuf, size: u64 },
    /// The repository has none of the layers gitship looks for.
    #[error("no gitship layout in `{}`: looked for {looked_for}", root.display())]
    NoLayout { root: PathBuf, looked_for: String },
}

impl RepoError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RepoError::NotInGitWorkTree { .. } => {
                Some("run gitship inside a Git repository, or pass the repository with `-C DIR`".into())
            }
            RepoError::NotADirectory { .. } => Some("pass an existing directory to `-C`".into()),
            RepoError::Io { .. } => None,
            RepoError::Syntax { .. } => Some("fix the YAML syntax at the position shown".into()),
            RepoError::UnknownKey { suggestion, allowed, .. } => Some(match suggestion {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("known keys here: {}", backticked(allowed)),
            }),
            RepoError::InvalidValue { .. } => None,
            RepoError::TerraformReference { hint, .. } => Some(hint.clone()),
            RepoError::MissingKey { key, .. } => Some(format!("add `{key}` to the environment's config")),
            RepoError::UnknownEnvironment { suggestion, available, config_dir, .. } => {
                Some(match (suggestion, available.is_empty()) {
                    (Some(suggestion), _) => format!("did you mean `{suggestion}`?"),
                    (None, true) => format!(
                        "no environments: create `{}/<env>.yaml`",
                        config_dir.display()
                    ),
                    (None, false) => format!("environments: {}", backticked(available)),
                })
            }
            RepoError::InvalidEnvironmentName { .. } => Some(
                "rename the file: lowercase letters, digits and `-`, at most 63 characters, e.g. `staging`".into(),
            ),
            RepoError::BrokenLayout { hint, .. } => Some(hint.clone()),
            RepoError::OutsideRepository { location: Some(_), .. } => Some(format!(
                "paths in `{SETTINGS_FILE}` are relative to the repository root and must stay inside it"
            )),
            RepoError::OutsideRepository { location: None, .. } => Some(
                "gitship reads only files inside the repository: move the files into it, or replace the symlink with a copy".into(),
            ),
            RepoError::SymlinkLoop { path, .. } => Some(format!(
                "remove the symlink `{}` or point it outside the directories that contain it",
                path.display()
            )),
            RepoError::TooLarge { .. } => Some("split the file into several smaller ones".into()),
            RepoError::NoLayout { .. } => Some(format!(
                "pass the repository with `-C DIR`, lay it out as in the README, or point `{SETTINGS_FILE}` at your directories"
            )),
        }
    }
}

impl gitship_foundation::diagnostics::StageError for RepoError {
    fn hint(&self) -> Option<String> {
        RepoError::hint(self)
    }
}

fn location_prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(|location| format!("{location}: "))
        .unwrap_or_default()
}

fn resolves_to(path: &Path, target: &Path) -> String {
    if path == target {
        String::new()
    } else {
        format!(": it resolves to `{}`", target.display())
    }
}

fn backticked(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate to `word` when it is close enough to be a likely typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_string())
}

/// `gitship.yaml`: overrides of the conventions.
#[derive(Debug, Default)]
struct Overrides {
    apps_dir: Option<(String, Location)>,
    terraform_dir: Option<(String, Location)>,
    kubernetes_dir: Option<(String, Location)>,
    config_dir: Option<(String, Location)>,
    /// The layers `paths.<layer>: false` turns off (`apps`, `terraform`, `kubernetes`): not
    /// looked for, even where the convention would find them.
    off: std::collections::BTreeSet<&'static str>,
    terraform_binary: Option<String>,
    builder: Option<String>,
    kustomize_binary: Option<String>,
    helm_binary: Option<String>,
    exclude: globset::GlobSet,
    bare_image_names: Option<bool>,
    apps: BTreeMap<String, AppOverride>,
}

#[derive(Debug, Default)]
struct AppOverride {
    dockerfile: Option<String>,
    context: Option<String>,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    location: Option<Location>,
}

fn parse_overrides(root: &Path) -> Result<Overrides, RepoError> {
    let path = root.join(SETTINGS_FILE);
    if !path.exists() {
        return Ok(Overrides::default());
    }
    let path = files::confine(root, &path, None)?;
    let text = files::read_text(root, &path)?;
    let display = PathBuf::from(SETTINGS_FILE);
    let reader = Reader { file: &display };
    let Some(node) = yaml::parse_single(&text).map_err(|err| reader.syntax(err))? else {
        return Ok(Overrides::default());
    };
    let mut overrides = Overrides::default();
    let top = reader.mapping(&node, "")?;
    reader.check_keys(
        top,
        "",
        &[
            "paths",
            "terraform",
            "build",
            "kustomize",
            "helm",
            "images",
            "apps",
        ],
    )?;
    if let Some(paths) = find(top, "paths") {
        parse_paths(&reader, paths, &mut overrides)?;
    }
    overrides.terraform_binary = parse_binary(
        &reader,
        top,
        "terraform",
        "expected a program name such as `terraform` or `tofu`",
    )?;
    overrides.kustomize_binary = parse_binary(
        &reader,
        top,
        "kustomize",
        "expected a program name or path such as `kustomize`",
    )?;
    overrides.helm_binary = parse_binary(
        &reader,
        top,
        "helm",
        "expected a program name or path such as `helm`",
    )?;
    if let Some(images) = find(top, "images") {
        let entries = reader.mapping(images, "images")?;
        reader.check_keys(entries, "images", &["bare_names"])?;
        if let Some(bare_names) = find(entries, "bare_names") {
            overrides.bare_image_names = Some(reader.boolean(bare_names, "images.bare_names")?);
        }
    }
    if let Some(build) = find(top, "build") {
        let entries = reader.mapping(build, "build")?;
        reader.check_keys(entries, "build", &["builder"])?;
        if let Some(builder) = find(entries, "builder") {
            let value = reader.string(builder, "build.builder")?;
            if !["docker", "podman", "buildah"].contains(&value.as_str()) {
                return Err(reader.invalid(
                    builder,
                    "build.builder",
                    format!("`{value}` is not one of `docker`, `podman`, `buildah`"),
                ));
            }
            overrides.builder = Some(value);
        }
    }
    if let Some(apps) = find(top, "apps") {
        overrides.apps = parse_app_overrides(&reader, apps)?;
    }
    Ok(overrides)
}

/// Where `node` is in `gitship.yaml`.
fn settings_location(reader: &Reader, node: &Node) -> Location {
    Location::new(reader.file, node.line, node.column)
}

/// `paths`: the layer directories (inside the repository, lexically) and `exclude`.
fn parse_paths(reader: &Reader, paths: &Node, overrides: &mut Overrides) -> Result<(), RepoError> {
    let entries = reader.mapping(paths, "paths")?;
    reader.check_keys(
        entries,
        "paths",
        &["apps", "terraform", "kubernetes", "config", "exclude"],
    )?;
    if let Some(exclude) = find(entries, "exclude").filter(|n| !n.is_null()) {
        overrides.exclude = parse_exclude(reader, exclude)?;
    }
    for key in ["apps", "terraform", "kubernetes", "config"] {
        let Some(node) = find(entries, key) else {
            continue;
        };
        let path = format!("paths.{key}");
        let value = match node.to_json() {
            serde_json::Value::Bool(false) if key != "config" => {
                overrides.off.insert(key);
                continue;
            }
            serde_json::Value::String(text) if !text.trim().is_empty() => text,
            _ => {
                let off = match key {
                    "config" => String::new(),
                    _ => format!(", or `false` to turn the {key} layer off"),
                };
                return Err(reader.invalid(
                    node,
                    &path,
                    format!(
                        "expected a directory relative to the repository root{off}, found {}",
                        describe(node)
                    ),
                ));
            }
        };
        if !files::lexically_inside(Path::new(&value)) {
            return Err(RepoError::OutsideRepository {
                location: Some(settings_location(reader, node)),
                path: PathBuf::from(&value),
                target: PathBuf::from(&value),
            });
        }
        let configured = Some((value, settings_location(reader, node)));
        match key {
            "apps" => overrides.apps_dir = configured,
            "terraform" => overrides.terraform_dir = configured,
            "kubernetes" => overrides.kubernetes_dir = configured,
            _ => overrides.config_dir = configured,
        }
    }
    Ok(())
}

/// A value as an error names it: `an empty string`, `null`, `a list`.
fn describe(node: &Node) -> &'static str {
    match node.to_json() {
        serde_json::Value::String(_) => "an empty string",
        serde_json::Value::Bool(true) => "`true`",
        _ => node.type_name(),
    }
}

/// `<section>.binary` (`terraform`, `kustomize`, `helm`): a program name that is not blank.
fn parse_binary(
    reader: &Reader,
    top: &[(Node, Node)],
    section: &str,
    expected: &str,
) -> Result<Option<String>, RepoError> {
    let Some(node) = find(top, section) else {
        return Ok(None);
    };
    let entries = reader.mapping(node, section)?;
    reader.check_keys(entries, section, &["binary"])?;
    let Some(binary) = find(entries, "binary") else {
        return Ok(None);
    };
    let path = format!("{section}.binary");
    let value = reader.string(binary, &path)?;
    if value.trim().is_empty() {
        return Err(reader.invalid(binary, &path, expected.to_string()));
    }
    Ok(Some(value))
}

/// `apps`: per app, its Dockerfile, context, build args and target.
fn parse_app_overrides(
    reader: &Reader,
    apps: &Node,
) -> Result<BTreeMap<String, AppOverride>, RepoError> {
    let mut overrides = BTreeMap::new();
    for (key, value) in reader.mapping(apps, "apps")? {
        let name = reader.string(key, "apps")?;
        let path = format!("apps.{name}");
        let entries = reader.mapping(value, &path)?;
        reader.check_keys(
            entries,
            &path,
            &["dockerfile", "context", "build_args", "target"],
        )?;
        let get = |field: &str| {
            find(entries, field)
                .map(|n| reader.string(n, &format!("{path}.{field}")))
                .transpose()
        };
        let mut app = AppOverride {
            dockerfile: get("dockerfile")?,
            context: get("context")?,
            target: get("target")?,
            location: Some(settings_location(reader, key)),
            ..AppOverride::default()
        };
        if let Some(args) = find(entries, "build_args") {
            for (arg, arg_value) in reader.mapping(args, &format!("{path}.build_args"))? {
                let arg = reader.string(arg, &format!("{path}.build_args"))?;
                let text = reader.string(arg_value, &format!("{path}.build_args.{arg}"))?;
                app.build_args.insert(arg, text);
            }
        }
        overrides.insert(name, app);
    }
    Ok(overrides)
}

/// `paths.exclude`: a list of globs (`testdata/**`, `**/*.test.yaml`).
fn parse_exclude(reader: &Reader, node: &Node) -> Result<globset::GlobSet, RepoError> {
    let yaml::NodeKind::Sequence(items) = &node.kind else {
        return Err(reader.invalid(
            node,
            "paths.exclude",
            format!("expected a list of globs, found {}", node.type_name()),
        ));
    };
    let mut set = globset::GlobSetBuilder::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("paths.exclude.{index}");
        let pattern = reader.string(item, &key)?;
        let glob = globset::GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|err| {
                reader.invalid(
                    item,
                    &key,
                    format!("`{pattern}` is not a glob: {}", err.kind()),
                )
            })?;
        set.add(glob);
    }
    set.build()
        .map_err(|err| reader.invalid(node, "paths.exclude", err.to_string()))
}

/// A configured or conventional directory: `Some(path)` when it exists.
fn layer(
    root: &Path,
    configured: &Option<(String, Location)>,
    convention: &str,
    what: &str,
) -> Result<Option<PathBuf>, RepoError> {
    match configured {
        Some((relative, location)) => {
            let path = root.join(relative);
            files::confine(root, &path, Some(location))?;
            if path.is_dir() {
                Ok(Some(path))
            } else {
                Err(RepoError::BrokenLayout {
                    message: format!(
                        "{location}: the {what} directory `{relative}` does not exist"
                    ),
                    hint: format!("create `{relative}` or fix the path in `{SETTINGS_FILE}`"),
                })
            }
        }
        None => {
            let path = root.join(convention);
            files::confine(root, &path, None)?;
            if path.is_dir() {
                Ok(Some(path))
            } else if path.exists() {
                Err(RepoError::BrokenLayout {
                    message: format!(
                        "`{convention}` is not a directory (looked for the {what} there)"
                    ),
                    hint: format!(
                        "make `{convention}` a directory, or point `paths` in `{SETTINGS_FILE}` elsewhere"
                    ),
                })
            } else {
                Ok(None)
            }
        }
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, RepoError> {
    let io = |source| RepoError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// The Terraform directory must hold the root module's `*.tf` files.
fn check_terraform_dir(root: &Path, dir: &Path) -> Result<(), RepoError> {
    let has_tf = sorted_entries(dir)?
        .iter()
        .any(|e| e.path().extension().is_some_and(|x| x == "tf"));
    if !has_tf {
        let shown_dir = shown(root, dir);
        return Err(RepoError::BrokenLayout {
            message: format!("the Terraform directory `{shown_dir}` has no `*.tf` files"),
            hint: format!(
                "add the root module's `*.tf` files to `{shown_dir}`, or remove the directory"
            ),
        });
    }
    Ok(())
}

/// The apps: subdirectories of `apps_dir` holding a Dockerfile, with `gitship.yaml`'s `apps`
/// applied; in name order. Every path must lie inside the repository.
fn discover_apps(
    root: &Path,
    apps_dir: Option<&Path>,
    overrides: &Overrides,
) -> Result<Vec<App>, RepoError> {
    let mut apps = match apps_dir {
        Some(dir) => discovered_apps(root, dir, overrides)?,
        None => Vec::new(),
    };
    for (name, configured) in &overrides.apps {
        apply_app_override(root, &mut apps, name, configured)?;
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    for app in &apps {
        if !is_dns_label(&app.name) {
            return Err(RepoError::BrokenLayout {
                message: format!("app `{}` has a name that cannot be an image name", app.name),
                hint: "rename the directory: lowercase letters, digits and `-`".into(),
            });
        }
    }

    Ok(apps)
}

/// The subdirectories of `dir` holding a Dockerfile (or one `gitship.yaml` names), each inside
/// the repository, its Dockerfile too.
fn discovered_apps(root: &Path, dir: &Path, overrides: &Overrides) -> Result<Vec<App>, RepoError> {
    let mut apps = Vec::new();
    for entry in sorted_entries(dir)? {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        files::confine(root, &path, None)?;
        // `Dockerfile`, else podman's and buildah's `Containerfile`.
        let dockerfile = ["Dockerfile", "Containerfile"]
            .iter()
            .map(|file| path.join(file))
            .find(|file| file.is_file())
            .unwrap_or_else(|| path.join("Dockerfile"));
        let configured = overrides.apps.get(&name);
        if !dockerfile.is_file() && configured.is_none_or(|c| c.dockerfile.is_none()) {
            // Not an app: a kustomize base in a Flux repository's `apps/`, docs, shared code.
            tracing::debug!(
                "`{}` has no Dockerfile and `{SETTINGS_FILE}` names no app there: not an app",
                shown(root, &path)
            );
            continue;
        }
        if dockerfile.is_file() {
            // A Dockerfile that is a link must stay in the repository as well: its target is
            // what is built and hashed into the content tag.
            files::confine(root, &dockerfile, None)?;
        }
        apps.push(App {
            name,
            dockerfile,
            context: path,
            build_args: BTreeMap::new(),
            target: None,
        });
    }
    Ok(apps)
}

/// `gitship.yaml`'s `apps.<name>`: applied to the discovered app of that name, or a new app
/// when it names a Dockerfile; every path checked to be inside the repository.
fn apply_app_override(
    root: &Path,
    apps: &mut Vec<App>,
    name: &str,
    configured: &AppOverride,
) -> Result<(), RepoError> {
    let location = configured
        .location
        .clone()
        .unwrap_or_else(|| Location::new(SETTINGS_FILE, 1, 1));
    if !is_dns_label(name) {
        return Err(RepoError::BrokenLayout {
            message: format!("{location}: app name `{name}` is not a valid image name"),
            hint: "use lowercase letters, digits and `-`".into(),
        });
    }
    let discovered = apps.iter().position(|a| a.name == name);
    let index = match discovered {
        Some(index) => index,
        // A new app: its Dockerfile, or its context alone (`<context>/Dockerfile`).
        None if configured.dockerfile.is_some() || configured.context.is_some() => {
            apps.push(App {
                name: name.to_string(),
                dockerfile: PathBuf::new(),
                context: PathBuf::new(),
                build_args: BTreeMap::new(),
                target: None,
            });
            apps.len() - 1
        }
        None => {
            let known: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
            let hint = match did_you_mean(name, known.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? (or set `apps.{name}.context` to declare a new app)"
                ),
                None => format!(
                    "set `apps.{name}.context` (and `dockerfile` unless it is `<context>/Dockerfile`) to declare a new app"
                ),
            };
            return Err(RepoError::BrokenLayout {
                message: format!("{location}: `apps.{name}` does not match any app directory"),
                hint,
            });
        }
    };
    let app = &mut apps[index];
    if let Some(dockerfile) = &configured.dockerfile {
        app.dockerfile = root.join(dockerfile);
        if configured.context.is_none() && discovered.is_none() {
            app.context = app
                .dockerfile
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
        }
    }
    if let Some(context) = &configured.context {
        app.context = root.join(context);
        if configured.dockerfile.is_none() && discovered.is_none() {
            app.dockerfile = app.context.join("Dockerfile");
        }
    }
    app.build_args = configured.build_args.clone();
    app.target = configured.target.clone();
    files::confine(root, &app.dockerfile, Some(&location))?;
    files::confine(root, &app.context, Some(&location))?;
    if !app.dockerfile.is_file() {
        return Err(RepoError::BrokenLayout {
            message: format!(
                "{location}: the Dockerfile of app `{name}` does not exist: `{}`",
                shown(root, &app.dockerfile)
            ),
            hint: format!("fix `apps.{name}.dockerfile` in `{SETTINGS_FILE}`"),
        });
    }
    if !app.context.is_dir() {
        return Err(RepoError::BrokenLayout {
            message: format!(
                "{location}: the build context of app `{name}` is not a directory: `{}`",
                shown(root, &app.context)
            ),
            hint: format!("fix `apps.{name}.context` in `{SETTINGS_FILE}`"),
        });
    }
    Ok(())
}

/// The environments: `*.yaml`/`*.yml` files in the config directory, by name. A file whose name
/// is not a valid environment name is skipped (and returned), not an error: one stray file must
/// not break every environment.
fn discover_environments(
    root: &Path,
    dir: &Path,
    config_relative: &str,
) -> Result<(BTreeMap<String, PathBuf>, Vec<SkippedConfig>), RepoError> {
    let mut environments = BTreeMap::new();
    let mut skipped = Vec::new();
    for entry in sorted_entries(dir)? {
        let path = entry.path();
        let Some(extension) = path.extension() else {
            continue;
        };
        if (extension != "yaml" && extension != "yml") || !path.is_file() {
            continue;
        }
        files::confine(root, &path, None)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_dns_label(&name) {
            skipped.push(SkippedConfig {
                name,
                file: relative(root, &path),
            });
            continue;
        }
        if environments.insert(name.clone(), path.clone()).is_some() {
            return Err(RepoError::BrokenLayout {
                message: format!("environment `{name}` has two config files (`.yaml` and `.yml`)"),
                hint: format!(
                    "keep one of `{config_relative}/{name}.yaml` and `{config_relative}/{name}.yml`"
                ),
            });
        }
    }
    Ok((environments, skipped))
}

impl Repository {
    /// Find the repository: `repo_flag` (`-C DIR`) or else the enclosing Git work tree of the
    /// current directory; then discover its layers, applying `gitship.yaml`.
    pub fn discover(repo_flag: Option<&Path>) -> Result<Repository, RepoError> {
        let root = match repo_flag {
            Some(dir) => {
                let absolute = std::path::absolute(dir).map_err(|source| RepoError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
                if !absolute.is_dir() {
                    return Err(RepoError::NotADirectory {
                        path: dir.to_path_buf(),
                    });
                }
                absolute.canonicalize().map_err(|source| RepoError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?
            }
            None => {
                let cwd = std::env::current_dir().map_err(|source| RepoError::Io {
                    path: ".".into(),
                    source,
                })?;
                crate::git::work_tree_root(&cwd)
                    .ok_or(RepoError::NotInGitWorkTree { directory: cwd })?
            }
        };
        let repository = Self::open(root)?;
        for skipped in &repository.skipped_configs {
            tracing::warn!(
                "skipping `{}`: `{}` is not a valid environment name (environment names are DNS labels: lowercase letters, digits and `-`)",
                skipped.file.display(),
                skipped.name
            );
        }
        Ok(repository)
    }

    /// Discover the layers of the repository rooted at `root` (absolute): `gitship.yaml`, the
    /// layer directories, the apps, the environments and the manifest files.
    pub fn open(root: PathBuf) -> Result<Repository, RepoError> {
        // Confinement compares canonical paths.
        let root = root.canonicalize().unwrap_or(root);
        let overrides = parse_overrides(&root)?;
        let on = |layer: &str| !overrides.off.contains(layer);
        let apps_dir = match on("apps") {
            true => layer(&root, &overrides.apps_dir, "apps", "apps")?,
            false => None,
        };
        let terraform_dir = match on("terraform") {
            true => layer(
                &root,
                &overrides.terraform_dir,
                "infrastructure/terraform",
                "Terraform",
            )?,
            false => None,
        };
        let kubernetes_dir = match on("kubernetes") {
            true => layer(
                &root,
                &overrides.kubernetes_dir,
                "infrastructure/kubernetes",
                "Kubernetes manifests",
            )?,
            false => None,
        };
        let config_relative = overrides
            .config_dir
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| "config".into());
        let config_dir = layer(&root, &overrides.config_dir, "config", "environment config")?;

        if let Some(dir) = &terraform_dir {
            check_terraform_dir(&root, dir)?;
        }
        let apps = discover_apps(&root, apps_dir.as_deref(), &overrides)?;
        let (environments, skipped_configs) = match &config_dir {
            Some(dir) => discover_environments(&root, dir, &config_relative)?,
            None => Default::default(),
        };
        let mut not_manifests: Vec<PathBuf> = [SETTINGS_FILE, "skaffold.yaml", "skaffold.yml"]
            .iter()
            .map(|file| root.join(file))
            .collect();
        not_manifests.push(root.join(&config_relative));
        not_manifests.extend(terraform_dir.clone());
        let manifests = match &kubernetes_dir {
            Some(dir) => files::manifest_tree(&root, dir, &overrides.exclude, &not_manifests)?,
            None => files::ManifestTree::default(),
        };

        if apps_dir.is_none()
            && terraform_dir.is_none()
            && kubernetes_dir.is_none()
            && config_dir.is_none()
        {
            return Err(RepoError::NoLayout {
                root: root.clone(),
                looked_for: "`apps/*/Dockerfile`, `infrastructure/terraform/`, `infrastructure/kubernetes/`, `config/*.yaml` and `gitship.yaml`".into(),
            });
        }

        Ok(Repository {
            layout: Layout {
                apps_dir,
                terraform_dir,
                kubernetes_dir,
                config_dir: root.join(&config_relative),
                terraform_binary: overrides
                    .terraform_binary
                    .unwrap_or_else(|| "terraform".into()),
                builder: overrides.builder,
                kustomize_binary: overrides.kustomize_binary,
                helm_binary: overrides.helm_binary,
                exclude: overrides.exclude,
                bare_image_names: overrides.bare_image_names.unwrap_or(true),
                not_manifests,
            },
            root,
            apps,
            environments,
            skipped_configs,
            manifests,
        })
    }

    /// `path` relative to the repository root when it lies below it (for messages).
    pub fn relative(&self, path: &Path) -> PathBuf {
        relative(&self.root, path)
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Resolve an environment name to its config file, or an error with a did-you-mean hint.
    pub fn environment_file(&self, name: &str) -> Result<&Path, RepoError> {
        match self.environments.get(name) {
            Some(path) => Ok(path),
            None => match self.skipped_configs.iter().find(|s| s.name == name) {
                Some(skipped) => Err(RepoError::InvalidEnvironmentName {
                    name: name.to_string(),
                    file: skipped.file.clone(),
                }),
                None => Err(RepoError::UnknownEnvironment {
                    name: name.to_string(),
                    available: self.environments.keys().cloned().collect(),
                    suggestion: did_you_mean(name, self.environments.keys().map(String::as_str)),
                    config_dir: self.relative(&self.layout.config_dir),
                }),
            },
        }
    }

    /// Load and validate `config/<name>.yaml`.
    pub fn load_env(&self, name: &str) -> Result<EnvConfig, RepoError> {
        let file = self.environment_file(name)?.to_path_buf();
        let text = files::read_text(&self.root, &file)?;
        let display = self.relative(&file);
        let mut config = EnvConfig::parse(name, &file, &display, &text)?;
        if let Some(path) = &config.kubernetes.path {
            let location = config
                .kubernetes
                .location
                .clone()
                .unwrap_or_else(|| config.spans.location("kubernetes.path"));
            let dir = files::confine(&self.root, &self.root.join(path), Some(&location))?;
            if !dir.is_dir() {
                return Err(RepoError::BrokenLayout {
                    message: format!(
                        "{location}: the manifests directory `{path}` of environment `{name}` does not exist"
                    ),
                    hint: format!(
                        "create `{path}` or fix `kubernetes.path` in `{}`",
                        display.display()
                    ),
                });
            }
            config.kubernetes.dir = Some(dir);
        }
        helm::resolve(&self.root, name, &mut config.kubernetes.helm)?;
        if !self.apps.is_empty() && config.registry.is_none() && config.registry_output.is_none() {
            return Err(RepoError::MissingKey {
                location: Location::new(display, 1, 1),
                key: "registry".into(),
                environment: name.to_string(),
            });
        }
        Ok(config)
    }

    /// Load every environment, in name order.
    pub fn load_all_envs(&self) -> Vec<(String, Result<EnvConfig, RepoError>)> {
        self.environments
            .keys()
            .map(|name| (name.clone(), self.load_env(name)))
            .collect()
    }
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

fn shown(root: &Path, path: &Path) -> String {
    relative(root, path).display().to_string()
}
