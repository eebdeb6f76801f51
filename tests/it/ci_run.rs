//! The generated CI files, run: each job's steps, in order, parsed from the YAML `ci init`
//! wrote, with bash, against a cluster (kubesim, or the real server) and a local registry, with
//! the platform's variables set and the test's own gitship on PATH (as the job's install step
//! would put it there).
//!
//! What a test cannot have is emulated, and only that:
//! - `actions/checkout` (and GitLab's clone): a clone of the repository at the event's commit
//!   (a pull request's is its merge into the base, as GitHub's `refs/pull/N/merge`);
//! - `actions/cache` of gitship: a hit (gitship is on PATH), so the install step is skipped;
//!   GitLab's `cargo install` is skipped the same way (`command -v gitship`);
//! - `docker/login-action`: nothing (the local registry takes anyone);
//! - `actions/upload-artifact` / `actions/download-artifact`: copies to and from a directory;
//! - `gh`: a script on PATH answering the artifact lookup from that directory and recording the
//!   comments it is asked to write;
//! - GitLab's API (`$CI_API_V4_URL`): a `curl` first on PATH (any other URL goes to the real
//!   one) answering from a directory the harness fills as jobs run: `/user`, a commit's merge
//!   requests, a merge request's pipelines (newest first), a pipeline's jobs, a job's artifact
//!   files (the paths of its `artifacts:`, kept after it ran) and a merge request's notes
//!   (listed a page at a time, created, edited by their author), each request refused unless
//!   its `PRIVATE-TOKEN` is the job's `GITLAB_TOKEN`;
//! - `apt-get`: does nothing (the tools are installed); GitLab's docker-in-docker service is the
//!   machine's own builder (the job's `DOCKER_*` variables are not set);
//! - secrets: given per platform environment, so a job sees only those of its `environment:`.
//!
//! `${{ }}` expressions and `if:` conditions are evaluated for the contexts the generated files
//! use; one the harness does not know fails the test, so a new one must be taught here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::cluster::TestCluster;
use crate::support::registry::TestRegistry;
use crate::support::repo::Repo;

/// The fake `gh`: `gh api URL [--jq FILTER] ...`. An artifact named NAME exists when
/// `$FAKE_ARTIFACTS/NAME` does; comments are answered with none, writes recorded.
const FAKE_GH: &str = r#"#!/bin/bash
printf '%s\n' "$*" >> "$FAKE_GH_LOG"
shift
url="" filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jq) filter="$2"; shift 2 ;;
    --method|-f|-F) shift 2 ;;
    --paginate) shift ;;
    *) [ -n "$url" ] || url="$1"; shift ;;
  esac
done
case "$url" in
  *actions/artifacts\?name=*)
    name="${url#*name=}"; name="${name%%&*}"
    if [ -d "$FAKE_ARTIFACTS/$name" ]; then
      json="{\"artifacts\":[{\"name\":\"$name\",\"expired\":false,\"workflow_run\":{\"id\":$(cat "$FAKE_ARTIFACTS/$name.run")}}]}"
    else
      json='{"artifacts":[]}'
    fi ;;
  graphql) json='{}' ;;
  *) json='[]' ;;
esac
if [ -n "$filter" ]; then printf '%s' "$json" | jq -r "$filter"; else printf '%s\n' "$json"; fi
"#;

/// The fake GitLab API: `curl [-fsS] [-X METHOD] [--header H]... [-o FILE] [--data JSON] URL`.
/// A URL under `$FAKE_GITLAB_API` is answered from `$FAKE_GITLAB` (files written by
/// [`Runner::gitlab_job`] and [`Runner::gitlab_merged`]; notes by the jobs themselves), every
/// request logged there as `METHOD PATH`; an error is curl's `-f` exit 22. Notes are
/// `mr-IID-notes.json`, a JSON list the test reads.
const FAKE_CURL: &str = r#"#!/bin/bash
# The fake GitLab API (see FAKE_CURL in tests/it/ci_run.rs).
args=("$@")
url="" method="" out="" data="" token=""
while [ $# -gt 0 ]; do
  case "$1" in
    -X|--request) method="$2"; shift 2 ;;
    -H|--header) case "$2" in "PRIVATE-TOKEN: "*) token="${2#PRIVATE-TOKEN: }" ;; esac; shift 2 ;;
    -o|--output) out="$2"; shift 2 ;;
    -d|--data) data="$2"; shift 2 ;;
    -*) shift ;;
    *) url="$1"; shift ;;
  esac
done
case "$url" in
  "$FAKE_GITLAB_API"/*) ;;
  *) PATH="${PATH#"$(dirname "$0"):"}" exec curl "${args[@]}" ;;
esac
[ -n "$method" ] || { [ -n "$data" ] && method=POST || method=GET; }
state="$FAKE_GITLAB"
path="${url#"$FAKE_GITLAB_API"}" query=""
case "$path" in *\?*) query="${path#*\?}"; path="${path%%\?*}" ;; esac
printf '%s %s\n' "$method" "$path" >> "$state/requests.log"
fail() { echo "curl: (22) The requested URL returned error: $1" >&2; exit 22; }
[ "$token" = "$(cat "$state/token")" ] || fail 401
param() {
  local pairs pair
  IFS='&' read -ra pairs <<< "$query"
  for pair in "${pairs[@]}"; do
    [ "${pair%%=*}" = "$1" ] && { printf '%s' "${pair#*=}"; return; }
  done
  printf '%s' "$2"
}
respond() { if [ -n "$out" ]; then cat > "$out"; else cat; echo; fi; }
list() { if [ -f "$1" ]; then cat "$1"; else echo '[]'; fi; }
page() {
  jq -c --argjson page "$(param page 1)" --argjson per "$(param per_page 20)" \
    '.[($page - 1) * $per:$page * $per]'
}
notes_of() { printf '%s/mr-%s-notes.json' "$state" "$1"; }
case "$method $path" in
  "GET /user") echo '{"id": 7, "username": "gitship-bot"}' | respond ;;
  "GET /projects/$FAKE_GITLAB_PROJECT/repository/commits/"*/merge_requests)
    sha="${path#*/commits/}"; list "$state/commit-${sha%%/*}-mrs.json" | page | respond ;;
  "GET /projects/$FAKE_GITLAB_PROJECT/merge_requests/"*/pipelines)
    iid="${path#*/merge_requests/}"; list "$state/mr-${iid%%/*}-pipelines.json" | page | respond ;;
  "GET /projects/$FAKE_GITLAB_PROJECT/pipelines/"*/jobs)
    id="${path#*/pipelines/}"; list "$state/pipeline-${id%%/*}-jobs.json" | page | respond ;;
  "GET /projects/$FAKE_GITLAB_PROJECT/jobs/"*/artifacts/*)
    rest="${path#*/jobs/}"; file="$state/job-${rest%%/*}-artifacts/${rest#*/artifacts/}"
    [ -f "$file" ] || fail 404
    respond < "$file" ;;
  "GET /projects/$FAKE_GITLAB_PROJECT/merge_requests/"*/notes)
    iid="${path#*/merge_requests/}"; iid="${iid%%/*}"
    order="$(param sort desc)"
    list "$(notes_of "$iid")" | jq -c --arg order "$order" \
      'sort_by(.id) | if $order == "asc" then . else reverse end' | page | respond ;;
  "POST /projects/$FAKE_GITLAB_PROJECT/merge_requests/"*/notes)
    iid="${path#*/merge_requests/}"; iid="${iid%%/*}"; notes="$(notes_of "$iid")"
    id=$(( $(list "$notes" | jq '(map(.id) | max) // 0') + 1 ))
    note="$(printf '%s' "$data" | jq -c --argjson id "$id" \
      '{id: $id, body: .body, author: {username: "gitship-bot"}}')" || fail 400
    list "$notes" | jq -c --argjson note "$note" '. + [$note]' > "$notes.new"
    mv "$notes.new" "$notes"
    printf '%s' "$note" | respond ;;
  "PUT /projects/$FAKE_GITLAB_PROJECT/merge_requests/"*/notes/*)
    iid="${path#*/merge_requests/}"; iid="${iid%%/*}"; notes="$(notes_of "$iid")"
    id="${path##*/}"
    author="$(list "$notes" | jq -r --argjson id "$id" '.[] | select(.id == $id) | .author.username')"
    [ -n "$author" ] || fail 404
    [ "$author" = gitship-bot ] || fail 403
    body="$(printf '%s' "$data" | jq -r .body)" || fail 400
    list "$notes" | jq -c --argjson id "$id" --arg body "$body" \
      'map(if .id == $id then .body = $body else . end)' > "$notes.new"
    mv "$notes.new" "$notes"
    list "$notes" | jq -c --argjson id "$id" '.[] | select(.id == $id)' | respond ;;
  *) fail 404 ;;
esac
"#;

/// Where the fake GitLab API is, and the token it takes (the jobs' `GITLAB_TOKEN`).
const GITLAB_API: &str = "https://gitlab.example/api/v4";
const GITLAB_TOKEN: &str = "glpat-fake-ci-token";

/// The machine the jobs run on: the repository ("the platform's copy"), the artifact store,
/// the fake tools, the secrets per environment.
struct Runner {
    dir: tempfile::TempDir,
    origin: PathBuf,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    runs: std::cell::Cell<u32>,
}

/// One job's run: its log and whether it succeeded.
struct JobRun {
    log: String,
    success: bool,
}

/// A GitHub event.
struct Event<'a> {
    name: &'a str,
    /// `github.event.action` (`closed`, ...; empty for a push).
    action: &'a str,
    /// The commit checked out.
    sha: String,
    /// `github.event.pull_request.base.sha` or `github.event.before`.
    base: String,
}

impl Runner {
    fn new(origin: &Path) -> Runner {
        let dir = tempfile::tempdir().expect("runner");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(dir.path().join("artifacts")).expect("artifacts");
        let script = |name: &str, text: &str| {
            let path = bin.join(name);
            std::fs::write(&path, text).expect("script");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        script("gh", FAKE_GH);
        script("curl", FAKE_CURL);
        let gitlab = dir.path().join("gitlab");
        std::fs::create_dir_all(&gitlab).expect("gitlab");
        std::fs::write(gitlab.join("token"), GITLAB_TOKEN).expect("token");
        script("apt-get", "#!/bin/sh\nexit 0\n");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gitship"), bin.join("gitship"))
            .expect("gitship on PATH");
        Runner {
            dir,
            origin: origin.to_path_buf(),
            secrets: BTreeMap::new(),
            runs: std::cell::Cell::new(0),
        }
    }

    fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// The fake GitLab API's state (see [`FAKE_CURL`]).
    fn gitlab(&self) -> PathBuf {
        self.dir.path().join("gitlab")
    }

    /// GitLab: `sha` is the merge commit of merge request `iid`, merged.
    fn gitlab_merged(&self, sha: &str, iid: u32) {
        let requests = serde_json::json!([{ "iid": iid, "state": "merged" }]);
        let file = self.gitlab().join(format!("commit-{sha}-mrs.json"));
        std::fs::write(file, requests.to_string()).expect("merge request");
    }

    /// GitLab: the notes of merge request `iid`, oldest first.
    fn gitlab_notes(&self, iid: u32) -> Vec<serde_json::Value> {
        let file = self.gitlab().join(format!("mr-{iid}-notes.json"));
        match std::fs::read_to_string(file) {
            Ok(text) => serde_json::from_str(&text).expect("notes"),
            Err(_) => Vec::new(),
        }
    }

    /// GitLab: after job `id` (`name`) ran in pipeline `pipeline` (of merge request `iid`, if
    /// any): the pipeline lists it, the merge request lists the pipeline first, its artifacts'
    /// paths (those that exist) are kept.
    fn gitlab_record(&self, job: &Yaml, id: u32, name: &str, record: &GitLabRecord) {
        let state = self.gitlab();
        let append = |file: PathBuf, item: serde_json::Value, first: bool| {
            let mut items: Vec<serde_json::Value> = std::fs::read_to_string(&file)
                .map(|text| serde_json::from_str(&text).expect("list"))
                .unwrap_or_default();
            items.retain(|i| i["id"] != item["id"]);
            match first {
                true => items.insert(0, item),
                false => items.push(item),
            }
            std::fs::write(&file, serde_json::Value::from(items).to_string()).expect("list");
        };
        let status = if record.success { "success" } else { "failed" };
        append(
            state.join(format!("pipeline-{}-jobs.json", record.pipeline)),
            serde_json::json!({ "id": id, "name": name, "status": status }),
            false,
        );
        if let Some(iid) = &record.merge_request {
            append(
                state.join(format!("mr-{iid}-pipelines.json")),
                serde_json::json!({ "id": record.pipeline.parse::<u64>().expect("a pipeline id") }),
                true,
            );
        }
        let artifacts = &job["artifacts"];
        let when = text(&artifacts["when"]);
        if !(record.success || when == "always") {
            return;
        }
        let kept = state.join(format!("job-{id}-artifacts"));
        for path in artifacts["paths"].as_vec().cloned().unwrap_or_default() {
            let path = text(&path);
            let source = record.work.join(&path);
            if source.is_file() {
                let target = kept.join(&path);
                std::fs::create_dir_all(target.parent().expect("a parent")).expect("artifacts");
                std::fs::copy(&source, &target).expect("artifact");
            }
        }
    }

    /// A fresh directory for one job: its work tree (a clone at `sha`), temp and home.
    fn job_dirs(&self, sha: &str) -> (PathBuf, PathBuf, PathBuf) {
        let run = self.runs.get() + 1;
        self.runs.set(run);
        let root = self.dir.path().join(format!("job-{run}"));
        let (work, temp, home) = (root.join("work"), root.join("temp"), root.join("home"));
        std::fs::create_dir_all(&temp).expect("temp");
        std::fs::create_dir_all(&home).expect("home");
        git(
            self.dir.path(),
            &[
                "clone",
                "-q",
                &self.origin.to_string_lossy(),
                &work.to_string_lossy(),
            ],
        );
        git(&work, &["checkout", "-q", "--detach", sha]);
        (work, temp, home)
    }

    /// The environment every job's commands get: PATH with the fakes and gitship first.
    fn base_env(&self, home: &Path) -> BTreeMap<String, String> {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env = BTreeMap::from([
            ("PATH".to_string(), path),
            ("HOME".to_string(), home.display().to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
            ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
            (
                "FAKE_ARTIFACTS".to_string(),
                self.artifacts().display().to_string(),
            ),
            (
                "FAKE_GH_LOG".to_string(),
                self.dir.path().join("gh.log").display().to_string(),
            ),
            (
                "FAKE_GITLAB".to_string(),
                self.gitlab().display().to_string(),
            ),
            ("FAKE_GITLAB_API".to_string(), GITLAB_API.to_string()),
            ("FAKE_GITLAB_PROJECT".to_string(), "1".to_string()),
        ]);
        for key in [
            "LANG",
            "TMPDIR",
            "DOCKER_HOST",
            "XDG_RUNTIME_DIR",
            "GITSHIP_REQUIRE_TOOLS",
        ] {
            if let Ok(value) = std::env::var(key) {
                env.insert(key.to_string(), value);
            }
        }
        env
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.email=ci@example.com",
            "-c",
            "user.name=ci",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn text(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null | Yaml::BadValue => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn map(yaml: &Yaml) -> Vec<(String, String)> {
    match yaml.as_hash() {
        Some(hash) => hash.iter().map(|(k, v)| (text(k), text(v))).collect(),
        None => Vec::new(),
    }
}

/// Run `script` with bash in `dir` under `env`; its output, and whether it exited 0.
fn bash(
    script: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    flags: &[&str],
) -> (String, bool) {
    let output = Command::new("bash")
        .args(flags)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .output()
        .expect("bash");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (log, output.status.success())
}

/// `key=value` lines of a `$GITHUB_OUTPUT` or `$GITHUB_ENV` file.
fn key_values(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What GitHub expressions read in one job.
struct Context<'a> {
    event: &'a Event<'a>,
    run_id: u32,
    temp: PathBuf,
    secrets: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    workflow_env: BTreeMap<String, String>,
}

impl Context<'_> {
    /// The value of a context path or a literal.
    fn value(&self, operand: &str) -> String {
        let operand = operand.trim();
        if let Some(literal) = operand
            .strip_prefix('\'')
            .and_then(|o| o.strip_suffix('\''))
        {
            return literal.to_string();
        }
        let parts: Vec<&str> = operand.split('.').collect();
        match parts.as_slice() {
            ["github", "event_name"] => self.event.name.to_string(),
            ["github", "event", "action"] => self.event.action.to_string(),
            ["github", "event", "pull_request", "base", "sha"] | ["github", "event", "before"] => {
                self.event.base.clone()
            }
            ["github", "event", "pull_request", "number"] => "1".into(),
            ["github", "token"] => "fake-token".into(),
            ["github", "server_url"] => "https://github.example".into(),
            ["github", "repository"] => "acme/web".into(),
            ["github", "run_id"] => self.run_id.to_string(),
            ["runner", "temp"] => self.temp.display().to_string(),
            ["runner", "os"] => "Linux".into(),
            ["runner", "arch"] => "X64".into(),
            ["secrets", name] => self.secrets.get(*name).cloned().unwrap_or_default(),
            ["env", name] => self.workflow_env.get(*name).cloned().unwrap_or_default(),
            ["steps", id, "outputs", name] => self
                .steps
                .get(*id)
                .and_then(|outputs| outputs.get(*name))
                .cloned()
                .unwrap_or_default(),
            _ => panic!("the harness does not know the expression `{operand}`: teach it"),
        }
    }

    /// `text` with every `${{ expression }}` replaced by its value.
    fn interpolate(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            let end = rest[start..].find("}}").expect("closed expression") + start;
            out.push_str(&rest[..start]);
            out.push_str(&self.value(&rest[start + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// An `if:` condition (`||` of `&&` of comparisons, `!cancelled()`, `always()`).
    fn condition(&self, condition: &str, failed: bool) -> bool {
        let condition = condition.trim();
        let condition = condition
            .strip_prefix("${{")
            .and_then(|c| c.strip_suffix("}}"))
            .unwrap_or(condition);
        let status_function = ["!cancelled()", "always()", "failure()"]
            .iter()
            .any(|f| condition.contains(f));
        if failed && !status_function {
            return false;
        }
        condition.split("||").any(|any| {
            any.split("&&").all(|atom| {
                let atom = atom.trim();
                match atom {
                    "!cancelled()" | "always()" => true,
                    "success()" => !failed,
                    "failure()" => failed,
                    _ => {
                        if let Some((a, b)) = atom.split_once("!=") {
                            self.value(a) != self.value(b)
                        } else if let Some((a, b)) = atom.split_once("==") {
                            self.value(a) == self.value(b)
                        } else {
                            !self.value(atom).is_empty()
                        }
                    }
                }
            })
        })
    }
}

impl Runner {
    /// Run GitHub job `name` of `workflow` for `event`: its steps in order, as a runner would.
    fn github_job(&self, workflow: &Yaml, name: &str, event: &Event) -> JobRun {
        let job = &workflow["jobs"][name];
        assert!(!job.is_badvalue(), "no job `{name}`");
        let (work, temp, home) = self.job_dirs(&event.sha);
        let environment = text(&job["environment"]);
        let mut context = Context {
            event,
            run_id: 1000 + self.runs.get(),
            temp: temp.clone(),
            secrets: self.secrets.get(&environment).cloned().unwrap_or_default(),
            steps: BTreeMap::new(),
            workflow_env: map(&workflow["env"]).into_iter().collect(),
        };
        let mut log = format!("=== job {name} ({})\n", event.name);
        if !context.condition(&text(&job["if"]), false) {
            log.push_str("skipped: its `if:` is false\n");
            return JobRun { log, success: true };
        }
        let mut env = self.base_env(&home);
        env.extend(context.workflow_env.clone());
        for (key, value) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "ann"),
            ("GITHUB_REPOSITORY", "acme/web"),
            ("GITHUB_SERVER_URL", "https://github.example"),
        ] {
            env.insert(key.into(), value.into());
        }
        env.insert("GITHUB_RUN_ID".into(), context.run_id.to_string());
        env.insert("RUNNER_TEMP".into(), temp.display().to_string());
        env.insert("GITHUB_WORKSPACE".into(), work.display().to_string());
        env.insert(
            "GITHUB_STEP_SUMMARY".into(),
            temp.join("summary.md").display().to_string(),
        );
        env.insert(
            "GITHUB_ENV".into(),
            temp.join("github_env").display().to_string(),
        );
        for (key, value) in map(&job["env"]) {
            env.insert(key, context.interpolate(&value));
        }
        let mut failed = false;
        let steps = job["steps"].as_vec().expect("steps");
        for (index, step) in steps.iter().enumerate() {
            let title = match (&step["name"], &step["uses"]) {
                (Yaml::String(n), _) | (_, Yaml::String(n)) => n.clone(),
                _ => format!("step {index}"),
            };
            let condition = match &step["if"] {
                Yaml::BadValue => "success()".to_string(),
                other => text(other),
            };
            if !context.condition(&condition, failed) {
                log.push_str(&format!("--- {title}: skipped\n"));
                continue;
            }
            log.push_str(&format!("--- {title}\n"));
            let id = text(&step["id"]);
            let (output, ok, outputs) = match &step["uses"] {
                Yaml::String(uses) => self.emulate(uses, &step["with"], &context),
                _ => {
                    let mut step_env = env.clone();
                    for (key, value) in key_values(&temp.join("github_env")) {
                        step_env.insert(key, value);
                    }
                    for (key, value) in map(&step["env"]) {
                        step_env.insert(key, context.interpolate(&value));
                    }
                    let outputs_file = temp.join(format!("output-{index}"));
                    step_env.insert("GITHUB_OUTPUT".into(), outputs_file.display().to_string());
                    let script = context.interpolate(&text(&step["run"]));
                    let flags = ["--noprofile", "--norc", "-eo", "pipefail"];
                    let (output, ok) = bash(&script, &work, &step_env, &flags);
                    (output, ok, key_values(&outputs_file))
                }
            };
            log.push_str(&output);
            if !id.is_empty() {
                context.steps.insert(id, outputs.into_iter().collect());
            }
            if !ok {
                log.push_str(&format!("--- {title}: FAILED\n"));
                failed = true;
            }
        }
        JobRun {
            log,
            success: !failed,
        }
    }

    /// A `uses:` step the harness cannot run, emulated (see the module's comment).
    fn emulate(
        &self,
        uses: &str,
        with: &Yaml,
        context: &Context,
    ) -> (String, bool, Vec<(String, String)>) {
        let with: BTreeMap<String, String> = map(with)
            .into_iter()
            .map(|(k, v)| (k, context.interpolate(&v)))
            .collect();
        let action = uses.split('@').next().unwrap_or(uses);
        match action {
            "actions/checkout" => (
                "emulated: cloned at the event's commit\n".into(),
                true,
                vec![],
            ),
            "actions/cache" => (
                "emulated: a cache hit (the test's gitship is on PATH)\n".into(),
                true,
                vec![("cache-hit".into(), "true".into())],
            ),
            "docker/login-action" => (
                "emulated: the local registry takes anyone\n".into(),
                true,
                vec![],
            ),
            "actions/upload-artifact" => {
                let name = &with["name"];
                let source = PathBuf::from(&with["path"]);
                let target = self.artifacts().join(name);
                std::fs::create_dir_all(&target).expect("artifact");
                let file = source.file_name().expect("a file");
                std::fs::copy(&source, target.join(file)).expect("upload");
                std::fs::write(
                    self.artifacts().join(format!("{name}.run")),
                    context.run_id.to_string(),
                )
                .expect("run id");
                (format!("emulated: uploaded {name}\n"), true, vec![])
            }
            "actions/download-artifact" => {
                let name = &with["name"];
                assert!(
                    !with["run-id"].is_empty() && !with["github-token"].is_empty(),
                    "{with:?}"
                );
                let target = PathBuf::from(&with["path"]);
                std::fs::create_dir_all(&target).expect("download dir");
                for entry in std::fs::read_dir(self.artifacts().join(name)).expect("artifact") {
                    let entry = entry.expect("entry");
                    std::fs::copy(entry.path(), target.join(entry.file_name())).expect("download");
                }
                (format!("emulated: downloaded {name}\n"), true, vec![])
            }
            other => panic!("the harness cannot emulate `{other}`: teach it"),
        }
    }

    /// Run GitLab job `name` of `pipeline`: `before_script` and `script` in one shell, with
    /// `variables` (the predefined ones) and the variables of its environment.
    fn gitlab_job(
        &self,
        pipeline: &Yaml,
        name: &str,
        sha: &str,
        variables: &[(&str, &str)],
    ) -> JobRun {
        let job = &pipeline[name];
        assert!(!job.is_badvalue(), "no job `{name}`");
        let none = Yaml::BadValue;
        let base = match &job["extends"] {
            Yaml::String(parent) => &pipeline[parent.as_str()],
            _ => &none,
        };
        let (work, temp, home) = self.job_dirs(sha);
        let id = 2000 + self.runs.get();
        let mut env = self.base_env(&home);
        env.extend(map(&pipeline["variables"]));
        for (key, value) in [
            ("CI_API_V4_URL", GITLAB_API.to_string()),
            ("CI_PROJECT_ID", "1".to_string()),
            ("CI_JOB_ID", id.to_string()),
            (
                "CI_JOB_URL",
                format!("https://gitlab.example/acme/web/-/jobs/{id}"),
            ),
        ] {
            env.insert(key.into(), value);
        }
        // The docker-in-docker service is the machine's own builder: its address is not set.
        let job_variables = map(&job["variables"]).into_iter();
        env.extend(job_variables.filter(|(key, _)| !key.starts_with("DOCKER_")));
        for (key, value) in variables {
            env.insert(key.to_string(), value.to_string());
        }
        env.insert("CI_PROJECT_DIR".into(), work.display().to_string());
        env.insert("CI_COMMIT_SHA".into(), sha.to_string());
        env.insert("GITLAB_CI".into(), "true".into());
        // Variables of type File are paths to a file holding the value.
        let environment = expand(&text(&job["environment"]["name"]), &env);
        for (key, value) in self.secrets.get(&environment).cloned().unwrap_or_default() {
            let file = temp.join(&key);
            std::fs::write(&file, value).expect("file variable");
            env.insert(key, file.display().to_string());
        }
        let mut log = format!("=== job {name}\n");
        let rules = job["rules"].as_vec().cloned().unwrap_or_default();
        let runs = rules
            .iter()
            .any(|rule| gitlab_rule(&text(&rule["if"]), &env));
        if !runs {
            log.push_str("skipped: no rule matches\n");
            return JobRun { log, success: true };
        }
        let lines: Vec<String> = [&base["before_script"], &job["script"]]
            .iter()
            .flat_map(|list| list.as_vec().cloned().unwrap_or_default())
            .map(|line| text(&line))
            .collect();
        let (output, success) = bash(&lines.join("\n"), &work, &env, &["-eo", "pipefail"]);
        log.push_str(&output);
        if let Some(pipeline) = env.get("CI_PIPELINE_ID") {
            let record = GitLabRecord {
                pipeline: pipeline.clone(),
                merge_request: env.get("CI_MERGE_REQUEST_IID").cloned(),
                work,
                success,
            };
            self.gitlab_record(job, id, name, &record);
        }
        JobRun { log, success }
    }
}

/// What the fake GitLab API learns of a job that ran (see [`Runner::gitlab_record`]).
struct GitLabRecord {
    pipeline: String,
    merge_request: Option<String>,
    work: PathBuf,
    success: bool,
}

/// `text` with each `$NAME` replaced by the variable's value (as GitLab expands an
/// environment's name).
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let name: String = rest[start + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push_str(env.get(&name).map(String::as_str).unwrap_or_default());
        rest = &rest[start + 1 + name.len()..];
    }
    out.push_str(rest);
    out
}

/// A GitLab rule's `if:`: `&&` of `$A == "x"` or `$A == $B`.
fn gitlab_rule(condition: &str, env: &BTreeMap<String, String>) -> bool {
    let value = |operand: &str| {
        let operand = operand.trim();
        match operand.strip_prefix('$') {
            Some(name) => env.get(name).cloned().unwrap_or_default(),
            None => operand.trim_matches('"').to_string(),
        }
    };
    condition
        .split("&&")
        .all(|atom| match atom.split_once("==") {
            Some((a, b)) => value(a) == value(b),
            None => panic!("the harness does not know the rule `{atom}`: teach it"),
        })
}

/// The web app of `Repo::web_app_in` as environment `production` (its kubeconfig the secret
/// `KUBECONFIG_PRODUCTION`), with the CI file of `platform` committed on `main`.
fn repository(
    cluster: &TestCluster,
    registry: &TestRegistry,
    namespace: &str,
    platform: &str,
) -> Repo {
    repository_with(cluster, registry, namespace, &["ci", "init", platform])
}

/// [`repository`] with the CI file `ci_init` writes (`ci init ...`).
fn repository_with(
    cluster: &TestCluster,
    registry: &TestRegistry,
    namespace: &str,
    ci_init: &[&str],
) -> Repo {
    let mut repo = Repo::web_app_in(
        cluster.kubeconfig_path(),
        namespace,
        &registry.address,
        "<h1>one</h1>\n",
    );
    repo.kubeconfig = None;
    repo.git(&["branch", "-M", "main"]);
    repo.git(&["mv", "config/staging.yaml", "config/production.yaml"]);
    let config =
        std::fs::read_to_string(repo.path().join("config/production.yaml")).expect("config");
    repo.write(
        "config/production.yaml",
        &format!("{config}values:\n  host: web.example\n"),
    );
    repo.commit("production");
    repo.ok(ci_init);
    repo.commit("ci");
    repo
}

fn head(repo: &Repo) -> String {
    git(repo.path(), &["rev-parse", "HEAD"])
}

fn kubeconfig_secrets(
    cluster: &TestCluster,
    environments: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig_path()).expect("kubeconfig");
    environments
        .iter()
        .map(|environment| {
            let secrets = BTreeMap::from([
                ("KUBECONFIG_PRODUCTION".to_string(), kubeconfig.clone()),
                ("REGISTRY_USERNAME".to_string(), "ci".to_string()),
                ("REGISTRY_PASSWORD".to_string(), "ci".to_string()),
            ]);
            (environment.to_string(), secrets)
        })
        .collect()
}

/// `plan production` from `repo`'s work tree at main: whether anything is left to deploy.
fn pending(repo: &Repo, cluster: &TestCluster) -> bool {
    git(repo.path(), &["checkout", "-q", "main"]);
    let kubeconfig = cluster.kubeconfig_path().to_string_lossy().into_owned();
    let run = repo.gitship(&[
        "--kubeconfig",
        &kubeconfig,
        "plan",
        "production",
        "--exit-code",
    ]);
    assert!(run.code == 0 || run.code == 2, "{}", run.all());
    run.code == 2
}

fn tools() -> bool {
    crate::support::require_tool("jq", "--version") && crate::plan::working_builder().is_some()
}

/// GitHub: (a) a pull request's plan job keeps its redacted report; after a `--no-ff` merge
/// (a new SHA, the same tree) the deploy job finds it and applies the reviewed plan; the first
/// deploy found none and said so. (b) A push whose deploy was cancelled (a concurrency group
/// keeps one pending run) is deployed by the next push, which changed nothing of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_jobs_plan_the_pull_request_and_deploy_the_reviewed_plan() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("ci-github");
    tokio::task::spawn_blocking(move || {
        let repo = repository(&cluster, &registry, &namespace, "github");
        let file = std::fs::read_to_string(repo.path().join(".github/workflows/gitship.yml"))
            .expect("workflow");
        let workflow = &YamlLoader::load_from_str(&file).expect("YAML")[0];
        let mut runner = Runner::new(repo.path());
        runner.secrets = kubeconfig_secrets(&cluster, &["production", "production-plan"]);

        // The first push deploys everything: no plan of its tree was reviewed.
        let first = head(&repo);
        let push = Event {
            name: "push",
            action: "",
            sha: first.clone(),
            base: "0".repeat(40),
        };
        let deployed = runner.github_job(workflow, "deploy-production", &push);
        assert!(deployed.success, "{}", deployed.log);
        assert!(
            deployed.log.contains("no plan of this tree was reviewed"),
            "{}",
            deployed.log
        );
        assert!(!pending(&repo, &cluster), "{}", deployed.log);

        // (a) The pull request: GitHub plans its merge into the base (`refs/pull/1/merge`).
        git(repo.path(), &["checkout", "-q", "-b", "feature"]);
        repo.write("apps/web/index.html", "<h1>two</h1>\n");
        repo.commit("two");
        git(
            repo.path(),
            &["checkout", "-q", "-b", "pull-1-merge", "main"],
        );
        git(
            repo.path(),
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge feature into main",
                "feature",
            ],
        );
        let pull = Event {
            name: "pull_request",
            action: "opened",
            sha: head(&repo),
            base: first.clone(),
        };
        let planned = runner.github_job(workflow, "plan-production", &pull);
        assert!(planned.success, "{}", planned.log);
        assert!(
            planned.log.contains("this pull request changes production"),
            "{}",
            planned.log
        );
        let tree = git(repo.path(), &["rev-parse", "HEAD^{tree}"]);
        let artifact = runner
            .artifacts()
            .join(format!("gitship-plan-production-{tree}/gitship-plan.json"));
        let report = std::fs::read_to_string(&artifact).expect("the plan's report is an artifact");
        assert!(
            !report.contains("\"manifests\""),
            "a report, not a saved plan: {report}"
        );
        let gh_log = std::fs::read_to_string(runner.dir.path().join("gh.log")).expect("gh log");
        assert!(
            gh_log.contains("<!-- gitship-plan:production -->"),
            "the plan is commented: {gh_log}"
        );

        // Merged with `--no-ff`: another commit, the same tree.
        git(repo.path(), &["checkout", "-q", "main"]);
        git(
            repo.path(),
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge pull request #1",
                "feature",
            ],
        );
        let merged = head(&repo);
        assert_eq!(git(repo.path(), &["rev-parse", "HEAD^{tree}"]), tree);
        let push = Event {
            name: "push",
            action: "",
            sha: merged.clone(),
            base: first.clone(),
        };
        let deployed = runner.github_job(workflow, "deploy-production", &push);
        assert!(deployed.success, "{}", deployed.log);
        assert!(
            deployed.log.contains(
                "applying the plan reviewed in https://github.example/acme/web/actions/runs/"
            ),
            "{}",
            deployed.log
        );
        assert!(!pending(&repo, &cluster));

        // (b) Push 3 changes the app; its deploy is cancelled (never run). Push 4 changes
        // nothing the environment deploys, yet deploys push 3's change.
        repo.write("apps/web/index.html", "<h1>three</h1>\n");
        repo.commit("three");
        let cancelled = head(&repo);
        repo.write("README.md", "docs only\n");
        repo.commit("docs");
        assert!(pending(&repo, &cluster), "push 3 is not deployed yet");
        let push = Event {
            name: "push",
            action: "",
            sha: head(&repo),
            base: cancelled,
        };
        let deployed = runner.github_job(workflow, "deploy-production", &push);
        assert!(deployed.success, "{}", deployed.log);
        assert!(
            !deployed.log.contains("nothing production deploys changed"),
            "{}",
            deployed.log
        );
        assert!(
            !pending(&repo, &cluster),
            "push 3's change is deployed: {}",
            deployed.log
        );
    })
    .await
    .expect("test");
}

/// The variables of a GitLab pipeline: a push to `main` (`before` the commit before it), or
/// (with `merge_request`) pipeline `pipeline` of merge request 1 from `feature`, whose diff
/// base is `before`; the token the fake API takes.
fn gitlab_variables(source: &str, pipeline: u32, before: &str) -> Vec<(&'static str, String)> {
    let mut variables = vec![
        ("CI", "true".to_string()),
        ("CI_PIPELINE_SOURCE", source.to_string()),
        ("CI_DEFAULT_BRANCH", "main".to_string()),
        ("CI_PIPELINE_ID", pipeline.to_string()),
        ("GITLAB_USER_LOGIN", "ann".to_string()),
        ("GITLAB_TOKEN", GITLAB_TOKEN.to_string()),
    ];
    match source {
        "merge_request_event" => variables.extend([
            ("CI_MERGE_REQUEST_IID", "1".to_string()),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", before.to_string()),
            ("CI_COMMIT_REF_NAME", "feature".to_string()),
        ]),
        "push" => variables.extend([
            ("CI_COMMIT_BRANCH", "main".to_string()),
            ("CI_COMMIT_REF_NAME", "main".to_string()),
            ("CI_COMMIT_BEFORE_SHA", before.to_string()),
        ]),
        _ => variables.push(("CI_COMMIT_REF_NAME", "main".to_string())),
    }
    variables
}

impl Runner {
    /// [`Runner::gitlab_job`] with [`gitlab_variables`]; the token is never in its log.
    fn gitlab_run(
        &self,
        pipeline: &Yaml,
        name: &str,
        sha: &str,
        variables: &[(&'static str, String)],
    ) -> JobRun {
        let variables: Vec<(&str, &str)> =
            variables.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = self.gitlab_job(pipeline, name, sha, &variables);
        assert!(
            !run.log.contains(GITLAB_TOKEN),
            "the token is shown: {}",
            run.log
        );
        run
    }

    /// The requests the fake GitLab API answered, `METHOD PATH` a line.
    fn gitlab_requests(&self) -> String {
        std::fs::read_to_string(self.gitlab().join("requests.log")).unwrap_or_default()
    }

    /// Notes of merge request 1 by someone else than the job's user: 120 of them (the job's
    /// own note is on the second page, oldest first), the oldest and the newest quoting the
    /// marker `marker` (the first page either way).
    fn gitlab_seed_notes(&self, marker: &str) {
        let notes: Vec<serde_json::Value> = (1..=120)
            .map(|id| {
                let body = match id {
                    1 | 120 => format!("{marker}\n\nquoted by a reviewer"),
                    _ => format!("comment {id}"),
                };
                serde_json::json!({ "id": id, "body": body, "author": { "username": "ann" } })
            })
            .collect();
        let file = self.gitlab().join("mr-1-notes.json");
        std::fs::write(file, serde_json::Value::from(notes).to_string()).expect("notes");
    }

    /// The notes of [`Runner::gitlab_seed_notes`] quoting `marker` are as they were.
    fn gitlab_reviewer_notes_untouched(&self, marker: &str) {
        let quoted = format!("{marker}\n\nquoted by a reviewer");
        let notes = self.gitlab_notes(1);
        for id in [1, 120] {
            let note = notes.iter().find(|note| note["id"] == id).expect("a note");
            assert_eq!(note["body"], quoted.as_str(), "{note}");
        }
    }

    /// The notes of merge request 1 written by the job's user that start with `marker`.
    fn gitlab_own_notes(&self, marker: &str) -> Vec<serde_json::Value> {
        self.gitlab_notes(1)
            .into_iter()
            .filter(|note| {
                note["author"]["username"] == "gitship-bot"
                    && note["body"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(marker)
            })
            .collect()
    }
}

/// GitLab, through its emulated API: (a) the first push's production job deploys, no merge
/// request reviewed its commit, and it says so; (b) a merge request's `plan-production` keeps
/// its redacted report as an artifact and writes one note (found again past the first page
/// of notes and edited on the next pipeline, a reviewer's note quoting the marker left
/// alone); (c) after the `--no-ff` merge the deploy job finds that report (commit, merge
/// request, newest pipeline, job, artifact) and applies the reviewed plan. All in one shell
/// with the job's `before_script`, the kubeconfig a variable of type File.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_jobs_plan_the_merge_request_and_deploy_the_reviewed_plan() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("ci-gitlab");
    tokio::task::spawn_blocking(move || {
        let repo = repository(&cluster, &registry, &namespace, "gitlab");
        let file = std::fs::read_to_string(repo.path().join(".gitlab-ci.yml")).expect("pipeline");
        let pipeline = &YamlLoader::load_from_str(&file).expect("YAML")[0];
        let mut runner = Runner::new(repo.path());
        runner.secrets = kubeconfig_secrets(&cluster, &["production", "production-plan"]);

        // (a) The first push: nothing reviewed.
        let first = head(&repo);
        let push = gitlab_variables("push", 400, &"0".repeat(40));
        let deployed = runner.gitlab_run(pipeline, "deploy-production", &first, &push);
        assert!(deployed.success, "{}", deployed.log);
        assert!(
            deployed.log.contains(
                "no plan of this commit's merge request was reviewed: the deploy plans again"
            ),
            "{}",
            deployed.log
        );
        assert!(!pending(&repo, &cluster), "{}", deployed.log);

        // (b) The merge request's pipelines (of its branch's head, as GitLab runs them).
        let marker = "<!-- gitship-plan:production -->";
        runner.gitlab_seed_notes(marker);
        git(repo.path(), &["checkout", "-q", "-b", "feature"]);
        repo.write("apps/web/index.html", "<h1>two</h1>\n");
        repo.commit("two");
        let feature = head(&repo);
        for pipeline_id in [501, 502] {
            let merge_request = gitlab_variables("merge_request_event", pipeline_id, &first);
            let planned = runner.gitlab_run(pipeline, "plan-production", &feature, &merge_request);
            assert!(planned.success, "{}", planned.log);
            let notes = runner.gitlab_own_notes(marker);
            assert_eq!(notes.len(), 1, "one note of the plan: {notes:#?}");
            let body = notes[0]["body"].as_str().unwrap_or_default();
            assert!(body.contains("production"), "{body}");
        }
        let requests = runner.gitlab_requests();
        assert!(
            requests.contains("GET /projects/1/merge_requests/1/notes"),
            "{requests}"
        );
        assert_eq!(
            requests
                .matches("POST /projects/1/merge_requests/1/notes")
                .count(),
            1,
            "{requests}"
        );
        assert_eq!(
            requests
                .matches("PUT /projects/1/merge_requests/1/notes/121")
                .count(),
            1,
            "{requests}"
        );
        runner.gitlab_reviewer_notes_untouched(marker);
        let tree = git(repo.path(), &["rev-parse", "HEAD^{tree}"]);

        // (c) Merged with `--no-ff`: another commit, the same tree.
        git(repo.path(), &["checkout", "-q", "main"]);
        git(
            repo.path(),
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge branch 'feature'",
                "feature",
            ],
        );
        let merged = head(&repo);
        assert_eq!(git(repo.path(), &["rev-parse", "HEAD^{tree}"]), tree);
        runner.gitlab_merged(&merged, 1);
        let push = gitlab_variables("push", 503, &first);
        let deployed = runner.gitlab_run(pipeline, "deploy-production", &merged, &push);
        assert!(deployed.success, "{}", deployed.log);
        assert!(
            deployed
                .log
                .contains("applying the plan reviewed in https://gitlab.example/acme/web/-/jobs/"),
            "{}",
            deployed.log
        );
        let requests = runner.gitlab_requests();
        assert!(
            requests.contains("/artifacts/gitship-plan.json"),
            "{requests}"
        );
        assert!(!pending(&repo, &cluster), "{}", deployed.log);

        // A merge request's pipeline does not run it.
        let merge_request = gitlab_variables("merge_request_event", 504, &first);
        let skipped = runner.gitlab_run(pipeline, "deploy-production", &merged, &merge_request);
        assert!(
            skipped.log.contains("skipped: no rule matches"),
            "{}",
            skipped.log
        );
    })
    .await
    .expect("test");
}

/// GitLab previews (`ci init gitlab --preview-from production --preview-url ...`): a merge
/// request pipeline's `preview` job creates the preview in the base's cluster, builds, deploys
/// it and writes one note with its URL; the next push's job updates it and edits that note;
/// `preview-stop` (the environment's `on_stop`) destroys it, leaving no namespace, Lease or
/// ConfigMap of it, and says so when run again; the schedule's `preview-gc` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_preview_jobs_deploy_a_merge_request_and_stop_it() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("ci-gl-preview");
    let preview_namespace = format!("{namespace}-pr-1");
    cluster.track(&preview_namespace);
    tokio::task::spawn_blocking(move || {
        let ci_init = [
            "ci",
            "init",
            "gitlab",
            "--preview-from",
            "production",
            "--preview-url",
            "https://${values.host}/review",
        ];
        let repo = repository_with(&cluster, &registry, &namespace, &ci_init);
        let file = std::fs::read_to_string(repo.path().join(".gitlab-ci.yml")).expect("pipeline");
        let pipeline = &YamlLoader::load_from_str(&file).expect("YAML")[0];
        let mut runner = Runner::new(repo.path());
        runner.secrets = kubeconfig_secrets(&cluster, &["preview/pr-1", "preview/gc"]);
        let marker = "<!-- gitship-preview -->";
        runner.gitlab_seed_notes(marker);
        let base = head(&repo);
        git(repo.path(), &["checkout", "-q", "-b", "feature"]);
        let kubeconfig = cluster.kubeconfig_path().to_string_lossy().into_owned();
        let kubectl = |args: &[&str]| {
            let output = Command::new("kubectl")
                .args(["--kubeconfig", &kubeconfig])
                .args(args)
                .output()
                .expect("kubectl");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        };
        let mut sha = String::new();
        for (pipeline_id, push) in [(601, "created"), (602, "updated")] {
            repo.write(
                "apps/web/index.html",
                &format!("<h1>preview {pipeline_id}</h1>\n"),
            );
            repo.commit("preview");
            sha = head(&repo);
            let merge_request = gitlab_variables("merge_request_event", pipeline_id, &base);
            let run = runner.gitlab_run(pipeline, "preview", &sha, &merge_request);
            assert!(run.success, "{}", run.log);
            assert!(
                run.log.contains(&format!("\"action\": \"{push}\"")),
                "{}",
                run.log
            );
            let notes = runner.gitlab_own_notes(marker);
            assert_eq!(notes.len(), 1, "one note of the preview: {notes:#?}");
            let body = notes[0]["body"].as_str().unwrap_or_default();
            assert!(
                body.contains("**Preview `pr-1`** of `production`: https://web.example/review"),
                "{body}"
            );
        }
        assert!(kubectl(&["get", "namespace", &preview_namespace]).0);
        runner.gitlab_reviewer_notes_untouched(marker);
        let requests = runner.gitlab_requests();
        assert_eq!(
            requests
                .matches("POST /projects/1/merge_requests/1/notes")
                .count(),
            1,
            "{requests}"
        );
        assert_eq!(
            requests
                .matches("PUT /projects/1/merge_requests/1/notes/121")
                .count(),
            1,
            "{requests}"
        );

        // The schedule's garbage collection: nothing expired.
        let schedule = gitlab_variables("schedule", 603, &base);
        let skipped = runner.gitlab_run(pipeline, "preview", &sha, &schedule);
        assert!(
            skipped.log.contains("skipped: no rule matches"),
            "{}",
            skipped.log
        );
        let gc = runner.gitlab_run(pipeline, "preview-gc", &sha, &schedule);
        assert!(gc.success, "{}", gc.log);
        assert!(
            kubectl(&["get", "namespace", &preview_namespace]).0,
            "{}",
            gc.log
        );

        // Merged or closed: GitLab runs the environment's `on_stop` job, of the last pipeline.
        let stop_job = text(&pipeline["preview"]["environment"]["on_stop"]);
        assert_eq!(stop_job, "preview-stop");
        // Its records and objects: ConfigMaps and Leases naming it, in its namespace or the base's.
        let of_preview = || -> Vec<String> {
            let (ok, listed) = kubectl(&[
                "get",
                "configmaps,leases",
                "--all-namespaces",
                "--no-headers",
                "-o",
                "custom-columns=NS:.metadata.namespace,KIND:.kind,NAME:.metadata.name",
            ]);
            assert!(ok, "kubectl get");
            listed
                .lines()
                .filter(|line| {
                    let ns = line.split_whitespace().next().unwrap_or_default();
                    (ns == namespace || ns == preview_namespace) && line.contains("pr-1")
                })
                .map(str::to_string)
                .collect()
        };
        assert!(!of_preview().is_empty(), "the preview is recorded");
        let merge_request = gitlab_variables("merge_request_event", 602, &base);
        let stopped = runner.gitlab_run(pipeline, &stop_job, &sha, &merge_request);
        assert!(stopped.success, "{}", stopped.log);
        assert!(
            !kubectl(&["get", "namespace", &preview_namespace]).0,
            "{}",
            stopped.log
        );
        assert_eq!(of_preview(), Vec::<String>::new(), "{}", stopped.log);
        let again = runner.gitlab_run(pipeline, &stop_job, &sha, &merge_request);
        assert!(
            again.success && again.log.contains("no preview pr-1 to destroy"),
            "{}",
            again.log
        );
    })
    .await
    .expect("test");
}

/// GitHub previews: a pull request's `preview` job creates the preview of `production` in its
/// cluster, builds, deploys it by name and comments its URL (`gh pr comment --edit-last
/// --create-if-none`); a second push updates it; the `preview-close` job of the closed event
/// destroys it, leaving no namespace; the plan job skips the closed event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_preview_jobs_deploy_a_pull_request_and_destroy_it_when_it_closes() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("ci-preview");
    let preview_namespace = format!("{namespace}-pr-1");
    cluster.track(&preview_namespace);
    tokio::task::spawn_blocking(move || {
        let ci_init = [
            "ci", "init", "github", "--preview-from", "production", "--preview-url",
            "https://${values.host}/pr-1",
        ];
        let repo = repository_with(&cluster, &registry, &namespace, &ci_init);
        let file = std::fs::read_to_string(repo.path().join(".github/workflows/gitship.yml"))
            .expect("workflow");
        let workflow = &YamlLoader::load_from_str(&file).expect("YAML")[0];
        let mut runner = Runner::new(repo.path());
        runner.secrets = kubeconfig_secrets(&cluster, &["production-preview", "production-plan"]);
        let base = head(&repo);
        git(repo.path(), &["checkout", "-q", "-b", "feature"]);
        repo.write("apps/web/index.html", "<h1>preview</h1>\n");
        repo.commit("preview");
        let pull = Event {
            name: "pull_request",
            action: "opened",
            sha: head(&repo),
            base: base.clone(),
        };
        let kubeconfig = cluster.kubeconfig_path().to_string_lossy().into_owned();
        let namespace_exists = || {
            Command::new("kubectl")
                .args(["--kubeconfig", &kubeconfig, "get", "namespace", &preview_namespace])
                .output()
                .expect("kubectl")
                .status
                .success()
        };
        for push in ["created", "updated"] {
            let run = runner.github_job(workflow, "preview", &pull);
            assert!(run.success, "{}", run.log);
            assert!(run.log.contains(&format!("\"action\": \"{push}\"")), "{}", run.log);
        }
        assert!(namespace_exists());
        let gh_log = std::fs::read_to_string(runner.dir.path().join("gh.log")).expect("gh log");
        assert!(
            gh_log.contains("pr comment 1 --edit-last --create-if-none --body **Preview `pr-1`** of `production`: https://web.example/pr-1"),
            "{gh_log}"
        );
        let closed = Event {
            name: "pull_request",
            action: "closed",
            sha: head(&repo),
            base,
        };
        let plan = runner.github_job(workflow, "plan-production", &closed);
        assert!(plan.log.contains("skipped: its `if:` is false"), "{}", plan.log);
        let skipped = runner.github_job(workflow, "preview", &closed);
        assert!(skipped.log.contains("skipped: its `if:` is false"), "{}", skipped.log);
        let destroyed = runner.github_job(workflow, "preview-close", &closed);
        assert!(destroyed.success, "{}", destroyed.log);
        assert!(!namespace_exists(), "{}", destroyed.log);
        // Closed again (a re-run): nothing left to destroy, and it says so.
        let again = runner.github_job(workflow, "preview-close", &closed);
        assert!(again.success && again.log.contains("no preview pr-1 to destroy"), "{}", again.log);
    })
    .await
    .expect("test");
}
