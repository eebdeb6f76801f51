//! Commit statuses: the agent tells GitHub or GitLab how each sync of a commit went.
//!
//! For every sync the agent posts a status on the commit it deploys, named `gitship/<env>`:
//! pending (GitLab: running) when it starts, success when synced, failure when the commit could
//! not be applied or its workloads did not become healthy, and pending "waiting for images"
//! while CI has not pushed them. Each links to `agent.notify.status_url` when given (the agent's
//! `/status`, as people reach it).
//!
//! **Where.** The provider, the repository and the API come from the agent's Git source
//! (`https://github.com/acme/blog.git`, `git@gitlab.com:acme/platform/blog.git`, ...);
//! `agent.notify` in the revision's config overrides each ([`NotifyConfig`]): a self-hosted
//! GitHub Enterprise or GitLab, a source that is a mirror. A source on another host takes that
//! host's API (`https://HOST/api/v3` for GitHub, `https://HOST/api/v4` for GitLab) once the
//! provider is configured.
//!
//! **When.** Only with a token: `GITSHIP_GITHUB_TOKEN` (GitHub, `Authorization: Bearer`; a
//! token that may write commit statuses) or `GITSHIP_GITLAB_API_TOKEN` (GitLab,
//! `PRIVATE-TOKEN`; `api` scope, Developer role). (`GITSHIP_GITLAB_TOKEN` is the push webhook's
//! secret, not an API token.) Without one nothing is posted and nothing is said.
//!
//! **Never in the way.** A status is queued and posted by a task of its own, one at a time (so
//! they arrive in order), with a 10 s limit each; a failure is a warning, never a failed sync,
//! and a full queue drops the status with a warning. The token is sent to the API only (plain
//! HTTP only to the loopback host), never follows a redirect, and never appears in a message,
//! a log or a `Debug` output.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::repo::config::{NotifyConfig, NotifyProvider, check_notify_repository};
use gitship_foundation::output::Printer;

/// The environment variable holding the GitHub API token for commit statuses.
pub const GITHUB_TOKEN_VARIABLE: &str = "GITSHIP_GITHUB_TOKEN";

/// The environment variable holding the GitLab API token for commit statuses.
pub const GITLAB_TOKEN_VARIABLE: &str = "GITSHIP_GITLAB_API_TOKEN";

/// How long one status may take to post.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Statuses waiting to be posted; beyond, new ones are dropped (with a warning).
const QUEUE: usize = 64;

/// The longest description GitHub takes.
const MAX_DESCRIPTION: usize = 140;

/// How much of an API's error answer a warning quotes.
const MAX_ANSWER: usize = 200;

/// What a status says of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    /// Waiting (for images): GitHub and GitLab `pending`.
    Pending,
    /// Being applied: GitHub `pending`, GitLab `running`.
    Running,
    /// Synced: `success`.
    Success,
    /// Not applied, or applied and not healthy: GitHub `failure`, GitLab `failed`.
    Failure,
}

impl CommitState {
    fn github(self) -> &'static str {
        match self {
            CommitState::Pending | CommitState::Running => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
        }
    }

    fn gitlab(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Running => "running",
            CommitState::Success => "success",
            CommitState::Failure => "failed",
        }
    }
}

/// A failed sync's description: what happened, never the error itself (a status may be public,
/// the error names the cluster's insides; it is in the agent's `/status`).
pub fn failure_description(degraded: bool) -> &'static str {
    if degraded {
        "degraded: applied (in part or whole), not healthy"
    } else {
        "not applied: the cluster stays at the last good revision"
    }
}

/// An API token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// `None` for an empty value.
    pub fn new(value: String) -> Option<Token> {
        (!value.is_empty()).then_some(Token(value))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(gitship_foundation::model::REDACTED)
    }
}

/// The API tokens the agent was given.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub github: Option<Token>,
    pub gitlab: Option<Token>,
}

impl Tokens {
    /// From [`GITHUB_TOKEN_VARIABLE`] and [`GITLAB_TOKEN_VARIABLE`]; empty values count as unset.
    pub fn from_env() -> Tokens {
        let read = |key: &str| std::env::var(key).ok().and_then(Token::new);
        Tokens {
            github: read(GITHUB_TOKEN_VARIABLE),
            gitlab: read(GITLAB_TOKEN_VARIABLE),
        }
    }

    fn of(&self, provider: NotifyProvider) -> Option<&Token> {
        match provider {
            NotifyProvider::GitHub => self.github.as_ref(),
            NotifyProvider::GitLab => self.gitlab.as_ref(),
        }
    }

    fn any(&self) -> bool {
        self.github.is_some() || self.gitlab.is_some()
    }
}

/// Where a Git source lives: its host and repository path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// Lowercase, without user or port.
    pub host: String,
    /// `host:port` of an `http(s)://` source (its web and API are there), else the host.
    pub web_authority: String,
    /// The repository path, without the leading `/`, a trailing `/` or `.git`.
    pub path: String,
}

impl SourceLocation {
    /// The host and path of a Git URL: `https://[user[:secret]@]host[:port]/path`,
    /// `ssh://[user@]host[:port]/path`, `git://host/path` or scp-like `[user@]host:path`.
    /// `None` for a local path or `file://` URL, or anything else without a host.
    pub fn parse(url: &str) -> Option<SourceLocation> {
        let url = url.trim();
        let (scheme, authority, path) = match url.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/')?);
                (Some(scheme.to_ascii_lowercase()), authority, path)
            }
            None => {
                // scp-like: a colon before any slash (`/srv/git/blog` and `./blog:x` are paths).
                let colon = url.find(':')?;
                if url[..colon].contains('/') {
                    return None;
                }
                (None, &url[..colon], &url[colon + 1..])
            }
        };
        if !matches!(
            scheme.as_deref(),
            None | Some("https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git")
        ) {
            return None;
        }
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = host_port
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host_port, |(host, _)| host)
            .to_ascii_lowercase();
        let path = path.trim_matches('/');
        let path = path
            .strip_suffix(".git")
            .unwrap_or(path)
            .trim_end_matches('/');
        if host.is_empty() || path.is_empty() {
            return None;
        }
        let web_authority = match scheme.as_deref() {
            Some("https" | "http") => host_port.to_ascii_lowercase(),
            _ => host.clone(),
        };
        Some(SourceLocation {
            host,
            web_authority,
            path: path.to_string(),
        })
    }

    /// The provider of the public instances: github.com and gitlab.com.
    fn provider(&self) -> Option<NotifyProvider> {
        match self.host.as_str() {
            "github.com" | "www.github.com" => Some(NotifyProvider::GitHub),
            "gitlab.com" | "www.gitlab.com" => Some(NotifyProvider::GitLab),
            _ => None,
        }
    }

    /// The provider's API for this source's host.
    fn api_url(&self, provider: NotifyProvider) -> String {
        match (provider, self.provider()) {
            (NotifyProvider::GitHub, Some(NotifyProvider::GitHub)) => default_api(provider),
            (NotifyProvider::GitLab, Some(NotifyProvider::GitLab)) => default_api(provider),
            (NotifyProvider::GitHub, _) => format!("https://{}/api/v3", self.web_authority),
            (NotifyProvider::GitLab, _) => format!("https://{}/api/v4", self.web_authority),
        }
    }
}

/// The API of github.com or gitlab.com.
fn default_api(provider: NotifyProvider) -> String {
    match provider {
        NotifyProvider::GitHub => "https://api.github.com".to_string(),
        NotifyProvider::GitLab => "https://gitlab.com/api/v4".to_string(),
    }
}

/// Where and as whom statuses are posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: NotifyProvider,
    /// Without a trailing `/`.
    pub api_url: String,
    pub repository: String,
    pub status_url: Option<String>,
    /// `gitship/<env>`.
    pub context: String,
    token: Token,
}

/// Where statuses of the agent of `environment`, fetching `source`, go: `Ok(None)` when they
/// are off (no token for the provider; no provider known and no token at all), `Err` with what
/// to configure when a token is set but the target cannot be told.
pub fn resolve(
    source: &str,
    environment: &str,
    config: Option<&NotifyConfig>,
    tokens: &Tokens,
) -> Result<Option<Target>, String> {
    let location = SourceLocation::parse(source);
    let shown = crate::git::clone::display_url(source);
    let configured = config.cloned().unwrap_or_default();
    let Some(provider) = configured
        .provider
        .or_else(|| location.as_ref().and_then(SourceLocation::provider))
    else {
        if tokens.any() {
            return Err(format!(
                "cannot tell whether `{shown}` is on GitHub or GitLab: set `agent.notify.provider`"
            ));
        }
        return Ok(None);
    };
    let Some(token) = tokens.of(provider) else {
        return Ok(None);
    };
    let repository = configured
        .repository
        .or_else(|| location.as_ref().map(|l| l.path.clone()))
        .ok_or_else(|| {
            format!("cannot tell the repository of `{shown}`: set `agent.notify.repository`")
        })?;
    check_notify_repository(&repository, Some(provider)).map_err(|problem| {
        format!("{problem}: set `agent.notify.repository` (the source is `{shown}`)")
    })?;
    let api_url = configured.api_url.unwrap_or_else(|| match &location {
        Some(location) => location.api_url(provider),
        None => default_api(provider),
    });
    Ok(Some(Target {
        provider,
        api_url,
        repository,
        status_url: configured.status_url,
        context: format!("gitship/{environment}"),
        token: token.clone(),
    }))
}

/// One status to post: the request, decided; [`post`] carries it out.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRequest {
    /// The URL, query included.
    pub url: String,
    /// The headers besides the token's.
    pub headers: Vec<(&'static str, String)>,
    /// The token's header: `Authorization` (`Bearer <token>`) or `PRIVATE-TOKEN`.
    pub auth_header: &'static str,
    /// GitHub's JSON body; GitLab takes the query.
    pub body: Option<serde_json::Value>,
    /// For messages: `github` or `gitlab`, and the short SHA.
    pub what: String,
    token: Token,
}

impl StatusRequest {
    /// The status `state` with `description` on commit `sha` at `target`.
    pub fn new(target: &Target, sha: &str, state: CommitState, description: &str) -> StatusRequest {
        let description = truncate(description, MAX_DESCRIPTION);
        let what = format!(
            "{} {}",
            target.provider.as_str(),
            crate::git::short_sha(sha)
        );
        match target.provider {
            NotifyProvider::GitHub => {
                let mut body = serde_json::json!({
                    "state": state.github(),
                    "description": description,
                    "context": target.context,
                });
                if let Some(link) = &target.status_url {
                    body["target_url"] = serde_json::Value::String(link.clone());
                }
                StatusRequest {
                    url: format!(
                        "{}/repos/{}/statuses/{}",
                        target.api_url, target.repository, sha
                    ),
                    headers: vec![
                        ("accept", "application/vnd.github+json".to_string()),
                        ("x-github-api-version", "2022-11-28".to_string()),
                    ],
                    auth_header: "authorization",
                    body: Some(body),
                    what,
                    token: target.token.clone(),
                }
            }
            NotifyProvider::GitLab => {
                let mut query = vec![
                    ("state", state.gitlab().to_string()),
                    ("name", target.context.clone()),
                    ("description", description),
                ];
                if let Some(link) = &target.status_url {
                    query.push(("target_url", link.clone()));
                }
                let query: Vec<String> = query
                    .iter()
                    .map(|(key, value)| format!("{key}={}", percent_encode(value)))
                    .collect();
                StatusRequest {
                    url: format!(
                        "{}/projects/{}/statuses/{}?{}",
                        target.api_url,
                        percent_encode(&target.repository),
                        sha,
                        query.join("&")
                    ),
                    headers: Vec::new(),
                    auth_header: "private-token",
                    body: None,
                    what,
                    token: target.token.clone(),
                }
            }
        }
    }

    /// The token header's value.
    fn auth_value(&self) -> String {
        match self.auth_header {
            "authorization" => format!("Bearer {}", self.token.0),
            _ => self.token.0.clone(),
        }
    }

    /// `text` with the token replaced.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.token.0, gitship_foundation::model::REDACTED)
    }
}

/// `text` cut to at most `limit` characters (with `…` when cut).
fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` percent-encoded for a URL path segment or query value: all but RFC 3986's
/// unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Why a status was not posted. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("{0}")]
    Request(String),
    /// The API answered with an error.
    #[error("HTTP {status}: {answer}")]
    Refused { status: u16, answer: String },
}

/// Post `request` with `client`.
pub async fn post(client: &reqwest::Client, request: &StatusRequest) -> Result<(), NotifyError> {
    let mut auth = reqwest::header::HeaderValue::from_str(&request.auth_value())
        .map_err(|_| NotifyError::Request("the token is not a valid header value".to_string()))?;
    auth.set_sensitive(true);
    let mut builder = client
        .post(&request.url)
        .header(request.auth_header, auth)
        .timeout(REQUEST_TIMEOUT);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    builder = match &request.body {
        Some(body) => builder
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
        None => builder.body(""),
    };
    let response = builder.send().await.map_err(|error| {
        NotifyError::Request(request.redact(&gitship_foundation::diagnostics::error_chain(&error)))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let answer = response.text().await.unwrap_or_default();
    let answer = truncate(
        answer
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
        MAX_ANSWER,
    );
    Err(NotifyError::Refused {
        status: status.as_u16(),
        answer: request.redact(&answer),
    })
}

/// The HTTP client of commit statuses: rustls (the process's ring provider), no redirects
/// (the token goes to the API's host only), the proxies of the environment.
fn client() -> Result<reqwest::Client, NotifyError> {
    gitship_foundation::tls::ensure_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("gitship/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| NotifyError::Request(gitship_foundation::diagnostics::error_chain(&error)))
}

/// The agent's commit statuses: where they go (from the source, the revision's `agent.notify`
/// and the tokens) and the queue of those not posted yet.
pub struct Notifier {
    source: String,
    environment: String,
    tokens: Tokens,
    target: Option<Target>,
    /// The last problem warned of, so that each is said once.
    problem: Option<String>,
    printer: Printer,
    queue: OnceLock<mpsc::Sender<StatusRequest>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Notifier")
            .field("environment", &self.environment)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Statuses for the agent of `environment` fetching `source` (a URL that may hold
    /// credentials: only its host and path are used), with `tokens`; where they go follows
    /// [`Notifier::configure`], starting from `config`.
    pub fn new(
        source: &str,
        environment: &str,
        config: Option<&NotifyConfig>,
        tokens: Tokens,
        printer: Printer,
    ) -> Notifier {
        let mut notifier = Notifier {
            source: source.to_string(),
            environment: environment.to_string(),
            tokens,
            target: None,
            problem: None,
            printer,
            queue: OnceLock::new(),
        };
        notifier.configure(config);
        notifier
    }

    /// No statuses.
    pub fn off(printer: Printer) -> Notifier {
        Notifier::new("", "", None, Tokens::default(), printer)
    }

    /// Follow `config` (the `agent.notify` of the revision just opened). A problem is warned of
    /// once, and turns statuses off until a config resolves.
    pub fn configure(&mut self, config: Option<&NotifyConfig>) {
        match resolve(&self.source, &self.environment, config, &self.tokens) {
            Ok(target) => {
                if let Some(target) = &target
                    && self.target.as_ref() != Some(target)
                {
                    tracing::debug!(
                        "agent: commit statuses go to {} `{}` ({})",
                        target.provider.as_str(),
                        target.repository,
                        target.api_url
                    );
                }
                self.target = target;
                self.problem = None;
            }
            Err(problem) => {
                if self.problem.as_ref() != Some(&problem) {
                    self.printer
                        .warn(&format!("agent: no commit statuses: {problem}"));
                }
                self.target = None;
                self.problem = Some(problem);
            }
        }
    }

    /// Queue the status `state` with `description` on commit `sha`; returns at once.
    pub fn send(&self, sha: &str, state: CommitState, description: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let request = StatusRequest::new(target, sha, state, description);
        let queue = self
            .queue
            .get_or_init(|| spawn_poster(self.printer.clone()));
        if let Err(error) = queue.try_send(request) {
            let what = match &error {
                mpsc::error::TrySendError::Full(request)
                | mpsc::error::TrySendError::Closed(request) => request.what.clone(),
            };
            self.printer.warn(&format!(
                "agent: commit status for {what} dropped: {QUEUE} are waiting to be posted"
            ));
        }
    }
}

/// The task that posts queued statuses, one at a time; it ends when the [`Notifier`] is gone.
fn spawn_poster(printer: Printer) -> mpsc::Sender<StatusRequest> {
    let (sender, mut receiver) = mpsc::channel::<StatusRequest>(QUEUE);
    tokio::spawn(async move {
        let client = match client() {
            Ok(client) => client,
            Err(error) => {
                printer.warn(&format!("agent: no commit statuses: {error}"));
                return;
            }
        };
        while let Some(request) = receiver.recv().await {
            match post(&client, &request).await {
                Ok(()) => tracing::debug!("agent: commit status posted to {}", request.what),
                Err(error) => printer.warn(&format!(
                    "agent: commit status for {} not posted: {error}",
                    request.what
                )),
            }
        }
    });
    sender
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const TOKEN: &str = "ghp_test-token-0123456789";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn tokens() -> Tokens {
        Tokens {
            github: Token::new(TOKEN.to_string()),
            gitlab: Token::new(format!("gl-{TOKEN}")),
        }
    }

    fn location(host: &str, web: &str, path: &str) -> Option<SourceLocation> {
        Some(SourceLocation {
            host: host.to_string(),
            web_authority: web.to_string(),
            path: path.to_string(),
        })
    }

    #[test]
    fn source_urls_give_their_host_and_repository() {
        let cases = [
            (
                "https://github.com/acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "https://github.com/acme/blog",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "https://github.com/acme/blog/",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "https://x-access-token:s3cret@github.com/acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "HTTPS://GitHub.com/acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "ssh://git@github.com/acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "ssh://git@github.com:22/acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "git@github.com:acme/blog.git",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "github.com:acme/blog",
                location("github.com", "github.com", "acme/blog"),
            ),
            (
                "git@gitlab.com:acme/platform/blog.git",
                location("gitlab.com", "gitlab.com", "acme/platform/blog"),
            ),
            (
                "https://oauth2:glpat-x@gitlab.example:8443/acme/blog.git",
                location("gitlab.example", "gitlab.example:8443", "acme/blog"),
            ),
            ("file:///srv/git/blog.git", None),
            ("/srv/git/blog.git", None),
            ("./blog:x", None),
            ("https://github.com", None),
            ("https://github.com/", None),
            ("ftp://github.com/acme/blog", None),
        ];
        for (url, expected) in cases {
            assert_eq!(SourceLocation::parse(url), expected, "{url}");
        }
    }

    #[test]
    fn the_target_comes_from_the_source_and_the_config() {
        let target = |source: &str, config: Option<&NotifyConfig>| {
            resolve(source, "staging", config, &tokens())
                .map(|t| t.map(|t| (t.provider, t.api_url, t.repository)))
        };
        let github = |api: &str, repository: &str| {
            Ok(Some((
                NotifyProvider::GitHub,
                api.to_string(),
                repository.to_string(),
            )))
        };
        let gitlab = |api: &str, repository: &str| {
            Ok(Some((
                NotifyProvider::GitLab,
                api.to_string(),
                repository.to_string(),
            )))
        };
        assert_eq!(
            target("git@github.com:acme/blog.git", None),
            github("https://api.github.com", "acme/blog")
        );
        assert_eq!(
            target("https://tok@gitlab.com/acme/platform/blog.git", None),
            gitlab("https://gitlab.com/api/v4", "acme/platform/blog")
        );
        // A self-hosted instance: the provider is configured, the API is on the source's host.
        let gitlab_config = NotifyConfig {
            provider: Some(NotifyProvider::GitLab),
            ..NotifyConfig::default()
        };
        assert_eq!(
            target(
                "https://git.example:8443/acme/blog.git",
                Some(&gitlab_config)
            ),
            gitlab("https://git.example:8443/api/v4", "acme/blog")
        );
        let github_config = NotifyConfig {
            provider: Some(NotifyProvider::GitHub),
            ..NotifyConfig::default()
        };
        assert_eq!(
            target("git@ghe.example:acme/blog.git", Some(&github_config)),
            github("https://ghe.example/api/v3", "acme/blog")
        );
        // Everything configured: a local source.
        let full = NotifyConfig {
            provider: Some(NotifyProvider::GitHub),
            repository: Some("acme/site".to_string()),
            api_url: Some("http://127.0.0.1:9".to_string()),
            status_url: Some("https://agent.example/status".to_string()),
        };
        assert_eq!(
            target("file:///srv/git/blog.git", Some(&full)),
            github("http://127.0.0.1:9", "acme/site")
        );
        // An unknown host without config: off, with what to set when a token is there.
        assert_eq!(
            resolve(
                "https://git.example/acme/blog.git",
                "staging",
                None,
                &Tokens::default()
            ),
            Ok(None)
        );
        let problem = target("https://user:s3cret@git.example/acme/blog.git", None).unwrap_err();
        assert!(problem.contains("set `agent.notify.provider`"), "{problem}");
        assert!(!problem.contains("s3cret"), "{problem}");
        let problem = target("/srv/git/blog.git", Some(&github_config)).unwrap_err();
        assert!(
            problem.contains("set `agent.notify.repository`"),
            "{problem}"
        );
        // A GitHub repository is `owner/name`.
        let problem = target("https://github.com/acme/platform/blog", None).unwrap_err();
        assert!(problem.contains("expected `owner/name`"), "{problem}");
        // No token for the provider: off, quietly.
        let only_gitlab = Tokens {
            github: None,
            gitlab: Token::new("x".to_string()),
        };
        assert_eq!(
            resolve(
                "https://github.com/acme/blog",
                "staging",
                None,
                &only_gitlab
            ),
            Ok(None)
        );
        assert_eq!(Token::new(String::new()), None);
    }

    fn target(provider: NotifyProvider, api_url: &str) -> Target {
        let config = NotifyConfig {
            provider: Some(provider),
            repository: Some("acme/platform-x".to_string()),
            api_url: Some(api_url.to_string()),
            status_url: Some("https://agent.example/status?x=1".to_string()),
        };
        let source = "https://example.invalid/acme/platform-x";
        let mut target = resolve(source, "staging", Some(&config), &tokens())
            .expect("a target")
            .expect("statuses on");
        target.repository = match provider {
            NotifyProvider::GitHub => "acme/blog".to_string(),
            NotifyProvider::GitLab => "acme/platform/blog".to_string(),
        };
        target
    }

    #[test]
    fn a_github_status_is_json_with_a_bearer_token() {
        let target = target(NotifyProvider::GitHub, "https://api.github.com");
        let request = StatusRequest::new(&target, SHA, CommitState::Running, "deploying");
        assert_eq!(
            request.url,
            format!("https://api.github.com/repos/acme/blog/statuses/{SHA}")
        );
        assert_eq!(
            request.body,
            Some(serde_json::json!({
                "state": "pending",
                "description": "deploying",
                "context": "gitship/staging",
                "target_url": "https://agent.example/status?x=1",
            }))
        );
        assert_eq!(request.auth_header, "authorization");
        assert_eq!(request.auth_value(), format!("Bearer {TOKEN}"));
        for (state, expected) in [
            (CommitState::Pending, "pending"),
            (CommitState::Success, "success"),
            (CommitState::Failure, "failure"),
        ] {
            let request = StatusRequest::new(&target, SHA, state, "x");
            assert_eq!(request.body.expect("a body")["state"], expected);
        }
        let debug = format!("{request:?} {target:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        let long = "x".repeat(500);
        let request = StatusRequest::new(&target, SHA, CommitState::Failure, &long);
        let body = request.body.expect("a body");
        assert_eq!(
            body["description"].as_str().map(|d| d.chars().count()),
            Some(MAX_DESCRIPTION)
        );
    }

    #[test]
    fn a_gitlab_status_is_a_query_with_a_private_token() {
        let target = target(NotifyProvider::GitLab, "https://gitlab.example/api/v4");
        let request =
            StatusRequest::new(&target, SHA, CommitState::Running, "deploying to staging");
        assert_eq!(
            request.url,
            format!(
                "https://gitlab.example/api/v4/projects/acme%2Fplatform%2Fblog/statuses/{SHA}?state=running&name=gitship%2Fstaging&description=deploying%20to%20staging&target_url=https%3A%2F%2Fagent.example%2Fstatus%3Fx%3D1"
            )
        );
        assert_eq!(request.body, None);
        assert_eq!(request.auth_header, "private-token");
        assert_eq!(request.auth_value(), format!("gl-{TOKEN}"));
        for (state, expected) in [
            (CommitState::Pending, "state=pending&"),
            (CommitState::Success, "state=success&"),
            (CommitState::Failure, "state=failed&"),
        ] {
            let request = StatusRequest::new(&target, SHA, state, "x");
            assert!(request.url.contains(expected), "{}", request.url);
        }
    }

    /// One request a stand-in API received.
    #[derive(Debug)]
    struct Received {
        head: String,
        body: String,
    }

    /// A stand-in API on loopback: answers each request with `status` and `answer`, and hands
    /// back what it received.
    async fn stand_in(
        status: u16,
        answer: String,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut raw = Vec::new();
                let mut buffer = [0u8; 4096];
                let (head, length) = loop {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    if let Some((head, _)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (head.to_string(), length);
                    }
                };
                while raw.len() < head.len() + 4 + length {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buffer[..read]);
                }
                let body = String::from_utf8_lossy(&raw[head.len() + 4..]).to_string();
                let _ = sender.send(Received { head, body });
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        (format!("http://{address}"), receiver)
    }

    #[tokio::test]
    async fn post_sends_the_token_to_the_api_and_never_says_it() {
        let (api, mut received) = stand_in(201, "{}".to_string()).await;
        let target = target(NotifyProvider::GitLab, &api);
        let request = StatusRequest::new(&target, SHA, CommitState::Success, "synced");
        let client = client().expect("a client");
        post(&client, &request).await.expect("posted");
        let got = received.recv().await.expect("a request");
        assert!(
            got.head.starts_with(&format!(
                "POST /projects/acme%2Fplatform%2Fblog/statuses/{SHA}?state=success&name=gitship%2Fstaging"
            )),
            "{got:?}"
        );
        assert!(
            got.head
                .to_ascii_lowercase()
                .contains(&format!("private-token: gl-{TOKEN}")),
            "{got:?}"
        );

        // An API that echoes the token in its refusal: the error does not.
        let (api, mut received) = stand_in(422, format!("bad token gl-{TOKEN}\nnope")).await;
        let target = self::target(NotifyProvider::GitHub, &api);
        let request = StatusRequest::new(&target, SHA, CommitState::Failure, "failed");
        let error = post(&client, &request).await.expect_err("refused");
        let text = error.to_string();
        assert!(text.starts_with("HTTP 422: bad token gl-"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        let got = received.recv().await.expect("a request");
        assert!(
            got.head.starts_with("POST /repos/acme/blog/statuses/"),
            "{got:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&got.body).expect("JSON");
        assert_eq!(body["state"], "failure", "{got:?}");
        assert!(
            got.head.to_ascii_lowercase().contains(&format!(
                "authorization: bearer {}",
                TOKEN.to_ascii_lowercase()
            )),
            "{got:?}"
        );

        // Nobody listening: an error, quickly, without the token.
        let target = self::target(NotifyProvider::GitHub, "http://127.0.0.1:9");
        let request = StatusRequest::new(&target, SHA, CommitState::Failure, "failed");
        let error = post(&client, &request).await.expect_err("no API");
        assert!(!error.to_string().contains(TOKEN), "{error}");
    }

    #[test]
    fn helpers_encode_and_cut() {
        assert_eq!(percent_encode("a/b c~-._é"), "a%2Fb%20c~-._%C3%A9");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(format!("{:?}", Token::new("x".into())), "Some(<sensitive>)");
    }
}
