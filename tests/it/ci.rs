//! Integration tests: CI integration. `ci init` (snapshots of the generated files, which must
//! pass actionlint and check-jsonschema's GitHub and GitLab schemas), the GitHub annotations and
//! job summary under `GITHUB_ACTIONS=true`, the GitLab Code Quality report, and `affected` on a
//! fixture history.

use std::path::Path;
use std::process::Command;

use gitship::facade::ops::affected::{Affected, Touches};
use serde_json::json;

use crate::support::repo::{Repo, Run};
use crate::support::{gitship, require_tool};

/// The CLI against `repo` with extra environment variables (the CI's own).
fn gitship_with(repo: &Repo, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut command = gitship();
    command.arg("-C").arg(repo.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.args(args).output().expect("run gitship");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(env!("CARGO_PKG_VERSION")), "[VERSION]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// `actionlint` on a workflow file (skips loudly when it is missing).
fn actionlint(file: &Path) {
    if !require_tool("actionlint", "-version") {
        return;
    }
    let output = Command::new("actionlint")
        .arg("-no-color")
        .arg(file)
        .output()
        .expect("actionlint");
    assert!(
        output.status.success(),
        "actionlint {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `check-jsonschema --builtin-schema SCHEMA` on a file (skips loudly when it is missing).
fn check_schema(schema: &str, file: &Path) {
    if !require_tool("check-jsonschema", "--version") {
        return;
    }
    let output = Command::new("check-jsonschema")
        .arg("--builtin-schema")
        .arg(schema)
        .arg(file)
        .output()
        .expect("check-jsonschema");
    assert!(
        output.status.success(),
        "check-jsonschema {schema} {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// ci init

#[test]
fn ci_init_github_for_the_example_is_valid_and_stable() {
    let repo = Repo::example();
    // The snapshot's branch, whatever `git init` defaults to here.
    repo.git(&["branch", "-M", "main"]);
    let run = repo.ok(&["ci", "init", "github"]);
    assert!(
        run.stdout.contains("wrote .github/workflows/gitship.yml"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("KUBECONFIG_STAGING"), "{}", run.stdout);
    let file = repo.path().join(".github/workflows/gitship.yml");
    let text = read(&file);
    // The example: staging planned, production deployed, both checked for drift.
    for expected in [
        "gitship plan staging -o markdown --exit-code",
        "gitship deploy production",
        "gitship build production",
        "gitship drift production -o markdown",
        "gitship drift staging -o markdown",
        "<!-- gitship-plan:staging -->",
        "group: gitship-deploy-production",
        "cancel-in-progress: false",
        "environment: production",
        "gitship affected --since",
        "hashicorp/setup-terraform",
        "registry: \"ghcr.io\"",
        "secrets.KUBECONFIG_PRODUCTION",
        "actions/cache@v5",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    // Production is planned on pull requests too (its own job and comment); validate runs once.
    assert!(text.contains("  plan-production:\n"), "{text}");
    assert!(text.contains("<!-- gitship-plan:production -->"), "{text}");
    assert_eq!(text.matches("run: gitship validate").count(), 1, "{text}");
    // The comment is this workflow's own (author and marker), edited even when validate or the
    // plan failed, and other copies are minimized as outdated.
    assert!(text.contains("if: ${{ !cancelled() }}"), "{text}");
    assert!(
        text.contains(r#"select(.user.login == \"github-actions[bot]\""#),
        "{text}"
    );
    assert!(text.contains("classifier: OUTDATED"), "{text}");
    assert!(text.contains("the plan shown before is outdated"), "{text}");
    snapshot("ci_init_github_example", &text);
    actionlint(&file);
    check_schema("vendor.github-workflows", &file);
}

/// CI installs one Terraform version, from the repository: `.terraform-version`, else an exact
/// `required_version`, else gitship's default; GitLab checks the download's SHA256SUMS, and the
/// caches are per architecture (and Terraform version).
#[test]
fn ci_init_pins_terraform_from_the_repository() {
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let github = repo.path().join(".github/workflows/gitship.yml");
    let gitlab = repo.path().join(".gitlab-ci.yml");
    let init = |platform: &str| repo.ok(&["ci", "init", platform, "--force"]);
    init("github");
    let text = read(&github);
    assert!(text.contains("terraform_version: \"1.9.8\""), "{text}");
    assert!(
        text.contains("# gitship's default: pin yours in `.terraform-version`"),
        "{text}"
    );
    assert!(
        text.contains("key: gitship-${{ runner.os }}-${{ runner.arch }}-"),
        "{text}"
    );

    let main_tf = repo.path().join("infrastructure/terraform/main.tf");
    let module = std::fs::read_to_string(&main_tf).expect("main.tf");
    repo.write(
        "infrastructure/terraform/versions.tf",
        "terraform {\n  required_version = \"= 1.7.5\"\n}\n",
    );
    init("github");
    assert!(read(&github).contains("terraform_version: \"1.7.5\""));
    repo.write("infrastructure/terraform/.terraform-version", "1.10.2\n");
    init("github");
    assert!(read(&github).contains("terraform_version: \"1.10.2\""));
    init("gitlab");
    let text = read(&gitlab);
    assert!(text.contains("TERRAFORM_VERSION: \"1.10.2\""), "{text}");
    assert!(text.contains("sha256sum -c -"), "{text}");
    assert!(
        text.contains("key: gitship-$GITSHIP_VERSION-$TERRAFORM_VERSION"),
        "{text}"
    );
    check_schema("vendor.gitlab-ci", &gitlab);

    repo.write("infrastructure/terraform/.terraform-version", "latest\n");
    let refused = repo.gitship(&["ci", "init", "github", "--force"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("`infrastructure/terraform/.terraform-version` names `latest`"),
        "{}",
        refused.stderr
    );
    assert!(read(&github).contains("1.10.2"), "nothing written");
    drop(module);
}

/// `--image REF@sha256:...`: the jobs run in gitship's CI image instead of compiling gitship
/// (minutes per job); a reference not pinned by digest is refused before anything is written.
#[test]
fn ci_init_runs_the_jobs_in_gitships_image_pinned_by_digest() {
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let image = format!("ghcr.io/acme/gitship-ci@sha256:{}", "ab12".repeat(16));
    for (platform, file) in [
        ("github", ".github/workflows/gitship.yml"),
        ("gitlab", ".gitlab-ci.yml"),
    ] {
        repo.ok(&["ci", "init", platform, "--image", &image, "--force"]);
        let path = repo.path().join(file);
        let text = read(&path);
        assert!(
            !text.contains("run: cargo install") && !text.contains("|| cargo install"),
            "{text}"
        );
        assert!(text.contains(&format!("image: {image}")), "{text}");
        if platform == "github" {
            assert!(!text.contains("setup-terraform"), "{text}");
            assert!(
                text.contains("/var/run/docker.sock:/var/run/docker.sock"),
                "{text}"
            );
            actionlint(&path);
            check_schema("vendor.github-workflows", &path);
        } else {
            assert!(!text.contains("releases.hashicorp.com"), "{text}");
            check_schema("vendor.gitlab-ci", &path);
        }
    }
    let before = read(&repo.path().join(".gitlab-ci.yml"));
    for bad in [
        "ghcr.io/acme/gitship-ci:1.0",
        "ghcr.io/acme/gitship-ci@sha256:abc",
        "x y@sha256:",
    ] {
        let refused = repo.gitship(&["ci", "init", "gitlab", "--image", bad, "--force"]);
        assert_eq!(refused.code, 64, "{bad}: {}", refused.all());
        assert!(
            refused.stderr.contains("is not pinned by digest"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(
        read(&repo.path().join(".gitlab-ci.yml")),
        before,
        "nothing written"
    );
}

/// `--aws-role`: Terraform's backend credentials through OIDC, no access keys in any secret;
/// the deploy jobs assume the deploy role, the plan and drift jobs the plan role (GitHub:
/// `configure-aws-credentials`; GitLab: an `id_tokens:` token as a web identity).
#[test]
fn ci_init_github_offers_oidc_roles_instead_of_access_keys() {
    use yaml_rust2::YamlLoader;
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let deploy = "arn:aws:iam::123456789012:role/gitship-deploy";
    let plan = "arn:aws:iam::123456789012:role/gitship-plan";
    repo.ok(&[
        "ci",
        "init",
        "github",
        "--aws-role",
        deploy,
        "--aws-plan-role",
        plan,
        "--aws-region",
        "eu-west-1",
    ]);
    let path = repo.path().join(".github/workflows/gitship.yml");
    let text = read(&path);
    assert!(!text.contains("AWS_ACCESS_KEY_ID"), "{text}");
    let workflow = &YamlLoader::load_from_str(&text).expect("YAML")[0];
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    for (name, job) in jobs {
        let name = name.as_str().expect("name");
        let steps = job["steps"].as_vec().expect("steps");
        let role = steps
            .iter()
            .find(|step| step["uses"].as_str() == Some("aws-actions/configure-aws-credentials@v6"))
            .map(|step| {
                step["with"]["role-to-assume"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
        let expected = if name.starts_with("deploy-") {
            deploy
        } else {
            plan
        };
        assert_eq!(role.as_deref(), Some(expected), "{name}");
        assert_eq!(
            job["permissions"]["id-token"].as_str(),
            Some("write"),
            "{name}"
        );
    }
    actionlint(&path);
    check_schema("vendor.github-workflows", &path);

    // GitLab: the jobs that run Terraform get an `id_tokens:` token, which the script hands
    // to Terraform's AWS SDK as a web identity (the role by job), and no access keys.
    repo.ok(&[
        "ci",
        "init",
        "gitlab",
        "--aws-role",
        deploy,
        "--aws-plan-role",
        plan,
        "--aws-region",
        "eu-west-1",
    ]);
    let gitlab = repo.path().join(".gitlab-ci.yml");
    let text = read(&gitlab);
    assert!(!text.contains("AWS_ACCESS_KEY_ID"), "{text}");
    let pipeline = &YamlLoader::load_from_str(&text).expect("YAML")[0];
    for (name, role) in [
        ("plan-staging", plan),
        ("plan-production", plan),
        ("deploy-production", deploy),
        ("drift-production", plan),
    ] {
        let job = &pipeline[name];
        assert_eq!(
            job["id_tokens"]["AWS_ID_TOKEN"]["aud"].as_str(),
            Some("sts.amazonaws.com"),
            "{name}"
        );
        let script: Vec<&str> = job["script"]
            .as_vec()
            .expect("script")
            .iter()
            .filter_map(|line| line.as_str())
            .collect();
        // Before any gitship command.
        let assumes = script.iter().position(|line| {
            line.contains(&format!("AWS_ROLE_ARN=\"{role}\""))
                && line.contains("AWS_WEB_IDENTITY_TOKEN_FILE")
        });
        let gitship = script.iter().position(|line| line.contains("gitship "));
        assert!(assumes.is_some() && assumes < gitship, "{name}: {script:?}");
    }
    assert!(pipeline["validate"]["id_tokens"].is_badvalue());
    check_schema("vendor.gitlab-ci", &gitlab);
    let refused = repo.gitship(&[
        "ci",
        "init",
        "github",
        "--aws-role",
        "gitship-deploy",
        "--aws-region",
        "eu-west-1",
        "--force",
    ]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(
        refused.stderr.contains("is not an IAM role ARN"),
        "{}",
        refused.stderr
    );
}

/// `--aws-role` with a registry on Amazon ECR (GitHub): every job that reads or pushes images
/// logs in with the role it assumes (`aws-actions/amazon-ecr-login`, after the credentials, an
/// OIDC token), and no registry secret is asked for; the drift jobs, which read no registry,
/// get a token for their Terraform only.
#[test]
fn ci_init_github_logs_in_to_ecr_through_oidc() {
    use yaml_rust2::YamlLoader;
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/blog";
    for env in ["production", "staging"] {
        repo.edit(
            &format!("config/{env}.yaml"),
            "registry: ghcr.io/acme/blog",
            &format!("registry: {ecr}"),
        );
    }
    repo.commit("ECR");
    let role = "arn:aws:iam::123456789012:role/gitship-deploy";
    let run = repo.ok(&[
        "ci",
        "init",
        "github",
        "--aws-role",
        role,
        "--aws-region",
        "eu-west-1",
    ]);
    assert!(!run.stdout.contains("REGISTRY_USERNAME"), "{}", run.stdout);
    let path = repo.path().join(".github/workflows/gitship.yml");
    let text = read(&path);
    assert!(
        !text.contains("REGISTRY_USERNAME") && !text.contains("docker/login-action"),
        "{text}"
    );
    let workflow = &YamlLoader::load_from_str(&text).expect("YAML")[0];
    for (name, job) in workflow["jobs"].as_hash().expect("jobs") {
        let name = name.as_str().expect("name");
        let uses: Vec<&str> = job["steps"]
            .as_vec()
            .expect("steps")
            .iter()
            .filter_map(|step| step["uses"].as_str())
            .collect();
        let credentials = uses
            .iter()
            .position(|u| u.starts_with("aws-actions/configure-aws-credentials"));
        let login = uses
            .iter()
            .position(|u| *u == "aws-actions/amazon-ecr-login@v2");
        if name.starts_with("drift-") {
            assert_eq!(login, None, "{name} reads no registry");
        } else {
            assert!(
                credentials.is_some() && credentials < login,
                "{name}: {uses:?}"
            );
        }
        assert_eq!(
            job["permissions"]["id-token"].as_str(),
            Some("write"),
            "{name}"
        );
    }
    assert!(text.contains("registries: \"123456789012\""), "{text}");
    actionlint(&path);
    check_schema("vendor.github-workflows", &path);
}

/// The generated workflow, parsed: no job a pull request can run reads a secret except through
/// a `<env>-plan` environment (credentials that cannot deploy), the workflow's own `env:` holds
/// none, and every job that reads a deploy environment's secrets runs on pushes only.
#[test]
fn ci_init_github_gives_pull_requests_no_deploy_secret() {
    use yaml_rust2::{Yaml, YamlLoader};
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let run = repo.ok(&[
        "ci",
        "init",
        "github",
        "--deploy-env",
        "staging",
        "production",
    ]);
    assert!(run.stdout.contains("environment secrets"), "{}", run.stdout);
    let text = read(&repo.path().join(".github/workflows/gitship.yml"));
    let docs = YamlLoader::load_from_str(&text).expect("YAML");
    let workflow = &docs[0];
    let reads_secrets = |node: &Yaml| {
        let mut out = String::new();
        let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
        emitter.dump(node).expect("emit");
        out.contains("secrets.")
    };
    assert!(
        !reads_secrets(&workflow["env"]),
        "the workflow's env holds a secret"
    );
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    let mut checked = 0;
    for (name, job) in jobs {
        let name = name.as_str().expect("job name");
        let condition = job["if"].as_str().unwrap_or("");
        let environment = job["environment"].as_str().unwrap_or("");
        let on_pull_requests = condition.is_empty() || condition.contains("pull_request");
        if reads_secrets(job) {
            assert!(!environment.is_empty(), "{name} reads a repository secret");
            checked += 1;
        }
        if on_pull_requests && reads_secrets(job) {
            assert!(
                environment.ends_with("-plan"),
                "{name} runs on pull requests with the secrets of `{environment}`"
            );
        }
        if !environment.is_empty() && !environment.ends_with("-plan") {
            assert_eq!(
                condition, "github.event_name == 'push'",
                "{name} reads `{environment}`'s secrets"
            );
        }
    }
    assert!(checked >= 5, "plan, two deploys, two drifts: {checked}");
    assert!(
        text.contains("#     in environments `staging`, `staging-plan`"),
        "{text}"
    );
}

/// The deploy jobs run on pushes to the repository's default branch: `origin/HEAD`, else the
/// branch checked out; `--branch` overrides it.
#[test]
fn ci_init_github_deploys_from_the_default_branch() {
    let repo = Repo::example();
    repo.git(&["branch", "-M", "master"]);
    let file = repo.path().join(".github/workflows/gitship.yml");
    let run = repo.ok(&["ci", "init", "github"]);
    assert!(
        run.stdout.contains("deploy from `master`"),
        "{}",
        run.stdout
    );
    let text = read(&file);
    assert!(text.contains("    branches: [master]\n"), "{text}");
    assert!(text.contains("# - pushes to `master`:"), "{text}");
    assert!(!text.contains("main"), "{text}");
    actionlint(&file);

    // A clone's `origin/HEAD` names the remote's default branch, whatever is checked out.
    repo.git(&["update-ref", "refs/remotes/origin/trunk", "HEAD"]);
    repo.git(&[
        "symbolic-ref",
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/trunk",
    ]);
    repo.ok(&["ci", "init", "github", "--force"]);
    assert!(
        read(&file).contains("    branches: [trunk]\n"),
        "{}",
        read(&file)
    );

    repo.ok(&["ci", "init", "github", "--force", "--branch", "release/2"]);
    assert!(
        read(&file).contains("    branches: [release/2]\n"),
        "{}",
        read(&file)
    );
    actionlint(&file);

    let quoted = repo.gitship(&["ci", "init", "github", "--force", "--branch", "a,b"]);
    assert_eq!(quoted.code, 1, "{}", quoted.all());
    assert!(
        quoted.stderr.contains("error: the branch `a,b`"),
        "{}",
        quoted.stderr
    );
    assert!(
        quoted.stderr.contains("hint: pass `--branch NAME`"),
        "{}",
        quoted.stderr
    );

    // Neither `origin/HEAD` nor a branch checked out: `--branch` is needed.
    repo.git(&["symbolic-ref", "-d", "refs/remotes/origin/HEAD"]);
    repo.git(&["checkout", "-q", "--detach"]);
    let detached = repo.gitship(&["ci", "init", "github", "--force"]);
    assert_eq!(detached.code, 1, "{}", detached.all());
    assert!(
        detached
            .stderr
            .contains("error: there is no default branch to deploy from"),
        "{}",
        detached.stderr
    );
    assert!(
        detached.stderr.contains("hint: name the branch"),
        "{}",
        detached.stderr
    );

    // GitLab's pipeline names the default branch itself.
    let gitlab = repo.gitship(&["ci", "init", "gitlab", "--branch", "master"]);
    assert_eq!(gitlab.code, 64, "{}", gitlab.all());
    assert!(
        gitlab.stderr.contains("`--branch` is for `github` only"),
        "{}",
        gitlab.stderr
    );
    repo.ok(&["ci", "init", "gitlab"]);
    assert!(
        read(&repo.path().join(".gitlab-ci.yml"))
            .contains("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH")
    );
}

#[test]
fn ci_init_gitlab_for_the_example_is_valid_and_stable() {
    let repo = Repo::example();
    let run = repo.ok(&["ci", "init", "gitlab"]);
    assert!(run.stdout.contains("wrote .gitlab-ci.yml"), "{}", run.all());
    // The secrets named to the user are the ones the file's header lists.
    assert!(
        run.stdout.contains(
            "secrets to set: REGISTRY_USERNAME, REGISTRY_PASSWORD, KUBECONFIG_STAGING, KUBECONFIG_PRODUCTION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GITLAB_TOKEN (the file's header says what each holds)\n"
        ),
        "{}",
        run.stdout
    );
    let file = repo.path().join(".gitlab-ci.yml");
    let text = read(&file);
    for expected in [
        "gitship validate -o codequality > gl-code-quality-report.json",
        "codequality: gl-code-quality-report.json",
        "gitship plan staging -o markdown --exit-code",
        "<!-- gitship-plan:staging -->",
        "PRIVATE-TOKEN: $GITLAB_TOKEN",
        "resource_group: gitship-production",
        "gitship deploy production",
        "gitship drift production -o markdown",
        "$CI_MERGE_REQUEST_DIFF_BASE_SHA",
        // The note is the pipeline's own, found on any page, and updated when nothing is
        // affected; a failed validate does not hold the plan (and its note) back.
        "select(.author.username == $me and (.body | startswith($marker)))",
        "page=$((page + 1))",
        "changes nothing that \\`staging\\` deploys",
        "  needs: []\n",
        // The deploy compares with what production last deployed, in a clean tree.
        "affected --since \"deployed:production\"",
        "echo /.gitship-ci/ >> .git/info/exclude",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(!text.contains("> affected.json"), "{text}");
    snapshot("ci_init_gitlab_example", &text);
    check_schema("vendor.gitlab-ci", &file);
}

/// A gitship repository below the Git root, deploying two environments in order, the second run
/// by the agent: the files go to the Git root, every command gets `-C`, the agent's deploy job
/// only builds.
#[test]
fn ci_init_below_the_git_root_with_an_agent_environment() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write("deploy/apps/web/Dockerfile", "FROM scratch\n");
    repo.write(
        "deploy/infrastructure/kubernetes/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  image: ${images.web}\n",
    );
    repo.write(
        "deploy/config/qa.yaml",
        "cluster:\n  namespace: web-qa\nregistry: registry.example.com/web\n",
    );
    repo.write(
        "deploy/config/live.yaml",
        "cluster:\n  namespace: web\nregistry: registry.example.com/web\nagent:\n  branch: main\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("web");
    let mut command = gitship();
    let output = command
        .arg("-C")
        .arg(repo.path().join("deploy"))
        .args(["ci", "init", "github", "--plan-env", "qa"])
        .args(["--deploy-env", "qa", "live"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = repo.path().join(".github/workflows/gitship.yml");
    let text = read(&file);
    assert!(text.contains("gitship -C deploy deploy qa"), "{text}");
    assert!(text.contains("gitship -C deploy build live"), "{text}");
    assert!(
        !text.contains("gitship -C deploy deploy live"),
        "the agent applies live: {text}"
    );
    assert!(text.contains("needs: [deploy-qa]"), "{text}");
    assert!(text.contains("the gitship agent of live applies"), "{text}");
    assert!(!text.contains("setup-terraform"), "no Terraform: {text}");
    actionlint(&file);
    check_schema("vendor.github-workflows", &file);

    let output = gitship()
        .arg("-C")
        .arg(repo.path().join("deploy"))
        .args([
            "ci",
            "init",
            "gitlab",
            "--plan-env",
            "qa",
            "--deploy-env",
            "qa",
            "live",
        ])
        .output()
        .expect("run");
    assert!(output.status.success());
    let file = repo.path().join(".gitlab-ci.yml");
    let text = read(&file);
    assert!(text.contains("gitship -C deploy plan qa"), "{text}");
    assert!(!text.contains("gitship -C deploy deploy live"), "{text}");
    check_schema("vendor.gitlab-ci", &file);
}

#[test]
fn ci_init_never_overwrites_without_force_and_checks_environments() {
    let repo = Repo::example();
    repo.write(".github/workflows/gitship.yml", "# mine\n");
    let run = repo.gitship(&["ci", "init", "github"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("`.github/workflows/gitship.yml` already exists"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: pass `--force`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        read(&repo.path().join(".github/workflows/gitship.yml")),
        "# mine\n"
    );

    let run = repo.gitship(&["ci", "init", "github", "--plan-env", "stagin"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("stagin"), "{}", run.stderr);
    assert_eq!(
        read(&repo.path().join(".github/workflows/gitship.yml")),
        "# mine\n"
    );

    repo.ok(&["ci", "init", "github", "--force"]);
    assert!(read(&repo.path().join(".github/workflows/gitship.yml")).contains("name: gitship"));
}

// ---------------------------------------------------------------------------------------------
// Annotations, the job summary, Code Quality

/// A repository whose manifest has an unknown placeholder on line 6, column 9.
fn broken_repo() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  size: ${values.nope}\n",
    );
    repo.write("config/staging.yaml", "cluster:\n  namespace: app\n");
    repo.git(&["init", "-q"]);
    repo.commit("broken");
    repo
}

/// A server's refusal of an object (a Service port over 65535) is annotated at the file and
/// line that declare the object, its message said once.
#[test]
fn a_server_error_is_annotated_at_the_objects_declaration() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write("config/staging.yaml", "cluster:\n  namespace: web\n");
    repo.write(
        "infrastructure/kubernetes/svc.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  ports:\n    - port: 99999\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("svc");
    let ci = [
        ("GITHUB_ACTIONS", Path::new("true")),
        ("GITHUB_WORKSPACE", repo.path()),
    ];
    let run = gitship_with(&repo, &ci, &["deploy", "staging", "--sandbox"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let annotation = run
        .stderr
        .lines()
        .find(|line| line.starts_with("::error"))
        .unwrap_or_else(|| panic!("no annotation: {}", run.stderr));
    assert!(
        annotation.starts_with("::error file=infrastructure/kubernetes/svc.yaml,line=6,col=1::"),
        "{annotation}"
    );
    assert!(
        annotation.contains("must be between 1 and 65535"),
        "{annotation}"
    );
    // The server's message once: not again as a cause with its reason (`...: Invalid`).
    assert_eq!(
        annotation.matches("is invalid: [").count(),
        1,
        "{annotation}"
    );
}

#[test]
fn github_actions_errors_are_annotations() {
    let repo = broken_repo();
    let ci = [
        ("GITHUB_ACTIONS", Path::new("true")),
        ("GITHUB_WORKSPACE", repo.path()),
    ];
    let annotation = "::error file=infrastructure/kubernetes/app.yaml,line=6,col=9::`${values.nope}`: `values.nope` is not defined";
    let run = gitship_with(&repo, &ci, &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains(annotation), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("infrastructure/kubernetes/app.yaml:6:9"),
        "the usual error too: {}",
        run.stderr
    );
    let run = gitship_with(&repo, &ci, &["-o", "json", "validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(annotation),
        "with JSON too: {}",
        run.stderr
    );
    let run = gitship_with(&repo, &ci, &["plan", "staging", "--sandbox"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains(annotation), "{}", run.stderr);

    // Not under GitHub Actions, and not for the commands that do not annotate.
    let run = repo.gitship(&["validate"]);
    assert_eq!(run.code, 1);
    assert!(!run.stderr.contains("::error"), "{}", run.stderr);
    let run = gitship_with(&repo, &ci, &["render", "staging"]);
    assert_eq!(run.code, 1);
    assert!(!run.stderr.contains("::error"), "{}", run.stderr);
}

#[test]
fn plan_and_drift_write_the_step_summary_without_secrets() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  greeting: hello\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  password: hunter2-do-not-show\n",
    );
    repo.write("config/staging.yaml", "cluster:\n  namespace: app\n");
    repo.git(&["init", "-q"]);
    repo.commit("app");
    let summary = repo.path().join(".gitship-summary.md");
    let ci = [
        ("GITHUB_ACTIONS", Path::new("true")),
        ("GITHUB_STEP_SUMMARY", summary.as_path()),
    ];
    let run = gitship_with(
        &repo,
        &ci,
        &[
            "-o",
            "markdown",
            "plan",
            "staging",
            "--sandbox",
            "--exit-code",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    let written = read(&summary);
    assert!(written.contains("ConfigMap"), "{written}");
    assert_eq!(
        written.trim_end(),
        run.stdout.trim_end(),
        "the markdown plan"
    );
    assert!(!written.contains("hunter2"), "{written}");

    // Human output on stdout; the summary still gets Markdown, appended.
    let run = gitship_with(&repo, &ci, &["drift", "staging", "--sandbox"]);
    assert!(run.code == 0 || run.code == 2, "{}", run.all());
    assert!(
        !run.stdout.contains("### gitship"),
        "human on stdout: {}",
        run.stdout
    );
    let written = read(&summary);
    let plan_at = written
        .find("### gitship plan for `staging`")
        .expect("the plan");
    let drift_at = written
        .find("### gitship drift for `staging`")
        .expect("the drift report");
    assert!(plan_at < drift_at, "appended: {written}");
    assert!(!written.contains("hunter2"), "{written}");

    // No summary without the variable.
    std::fs::remove_file(&summary).expect("remove");
    let run = repo.gitship(&["plan", "staging", "--sandbox"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!summary.exists());
}

#[test]
fn validate_codequality_report() {
    let repo = broken_repo();
    let run = gitship_with(
        &repo,
        &[("GITLAB_CI", Path::new("true"))],
        &["validate", "-o", "codequality"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON report");
    let issues = report.as_array().expect("an array");
    assert_eq!(issues.len(), 1, "{report:#}");
    let issue = &issues[0];
    assert_eq!(issue["check_name"], "gitship-validate");
    assert_eq!(issue["severity"], "major");
    assert_eq!(issue["location"]["lines"]["begin"], 6);
    let path = issue["location"]["path"].as_str().expect("path");
    assert!(
        path.ends_with("infrastructure/kubernetes/app.yaml"),
        "{path}"
    );
    assert!(
        issue["description"]
            .as_str()
            .is_some_and(|d| d.contains("`values.nope` is not defined")),
        "{issue}"
    );
    assert_eq!(issue["fingerprint"].as_str().map(str::len), Some(64));
    assert!(run.stderr.contains("values.nope"), "errors on stderr too");

    // A line inserted above moves the issue, not its fingerprint (GitLab would call it new).
    let text = std::fs::read_to_string(repo.path().join("infrastructure/kubernetes/app.yaml"))
        .expect("manifest");
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        &format!("# a comment\n{text}"),
    );
    let moved = gitship_with(
        &repo,
        &[("GITLAB_CI", Path::new("true"))],
        &["validate", "-o", "codequality"],
    );
    let moved: serde_json::Value = serde_json::from_str(&moved.stdout).expect("JSON report");
    assert_eq!(moved[0]["location"]["lines"]["begin"], 7);
    assert_eq!(moved[0]["fingerprint"], issue["fingerprint"]);

    // A valid repository: an empty report, exit 0.
    repo.edit(
        "infrastructure/kubernetes/app.yaml",
        "${values.nope}",
        "two",
    );
    let run = repo.gitship(&["validate", "-o", "codequality"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.trim(), "[]");

    // Only `validate` has it.
    let run = repo.gitship(&["-o", "codequality", "render", "staging"]);
    assert_eq!(run.code, 64, "{}", run.all());
    assert!(run.stderr.contains("`-o codequality`"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// affected

fn affected(repo: &Repo, since: &str) -> Affected {
    let run = repo.ok(&["-o", "json", "affected", "--since", since]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}:\n{}", run.stdout))
}

#[test]
fn affected_follows_the_history() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write("apps/api/Dockerfile", "FROM scratch\nCOPY app.txt /\n");
    repo.write("apps/api/app.txt", "v1\n");
    repo.write("apps/web/Dockerfile", "FROM scratch\n");
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  api: ${images.api}\n",
    );
    repo.write(
        "infrastructure/terraform/main.tf",
        "output \"name\" {\n  value = \"x\"\n}\n",
    );
    for env in ["staging", "production"] {
        repo.write(
            &format!("config/{env}.yaml"),
            &format!("cluster:\n  namespace: {env}\nregistry: registry.example.com/shop\n"),
        );
    }
    repo.write("README.md", "shop\n");
    repo.git(&["init", "-q"]);
    repo.commit("base");
    repo.git(&["tag", "base"]);
    let steps: [(&str, &str, &str); 6] = [
        ("app", "apps/api/app.txt", "v2\n"),
        (
            "env",
            "config/staging.yaml",
            "cluster:\n  namespace: staging\nregistry: registry.example.com/shop\nvalues:\n  x: 1\n",
        ),
        (
            "manifests",
            "infrastructure/kubernetes/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  api: ${images.api}\n  more: yes\n",
        ),
        (
            "terraform",
            "infrastructure/terraform/main.tf",
            "output \"name\" {\n  value = \"y\"\n}\n",
        ),
        ("settings", "gitship.yaml", "build:\n  builder: docker\n"),
        ("docs", "README.md", "shop, documented\n"),
    ];
    for (tag, path, text) in steps {
        repo.write(path, text);
        repo.commit(tag);
        repo.git(&["tag", tag]);
    }
    let both = vec!["production".to_string(), "staging".to_string()];
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let at = |tag: &str, since: &str| {
        repo.git(&["checkout", "-q", tag]);
        affected(&repo, since)
    };

    let app = at("app", "base");
    assert_eq!(app.apps, names(&["api"]));
    assert_eq!(app.environments, both, "every environment builds the app");
    assert_eq!(
        app.files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["apps/api/app.txt"]
    );
    assert_eq!(app.files[0].touches, Touches::App { name: "api".into() });
    assert!(!app.everything);

    let env = at("env", "app");
    assert_eq!(env.environments, names(&["staging"]));
    assert!(env.apps.is_empty());

    let manifests = at("manifests", "env");
    assert_eq!(manifests.environments, both);
    assert!(manifests.apps.is_empty());

    let terraform = at("terraform", "manifests");
    assert_eq!(terraform.environments, both);
    assert_eq!(terraform.files[0].touches, Touches::Terraform);

    let settings = at("settings", "terraform");
    assert!(settings.everything);
    assert_eq!(settings.environments, both);
    assert_eq!(settings.apps, names(&["api", "web"]));

    let docs = at("docs", "settings");
    assert!(
        docs.environments.is_empty() && docs.apps.is_empty(),
        "{docs:?}"
    );
    assert_eq!(docs.files[0].touches, Touches::Nothing);

    // A range: everything between, once each.
    let range = at("manifests", "base");
    assert_eq!(range.apps, names(&["api"]));
    assert_eq!(range.environments, both);
    assert_eq!(range.files.len(), 3);

    // From the merge base: a commit on the other side does not count.
    repo.git(&["checkout", "-q", "-b", "side", "base"]);
    repo.write(
        "config/production.yaml",
        "cluster:\n  namespace: production\nregistry: registry.example.com/shop\nvalues:\n  y: 2\n",
    );
    repo.commit("side");
    repo.git(&["checkout", "-q", "env"]);
    let diverged = affected(&repo, "side");
    assert_eq!(
        diverged.environments, both,
        "app + env since base, not side's production change alone"
    );
    assert!(
        diverged
            .files
            .iter()
            .all(|f| f.path != "config/production.yaml"),
        "{diverged:?}"
    );

    // Human output.
    let run = repo.ok(&["affected", "--since", "app"]);
    assert!(
        run.stdout.contains("environments: staging\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("apps: (none)\n"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("config/staging.yaml  environment `staging`"),
        "{}",
        run.stdout
    );

    // A revision that does not exist.
    let run = repo.gitship(&["affected", "--since", "no-such-branch"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("error: cannot compare with `no-such-branch`: it names no commit here"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: give a SHA"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

/// `--since deployed:ENV` compares with what ENV last deployed successfully, read from its
/// cluster: a push whose deploy never happened (cancelled, rejected, failed) is still affected
/// at the next push, which `--since <previous push>` would have skipped. Never deployed:
/// everything. A deleted environment config is reported, not ignored.
#[test]
fn affected_since_deployed_counts_what_never_reached_the_environment() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: a\n",
    );
    for env in ["staging", "production"] {
        repo.write(
            &format!("config/{env}.yaml"),
            &format!("cluster:\n  namespace: {env}\n"),
        );
    }
    repo.write("README.md", "shop\n");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("base");
    let deployed = |env: &str| {
        let run = repo.ok(&[
            "-o",
            "json",
            "affected",
            "--since",
            &format!("deployed:{env}"),
            "--sandbox",
        ]);
        serde_json::from_str::<serde_json::Value>(&run.stdout)
            .unwrap_or_else(|err| panic!("{err}:\n{}", run.stdout))
    };
    let never = deployed("production");
    assert_eq!(never["everything"], true, "{never}");
    assert_eq!(never["base"], serde_json::Value::Null, "{never}");
    assert_eq!(never["environments"], json!(["production", "staging"]));
    let human = repo.ok(&["affected", "--since", "deployed:production", "--sandbox"]);
    assert!(
        human
            .stdout
            .contains("never deployed: everything is affected"),
        "{}",
        human.stdout
    );

    repo.ok(&["deploy", "production", "--sandbox"]);
    let base = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo.path())
        .output()
        .expect("git rev-parse");
    let base = String::from_utf8_lossy(&base.stdout).into_owned();
    // Push 1 changes production's config; its deploy is cancelled. Push 2 changes the docs.
    repo.write(
        "config/production.yaml",
        "cluster:\n  namespace: production\nvalues:\n  x: 1\n",
    );
    repo.commit("push 1");
    repo.write("README.md", "shop, documented\n");
    repo.commit("push 2");
    assert!(
        affected(&repo, "HEAD~1").environments.is_empty(),
        "since the previous push, production looks untouched"
    );
    let since = deployed("production");
    assert_eq!(since["since"], "deployed:production");
    assert_eq!(since["base"], base.trim(), "{since}");
    assert_eq!(since["environments"], json!(["production"]), "{since}");

    // A deploy that fails is not a base: the last success is.
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: \"${values.missing}\"\n",
    );
    repo.commit("broken");
    assert_eq!(repo.gitship(&["deploy", "production", "--sandbox"]).code, 1);
    assert_eq!(deployed("production")["base"], base.trim());

    // Deleting an environment's config touches that (removed) environment.
    repo.git(&["rm", "-q", "config/staging.yaml"]);
    repo.commit("no staging");
    let removed = affected(&repo, "HEAD~1");
    assert_eq!(
        removed.files[0].touches,
        Touches::RemovedEnvironment {
            name: "staging".into()
        }
    );
    assert!(removed.environments.is_empty(), "{removed:?}");
}

/// An environment with its own `kubernetes.path`: its files touch it alone, and the shared
/// manifests directory touches only the environments rendering it.
#[test]
fn affected_follows_kubernetes_path() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n";
    repo.write("infrastructure/kubernetes/app.yaml", config_map);
    repo.write("overlays/preview/app.yaml", config_map);
    repo.write("config/staging.yaml", "cluster:\n  namespace: staging\n");
    repo.write(
        "config/preview.yaml",
        "cluster:\n  namespace: preview\nkubernetes:\n  path: overlays/preview\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("base");
    repo.git(&["tag", "base"]);
    repo.write(
        "overlays/preview/app.yaml",
        &config_map.replace("a: b", "a: c"),
    );
    repo.commit("preview");
    repo.git(&["tag", "preview"]);
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        &config_map.replace("a: b", "a: d"),
    );
    repo.commit("shared");

    let preview = affected(&repo, "base");
    assert_eq!(preview.environments, ["preview", "staging"], "both commits");
    repo.git(&["checkout", "-q", "preview"]);
    let preview = affected(&repo, "base");
    assert_eq!(preview.environments, ["preview"]);
    assert_eq!(
        preview.files[0].touches,
        Touches::Manifests {
            environments: vec!["preview".into()]
        }
    );
    repo.git(&["checkout", "-q", "-"]);
    let shared = affected(&repo, "preview");
    assert_eq!(shared.environments, ["staging"]);
}

/// `terraform: false` and `kubernetes: false`: a change to the module, or to the manifests,
/// touches only the environments that use that layer.
#[test]
fn affected_leaves_out_environments_that_turn_a_layer_off() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n";
    repo.write("infrastructure/kubernetes/app.yaml", config_map);
    repo.write(
        "infrastructure/terraform/main.tf",
        "resource \"terraform_data\" \"x\" {}\n",
    );
    repo.write("config/staging.yaml", "cluster:\n  namespace: staging\n");
    repo.write(
        "config/dev.yaml",
        "cluster:\n  namespace: dev\nterraform: false\n",
    );
    repo.write(
        "config/infra.yaml",
        "cluster:\n  namespace: infra\nkubernetes: false\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("base");
    repo.git(&["tag", "base"]);
    repo.write(
        "infrastructure/terraform/main.tf",
        "resource \"terraform_data\" \"y\" {}\n",
    );
    repo.commit("terraform");
    repo.git(&["tag", "terraform"]);
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        &config_map.replace("a: b", "a: c"),
    );
    repo.commit("manifests");

    assert_eq!(
        affected(&repo, "terraform").environments,
        ["dev", "staging"]
    );
    repo.git(&["checkout", "-q", "terraform"]);
    assert_eq!(affected(&repo, "base").environments, ["infra", "staging"]);
}

/// An app whose build context is the repository root holds every file: manifests and Terraform
/// still touch exactly the environments rendering or planning them (not every environment that
/// builds), and what the context's `.dockerignore` excludes touches no app.
#[test]
fn affected_with_an_app_built_from_the_repository_root() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n";
    repo.write("gitship.yaml", "apps:\n  web:\n    context: .\n");
    repo.write(
        "apps/web/Dockerfile",
        "FROM scratch\nCOPY apps/web/index.html /\n",
    );
    repo.write("apps/web/index.html", "v1\n");
    repo.write(".dockerignore", "docs\n*.md\n");
    repo.write("docs/guide.txt", "v1\n");
    repo.write("infrastructure/kubernetes/app.yaml", config_map);
    repo.write("overlays/preview/app.yaml", config_map);
    repo.write(
        "infrastructure/terraform/main.tf",
        "output \"name\" {\n  value = \"x\"\n}\n",
    );
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: staging\nregistry: registry.example.com/shop\n",
    );
    repo.write(
        "config/preview.yaml",
        "cluster:\n  namespace: preview\nregistry: registry.example.com/shop\nkubernetes:\n  path: overlays/preview\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("base");
    let step = |path: &str, text: &str| {
        let base = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .expect("git rev-parse");
        let base = String::from_utf8_lossy(&base.stdout).trim().to_string();
        repo.write(path, text);
        repo.commit(path);
        affected(&repo, &base)
    };
    let both = ["preview", "staging"];

    let shared = step(
        "infrastructure/kubernetes/app.yaml",
        &config_map.replace("a: b", "a: c"),
    );
    assert_eq!(shared.environments, ["staging"], "{shared:?}");
    assert!(shared.apps.is_empty(), "{shared:?}");
    assert_eq!(
        shared.files[0].touches,
        Touches::Manifests {
            environments: vec!["staging".into()]
        }
    );
    let own = step(
        "overlays/preview/app.yaml",
        &config_map.replace("a: b", "a: d"),
    );
    assert_eq!(own.environments, ["preview"], "{own:?}");
    assert!(own.apps.is_empty(), "{own:?}");

    let terraform = step(
        "infrastructure/terraform/main.tf",
        "output \"name\" {\n  value = \"y\"\n}\n",
    );
    assert_eq!(terraform.environments, both, "{terraform:?}");
    assert_eq!(terraform.files[0].touches, Touches::Terraform);
    assert!(terraform.apps.is_empty(), "{terraform:?}");

    let ignored = step("docs/guide.txt", "v2\n");
    assert!(ignored.environments.is_empty(), "{ignored:?}");
    assert_eq!(ignored.files[0].touches, Touches::Nothing);
    let ignored = step("NOTES.md", "notes\n");
    assert_eq!(ignored.files[0].touches, Touches::Nothing, "{ignored:?}");

    let app = step("apps/web/index.html", "v2\n");
    assert_eq!(app.apps, ["web"], "{app:?}");
    assert_eq!(app.environments, both, "every environment builds `web`");
    let rules = step(".dockerignore", "docs\n");
    assert_eq!(
        rules.apps,
        ["web"],
        "the rules shape the context: {rules:?}"
    );
}

/// `ci init` writes nothing it cannot fill: no environments, no `production` to deploy without
/// `--deploy-env`, an environment deployed twice.
#[test]
fn ci_init_refuses_missing_and_repeated_environments() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n",
    );
    repo.write("config/README.txt", "environments go here\n");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("base");
    let workflow = repo.path().join(".github/workflows/gitship.yml");

    let none = repo.gitship(&["ci", "init", "github"]);
    assert_eq!(none.code, 1, "{}", none.all());
    assert!(
        none.stderr
            .contains("error: the repository has no environments to run in CI"),
        "{}",
        none.stderr
    );
    assert!(
        none.stderr
            .contains("hint: create `config/<env>.yaml` first"),
        "{}",
        none.stderr
    );

    repo.write("config/staging.yaml", "cluster:\n  namespace: staging\n");
    repo.write("config/qa.yaml", "cluster:\n  namespace: qa\n");
    let no_production = repo.gitship(&["ci", "init", "github"]);
    assert_eq!(no_production.code, 1, "{}", no_production.all());
    assert!(
        no_production
            .stderr
            .contains("error: there is no `production` environment to deploy"),
        "{}",
        no_production.stderr
    );
    assert!(
        no_production
            .stderr
            .contains("hint: name the environments to deploy, in order, with `--deploy-env ENV`"),
        "{}",
        no_production.stderr
    );

    let twice = repo.gitship(&[
        "ci",
        "init",
        "github",
        "--deploy-env",
        "qa",
        "staging",
        "--deploy-env",
        "qa",
    ]);
    assert_eq!(twice.code, 64, "{}", twice.all());
    assert!(
        twice
            .stderr
            .contains("error: `--deploy-env qa` is given twice"),
        "{}",
        twice.stderr
    );
    assert!(!workflow.exists(), "nothing is written on an error");

    repo.ok(&["ci", "init", "github", "--deploy-env", "qa", "staging"]);
    assert!(read(&workflow).contains("needs: [deploy-qa]"));
}

/// `affected` before the first commit: nothing to compare, and a hint to commit.
#[test]
fn affected_without_commits_says_to_commit_first() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write("config/staging.yaml", "cluster:\n  namespace: staging\n");
    repo.git(&["init", "-q", "-b", "main"]);
    let run = repo.gitship(&["affected", "--since", "main"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("error: cannot read the changes since `main`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("has no commits yet"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: `affected` compares commits"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// `--preview-from staging --preview-url ...`: a preview per pull/merge request (created or
/// updated, built, deployed, commented with its URL), destroyed when it closes, `gc` on the
/// schedule; the files pass actionlint and the platforms' schemas; the plan jobs do not run
/// when a pull request closes; a bad URL template or base is refused before anything is written.
#[test]
fn ci_init_writes_preview_jobs_per_pull_request() {
    let repo = Repo::example();
    repo.git(&["branch", "-M", "main"]);
    let url = "https://${values.host}/?pr=1";
    for (platform, file) in [
        ("github", ".github/workflows/gitship.yml"),
        ("gitlab", ".gitlab-ci.yml"),
    ] {
        repo.ok(&[
            "ci",
            "init",
            platform,
            "--preview-from",
            "staging",
            "--preview-url",
            url,
            "--force",
        ]);
        let path = repo.path().join(file);
        let text = read(&path);
        for expected in [
            "env new \"$PREVIEW\" --from staging --ephemeral --ttl 168h",
            "gitship build staging",
            "gitship deploy \"$PREVIEW\"",
            "gitship destroy \"$PREVIEW\" --yes",
            "gitship gc --yes",
            r#"jq -r '"https://\(.values["host"] // "")/?pr=1"'"#,
        ] {
            let expected = if platform == "gitlab" {
                expected.replace("$PREVIEW", "$preview")
            } else {
                expected.to_string()
            };
            assert!(
                text.contains(&expected),
                "{platform}: no `{expected}` in:\n{text}"
            );
        }
        if platform == "github" {
            assert!(
                text.contains("types: [opened, synchronize, reopened, closed]"),
                "{text}"
            );
            assert!(
                text.contains("gh pr comment \"$PR_NUMBER\" --edit-last --create-if-none"),
                "{text}"
            );
            assert!(
                text.contains(
                    "if: github.event_name == 'pull_request' && github.event.action == 'closed'"
                ),
                "{text}"
            );
            // The plan jobs leave a closed pull request alone.
            assert!(
                !text.contains("if: github.event_name == 'pull_request'\n"),
                "{text}"
            );
            actionlint(&path);
            check_schema("vendor.github-workflows", &path);
        } else {
            for expected in [
                "on_stop: preview-stop",
                "auto_stop_in: 1 week",
                "action: stop",
                "PRIVATE-TOKEN: $GITLAB_TOKEN",
                "<!-- gitship-preview -->",
            ] {
                assert!(text.contains(expected), "no `{expected}` in:\n{text}");
            }
            check_schema("vendor.gitlab-ci", &path);
        }
    }
    let before = read(&repo.path().join(".gitlab-ci.yml"));
    for (args, expected) in [
        (
            &["--preview-from", "nope"][..],
            "`--preview-from nope`: no such environment",
        ),
        (
            &[
                "--preview-from",
                "staging",
                "--preview-url",
                "https://${terraform.url}",
            ][..],
            "`${terraform.url}` is not a value",
        ),
        (
            &[
                "--preview-from",
                "staging",
                "--preview-url",
                "https://${values.host",
            ][..],
            "is not closed",
        ),
    ] {
        let mut all = vec!["ci", "init", "gitlab", "--force"];
        all.extend_from_slice(args);
        let run = repo.gitship(&all);
        assert_eq!(run.code, 64, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.all());
    }
    assert_eq!(read(&repo.path().join(".gitlab-ci.yml")), before);
}
