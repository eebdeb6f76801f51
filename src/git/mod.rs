//! Git: the revision being deployed, whether the work tree is dirty, and content-addressed image
//! tags computed from Git trees.
//!
//! The gitship repository root (`-C DIR`) may lie below the Git work tree root (an example inside
//! a larger repository), so every function discovers the enclosing Git repository from the path
//! it is given and works with paths relative to that repository's work tree.

pub mod clone;
pub mod known_hosts;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Errors of reading Git state.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The path is not inside a Git work tree.
    #[error("`{}` is not inside a Git work tree", path.display())]
    NotARepository { path: PathBuf },
    /// The repository has no commit yet.
    #[error("the Git repository at `{}` has no commits yet", path.display())]
    NoCommits { path: PathBuf },
    /// A revision given by the user names no commit of the repository.
    #[error("`{revision}` is not a commit of this repository")]
    NotACommit {
        revision: String,
        #[source]
        source: git2::Error,
    },
    /// libgit2 failed.
    #[error("git: {what}: {source}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    /// A file in the work tree could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn git_error(what: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let what = what.into();
    move |source| GitError::Git { what, source }
}

/// The root of the Git work tree enclosing `path`, canonicalized; `None` outside Git.
pub fn work_tree_root(path: &Path) -> Option<PathBuf> {
    let repository = git2::Repository::discover(path).ok()?;
    repository.workdir()?.canonicalize().ok()
}

fn open(path: &Path) -> Result<git2::Repository, GitError> {
    let repository = git2::Repository::discover(path).map_err(|_| GitError::NotARepository {
        path: path.to_path_buf(),
    })?;
    if repository.workdir().is_none() {
        return Err(GitError::NotARepository {
            path: path.to_path_buf(),
        });
    }
    Ok(repository)
}

fn workdir(repository: &git2::Repository) -> Result<PathBuf, GitError> {
    let dir = repository
        .workdir()
        .ok_or_else(|| GitError::NotARepository {
            path: repository.path().to_path_buf(),
        })?;
    dir.canonicalize().map_err(|source| GitError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// The full SHA of the commit `revision` (a SHA, tag, branch or any `git rev-parse` expression)
/// names in the Git repository enclosing `root`.
pub fn resolve_revision(root: &Path, revision: &str) -> Result<String, GitError> {
    let repository = open(root)?;
    let commit = repository
        .revparse_single(revision)
        .and_then(|object| object.peel_to_commit())
        .map_err(git_error(format!("`{revision}` is not a commit")))?;
    Ok(commit.id().to_string())
}

/// Whether commit `sha` is `origin/<branch>` (else the local `<branch>` when there is no such
/// remote-tracking branch) or one of its ancestors. `Err` when neither branch exists.
pub fn reachable_from(root: &Path, sha: &str, branch: &str) -> Result<bool, GitError> {
    let repository = open(root)?;
    let tip = repository
        .find_reference(&format!("refs/remotes/origin/{branch}"))
        .or_else(|_| repository.find_reference(&format!("refs/heads/{branch}")))
        .and_then(|reference| reference.peel_to_commit())
        .map_err(git_error(format!(
            "branch `{branch}` (as `origin/{branch}` or `{branch}`)"
        )))?;
    let oid = git2::Oid::from_str(sha).map_err(git_error(format!("`{sha}`")))?;
    if tip.id() == oid {
        return Ok(true);
    }
    repository
        .graph_descendant_of(tip.id(), oid)
        .map_err(git_error("compare commits"))
}

/// Whether commit `tip` is commit `sha` or a descendant of it, in the repository at `root`;
/// `false` when either is unknown there.
pub fn contains(root: &Path, tip: &str, sha: &str) -> bool {
    let (Ok(repository), Ok(tip), Ok(sha)) = (
        open(root),
        git2::Oid::from_str(tip),
        git2::Oid::from_str(sha),
    ) else {
        return false;
    };
    tip == sha || repository.graph_descendant_of(tip, sha).unwrap_or(false)
}

/// The branch `HEAD` is on (also before its first commit); `None` when it is detached.
pub fn current_branch(repository: &git2::Repository) -> Option<String> {
    let head = repository.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// The repository's default branch, in the Git repository enclosing `root`: the one
/// `origin/HEAD` names (what a clone checks out), else the branch `HEAD` is on; `None` when
/// neither says (no `origin/HEAD` and a detached `HEAD`).
pub fn default_branch(root: &Path) -> Result<Option<String>, GitError> {
    let repository = open(root)?;
    let remote = repository
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|reference| {
            reference
                .symbolic_target()
                .ok()
                .flatten()
                .and_then(|target| target.strip_prefix("refs/remotes/origin/"))
                .map(str::to_string)
        });
    Ok(remote.or_else(|| current_branch(&repository)))
}

/// Whether commit `sha` is reachable from a remote-tracking branch (`refs/remotes/*`) of the Git
/// repository enclosing `root`: whether it was pushed, as far as the last fetch knows. `None`
/// when the repository has no remote-tracking branch at all.
pub fn reachable_from_remote(root: &Path, sha: &str) -> Result<Option<bool>, GitError> {
    let repository = open(root)?;
    let oid = git2::Oid::from_str(sha).map_err(git_error(format!("`{sha}`")))?;
    let references = repository
        .references_glob("refs/remotes/*")
        .map_err(git_error("list the remote-tracking branches"))?;
    let mut any = false;
    for reference in references {
        let Ok(tip) = reference.and_then(|r| r.peel_to_commit()) else {
            // `origin/HEAD` of a remote whose branch is gone, or a ref that is no commit.
            continue;
        };
        any = true;
        if tip.id() == oid
            || repository
                .graph_descendant_of(tip.id(), oid)
                .map_err(git_error("compare commits"))?
        {
            return Ok(Some(true));
        }
    }
    Ok(any.then_some(false))
}

/// A commit SHA as gitship shows it to people: its first 12 characters (all of it when shorter).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The full SHA of `HEAD` of the Git repository enclosing `root`.
pub fn head_sha(root: &Path) -> Result<String, GitError> {
    let repository = open(root)?;
    let head = repository
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|_| GitError::NoCommits {
            path: root.to_path_buf(),
        })?;
    Ok(head.id().to_string())
}

/// The id of commit `sha`'s tree, in the Git repository enclosing `root`; `None` when there is
/// no such commit. Two commits with the same tree (a `--no-ff` merge of what was reviewed, a
/// rebase that changed nothing) hold the same files.
pub fn tree_of(root: &Path, sha: &str) -> Option<String> {
    let repository = open(root).ok()?;
    let oid = git2::Oid::from_str(sha).ok()?;
    let commit = repository.find_commit(oid).ok()?;
    Some(commit.tree_id().to_string())
}

/// The first line of commit `sha`'s message and its author's name, in the Git repository
/// enclosing `root`; `None` when there is no such commit.
pub fn commit_info(root: &Path, sha: &str) -> Option<(String, String)> {
    let repository = open(root).ok()?;
    let oid = git2::Oid::from_str(sha).ok()?;
    let commit = repository.find_commit(oid).ok()?;
    let subject = commit.summary().ok().flatten().unwrap_or("").to_string();
    let author = commit.author().name().ok().unwrap_or("").to_string();
    Some((subject, author))
}

/// The files a branch changed: what [`diff_since`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFiles {
    /// The commit the diff starts from: the merge base of `REF` and `HEAD` (or `REF` itself
    /// when they share no history).
    pub base: String,
    /// The commit the diff ends at: `HEAD`.
    pub head: String,
    /// Every path added, modified, deleted or renamed (both sides of a rename), absolute, in
    /// path order, without duplicates.
    pub paths: Vec<PathBuf>,
}

/// The files changed between `since` (a SHA, tag, branch or any `git rev-parse` expression) and
/// `HEAD` in the Git repository enclosing `root`, as `git diff since...HEAD` shows them: from
/// their merge base, so that what the other side did meanwhile is not counted. Committed
/// changes only: the work tree and the index are not looked at.
pub fn diff_since(root: &Path, since: &str) -> Result<ChangedFiles, GitError> {
    let repository = open(root)?;
    let workdir = workdir(&repository)?;
    let head = repository
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|_| GitError::NoCommits {
            path: root.to_path_buf(),
        })?;
    let other = repository
        .revparse_single(since)
        .and_then(|object| object.peel_to_commit())
        .map_err(|source| GitError::NotACommit {
            revision: since.to_string(),
            source,
        })?;
    let base = match repository.merge_base(other.id(), head.id()) {
        Ok(oid) => repository
            .find_commit(oid)
            .map_err(git_error("read the merge base"))?,
        Err(_) => other,
    };
    let base_tree = base.tree().map_err(git_error("read the base tree"))?;
    let head_tree = head.tree().map_err(git_error("read the HEAD tree"))?;
    let diff = repository
        .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), None)
        .map_err(git_error("diff the trees"))?;
    let mut paths = std::collections::BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path() {
                paths.insert(workdir.join(path));
            }
        }
    }
    Ok(ChangedFiles {
        base: base.id().to_string(),
        head: head.id().to_string(),
        paths: paths.into_iter().collect(),
    })
}

/// Whether the work tree enclosing `root` has uncommitted changes (untracked files count,
/// ignored files do not).
pub fn is_dirty(root: &Path) -> Result<bool, GitError> {
    Ok(!dirty_paths(root, 1)?.is_empty())
}

/// Up to `limit` paths (relative to the work tree's root) with uncommitted changes, untracked
/// ones included, ignored ones not: what makes the tree dirty, to name in an error.
pub fn dirty_paths(root: &Path, limit: usize) -> Result<Vec<String>, GitError> {
    let repository = open(root)?;
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repository
        .statuses(Some(&mut options))
        .map_err(git_error("read status"))?;
    Ok(statuses
        .iter()
        .filter(|entry| entry.status() != git2::Status::CURRENT)
        .take(limit)
        .map(|entry| String::from_utf8_lossy(entry.path_bytes()).into_owned())
        .collect())
}

/// A content-addressed image tag: `<12 hex>` or `<12 hex>-dirty-<8 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentTag {
    /// Hash of the committed build inputs (12 hex digits).
    pub clean: String,
    /// Hash of the uncommitted changes in the context, when there are any (8 hex digits).
    pub dirty: Option<String>,
}

impl ContentTag {
    /// The tag as used in image references.
    pub fn tag(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ContentTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dirty {
            None => write!(f, "{}", self.clean),
            Some(dirty) => write!(f, "{}-dirty-{dirty}", self.clean),
        }
    }
}

/// What goes into an image's content tag, as paths and values (not repository types, so that
/// this module stays below `repo/`).
#[derive(Debug, Clone, Copy)]
pub struct BuildInputs<'a> {
    /// The build context directory.
    pub context: &'a Path,
    /// The Dockerfile, inside the context or not.
    pub dockerfile: &'a Path,
    pub build_args: &'a BTreeMap<String, String>,
    pub target: Option<&'a str>,
}

/// The content tag of an image built from `inputs`, in the Git repository enclosing `root`: a
/// hash of the committed files of its build context (as Git tree entries, minus what
/// `.dockerignore` excludes), its Dockerfile, build args and target. The same inputs give the
/// same tag on any commit. Uncommitted changes in the context (again minus `.dockerignore`d
/// files) add a `-dirty-<hash>` suffix.
pub fn content_tag_of(root: &Path, inputs: &BuildInputs) -> Result<ContentTag, GitError> {
    #[cfg(test)]
    tags_computed::record(root);
    let repository = open(root)?;
    let workdir = workdir(&repository)?;
    let context = canonical(inputs.context)?;
    let context_relative = context
        .strip_prefix(&workdir)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let ignore = DockerIgnore::load(&context)?;
    let head_tree = repository.head().ok().and_then(|h| h.peel_to_tree().ok());

    let mut hasher = Sha256::new();
    hasher.update(b"gitship content tag v1\n");
    if let Some(tree) = context_tree(&repository, head_tree.as_ref(), &context_relative) {
        hash_committed_files(&mut hasher, &tree, &ignore)?;
    }
    let dockerfile = canonical(inputs.dockerfile)?;
    let dockerfile_relative = dockerfile
        .strip_prefix(&workdir)
        .unwrap_or(&dockerfile)
        .to_path_buf();
    hash_dockerfile(
        &mut hasher,
        head_tree.as_ref(),
        &dockerfile,
        &dockerfile_relative,
        &context,
    );
    hash_build_options(&mut hasher, inputs);
    let clean = hex::encode(hasher.finalize())[..12].to_string();

    // Uncommitted changes in the context (and the Dockerfile when it lives elsewhere).
    let changed = changed_paths(
        &repository,
        &ignore,
        &context_relative,
        &dockerfile_relative,
        dockerfile.starts_with(&context),
    )?;
    if changed.is_empty() {
        return Ok(ContentTag { clean, dirty: None });
    }
    Ok(ContentTag {
        clean,
        dirty: Some(hash_changes(&workdir, &changed)?),
    })
}

/// How many content tags were computed in each repository, for the tests that prove an
/// operation computes each app's tag once (see `image::image_refs`).
#[cfg(test)]
pub(crate) mod tags_computed {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static COUNTS: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

    pub(crate) fn record(root: &Path) {
        let mut counts = COUNTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(root.to_path_buf()).or_default() += 1;
    }

    /// The content tags computed so far with `root` as the repository.
    pub(crate) fn of(root: &Path) -> usize {
        let counts = COUNTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.get(root).copied().unwrap_or(0)
    }
}

/// `path` made absolute with symlinks resolved.
fn canonical(path: &Path) -> Result<PathBuf, GitError> {
    path.canonicalize().map_err(|source| GitError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The tree of the context directory in `head_tree` (`context_relative` to the work tree);
/// `None` without commits or when the context is not committed.
fn context_tree<'r>(
    repository: &'r git2::Repository,
    head_tree: Option<&git2::Tree<'r>>,
    context_relative: &Path,
) -> Option<git2::Tree<'r>> {
    match head_tree {
        None => None,
        Some(tree) if context_relative.as_os_str().is_empty() => Some(tree.clone()),
        Some(tree) => tree
            .get_path(context_relative)
            .ok()
            .and_then(|entry| entry.to_object(repository).ok())
            .and_then(|object| object.into_tree().ok()),
    }
}

/// Hash every committed file (and submodule) of the context tree that `.dockerignore` keeps.
fn hash_committed_files(
    hasher: &mut Sha256,
    tree: &git2::Tree,
    ignore: &DockerIgnore,
) -> Result<(), GitError> {
    let mut files: Vec<(String, String, i32)> = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob)
            || entry.kind() == Some(git2::ObjectType::Commit)
        {
            let path = format!("{dir}{}", entry.name().unwrap_or_default());
            if !ignore.is_ignored(&path) {
                files.push((path, entry.id().to_string(), entry.filemode()));
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(git_error("walk the context tree"))?;
    for (path, id, mode) in files {
        hasher.update(format!("file {mode:o} {id} {path}\n").as_bytes());
    }
    Ok(())
}

/// Hash the committed Dockerfile and its name (relative to the context when inside it).
fn hash_dockerfile(
    hasher: &mut Sha256,
    head_tree: Option<&git2::Tree>,
    dockerfile: &Path,
    dockerfile_relative: &Path,
    context: &Path,
) {
    // The Dockerfile always counts, even when `.dockerignore` lists it (as many do).
    let committed_dockerfile = head_tree
        .and_then(|tree| tree.get_path(dockerfile_relative).ok())
        .map(|entry| entry.id().to_string())
        .unwrap_or_default();
    hasher.update(format!("dockerfile {committed_dockerfile}\n").as_bytes());
    let dockerfile_name = match dockerfile.strip_prefix(context) {
        Ok(inside) => inside.to_string_lossy().into_owned(),
        Err(_) => dockerfile_relative.to_string_lossy().into_owned(),
    };
    hasher.update(format!("dockerfile-path {dockerfile_name}\n").as_bytes());
}

/// Hash the build args (length-prefixed) and the target stage.
fn hash_build_options(hasher: &mut Sha256, inputs: &BuildInputs) {
    for (key, value) in inputs.build_args {
        hasher.update(format!("arg {}={}\n", key.len(), key).as_bytes());
        hasher.update(format!("{}:{value}\n", value.len()).as_bytes());
    }
    if let Some(target) = inputs.target {
        hasher.update(format!("target {target}\n").as_bytes());
    }
}

/// The uncommitted paths (relative to the work tree, sorted) of the context that
/// `.dockerignore` keeps, plus the Dockerfile.
fn changed_paths(
    repository: &git2::Repository,
    ignore: &DockerIgnore,
    context_relative: &Path,
    dockerfile_relative: &Path,
    dockerfile_in_context: bool,
) -> Result<Vec<PathBuf>, GitError> {
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    if !context_relative.as_os_str().is_empty() {
        options.pathspec(context_relative.to_string_lossy().as_ref());
    }
    if !dockerfile_in_context {
        options.pathspec(dockerfile_relative.to_string_lossy().as_ref());
    }
    let statuses = repository
        .statuses(Some(&mut options))
        .map_err(git_error("read status"))?;
    let mut changed: Vec<PathBuf> = Vec::new();
    for entry in statuses.iter() {
        if entry.status() == git2::Status::CURRENT || entry.status().is_ignored() {
            continue;
        }
        let Some(path) = entry.path().ok() else {
            continue;
        };
        let path = PathBuf::from(path);
        match path.strip_prefix(context_relative) {
            _ if path == dockerfile_relative => {}
            Ok(inside) => {
                if ignore.is_ignored(&inside.to_string_lossy()) {
                    continue;
                }
            }
            Err(_) => continue,
        }
        changed.push(path);
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// Hash the names and current contents of `changed` (a deleted file hashes as such): the
/// `-dirty-` part of a tag, 8 hex digits.
fn hash_changes(workdir: &Path, changed: &[PathBuf]) -> Result<String, GitError> {
    let mut hasher = Sha256::new();
    for path in changed {
        hasher.update(format!("{}\n", path.display()).as_bytes());
        let full = workdir.join(path);
        match std::fs::read(&full) {
            Ok(bytes) => {
                hasher.update(format!("{}\n", bytes.len()).as_bytes());
                hasher.update(&bytes);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => hasher.update(b"deleted\n"),
            Err(source) => return Err(GitError::Io { path: full, source }),
        }
    }
    Ok(hex::encode(hasher.finalize())[..8].to_string())
}

/// The rules of a `.dockerignore` file: patterns relative to the context, `!` exceptions, the last
/// matching rule wins, and a rule matching a directory covers everything below it.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(globset::GlobMatcher, bool)>,
}

impl DockerIgnore {
    /// Read `<context>/.dockerignore`; no file means nothing is ignored.
    pub fn load(context: &Path) -> Result<DockerIgnore, GitError> {
        let path = context.join(".dockerignore");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(DockerIgnore::parse(&text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(source) => Err(GitError::Io { path, source }),
        }
    }

    /// Parse the text of a `.dockerignore`. Invalid patterns are skipped, as Docker does.
    pub fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, exception) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let pattern = pattern
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if pattern.is_empty() {
                continue;
            }
            if let Ok(glob) = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
            {
                rules.push((glob.compile_matcher(), exception));
            }
        }
        DockerIgnore { rules }
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded from the build context.
    pub fn is_ignored(&self, path: &str) -> bool {
        let mut ignored = false;
        for (matcher, exception) in &self.rules {
            // A rule matching any ancestor directory applies to the path too.
            let mut prefix_end = Some(path.len());
            let mut matched = false;
            while let Some(end) = prefix_end {
                if matcher.is_match(&path[..end]) {
                    matched = true;
                    break;
                }
                prefix_end = path[..end].rfind('/');
            }
            if matched {
                ignored = !exception;
            }
        }
        ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sha_keeps_twelve_characters() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short_sha(sha), "0123456789ab");
        assert_eq!(short_sha("abc"), "abc");
    }

    #[test]
    fn dockerignore_rules() {
        let ignore = DockerIgnore::parse(
            "# comment\nnode_modules\n*.log\n!keep.log\n/build/\ndocs/**/*.md\n",
        );
        assert!(ignore.is_ignored("node_modules"));
        assert!(ignore.is_ignored("node_modules/a/b.js"));
        assert!(ignore.is_ignored("debug.log"));
        assert!(!ignore.is_ignored("keep.log"));
        assert!(!ignore.is_ignored("sub/debug.log"));
        assert!(ignore.is_ignored("build/out.js"));
        assert!(ignore.is_ignored("docs/a/b/c.md"));
        assert!(!ignore.is_ignored("src/index.js"));
    }

    #[test]
    fn tag_display() {
        let clean = ContentTag {
            clean: "0123456789ab".into(),
            dirty: None,
        };
        assert_eq!(clean.to_string(), "0123456789ab");
        let dirty = ContentTag {
            clean: "0123456789ab".into(),
            dirty: Some("deadbeef".into()),
        };
        assert_eq!(dirty.tag(), "0123456789ab-dirty-deadbeef");
    }
}
