//! The typed environment config, `config/<env>.yaml`.
//!
//! ```yaml
//! cluster:
//!   context: prod            # kubeconfig context (default: the kubeconfig's current context)
//!   namespace: blog          # default namespace for namespaced objects (required)
//!   kubeconfig: ~/.kube/prod # optional kubeconfig file for this environment, or
//!                            # `${terraform.kubeconfig}`: an output's path or content
//!   # or, from Terraform outputs only (repo/from_terraform.rs), instead of kubeconfig/context:
//!   # server: ${terraform.endpoint}, certificate_authority: ${terraform.ca}, token: ${terraform.token}
//!   force_conflicts: true    # server-side apply takes ownership from other managers (default)
//! registry: ghcr.io/acme/blog  # required when the repository has apps (or `${terraform.NAME}`)
//! terraform:
//!   workspace: production    # or backend_config: {key: value}
//!   vars: { db_instance_class: db.t3.medium }
//!   lock_timeout: 5m
//! deploy:
//!   timeout: 5m              # health wait
//!   lock_timeout: 5m         # wait for another deploy of this environment
//!   require_clean_tree: true # default: true for `production`, false otherwise
//!   history: 50              # deploy records kept in the inventory
//!   allowed_revisions: { reachable_from: main }  # only ancestors of origin/main
//! drift:
//!   ignore:
//!     - { kind: Deployment, name: blog-backend, pointer: /spec/replicas }
//!     - { manager: horizontal-pod-autoscaler, pointer: /spec/replicas }
//! agent:                     # `gitship agent`; its flags override these
//!   source: https://github.com/acme/blog.git
//!   branch: main
//!   interval: 1m             # how often to fetch
//!   heal_interval: 1m        # how often to look for drift
//!   listen: 0.0.0.0:8080
//!   lease_duration: 15s      # the leader Lease
//!   build: false             # build missing images (default: wait for CI to push them)
//!   terraform: plan          # off | plan | apply (default: plan, report only)
//!   self_heal: true          # put drifted fields back (false: report only)
//!   notify:                  # commit statuses (needs GITSHIP_GITHUB_TOKEN / GITSHIP_GITLAB_API_TOKEN)
//!     provider: github       # github | gitlab (default: from the source's host)
//!     repository: acme/blog  # default: from the source's URL
//!     api_url: https://ghe.example/api/v3  # default: the provider's (or the source host's) API
//!     status_url: https://agent.example/status  # the statuses' link
//! kubernetes:
//!   path: kustomize/overlays/prod  # this environment's manifests directory (default: the repository's)
//!   helm:                    # Helm charts of the repository, rendered with `helm template` (repo/helm.rs)
//!     - { chart: charts/web, release: web, values: [charts/web/values-prod.yaml] }
//! values: { backend: { replicas: 3 } }   # free-form, used by templates
//! protected: true            # `gitship destroy` refuses this environment (default: false)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::repo::RepoError;
pub use crate::repo::from_terraform::{ClusterFromTerraform, OutputRef};
pub(crate) use crate::repo::reader::{Reader, find, is_dns_label};
use crate::repo::yaml::{self, Node, NodeKind};
use gitship_foundation::diagnostics::Location;

/// One environment's validated config.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// The environment's name (a DNS label; the file stem).
    pub name: String,
    /// Absolute path of `config/<env>.yaml`.
    pub file: PathBuf,
    pub cluster: ClusterConfig,
    pub registry: Option<String>,
    /// `registry: ${terraform.NAME}`: the prefix is that output's value, known once Terraform
    /// has run (then [`EnvConfig::registry`] is `None`).
    pub registry_output: Option<OutputRef>,
    pub terraform: TerraformConfig,
    pub deploy: DeployConfig,
    pub drift: DriftConfig,
    pub agent: AgentConfig,
    pub kubernetes: KubernetesConfig,
    /// `protected: true`: `gitship destroy` refuses the environment (the key's location is
    /// `spans.location("protected")`).
    pub protected: bool,
    /// Free-form values for templates (`values.*`); an object.
    pub values: serde_json::Value,
    /// Where each key was written, for error messages.
    pub spans: SpanMap,
}

/// The `kubernetes` section: where this environment's manifests come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// `kubernetes: false`: this environment deploys no Kubernetes objects (nothing is rendered,
    /// no cluster is needed). Otherwise an environment that renders no object is an error
    /// (ARCHITECTURE.md, "Invariants").
    pub disabled: bool,
    /// `kubernetes.path` as written: relative to the repository root, lexically inside it.
    pub path: Option<String>,
    /// Where `path`'s value was written.
    pub location: Option<Location>,
    /// The absolute directory of `path`, checked to exist inside the repository by
    /// [`crate::repo::Repository::load_env`].
    pub dir: Option<PathBuf>,
    /// `kubernetes.helm`: the charts rendered for this environment, their paths resolved by
    /// [`crate::repo::Repository::load_env`].
    pub helm: Vec<crate::repo::helm::HelmRelease>,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub context: Option<String>,
    pub namespace: String,
    pub kubeconfig: Option<PathBuf>,
    pub force_conflicts: bool,
    /// The cluster comes from Terraform outputs (then `kubeconfig` is `None`).
    pub from_terraform: Option<ClusterFromTerraform>,
}

#[derive(Debug, Clone, Default)]
pub struct TerraformConfig {
    /// `terraform: false`: this environment does not run the repository's Terraform module (a
    /// module that creates the cluster belongs to bootstrap, not to every deploy).
    pub disabled: bool,
    pub workspace: Option<String>,
    pub backend_config: BTreeMap<String, String>,
    /// Variables passed through a generated `-var-file` (JSON), in file order.
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub timeout: Duration,
    pub lock_timeout: Duration,
    pub require_clean_tree: bool,
    pub history: usize,
    /// `deploy.allowed_revisions.reachable_from: BRANCH`: only ancestors of `origin/BRANCH` (as
    /// fetched) may be deployed.
    pub reachable_from: Option<String>,
}

/// The `agent` section: what `gitship agent` does when its flags do not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    pub source: Option<String>,
    pub branch: Option<String>,
    pub interval: Option<Duration>,
    pub heal_interval: Option<Duration>,
    pub listen: Option<String>,
    pub lease_duration: Option<Duration>,
    pub build: bool,
    pub terraform: AgentTerraform,
    pub self_heal: bool,
    /// `agent.notify`: where the agent posts commit statuses (when its token is set).
    pub notify: Option<NotifyConfig>,
}

/// `agent.notify`: overrides of what the agent derives from its Git source to post commit
/// statuses. Holds no secret: the tokens come from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    pub provider: Option<NotifyProvider>,
    /// `owner/name` (GitHub) or `group/.../project` (GitLab).
    pub repository: Option<String>,
    /// The API's base URL, without a trailing `/`: `https://ghe.example/api/v3`.
    pub api_url: Option<String>,
    /// The link a status carries (the agent's `/status`, as reachable by people).
    pub status_url: Option<String>,
}

/// `agent.notify.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyProvider {
    GitHub,
    GitLab,
}

impl NotifyProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyProvider::GitHub => "github",
            NotifyProvider::GitLab => "gitlab",
        }
    }
}

/// `agent.terraform`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AgentTerraform {
    Off,
    /// Plan and report, apply nothing (the default).
    #[default]
    Plan,
    Apply,
}

#[derive(Debug, Clone, Default)]
pub struct DriftConfig {
    pub ignore: Vec<IgnoreRule>,
}

/// Suppresses expected drift. Every field given must match; `pointer` is a JSON pointer into
/// the object (`/spec/replicas`) and also covers everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRule {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub pointer: Option<String>,
    /// A field manager whose changes are expected (e.g. `horizontal-pod-autoscaler`).
    pub manager: Option<String>,
}

/// Key path (`terraform.vars.db_size`, list items by index: `drift.ignore.0`) -> where it was
/// written (1-based line and column of the key).
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    /// The config file relative to the repository root, as shown in messages.
    pub file: PathBuf,
    pub keys: BTreeMap<String, (usize, usize)>,
}

impl SpanMap {
    /// Where `path` (dotted) was written; the file start when unknown.
    pub fn location(&self, path: &str) -> Location {
        let (line, column) = self.keys.get(path).copied().unwrap_or((1, 1));
        Location::new(self.file.clone(), line, column)
    }
}

/// Default health-wait timeout of a deploy.
pub const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// Default wait for another deploy of the same environment.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of deploy records kept.
pub const DEFAULT_HISTORY: usize = 50;

/// The top-level keys of `config/<env>.yaml`.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "cluster",
    "registry",
    "terraform",
    "deploy",
    "drift",
    "agent",
    "kubernetes",
    "values",
    "protected",
];

impl EnvConfig {
    /// Whether this environment's cluster comes from Terraform outputs: Terraform must run
    /// before anything connects to it (a deploy plans and applies it first; `destroy` deletes
    /// the Kubernetes objects before `terraform destroy`).
    pub fn cluster_from_terraform(&self) -> bool {
        self.cluster.from_terraform.is_some()
    }

    /// Parse and validate the text of `config/<name>.yaml`. `file` is absolute; `display_file`
    /// is how the file is named in errors (relative to the repository root).
    pub fn parse(
        name: &str,
        file: &Path,
        display_file: &Path,
        text: &str,
    ) -> Result<EnvConfig, RepoError> {
        let reader = Reader { file: display_file };
        let root = yaml::parse_single(text).map_err(|err| reader.syntax(err))?;
        let empty = Node {
            kind: NodeKind::Mapping(Vec::new()),
            line: 1,
            column: 1,
        };
        let root = root.unwrap_or(empty);
        let mut spans = SpanMap {
            file: display_file.to_path_buf(),
            keys: BTreeMap::new(),
        };
        record_spans(&root, "", &mut spans.keys);

        let top = reader.mapping(&root, "")?;
        reader.check_keys(top, "", TOP_LEVEL_KEYS)?;

        let cluster = parse_cluster(&reader, &root, top, &spans, name)?;
        let (registry, registry_output) = parse_registry(&reader, top)?;
        let terraform = parse_terraform(&reader, top)?;
        let deploy = parse_deploy(&reader, top, name)?;
        let drift = parse_drift(&reader, top)?;
        let agent = parse_agent(&reader, top)?;
        let kubernetes = parse_kubernetes(&reader, top)?;
        let values = parse_values(&reader, top)?;
        let protected = parse_protected(&reader, top)?;

        Ok(EnvConfig {
            name: name.to_string(),
            file: file.to_path_buf(),
            cluster,
            registry,
            registry_output,
            terraform,
            deploy,
            drift,
            agent,
            kubernetes,
            protected,
            values,
            spans,
        })
    }
}

/// The `cluster` section; `cluster.namespace` is required, so the section is too. `root` is
/// where a missing section is reported.
fn parse_cluster(
    reader: &Reader,
    root: &Node,
    top: &[(Node, Node)],
    spans: &SpanMap,
    environment: &str,
) -> Result<ClusterConfig, RepoError> {
    let Some(cluster_node) = find(top, "cluster") else {
        return Err(RepoError::MissingKey {
            location: Location::new(reader.file, root.line, root.column),
            key: "cluster.namespace".into(),
            environment: environment.to_string(),
        });
    };
    let cluster_entries = reader.mapping(cluster_node, "cluster")?;
    reader.check_keys(
        cluster_entries,
        "cluster",
        &[
            "context",
            "namespace",
            "kubeconfig",
            "force_conflicts",
            "server",
            "certificate_authority",
            "token",
        ],
    )?;
    let namespace_node =
        find(cluster_entries, "namespace").ok_or_else(|| RepoError::MissingKey {
            location: spans.location("cluster"),
            key: "cluster.namespace".into(),
            environment: environment.to_string(),
        })?;
    let namespace = reader.string(namespace_node, "cluster.namespace")?;
    if !is_dns_label(&namespace) {
        return Err(reader.invalid(
            namespace_node,
            "cluster.namespace",
            format!("`{namespace}` is not a valid namespace name (a DNS label: lowercase letters, digits and `-`, at most 63 characters)"),
        ));
    }
    let (kubeconfig, from_terraform) = parse_kubeconfig(reader, cluster_entries, cluster_node)?;
    Ok(ClusterConfig {
        context: find(cluster_entries, "context")
            .map(|n| reader.string(n, "cluster.context"))
            .transpose()?,
        namespace,
        kubeconfig,
        from_terraform,
        force_conflicts: find(cluster_entries, "force_conflicts")
            .map(|n| reader.boolean(n, "cluster.force_conflicts"))
            .transpose()?
            .unwrap_or(true),
    })
}

/// `cluster.kubeconfig` (a path, or `${terraform.NAME}`), or the endpoint of
/// `cluster.server`; at most one of them.
fn parse_kubeconfig(
    reader: &Reader,
    entries: &[(Node, Node)],
    cluster_node: &Node,
) -> Result<(Option<PathBuf>, Option<ClusterFromTerraform>), RepoError> {
    use crate::repo::from_terraform as source;
    if let Some(endpoint) = source::parse_endpoint(reader, entries, cluster_node)? {
        return Ok((None, Some(endpoint)));
    }
    let Some(node) = find(entries, "kubeconfig") else {
        return Ok((None, None));
    };
    let text = reader.string(node, "cluster.kubeconfig")?;
    Ok(
        match source::reference(reader, node, "cluster.kubeconfig", &text)? {
            Some(output) => (None, Some(ClusterFromTerraform::Kubeconfig(output))),
            None => (Some(expand_home(&text)), None),
        },
    )
}

/// Whether `registry` is an image repository prefix: what an image reference is made of before
/// `/<app>:<tag>` by the distribution grammar (`oci_client`'s parser: a domain with an optional
/// port, then lowercase path components), and nothing more: no scheme, tag, digest, whitespace,
/// quote or shell character. The value reaches registries, builders and the generated CI files.
pub fn is_repository_prefix(registry: &str) -> bool {
    use std::str::FromStr;
    if registry.is_empty() || registry.len() > 255 || registry.contains(['@', ' ']) {
        return false;
    }
    let probe = format!("{registry}/app:tag");
    match oci_client::Reference::from_str(&probe) {
        Ok(reference) => {
            let whole = format!("{}/{}", reference.registry(), reference.repository());
            // The parser puts `docker.io/` (and `library/`) before a name without a domain.
            whole == format!("{registry}/app") || whole.ends_with(&format!("/{registry}/app"))
        }
        Err(_) => false,
    }
}

/// The optional `registry`, an image repository prefix without scheme or trailing `/`, or
/// the `${terraform.NAME}` reference whose value is one.
fn parse_registry(
    reader: &Reader,
    top: &[(Node, Node)],
) -> Result<(Option<String>, Option<OutputRef>), RepoError> {
    let registry = find(top, "registry")
        .filter(|n| !n.is_null())
        .map(|n| reader.string(n, "registry"))
        .transpose()?;
    // Another `${...}` is no reference, and no prefix either: refused below.
    if let (Some(text), Some(node)) = (&registry, find(top, "registry"))
        && let Ok(Some(output)) =
            crate::repo::from_terraform::reference(reader, node, "registry", text)
    {
        return Ok((None, Some(output)));
    }
    if let (Some(registry), Some(node)) = (&registry, find(top, "registry"))
        && !is_repository_prefix(registry)
    {
        return Err(reader.invalid(
            node,
            "registry",
            format!("`{registry}` is not an image repository prefix like `ghcr.io/acme/blog` (no scheme, no trailing `/`), nor a whole `${{terraform.NAME}}` reference"),
        ));
    }
    Ok((registry, None))
}

/// The optional `terraform` section.
fn parse_terraform(reader: &Reader, top: &[(Node, Node)]) -> Result<TerraformConfig, RepoError> {
    let mut terraform = TerraformConfig::default();
    let Some(node) = find(top, "terraform").filter(|n| !n.is_null()) else {
        return Ok(terraform);
    };
    if let Some(enabled) = switch(reader, node, "terraform")? {
        terraform.disabled = !enabled;
        return Ok(terraform);
    }
    let entries = reader.mapping(node, "terraform")?;
    reader.check_keys(
        entries,
        "terraform",
        &["workspace", "backend_config", "vars", "lock_timeout"],
    )?;
    terraform.workspace = find(entries, "workspace")
        .map(|n| reader.string(n, "terraform.workspace"))
        .transpose()?;
    if let Some(backend) = find(entries, "backend_config").filter(|n| !n.is_null()) {
        if terraform.workspace.is_some() {
            return Err(reader.invalid(
                backend,
                "terraform.backend_config",
                "`terraform.workspace` and `terraform.backend_config` are alternatives: use one"
                    .to_string(),
            ));
        }
        terraform.backend_config = parse_backend_config(reader, backend)?;
    }
    if let Some(vars) = find(entries, "vars").filter(|n| !n.is_null()) {
        for (key, value) in reader.mapping(vars, "terraform.vars")? {
            let key_text = reader.string(key, "terraform.vars")?;
            terraform.vars.insert(key_text, value.to_json());
        }
    }
    terraform.lock_timeout = find(entries, "lock_timeout")
        .map(|n| reader.duration(n, "terraform.lock_timeout"))
        .transpose()?;
    Ok(terraform)
}

/// `terraform.backend_config`: scalar values, kept as text.
fn parse_backend_config(
    reader: &Reader,
    backend: &Node,
) -> Result<BTreeMap<String, String>, RepoError> {
    let mut backend_config = BTreeMap::new();
    for (key, value) in reader.mapping(backend, "terraform.backend_config")? {
        let key_text = reader.string(key, "terraform.backend_config")?;
        let path = format!("terraform.backend_config.{key_text}");
        let value = match value.to_json() {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(reader.invalid(
                    value,
                    &path,
                    format!("expected a string, found {}", value.type_name()),
                ));
            }
        };
        backend_config.insert(key_text, value);
    }
    Ok(backend_config)
}

/// The optional `deploy` section over its defaults (a clean tree is required by default only
/// for `production`).
fn parse_deploy(
    reader: &Reader,
    top: &[(Node, Node)],
    environment: &str,
) -> Result<DeployConfig, RepoError> {
    let mut deploy = DeployConfig {
        timeout: DEFAULT_DEPLOY_TIMEOUT,
        lock_timeout: DEFAULT_LOCK_TIMEOUT,
        require_clean_tree: environment == "production",
        history: DEFAULT_HISTORY,
        reachable_from: None,
    };
    let Some(node) = find(top, "deploy").filter(|n| !n.is_null()) else {
        return Ok(deploy);
    };
    let entries = reader.mapping(node, "deploy")?;
    reader.check_keys(
        entries,
        "deploy",
        &[
            "timeout",
            "lock_timeout",
            "require_clean_tree",
            "history",
            "allowed_revisions",
        ],
    )?;
    if let Some(rule) = find(entries, "allowed_revisions").filter(|n| !n.is_null()) {
        let fields = reader.mapping(rule, "deploy.allowed_revisions")?;
        reader.check_keys(fields, "deploy.allowed_revisions", &["reachable_from"])?;
        if let Some(n) = find(fields, "reachable_from") {
            let branch = reader.string(n, "deploy.allowed_revisions.reachable_from")?;
            if branch.is_empty() || branch.contains(char::is_whitespace) {
                return Err(reader.invalid(
                    n,
                    "deploy.allowed_revisions.reachable_from",
                    format!("`{branch}` is not a branch name"),
                ));
            }
            deploy.reachable_from = Some(branch);
        }
    }
    if let Some(n) = find(entries, "timeout") {
        deploy.timeout = reader.positive_duration(n, "deploy.timeout")?;
    }
    if let Some(n) = find(entries, "lock_timeout") {
        deploy.lock_timeout = reader.duration(n, "deploy.lock_timeout")?;
    }
    if let Some(n) = find(entries, "require_clean_tree") {
        deploy.require_clean_tree = reader.boolean(n, "deploy.require_clean_tree")?;
    }
    if let Some(n) = find(entries, "history") {
        deploy.history = match n.to_json().as_u64() {
            Some(count) if count >= 1 => count as usize,
            _ => {
                return Err(reader.invalid(
                    n,
                    "deploy.history",
                    "expected a whole number of at least 1".into(),
                ));
            }
        };
    }
    Ok(deploy)
}

/// The optional `drift` section: a list of ignore rules.
fn parse_drift(reader: &Reader, top: &[(Node, Node)]) -> Result<DriftConfig, RepoError> {
    let mut drift = DriftConfig::default();
    let Some(node) = find(top, "drift").filter(|n| !n.is_null()) else {
        return Ok(drift);
    };
    let entries = reader.mapping(node, "drift")?;
    reader.check_keys(entries, "drift", &["ignore"])?;
    if let Some(ignore) = find(entries, "ignore").filter(|n| !n.is_null()) {
        let NodeKind::Sequence(items) = &ignore.kind else {
            return Err(reader.invalid(
                ignore,
                "drift.ignore",
                format!("expected a list, found {}", ignore.type_name()),
            ));
        };
        for (index, item) in items.iter().enumerate() {
            drift.ignore.push(parse_ignore_rule(reader, item, index)?);
        }
    }
    Ok(drift)
}

/// One item of `drift.ignore`: at least one field, and `pointer` a JSON pointer.
fn parse_ignore_rule(reader: &Reader, item: &Node, index: usize) -> Result<IgnoreRule, RepoError> {
    let path = format!("drift.ignore.{index}");
    let fields = reader.mapping(item, &path)?;
    reader.check_keys(
        fields,
        &path,
        &["kind", "name", "namespace", "pointer", "manager"],
    )?;
    let get = |key: &str| {
        find(fields, key)
            .map(|n| reader.string(n, &format!("{path}.{key}")))
            .transpose()
    };
    let rule = IgnoreRule {
        kind: get("kind")?,
        name: get("name")?,
        namespace: get("namespace")?,
        pointer: get("pointer")?,
        manager: get("manager")?,
    };
    if let Some(pointer) = &rule.pointer
        && !pointer.starts_with('/')
    {
        let node = find(fields, "pointer").unwrap_or(item);
        return Err(reader.invalid(
            node,
            &format!("{path}.pointer"),
            format!(
                "`{pointer}` is not a JSON pointer (it must start with `/`, e.g. `/spec/replicas`)"
            ),
        ));
    }
    if rule == IgnoreRule::default() {
        return Err(reader.invalid(item, &path, "an ignore rule needs at least one of `kind`, `name`, `namespace`, `pointer`, `manager`".into()));
    }
    Ok(rule)
}

/// The optional `agent` section.
fn parse_agent(reader: &Reader, top: &[(Node, Node)]) -> Result<AgentConfig, RepoError> {
    let mut agent = AgentConfig {
        self_heal: true,
        ..AgentConfig::default()
    };
    let Some(node) = find(top, "agent").filter(|n| !n.is_null()) else {
        return Ok(agent);
    };
    let entries = reader.mapping(node, "agent")?;
    reader.check_keys(
        entries,
        "agent",
        &[
            "source",
            "branch",
            "interval",
            "heal_interval",
            "listen",
            "lease_duration",
            "build",
            "terraform",
            "self_heal",
            "notify",
        ],
    )?;
    let string = |key: &str| {
        find(entries, key)
            .map(|n| reader.string(n, &format!("agent.{key}")))
            .transpose()
    };
    let duration = |key: &str| {
        find(entries, key)
            .map(|n| reader.positive_duration(n, &format!("agent.{key}")))
            .transpose()
    };
    agent.source = string("source")?;
    agent.branch = string("branch")?;
    agent.listen = string("listen")?;
    agent.interval = duration("interval")?;
    agent.heal_interval = duration("heal_interval")?;
    agent.lease_duration = duration("lease_duration")?;
    for (key, value) in [
        ("interval", agent.interval),
        ("heal_interval", agent.heal_interval),
        ("lease_duration", agent.lease_duration),
    ] {
        if value.is_some_and(|d| d < Duration::from_secs(1))
            && let Some(n) = find(entries, key)
        {
            return Err(reader.invalid(n, &format!("agent.{key}"), "must be at least 1s".into()));
        }
    }
    if let Some(n) = find(entries, "build") {
        agent.build = reader.boolean(n, "agent.build")?;
    }
    if let Some(n) = find(entries, "self_heal") {
        agent.self_heal = reader.boolean(n, "agent.self_heal")?;
    }
    if let Some(n) = find(entries, "terraform") {
        agent.terraform = match reader.string(n, "agent.terraform")?.as_str() {
            "off" => AgentTerraform::Off,
            "plan" => AgentTerraform::Plan,
            "apply" => AgentTerraform::Apply,
            other => {
                return Err(reader.invalid(
                    n,
                    "agent.terraform",
                    format!("expected `off`, `plan` or `apply`, found `{other}`"),
                ));
            }
        };
    }
    if let Some(n) = find(entries, "notify").filter(|n| !n.is_null()) {
        agent.notify = Some(parse_notify(reader, n)?);
    }
    Ok(agent)
}

/// `agent.notify`: every field optional, each checked for what it must be.
fn parse_notify(reader: &Reader, node: &Node) -> Result<NotifyConfig, RepoError> {
    let entries = reader.mapping(node, "agent.notify")?;
    reader.check_keys(
        entries,
        "agent.notify",
        &["provider", "repository", "api_url", "status_url"],
    )?;
    let mut notify = NotifyConfig::default();
    if let Some(n) = find(entries, "provider") {
        notify.provider = Some(match reader.string(n, "agent.notify.provider")?.as_str() {
            "github" => NotifyProvider::GitHub,
            "gitlab" => NotifyProvider::GitLab,
            other => {
                return Err(reader.invalid(
                    n,
                    "agent.notify.provider",
                    format!("expected `github` or `gitlab`, found `{other}`"),
                ));
            }
        });
    }
    if let Some(n) = find(entries, "repository") {
        let repository = reader.string(n, "agent.notify.repository")?;
        if let Err(problem) = check_notify_repository(&repository, notify.provider) {
            return Err(reader.invalid(n, "agent.notify.repository", problem));
        }
        notify.repository = Some(repository);
    }
    if let Some(n) = find(entries, "api_url") {
        let url = reader.string(n, "agent.notify.api_url")?;
        match check_notify_url(&url, true) {
            Ok(url) => notify.api_url = Some(url),
            Err(problem) => return Err(reader.invalid(n, "agent.notify.api_url", problem)),
        }
    }
    if let Some(n) = find(entries, "status_url") {
        let url = reader.string(n, "agent.notify.status_url")?;
        match check_notify_url(&url, false) {
            Ok(_) => notify.status_url = Some(url),
            Err(problem) => return Err(reader.invalid(n, "agent.notify.status_url", problem)),
        }
    }
    Ok(notify)
}

/// A repository path: `owner/name` for GitHub, `group[/subgroup...]/project` for GitLab; each
/// part a name of letters, digits, `.`, `_` and `-` (not `.` or `..`).
pub fn check_notify_repository(
    repository: &str,
    provider: Option<NotifyProvider>,
) -> Result<(), String> {
    let parts: Vec<&str> = repository.split('/').collect();
    let named = |part: &&str| {
        !part.is_empty()
            && *part != "."
            && *part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if parts.len() < 2 || !parts.iter().all(named) {
        return Err(format!(
            "`{repository}` is not a repository path: expected `owner/name` (GitHub) or `group/project` (GitLab)"
        ));
    }
    if provider == Some(NotifyProvider::GitHub) && parts.len() != 2 {
        return Err(format!(
            "`{repository}` is not a GitHub repository: expected `owner/name`"
        ));
    }
    Ok(())
}

/// An `http(s)://` URL without credentials, query or fragment, as written less a trailing `/`.
/// With `token_bearing` (the API, which gets the token), plain `http://` only to the loopback
/// host: a token must not cross a network in the clear.
pub fn check_notify_url(url: &str, token_bearing: bool) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a URL: expected `https://HOST/...`"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    if authority.is_empty() || authority.contains('@') || url.contains(['?', '#', ' ']) {
        return Err(format!(
            "`{url}` is not a plain URL: give scheme, host and path, without user, query or fragment"
        ));
    }
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match scheme {
        "https" => {}
        "http" if !token_bearing || loopback => {}
        "http" => {
            return Err(format!(
                "`{url}` is plain HTTP: the API gets the token, so give an `https://` URL"
            ));
        }
        _ => return Err(format!("`{url}` is not an `http://` or `https://` URL")),
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The optional `kubernetes` section: `path`, a directory relative to the repository root, and
/// `helm`, the charts to render ([`crate::repo::helm`]).
fn parse_kubernetes(reader: &Reader, top: &[(Node, Node)]) -> Result<KubernetesConfig, RepoError> {
    let mut kubernetes = KubernetesConfig::default();
    let Some(node) = find(top, "kubernetes").filter(|n| !n.is_null()) else {
        return Ok(kubernetes);
    };
    if let Some(enabled) = switch(reader, node, "kubernetes")? {
        kubernetes.disabled = !enabled;
        return Ok(kubernetes);
    }
    let entries = reader.mapping(node, "kubernetes")?;
    reader.check_keys(entries, "kubernetes", &["path", "helm"])?;
    if let Some(n) = find(entries, "helm") {
        kubernetes.helm = crate::repo::helm::parse(reader, n)?;
    }
    if let Some(n) = find(entries, "path") {
        let path = reader.string(n, "kubernetes.path")?;
        if path.trim().is_empty() {
            return Err(reader.invalid(
                n,
                "kubernetes.path",
                "expected a directory relative to the repository root".into(),
            ));
        }
        if !crate::repo::files::lexically_inside(Path::new(&path)) {
            return Err(RepoError::OutsideRepository {
                location: Some(reader.location(n)),
                path: PathBuf::from(&path),
                target: PathBuf::from(&path),
            });
        }
        kubernetes.path = Some(path);
        kubernetes.location = Some(reader.location(n));
    }
    Ok(kubernetes)
}

/// A section written as `true` or `false` (`terraform: false`): `Some(on)`; `None` for a
/// mapping; an error for any other scalar or a list, saying both forms.
fn switch(reader: &Reader, node: &Node, section: &str) -> Result<Option<bool>, RepoError> {
    match &node.kind {
        NodeKind::Mapping(_) => Ok(None),
        NodeKind::Scalar { .. } if node.to_json().is_boolean() => Ok(node.to_json().as_bool()),
        _ => Err(reader.invalid(
            node,
            section,
            format!(
                "expected a mapping, or `false` to turn the {section} layer off for this environment, found {}",
                node.type_name()
            ),
        )),
    }
}

/// `protected: true|false` (default `false`): whether `gitship destroy` refuses the environment.
fn parse_protected(reader: &Reader, top: &[(Node, Node)]) -> Result<bool, RepoError> {
    match find(top, "protected").filter(|n| !n.is_null()) {
        None => Ok(false),
        Some(node) => reader.boolean(node, "protected"),
    }
}

/// The free-form `values` mapping (an empty object when absent).
fn parse_values(reader: &Reader, top: &[(Node, Node)]) -> Result<serde_json::Value, RepoError> {
    match find(top, "values").filter(|n| !n.is_null()) {
        None => Ok(serde_json::Value::Object(serde_json::Map::new())),
        Some(node) => {
            reader.mapping(node, "values")?;
            Ok(node.to_json())
        }
    }
}

pub(crate) fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Record the position of every mapping key (and list item) under its dotted path.
fn record_spans(node: &Node, prefix: &str, keys: &mut BTreeMap<String, (usize, usize)>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match &node.kind {
        NodeKind::Mapping(entries) => {
            for (key, value) in entries {
                let path = join(key.as_scalar().unwrap_or_default());
                keys.insert(path.clone(), (key.line, key.column));
                record_spans(value, &path, keys);
            }
        }
        NodeKind::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                let path = join(&index.to_string());
                keys.insert(path.clone(), (item.line, item.column));
                record_spans(item, &path, keys);
            }
        }
        NodeKind::Scalar { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EnvConfig, RepoError> {
        EnvConfig::parse(
            "production",
            Path::new("/r/config/production.yaml"),
            Path::new("config/production.yaml"),
            text,
        )
    }

    #[test]
    fn protected_is_a_boolean_at_its_line() {
        let config = parse("cluster:\n  namespace: blog\nprotected: true\n").unwrap();
        assert!(config.protected);
        assert_eq!(
            config.spans.location("protected").to_string(),
            "config/production.yaml:3:1"
        );
        assert!(!parse("cluster:\n  namespace: blog\n").unwrap().protected);
        assert!(
            !parse("cluster:\n  namespace: blog\nprotected: false\n")
                .unwrap()
                .protected
        );
        let err = parse("cluster:\n  namespace: blog\nprotected: yes please\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("config/production.yaml:3") && text.contains("`true` or `false`"),
            "{text}"
        );
    }

    #[test]
    fn parses_the_full_schema_with_spans() {
        let config = parse(
            "cluster:\n  context: prod\n  namespace: blog\n  force_conflicts: false\nregistry: ghcr.io/acme/blog\nterraform:\n  workspace: production\n  vars:\n    db_size: 20\n    name: x\n  lock_timeout: 2m\ndeploy:\n  timeout: 90s\n  history: 3\ndrift:\n  ignore:\n    - { kind: Deployment, pointer: /spec/replicas }\nvalues:\n  backend: { replicas: 3 }\n",
        )
        .unwrap();
        assert_eq!(config.cluster.namespace, "blog");
        assert_eq!(config.cluster.context.as_deref(), Some("prod"));
        assert!(!config.cluster.force_conflicts);
        assert_eq!(config.terraform.vars["db_size"], serde_json::json!(20));
        assert_eq!(
            config.terraform.vars.keys().collect::<Vec<_>>(),
            ["db_size", "name"]
        );
        assert_eq!(
            config.terraform.lock_timeout,
            Some(Duration::from_secs(120))
        );
        assert_eq!(config.deploy.timeout, Duration::from_secs(90));
        assert_eq!(config.deploy.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        assert!(
            config.deploy.require_clean_tree,
            "production requires a clean tree by default"
        );
        assert_eq!(config.deploy.history, 3);
        assert_eq!(
            config.drift.ignore[0].pointer.as_deref(),
            Some("/spec/replicas")
        );
        assert_eq!(config.values["backend"]["replicas"], serde_json::json!(3));
        assert_eq!(
            config.spans.location("terraform.vars.db_size").to_string(),
            "config/production.yaml:9:5"
        );
        assert_eq!(
            config.spans.location("drift.ignore.0").to_string(),
            "config/production.yaml:17:7"
        );
    }

    #[test]
    fn unknown_keys_suggest() {
        let err = parse("cluster:\n  namespace: blog\nterraform:\n  workspce: x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config/production.yaml:4:3: unknown key `terraform.workspce`"
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("did you mean `terraform.workspace`?")
        );
    }

    #[test]
    fn kubernetes_path() {
        let config =
            parse("cluster:\n  namespace: blog\nkubernetes:\n  path: kustomize/overlays/prod\n")
                .unwrap();
        assert_eq!(
            config.kubernetes.path.as_deref(),
            Some("kustomize/overlays/prod")
        );
        let err = parse("cluster:\n  namespace: blog\nkubernetes:\n  paht: x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config/production.yaml:4:3: unknown key `kubernetes.paht`"
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("did you mean `kubernetes.path`?")
        );
        let err =
            parse("cluster:\n  namespace: blog\nkubernetes:\n  path: ../elsewhere\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config/production.yaml:4:9: `../elsewhere` is outside the repository"
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("prod-eu-1"));
        assert!(!is_dns_label("Prod"));
        assert!(!is_dns_label("-prod"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn registries_are_image_repository_prefixes() {
        for good in [
            "ghcr.io/acme/blog",
            "registry.local:5000/blog",
            "127.0.0.1:5000/blog",
            "localhost:5000/a/b",
            "acme",
            "docker.io/acme",
        ] {
            assert!(is_repository_prefix(good), "{good}");
        }
        for bad in [
            "ghcr.io'$(touch${IFS}PWNED)'/blog",
            "ghcr.io/acme/blog/",
            "https://ghcr.io/acme",
            "ghcr.io/Acme",
            "ghcr.io/acme blog",
            "ghcr.io/acme:tag",
            "ghcr.io/acme@sha256:00",
            "ghcr.io/acme\nx",
            "",
            "ghcr.io/a`id`",
            "ghcr.io/a;b",
        ] {
            assert!(!is_repository_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn agent_notify_is_checked_with_its_line() {
        let base = "cluster:\n  namespace: blog\nagent:\n  notify:\n";
        let config = parse(&format!(
            "{base}    provider: gitlab\n    repository: acme/platform/blog\n    api_url: https://gitlab.example/api/v4/\n    status_url: https://agent.example/status\n"
        ))
        .unwrap();
        assert_eq!(
            config.agent.notify,
            Some(NotifyConfig {
                provider: Some(NotifyProvider::GitLab),
                repository: Some("acme/platform/blog".to_string()),
                api_url: Some("https://gitlab.example/api/v4".to_string()),
                status_url: Some("https://agent.example/status".to_string()),
            })
        );
        let config = parse(&format!("{base}    api_url: http://127.0.0.1:8080\n")).unwrap();
        assert_eq!(
            config.agent.notify.and_then(|n| n.api_url).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        let cases = [
            (
                "    provider: bitbucket\n",
                "config/production.yaml:5:15: invalid `agent.notify.provider`: expected `github` or `gitlab`, found `bitbucket`",
            ),
            (
                "    provider: github\n    repository: acme/platform/blog\n",
                "config/production.yaml:6:17: invalid `agent.notify.repository`: `acme/platform/blog` is not a GitHub repository: expected `owner/name`",
            ),
            (
                "    repository: blog\n",
                "config/production.yaml:5:17: invalid `agent.notify.repository`: `blog` is not a repository path: expected `owner/name` (GitHub) or `group/project` (GitLab)",
            ),
            (
                "    repository: acme/../blog\n",
                "config/production.yaml:5:17: invalid `agent.notify.repository`: `acme/../blog` is not a repository path: expected `owner/name` (GitHub) or `group/project` (GitLab)",
            ),
            (
                "    api_url: http://gitlab.example/api/v4\n",
                "config/production.yaml:5:14: invalid `agent.notify.api_url`: `http://gitlab.example/api/v4` is plain HTTP: the API gets the token, so give an `https://` URL",
            ),
            (
                "    api_url: https://me:token@gitlab.example/api/v4\n",
                "config/production.yaml:5:14: invalid `agent.notify.api_url`: `https://me:token@gitlab.example/api/v4` is not a plain URL: give scheme, host and path, without user, query or fragment",
            ),
            (
                "    api_url: gitlab.example\n",
                "config/production.yaml:5:14: invalid `agent.notify.api_url`: `gitlab.example` is not a URL: expected `https://HOST/...`",
            ),
            (
                "    status_url: ftp://agent.example/status\n",
                "config/production.yaml:5:17: invalid `agent.notify.status_url`: `ftp://agent.example/status` is not an `http://` or `https://` URL",
            ),
            (
                "    token: abc\n",
                "config/production.yaml:5:5: unknown key `agent.notify.token`",
            ),
        ];
        for (yaml, expected) in cases {
            let err = parse(&format!("{base}{yaml}")).unwrap_err();
            assert_eq!(err.to_string(), expected, "{yaml}");
        }
        // A status link may be plain HTTP: it carries no token.
        let config = parse(&format!(
            "{base}    status_url: http://agent.example/status\n"
        ))
        .unwrap();
        assert!(config.agent.notify.is_some());
    }
}
