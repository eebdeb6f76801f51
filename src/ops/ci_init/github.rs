//! `.github/workflows/gitship.yml`.

use super::*;

const HEADER: &str = r#"# Written by `gitship ci init github` (gitship @VERSION@); edit freely, `--force` writes it again.
#
# - pull requests: `gitship validate`, then `gitship plan` of @PLAN@, one job and one comment
#   (updated in place, and written to the job summary) per environment; a job fails only when
#   its plan fails (exit 1), not when it shows changes (exit 2); each plan's redacted report
#   (no Secret value, no Terraform planfile) is kept as the artifact `gitship-plan-<env>-<tree>`;
# - pushes to `@BRANCH@`: `gitship build` and `gitship deploy` for @DEPLOY@, in that order,
#   one deploy of an environment at a time; the deploy finds the plan reviewed for the commit's
#   tree (a `--no-ff` or squash merge of what was reviewed has the same tree), plans again
#   and applies that plan when nothing changed since (`deploy --reviewed`), else says how it
#   differs and applies the plan made now (add `--require-reviewed` to refuse it instead);
# - every day (and on demand): `gitship drift` for @DRIFT@, failing on drift.
# Each job asks `gitship affected` what the change touches and skips an environment it cannot
# affect.
#
# Every secret is an environment secret (Settings > Environments), never a repository secret:
# a pull request runs its own copy of this file, and could print any secret the repository
# gives it. A deploy job reads the secrets of its environment (`production`): protect it with
# required reviewers and deployment branches limited to `@BRANCH@`, so no other branch gets
# them. The plan of pull requests and the drift check read those of `<env>-plan`
# (@PLAN_ENVS@): credentials that can read and dry-run but not deploy (a registry token that
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
  # The gitship the jobs install (`cargo install --locked --git`, cached per version; with
  # `ci init --image`, the version in the image).
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

/// AWS credentials through OIDC ([`CiSpec::aws`]), for Terraform's backend.
const AWS: &str = r#"- name: AWS credentials (OIDC)
  if: steps.affected.outputs.affected == 'true'
  uses: aws-actions/configure-aws-credentials@v6
  with:
    role-to-assume: @ROLE@
    aws-region: @REGION@
"#;

/// In gitship's CI image ([`CiSpec::image`]): the checkout only.
const CHECKOUT: &str = r#"- uses: actions/checkout@v5
  with:
    # The whole history: `gitship affected` compares with the base of the change.
    fetch-depth: 0
"#;

/// The job's container, with the runner's Docker daemon for the image builds.
const CONTAINER: &str = r#"  # gitship's CI image (gitship, Terraform, git, jq, gh, the docker CLI), pinned by digest.
  container:
    image: @IMAGE@
@VOLUMES@"#;

const TERRAFORM: &str = r#"- uses: hashicorp/setup-terraform@v3
  if: steps.affected.outputs.affected == 'true'
  with:
    # @TF_FROM@
    terraform_version: "@TF_VERSION@"
    terraform_wrapper: false
"#;

/// Amazon ECR with the AWS role's credentials (OIDC), no login secret.
const ECR_LOGIN: &str = r#"- name: @LOGIN_NAME@
  if: steps.affected.outputs.affected == 'true'
  uses: aws-actions/amazon-ecr-login@v2
  with:
    registries: "@ACCOUNT@"
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
@ID_TOKEN@  concurrency:
    group: gitship-plan-@ENV@-${{ github.event.pull_request.number }}
    cancel-in-progress: true
@JOB_ENV@@CONTAINER@  steps:
"#;

/// In the first plan job only: its annotations once, not once per environment.
const VALIDATE_STEP: &str = r#"- name: Validate
  run: @GITSHIP@ validate
"#;

const PLAN_STEPS: &str = r#"- name: Plan
  id: plan
  if: steps.affected.outputs.affected == 'true'
  run: |
    # 0: no changes, 2: changes (both a success here), anything else: the plan failed. Its
    # files go outside the work tree: an untracked file would leave the planned tree unknown.
    code=0
    @GITSHIP@ plan @ENV@ -o markdown --exit-code --report "$RUNNER_TEMP/gitship-plan.json" > "$RUNNER_TEMP/plan.md" || code=$?
    echo "exit-code=$code" >> "$GITHUB_OUTPUT"
    case "$code" in
      0) echo "no changes in @ENV@" ;;
      2) echo "::notice title=gitship plan @ENV@::this pull request changes @ENV@" ;;
      *) echo "::error title=gitship plan @ENV@::the plan failed (exit $code)" ;;
    esac
    # The artifact's name says the planned tree, where the deploy after the merge looks.
    tree="$(jq -r '.tree // empty' "$RUNNER_TEMP/gitship-plan.json" 2> /dev/null || true)"
    if [ -n "$tree" ]; then echo "artifact=gitship-plan-@ENV@-$tree" >> "$GITHUB_OUTPUT"; fi
- name: Keep the plan's report for the deploy
  if: steps.plan.outputs.artifact != ''
  uses: actions/upload-artifact@v6
  with:
    # The redacted report only (what `plan -o json` prints). Never a `plan --out` file: it
    # holds Secret values and Terraform's planfile, and artifacts are readable by anyone who
    # can read the repository.
    name: ${{ steps.plan.outputs.artifact }}
    path: ${{ runner.temp }}/gitship-plan.json
    overwrite: true
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
      0|2) body="$(cat "$RUNNER_TEMP/plan.md")" ;;
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
@PERMISSIONS@@JOB_ENV@@CONTAINER@  steps:
"#;

const BUILD_STEP: &str = r#"- name: Build
  if: steps.affected.outputs.affected == 'true'
  run: @GITSHIP@ build @ENV@
"#;

const DEPLOY_STEP: &str = r#"- name: Find the plan reviewed for this tree
  id: reviewed
  if: steps.affected.outputs.affected == 'true'
  env:
    GH_TOKEN: ${{ github.token }}
  run: |
    # A pull request's plan job kept its report as `gitship-plan-@ENV@-<tree>`: the newest
    # one of this commit's tree, unexpired. gitship compares it with the plan it makes now.
    name="gitship-plan-@ENV@-$(git rev-parse 'HEAD^{tree}')"
    run_id="$(gh api "repos/$GITHUB_REPOSITORY/actions/artifacts?name=$name&per_page=20" \
      --jq '[.artifacts[] | select(.expired | not)][0].workflow_run.id // empty' || true)"
    echo "name=$name" >> "$GITHUB_OUTPUT"
    echo "run-id=$run_id" >> "$GITHUB_OUTPUT"
- name: Download the reviewed plan
  if: steps.reviewed.outputs.run-id != ''
  uses: actions/download-artifact@v7
  with:
    name: ${{ steps.reviewed.outputs.name }}
    path: ${{ runner.temp }}/reviewed
    run-id: ${{ steps.reviewed.outputs.run-id }}
    github-token: ${{ github.token }}
- name: Deploy
  if: steps.affected.outputs.affected == 'true'
  env:
    REVIEWED: ${{ runner.temp }}/reviewed/gitship-plan.json
  run: |
    if [ -f "$REVIEWED" ]; then
      @GITSHIP@ deploy @ENV@ --reviewed "$REVIEWED"
    else
      echo "::notice title=gitship deploy @ENV@::no plan of this tree was reviewed: the deploy plans again"
      @GITSHIP@ deploy @ENV@
    fi
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
@PERMISSIONS@@JOB_ENV@@CONTAINER@  steps:
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

const PREVIEW_JOB: &str = r#"preview:
  name: preview of @BASE@
  if: github.event_name == 'pull_request' && github.event.action != 'closed'
  runs-on: ubuntu-latest
  # The secrets of the environment `@BASE@-preview`: credentials that can deploy previews of
  # @BASE@ (its registry, its Terraform backend, the namespaces `<namespace>-pr-*` of its
  # cluster). Any branch's pull request runs this job: they must reach nothing else.
  environment: @BASE@-preview
  permissions:
    contents: read
    pull-requests: write
@ID_TOKEN@  # One run per pull request at a time; a newer push waits for the running one.
  concurrency:
    group: gitship-preview-${{ github.event.pull_request.number }}
    cancel-in-progress: false
@JOB_ENV@@CONTAINER@  steps:
"#;

const PREVIEW_STEPS: &str = r#"- name: Create or update the preview
  env:
    PREVIEW: pr-${{ github.event.pull_request.number }}
  run: |
    # Recorded in @BASE@'s cluster (no file is written); each push pushes its expiry out.
    @GITSHIP@ -o json env new "$PREVIEW" --from @BASE@ --ephemeral --ttl @TTL@ > "$RUNNER_TEMP/preview.json"
    cat "$RUNNER_TEMP/preview.json"
- name: Build
  run: @GITSHIP@ build @BASE@
- name: Deploy the preview
  env:
    PREVIEW: pr-${{ github.event.pull_request.number }}
  run: @GITSHIP@ deploy "$PREVIEW"
- name: Comment the preview
  env:
    GH_TOKEN: ${{ github.token }}
    GH_REPO: ${{ github.repository }}
    PR_NUMBER: ${{ github.event.pull_request.number }}
  run: |
    # One comment, this workflow's last, edited in place on each push.
    namespace="$(jq -r '.preview.namespace' "$RUNNER_TEMP/preview.json")"
    expires="$(jq -r '.preview.expires_at' "$RUNNER_TEMP/preview.json")"
@URL@    gh pr comment "$PR_NUMBER" --edit-last --create-if-none --body "$body"
"#;

const PREVIEW_URL: &str = r#"    url="$(jq -r @JQ@ "$RUNNER_TEMP/preview.json")"
    body="**Preview \`pr-$PR_NUMBER\`** of \`@BASE@\`: $url (namespace \`$namespace\`, expires $expires; destroyed when this pull request closes)"
"#;

const PREVIEW_NO_URL: &str = r#"    body="**Preview \`pr-$PR_NUMBER\`** of \`@BASE@\` deployed: namespace \`$namespace\`, expires $expires; destroyed when this pull request closes"
"#;

const PREVIEW_CLOSE_JOB: &str = r#"preview-close:
  name: destroy the preview
  if: github.event_name == 'pull_request' && github.event.action == 'closed'
  runs-on: ubuntu-latest
  environment: @BASE@-preview
@PERMISSIONS@  concurrency:
    group: gitship-preview-${{ github.event.pull_request.number }}
    cancel-in-progress: false
@JOB_ENV@@CONTAINER@  steps:
"#;

const PREVIEW_CLOSE_STEP: &str = r#"- name: Destroy the preview
  env:
    PREVIEW: pr-${{ github.event.pull_request.number }}
  run: |
    # Its objects, records, namespace and Terraform state; nothing when there is none.
    if @GITSHIP@ -o json envs | jq -e --arg name "$PREVIEW" '.previews | map(.name) | index($name)' > /dev/null; then
      @GITSHIP@ destroy "$PREVIEW" --yes
    else
      echo "no preview $PREVIEW to destroy"
    fi
"#;

const PREVIEW_GC_JOB: &str = r#"preview-gc:
  name: destroy the expired previews
  if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'
  runs-on: ubuntu-latest
  environment: @BASE@-preview
@PERMISSIONS@@JOB_ENV@@CONTAINER@  steps:
"#;

const PREVIEW_GC_STEP: &str = r#"- name: Destroy the expired previews
  run: @GITSHIP@ gc --yes
"#;

/// The preview jobs of `preview`: create or update and deploy on each push of a pull request,
/// comment it, destroy it when the pull request closes, `gc` on the schedule.
fn preview_jobs(spec: &CiSpec, preview: &PreviewSpec, gitship: &str) -> String {
    let base = preview.base.as_str();
    let unconditional =
        |step: String| step.replace("  if: steps.affected.outputs.affected == 'true'\n", "");
    // The steps every preview job needs: Terraform, and the base's cluster.
    let mut common = checkout(spec);
    if spec.terraform {
        common.push_str(&unconditional(aws(spec, |roles| &roles.deploy_role)));
        common.push_str(&unconditional(terraform(spec)));
    }
    common.push_str(&unconditional(kubeconfig(base)));
    let values = [("BASE", base), ("GITSHIP", gitship), ("TTL", &preview.ttl)];
    let url = match &preview.url_jq {
        Some(program) => fill(
            PREVIEW_URL,
            &[("JQ", &shell_quote(program)), ("BASE", base)],
        ),
        None => fill(PREVIEW_NO_URL, &[("BASE", base)]),
    };
    let mut steps = common.clone();
    for registry in &spec.registries {
        steps.push_str(&unconditional(login_step(spec, registry)));
    }
    steps.push_str(&fill(&PREVIEW_STEPS.replace("@URL@", &url), &values));
    let id_token = if oidc(spec, true) {
        "    id-token: write\n"
    } else {
        ""
    };
    let job = |template: &str| {
        fill(
            template,
            &[
                ("BASE", base),
                ("ID_TOKEN", id_token),
                ("PERMISSIONS", permissions(spec, true)),
                ("JOB_ENV", job_env(spec, true)),
                ("CONTAINER", &container(spec, template == PREVIEW_JOB)),
            ],
        )
    };
    let mut out = indent(&job(PREVIEW_JOB), 2);
    out.push_str(&indent(&steps, 6));
    out.push('\n');
    out.push_str(&indent(&job(PREVIEW_CLOSE_JOB), 2));
    out.push_str(&indent(
        &(common.clone() + &fill(PREVIEW_CLOSE_STEP, &values)),
        6,
    ));
    out.push('\n');
    out.push_str(&indent(&job(PREVIEW_GC_JOB), 2));
    out.push_str(&indent(&(common + &fill(PREVIEW_GC_STEP, &values)), 6));
    out
}

/// The whole workflow.
pub fn workflow(spec: &CiSpec) -> String {
    let gitship = gitship_command(spec);
    let mut out = header(
        spec,
        Platform::GitHub,
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
            &fill(
                PLAN_JOB,
                &[
                    ("ENV", env),
                    ("JOB_ENV", job_env(spec, true)),
                    ("CONTAINER", &container(spec, false)),
                    (
                        "ID_TOKEN",
                        if oidc(spec, true) {
                            "    id-token: write\n"
                        } else {
                            ""
                        },
                    ),
                ],
            ),
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

    // The previews: their pull requests' closing is an event too.
    if let Some(preview) = &spec.preview {
        out.push('\n');
        out.push_str(&preview_jobs(spec, preview, &gitship));
        out = out
            .replace(
                "on:\n  pull_request:\n",
                "on:\n  pull_request:\n    types: [opened, synchronize, reopened, closed]\n",
            )
            .replace(
                "  if: github.event_name == 'pull_request'\n",
                "  if: github.event_name == 'pull_request' && github.event.action != 'closed'\n",
            );
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
                ("PERMISSIONS", &deploy_permissions(spec, target)),
                ("CONTAINER", &container(spec, true)),
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
        &fill(
            DRIFT_JOB,
            &[
                ("ENV", env),
                ("JOB_ENV", job_env(spec, true)),
                (
                    "PERMISSIONS",
                    // It reads no registry: a token for its Terraform only.
                    if spec.terraform {
                        permissions(spec, true)
                    } else {
                        ""
                    },
                ),
                ("CONTAINER", &container(spec, false)),
            ],
        ),
        2,
    );
    let unconditional =
        |step: String| step.replace("  if: steps.affected.outputs.affected == 'true'\n", "");
    let mut steps = checkout(spec);
    if spec.terraform {
        steps.push_str(&unconditional(aws(spec, |roles| &roles.plan_role)));
        steps.push_str(&unconditional(terraform(spec)));
    }
    steps.push_str(&unconditional(kubeconfig(env)));
    steps.push_str(&fill(DRIFT_STEP, &[("GITSHIP", gitship), ("ENV", env)]));
    out.push_str(&indent(&steps, 6));
    out
}

/// The checkout, and gitship installed (cached) unless the jobs run in gitship's image.
fn checkout(spec: &CiSpec) -> String {
    match spec.image {
        Some(_) => CHECKOUT.to_string(),
        None => SETUP.to_string(),
    }
}

/// A job's `container:` in gitship's image (nothing without one); `docker`: the runner's Docker
/// daemon is mounted, for the jobs that build images.
fn container(spec: &CiSpec, docker: bool) -> String {
    let Some(image) = &spec.image else {
        return String::new();
    };
    let volumes = if docker {
        "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n"
    } else {
        ""
    };
    fill(CONTAINER, &[("IMAGE", image), ("VOLUMES", volumes)])
}

/// The step that installs the pinned Terraform (none in gitship's image, which has it).
fn terraform(spec: &CiSpec) -> String {
    if spec.image.is_some() {
        return String::new();
    }
    let (version, from) = terraform_pin(spec);
    fill(TERRAFORM, &[("TF_VERSION", version), ("TF_FROM", from)])
}

/// A job's `env:` block: the Terraform backend's access keys when the job runs Terraform (none
/// with OIDC roles).
fn job_env(spec: &CiSpec, terraform: bool) -> &'static str {
    if spec.terraform && terraform && spec.aws.is_none() {
        TERRAFORM_ENV
    } else {
        ""
    }
}

/// Whether the job takes an OIDC token (`id-token: write`): for its Terraform, or to log in to
/// Amazon ECR.
fn oidc(spec: &CiSpec, terraform: bool) -> bool {
    spec.aws.is_some() && ((spec.terraform && terraform) || ecr_login(spec))
}

/// Whether the jobs log in to Amazon ECR with the AWS role (OIDC): a registry is ECR's.
fn ecr_login(spec: &CiSpec) -> bool {
    spec.aws.is_some() && spec.registries.iter().any(|r| ecr_account(r).is_some())
}

/// A deploy or drift job's own `permissions:` when it assumes an AWS role (else the workflow's).
fn permissions(spec: &CiSpec, terraform: bool) -> &'static str {
    if oidc(spec, terraform) {
        "  permissions:\n    contents: read\n    id-token: write\n"
    } else {
        ""
    }
}

/// A deploy job's own `permissions:`: the reviewed plan's artifact is read through the API
/// (`actions: read`), an AWS role assumed with an OIDC token (`id-token: write`); an agent's
/// environment only builds.
fn deploy_permissions(spec: &CiSpec, target: &DeployTarget) -> String {
    if target.agent {
        return permissions(spec, false).to_string();
    }
    let mut out = "  permissions:\n    contents: read\n    actions: read\n".to_string();
    if oidc(spec, true) {
        out.push_str("    id-token: write\n");
    }
    out
}

/// The step that assumes `role` (the deploy or the plan role), when OIDC is on.
fn aws(spec: &CiSpec, role: impl Fn(&AwsRoles) -> &str) -> String {
    match &spec.aws {
        Some(roles) => fill(
            AWS,
            &[("ROLE", role(roles)), ("REGION", roles.region.as_str())],
        ),
        _ => String::new(),
    }
}

fn kubeconfig(env: &str) -> String {
    fill(
        KUBECONFIG,
        &[("ENV", env), ("SECRET", &kubeconfig_secret(env))],
    )
}

/// The login to `registry`: Amazon ECR with the AWS role when OIDC is on, else the secrets.
fn login_step(spec: &CiSpec, registry: &str) -> String {
    match ecr_account(registry).filter(|_| spec.aws.is_some()) {
        Some(account) => fill(
            ECR_LOGIN,
            &[
                (
                    "LOGIN_NAME",
                    &yaml_quote(&format!("Log in to {registry} (OIDC)")),
                ),
                ("ACCOUNT", account),
            ],
        ),
        None => fill(
            LOGIN,
            &[
                ("LOGIN_NAME", &yaml_quote(&format!("Log in to {registry}"))),
                ("REGISTRY", &yaml_quote(registry)),
            ],
        ),
    }
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
    let mut steps = checkout(spec);
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
    if (spec.terraform && cluster) || (login && ecr_login(spec)) {
        // A deploy job (it reads what its environment deployed) assumes the deploy role.
        if reads_cluster {
            steps.push_str(&aws(spec, |roles| &roles.deploy_role));
        } else {
            steps.push_str(&aws(spec, |roles| &roles.plan_role));
        }
    }
    if spec.terraform && cluster {
        steps.push_str(&terraform(spec));
    }
    if login {
        for registry in &spec.registries {
            steps.push_str(&login_step(spec, registry));
        }
    }
    if cluster && !reads_cluster {
        steps.push_str(&kubeconfig(env));
    }
    steps
}
