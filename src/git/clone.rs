//! A Git source in a clone of gitship's own, in a cache directory, fetched with git2 (never the
//! user's work tree, never the `git` program): what the agent follows, and where `deploy --rev`
//! checks a revision out.
//!
//! One clone per source URL, under `<cache>/<sha256(url)[..16]>`. A fetch updates
//! `refs/remotes/origin/<branch>`; [`GitSource::checkout`] then makes the clone's work tree
//! exactly that commit (forced, untracked files removed), so every operation the agent runs
//! sees a clean tree at one commit.
//!
//! Credentials: for SSH, the SSH agent, then `GITSHIP_GIT_SSH_KEY` (a private key file); for
//! HTTPS, the token in `GITSHIP_GIT_TOKEN` (user `GITSHIP_GIT_USERNAME`, default
//! `x-access-token` as GitHub expects), or the credentials in the URL. Credentials are never
//! printed: [`display_url`] strips them from every message. A key file that does not exist is
//! not offered (the generated Deployment names one in an optional Secret).
//!
//! SSH host keys: with `GITSHIP_GIT_KNOWN_HOSTS` set, the server's key must be listed in that
//! file for its host ([`crate::git::known_hosts`]; a missing file refuses every SSH server);
//! without it, libgit2 checks `~/.ssh/known_hosts` as before.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use git2::{FetchOptions, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use gitship_foundation::diagnostics::{UserError, user_error};

/// A Git commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revision {
    pub sha: String,
    /// The commit's first line.
    pub subject: String,
    pub author: String,
}

/// A Git source the agent follows.
pub struct GitSource {
    repository: Repository,
    /// The URL as given (may hold credentials: never printed).
    url: String,
    pub branch: String,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GitSource")
            .field("url", &display_url(&self.url))
            .field("branch", &self.branch)
            .finish()
    }
}

/// `url` without a password or token (`https://user:token@host/x` -> `https://host/x`).
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        // `ssh://git@host` names a user, not a secret: keep it; drop anything after a colon.
        Some((user, host)) if scheme == "ssh" && !user.contains(':') => {
            format!("{scheme}://{user}@{host}{path}")
        }
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_string(),
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/gitship/agent`, else `~/.cache/gitship/agent`,
/// else a directory under the system's temporary directory.
pub fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("gitship").join("agent");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home)
            .join(".cache")
            .join("gitship")
            .join("agent");
    }
    std::env::temp_dir().join("gitship-agent")
}

/// A local path given as a source becomes a `file://`-free path git2 accepts as is; URLs stay.
fn is_url(source: &str) -> bool {
    source.contains("://") || (source.contains('@') && source.contains(':'))
}

impl GitSource {
    /// Open (or clone) the cache's clone of `url`. `branch`: the branch to follow; `None` takes
    /// the source's default branch (its `HEAD`).
    pub fn open(url: &str, branch: Option<&str>, cache: &Path) -> Result<GitSource> {
        let url = if is_url(url) {
            url.to_string()
        } else {
            let path = Path::new(url);
            path.canonicalize()
                .map_err(|err| {
                    UserError::new(
                        format!("the Git source `{}` cannot be read: {err}", path.display()),
                        "give `--source` a Git URL (file://, https://, ssh://) or the path of a Git repository",
                    )
                })?
                .to_string_lossy()
                .into_owned()
        };
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        let dir = cache.join(&digest[..16]);
        // The cache keeps its mode when it exists (the user named it); the clone is private.
        gitship_foundation::private_file::create_dir(cache)
            .map_err(user_error)
            .with_context(|| {
                format!(
                    "cannot create the agent's cache directory `{}`",
                    cache.display()
                )
            })?;
        // The clone's directory is a directory of the cache, never a link to one elsewhere (a
        // checkout writes there).
        let clone_dir = || {
            gitship_foundation::private_file::create_dir_in(cache, &dir)
                .map_err(user_error)
                .with_context(|| format!("cannot keep the clone `{}`", dir.display()))
        };
        clone_dir()?;
        let repository = match Repository::open(&dir) {
            Ok(repository) => repository,
            Err(_) => {
                // New (empty), or broken: cloned into afresh.
                std::fs::remove_dir_all(&dir).with_context(|| {
                    format!("cannot remove the broken clone `{}`", dir.display())
                })?;
                clone_dir()?;
                clone(&url, &dir)?
            }
        };
        exclude_state(&repository)?;
        let branch = match branch {
            Some(branch) => branch.to_string(),
            None => default_branch(&repository, &url)?,
        };
        Ok(GitSource {
            repository,
            url,
            branch,
        })
    }

    /// The source's URL without credentials.
    pub fn display_url(&self) -> String {
        display_url(&self.url)
    }

    /// The clone's work tree.
    pub fn work_tree(&self) -> Result<PathBuf> {
        let dir = self
            .repository
            .workdir()
            .context("the agent's clone has no work tree")?;
        Ok(dir.canonicalize()?)
    }

    /// Fetch the branch; its newest commit.
    pub fn fetch(&self) -> Result<Revision> {
        let mut remote = self
            .repository
            .remote_anonymous(&self.url)
            .map_err(|err| self.git_error("cannot use the source", err))?;
        let refspec = format!(
            "+refs/heads/{branch}:refs/remotes/origin/{branch}",
            branch = self.branch
        );
        let (mut options, host_key) = fetch_options(&self.url);
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(|err| host_key.or(self.fetch_failed(err), &self.url))?;
        // libgit2 fetches a refspec whose branch is gone without a word, and the remote-tracking
        // branch keeps its last commit: ask what the source has (the list stays after the
        // fetch's connection closed).
        let wanted = format!("refs/heads/{}", self.branch);
        let listed = remote
            .list()
            .map_err(|err| self.fetch_failed(err))?
            .iter()
            .any(|head| head.name() == wanted);
        if !listed {
            return Err(FetchFailed {
                kind: FetchFailure::BranchMissing,
                error: UserError::new(
                    format!(
                        "branch `{}` does not exist in `{}` (any more): it was deleted or renamed",
                        self.branch,
                        self.display_url()
                    ),
                    "push the branch again, or point the agent at the branch to follow (`--branch`, `agent.branch`)",
                ),
            }
            .into());
        }
        let reference = format!("refs/remotes/origin/{}", self.branch);
        let commit = self
            .repository
            .find_reference(&reference)
            .and_then(|r| r.peel_to_commit())
            .map_err(|err| {
                UserError::new(
                    format!(
                        "branch `{}` not found in `{}`: {}",
                        self.branch,
                        self.display_url(),
                        err.message()
                    ),
                    "pass the branch to follow with `--branch` or `agent.branch`",
                )
            })?;
        Ok(revision(&commit))
    }

    /// The commit `sha`, when the clone has it.
    pub fn revision(&self, sha: &str) -> Option<Revision> {
        let oid = git2::Oid::from_str(sha).ok()?;
        let commit = self.repository.find_commit(oid).ok()?;
        Some(revision(&commit))
    }

    /// Fetch every branch and tag (for `deploy --rev` of any revision of a local repository).
    pub fn fetch_all(&self) -> Result<()> {
        let mut remote = self
            .repository
            .remote_anonymous(&self.url)
            .map_err(|err| self.git_error("cannot use the source", err))?;
        let (mut options, host_key) = fetch_options(&self.url);
        remote
            .fetch(
                &[
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                Some(&mut options),
                None,
            )
            .map_err(|err| host_key.or(self.git_error("cannot fetch", err), &self.url))?;
        Ok(())
    }

    /// Make the work tree exactly commit `sha`; with [`LargeFiles::SkipOver`], blobs larger than
    /// its limit are left out of the work tree.
    ///
    /// A checkout reads each blob whole, so one 200 MB file anywhere in the repository would
    /// set the agent's memory. gitship reads no file over the readers' limit unless it builds
    /// images: such blobs are not written, and their index entries are marked
    /// assume-unchanged, so the tree still reads as clean and content tags are what CI computed
    /// (they hash committed blob ids, not files).
    pub fn checkout(&self, sha: &str, large_files: LargeFiles) -> Result<()> {
        let oid = git2::Oid::from_str(sha).with_context(|| format!("`{sha}` is not a commit"))?;
        let commit = self
            .repository
            .find_commit(oid)
            .map_err(|err| self.git_error("cannot find the commit", err))?;
        let tree = commit
            .tree()
            .map_err(|err| self.git_error("cannot read the commit's tree", err))?;
        let skipped = match large_files {
            LargeFiles::Include => Vec::new(),
            LargeFiles::SkipOver(limit) => self.large_blobs(&tree, limit)?,
        };
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout
            .force()
            .remove_untracked(true)
            .remove_ignored(false);
        if !skipped.is_empty() {
            // Exclusions first: libgit2 takes the first pathspec that matches.
            for path in &skipped {
                checkout.path(format!("!{path}"));
            }
            checkout.path("*");
        }
        self.repository
            .checkout_tree(commit.as_object(), Some(&mut checkout))
            .map_err(|err| self.git_error("cannot check out", err))?;
        self.repository
            .set_head_detached(oid)
            .map_err(|err| self.git_error("cannot check out", err))?;
        if !skipped.is_empty() {
            self.assume_unchanged(&tree, &skipped)
                .map_err(|err| self.git_error("cannot write the index", err))?;
        }
        Ok(())
    }

    /// The paths of the blobs of `tree` over `limit` bytes, from the object headers (no blob is
    /// read); paths with glob characters are kept (they cannot be excluded by a pathspec).
    fn large_blobs(&self, tree: &git2::Tree, limit: u64) -> Result<Vec<String>> {
        let odb = self
            .repository
            .odb()
            .map_err(|err| self.git_error("cannot open the object database", err))?;
        let mut large = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob)
                && let Ok(name) = entry.name()
                && odb
                    .read_header(entry.id())
                    .is_ok_and(|(size, _)| size as u64 > limit)
            {
                let path = format!("{dir}{name}");
                if !path.contains(['*', '?', '[', ']', '\\', '!']) {
                    large.push(path);
                }
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(|err| self.git_error("cannot walk the commit's tree", err))?;
        Ok(large)
    }

    /// The index of `tree`, with `paths` marked assume-unchanged (`CE_VALID`): not in the work
    /// tree, and not a change.
    fn assume_unchanged(&self, tree: &git2::Tree, paths: &[String]) -> Result<(), git2::Error> {
        const ASSUME_VALID: u16 = 0x8000;
        let mut index = self.repository.index()?;
        index.read_tree(tree)?;
        for path in paths {
            if let Some(mut entry) = index.get_path(Path::new(path), 0) {
                entry.flags |= ASSUME_VALID;
                index.add(&entry)?;
            }
        }
        index.write()
    }

    /// A failed fetch, said as what happened: the source is gone, unreachable, or refused the
    /// credentials ([`FetchFailed`]).
    fn fetch_failed(&self, err: git2::Error) -> anyhow::Error {
        let url = self.display_url();
        let local = local_path(&self.url);
        let (kind, message, hint) = if let Some(path) = local.filter(|path| !path.exists()) {
            (
                FetchFailure::SourceMissing,
                format!(
                    "the Git source `{url}` does not exist (any more): `{}` was moved or deleted",
                    path.display()
                ),
                "point the agent at where the repository is now (`--source`, `agent.source`)",
            )
        } else if err.code() == git2::ErrorCode::Auth
            || err.message().contains("credentials")
            || err.message().contains("authentication")
            || err.message().contains(" 401")
            || err.message().contains(" 403")
        {
            (
                FetchFailure::Credentials,
                format!("`{url}` refused the agent's credentials: {}", err.message()),
                "check the credentials (SSH agent or GITSHIP_GIT_SSH_KEY; GITSHIP_GIT_TOKEN for HTTPS) and that they may read the repository",
            )
        } else if err.message().contains(" 404") || err.code() == git2::ErrorCode::NotFound {
            (
                FetchFailure::SourceMissing,
                format!(
                    "`{url}` has no repository there (any more): {}",
                    err.message()
                ),
                "the repository was moved, renamed or deleted, or the credentials may not see it: point the agent at where it is now (`--source`)",
            )
        } else if matches!(
            err.class(),
            git2::ErrorClass::Net
                | git2::ErrorClass::Os
                | git2::ErrorClass::Http
                | git2::ErrorClass::Ssl
        ) {
            (
                FetchFailure::Unreachable,
                format!("cannot reach `{url}`: {}", err.message()),
                "check that the host is up and reachable from the agent (DNS, network policies, proxies); the agent tries again at its next poll",
            )
        } else {
            (
                FetchFailure::Other,
                format!(
                    "cannot fetch `{url}` (branch `{}`): {}",
                    self.branch,
                    err.message()
                ),
                "check the URL and the credentials (SSH agent or GITSHIP_GIT_SSH_KEY; GITSHIP_GIT_TOKEN for HTTPS)",
            )
        };
        FetchFailed {
            kind,
            error: UserError::new(message, hint),
        }
        .into()
    }

    fn git_error(&self, what: &str, err: git2::Error) -> anyhow::Error {
        UserError::new(
            format!(
                "{what} `{}` (branch `{}`): {}",
                self.display_url(),
                self.branch,
                err.message()
            ),
            "check the URL and the credentials (SSH agent or GITSHIP_GIT_SSH_KEY; GITSHIP_GIT_TOKEN for HTTPS)",
        )
        .into()
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    /// The source has no branch of that name (any more).
    BranchMissing,
    /// The repository is not where the URL says (moved, renamed, deleted).
    SourceMissing,
    /// The host cannot be reached.
    Unreachable,
    /// The credentials were refused.
    Credentials,
    Other,
}

impl FetchFailure {
    /// The reason of the Event the agent records.
    pub fn reason(self) -> &'static str {
        match self {
            FetchFailure::BranchMissing => "BranchNotFound",
            _ => "GitFetchFailed",
        }
    }
}

/// A failed fetch: why, and the [`UserError`] that says it.
#[derive(Debug)]
pub struct FetchFailed {
    pub kind: FetchFailure,
    pub error: UserError,
}

impl std::fmt::Display for FetchFailed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.error.message)
    }
}

impl std::error::Error for FetchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The directory a local source names (`file://` URL or path).
fn local_path(url: &str) -> Option<PathBuf> {
    match url.strip_prefix("file://") {
        Some(path) => Some(PathBuf::from(path)),
        None if !is_url(url) => Some(PathBuf::from(url)),
        None => None,
    }
}

/// Whether a checkout writes blobs over the readers' size limit ([`GitSource::checkout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeFiles {
    /// Everything: what a build needs.
    Include,
    /// Not the blobs over this many bytes: what rendering, Terraform and drift need when no
    /// reader of theirs accepts a file that large.
    SkipOver(u64),
}

/// What a checkout must never delete or count as a change: gitship's own state (`.gitship/`:
/// Terraform's data directory, the sandbox) and Terraform's local state, should a module keep
/// it in the tree (the agent refuses Terraform with a local backend, but a state file found
/// there is still never cleaned away). Ignored through `.git/info/exclude`, so that it never
/// makes the tree dirty (a dirty tree would change the content tags CI computed) and
/// `remove_untracked` never removes it.
const KEPT_IN_CHECKOUT: [&str; 5] = [
    ".gitship/",
    "terraform.tfstate",
    "terraform.tfstate.backup",
    "terraform.tfstate.d/",
    ".terraform/",
];

fn exclude_state(repository: &Repository) -> Result<()> {
    let file = repository.path().join("info").join("exclude");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let missing: Vec<&str> = KEPT_IN_CHECKOUT
        .into_iter()
        .filter(|pattern| !text.lines().any(|line| line.trim() == *pattern))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let text = format!(
        "{text}\n# gitship agent: its own state and Terraform's, never removed by a checkout\n{}\n",
        missing.join("\n")
    );
    gitship_foundation::private_file::write_in(
        repository.path(),
        &file,
        text.as_bytes(),
        gitship_foundation::private_file::Existing::Replace,
    )
    .map_err(user_error)?;
    Ok(())
}

/// The commit as the status shows it.
fn revision(commit: &git2::Commit) -> Revision {
    let author = commit.author();
    Revision {
        sha: commit.id().to_string(),
        subject: commit.summary().ok().flatten().unwrap_or("").to_string(),
        author: author.name().ok().unwrap_or("").to_string(),
    }
}

fn clone(url: &str, dir: &Path) -> Result<Repository> {
    let mut builder = git2::build::RepoBuilder::new();
    let (options, host_key) = fetch_options(url);
    builder.fetch_options(options);
    // Nothing is written yet: the first checkout is [`GitSource::checkout`]'s, which can leave
    // large blobs out.
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.dry_run();
    builder.with_checkout(checkout);
    builder.clone(url, dir).map_err(|err| {
        host_key.or(
            UserError::new(
                format!("cannot clone `{}`: {}", display_url(url), err.message()),
                "check the URL and the credentials (SSH agent or GITSHIP_GIT_SSH_KEY; GITSHIP_GIT_TOKEN for HTTPS)",
            )
            .into(),
            url,
        )
    })
}

/// The branch the clone's `HEAD` named when it was cloned (the source's default branch).
fn default_branch(repository: &Repository, url: &str) -> Result<String> {
    let head = repository
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string))
        .and_then(|t| t.strip_prefix("refs/remotes/origin/").map(str::to_string));
    if let Some(branch) = head {
        return Ok(branch);
    }
    let head = repository.head().ok();
    head.as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            UserError::new(
                format!("cannot tell the default branch of `{}`", display_url(url)),
                "pass the branch to follow with `--branch` or `agent.branch`",
            )
            .into()
        })
}

/// The variable naming a private key file for SSH.
pub const SSH_KEY_VARIABLE: &str = "GITSHIP_GIT_SSH_KEY";
/// The variable naming the `known_hosts` file SSH servers are checked against.
pub const KNOWN_HOSTS_VARIABLE: &str = "GITSHIP_GIT_KNOWN_HOSTS";
/// The variable holding an HTTPS token.
pub const TOKEN_VARIABLE: &str = "GITSHIP_GIT_TOKEN";
/// The variable holding the HTTPS token's user name.
pub const USERNAME_VARIABLE: &str = "GITSHIP_GIT_USERNAME";

/// The port of an SSH URL (`ssh://host:2222/...`; scp-like `user@host:path` is 22).
fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
    else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let port = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
        None => host.rsplit_once(':').map(|(_, port)| port),
    };
    port.and_then(|port| port.parse().ok()).unwrap_or(22)
}

/// The SSH host key check under `GITSHIP_GIT_KNOWN_HOSTS` (see the module documentation):
/// `Ok` for a listed key, else an error naming the host, the key's type and fingerprint.
fn check_host_key(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key: Option<(&[u8], &'static str)>,
) -> Result<(), String> {
    use crate::git::known_hosts::{KnownHosts, Verdict, fingerprint};
    let Some((key, key_type)) = key else {
        return Err(format!(
            "cannot check the host key of `{host}`: the SSH library did not pass it"
        ));
    };
    let hosts = KnownHosts::read(known_hosts)
        .map_err(|error| format!("the SSH host `{host}` cannot be checked: {error}"))?;
    let shown = format!("{key_type} key {}", fingerprint(key));
    match hosts.check(host, port, key) {
        Verdict::Known => Ok(()),
        Verdict::Unknown => Err(format!(
            "the SSH host `{host}` (port {port}) is not in `{}`: its {shown} is not trusted; add the host's key (`ssh-keyscan`, checked against the provider's published fingerprints)",
            known_hosts.display()
        )),
        Verdict::Changed => Err(format!(
            "the SSH host key of `{host}` (port {port}) does not match `{}`: the server offered {shown}; someone may be intercepting the connection, or the host's key changed",
            known_hosts.display()
        )),
        Verdict::Revoked => Err(format!(
            "the SSH host `{host}` offered a key that `{}` marks `@revoked` ({shown})",
            known_hosts.display()
        )),
    }
}

/// Why the SSH host key check refused a server, kept for the error a fetch returns: libgit2
/// replaces the check's message with its own ("invalid or unknown remote ssh hostkey").
#[derive(Debug, Clone, Default)]
struct HostKeyRefusal(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl HostKeyRefusal {
    fn set(&self, message: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message.to_string());
    }

    /// The refusal as the fetch's error, if the check refused; else `otherwise`.
    fn or(&self, otherwise: anyhow::Error, url: &str) -> anyhow::Error {
        let refused = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match refused {
            Some(message) => UserError::new(
                format!("cannot fetch `{}`: {message}", display_url(url)),
                "list the server's host key in the file GITSHIP_GIT_KNOWN_HOSTS names (in the cluster, the `known_hosts` key of Secret `gitship-agent-ssh`)",
            )
            .into(),
            None => otherwise,
        }
    }
}

/// Fetch options with the credentials of the environment (see the module documentation), and
/// what the host key check refused.
fn fetch_options(url: &str) -> (FetchOptions<'static>, HostKeyRefusal) {
    let mut callbacks = RemoteCallbacks::new();
    let refusal = HostKeyRefusal::default();
    if let Some(known_hosts) = std::env::var_os(KNOWN_HOSTS_VARIABLE) {
        let port = ssh_port(url);
        let known_hosts = PathBuf::from(known_hosts);
        let refused = refusal.clone();
        callbacks.certificate_check(move |cert, host| {
            // HTTPS: libgit2's own TLS verification.
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            let key = hostkey
                .hostkey()
                .zip(hostkey.hostkey_type().map(|kind| kind.name()));
            check_host_key(&known_hosts, host, port, key)
                .map(|()| git2::CertificateCheckStatus::CertificateOk)
                .map_err(|message| {
                    refused.set(&message);
                    git2::Error::from_str(&message)
                })
        });
    }
    let mut attempts = 0u32;
    callbacks.credentials(move |_url, username, allowed| {
        attempts += 1;
        // libgit2 asks again after every refusal: stop after a few, or it loops for ever.
        if attempts > 4 {
            return Err(git2::Error::from_str("the credentials were refused"));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            if attempts == 1
                && let Ok(credential) = git2::Cred::ssh_key_from_agent(user)
            {
                return Ok(credential);
            }
            if let Some(key) = std::env::var_os(SSH_KEY_VARIABLE)
                && Path::new(&key).is_file()
            {
                return git2::Cred::ssh_key(user, None, Path::new(&key), None);
            }
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
            && let Ok(token) = std::env::var(TOKEN_VARIABLE)
            && !token.is_empty()
        {
            let user = std::env::var(USERNAME_VARIABLE)
                .ok()
                .filter(|user| !user.is_empty())
                .unwrap_or_else(|| "x-access-token".to_string());
            return git2::Cred::userpass_plaintext(&user, &token);
        }
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(user);
        }
        Err(git2::Error::from_str(
            "no credentials: start an SSH agent, or set GITSHIP_GIT_SSH_KEY or GITSHIP_GIT_TOKEN",
        ))
    });
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks);
    (options, refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_ports() {
        for (url, port) in [
            ("ssh://git@github.com/acme/r.git", 22),
            ("ssh://git@git.example:2222/acme/r.git", 2222),
            ("ssh://[::1]:2200/r.git", 2200),
            ("git@github.com:acme/r.git", 22),
            ("https://github.com/acme/r.git", 22),
        ] {
            assert_eq!(ssh_port(url), port, "{url}");
        }
    }

    #[test]
    fn host_keys_are_checked_against_the_file_and_errors_show_no_key_material() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let key = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
        let other = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20oooooooooooooooooooooooooooooooo";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let file = dir.path().join("known_hosts");
        gitship_foundation::private_file::write(
            &file,
            format!("git.example {}\n", "ssh-ed25519 ".to_string() + &encoded).as_bytes(),
        )
        .unwrap();
        let typed = |k: &'static [u8]| Some((k, "ssh-ed25519"));
        assert_eq!(check_host_key(&file, "git.example", 22, typed(key)), Ok(()));
        let changed = check_host_key(&file, "git.example", 22, typed(other)).unwrap_err();
        assert!(
            changed.contains("does not match") && changed.contains("SHA256:"),
            "{changed}"
        );
        let unknown = check_host_key(&file, "evil.example", 22, typed(key)).unwrap_err();
        assert!(
            unknown.contains("is not in") && unknown.contains("evil.example"),
            "{unknown}"
        );
        let other_port = check_host_key(&file, "git.example", 2222, typed(key)).unwrap_err();
        assert!(other_port.contains("port 2222"), "{other_port}");
        for message in [&changed, &unknown, &other_port] {
            let other_encoded = base64::engine::general_purpose::STANDARD.encode(other);
            assert!(
                !message.contains(&encoded) && !message.contains(&other_encoded),
                "{message}"
            );
        }
        let missing = check_host_key(&dir.path().join("nope"), "git.example", 22, typed(key));
        assert!(missing.unwrap_err().contains("cannot be checked"));
        assert!(check_host_key(&file, "git.example", 22, None).is_err());
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            display_url("https://x-access-token:ghp_secret@github.com/acme/blog.git"),
            "https://github.com/acme/blog.git"
        );
        assert_eq!(
            display_url("https://ghp_secret@github.com/acme/blog.git"),
            "https://github.com/acme/blog.git"
        );
        assert_eq!(
            display_url("ssh://git@github.com/acme/blog.git"),
            "ssh://git@github.com/acme/blog.git"
        );
        assert_eq!(
            display_url("ssh://git:pw@github.com/acme/blog.git"),
            "ssh://github.com/acme/blog.git"
        );
        assert_eq!(display_url("/srv/git/blog.git"), "/srv/git/blog.git");
    }

    fn commit(repository: &Repository, file: &str, text: &str, message: &str) -> String {
        let root = repository.workdir().unwrap().to_path_buf();
        std::fs::write(root.join(file), text).unwrap();
        let mut index = repository.index().unwrap();
        index.add_path(Path::new(file)).unwrap();
        index.write().unwrap();
        let tree = repository.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("Ada", "ada@example.com").unwrap();
        let parents: Vec<git2::Commit> = repository
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repository
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap()
            .to_string()
    }

    #[test]
    fn fetches_and_checks_out_new_commits_in_its_own_clone() {
        let upstream_dir = tempfile::tempdir().unwrap();
        let upstream = Repository::init(upstream_dir.path()).unwrap();
        let first = commit(&upstream, "a.txt", "one", "first");
        let cache = tempfile::tempdir().unwrap();
        let source =
            GitSource::open(upstream_dir.path().to_str().unwrap(), None, cache.path()).unwrap();
        let fetched = source.fetch().unwrap();
        assert_eq!(fetched.sha, first);
        assert_eq!(fetched.subject, "first");
        assert_eq!(fetched.author, "Ada");
        let second = commit(&upstream, "a.txt", "two", "second\n\nbody");
        let fetched = source.fetch().unwrap();
        assert_eq!(
            (fetched.sha.as_str(), fetched.subject.as_str()),
            (second.as_str(), "second")
        );
        source.checkout(&second, LargeFiles::Include).unwrap();
        let tree = source.work_tree().unwrap();
        assert_ne!(tree, upstream_dir.path().canonicalize().unwrap());
        assert_eq!(std::fs::read_to_string(tree.join("a.txt")).unwrap(), "two");
        // A stray file in the clone does not survive a checkout; gitship's state does, and does
        // not make the tree dirty.
        std::fs::write(tree.join("stray.txt"), "x").unwrap();
        std::fs::create_dir_all(tree.join(".gitship/terraform")).unwrap();
        std::fs::write(tree.join(".gitship/terraform/state"), "x").unwrap();
        source.checkout(&first, LargeFiles::Include).unwrap();
        assert_eq!(std::fs::read_to_string(tree.join("a.txt")).unwrap(), "one");
        assert!(!tree.join("stray.txt").exists());
        assert!(tree.join(".gitship/terraform/state").exists());
        assert!(!crate::git::is_dirty(&tree).unwrap());
        // Terraform's local state is never cleaned away with a checkout.
        let state = tree.join("infra/terraform.tfstate.d/staging/terraform.tfstate");
        std::fs::create_dir_all(state.parent().unwrap()).unwrap();
        std::fs::write(&state, "{}").unwrap();
        std::fs::write(tree.join("infra/terraform.tfstate"), "{}").unwrap();
        source.checkout(&second, LargeFiles::Include).unwrap();
        assert!(state.exists());
        assert!(tree.join("infra/terraform.tfstate").exists());
        assert!(!crate::git::is_dirty(&tree).unwrap());
        // Opening again reuses the clone.
        let again =
            GitSource::open(upstream_dir.path().to_str().unwrap(), None, cache.path()).unwrap();
        assert_eq!(again.work_tree().unwrap(), tree);
        assert_eq!(again.branch, source.branch);
    }

    /// A blob over the readers' limit is not written by a partial checkout, and the tree still
    /// reads as clean; a full checkout writes it.
    #[test]
    fn a_partial_checkout_leaves_large_blobs_out_and_stays_clean() {
        let upstream_dir = tempfile::tempdir().unwrap();
        let upstream = Repository::init(upstream_dir.path()).unwrap();
        std::fs::create_dir_all(upstream_dir.path().join("data")).unwrap();
        let limit = 1024 * 1024;
        let size = limit + 1;
        std::fs::write(upstream_dir.path().join("data/big.bin"), vec![7u8; size]).unwrap();
        let mut index = upstream.index().unwrap();
        index.add_path(Path::new("data/big.bin")).unwrap();
        index.write().unwrap();
        let sha = commit(&upstream, "a.txt", "one", "first");
        let cache = tempfile::tempdir().unwrap();
        let source =
            GitSource::open(upstream_dir.path().to_str().unwrap(), None, cache.path()).unwrap();
        source.fetch().unwrap();
        let tree = source.work_tree().unwrap();
        let _ = std::fs::remove_file(tree.join("data/big.bin"));
        source
            .checkout(&sha, LargeFiles::SkipOver(limit as u64))
            .unwrap();
        assert!(tree.join("a.txt").exists());
        assert!(!tree.join("data/big.bin").exists());
        assert!(!crate::git::is_dirty(&tree).unwrap());
        source.checkout(&sha, LargeFiles::Include).unwrap();
        assert_eq!(
            std::fs::metadata(tree.join("data/big.bin")).unwrap().len(),
            size as u64
        );
        assert!(!crate::git::is_dirty(&tree).unwrap());
    }

    #[test]
    fn a_missing_branch_names_itself() {
        let upstream_dir = tempfile::tempdir().unwrap();
        let upstream = Repository::init(upstream_dir.path()).unwrap();
        commit(&upstream, "a.txt", "one", "first");
        let cache = tempfile::tempdir().unwrap();
        let source = GitSource::open(
            upstream_dir.path().to_str().unwrap(),
            Some("nope"),
            cache.path(),
        )
        .unwrap();
        let error = gitship_foundation::diagnostics::render(&source.fetch().unwrap_err());
        assert!(error.contains("nope"), "{error}");
    }
}
