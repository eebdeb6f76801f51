//! `init`: adopt an existing repository in one step. It looks at what is there (apps and their
//! Dockerfiles, a `skaffold.yaml`, manifest directories and kustomize overlays, a Terraform root)
//! and writes `gitship.yaml` holding only what differs from gitship's conventions, and
//! `config/<env>.yaml` for one environment. It never overwrites a file without `force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::diagnostics::UserError;

mod skaffold;

use skaffold::read_skaffold;
pub use skaffold::{
    ParsedSkaffold, SkaffoldArtifact, SkaffoldConfig, SkaffoldManifests, parse_skaffold,
};

/// What `init` was asked.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub env: String,
    pub registry: Option<String>,
    pub force: bool,
}

/// Version of [`InitReport`]'s JSON (`init -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// What `init` found, assumed and wrote: `gitship init`'s report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub found: Vec<String>,
    pub assumed: Vec<String>,
    /// Files written, relative to the repository root.
    pub written: Vec<PathBuf>,
    /// The command to run next.
    pub next: String,
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
    let mut report = InitReport {
        format_version: FORMAT_VERSION,
        found: Vec::new(),
        assumed: Vec::new(),
        written: Vec::new(),
        next: String::new(),
    };
    let skaffold = read_skaffold(root, &options.env, &mut report)?;
    let apps = match &skaffold {
        Some(skaffold) if !skaffold.apps.is_empty() => skaffold.apps.clone(),
        _ => find_apps(root),
    };
    let manifests = skaffold
        .as_ref()
        .and_then(|s| s.manifests.clone())
        .or_else(|| {
            MANIFEST_DIRS
                .iter()
                .find(|dir| root.join(dir).is_dir())
                .map(|d| d.to_string())
        });
    let terraform = TERRAFORM_DIRS
        .iter()
        .find(|dir| has_tf_files(&root.join(dir)))
        .map(|d| d.to_string());
    let overlay = find_overlay(root, &options.env);

    let exclude = skaffold.as_ref().map_or(&[][..], |s| s.exclude.as_slice());
    let settings = settings_yaml(
        &apps,
        manifests.as_deref(),
        exclude,
        terraform.as_deref(),
        overlay.is_some(),
        &mut report,
    );
    let config = config_yaml(root, options, &apps, overlay.as_deref(), &mut report);
    if let Some(text) = settings {
        write(root, &settings_file, &text, options.force, &mut report)?;
    } else {
        report
            .found
            .push("the layout follows gitship's conventions: no `gitship.yaml` needed".into());
    }
    write(root, &config_file, &config, options.force, &mut report)?;
    report.next = format!(
        "gitship validate {env} && gitship deploy {env} --sandbox",
        env = options.env
    );
    Ok(report)
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

/// `kustomize/overlays/<env>` (or `<manifests>/overlays/<env>`) when it holds a kustomization.
fn find_overlay(root: &Path, env: &str) -> Option<String> {
    let mut candidates = vec![
        format!("kustomize/overlays/{env}"),
        format!("overlays/{env}"),
    ];
    for dir in MANIFEST_DIRS {
        candidates.push(format!("{dir}/overlays/{env}"));
    }
    candidates.into_iter().find(|dir| {
        KUSTOMIZATIONS
            .iter()
            .any(|k| root.join(dir).join(k).is_file())
    })
}

fn has_tf_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "tf"))
    })
}

/// `gitship.yaml`: only what differs from the conventions; `None` when nothing does.
fn settings_yaml(
    apps: &[FoundApp],
    manifests: Option<&str>,
    exclude: &[String],
    terraform: Option<&str>,
    overlay: bool,
    report: &mut InitReport,
) -> Option<String> {
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
    match manifests {
        Some(dir) => {
            report.found.push(format!("manifests in `{dir}/`"));
            if dir != "infrastructure/kubernetes" {
                paths.push(format!("  kubernetes: {}", yaml_scalar(dir)));
            }
            if !exclude.is_empty() {
                report.found.push(format!(
                    "files in `{dir}/` that no skaffold config lists, excluded: {}",
                    exclude.join(", ")
                ));
                paths.push("  exclude:".into());
                paths.extend(exclude.iter().map(|g| format!("    - {}", yaml_string(g))));
            }
        }
        // The environment's overlay is its manifests directory.
        None if overlay => {}
        None => report.found.push("no manifests directory".into()),
    }
    if let Some(dir) = terraform {
        report.found.push(format!("a Terraform root in `{dir}/`"));
        if dir != "infrastructure/terraform" {
            paths.push(format!("  terraform: {}", yaml_scalar(dir)));
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
    overlay: Option<&str>,
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
    if let Some(overlay) = overlay {
        report.found.push(format!(
            "a kustomize overlay for `{}` in `{overlay}/`",
            options.env
        ));
        text.push_str(&format!("kubernetes:\n  path: {}\n", yaml_scalar(overlay)));
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
        assert!(crate::diagnostics::render(&again).contains("--force"));
        let forced = InitOptions {
            force: true,
            ..options
        };
        assert!(init(dir.path(), &forced).is_ok());
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
        let options = InitOptions {
            env: "dev".into(),
            registry: None,
            force: false,
        };
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
        let options = InitOptions {
            env: "dev".into(),
            registry: None,
            force: false,
        };
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
        let options = InitOptions {
            env: "dev".into(),
            registry: None,
            force: false,
        };
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
