//! The CI providers gitship knows, and what it reads of each: one [`Provider`] and one place for
//! every variable a provider sets (ARCHITECTURE.md, "Where a change goes": a new CI provider is
//! a variant here and its generator in `ops/ci_init/`).
//!
//! Everything is a function of a variable source (`var`), so it is tested without touching the
//! process's environment; the `*_now` helpers of the module above read the real one.

use std::path::PathBuf;

/// A CI provider with support of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub Actions (`GITHUB_ACTIONS=true`).
    GitHub,
    /// GitLab CI (`GITLAB_CI=true`).
    GitLab,
}

impl Provider {
    /// Every provider, in the order their variables are tried.
    pub const ALL: [Provider; 2] = [Provider::GitHub, Provider::GitLab];

    /// The provider the variables say gitship runs under, if any.
    pub fn detect(var: &impl Fn(&str) -> Option<String>) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| var(provider.marker()).is_some_and(|value| value == "true"))
    }

    /// Its name on the command line (`ci init github|gitlab`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }

    /// The variable that is `true` in its jobs.
    fn marker(self) -> &'static str {
        match self {
            Provider::GitHub => "GITHUB_ACTIONS",
            Provider::GitLab => "GITLAB_CI",
        }
    }

    /// The variable naming who started the job.
    pub fn actor_variable(self) -> &'static str {
        match self {
            Provider::GitHub => "GITHUB_ACTOR",
            Provider::GitLab => "GITLAB_USER_LOGIN",
        }
    }

    /// The job's run, as a link: GitHub's
    /// `{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}`, GitLab's
    /// `CI_JOB_URL`.
    pub fn run_url(self, var: &impl Fn(&str) -> Option<String>) -> Option<String> {
        let var = |key: &str| var(key).filter(|value| !value.is_empty());
        match self {
            Provider::GitHub => {
                let (server, repository, run) = (
                    var("GITHUB_SERVER_URL")?,
                    var("GITHUB_REPOSITORY")?,
                    var("GITHUB_RUN_ID")?,
                );
                Some(format!(
                    "{}/{repository}/actions/runs/{run}",
                    server.trim_end_matches('/')
                ))
            }
            Provider::GitLab => var("CI_JOB_URL"),
        }
    }

    /// Where the job's checkout is (`GITHUB_WORKSPACE`, `CI_PROJECT_DIR`): file names in
    /// annotations are relative to it.
    pub fn workspace(self, var: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let key = match self {
            Provider::GitHub => "GITHUB_WORKSPACE",
            Provider::GitLab => "CI_PROJECT_DIR",
        };
        var(key)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// Whether errors pointing into the repository are also printed as the provider's
    /// annotations (GitHub's `::error file=...` workflow commands; GitLab reads a Code Quality
    /// report instead, `validate -o codequality`).
    pub fn annotates_errors(self) -> bool {
        matches!(self, Provider::GitHub)
    }

    /// The file a report's Markdown is appended to for the job's page (GitHub's
    /// `$GITHUB_STEP_SUMMARY`; GitLab has none: its jobs keep the Markdown as an artifact).
    pub fn step_summary(self, var: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        match self {
            Provider::GitHub => var(STEP_SUMMARY_VARIABLE)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from),
            Provider::GitLab => None,
        }
    }
}

/// GitHub's job summary file variable (named in messages about it).
pub const STEP_SUMMARY_VARIABLE: &str = "GITHUB_STEP_SUMMARY";

/// Whether the variables say a CI runs gitship (any CI: `CI` is set), where no one watches a
/// terminal: no progress bars.
pub fn in_ci(var: &impl Fn(&str) -> Option<String>) -> bool {
    var("CI").is_some() || Provider::detect(var).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn each_provider_is_found_by_its_marker_and_says_its_variables() {
        let github = vars(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", "/w"),
            ("GITHUB_STEP_SUMMARY", "/s.md"),
        ]);
        assert_eq!(Provider::detect(&github), Some(Provider::GitHub));
        assert_eq!(
            Provider::GitHub.workspace(&github),
            Some(PathBuf::from("/w"))
        );
        assert_eq!(
            Provider::GitHub.step_summary(&github),
            Some(PathBuf::from("/s.md"))
        );
        assert!(Provider::GitHub.annotates_errors());
        let gitlab = vars(&[("GITLAB_CI", "true"), ("CI_PROJECT_DIR", "/builds/a")]);
        assert_eq!(Provider::detect(&gitlab), Some(Provider::GitLab));
        assert_eq!(
            Provider::GitLab.workspace(&gitlab),
            Some(PathBuf::from("/builds/a"))
        );
        assert_eq!(Provider::GitLab.step_summary(&gitlab), None);
        assert!(!Provider::GitLab.annotates_errors());
        assert!(in_ci(&gitlab) && in_ci(&vars(&[("CI", "1")])));
        assert_eq!(
            Provider::detect(&vars(&[("GITHUB_ACTIONS", "false")])),
            None
        );
        assert!(!in_ci(&vars(&[])));
    }
}
