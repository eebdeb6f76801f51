//! `ci init`: the CI configuration that runs gitship on a hosting platform, written once and
//! then owned by the user: GitHub Actions (`.github/workflows/gitship.yml`, one file with every
//! job) or GitLab CI (`.gitlab-ci.yml`).
//!
//! What it writes: on pull/merge requests, `validate` then `plan <plan-env> -o markdown
//! --exit-code`, posted as one comment updated in place (found again by a hidden marker); on the
//! default branch, `build` and `deploy` for each deploy environment in order, one concurrency
//! group (`resource_group`) per environment, the platform's environment for protection (an
//! environment run by the agent only builds: the agent applies); on a schedule, `drift` failing
//! on drift. Every job installs a pinned gitship (cached) and skips what `gitship affected` says
//! a change cannot touch. Credentials come from the platform's secret store under the names the
//! file's header lists. [`generate`] is pure (snapshot-tested); [`ci_init`] checks and writes.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::diagnostics::{UserError, user_error};
use crate::repo::Repository;

/// The CI platform `ci init` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Github,
    Gitlab,
}

impl Platform {
    /// The platform's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Github => "github",
            Platform::Gitlab => "gitlab",
        }
    }
}

/// `gitship ci init github|gitlab`: what [`ci_init`] is asked for.
#[derive(Debug, Clone)]
pub struct CiInitRequest {
    pub platform: Platform,
    /// `--plan-env`, each planned on pull requests; empty: `staging` when it exists (else the
    /// first environment, in name order, that is not `production`) and every deployed one.
    pub plan_envs: Vec<String>,
    /// `--deploy-env`, in deploy order; empty: the default (`production` when it exists).
    pub deploy_envs: Vec<String>,
    /// `--branch`: the branch whose pushes deploy (GitHub only; GitLab's pipeline names the
    /// project's default branch itself). Default: the repository's default branch.
    pub branch: Option<String>,
    /// `--force`: overwrite files that exist.
    pub force: bool,
}

/// One environment deployed from the default branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployTarget {
    pub name: String,
    /// Its config has an `agent:` section: CI builds, the agent applies.
    pub agent: bool,
}

/// Everything the generated files depend on; built from the repository by [`ci_init`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CiSpec {
    /// The gitship repository relative to the Git work tree root, `/`-separated; empty when
    /// they are the same (the commands then need no `-C`).
    pub repo_path: String,
    /// The branch whose pushes deploy: the repository's default branch (`origin/HEAD`, else
    /// the branch checked out), or `--branch`; on GitLab, `$CI_DEFAULT_BRANCH` (the project's
    /// default branch as GitLab knows it).
    pub branch: String,
    /// The environments a pull request is planned against, each in its own job (skipped when
    /// the change cannot affect it).
    pub plan: Vec<String>,
    pub deploy: Vec<DeployTarget>,
    /// Environments checked for drift on the schedule: the plan environment and the deploy
    /// environments, in that order, without repeats.
    pub drift: Vec<String>,
    /// The repository has a Terraform module.
    pub terraform: bool,
    /// The Terraform version the jobs install, and where it comes from
    /// ([`terraform_version`]); `None` without a module.
    pub terraform_version: Option<(String, String)>,
    /// The registry hosts the environments push to (for the logins), in name order.
    pub registries: Vec<String>,
    /// The gitship version the jobs install.
    pub gitship_version: String,
}

/// What `ci init` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CiInitReport {
    pub spec: CiSpec,
    /// The files written, relative to the Git work tree root.
    pub files: Vec<PathBuf>,
}

/// Where gitship's source is fetched from by the generated jobs (`cargo install --git`).
pub const GITSHIP_GIT_URL: &str = "https://github.com/gitship/gitship";

/// The name of the platform secret (GitHub) or CI/CD variable (GitLab) holding `env`'s
/// kubeconfig: `KUBECONFIG_<ENV>`, upper case, `-` as `_`.
pub fn kubeconfig_secret(env: &str) -> String {
    format!("KUBECONFIG_{}", env.to_ascii_uppercase().replace('-', "_"))
}

/// Check the options against the repository, then write the platform's files (refusing to
/// overwrite any without `force`, before writing anything).
pub fn ci_init(repo_dir: Option<&Path>, options: &CiInitRequest) -> Result<CiInitReport> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let git_root = crate::git::work_tree_root(&repo.root).ok_or_else(|| {
        UserError::new(
            format!("`{}` is not inside a Git work tree", repo.root.display()),
            "CI runs on a Git repository: `git init` and commit first",
        )
    })?;
    let spec = spec(&repo, &git_root, options)?;
    let files = generate(&spec, options.platform);
    let absolute: Vec<PathBuf> = files.iter().map(|(path, _)| git_root.join(path)).collect();
    let existing = super::repo_files::existing(&git_root, &absolute)?;
    if !existing.is_empty() && !options.force {
        let names: Vec<String> = existing
            .iter()
            .map(|p| format!("`{}`", p.strip_prefix(&git_root).unwrap_or(p).display()))
            .collect();
        return Err(UserError::new(
            format!("{} already exists", names.join(", ")),
            format!(
                "pass `--force` to overwrite it (`gitship ci init {} --force`), or move it away first",
                options.platform.name()
            ),
        )
        .into());
    }
    for ((_, text), absolute) in files.iter().zip(&absolute) {
        super::repo_files::write(&git_root, absolute, text, options.force)?;
    }
    Ok(CiInitReport {
        spec,
        files: files.into_iter().map(|(path, _)| path).collect(),
    })
}

/// The [`CiSpec`] for `repo` under `options`: environments checked to exist.
fn spec(repo: &Repository, git_root: &Path, options: &CiInitRequest) -> Result<CiSpec> {
    let names: Vec<&String> = repo.environments.keys().collect();
    if names.is_empty() {
        return Err(UserError::new(
            "the repository has no environments to run in CI",
            format!(
                "create `{}/<env>.yaml` first (or run `gitship init`)",
                repo.relative(&repo.layout.config_dir).display()
            ),
        )
        .into());
    }
    let branch = deploy_branch(&repo.root, options)?;
    let deploy_names: Vec<String> = if options.deploy_envs.is_empty() {
        if !repo.environments.contains_key("production") {
            return Err(UserError::new(
                "there is no `production` environment to deploy from the default branch",
                "name the environments to deploy, in order, with `--deploy-env ENV` (e.g. `--deploy-env staging --deploy-env production`)",
            )
            .into());
        }
        vec!["production".to_string()]
    } else {
        options.deploy_envs.clone()
    };
    let mut deploy: Vec<DeployTarget> = Vec::new();
    let mut registries = std::collections::BTreeSet::new();
    for name in &deploy_names {
        if deploy.iter().any(|d| &d.name == name) {
            return Err(UserError::usage(
                format!("`--deploy-env {name}` is given twice"),
                "name each environment once, in the order to deploy them",
            )
            .into());
        }
        repo.environment_file(name).map_err(user_error)?;
        let config = repo.load_env(name).map_err(user_error)?;
        deploy.push(DeployTarget {
            name: name.clone(),
            agent: config.spans.keys.contains_key("agent"),
        });
    }
    // Planned: the environments named, else the default one and every deployed one.
    let mut plan: Vec<String> = Vec::new();
    if options.plan_envs.is_empty() {
        plan.push(default_plan_env(&names));
        plan.extend(deploy_names.iter().cloned());
    } else {
        for name in &options.plan_envs {
            repo.environment_file(name).map_err(user_error)?;
            plan.push(name.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    plan.retain(|name| seen.insert(name.clone()));
    for name in plan.iter().chain(&deploy_names) {
        let config = repo.load_env(name).map_err(user_error)?;
        if let Some(registry) = &config.registry
            && !repo.apps.is_empty()
        {
            registries.insert(registry_host(registry).to_string());
        }
    }
    let mut drift = plan.clone();
    for name in &deploy_names {
        if !drift.contains(name) {
            drift.push(name.clone());
        }
    }
    let repo_path = repo_path(repo, git_root)?;
    Ok(CiSpec {
        repo_path,
        branch,
        plan,
        deploy,
        drift,
        terraform: repo.layout.terraform_dir.is_some(),
        terraform_version: terraform_version(repo)?,
        registries: registries.into_iter().collect(),
        gitship_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// The repository relative to the Git root, `/`-separated, for `-C` in every command: refused
/// when it holds a character CI files cannot quote safely.
fn repo_path(repo: &Repository, git_root: &Path) -> Result<String> {
    let path = repo
        .root
        .strip_prefix(git_root)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    if path
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
    {
        return Err(UserError::new(
            format!("the repository's path `{path}` below the Git root has characters CI files cannot quote safely"),
            "keep the path to letters, digits, `/`, `.`, `_` and `-`",
        )
        .into());
    }
    Ok(path)
}

/// The Terraform version CI installs when the repository has no pin of its own.
pub const DEFAULT_TERRAFORM_VERSION: &str = "1.9.8";

/// The Terraform version the jobs install, pinned, and where it comes from: `.terraform-version`
/// (tfenv's; in the module's directory, else the repository's root), else the module's
/// `required_version` when it names exactly one version (`1.9.8`, `= 1.9.8`), else
/// [`DEFAULT_TERRAFORM_VERSION`]. `None` without a Terraform module.
fn terraform_version(repo: &Repository) -> Result<Option<(String, String)>> {
    let Some(module) = &repo.layout.terraform_dir else {
        return Ok(None);
    };
    for dir in [module.as_path(), repo.root.as_path()] {
        let file = dir.join(".terraform-version");
        if std::fs::symlink_metadata(&file).is_err() {
            continue;
        }
        let text = crate::repo::files::read_text(&repo.root, &file).map_err(user_error)?;
        let version = text.trim();
        if !is_exact_version(version) {
            return Err(UserError::new(
                format!(
                    "`{}` names `{}`, not one Terraform version",
                    repo.relative(&file).display(),
                    version.escape_default()
                ),
                "write one version such as `1.9.8` (CI installs exactly it)",
            )
            .into());
        }
        return Ok(Some((
            version.to_string(),
            format!("`{}`", repo.relative(&file).display()),
        )));
    }
    let (info, _) = crate::terraform::static_check::inspect_module(module, &repo.root);
    let exact = info
        .required_version
        .as_deref()
        .map(|v| v.trim().trim_start_matches('=').trim())
        .filter(|v| is_exact_version(v));
    Ok(Some(match exact {
        Some(version) => (
            version.to_string(),
            "the module's `required_version`".into(),
        ),
        None => (
            DEFAULT_TERRAFORM_VERSION.to_string(),
            "gitship's default: pin yours in `.terraform-version`".into(),
        ),
    }))
}

/// `1.9.8`, `1.10.0-beta1`: digits and dots, an optional pre-release; nothing to quote.
fn is_exact_version(version: &str) -> bool {
    let (release, pre) = match version.split_once('-') {
        Some((_, "")) => return false,
        Some((release, pre)) => (release, pre),
        None => (version, ""),
    };
    let parts: Vec<&str> = release.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// The environment planned by default besides the deployed ones: `staging` when it exists, else
/// the first that is not `production`, else the first.
fn default_plan_env(names: &[&String]) -> String {
    names
        .iter()
        .find(|n| n.as_str() == "staging")
        .or_else(|| names.iter().find(|n| n.as_str() != "production"))
        .or_else(|| names.first())
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// The branch whose pushes deploy: `--branch`, else the repository's default branch.
fn deploy_branch(root: &Path, options: &CiInitRequest) -> Result<String> {
    if options.platform == Platform::Gitlab {
        if options.branch.is_some() {
            return Err(UserError::usage(
                "`--branch` is for `github` only",
                "a GitLab pipeline deploys from the project's default branch (`$CI_DEFAULT_BRANCH`); set it in Settings > Repository",
            )
            .into());
        }
        return Ok("$CI_DEFAULT_BRANCH".to_string());
    }
    let branch = match &options.branch {
        Some(branch) => branch.clone(),
        None => crate::git::default_branch(root)?.ok_or_else(|| {
                UserError::new(
                    "there is no default branch to deploy from: `origin/HEAD` is not set and `HEAD` is not on a branch",
                    "name the branch whose pushes deploy with `--branch NAME`, or `git checkout` it",
                )
            })?,
    };
    if branch.is_empty()
        || !branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        return Err(UserError::new(
            format!("the branch `{branch}` has characters CI files cannot quote safely"),
            "pass `--branch NAME` with letters, digits, `/`, `.`, `_` and `-` only",
        )
        .into());
    }
    Ok(branch)
}

/// The Terraform version of `spec` and where it comes from (for the file's comment).
fn terraform_pin(spec: &CiSpec) -> (&str, &str) {
    spec.terraform_version
        .as_ref()
        .map_or(("", ""), |(version, from)| {
            (version.as_str(), from.as_str())
        })
}

/// The host part of a registry prefix (`ghcr.io/acme/blog` -> `ghcr.io`).
fn registry_host(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

/// The files for `platform`, relative to the Git work tree root, with their text.
pub fn generate(spec: &CiSpec, platform: Platform) -> Vec<(PathBuf, String)> {
    match platform {
        Platform::Github => vec![(
            PathBuf::from(".github/workflows/gitship.yml"),
            github::workflow(spec),
        )],
        Platform::Gitlab => vec![(PathBuf::from(".gitlab-ci.yml"), gitlab::pipeline(spec))],
    }
}

/// `gitship` with `-C` when the repository lies below the Git root.
fn gitship_command(spec: &CiSpec) -> String {
    if spec.repo_path.is_empty() {
        "gitship".to_string()
    } else {
        format!("gitship -C {}", spec.repo_path)
    }
}

/// `template` with every `@KEY@` replaced.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("@{key}@"), value);
    }
    text
}

/// `value` as a YAML double-quoted scalar (JSON's string syntax, which YAML reads the same): no
/// value can end the scalar or start YAML structure.
fn yaml_quote(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// `value` as one POSIX shell word in single quotes (a `'` in it closed, escaped and reopened).
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `text` with every non-empty line indented by `spaces`.
fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Secrets (GitHub) or CI/CD variables (GitLab) the generated file reads, set together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Their names (a login's user and password go together).
    pub names: Vec<String>,
    /// What they hold, as the file's header says it, one line of the header each.
    pub holds: Vec<String>,
    /// GitHub: the environments whose jobs read them (each an environment secret there);
    /// empty on GitLab.
    pub environments: Vec<String>,
}

/// The secrets the files [`generate`] writes for `spec` on `platform` read, in the order their
/// header lists them: what `ci init` tells the user to set.
pub fn secrets(spec: &CiSpec, platform: Platform) -> Vec<Secrets> {
    let github = platform == Platform::Github;
    let group = |names: &[&str], holds: &[&str], environments: Vec<String>| Secrets {
        names: names.iter().map(|name| name.to_string()).collect(),
        holds: holds.iter().map(|line| line.to_string()).collect(),
        environments: if github { environments } else { Vec::new() },
    };
    // The GitHub environments of the jobs: `<env>-plan` for the plan and drift, `<env>` for a
    // deploy (an agent's environment only builds: no cluster, no Terraform).
    let plan = |env: &str| format!("{env}-plan");
    let deploying: Vec<String> = spec
        .deploy
        .iter()
        .filter(|target| !target.agent)
        .map(|target| target.name.clone())
        .collect();
    let reading: Vec<String> = spec.drift.iter().map(|env| plan(env)).collect();
    let mut secrets = Vec::new();
    if !spec.registries.is_empty() {
        let mut environments: Vec<String> = spec.plan.iter().map(|env| plan(env)).collect();
        environments.extend(spec.deploy.iter().map(|target| target.name.clone()));
        secrets.push(group(
            &["REGISTRY_USERNAME", "REGISTRY_PASSWORD"],
            &[
                &format!(
                    "the registry login for {} (plan reads tags,",
                    spec.registries.join(", ")
                ),
                "build and deploy push images)",
            ],
            environments,
        ));
    }
    let kubeconfig_kind = match platform {
        Platform::Github => "the file's contents",
        Platform::Gitlab => "a variable of type File",
    };
    for env in &spec.drift {
        let mut environments = vec![plan(env)];
        if deploying.contains(env) {
            environments.insert(0, env.clone());
        }
        secrets.push(group(
            &[&kubeconfig_secret(env)],
            &[&format!(
                "the kubeconfig of environment `{env}` ({kubeconfig_kind})"
            )],
            environments,
        ));
    }
    if spec.terraform {
        secrets.push(group(
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            &[
                "the Terraform backend's credentials (an `s3`",
                "backend; for `azurerm` use ARM_*, for `gcs` GOOGLE_CREDENTIALS, and change the",
                "variables below to match)",
            ],
            deploying.iter().cloned().chain(reading).collect(),
        ));
    }
    if platform == Platform::Gitlab {
        secrets.push(group(
            &["GITLAB_TOKEN"],
            &["a project access token with the `api` scope, to write the plan note"],
            Vec::new(),
        ));
    }
    secrets
}

/// The header comment naming the [`secrets`] to set in `store`, shared by both platforms.
fn secrets_comment(spec: &CiSpec, platform: Platform, store: &str) -> String {
    let mut lines = vec![format!("# Secrets to set ({store}):")];
    for group in secrets(spec, platform) {
        for (index, line) in group.holds.iter().enumerate() {
            if index == 0 {
                lines.push(format!("#   {}: {line}", group.names.join(", ")));
            } else {
                lines.push(format!("#     {line}"));
            }
        }
        if !group.environments.is_empty() {
            let names: Vec<String> = group
                .environments
                .iter()
                .map(|env| format!("`{env}`"))
                .collect();
            lines.push(format!("#     in environments {}", names.join(", ")));
        }
    }
    lines.join("\n") + "\n"
}

/// A generated file's header: `template` filled with the version and environments, then the
/// secrets to set in `store`.
fn header(spec: &CiSpec, platform: Platform, template: &str, store: &str) -> String {
    let names = |list: Vec<&str>| {
        list.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let deploy_names = names(spec.deploy.iter().map(|d| d.name.as_str()).collect());
    let drift_names = names(spec.drift.iter().map(String::as_str).collect());
    let plan_names = names(spec.plan.iter().map(String::as_str).collect());
    let mut out = fill(
        template,
        &[
            ("VERSION", &spec.gitship_version),
            ("PLAN", &plan_names),
            ("DEPLOY", &deploy_names),
            ("DRIFT", &drift_names),
            ("BRANCH", &spec.branch),
        ],
    );
    out.push_str(&secrets_comment(spec, platform, store));
    out
}

mod github {
    //! `.github/workflows/gitship.yml`.

    use super::*;

    const HEADER: &str = r#"# Written by `gitship ci init github` (gitship @VERSION@); edit freely, `--force` writes it again.
#
# - pull requests: `gitship validate`, then `gitship plan` of @PLAN@, one job and one comment
#   (updated in place, and written to the job summary) per environment; a job fails only when
#   its plan fails (exit 1), not when it shows changes (exit 2);
# - pushes to `@BRANCH@`: `gitship build` and `gitship deploy` for @DEPLOY@, in that order,
#   one deploy of an environment at a time;
# - every day (and on demand): `gitship drift` for @DRIFT@, failing on drift.
# Each job asks `gitship affected` what the change touches and skips an environment it cannot
# affect.
#
# Every secret is an environment secret (Settings > Environments), never a repository secret:
# a pull request runs its own copy of this file, and could print any secret the repository
# gives it. A deploy job reads the secrets of its environment (`production`): protect it with
# required reviewers and deployment branches limited to `@BRANCH@`, so no other branch gets
# them. The plan of pull requests and the drift check read those of `<env>-plan`
# (`@PLAN@-plan`): credentials that can read and dry-run but not deploy (a registry token that
# cannot push, a backend role that cannot write the state), since any branch may use them;
# limit the `-plan` environments that only the drift check uses to `@BRANCH@` as well.
#
"#;

    const TOP: &str = r#"name: gitship

on:
  pull_request:
  push:
    branches: [@BRANCH@]
  schedule:
    - cron: "17 6 * * *"
  workflow_dispatch:

permissions:
  contents: read

env:
  # The gitship the jobs install (`cargo install --locked --git`), cached per version.
  GITSHIP_VERSION: "@VERSION@"
  GITSHIP_GIT: @GIT@
"#;

    /// A job's own `env:` with the Terraform backend's credentials: secrets of the job's
    /// environment, never of the workflow (a pull request runs its own copy of the workflow).
    const TERRAFORM_ENV: &str = r#"  env:
    # The Terraform backend's credentials (an `s3` backend; see the header for others).
    AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
    AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
"#;

    const SETUP: &str = r#"- uses: actions/checkout@v5
  with:
    # The whole history: `gitship affected` compares with the base of the change.
    fetch-depth: 0
- name: Cache gitship
  id: cache-gitship
  uses: actions/cache@v5
  with:
    path: ~/.cargo/bin/gitship
    key: gitship-${{ runner.os }}-${{ runner.arch }}-${{ env.GITSHIP_VERSION }}
- name: Install gitship
  if: steps.cache-gitship.outputs.cache-hit != 'true'
  run: cargo install --locked --git "$GITSHIP_GIT" --tag "v$GITSHIP_VERSION" gitship
"#;

    const TERRAFORM: &str = r#"- uses: hashicorp/setup-terraform@v3
  if: steps.affected.outputs.affected == 'true'
  with:
    # @TF_FROM@
    terraform_version: "@TF_VERSION@"
    terraform_wrapper: false
"#;

    const LOGIN: &str = r#"- name: @LOGIN_NAME@
  if: steps.affected.outputs.affected == 'true'
  uses: docker/login-action@v4
  with:
    registry: @REGISTRY@
    username: ${{ secrets.REGISTRY_USERNAME }}
    password: ${{ secrets.REGISTRY_PASSWORD }}
"#;

    const KUBECONFIG: &str = r#"- name: Kubeconfig of @ENV@
  if: steps.affected.outputs.affected == 'true'
  env:
    KUBECONFIG_CONTENT: ${{ secrets.@SECRET@ }}
  run: |
    umask 077
    printf '%s\n' "$KUBECONFIG_CONTENT" > "$RUNNER_TEMP/kubeconfig"
    echo "KUBECONFIG=$RUNNER_TEMP/kubeconfig" >> "$GITHUB_ENV"
"#;

    const AFFECTED: &str = r#"- name: Does the change affect @ENV@?
  id: affected
  env:
    SINCE: @SINCE@
  run: |
    if out="$(@GITSHIP@ affected --since "$SINCE" -o json)"; then
      if jq -e --arg env @ENV@ '.environments | index($env)' <<<"$out" > /dev/null; then
        echo "affected=true" >> "$GITHUB_OUTPUT"
      else
        echo "nothing @ENV@ deploys changed since $SINCE"
        echo "affected=false" >> "$GITHUB_OUTPUT"
      fi
    else
      echo "::warning::cannot tell what changed since $SINCE: running for @ENV@"
      echo "affected=true" >> "$GITHUB_OUTPUT"
    fi
"#;

    const PLAN_JOB: &str = r#"plan-@ENV@:
  name: plan @ENV@
  if: github.event_name == 'pull_request'
  runs-on: ubuntu-latest
  # Its secrets are those of the environment `@ENV@-plan`: credentials that can plan (read,
  # server-side dry run) but not deploy, since any branch's pull request runs this job.
  environment: @ENV@-plan
  permissions:
    contents: read
    pull-requests: write
  concurrency:
    group: gitship-plan-@ENV@-${{ github.event.pull_request.number }}
    cancel-in-progress: true
@JOB_ENV@  steps:
"#;

    /// In the first plan job only: its annotations once, not once per environment.
    const VALIDATE_STEP: &str = r#"- name: Validate
  run: @GITSHIP@ validate
"#;

    const PLAN_STEPS: &str = r#"- name: Plan
  id: plan
  if: steps.affected.outputs.affected == 'true'
  run: |
    # 0: no changes, 2: changes (both a success here), anything else: the plan failed.
    code=0
    @GITSHIP@ plan @ENV@ -o markdown --exit-code > plan.md || code=$?
    echo "exit-code=$code" >> "$GITHUB_OUTPUT"
    case "$code" in
      0) echo "no changes in @ENV@" ;;
      2) echo "::notice title=gitship plan @ENV@::this pull request changes @ENV@" ;;
      *) echo "::error title=gitship plan @ENV@::the plan failed (exit $code)" ;;
    esac
- name: Comment the plan
  if: ${{ !cancelled() }}
  env:
    GH_TOKEN: ${{ github.token }}
    PR_NUMBER: ${{ github.event.pull_request.number }}
    AFFECTED: ${{ steps.affected.outputs.affected }}
    PLAN_EXIT: ${{ steps.plan.outputs.exit-code }}
    RUN_URL: ${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}
  run: |
    # One comment per environment: this workflow's own (its author and hidden marker; anyone
    # can write the marker), edited in place; other copies are minimized as outdated. A plan
    # that could not run replaces the one before with why: a stale plan never reads as current.
    marker='<!-- gitship-plan:@ENV@ -->'
    case "$PLAN_EXIT" in
      0|2) body="$(cat plan.md)" ;;
      "")
        if [ "$AFFECTED" = false ]; then
          body="This pull request changes nothing that \`@ENV@\` deploys (\`gitship affected\`): no plan."
        else
          body="**No plan for \`@ENV@\`**: an earlier step failed (see [the job log]($RUN_URL)); the plan shown before is outdated."
        fi ;;
      *) body="**\`gitship plan @ENV@\` failed** (exit $PLAN_EXIT): see [the job log]($RUN_URL); the plan shown before is outdated." ;;
    esac
    ours="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
      --jq ".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | [.id, .node_id] | @tsv")"
    id="$(printf '%s\n' "$ours" | head -n 1 | cut -f1)"
    printf '%s\n' "$ours" | tail -n +2 | cut -f2 | while read -r node; do
      [ -z "$node" ] || gh api graphql -f id="$node" \
        -f query='mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) { clientMutationId } }' > /dev/null
    done
    if [ -n "$id" ]; then
      gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" \
        -f body="$marker"$'\n\n'"$body" > /dev/null
    elif [ "$AFFECTED" != false ]; then
      gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
        -f body="$marker"$'\n\n'"$body" > /dev/null
    fi
- name: Fail when the plan failed
  if: steps.plan.outputs.exit-code != '' && steps.plan.outputs.exit-code != '0' && steps.plan.outputs.exit-code != '2'
  run: exit 1
"#;

    const DEPLOY_JOB: &str = r#"deploy-@ENV@:
  name: deploy @ENV@
  if: github.event_name == 'push'
@NEEDS@  runs-on: ubuntu-latest
  # A protected environment: add required reviewers in Settings > Environments > @ENV@.
  environment: @ENV@
  # One deploy of @ENV@ at a time; a queued one waits rather than cancelling a running one.
  concurrency:
    group: gitship-deploy-@ENV@
    cancel-in-progress: false
@JOB_ENV@  steps:
"#;

    const BUILD_STEP: &str = r#"- name: Build
  if: steps.affected.outputs.affected == 'true'
  run: @GITSHIP@ build @ENV@
"#;

    const DEPLOY_STEP: &str = r#"- name: Deploy
  if: steps.affected.outputs.affected == 'true'
  run: @GITSHIP@ deploy @ENV@
"#;

    const AGENT_STEP: &str = r#"- name: Leave the apply to the agent
  if: steps.affected.outputs.affected == 'true'
  run: echo "::notice title=gitship deploy @ENV@::images built; the gitship agent of @ENV@ applies this commit"
"#;

    const DRIFT_JOB: &str = r#"drift-@ENV@:
  name: drift @ENV@
  if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'
  runs-on: ubuntu-latest
  # Drift only reads: the plan credentials of `@ENV@-plan`.
  environment: @ENV@-plan
@JOB_ENV@  steps:
"#;

    const DRIFT_STEP: &str = r#"- name: Drift
  run: |
    # gitship writes the report to the job summary; drift (exit 2) fails the job.
    code=0
    @GITSHIP@ drift @ENV@ -o markdown > drift.md || code=$?
    cat drift.md
    case "$code" in
      0) echo "@ENV@ matches Git" ;;
      2) echo "::error title=drift in @ENV@::@ENV@ differs from Git: see the job summary"; exit 1 ;;
      *) exit "$code" ;;
    esac
"#;

    /// The whole workflow.
    pub fn workflow(spec: &CiSpec) -> String {
        let gitship = gitship_command(spec);
        let mut out = header(
            spec,
            Platform::Github,
            HEADER,
            "in each environment that uses them",
        );
        out.push('\n');
        out.push_str(&fill(
            TOP,
            &[
                ("VERSION", &spec.gitship_version),
                ("GIT", GITSHIP_GIT_URL),
                ("BRANCH", &spec.branch),
            ],
        ));
        out.push_str("\njobs:\n");

        // Pull requests: a plan job per environment, each skipped when the change cannot
        // affect its environment.
        let since_pr = "${{ github.event.pull_request.base.sha }}";
        for (index, env) in spec.plan.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            let mut steps = setup(spec, env, since_pr, &gitship, true, true);
            if index == 0 {
                steps.push_str(&fill(VALIDATE_STEP, &[("GITSHIP", &gitship)]));
            }
            steps.push_str(&fill(PLAN_STEPS, &[("GITSHIP", &gitship), ("ENV", env)]));
            out.push_str(&indent(
                &fill(PLAN_JOB, &[("ENV", env), ("JOB_ENV", job_env(spec, true))]),
                2,
            ));
            out.push_str(&indent(&steps, 6));
        }

        // The default branch, in order.
        let mut previous: Option<&str> = None;
        for target in &spec.deploy {
            out.push('\n');
            out.push_str(&deploy_job(spec, target, previous, &gitship));
            previous = Some(&target.name);
        }

        // The schedule.
        for env in &spec.drift {
            out.push('\n');
            out.push_str(&drift_job(spec, env, &gitship));
        }
        out
    }

    /// The deploy job of `target`, after the one of `previous`: each environment compared with
    /// what it last deployed (a push whose deploy was cancelled, rejected or failed is still
    /// pending at the next).
    fn deploy_job(
        spec: &CiSpec,
        target: &DeployTarget,
        previous: Option<&str>,
        gitship: &str,
    ) -> String {
        let needs = match previous {
            Some(name) => format!("  needs: [deploy-{name}]\n"),
            None => String::new(),
        };
        let mut out = indent(
            &fill(
                DEPLOY_JOB,
                &[
                    ("ENV", &target.name),
                    ("NEEDS", &needs),
                    ("JOB_ENV", job_env(spec, !target.agent)),
                ],
            ),
            2,
        );
        // An agent's environment only builds here: since the previous push (no cluster
        // access needed; a build skipped is made at the next, content tags being stable).
        let since = if target.agent {
            "${{ github.event.before }}".to_string()
        } else {
            format!("deployed:{}", target.name)
        };
        let mut steps = setup(spec, &target.name, &since, gitship, true, !target.agent);
        let values = [("GITSHIP", gitship), ("ENV", target.name.as_str())];
        steps.push_str(&fill(BUILD_STEP, &values));
        let last = if target.agent {
            AGENT_STEP
        } else {
            DEPLOY_STEP
        };
        steps.push_str(&fill(last, &values));
        out.push_str(&indent(&steps, 6));
        out
    }

    /// The scheduled drift check of `env`, with the plan credentials.
    fn drift_job(spec: &CiSpec, env: &str, gitship: &str) -> String {
        let mut out = indent(
            &fill(DRIFT_JOB, &[("ENV", env), ("JOB_ENV", job_env(spec, true))]),
            2,
        );
        let unconditional =
            |step: String| step.replace("  if: steps.affected.outputs.affected == 'true'\n", "");
        let mut steps = fill(SETUP, &[]);
        if spec.terraform {
            steps.push_str(&unconditional(terraform(spec)));
        }
        steps.push_str(&unconditional(kubeconfig(env)));
        steps.push_str(&fill(DRIFT_STEP, &[("GITSHIP", gitship), ("ENV", env)]));
        out.push_str(&indent(&steps, 6));
        out
    }

    /// The step that installs the pinned Terraform.
    fn terraform(spec: &CiSpec) -> String {
        let (version, from) = terraform_pin(spec);
        fill(TERRAFORM, &[("TF_VERSION", version), ("TF_FROM", from)])
    }

    /// A job's `env:` block: the Terraform backend's credentials when the job runs Terraform.
    fn job_env(spec: &CiSpec, terraform: bool) -> &'static str {
        if spec.terraform && terraform {
            TERRAFORM_ENV
        } else {
            ""
        }
    }

    fn kubeconfig(env: &str) -> String {
        fill(
            KUBECONFIG,
            &[("ENV", env), ("SECRET", &kubeconfig_secret(env))],
        )
    }

    /// Checkout, install, `affected`, then what the environment's commands need. `affected
    /// --since deployed:ENV` reads the cluster: the kubeconfig comes first then.
    fn setup(
        spec: &CiSpec,
        env: &str,
        since: &str,
        gitship: &str,
        login: bool,
        cluster: bool,
    ) -> String {
        let mut steps = fill(SETUP, &[]);
        let reads_cluster = since.starts_with("deployed:");
        if reads_cluster {
            steps.push_str(
                &kubeconfig(env).replace("  if: steps.affected.outputs.affected == 'true'\n", ""),
            );
        }
        steps.push_str(&fill(
            AFFECTED,
            &[("ENV", env), ("SINCE", since), ("GITSHIP", gitship)],
        ));
        if spec.terraform && cluster {
            steps.push_str(&terraform(spec));
        }
        if login {
            for registry in &spec.registries {
                steps.push_str(&fill(
                    LOGIN,
                    &[
                        ("LOGIN_NAME", &yaml_quote(&format!("Log in to {registry}"))),
                        ("REGISTRY", &yaml_quote(registry)),
                    ],
                ));
            }
        }
        if cluster && !reads_cluster {
            steps.push_str(&kubeconfig(env));
        }
        steps
    }
}

mod gitlab {
    //! `.gitlab-ci.yml`.

    use super::*;

    const HEADER: &str = r#"# Written by `gitship ci init gitlab` (gitship @VERSION@); edit freely, `--force` writes it again.
#
# - merge requests: `gitship validate` (a Code Quality report), then `gitship plan` of @PLAN@,
#   one job and one merge request note (updated in place, kept as an artifact) per
#   environment; a job fails only when its plan fails (exit 1), not when it shows changes
#   (exit 2);
# - pushes to the default branch: `gitship build` and `gitship deploy` for @DEPLOY@, in that
#   order, one deploy of an environment at a time (`resource_group`);
# - scheduled pipelines (CI/CD > Schedules): `gitship drift` for @DRIFT@, failing on drift.
# Each job asks `gitship affected` what the change touches and skips an environment it cannot
# affect.
#
# Scope every variable to the environments of the jobs that read it (the variable's
# "Environment scope"). A deploy job runs in its environment (`production`): protect it
# (Settings > CI/CD > Protected environments) and make its variables protected, so only the
# default branch's pipelines see them. A merge request's pipeline runs on an unprotected
# branch and sees no protected variable: the plan and the drift check run in `<env>-plan`
# (`@PLAN@-plan`), whose variables must be unprotected and hold credentials that can read and
# dry-run but not deploy (a registry token that cannot push, a backend role that cannot write
# the state).
#
"#;

    const TOP: &str = r#"stages:
  - validate
  - plan
  - deploy
  - drift

workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_PIPELINE_SOURCE == "schedule"
    - if: $CI_PIPELINE_SOURCE == "web"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"

variables:
  # The gitship the jobs install (`cargo install --locked --git`), cached per version.
  GITSHIP_VERSION: "@VERSION@"
  GITSHIP_GIT: @GIT@
  # The whole history: `gitship affected` compares with the base of the change.
  GIT_DEPTH: "0"
"#;

    const TERRAFORM_VARIABLES: &str = r#"  # @TF_FROM@
  TERRAFORM_VERSION: "@TF_VERSION@"
"#;

    const BASE: &str = r#"
.gitship:
  image: rust:1-bookworm
  cache:
    # One directory per machine architecture inside (`uname -m`).
    key: gitship-$GITSHIP_VERSION@TF_KEY@
    paths:
      - .gitship-ci/
  before_script:
    - apt-get update -qq && apt-get install -y -qq --no-install-recommends jq unzip > /dev/null
    # The cache lives in the work tree: keep it out of `git status` (a clean tree is required).
    - echo /.gitship-ci/ >> .git/info/exclude
    - export GITSHIP_CI_ROOT="$CI_PROJECT_DIR/.gitship-ci/$(uname -m)"
    - export PATH="$GITSHIP_CI_ROOT/bin:$PATH"
    - command -v gitship > /dev/null || cargo install --locked --root "$GITSHIP_CI_ROOT" --git "$GITSHIP_GIT" --tag "v$GITSHIP_VERSION" gitship
"#;

    const TERRAFORM_INSTALL: &str = r#"    - |
      # Terraform, checked against the release's SHA256SUMS before it is unpacked.
      if [ ! -x "$GITSHIP_CI_ROOT/bin/terraform" ]; then
        case "$(uname -m)" in
          x86_64) arch=amd64 ;;
          aarch64|arm64) arch=arm64 ;;
          *) echo "no Terraform release for $(uname -m)"; exit 1 ;;
        esac
        zip="terraform_${TERRAFORM_VERSION}_linux_${arch}.zip"
        release="https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}"
        curl -fsSLo "/tmp/$zip" "$release/$zip"
        curl -fsSLo /tmp/terraform.sha256sums "$release/terraform_${TERRAFORM_VERSION}_SHA256SUMS"
        (cd /tmp && grep " $zip\$" terraform.sha256sums | sha256sum -c -)
        unzip -q -o "/tmp/$zip" terraform -d "$GITSHIP_CI_ROOT/bin"
      fi
"#;

    const LOGIN: &str = r#"    - |
      # The registry login, where gitship and docker read it (~/.docker/config.json).
      mkdir -p ~/.docker
      auth="$(printf '%s:%s' "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" | base64 -w0)"
      jq -n --arg auth "$auth"@ARGS@ '{auths: {@AUTHS@}}' > ~/.docker/config.json
"#;

    const AFFECTED: &str = r#"- |
  # Skip what the change cannot affect (when `affected` cannot tell, run). Outside the work
  # tree, which must stay clean.
  affected="$(mktemp)"
  if @GITSHIP@ affected --since "@SINCE@" -o json > "$affected" \
    && ! jq -e --arg env @ENV@ '.environments | index($env)' "$affected" > /dev/null; then
    echo "nothing @ENV@ deploys changed since @SINCE@"
    exit 0
  fi
"#;

    const VALIDATE_JOB: &str = r#"validate:
  extends: .gitship
  stage: validate
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - @GITSHIP@ validate -o codequality > gl-code-quality-report.json
  artifacts:
    when: always
    reports:
      codequality: gl-code-quality-report.json
"#;

    const PLAN_JOB: &str = r#"plan-@ENV@:
  extends: .gitship
  stage: plan
  # Not after `validate`: when it fails, the plan fails too and its note says so.
  needs: []
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  # The plan credentials, unprotected: a merge request's branch sees no protected variable.
  environment:
    name: @ENV@-plan
    action: prepare
  artifacts:
    when: always
    expose_as: gitship plan @ENV@
    paths:
      - plan.md
  script:
"#;

    /// The plan of a merge request, and its note: this pipeline's own (its author and the
    /// hidden marker; every page of notes is read), edited in place, also when the change does not
    /// affect the environment (any more) or the plan fails, so a stale plan never reads as
    /// current.
    const PLAN_SCRIPT: &str = r#"- export KUBECONFIG="$@SECRET@"
- |
  # Does the change affect @ENV@? (When `affected` cannot tell, plan.)
  affected=true
  affected_json="$(mktemp)"
  if @GITSHIP@ affected --since "$CI_MERGE_REQUEST_DIFF_BASE_SHA" -o json > "$affected_json" \
    && ! jq -e --arg env @ENV@ '.environments | index($env)' "$affected_json" > /dev/null; then
    affected=false
  fi
  # 0: no changes, 2: changes (both a success here), anything else: the plan failed.
  code=0
  if [ "$affected" = true ]; then
    @GITSHIP@ plan @ENV@ -o markdown --exit-code > plan.md || code=$?
    cat plan.md
  else
    echo "nothing @ENV@ deploys changed since $CI_MERGE_REQUEST_DIFF_BASE_SHA" | tee plan.md
  fi
  marker='<!-- gitship-plan:@ENV@ -->'
  case "$code" in
    0|2)
      if [ "$affected" = true ]; then
        body="$(cat plan.md)"
      else
        body="This merge request changes nothing that \`@ENV@\` deploys (\`gitship affected\`): no plan."
      fi ;;
    *) body="**\`gitship plan @ENV@\` failed** (exit $code): see [the job log]($CI_JOB_URL); the plan shown before is outdated." ;;
  esac
  payload="$(jq -n --arg body "$marker"$'\n\n'"$body" '{body: $body}')"
  auth="PRIVATE-TOKEN: $GITLAB_TOKEN"
  me="$(curl -fsS --header "$auth" "$CI_API_V4_URL/user" | jq -r .username)"
  notes="$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes"
  id=""
  page=1
  while [ -z "$id" ] && [ "$page" -le 100 ]; do
    batch="$(curl -fsS --header "$auth" "$notes?per_page=100&page=$page&sort=asc")"
    [ "$(printf '%s' "$batch" | jq length)" -gt 0 ] || break
    id="$(printf '%s' "$batch" | jq -r --arg marker "$marker" --arg me "$me" \
      '[.[] | select(.author.username == $me and (.body | startswith($marker)))][0].id // empty')"
    page=$((page + 1))
  done
  if [ -n "$id" ]; then
    curl -fsS -X PUT --header "$auth" --header "Content-Type: application/json" \
      --data "$payload" "$notes/$id" > /dev/null
  elif [ "$affected" = true ]; then
    curl -fsS -X POST --header "$auth" --header "Content-Type: application/json" \
      --data "$payload" "$notes" > /dev/null
  fi
  if [ "$code" != 0 ] && [ "$code" != 2 ]; then exit "$code"; fi
"#;

    const DEPLOY_JOB: &str = r#"deploy-@ENV@:
  extends: .gitship
  stage: deploy
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"
@NEEDS@  # One deploy of @ENV@ at a time; a later one waits.
  resource_group: gitship-@ENV@
  # Protect it in Settings > CI/CD > Protected environments.
  environment:
    name: @ENV@
    deployment_tier: @TIER@
  # Images are built with docker, in a docker-in-docker service.
  services:
    - docker:27-dind
  variables:
    DOCKER_HOST: tcp://docker:2375
    DOCKER_TLS_CERTDIR: ""
  script:
    - apt-get install -y -qq --no-install-recommends docker.io > /dev/null
"#;

    const DRIFT_JOB: &str = r#"drift-@ENV@:
  extends: .gitship
  stage: drift
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
    - if: $CI_PIPELINE_SOURCE == "web"
  # Drift only reads: the plan credentials.
  environment:
    name: @ENV@-plan
    action: prepare
  artifacts:
    when: always
    expose_as: gitship drift @ENV@
    paths:
      - drift.md
  script:
    - export KUBECONFIG="$@SECRET@"
    - |
      # Drift (exit 2) fails the job; the report is in the log and the artifact.
      code=0
      @GITSHIP@ drift @ENV@ -o markdown > drift.md || code=$?
      cat drift.md
      case "$code" in
        0) echo "@ENV@ matches Git" ;;
        2) echo "@ENV@ differs from Git"; exit 1 ;;
        *) exit "$code" ;;
      esac
"#;

    /// The whole pipeline: the header and setup, validation, the merge request's plan, the
    /// deploys of the default branch in order, the scheduled drift checks.
    pub fn pipeline(spec: &CiSpec) -> String {
        let jobs = Jobs {
            gitship: gitship_command(spec),
        };
        let mut out = header(
            spec,
            Platform::Gitlab,
            HEADER,
            "Settings > CI/CD > Variables, masked, scoped to the environments above",
        );
        out.push('\n');
        out.push_str(&setup(spec));
        out.push('\n');
        out.push_str(&fill(VALIDATE_JOB, &[("GITSHIP", &jobs.gitship)]));

        // Merge requests: a plan job per environment.
        for env in &spec.plan {
            out.push('\n');
            out.push_str(&jobs.fill(PLAN_JOB, env, &[]));
            out.push_str(&indent(&jobs.fill(PLAN_SCRIPT, env, &[]), 4));
        }

        // The default branch, in order.
        let mut previous: Option<&str> = None;
        for target in &spec.deploy {
            out.push('\n');
            out.push_str(&jobs.deploy(target, previous));
            previous = Some(&target.name);
        }

        // The schedule.
        for env in &spec.drift {
            out.push('\n');
            out.push_str(&jobs.fill(DRIFT_JOB, env, &[]));
        }
        out
    }

    /// The variables, the image's setup and the registry logins.
    fn setup(spec: &CiSpec) -> String {
        let mut out = fill(
            TOP,
            &[("VERSION", &spec.gitship_version), ("GIT", GITSHIP_GIT_URL)],
        );
        let (version, from) = terraform_pin(spec);
        if spec.terraform {
            out.push_str(&fill(
                TERRAFORM_VARIABLES,
                &[("TF_VERSION", version), ("TF_FROM", from)],
            ));
        }
        let key = if spec.terraform {
            "-$TERRAFORM_VERSION"
        } else {
            ""
        };
        out.push_str(&fill(BASE, &[("TF_KEY", key)]));
        if spec.terraform {
            out.push_str(TERRAFORM_INSTALL);
        }
        if !spec.registries.is_empty() {
            // The hosts reach jq as `--arg` values, never as program text.
            let args: String = spec
                .registries
                .iter()
                .enumerate()
                .map(|(i, r)| format!(" --arg r{i} {}", shell_quote(r)))
                .collect();
            let auths = (0..spec.registries.len())
                .map(|i| format!("($r{i}): {{auth: $auth}}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&fill(LOGIN, &[("ARGS", &args), ("AUTHS", &auths)]));
        }
        out
    }

    /// The jobs of one pipeline, filled for an environment.
    struct Jobs {
        gitship: String,
    }

    impl Jobs {
        /// `template` filled for `env` (`@GITSHIP@`, `@ENV@`, `@SECRET@`) and `extra`.
        fn fill(&self, template: &str, env: &str, extra: &[(&str, &str)]) -> String {
            let secret = kubeconfig_secret(env);
            let mut values: Vec<(&str, &str)> = vec![
                ("GITSHIP", &self.gitship),
                ("ENV", env),
                ("SECRET", &secret),
            ];
            values.extend_from_slice(extra);
            fill(template, &values)
        }

        /// The deploy job of `target`, after the one of `previous`.
        fn deploy(&self, target: &DeployTarget, previous: Option<&str>) -> String {
            let needs = match previous {
                Some(name) => format!("  needs: [deploy-{name}]\n"),
                None => "  needs: []\n".to_string(),
            };
            let tier = match target.name.as_str() {
                "production" => "production",
                "staging" => "staging",
                _ => "other",
            };
            let env = target.name.as_str();
            let mut out = self.fill(DEPLOY_JOB, env, &[("NEEDS", &needs), ("TIER", tier)]);
            // Compared with what the environment last deployed: a pipeline whose deploy was
            // cancelled, rejected or failed is still pending at the next push.
            // An agent's environment only builds here: since the previous push.
            let (mut script, since) = if target.agent {
                (String::new(), "$CI_COMMIT_BEFORE_SHA".to_string())
            } else {
                let kubeconfig = self.fill("- export KUBECONFIG=\"$@SECRET@\"\n", env, &[]);
                (kubeconfig, format!("deployed:{env}"))
            };
            script.push_str(&self.fill(AFFECTED, env, &[("SINCE", &since)]));
            script.push_str(&self.fill("- @GITSHIP@ build @ENV@\n", env, &[]));
            let deploy = if target.agent {
                "- echo \"images built; the gitship agent of @ENV@ applies this commit\"\n"
            } else {
                "- @GITSHIP@ deploy @ENV@\n"
            };
            script.push_str(&self.fill(deploy, env, &[]));
            out.push_str(&indent(&script, 4));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_secret_names() {
        assert_eq!(kubeconfig_secret("staging"), "KUBECONFIG_STAGING");
        assert_eq!(kubeconfig_secret("eu-prod"), "KUBECONFIG_EU_PROD");
    }

    #[test]
    fn values_are_quoted_for_yaml_and_shell() {
        assert_eq!(yaml_quote("ghcr.io/a"), "\"ghcr.io/a\"");
        assert_eq!(yaml_quote("a\"b\nc"), "\"a\\\"b\\nc\"");
        assert_eq!(shell_quote("ghcr.io"), "'ghcr.io'");
        assert_eq!(shell_quote("a'$(x)'b"), r"'a'\''$(x)'\''b'");
    }

    #[test]
    fn exact_versions_only() {
        for version in ["1.9.8", "1.10.0-beta1", "0.15.5"] {
            assert!(is_exact_version(version), "{version}");
        }
        for version in [
            ">= 1.5",
            "1.9",
            "latest",
            "1.9.8-",
            "1.9.8; rm -rf /",
            "",
            "1..8",
        ] {
            assert!(!is_exact_version(version), "{version}");
        }
    }

    #[test]
    fn fill_and_indent() {
        assert_eq!(fill("a @X@ @X@ @Y@", &[("X", "1"), ("Y", "2")]), "a 1 1 2");
        assert_eq!(indent("a:\n\n  b\n", 2), "  a:\n\n    b\n");
    }
}
