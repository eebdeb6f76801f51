//! What gitship reads of the CI or the machine it runs on, in one place: which CI provider runs
//! it ([`Provider`]: its run's URL, its actor, its workspace, whether errors become its
//! annotations, its job summary file), who deploys (the CI's actor, the pod, `user@host`) and
//! the CI run's URL. Foundation: the commands, the printer, the diagnostics, the operations and
//! the agent read them here and hand the values to the stages (`kube::DeployOptions::who`, the
//! record's `ci_url`); no stage reads these variables itself.

mod provider;

pub use provider::{Provider, STEP_SUMMARY_VARIABLE};

/// The variable `key` of this process, `None` when unset or not Unicode.
fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The provider running this process, if any ([`Provider::detect`]).
pub fn provider() -> Option<Provider> {
    Provider::detect(&env_var)
}

/// Whether a CI runs this process (no one watches its terminal).
pub fn in_ci() -> bool {
    provider::in_ci(&env_var)
}

/// The checkout of the provider running this process ([`Provider::workspace`]).
pub fn workspace() -> Option<std::path::PathBuf> {
    Provider::ALL
        .into_iter()
        .find_map(|provider| provider.workspace(&env_var))
}

/// The job summary file of the provider running this process ([`Provider::step_summary`]):
/// GitHub's, whenever `$GITHUB_STEP_SUMMARY` names one.
pub fn step_summary_file() -> Option<std::path::PathBuf> {
    Provider::GitHub.step_summary(&env_var)
}

/// Who is deploying: `GITSHIP_DEPLOYER`, else `GITHUB_ACTOR`/`GITLAB_USER_LOGIN`, else `user@host`.
pub fn who() -> String {
    who_from(
        |key| std::env::var(key).ok(),
        |path| std::fs::read_to_string(path).ok(),
    )
}

/// Where a pod's service account tells its namespace.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// [`who`] from these environment variables and files: the CI's or the deployer's name; in a
/// pod (the downward API's `POD_NAME`, or a service account's namespace file), `pod NS/NAME`;
/// else `user@host`.
fn who_from(env: impl Fn(&str) -> Option<String>, read: impl Fn(&str) -> Option<String>) -> String {
    let given = |key: &str| {
        env(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let actors = Provider::ALL.map(Provider::actor_variable);
    for key in std::iter::once("GITSHIP_DEPLOYER").chain(actors) {
        if let Some(value) = given(key) {
            return value;
        }
    }
    let host = given("HOSTNAME")
        .or_else(|| read("/etc/hostname").map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty());
    let pod_namespace = given("POD_NAMESPACE")
        .or_else(|| read(POD_NAMESPACE_FILE).map(|ns| ns.trim().to_string()))
        .filter(|ns| !ns.is_empty());
    if let (Some(pod), Some(namespace)) = (given("POD_NAME").or(host.clone()), &pod_namespace) {
        return format!("pod {namespace}/{pod}");
    }
    let user = given("USER")
        .or_else(|| given("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", host.unwrap_or_else(|| "localhost".into()))
}

/// The CI run deploying, from the environment: GitHub Actions'
/// `{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}`, else GitLab's
/// `CI_JOB_URL`.
pub fn run_url() -> Option<String> {
    run_url_from(env_var)
}

/// [`run_url`] over any source of variables: the first provider whose run it names.
pub fn run_url_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    Provider::ALL
        .into_iter()
        .find_map(|provider| provider.run_url(&var))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_the_ci_the_pod_or_the_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            }
        };
        let no_files = |_: &str| None;
        assert_eq!(
            who_from(env(&[("GITHUB_ACTOR", "ann"), ("USER", "root")]), no_files),
            "ann"
        );
        assert_eq!(
            who_from(env(&[("USER", "bob"), ("HOSTNAME", "laptop")]), no_files),
            "bob@laptop"
        );
        // In a pod: no USER; the downward API, or the service account's namespace file.
        assert_eq!(
            who_from(
                env(&[
                    ("POD_NAME", "gitship-agent-7d9f-x2x"),
                    ("POD_NAMESPACE", "blog")
                ]),
                no_files
            ),
            "pod blog/gitship-agent-7d9f-x2x"
        );
        let namespace_file =
            |path: &str| (path == POD_NAMESPACE_FILE).then(|| "blog\n".to_string());
        assert_eq!(
            who_from(env(&[("HOSTNAME", "gitship-agent-1")]), namespace_file),
            "pod blog/gitship-agent-1"
        );
        assert_eq!(who_from(env(&[]), no_files), "unknown@localhost");
    }

    #[test]
    fn the_ci_run_is_found_in_the_environment() {
        let github = |key: &str| {
            match key {
                "GITHUB_SERVER_URL" => Some("https://github.com"),
                "GITHUB_REPOSITORY" => Some("acme/blog"),
                "GITHUB_RUN_ID" => Some("42"),
                "CI_JOB_URL" => Some("https://gitlab.example/job/1"),
                _ => None,
            }
            .map(String::from)
        };
        assert_eq!(
            run_url_from(github).as_deref(),
            Some("https://github.com/acme/blog/actions/runs/42")
        );
        let gitlab = |key: &str| (key == "CI_JOB_URL").then(|| "https://gitlab.example/j/7".into());
        assert_eq!(
            run_url_from(gitlab).as_deref(),
            Some("https://gitlab.example/j/7")
        );
        assert_eq!(run_url_from(|_| None), None);
    }
}
