//! `.gitlab-ci.yml`.

use super::*;

const HEADER: &str = r#"# Written by `gitship ci init gitlab` (gitship @VERSION@); edit freely, `--force` writes it again.
#
# - merge requests: `gitship validate` (a Code Quality report), then `gitship plan` of @PLAN@,
#   one job and one merge request note (updated in place, kept as an artifact) per
#   environment; a job fails only when its plan fails (exit 1), not when it shows changes
#   (exit 2); each plan's redacted report (no Secret value, no Terraform planfile) is kept as
#   the artifact `gitship-plan.json`;
# - pushes to the default branch: `gitship build` and `gitship deploy` for @DEPLOY@, in that
#   order, one deploy of an environment at a time (`resource_group`); the deploy finds the
#   plan reviewed on the merge request of the commit, plans again and applies that plan when
#   the tree and the changes are the same (`deploy --reviewed`), else says how it differs and
#   applies the plan made now (add `--require-reviewed` to refuse it instead);
# - scheduled pipelines (CI/CD > Schedules): `gitship drift` for @DRIFT@, failing on drift.
# Each job asks `gitship affected` what the change touches and skips an environment it cannot
# affect.
#
# Scope every variable to the environments of the jobs that read it (the variable's
# "Environment scope"). A deploy job runs in its environment (`production`): protect it
# (Settings > CI/CD > Protected environments) and make its variables protected, so only the
# default branch's pipelines see them. A merge request's pipeline runs on an unprotected
# branch and sees no protected variable: the plan and the drift check run in `<env>-plan`
# (@PLAN_ENVS@), whose variables must be unprotected and hold credentials that can read and
# dry-run but not deploy (a registry token that cannot push, a backend role that cannot write
# the state). A plan with the protected credentials themselves needs a protected source
# branch (GitLab gives protected variables to pipelines of protected branches only): protect
# the branches such merge requests come from, or keep the `-plan` credentials.
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
  # The gitship the jobs install (`cargo install --locked --git`, cached per version; with
  # `ci init --image`, the version in the image).
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

/// The jobs in gitship's CI image, pinned by digest: gitship, Terraform and the tools are in it.
const BASE_IMAGE: &str = r#"
.gitship:
  # gitship's CI image (gitship, Terraform, git, jq, curl, the docker CLI), pinned by digest.
  image: @IMAGE@
  before_script:
    # Keep the work tree clean (`deploy.require_clean_tree`).
    - echo /.gitship-ci/ >> .git/info/exclude
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
      # The redacted report the deploy after the merge compares with (`deploy --reviewed`).
      - gitship-plan.json
@ID_TOKENS@  script:
"#;

/// A job's OIDC token for AWS ([`CiSpec::aws`]): Terraform's backend assumes a role with it.
const ID_TOKENS: &str = r#"  # An OIDC token for AWS: Terraform's backend assumes @ROLE@ with it.
  id_tokens:
    AWS_ID_TOKEN:
      aud: sts.amazonaws.com
"#;

/// The job's token as a web identity (a private temporary file), which Terraform's AWS SDK
/// reads: no access keys.
const AWS_SCRIPT: &str = r#"- |
  # AWS through OIDC: the job's token as a web identity, read by Terraform's AWS SDK.
  export AWS_WEB_IDENTITY_TOKEN_FILE="$(mktemp)"
  printf '%s' "$AWS_ID_TOKEN" > "$AWS_WEB_IDENTITY_TOKEN_FILE"
  export AWS_ROLE_ARN="@ROLE@" AWS_REGION="@REGION@" AWS_ROLE_SESSION_NAME="gitship-$CI_JOB_ID"
"#;

/// The deploy of the plan reviewed on the merge request that brought the commit, when one is
/// found; else a fresh plan, said so.
const DEPLOY_SCRIPT: &str = r#"- |
  # The plan reviewed on the merge request that brought this commit: the report of the
  # `plan-@ENV@` job of its newest pipeline, read with GITLAB_TOKEN (`read_api`). gitship
  # plans again and compares; none found: it plans again, and this says so.
  reviewed="$(mktemp -d)/gitship-plan.json"
  auth="PRIVATE-TOKEN: $GITLAB_TOKEN"
  project="$CI_API_V4_URL/projects/$CI_PROJECT_ID"
  mr="" pipeline="" job=""
  mr="$(curl -fsS --header "$auth" "$project/repository/commits/$CI_COMMIT_SHA/merge_requests" \
    | jq -r '[.[] | select(.state == "merged")][0].iid // empty')" || true
  if [ -n "$mr" ]; then
    pipeline="$(curl -fsS --header "$auth" "$project/merge_requests/$mr/pipelines?per_page=1" \
      | jq -r '.[0].id // empty')" || true
  fi
  if [ -n "$pipeline" ]; then
    job="$(curl -fsS --header "$auth" "$project/pipelines/$pipeline/jobs?per_page=100" \
      | jq -r '[.[] | select(.name == "plan-@ENV@")][0].id // empty')" || true
  fi
  if [ -n "$job" ] && curl -fsS --header "$auth" -o "$reviewed" "$project/jobs/$job/artifacts/gitship-plan.json"; then
    @GITSHIP@ deploy @ENV@ --reviewed "$reviewed"
  else
    echo "no plan of this commit's merge request was reviewed: the deploy plans again"
    @GITSHIP@ deploy @ENV@
  fi
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
  # 0: no changes, 2: changes (both a success here), anything else: the plan failed. Its
  # files are written outside the work tree (an untracked file would leave the planned tree
  # unknown), then copied where the artifacts are collected.
  code=0
  if [ "$affected" = true ]; then
    out="$(mktemp -d)"
    @GITSHIP@ plan @ENV@ -o markdown --exit-code --report "$out/gitship-plan.json" > "$out/plan.md" || code=$?
    cp "$out"/* .
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
@ID_TOKENS@  script:
    - command -v docker > /dev/null || apt-get install -y -qq --no-install-recommends docker.io > /dev/null
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
@ID_TOKENS@  script:
@AWS@    - export KUBECONFIG="$@SECRET@"
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

const PREVIEW_JOB: &str = r#"preview:
  extends: .gitship
  stage: deploy
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  needs: []
  # One run per merge request at a time.
  resource_group: gitship-preview-$CI_MERGE_REQUEST_IID
  # Scope the variables of previews (@SECRET@, the registry's, Terraform's) to `preview/*`:
  # unprotected (a merge request's branch is), able to deploy previews of @BASE@ only.
  environment:
    name: preview/pr-$CI_MERGE_REQUEST_IID
    on_stop: preview-stop
    auto_stop_in: 1 week
  services:
    - docker:27-dind
  variables:
    DOCKER_HOST: tcp://docker:2375
    DOCKER_TLS_CERTDIR: ""
@ID_TOKENS@  script:
    - command -v docker > /dev/null || apt-get install -y -qq --no-install-recommends docker.io > /dev/null
@AWS@    - export KUBECONFIG="$@SECRET@"
    - |
      # Recorded in @BASE@'s cluster (no file is written); each push pushes its expiry out.
      preview="pr-$CI_MERGE_REQUEST_IID"
      report="$(mktemp)"
      @GITSHIP@ -o json env new "$preview" --from @BASE@ --ephemeral --ttl @TTL@ > "$report"
      cat "$report"
      @GITSHIP@ build @BASE@
      @GITSHIP@ deploy "$preview"
      namespace="$(jq -r '.preview.namespace' "$report")"
      expires="$(jq -r '.preview.expires_at' "$report")"
@URL@      # One note, this job's user's, updated in place on each push.
      marker='<!-- gitship-preview -->'
      payload="$(jq -n --arg body "$marker"$'\n\n'"$body" '{body: $body}')"
      auth="PRIVATE-TOKEN: $GITLAB_TOKEN"
      me="$(curl -fsS --header "$auth" "$CI_API_V4_URL/user" | jq -r .username)"
      notes="$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes"
      id="$(curl -fsS --header "$auth" "$notes?per_page=100&sort=desc" | jq -r --arg marker "$marker" --arg me "$me" \
        '[.[] | select(.author.username == $me and (.body | startswith($marker)))][0].id // empty')"
      if [ -n "$id" ]; then
        curl -fsS -X PUT --header "$auth" --header "Content-Type: application/json" \
          --data "$payload" "$notes/$id" > /dev/null
      else
        curl -fsS -X POST --header "$auth" --header "Content-Type: application/json" \
          --data "$payload" "$notes" > /dev/null
      fi
"#;

const PREVIEW_URL: &str = r#"      url="$(jq -r @JQ@ "$report")"
      body="**Preview \`$preview\`** of \`@BASE@\`: $url (namespace \`$namespace\`, expires $expires; destroyed when this merge request is merged or closed)"
"#;

const PREVIEW_NO_URL: &str = r#"      body="**Preview \`$preview\`** of \`@BASE@\` deployed: namespace \`$namespace\`, expires $expires; destroyed when this merge request is merged or closed"
"#;

const PREVIEW_STOP_JOB: &str = r#"preview-stop:
  extends: .gitship
  stage: deploy
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      when: manual
      allow_failure: true
  needs: []
  resource_group: gitship-preview-$CI_MERGE_REQUEST_IID
  # Run by GitLab when the merge request is merged or closed (and after `auto_stop_in`).
  environment:
    name: preview/pr-$CI_MERGE_REQUEST_IID
    action: stop
@ID_TOKENS@  script:
@AWS@    - export KUBECONFIG="$@SECRET@"
    - |
      # Its objects, records, namespace and Terraform state; nothing when there is none.
      preview="pr-$CI_MERGE_REQUEST_IID"
      if @GITSHIP@ -o json envs | jq -e --arg name "$preview" '.previews | map(.name) | index($name)' > /dev/null; then
        @GITSHIP@ destroy "$preview" --yes
      else
        echo "no preview $preview to destroy"
      fi
"#;

const PREVIEW_GC_JOB: &str = r#"preview-gc:
  extends: .gitship
  stage: drift
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
    - if: $CI_PIPELINE_SOURCE == "web"
  environment:
    name: preview/gc
    action: access
@ID_TOKENS@  script:
@AWS@    - export KUBECONFIG="$@SECRET@"
    - @GITSHIP@ gc --yes
"#;

impl Jobs {
    /// The preview jobs: create or update and deploy it on each merge request pipeline, with
    /// a note; `preview-stop` (its environment's `on_stop`) destroys it; `gc` on the schedule.
    fn previews(&self, preview: &PreviewSpec) -> String {
        let base = preview.base.as_str();
        let (id_tokens, aws) = self.oidc(|roles| &roles.deploy_role);
        let aws = if aws.is_empty() { aws } else { indent(&aws, 4) };
        let url = match &preview.url_jq {
            Some(program) => fill(
                PREVIEW_URL,
                &[("JQ", &shell_quote(program)), ("BASE", base)],
            ),
            None => fill(PREVIEW_NO_URL, &[("BASE", base)]),
        };
        let values = [
            ("BASE", base),
            ("TTL", preview.ttl.as_str()),
            ("ID_TOKENS", id_tokens.as_str()),
            ("AWS", aws.as_str()),
        ];
        let mut out = self.fill(&PREVIEW_JOB.replace("@URL@", &url), base, &values);
        out.push('\n');
        out.push_str(&self.fill(PREVIEW_STOP_JOB, base, &values));
        out.push('\n');
        out.push_str(&self.fill(PREVIEW_GC_JOB, base, &values));
        out
    }
}

/// The whole pipeline: the header and setup, validation, the merge request's plan, the
/// deploys of the default branch in order, the scheduled drift checks.
pub fn pipeline(spec: &CiSpec) -> String {
    let jobs = Jobs {
        gitship: gitship_command(spec),
        aws: spec.aws.clone().filter(|_| spec.terraform),
    };
    let mut out = header(
        spec,
        Platform::GitLab,
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
        let (id_tokens, aws) = jobs.oidc(|roles| &roles.plan_role);
        out.push_str(&jobs.fill(PLAN_JOB, env, &[("ID_TOKENS", &id_tokens)]));
        let script = aws + &jobs.fill(PLAN_SCRIPT, env, &[]);
        out.push_str(&indent(&script, 4));
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
        let (id_tokens, aws) = jobs.oidc(|roles| &roles.plan_role);
        let aws = if aws.is_empty() { aws } else { indent(&aws, 4) };
        let values = [("ID_TOKENS", id_tokens.as_str()), ("AWS", aws.as_str())];
        out.push_str(&jobs.fill(DRIFT_JOB, env, &values));
    }

    // The previews of merge requests.
    if let Some(preview) = &spec.preview {
        out.push('\n');
        out.push_str(&jobs.previews(preview));
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
    match &spec.image {
        Some(image) => out.push_str(&fill(BASE_IMAGE, &[("IMAGE", image)])),
        None => {
            out.push_str(&fill(BASE, &[("TF_KEY", key)]));
            if spec.terraform {
                out.push_str(TERRAFORM_INSTALL);
            }
        }
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
    /// The roles to assume through OIDC, when the jobs run Terraform with them.
    aws: Option<AwsRoles>,
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

    /// A job's `id_tokens:` and the script lines that assume `role` with it (both empty without
    /// OIDC roles).
    fn oidc(&self, role: impl Fn(&AwsRoles) -> &str) -> (String, String) {
        match &self.aws {
            Some(roles) => {
                let values = [("ROLE", role(roles)), ("REGION", roles.region.as_str())];
                (fill(ID_TOKENS, &values), fill(AWS_SCRIPT, &values))
            }
            None => (String::new(), String::new()),
        }
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
        // An agent's environment only builds here: no Terraform, no token.
        let (id_tokens, aws) = match target.agent {
            true => (String::new(), String::new()),
            false => self.oidc(|roles| &roles.deploy_role),
        };
        let values = [
            ("NEEDS", needs.as_str()),
            ("TIER", tier),
            ("ID_TOKENS", &id_tokens),
        ];
        let mut out = self.fill(DEPLOY_JOB, env, &values);
        // Compared with what the environment last deployed: a pipeline whose deploy was
        // cancelled, rejected or failed is still pending at the next push.
        // An agent's environment only builds here: since the previous push.
        let (mut script, since) = if target.agent {
            (String::new(), "$CI_COMMIT_BEFORE_SHA".to_string())
        } else {
            let kubeconfig = self.fill("- export KUBECONFIG=\"$@SECRET@\"\n", env, &[]);
            (aws + &kubeconfig, format!("deployed:{env}"))
        };
        script.push_str(&self.fill(AFFECTED, env, &[("SINCE", &since)]));
        script.push_str(&self.fill("- @GITSHIP@ build @ENV@\n", env, &[]));
        let deploy = if target.agent {
            "- echo \"images built; the gitship agent of @ENV@ applies this commit\"\n"
        } else {
            DEPLOY_SCRIPT
        };
        script.push_str(&self.fill(deploy, env, &[]));
        out.push_str(&indent(&script, 4));
        out
    }
}
