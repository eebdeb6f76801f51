//! Which Skaffold configs are deployed: every config of the root file and, first, the configs
//! each one `requires` (`path`, `configs`, `activeProfiles`), transitively. A required file is
//! relative to its requiring file's directory and must stay inside the repository; nesting is
//! bounded ([`MAX_DEPTH`]), so is the number of configs ([`MAX_CONFIGS`]); a cycle is refused
//! with its chain. Each config gets its active profiles applied ([`super::profile`]) and its
//! paths made relative to the root.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{SkaffoldArtifact, SkaffoldConfig, SkaffoldManifests, parse_skaffold, profile};
use gitship_foundation::diagnostics::UserError;

/// How deep `requires` may nest below a root config.
pub const MAX_DEPTH: usize = 8;
/// How many configs are read at most, over every file.
pub const MAX_CONFIGS: usize = 64;

/// The configs to deploy, dependencies first, each once.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub configs: Vec<ResolvedConfig>,
    /// What was not followed or not evaluated, for `init`'s report.
    pub notes: Vec<String>,
}

/// A config to deploy, its profiles applied, its paths relative to the repository root.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    /// The file, relative to the root.
    pub file: String,
    pub name: Option<String>,
    /// The profiles applied, in the order applied.
    pub profiles: Vec<String>,
    pub artifacts: Vec<SkaffoldArtifact>,
    pub manifests: Vec<SkaffoldManifests>,
}

/// Reads a file named relative to the root (a directory means its `skaffold.yaml`): the file's
/// path relative to the root, and its text.
pub type Load<'a> = dyn FnMut(&str) -> Result<(String, String), UserError> + 'a;

/// Resolve the skaffold file `file` (relative to the root) for environment `env`: its profile
/// named `env` applies in every config that has one.
pub fn resolve(file: &str, env: &str, load: &mut Load<'_>) -> Result<Resolution, UserError> {
    let mut resolver = Resolver {
        load,
        env: env.to_string(),
        files: BTreeMap::new(),
        done: BTreeSet::new(),
        stack: Vec::new(),
        visited: 0,
        resolution: Resolution::default(),
    };
    let file = resolver.file(file)?;
    let count = resolver.files.get(&file).map_or(0, Vec::len);
    for index in 0..count {
        resolver.visit(&file, index, &BTreeSet::new())?;
    }
    Ok(resolver.resolution)
}

struct Resolver<'l, 'a> {
    load: &'l mut Load<'a>,
    env: String,
    /// Each file read, by its path from the root.
    files: BTreeMap<String, Vec<SkaffoldConfig>>,
    /// Configs resolved: (file, index).
    done: BTreeSet<(String, usize)>,
    /// The chain of configs being resolved, for cycles.
    stack: Vec<(String, usize)>,
    visited: usize,
    resolution: Resolution,
}

/// One `requires` entry.
#[derive(Debug, Default)]
struct Require {
    path: Option<String>,
    configs: Vec<String>,
    /// `activeProfiles`: (profile, activated by these of the requiring config; none = always).
    active_profiles: Vec<(String, Vec<String>)>,
}

impl Resolver<'_, '_> {
    /// Read `path` once; the key is the path the loader names.
    fn file(&mut self, path: &str) -> Result<String, UserError> {
        let (file, text) = (self.load)(path)?;
        if !self.files.contains_key(&file) {
            let parsed = parse_skaffold(&text).map_err(|error| {
                UserError::new(
                    format!("{file}:{error}"),
                    "fix the file, or move it away and run `gitship init` again",
                )
            })?;
            self.files.insert(file.clone(), parsed.configs);
        }
        Ok(file)
    }

    fn label(&self, (file, index): &(String, usize)) -> String {
        match self.config(file, *index).and_then(|c| c.name.as_deref()) {
            Some(name) => format!("{file} ({name})"),
            None => format!("{file} (config {})", index.saturating_add(1)),
        }
    }

    fn config(&self, file: &str, index: usize) -> Option<&SkaffoldConfig> {
        self.files.get(file).and_then(|configs| configs.get(index))
    }

    fn visit(
        &mut self,
        file: &str,
        index: usize,
        active: &BTreeSet<String>,
    ) -> Result<(), UserError> {
        let key = (file.to_string(), index);
        if self.stack.contains(&key) {
            let mut chain: Vec<String> = self.stack.iter().map(|k| self.label(k)).collect();
            chain.push(self.label(&key));
            return Err(UserError::new(
                format!("skaffold `requires` cycle: {}", chain.join(" -> ")),
                "remove one of the `requires` entries of the cycle",
            ));
        }
        if self.done.contains(&key) {
            return Ok(());
        }
        self.check_bounds(&key)?;
        let Some(config) = self.config(file, index).cloned() else {
            return Ok(());
        };
        let where_ = self.label(&key);
        let (value, applied) = self.apply_profiles(&config, active, &where_)?;
        self.stack.push(key.clone());
        for require in requires(&value, &where_, &mut self.resolution.notes)? {
            self.visit_required(file, &require, &applied, &where_)?;
        }
        self.stack.pop();
        self.done.insert(key);
        self.resolution
            .configs
            .push(resolved(file, &config, applied, &value)?);
        Ok(())
    }

    fn check_bounds(&mut self, key: &(String, usize)) -> Result<(), UserError> {
        if self.stack.len() > MAX_DEPTH {
            return Err(UserError::new(
                format!(
                    "skaffold `requires` nest deeper than {MAX_DEPTH} configs at {}",
                    self.label(key)
                ),
                "flatten the `requires` chain",
            ));
        }
        self.visited = self.visited.saturating_add(1);
        if self.visited > MAX_CONFIGS {
            return Err(UserError::new(
                format!(
                    "more than {MAX_CONFIGS} skaffold configs (at {})",
                    self.label(key)
                ),
                format!(
                    "gitship reads at most {MAX_CONFIGS} skaffold configs: deploy the rest from another repository or environment"
                ),
            ));
        }
        Ok(())
    }

    /// The config with its active profiles applied, and their names.
    fn apply_profiles(
        &mut self,
        config: &SkaffoldConfig,
        active: &BTreeSet<String>,
        where_: &str,
    ) -> Result<(Value, Vec<String>), UserError> {
        let mut value = config.value.clone();
        let mut applied = Vec::new();
        let profiles = config
            .value
            .get("profiles")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in &profiles {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            if name != self.env && !active.contains(name) {
                if item.get("activation").is_some() {
                    self.resolution.notes.push(format!(
                        "skaffold profile `{name}` of {where_}: its `activation` is not evaluated (a profile applies when it is named like the environment, or named by a `requires` entry's `activeProfiles`)"
                    ));
                }
                continue;
            }
            profile::apply(&mut value, item).map_err(|error| {
                UserError::new(
                    format!("{where_}: profile `{name}`: {error}"),
                    "fix the profile, or run `gitship init` for another environment",
                )
            })?;
            applied.push(name.to_string());
        }
        Ok((value, applied))
    }

    fn visit_required(
        &mut self,
        file: &str,
        require: &Require,
        applied: &[String],
        where_: &str,
    ) -> Result<(), UserError> {
        let target = match &require.path {
            Some(path) => {
                let joined = inside(parent(file), path).ok_or_else(|| {
                    UserError::new(
                        format!("{where_}: `requires` path `{path}` is outside the repository"),
                        "Skaffold configs are read inside the repository only: vendor the file, or remove the entry",
                    )
                })?;
                self.file(&joined)?
            }
            None => file.to_string(),
        };
        let indices = self.required_indices(&target, require, where_)?;
        let mut active = BTreeSet::new();
        for (name, activated_by) in &require.active_profiles {
            if activated_by.is_empty() || activated_by.iter().any(|p| applied.contains(p)) {
                active.insert(name.clone());
            }
        }
        for index in indices {
            self.visit(&target, index, &active)?;
        }
        Ok(())
    }

    /// The configs of `target` a `requires` entry names: all of them when it names none.
    fn required_indices(
        &self,
        target: &str,
        require: &Require,
        where_: &str,
    ) -> Result<Vec<usize>, UserError> {
        let configs = self.files.get(target).map(Vec::as_slice).unwrap_or(&[]);
        if require.configs.is_empty() {
            return Ok((0..configs.len()).collect());
        }
        let mut indices = Vec::new();
        for name in &require.configs {
            let Some(index) = configs.iter().position(|c| c.name.as_ref() == Some(name)) else {
                let known: Vec<String> = configs
                    .iter()
                    .filter_map(|c| c.name.as_ref().map(|n| format!("`{n}`")))
                    .collect();
                return Err(UserError::new(
                    format!(
                        "{where_}: `requires` names config `{name}`, which `{target}` does not define"
                    ),
                    format!(
                        "configs of `{target}`: {}",
                        if known.is_empty() {
                            "none named".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            };
            indices.push(index);
        }
        Ok(indices)
    }
}

/// A config's `requires` entries; a `git` one is not followed (noted).
fn requires(
    config: &Value,
    where_: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<Require>, UserError> {
    let mut found = Vec::new();
    let Some(items) = config.get("requires") else {
        return Ok(found);
    };
    let invalid = |what: &str| {
        UserError::new(
            format!("{where_}: invalid `requires`: {what}"),
            "each entry is `{ path: other/skaffold.yaml, configs: [name], activeProfiles: [{ name: p, activatedBy: [q] }] }`",
        )
    };
    for item in items.as_array().ok_or_else(|| invalid("expected a list"))? {
        if item.get("git").is_some() || item.get("googleCloudStorage").is_some() {
            notes.push(format!(
                "{where_}: a `requires` entry on a remote repository is not read: its configs are not deployed"
            ));
            continue;
        }
        let strings = |value: Option<&Value>, what: &str| -> Result<Vec<String>, UserError> {
            match value {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string).ok_or_else(|| invalid(what)))
                    .collect(),
                Some(_) => Err(invalid(what)),
            }
        };
        let mut require = Require {
            path: item.get("path").and_then(Value::as_str).map(str::to_string),
            configs: strings(item.get("configs"), "`configs` is a list of names")?,
            ..Require::default()
        };
        for profile in item
            .get("activeProfiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = profile.get("name").and_then(Value::as_str);
            let name = name.ok_or_else(|| invalid("an `activeProfiles` entry has no `name`"))?;
            let by = strings(
                profile.get("activatedBy"),
                "`activatedBy` is a list of names",
            )?;
            require.active_profiles.push((name.to_string(), by));
        }
        found.push(require);
    }
    Ok(found)
}

/// The config's artifacts and manifests, their paths made relative to the root.
fn resolved(
    file: &str,
    config: &SkaffoldConfig,
    profiles: Vec<String>,
    value: &Value,
) -> Result<ResolvedConfig, UserError> {
    let dir = parent(file);
    let outside = |what: &str, path: &str| {
        UserError::new(
            format!("{file}: {what} `{path}` is outside the repository"),
            "gitship builds and deploys what is inside the repository only",
        )
    };
    let mut artifacts = super::artifacts(value);
    for artifact in &mut artifacts {
        let context = artifact.context.as_deref().unwrap_or(".");
        artifact.context =
            Some(inside(dir, context).ok_or_else(|| outside("build context", context))?);
    }
    let mut manifests = super::manifest_sources(value);
    for source in &mut manifests {
        let (SkaffoldManifests::RawYaml(path) | SkaffoldManifests::Kustomize(path)) = source;
        *path = inside(dir, path).ok_or_else(|| outside("manifests", path))?;
    }
    Ok(ResolvedConfig {
        file: file.to_string(),
        name: config.name.clone(),
        profiles,
        artifacts,
        manifests,
    })
}

/// The directory of `file` (`.` at the root).
fn parent(file: &str) -> &str {
    match file.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir,
        _ => ".",
    }
}

/// `path` (relative to `dir`) relative to the root, `.` and `..` resolved; `None` when it is
/// absolute or climbs above the root.
pub(super) fn inside(dir: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files by path; a directory name means its `skaffold.yaml`.
    fn resolve_in(files: &[(&str, &str)], env: &str) -> Result<Resolution, UserError> {
        let files: BTreeMap<String, String> = files
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        let mut load = |path: &str| {
            let file = match files.contains_key(path) {
                true => path.to_string(),
                false => format!("{path}/skaffold.yaml"),
            };
            files
                .get(&file)
                .map(|text| (file.clone(), text.clone()))
                .ok_or_else(|| UserError::new(format!("`{file}` does not exist"), "test"))
        };
        resolve("skaffold.yaml", env, &mut load)
    }

    fn names(resolution: &Resolution) -> Vec<String> {
        resolution
            .configs
            .iter()
            .map(|c| format!("{}:{}", c.file, c.name.as_deref().unwrap_or("-")))
            .collect()
    }

    const ROOT: &str = "metadata: {name: web}
requires:
  - path: ./services/api
    configs: [api]
    activeProfiles:
      - name: local
        activatedBy: [dev]
build:
  artifacts:
    - image: web
      context: web
manifests:
  rawYaml: [k8s/web/*.yaml]
profiles:
  - name: dev
    patches:
      - op: replace
        path: /build/artifacts/0/context
        value: web/dev
---
metadata: {name: tools}
requires:
  - configs: [web]
build:
  artifacts:
    - image: admin
";
    const API: &str = "metadata: {name: api}
build:
  artifacts:
    - image: api
manifests:
  rawYaml: [../../k8s/api/*.yaml]
profiles:
  - name: local
    manifests:
      rawYaml: [../../k8s/api/*.yaml, ../../k8s/db/*.yaml]
  - name: ci
    activation: [{env: CI=true}]
---
metadata: {name: unused}
";

    #[test]
    fn every_config_and_what_it_requires_dependencies_first() {
        let files = [("skaffold.yaml", ROOT), ("services/api/skaffold.yaml", API)];
        let dev = resolve_in(&files, "dev").unwrap();
        assert_eq!(
            names(&dev),
            [
                "services/api/skaffold.yaml:api",
                "skaffold.yaml:web",
                "skaffold.yaml:tools"
            ]
        );
        let api = &dev.configs[0];
        assert_eq!(api.profiles, ["local"]);
        assert_eq!(api.artifacts[0].context.as_deref(), Some("services/api"));
        assert_eq!(
            api.manifests,
            [
                SkaffoldManifests::RawYaml("k8s/api/*.yaml".into()),
                SkaffoldManifests::RawYaml("k8s/db/*.yaml".into())
            ]
        );
        assert_eq!(dev.configs[1].profiles, ["dev"]);
        assert_eq!(
            dev.configs[1].artifacts[0].context.as_deref(),
            Some("web/dev")
        );
        assert!(
            dev.notes
                .iter()
                .any(|n| n.contains("profile `ci`") && n.contains("activation")),
            "{:?}",
            dev.notes
        );
        // Another environment: no profile, `local` not activated.
        let staging = resolve_in(&files, "staging").unwrap();
        assert!(staging.configs.iter().all(|c| c.profiles.is_empty()));
        assert_eq!(staging.configs[0].manifests.len(), 1);
        assert_eq!(
            staging.configs[1].artifacts[0].context.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn a_cycle_is_refused_with_its_chain() {
        let a = "metadata: {name: a}\nrequires:\n  - path: b.yaml\n";
        let b = "metadata: {name: b}\nrequires:\n  - path: skaffold.yaml\n    configs: [a]\n";
        let error = resolve_in(&[("skaffold.yaml", a), ("b.yaml", b)], "dev").unwrap_err();
        assert_eq!(
            error.message,
            "skaffold `requires` cycle: skaffold.yaml (a) -> b.yaml (b) -> skaffold.yaml (a)"
        );
        let own = "metadata: {name: a}\nrequires:\n  - configs: [a]\n";
        let error = resolve_in(&[("skaffold.yaml", own)], "dev").unwrap_err();
        assert!(error.message.contains("cycle"), "{error}");
    }

    #[test]
    fn requires_stay_in_the_repository_and_are_bounded() {
        let out = "requires:\n  - path: ../other/skaffold.yaml\n";
        let error = resolve_in(&[("skaffold.yaml", out)], "dev").unwrap_err();
        assert!(
            error
                .message
                .contains("`../other/skaffold.yaml` is outside the repository"),
            "{error}"
        );
        let absolute = "requires:\n  - path: /etc/skaffold.yaml\n";
        assert!(resolve_in(&[("skaffold.yaml", absolute)], "dev").is_err());
        let context = "build:\n  artifacts:\n    - image: x\n      context: ../..\n";
        let error = resolve_in(&[("skaffold.yaml", context)], "dev").unwrap_err();
        assert!(
            error.message.contains("build context `../..` is outside"),
            "{error}"
        );
        let unknown = "requires:\n  - path: b.yaml\n    configs: [nope]\n";
        let error = resolve_in(
            &[
                ("skaffold.yaml", unknown),
                ("b.yaml", "metadata: {name: b}\n"),
            ],
            "dev",
        )
        .unwrap_err();
        assert!(error.message.contains("config `nope`"), "{error}");
        assert_eq!(error.hint.as_deref(), Some("configs of `b.yaml`: `b`"));
        // A chain deeper than the bound.
        let mut files = Vec::new();
        for depth in 0..=MAX_DEPTH + 1 {
            let name = if depth == 0 {
                "skaffold.yaml".to_string()
            } else {
                format!("d{depth}.yaml")
            };
            files.push((name, format!("requires:\n  - path: d{}.yaml\n", depth + 1)));
        }
        let last = format!("d{}.yaml", MAX_DEPTH + 2);
        files.push((last, "metadata: {name: end}\n".to_string()));
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let error = resolve_in(&files, "dev").unwrap_err();
        assert!(error.message.contains("deeper than"), "{error}");
        let git = "requires:\n  - git: {repo: https://example.com/x.git}\n";
        let notes = resolve_in(&[("skaffold.yaml", git)], "dev").unwrap().notes;
        assert!(notes[0].contains("remote repository"), "{notes:?}");
    }

    #[test]
    fn a_bad_profile_patch_names_the_config_and_profile() {
        let text = "metadata: {name: web}\nprofiles:\n  - name: dev\n    patches:\n      - op: replace\n        path: /build/artifacts/0/image\n        value: x\n";
        let error = resolve_in(&[("skaffold.yaml", text)], "dev").unwrap_err();
        assert_eq!(
            error.message,
            "skaffold.yaml (web): profile `dev`: patch 1: `/build/artifacts/0/image` does not exist"
        );
        assert!(resolve_in(&[("skaffold.yaml", text)], "prod").is_ok());
    }

    #[test]
    fn paths_resolve_inside_the_root() {
        assert_eq!(inside("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(inside(".", "./x/./y/").as_deref(), Some("x/y"));
        assert_eq!(inside("a", "..").as_deref(), Some("."));
        assert_eq!(inside("a", "../.."), None);
        assert_eq!(inside(".", "/etc"), None);
        assert_eq!(parent("skaffold.yaml"), ".");
        assert_eq!(parent("a/b/skaffold.yaml"), "a/b");
    }
}
