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

use crate::repo::Repository;
use gitship_foundation::diagnostics::{UserError, user_error};

/// The CI platform `ci init` writes for: one of the providers gitship knows.
pub use gitship_foundation::ci::Provider as Platform;

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
    /// `--image`: the jobs run in this image, pinned by digest, instead of installing gitship.
    pub image: Option<String>,
    /// `--aws-role`: AWS credentials through OIDC instead of access keys.
    pub aws: Option<AwsRoles>,
    /// `--force`: overwrite files that exist.
    pub force: bool,
    /// `--preview-from ENV [--preview-url TEMPLATE]`: a preview environment per pull request.
    pub preview: Option<PreviewRequest>,
}

/// `--preview-from ENV --preview-url TEMPLATE`.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    /// The committed environment each pull request's preview derives from.
    pub from: String,
    /// The URL commented on the pull request: text with `${values.KEY}` of the preview.
    pub url: Option<String>,
}

/// The preview jobs: for each pull request, `env new pr-<number> --from <base> --ephemeral`,
/// a deploy and a comment with its URL; destroyed when the pull request closes; `gc` on the
/// schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewSpec {
    pub base: String,
    /// `--ttl` of the preview: each push of the pull request pushes its expiry out.
    pub ttl: String,
    /// The URL as written (`--preview-url`).
    pub url: Option<String>,
    /// The jq program that makes the URL of `env new --ephemeral -o json`'s report.
    #[serde(skip)]
    pub url_jq: Option<String>,
}

/// The TTL the CI jobs give a preview (the longest: every push updates it; `gc` destroys a
/// preview whose pull request went quiet for that long).
pub const PREVIEW_TTL: &str = "168h";

/// The jq program for the URL template `template`: its text, and each `${values.KEY}` read
/// from the preview's values (`.values.KEY` of `env new --ephemeral -o json`).
pub fn preview_url_jq(template: &str) -> Result<String, UserError> {
    let refuse = |why: String| {
        UserError::usage(
            format!("`--preview-url {template}`: {why}"),
            "write text with `${values.KEY}` of the preview's values (e.g. `https://${values.host}/`); set such a value with `env new --set`",
        )
    };
    let mut program = String::from("\"");
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        program.push_str(&jq_literal(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| refuse("a `${` is not closed".into()))?;
        let reference = &after[..end];
        let key = reference
            .strip_prefix("values.")
            .ok_or_else(|| refuse(format!("`${{{reference}}}` is not a value")))?;
        let segments: Vec<&str> = key.split('.').collect();
        if segments.iter().any(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return Err(refuse(format!("`${{{reference}}}` is not a key")));
        }
        let path: String = segments.iter().map(|s| format!("[\"{s}\"]")).collect();
        program.push_str(&format!("\\(.values{path} // \"\")"));
        rest = &after[end + 1..];
    }
    program.push_str(&jq_literal(rest));
    program.push('"');
    Ok(program)
}

/// `text` inside a jq string literal.
fn jq_literal(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// The AWS roles GitHub's jobs assume through OIDC for Terraform's backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AwsRoles {
    /// Assumed by the deploy jobs (their environment's `sub` claim: `...:environment:<env>`).
    pub deploy_role: String,
    /// Assumed by the plan and drift jobs (`...:environment:<env>-plan`): read-only.
    pub plan_role: String,
    pub region: String,
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
    /// The image the jobs run in (`--image`, pinned by digest); `None`: they install gitship.
    pub image: Option<String>,
    /// AWS credentials through OIDC (`--aws-role`); `None`: access keys in secrets.
    pub aws: Option<AwsRoles>,
    /// `--preview-from`: the preview environments' jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewSpec>,
}

/// Version of [`CiInitReport`]'s JSON (`ci init -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// What `ci init` wrote: its report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CiInitReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The platform written for (the human text names its secrets).
    #[serde(skip)]
    pub platform: Platform,
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
        format_version: FORMAT_VERSION,
        platform: options.platform,
        spec,
        files: files.into_iter().map(|(path, _)| path).collect(),
    })
}

/// The AWS account of an Amazon ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`,
/// also `.amazonaws.com.cn`), which the jobs log in to through OIDC when AWS roles are given.
pub fn ecr_account(registry: &str) -> Option<&str> {
    let host = registry.split('/').next()?;
    let (account, rest) = host.split_once(".dkr.ecr.")?;
    let (region, domain) = rest.split_once('.')?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let domain_ok = matches!(domain, "amazonaws.com" | "amazonaws.com.cn");
    (account_ok && region_ok && domain_ok).then_some(account)
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
        image: options.image.as_deref().map(pinned_image).transpose()?,
        aws: options.aws.clone().map(checked_roles).transpose()?,
        preview: options
            .preview
            .as_ref()
            .map(|preview| preview_spec(repo, preview))
            .transpose()?,
    })
}

/// `--preview-from`: a committed environment; `--preview-url`: its jq program.
fn preview_spec(repo: &Repository, preview: &PreviewRequest) -> Result<PreviewSpec> {
    if !repo.environments.contains_key(&preview.from) {
        return Err(UserError::usage(
            format!("`--preview-from {}`: no such environment", preview.from),
            format!(
                "name a committed environment: {}",
                repo.environments
                    .keys()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    }
    Ok(PreviewSpec {
        base: preview.from.clone(),
        ttl: PREVIEW_TTL.to_string(),
        url: preview.url.clone(),
        url_jq: preview.url.as_deref().map(preview_url_jq).transpose()?,
    })
}

/// `--aws-role`: roles that are IAM role ARNs and a region, nothing to quote.
fn checked_roles(roles: AwsRoles) -> Result<AwsRoles> {
    let is_role = |arn: &str| {
        let mut parts = arn.splitn(6, ':');
        let fields: Vec<&str> = parts.by_ref().collect();
        fields.len() == 6
            && fields[0] == "arn"
            && fields[1].starts_with("aws")
            && fields[2] == "iam"
            && fields[4].len() == 12
            && fields[4].chars().all(|c| c.is_ascii_digit())
            && fields[5].starts_with("role/")
            && fields[5]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/+=,.@_-".contains(c))
    };
    for arn in [&roles.deploy_role, &roles.plan_role] {
        if !is_role(arn) {
            return Err(UserError::usage(
                format!("`{}` is not an IAM role ARN", arn.escape_default()),
                "give `arn:aws:iam::<12-digit account>:role/<name>`",
            )
            .into());
        }
    }
    let region_ok = !roles.region.is_empty()
        && roles
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(UserError::usage(
            format!(
                "`--aws-region {}` is not an AWS region",
                roles.region.escape_default()
            ),
            "give one such as `eu-west-1`",
        )
        .into());
    }
    Ok(roles)
}

/// `--image`: an image reference pinned by digest (`REPO[:TAG]@sha256:<64 hex>`), with nothing a
/// CI file would have to quote: a tag alone can move under the jobs.
fn pinned_image(image: &str) -> Result<String> {
    let pinned = image.split_once("@sha256:").is_some_and(|(name, digest)| {
        !name.is_empty()
            && digest.len() == 64
            && digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "./:_-".contains(c))
    });
    if !pinned {
        return Err(UserError::usage(
            format!("`--image {}` is not pinned by digest", image.escape_default()),
            "give `REPOSITORY@sha256:<digest>` (e.g. `ghcr.io/acme/gitship-ci@sha256:...`; `docker buildx imagetools inspect` prints it): a tag can change under the jobs",
        )
        .into());
    }
    Ok(image.to_string())
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
    if options.platform == Platform::GitLab {
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
        Platform::GitHub => vec![(
            PathBuf::from(".github/workflows/gitship.yml"),
            github::workflow(spec),
        )],
        Platform::GitLab => vec![(PathBuf::from(".gitlab-ci.yml"), gitlab::pipeline(spec))],
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
    let github = platform == Platform::GitHub;
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
    // Amazon ECR through OIDC needs no login secret (GitHub, `--aws-role`).
    let logins: Vec<&String> = spec
        .registries
        .iter()
        .filter(|registry| !(github && spec.aws.is_some() && ecr_account(registry).is_some()))
        .collect();
    if !logins.is_empty() {
        let logins: Vec<&str> = logins.iter().map(|registry| registry.as_str()).collect();
        let mut environments: Vec<String> = spec.plan.iter().map(|env| plan(env)).collect();
        environments.extend(spec.deploy.iter().map(|target| target.name.clone()));
        secrets.push(group(
            &["REGISTRY_USERNAME", "REGISTRY_PASSWORD"],
            &[
                &format!(
                    "the registry login for {} (plan reads tags,",
                    logins.join(", ")
                ),
                "build and deploy push images)",
            ],
            environments,
        ));
    }
    let kubeconfig_kind = match platform {
        Platform::GitHub => "the file's contents",
        Platform::GitLab => "a variable of type File",
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
    if spec.terraform && spec.aws.is_none() {
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
    if platform == Platform::GitLab {
        secrets.push(group(
            &["GITLAB_TOKEN"],
            &[
                "a project access token with the `api` scope, to write the plan note and",
                "for the deploy to find the reviewed plan",
            ],
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
    let plan_envs: Vec<String> = spec.plan.iter().map(|env| format!("{env}-plan")).collect();
    let plan_envs = names(plan_envs.iter().map(String::as_str).collect());
    let mut out = fill(
        template,
        &[
            ("VERSION", &spec.gitship_version),
            ("PLAN", &plan_names),
            ("PLAN_ENVS", &plan_envs),
            ("DEPLOY", &deploy_names),
            ("DRIFT", &drift_names),
            ("BRANCH", &spec.branch),
        ],
    );
    out.push_str(&secrets_comment(spec, platform, store));
    out
}

mod github;

mod gitlab;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_registries_are_known_by_their_host() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/blog";
        assert_eq!(ecr_account(ecr), Some("123456789012"));
        assert_eq!(
            ecr_account("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            Some("123456789012")
        );
        for other in [
            "ghcr.io/acme/blog",
            "12345.dkr.ecr.eu-west-1.amazonaws.com/blog",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example/blog",
            "123456789012.dkr.ecr..amazonaws.com",
        ] {
            assert_eq!(ecr_account(other), None, "{other}");
        }
    }

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
