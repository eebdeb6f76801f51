//! `init`: adopt an existing repository in one step. It looks at what is there (apps and their
//! Dockerfiles, a `skaffold.yaml`, manifest directories and kustomize overlays, a Terraform root)
//! and writes `gitship.yaml` holding only what differs from gitship's conventions, and
//! `config/<env>.yaml` for one environment. It never overwrites a file without `force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use gitship_foundation::diagnostics::UserError;

mod check;
mod helm;
mod layout;
mod skaffold;

use layout::ManifestsFound;
pub use skaffold::parse_skaffold;
use skaffold::read_skaffold;

/// What `init` was asked.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub env: String,
    pub registry: Option<String>,
    pub force: bool,
}

/// Version of [`InitReport`]'s JSON (`init -o json`). 2: `environment`, `deploy`, `build`,
/// `not_used`, `edit`, and `next` a list of commands.
pub const FORMAT_VERSION: u32 = 2;

/// What `init` found and decided for one environment, and why: `gitship init`'s report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    pub found: Vec<String>,
    /// What the environment will deploy: manifests (and why those), a Terraform root.
    pub deploy: Vec<String>,
    /// The apps it will build.
    pub build: Vec<String>,
    /// What looks like part of a deploy but will not be used, and why.
    pub not_used: Vec<String>,
    pub assumed: Vec<String>,
    /// What to edit before `validate` passes (empty: nothing; it was checked).
    pub edit: Vec<String>,
    /// Files written, relative to the repository root.
    pub written: Vec<PathBuf>,
    /// The commands to run next, in order.
    pub next: Vec<String>,
}

impl InitReport {
    /// An empty report for `environment`.
    fn new(environment: &str) -> InitReport {
        InitReport {
            format_version: FORMAT_VERSION,
            environment: environment.to_string(),
            found: Vec::new(),
            deploy: Vec::new(),
            build: Vec::new(),
            not_used: Vec::new(),
            assumed: Vec::new(),
            edit: Vec::new(),
            written: Vec::new(),
            next: Vec::new(),
        }
    }
}

/// An app as `init` found it (paths relative to the root, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoundApp {
    name: String,
    dockerfile: String,
    context: String,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
}

/// Where manifests are, by convention order.
const MANIFEST_DIRS: &[&str] = &[
    "infrastructure/kubernetes",
    "kubernetes",
    "kubernetes-manifests",
    "k8s",
    "manifests",
    "deploy",
];
/// gitship's conventional Terraform root.
const CONVENTIONAL_TERRAFORM: &str = "infrastructure/terraform";
/// Where a Terraform root is, by convention order.
const TERRAFORM_DIRS: &[&str] = &[
    "infrastructure/terraform",
    "terraform",
    "infra/terraform",
    "infra",
];
/// Where apps are, by convention order.
const APP_DIRS: &[&str] = &["apps", "src", "services"];
const KUSTOMIZATIONS: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Adopt the repository at `root`.
pub fn init(root: &Path, options: &InitOptions) -> Result<InitReport> {
    if !crate::repo::config::is_dns_label(&options.env) {
        return Err(UserError::usage(
            format!("`{}` is not a valid environment name", options.env),
            "environment names are DNS labels: lowercase letters, digits and `-`, e.g. `staging`",
        )
        .into());
    }
    let settings_file = root.join(crate::repo::SETTINGS_FILE);
    let config_file = root.join("config").join(format!("{}.yaml", options.env));
    let existing =
        super::repo_files::existing(root, &[settings_file.clone(), config_file.clone()])?;
    if let Some(file) = existing.first()
        && !options.force
    {
        return Err(UserError::new(
            format!("`{}` exists already", relative(root, file)),
            "pass `--force` to overwrite it",
        )
        .into());
    }
    let mut report = InitReport::new(&options.env);
    let skaffold = read_skaffold(root, &options.env, &mut report)?;
    let apps = match &skaffold {
        Some(skaffold) if !skaffold.apps.is_empty() => skaffold.apps.clone(),
        _ => find_apps(root),
    };
    let terraform = decide_terraform(root, &options.env, &mut report);
    let manifests = find_manifests(root, options, skaffold.as_ref(), &terraform);
    let decided = Decided {
        apps_off: apps_hold_manifests(root, &apps, &manifests),
        manifests,
        terraform,
        charts: helm::find(root, &options.env),
    };
    report_decisions(root, &apps, &decided, &mut report);
    let settings = settings_yaml(&apps, &decided, &mut report);
    let config = config_yaml(root, options, &apps, &decided, &mut report);
    if let Some(text) = settings {
        write(root, &settings_file, &text, options.force, &mut report)?;
    } else {
        report
            .found
            .push("the layout follows gitship's conventions: no `gitship.yaml` needed".into());
    }
    write(root, &config_file, &config, options.force, &mut report)?;
    check::written(root, &options.env, &mut report);
    let env = &options.env;
    report.next = vec![
        format!("gitship validate {env}"),
        format!("gitship deploy {env} --sandbox"),
        format!("gitship plan {env}"),
        format!("gitship deploy {env}"),
    ];
    // The layout's other environments: each from this one (its overlay mapped by name).
    for other in layout::other_environments(root, env) {
        report
            .next
            .push(format!("gitship env new {other} --from {env}"));
    }
    Ok(report)
}

/// What `init` decided for the environment.
#[derive(Debug, Clone)]
struct Decided {
    manifests: ManifestsFound,
    terraform: TerraformUse,
    /// `paths.apps: false`: the conventional `apps/` holds manifests (Flux), not apps.
    apps_off: bool,
    /// The Helm charts, rendered through `kubernetes.helm`.
    charts: Vec<helm::Chart>,
}

/// Whether, and how, the environment runs a Terraform root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TerraformUse {
    None,
    /// Run on every deploy.
    Adopted(String),
    /// Creates the cluster: bootstrap's, not every deploy's (`terraform: false`).
    Bootstrap(String),
}

impl TerraformUse {
    fn dir(&self) -> Option<&str> {
        match self {
            TerraformUse::None => None,
            TerraformUse::Adopted(dir) | TerraformUse::Bootstrap(dir) => Some(dir),
        }
    }
}

/// The Terraform root, adopted unless it creates the cluster the environment deploys to.
fn decide_terraform(root: &Path, env: &str, report: &mut InitReport) -> TerraformUse {
    let Some(dir) = TERRAFORM_DIRS
        .iter()
        .find(|dir| has_tf_files(&root.join(dir)))
        .map(|d| d.to_string())
    else {
        return TerraformUse::None;
    };
    match layout::creates_cluster(root, &dir) {
        Some(what) => {
            report.not_used.push(format!(
                "the Terraform root `{dir}/` creates the cluster ({what}): that is bootstrap, not every deploy of `{env}`; not run (to run it on every deploy, remove `terraform: false` from config/{env}.yaml{})",
                if dir == CONVENTIONAL_TERRAFORM { String::new() } else { format!(" and set `paths.terraform: {dir}` in gitship.yaml") }
            ));
            TerraformUse::Bootstrap(dir)
        }
        None => TerraformUse::Adopted(dir),
    }
}

/// Where the environment's manifests are: Skaffold's, else an overlay of its own (Flux's
/// `clusters/<env>`, a directory named after it), and the repository's shared directory.
fn find_manifests(
    root: &Path,
    options: &InitOptions,
    skaffold: Option<&skaffold::Skaffold>,
    terraform: &TerraformUse,
) -> ManifestsFound {
    let mut found = ManifestsFound::default();
    if let Some(skaffold) = skaffold
        && let Some(dir) = skaffold.manifests.clone()
    {
        found
            .reasons
            .push(format!("`skaffold.yaml` deploys the manifests in `{dir}/`"));
        if !skaffold.exclude.is_empty() {
            found.reasons.push(format!(
                "files in `{dir}/` that no skaffold config lists, excluded: {}",
                skaffold.exclude.join(", ")
            ));
        }
        found.exclude.extend(skaffold.exclude.iter().cloned());
        found.shared = Some(dir);
        // Skaffold's globs say what is deployed: nothing more to exclude.
        return found;
    } else {
        found.own = layout::find_own(root, &options.env, &mut found);
        let mut shared_reasons = ManifestsFound::default();
        found.shared = match &found.own {
            // Another environment's overlays are no shared directory.
            Some(_) => MANIFEST_DIRS
                .iter()
                .find(|dir| root.join(dir).is_dir())
                .map(|d| d.to_string()),
            None => layout::find_shared(root, &mut shared_reasons),
        };
        found.reasons.extend(shared_reasons.reasons);
    }
    if let Some(dir) = found.shared.clone()
        && !layout::has_kustomization(root, &dir)
    {
        let mut not_manifests: Vec<PathBuf> = [
            crate::repo::SETTINGS_FILE,
            "skaffold.yaml",
            "skaffold.yml",
            "config",
        ]
        .iter()
        .map(|file| root.join(file))
        .collect();
        not_manifests.extend(terraform.dir().map(|d| root.join(d)));
        layout::excludes(root, &dir, &not_manifests, &mut found);
    }
    found
}

/// `apps/` holds the environment's manifests (a Flux repository) and no app: `paths.apps: false`.
fn apps_hold_manifests(root: &Path, apps: &[FoundApp], manifests: &ManifestsFound) -> bool {
    let in_apps = |dir: &Option<String>| {
        dir.as_deref()
            .is_some_and(|d| d == "apps" || d.starts_with("apps/"))
    };
    root.join("apps").is_dir()
        && !apps
            .iter()
            .any(|a| a.context == "apps" || a.context.starts_with("apps/"))
        && (in_apps(&manifests.own) || in_apps(&manifests.shared))
}

/// The report's `deploy`, `build` and `edit` lines.
fn report_decisions(root: &Path, apps: &[FoundApp], decided: &Decided, report: &mut InitReport) {
    let manifests = &decided.manifests;
    helm::report(&decided.charts, report);
    match manifests.own.as_ref().or(manifests.shared.as_ref()) {
        Some(dir) => {
            let how = match layout::has_kustomization(root, dir) {
                true => " (built with kustomize)",
                false => "",
            };
            report.deploy.push(format!("the Kubernetes manifests in `{dir}/`{how}"));
        }
        None if !decided.charts.is_empty() => {}
        None => report.edit.push(format!(
            "no Kubernetes manifests found (looked in {}, overlays named after `{}`, Flux's `clusters/{}` and the root): set `paths.kubernetes` in gitship.yaml to their directory, or write `kubernetes: false` in config/{}.yaml if the environment deploys none",
            MANIFEST_DIRS.join(", "),
            report.environment,
            report.environment,
            report.environment
        )),
    }
    report.found.extend(manifests.reasons.iter().cloned());
    report.not_used.extend(manifests.not_used.iter().cloned());
    if let TerraformUse::Adopted(dir) = &decided.terraform {
        report.deploy.push(format!(
            "the Terraform root `{dir}/` (plan, then apply, on every deploy)"
        ));
    }
    report.build.extend(
        apps.iter()
            .map(|app| format!("`{}` from `{}`", app.name, app.dockerfile)),
    );
    if decided.apps_off {
        report
            .found
            .push("`apps/` holds manifests, not apps (`paths.apps: false`)".into());
    }
}

/// Apps without Skaffold: each directory under a conventional apps directory holding a
/// Dockerfile, at its top or nested up to two levels below.
fn find_apps(root: &Path) -> Vec<FoundApp> {
    for dir in APP_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut apps: Vec<FoundApp> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !crate::repo::config::is_dns_label(&name) {
                    return None;
                }
                let app_dir = format!("{dir}/{name}");
                let dockerfile = find_dockerfile(root, &app_dir, 0)?;
                let context = dockerfile
                    .rsplit_once('/')
                    .map_or(app_dir.clone(), |(parent, _)| parent.to_string());
                Some(FoundApp {
                    name,
                    dockerfile,
                    context,
                    build_args: BTreeMap::new(),
                    target: None,
                })
            })
            .collect();
        if !apps.is_empty() {
            apps.sort_by(|a, b| a.name.cmp(&b.name));
            return apps;
        }
    }
    Vec::new()
}

fn find_dockerfile(root: &Path, dir: &str, depth: usize) -> Option<String> {
    if root.join(dir).join("Dockerfile").is_file() {
        return Some(format!("{dir}/Dockerfile"));
    }
    if depth >= 2 {
        return None;
    }
    let mut children: Vec<String> = std::fs::read_dir(root.join(dir))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && name != "node_modules" && name != "target")
        .collect();
    children.sort();
    children
        .iter()
        .find_map(|child| find_dockerfile(root, &format!("{dir}/{child}"), depth + 1))
}

fn has_tf_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "tf"))
    })
}

/// `gitship.yaml`: only what differs from the conventions; `None` when nothing does.
fn settings_yaml(apps: &[FoundApp], decided: &Decided, report: &mut InitReport) -> Option<String> {
    let mut paths = Vec::new();
    let mut app_lines = Vec::new();
    // Apps that sit at `<dir>/<name>/Dockerfile` under one directory are a `paths.apps`.
    let conventional_dir = apps.first().and_then(|first| {
        let dir = first
            .dockerfile
            .strip_suffix(&format!("/{}/Dockerfile", first.name))?;
        apps.iter()
            .all(|a| {
                a.dockerfile == format!("{dir}/{}/Dockerfile", a.name)
                    && a.context == format!("{dir}/{}", a.name)
                    && a.build_args.is_empty()
                    && a.target.is_none()
            })
            .then(|| dir.to_string())
    });
    match &conventional_dir {
        Some(dir) => {
            report.found.push(format!(
                "{} app(s) under `{dir}/`: {}",
                apps.len(),
                names(apps)
            ));
            if dir != "apps" {
                paths.push(format!("  apps: {}", yaml_scalar(dir)));
            }
        }
        None if !apps.is_empty() => {
            report
                .found
                .push(format!("{} app(s): {}", apps.len(), names(apps)));
            for app in apps {
                app_lines.push(format!("  {}:", app.name));
                // `<context>/Dockerfile` is the default: the context alone says it.
                if app.dockerfile != join(&app.context, "Dockerfile") {
                    app_lines.push(format!("    dockerfile: {}", yaml_scalar(&app.dockerfile)));
                }
                app_lines.push(format!("    context: {}", yaml_scalar(&app.context)));
                if !app.build_args.is_empty() {
                    let args: Vec<String> = app
                        .build_args
                        .iter()
                        .map(|(k, v)| format!("{}: {}", yaml_scalar(k), yaml_string(v)))
                        .collect();
                    app_lines.push(format!("    build_args: {{ {} }}", args.join(", ")));
                }
                if let Some(target) = &app.target {
                    app_lines.push(format!("    target: {}", yaml_string(target)));
                }
            }
        }
        None => report
            .found
            .push("no apps (no Dockerfile under apps/, src/ or services/)".into()),
    }
    if decided.apps_off {
        paths.push("  apps: false".to_string());
    }
    if let Some(dir) = &decided.manifests.shared
        && dir != "infrastructure/kubernetes"
    {
        paths.push(format!("  kubernetes: {}", yaml_scalar(dir)));
    }
    if let TerraformUse::Adopted(dir) = &decided.terraform
        && dir != CONVENTIONAL_TERRAFORM
    {
        paths.push(format!("  terraform: {}", yaml_scalar(dir)));
    }
    if !decided.manifests.exclude.is_empty() {
        paths.push("  exclude:".to_string());
        for glob in &decided.manifests.exclude {
            paths.push(format!("    - {}", yaml_string(glob)));
        }
    }
    if paths.is_empty() && app_lines.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Written by `gitship init`: only what differs from gitship's conventions.\n",
    );
    if !paths.is_empty() {
        text.push_str("paths:\n");
        for line in paths {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if !app_lines.is_empty() {
        text.push_str("apps:\n");
        for line in app_lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    Some(text)
}

/// `config/<env>.yaml`.
fn config_yaml(
    root: &Path,
    options: &InitOptions,
    apps: &[FoundApp],
    decided: &Decided,
    report: &mut InitReport,
) -> String {
    let base = root
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut namespace: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    namespace = namespace.trim_matches('-').chars().take(50).collect();
    if !crate::repo::config::is_dns_label(&namespace) {
        namespace = "app".into();
    }
    let name = namespace;
    let namespace = format!("{name}-{}", options.env)
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    report.assumed.push(format!(
        "namespace `{namespace}` and the kubeconfig's current context (edit `cluster` in config/{}.yaml)",
        options.env
    ));
    let mut text = format!("# Written by `gitship init`.\ncluster:\n  namespace: {namespace}\n");
    if !apps.is_empty() {
        let registry = match &options.registry {
            Some(registry) => registry.clone(),
            None => {
                let registry = format!("localhost:5000/{name}");
                report.assumed.push(format!(
                    "registry `{registry}` (pass `--registry PREFIX`, e.g. ghcr.io/acme/shop)"
                ));
                registry
            }
        };
        text.push_str(&format!("registry: {}\n", yaml_scalar(&registry)));
    }
    let charts = helm::config_lines(&decided.charts);
    if decided.manifests.own.is_some() || !charts.is_empty() {
        text.push_str("kubernetes:\n");
    }
    if let Some(overlay) = &decided.manifests.own {
        text.push_str(&format!("  path: {}\n", yaml_scalar(overlay)));
    }
    text.push_str(&charts);
    if matches!(&decided.terraform, TerraformUse::Bootstrap(dir) if dir == CONVENTIONAL_TERRAFORM) {
        text.push_str("# The Terraform root creates the cluster: bootstrap's, not every deploy's.\nterraform: false\n");
    }
    text
}

/// Write `text` to `file` (checked by [`super::repo_files::existing`] first; replaced only with
/// `--force`).
fn write(root: &Path, file: &Path, text: &str, force: bool, report: &mut InitReport) -> Result<()> {
    super::repo_files::write(root, file, text, force)?;
    report.written.push(PathBuf::from(relative(root, file)));
    Ok(())
}

fn names(apps: &[FoundApp]) -> String {
    apps.iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A YAML scalar that stays a string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// `text` as a YAML scalar: as it is when YAML reads it back as that same string (a path, a
/// registry), else quoted ([`yaml_string`]).
fn yaml_scalar(text: &str) -> String {
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-:@+".contains(c))
        && !text.ends_with(':')
        && text.parse::<f64>().is_err()
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        text.to_string()
    } else {
        yaml_string(text)
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// `./kubernetes-manifests/**.yaml` -> `kubernetes-manifests`.
fn static_prefix(glob: &str) -> String {
    let path = clean(glob);
    let parts: Vec<&str> = path
        .split('/')
        .take_while(|part| !part.contains(['*', '?', '[', '{']))
        .collect();
    let parts = match parts.last() {
        Some(last) if last.ends_with(".yaml") || last.ends_with(".yml") => {
            &parts[..parts.len() - 1]
        }
        _ => &parts[..],
    };
    parts.join("/")
}

/// `./a/b/` -> `a/b`; `.` stays `.`.
fn clean(path: &str) -> String {
    let trimmed: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if trimmed.is_empty() {
        ".".into()
    } else {
        trimmed.join("/")
    }
}

fn join(dir: &str, file: &str) -> String {
    if dir == "." {
        clean(file)
    } else {
        clean(&format!("{dir}/{file}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skaffold::skaffold_artifact;

    #[test]
    fn globs_become_directories() {
        assert_eq!(
            static_prefix("./kubernetes-manifests/**.yaml"),
            "kubernetes-manifests"
        );
        assert_eq!(static_prefix("k8s/*.yaml"), "k8s");
        assert_eq!(static_prefix("deploy/app.yaml"), "deploy");
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(join(".", "./Dockerfile"), "Dockerfile");
        assert_eq!(
            join("src/cart/src", "Dockerfile"),
            "src/cart/src/Dockerfile"
        );
    }

    /// A temporary Git repository with one (empty) commit: what `init` is run in.
    fn git_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let signature = git2::Signature::now("test", "test@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        repo.commit(Some("HEAD"), &signature, &signature, "empty", &tree, &[])
            .unwrap();
        dir
    }

    fn write_file(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_conventional_repository_needs_no_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "apps/web/Dockerfile", "FROM scratch\n");
        write_file(
            dir.path(),
            "infrastructure/kubernetes/web.yaml",
            "kind: ConfigMap\n",
        );
        let options = InitOptions {
            env: "staging".into(),
            registry: Some("ghcr.io/acme/shop".into()),
            force: false,
        };
        let report = init(dir.path(), &options).unwrap();
        assert_eq!(report.written, vec![PathBuf::from("config/staging.yaml")]);
        let config = std::fs::read_to_string(dir.path().join("config/staging.yaml")).unwrap();
        assert!(config.contains("registry: ghcr.io/acme/shop"), "{config}");
        // Never overwritten without --force.
        let again = init(dir.path(), &options).unwrap_err();
        assert!(gitship_foundation::diagnostics::render(&again).contains("--force"));
        let forced = InitOptions {
            force: true,
            ..options
        };
        assert!(init(dir.path(), &forced).is_ok());
    }

    #[test]
    fn helm_charts_become_kubernetes_helm_entries() {
        let dir = git_dir();
        let chart = "apiVersion: v2\nname: web\nversion: 0.1.0\n";
        write_file(dir.path(), "charts/web/Chart.yaml", chart);
        write_file(dir.path(), "charts/web/values-staging.yaml", "a: 1\n");
        // A vendored dependency is part of its chart, not a chart of its own.
        write_file(dir.path(), "charts/web/charts/common/Chart.yaml", chart);
        write_file(dir.path(), "deploy/helm/Api_Server/Chart.yaml", chart);
        let options = InitOptions {
            env: "staging".into(),
            registry: None,
            force: false,
        };
        let report = init(dir.path(), &options).unwrap();
        let config = std::fs::read_to_string(dir.path().join("config/staging.yaml")).unwrap();
        assert!(
            config.contains(
                "kubernetes:\n  helm:\n    - chart: charts/web\n      release: web\n      values: [charts/web/values-staging.yaml]\n    - chart: deploy/helm/Api_Server\n      release: api-server\n"
            ),
            "{config}"
        );
        assert!(
            report.deploy.iter().any(|line| line
                == "the Helm chart `charts/web/` as release `web` (`helm template` with `charts/web/values-staging.yaml`)"),
            "{:?}",
            report.deploy
        );
        let parsed = crate::repo::EnvConfig::parse(
            "staging",
            &dir.path().join("config/staging.yaml"),
            Path::new("config/staging.yaml"),
            &config,
        )
        .unwrap();
        assert_eq!(parsed.kubernetes.helm.len(), 2);
    }

    #[test]
    fn skaffold_artifacts_and_nested_dockerfiles_become_apps() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "src/cart/src/Dockerfile", "FROM scratch\n");
        write_file(dir.path(), "src/front/Dockerfile", "FROM scratch\n");
        write_file(
            dir.path(),
            "kubernetes-manifests/a.yaml",
            "kind: ConfigMap\n",
        );
        write_file(
            dir.path(),
            "skaffold.yaml",
            "apiVersion: skaffold/v4beta6\nkind: Config\nbuild:\n  artifacts:\n    - image: cart\n      context: src/cart/src\n    - image: gcr.io/x/front\n      context: src/front\n      docker:\n        buildArgs: { MODE: prod }\n        target: run\nmanifests:\n  rawYaml:\n    - ./kubernetes-manifests/**.yaml\n",
        );
        let options = dev();
        let report = init(dir.path(), &options).unwrap();
        let settings = std::fs::read_to_string(dir.path().join("gitship.yaml")).unwrap();
        assert!(
            settings.contains("kubernetes: kubernetes-manifests"),
            "{settings}"
        );
        // `<context>/Dockerfile`: the context alone says it.
        assert!(settings.contains("context: src/cart/src"), "{settings}");
        assert!(!settings.contains("dockerfile:"), "{settings}");
        assert!(
            settings.contains("build_args: { MODE: \"prod\" }"),
            "{settings}"
        );
        assert!(settings.contains("target: \"run\""), "{settings}");
        assert!(
            report.assumed.iter().any(|a| a.contains("registry")),
            "{report:?}"
        );
    }

    /// One artifact twice (through a YAML alias, or another registry's image of the same name)
    /// is one app: `validate` must pass right after `init` (no duplicate key).
    #[test]
    fn an_aliased_skaffold_artifact_is_one_app() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "src/cart/Dockerfile", "FROM scratch\n");
        write_file(
            dir.path(),
            "skaffold.yaml",
            "build:\n  artifacts:\n    - &cart\n      image: cart\n      context: src/cart\n      docker:\n        buildArgs: { MODE: prod }\n    - *cart\n    - image: gcr.io/x/cart\n      context: src/cart\n",
        );
        let options = dev();
        let report = init(dir.path(), &options).unwrap();
        let settings = std::fs::read_to_string(dir.path().join("gitship.yaml")).unwrap();
        assert_eq!(settings.matches("cart:").count(), 1, "{settings}");
        assert!(
            report
                .assumed
                .iter()
                .any(|a| a.contains("names app `cart` again")),
            "{report:?}"
        );
        assert!(
            crate::repo::Repository::open(dir.path().to_path_buf()).is_ok(),
            "{settings}"
        );
    }

    /// A `skaffold.yaml` linked out of the repository is not read, nor a Dockerfile or context an
    /// artifact leads out of it with.
    #[test]
    fn skaffold_is_read_inside_the_repository_only() {
        let outside = tempfile::tempdir().unwrap();
        write_file(
            outside.path(),
            "skaffold.yaml",
            "build:\n  artifacts:\n    - image: x\n",
        );
        write_file(outside.path(), "x/Dockerfile", "FROM scratch\n");
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("skaffold.yaml"),
            dir.path().join("skaffold.yaml"),
        )
        .unwrap();
        let options = dev();
        let error = init(dir.path(), &options).unwrap_err();
        assert!(
            error.to_string().contains("outside the repository"),
            "{error:#}"
        );
        assert!(!dir.path().join("gitship.yaml").exists());

        let dir = tempfile::tempdir().unwrap();
        write_file(
            dir.path(),
            "skaffold.yaml",
            &format!(
                "build:\n  artifacts:\n    - image: x\n      context: {}/x\n    - image: y\n      context: ../../..{}/x\n",
                outside.path().display(),
                outside.path().display()
            ),
        );
        let parsed =
            parse_skaffold(&std::fs::read_to_string(dir.path().join("skaffold.yaml")).unwrap())
                .unwrap();
        assert_eq!(parsed.artifacts.len(), 2);
        for artifact in &parsed.artifacts {
            assert!(
                skaffold_artifact(dir.path(), artifact).is_none(),
                "{artifact:?}"
            );
        }
    }

    fn dev() -> InitOptions {
        InitOptions {
            env: "dev".into(),
            registry: None,
            force: false,
        }
    }

    /// A Terraform root that creates the cluster is bootstrap's: `init` leaves it off for the
    /// environment (`terraform: false`) and says where the cluster is created.
    #[test]
    fn a_terraform_root_that_creates_the_cluster_is_left_off_and_said_so() {
        let dir = git_dir();
        write_file(
            dir.path(),
            "infrastructure/terraform/main.tf",
            "variable \"region\" {}\n\nresource \"aws_eks_cluster\" \"main\" {\n  name = \"shop\"\n}\n",
        );
        write_file(
            dir.path(),
            "infrastructure/kubernetes/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
        );
        let report = init(dir.path(), &dev()).unwrap();
        let config = std::fs::read_to_string(dir.path().join("config/dev.yaml")).unwrap();
        assert!(config.contains("\nterraform: false\n"), "{config}");
        let not_used = report.not_used.join("\n");
        assert!(
            not_used
                .contains("resource `aws_eks_cluster.main` at infrastructure/terraform/main.tf:3"),
            "{not_used}"
        );
        assert!(report.edit.is_empty(), "{:?}", report.edit);
        assert!(
            report.deploy.iter().all(|d| !d.contains("Terraform")),
            "{report:?}"
        );

        // Not a cluster: adopted, and run on every deploy.
        write_file(
            dir.path(),
            "infrastructure/terraform/main.tf",
            "resource \"aws_s3_bucket\" \"assets\" {}\n",
        );
        let report = init(
            dir.path(),
            &InitOptions {
                force: true,
                ..dev()
            },
        )
        .unwrap();
        assert!(
            report.deploy.iter().any(|d| d.contains("Terraform root")),
            "{report:?}"
        );
    }

    /// Nothing to deploy: `init` says exactly what to edit, and writes no `kubernetes: false` on
    /// its own (that is the user's statement to make).
    #[test]
    fn no_manifests_anywhere_is_an_edit_to_make() {
        let dir = git_dir();
        write_file(dir.path(), "README.md", "nothing\n");
        let report = init(dir.path(), &dev()).unwrap();
        assert_eq!(report.edit.len(), 1, "{report:?}");
        assert!(report.edit[0].contains("kubernetes: false"), "{report:?}");
        let config = std::fs::read_to_string(dir.path().join("config/dev.yaml")).unwrap();
        assert!(!config.contains("kubernetes"), "{config}");
    }

    /// A Helm chart and non-object YAML below the manifests directory are excluded, each said.
    #[test]
    fn yaml_that_is_not_objects_is_excluded_with_a_reason() {
        let dir = git_dir();
        write_file(
            dir.path(),
            "k8s/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
        );
        write_file(dir.path(), "k8s/values-notes.yaml", "replicas: 3\n");
        write_file(
            dir.path(),
            "k8s/charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        );
        write_file(
            dir.path(),
            "k8s/charts/web/templates/d.yaml",
            "{{ .Values.x }}\n",
        );
        let report = init(dir.path(), &dev()).unwrap();
        let settings = std::fs::read_to_string(dir.path().join("gitship.yaml")).unwrap();
        assert!(settings.contains("- \"values-notes.yaml\""), "{settings}");
        assert!(settings.contains("- \"charts/web/**\""), "{settings}");
        let not_used = report.not_used.join("\n");
        assert!(
            not_used.contains("k8s/charts/web`: a Helm chart"),
            "{not_used}"
        );
        // The chart is rendered through `kubernetes.helm`: without helm on PATH, init's check
        // says exactly that and nothing else.
        let needs_helm = |edit: &String| edit.contains("needs helm, but `helm` was not found");
        assert!(
            report.edit.is_empty() || (report.edit.len() == 1 && needs_helm(&report.edit[0])),
            "{:?}",
            report.edit
        );
    }

    #[test]
    fn written_values_read_back_as_the_same_strings() {
        for (text, written) in [
            ("src/cart/src/Dockerfile", "src/cart/src/Dockerfile"),
            ("localhost:5000/shop", "localhost:5000/shop"),
            ("a dir: with #", "\"a dir: with #\""),
            ("*glob", "\"*glob\""),
            ("yes", "\"yes\""),
            ("1.5", "\"1.5\""),
            ("", "\"\""),
        ] {
            assert_eq!(yaml_scalar(text), written);
            let documents = crate::repo::yaml::parse_documents(&format!("k: {written}")).unwrap();
            let read = documents[0].root.as_ref().unwrap().to_json();
            assert_eq!(read["k"], text, "{written}");
        }
        assert_eq!(static_prefix("*.yaml"), "");
    }
}
