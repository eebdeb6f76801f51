//! `gitship agent manifests ENV --image REF`: what runs the agent in the cluster.
//!
//! In the environment's namespace (assumed to exist; it is not printed): a ServiceAccount
//! `gitship-agent`, least-privilege RBAC, a Deployment of two replicas (one leads, by the Lease
//! [`gitship_foundation::model::agent_lease_name`]; preferably on different nodes), a PodDisruptionBudget
//! (one replica down at a time) and a Service for its HTTP port.
//!
//! **RBAC.** The kinds and objects the environment deploys are found by rendering its manifests
//! with placeholder Terraform outputs (no Terraform, no cluster). What gitship does to them:
//! a server-side apply (`patch`; for a missing object the server also checks `create`, with the
//! object's name, so a named `create` allows it), a dry run (`patch`), a read (`get`; drift
//! LISTs each kind, and a deploy LISTs a kind with 8 or more objects; both read one by one where
//! the LIST is refused), a delete (prune, `gitship.dev/replace`), and a LIST and WATCH of the
//! kinds whose health it waits for (`kube::health::is_watched`; a cluster-scoped one by
//! `metadata.name`). So:
//!
//! - a namespaced kind the environment declares gets `get list create patch delete` (+ `watch`
//!   for a workload) on the kind in that namespace, with `list` of Events where workloads are
//!   (a failed rollout's report). Not by name: the namespace is the environment's, and every
//!   new object in Git would otherwise wait for an administrator;
//! - a Secret gets `get create patch delete` by name (`resourceNames`), and no `list`: the agent
//!   can read only the Secrets Git declares, never the namespace's others (the service
//!   account tokens, other tools' credentials). The cost: a commit that adds a Secret fails to
//!   apply it (403) until these manifests are generated and applied again, and one that removes
//!   a Secret leaves it in place (prune reports it refused and keeps it in the inventory);
//! - a cluster-scoped object (the environment's own Namespace, a CRD) gets the same verbs by
//!   name in a ClusterRole, and nothing else is granted cluster-wide; adding or removing one
//!   is likewise an administrator's step;
//! - gitship's own objects in the environment's namespace, by name: the deploy lock and leader
//!   Leases `gitship-<env>` and `gitship-<env>.agent` (`get update delete`; they are taken with
//!   a POST, which names nothing to RBAC, so Leases get an unnamed `create`), the inventory and
//!   status ConfigMaps of the same names and the inventory's copy `gitship-<env>.history`
//!   (`get create patch`: server-side applies), the Secret `gitship-<env>.revisions` (the
//!   manifests each deploy applied, for an exact rollback; `get create patch`), Events
//!   (`create` and `list`, unnamed: an Event is POSTed) and a `get` of the namespace itself.
//!
//! **Credentials of a private repository**, each from an optional Secret (absent: the variable
//! is unset or its file missing, and the agent fetches without): `gitship-agent-git-token`
//! (key `token`, optional key `username`) becomes `GITSHIP_GIT_TOKEN` and
//! `GITSHIP_GIT_USERNAME` for HTTPS; `gitship-agent-ssh` (keys `ssh-privatekey` and
//! `known_hosts`) is mounted read-only, mode 0400, at `/etc/gitship/ssh`, named by
//! `GITSHIP_GIT_SSH_KEY` and `GITSHIP_GIT_KNOWN_HOSTS`: an SSH server whose host key that file
//! does not list is refused ([`crate::git::known_hosts`]). The webhook's secret comes from
//! `gitship-agent-webhook` (key `secret`).
//!
//! **Probes.** `/healthz` fails when the reconcile loop has stopped ticking
//! ([`crate::agent::state::Liveness`]); `/readyz` waits for the first fetch or for another
//! replica to lead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::render::UnknownOutputs;
use crate::repo::Repository;
use crate::terraform;
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::model::{ENVIRONMENT_LABEL, Manifest, group_of, is_cluster_scoped};

/// `gitship agent manifests ENV`: what the command line asked for.
#[derive(Debug, Clone)]
pub struct ManifestsRequest {
    pub env: String,
    pub image: String,
    pub source: Option<String>,
    pub branch: Option<String>,
    pub path: Option<PathBuf>,
}

/// The name of the agent's ServiceAccount, Role, RoleBinding, Deployment and Service.
pub const AGENT_NAME: &str = "gitship-agent";
/// The Secret (key `secret`) the Deployment reads `GITSHIP_WEBHOOK_SECRET` from, when it exists.
pub const WEBHOOK_SECRET_NAME: &str = "gitship-agent-webhook";
/// The Secret holding an HTTPS token for a private repository (key `token`; optional key
/// `username`, default `x-access-token`), read as `GITSHIP_GIT_TOKEN` and `GITSHIP_GIT_USERNAME`
/// when it exists.
pub const GIT_TOKEN_SECRET_NAME: &str = "gitship-agent-git-token";
/// The Secret holding an SSH key for a private repository (key `ssh-privatekey`, as a
/// `kubernetes.io/ssh-auth` Secret has it) and the server's host keys (key `known_hosts`),
/// mounted read-only at [`SSH_DIR`] when it exists.
pub const SSH_SECRET_NAME: &str = "gitship-agent-ssh";
/// Where the SSH Secret is mounted.
pub const SSH_DIR: &str = "/etc/gitship/ssh";

/// The Secret (keys `github-token`, `gitlab-token`) the Deployment reads the commit-status API
/// tokens from (`GITSHIP_GITHUB_TOKEN`, `GITSHIP_GITLAB_API_TOKEN`), when it exists.
pub const NOTIFY_SECRET_NAME: &str = "gitship-agent-notify";
/// The agent's HTTP port (`/healthz`, `/readyz`, `/metrics`, `/status`, `POST /hooks/git`).
pub const HTTP_PORT: u16 = 8080;
/// Where the agent keeps its clone (an emptyDir).
pub const CACHE_DIR: &str = "/var/cache/gitship";
/// The distroless `nonroot` user.
pub const AGENT_USER: i64 = 65532;

/// The verbs of RBAC, in the order it conventionally lists them.
const ALL_VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// What to print: the objects, in apply order.
#[derive(Debug, Clone)]
pub struct AgentManifests {
    pub environment: String,
    pub namespace: String,
    pub objects: Vec<Value>,
}

impl AgentManifests {
    /// The objects as multi-document YAML.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for object in &self.objects {
            out.push_str("---\n");
            crate::render::emit::write_document(&mut out, object);
        }
        out
    }
}

/// The agent's manifests for `settings.env` of the repository at `repo_dir` (or the current one).
pub fn agent_manifests(
    repo_dir: Option<&Path>,
    settings: &ManifestsRequest,
) -> Result<AgentManifests> {
    check_image(&settings.image)?;
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let config = repo.load_env(&settings.env).map_err(user_error)?;
    let git = GitDefaults::read(&repo.root)?;
    let source = match &settings.source {
        Some(source) => check_source(source)?,
        None => git.origin.ok_or_else(|| {
            UserError::new(
                format!(
                    "the repository `{}` has no `origin` remote to tell the agent where to pull from",
                    repo.root.display()
                ),
                "pass `--source URL` (the Git URL the cluster can reach)",
            )
        })?,
    };
    let branch = match &settings.branch {
        Some(branch) => branch.clone(),
        None => git.branch.ok_or_else(|| {
            UserError::new(
                "HEAD is not on a branch, so there is no branch for the agent to follow",
                "pass `--branch NAME`",
            )
        })?,
    };
    if let Some(path) = &settings.path {
        check_path(path)?;
    }
    let path = settings.path.clone().or(git.path);

    let module = match terraform::TerraformSettings::for_environment(&repo, &config) {
        Some(terraform_settings) => {
            Some(terraform::static_check::check_static(&terraform_settings).map_err(user_error)?)
        }
        None => None,
    };
    let outputs = crate::ops::validate::static_outputs(module.as_ref());
    let manifests =
        crate::ops::render::render_with(&repo, &config, outputs, UnknownOutputs::Placeholder)?;

    let namespace = config.cluster.namespace.clone();
    let rbac = Rbac::for_manifests(&manifests, &config.name, &namespace);
    let agent = Agent {
        environment: &config.name,
        namespace: &namespace,
        image: &settings.image,
        source: &source,
        branch: &branch,
        path: path.as_deref(),
    };
    Ok(AgentManifests {
        environment: config.name.clone(),
        namespace: namespace.clone(),
        objects: agent.objects(&rbac),
    })
}

/// An image reference: non-empty, no whitespace or control characters.
fn check_image(image: &str) -> Result<()> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::new(
            format!(
                "`--image {}` is not an image reference",
                image.escape_default()
            ),
            "give the agent's image, e.g. `--image ghcr.io/acme/gitship:0.1.0`",
        )
        .into());
    }
    Ok(())
}

/// A `--path`: relative to the Git root, and inside it.
fn check_path(path: &Path) -> Result<()> {
    let inside = path
        .components()
        .all(|part| matches!(part, std::path::Component::Normal(_)));
    if path.as_os_str().is_empty() || !inside {
        return Err(UserError::new(
            format!("`--path {}` is not a directory below the Git root", path.display()),
            "give the gitship repository's directory relative to the Git root, e.g. `--path examples/blog-infra`",
        )
        .into());
    }
    Ok(())
}

/// A `--source` URL: non-empty, one token, and no password in it (it would be printed into the
/// Deployment for anyone who can read it).
fn check_source(source: &str) -> Result<String> {
    if source.is_empty() || source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::new(
            format!("`--source {}` is not a Git URL", source.escape_default()),
            "give the URL the agent clones, e.g. `--source https://github.com/acme/blog-infra.git`",
        )
        .into());
    }
    if crate::git::clone::display_url(source) != source {
        return Err(UserError::new(
            "the Git URL has credentials in it (a password or a token), which the manifests would show to anyone who can read the Deployment",
            "give the URL without credentials; the agent reads them from its environment or an SSH key",
        )
        .into());
    }
    Ok(source.to_string())
}

/// What Git says when the flags leave it open: the `origin` URL, the current branch, and where
/// the gitship repository lies below the Git root.
#[derive(Debug, Default)]
struct GitDefaults {
    origin: Option<String>,
    branch: Option<String>,
    path: Option<PathBuf>,
}

impl GitDefaults {
    fn read(root: &Path) -> Result<GitDefaults> {
        let repository = git2::Repository::discover(root)
            .with_context(|| format!("cannot open the Git repository of `{}`", root.display()))?;
        let origin = repository
            .find_remote("origin")
            .ok()
            .and_then(|remote| remote.url().ok().map(crate::git::clone::display_url));
        let branch = crate::git::current_branch(&repository);
        let path = repository
            .workdir()
            .and_then(|workdir| workdir.canonicalize().ok())
            .and_then(|workdir| {
                let below = root.strip_prefix(&workdir).ok()?;
                (!below.as_os_str().is_empty()).then(|| below.to_path_buf())
            });
        Ok(GitDefaults {
            origin,
            branch,
            path,
        })
    }
}

/// The RBAC resource of a kind: its API group and plural name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// What the agent may do with one resource in one scope (a namespace, or the cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Verbs on every object of the resource in the scope.
    pub any: BTreeSet<&'static str>,
    /// Verbs on the objects in `names` only (RBAC `resourceNames`).
    pub named: BTreeSet<&'static str>,
    pub names: BTreeSet<String>,
}

/// The grants of one scope, by resource.
pub type Grants = BTreeMap<GroupResource, Grant>;

/// The permissions the agent needs, by scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rbac {
    /// Per namespace: what the agent does there. The environment's namespace always has an entry.
    pub namespaced: BTreeMap<String, Grants>,
    /// Cluster-scoped objects the environment deploys, by name (a ClusterRole when not empty).
    pub cluster: Grants,
}

/// What a deploy, a drift check and a prune do to a declared object of a kind the environment
/// owns in a namespace: a server-side apply (`patch`; `create` when it is missing, the same
/// request), a dry run (`patch`), a read (`get`; `list` for drift, and for a deploy with many
/// objects of the kind), a delete (prune, `gitship.dev/replace`).
const DECLARED_VERBS: [&str; 5] = ["get", "list", "create", "patch", "delete"];
/// The same, by name: a Secret, a cluster-scoped object. No `list`: drift and a deploy read
/// those one by one when a LIST is refused.
const NAMED_VERBS: [&str; 4] = ["get", "create", "patch", "delete"];
/// What the health wait adds for the kinds it follows (`kube::health::is_watched`): a LIST
/// then a WATCH (by `metadata.name` for a cluster-scoped object, so names suffice).
const WATCH_VERBS: [&str; 2] = ["list", "watch"];

impl Grant {
    fn any(&mut self, verbs: &[&'static str]) -> &mut Grant {
        self.any.extend(verbs);
        self
    }

    fn named(&mut self, name: &str, verbs: &[&'static str]) -> &mut Grant {
        self.named.extend(verbs);
        self.names.insert(name.to_string());
        self
    }
}

fn grant<'a>(grants: &'a mut Grants, group: &str, resource: &str) -> &'a mut Grant {
    grants
        .entry(GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        })
        .or_default()
}

impl Rbac {
    /// What deploying `manifests` of `environment` (objects without a namespace default to
    /// `namespace`) takes, plus gitship's own needs in `namespace`.
    pub fn for_manifests(manifests: &[Manifest], environment: &str, namespace: &str) -> Rbac {
        let crds = crd_resources(manifests);
        let mut rbac = Rbac::default();
        rbac.own_objects(environment, namespace);
        for manifest in manifests {
            let api_version = manifest.api_version();
            let kind = manifest.kind();
            let Some(name) = manifest
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
            else {
                continue;
            };
            if kind.is_empty() {
                continue;
            }
            let group = group_of(api_version);
            let (resource, custom_cluster_scoped) = crds
                .get(&(group.to_string(), kind.to_string()))
                .cloned()
                .unwrap_or_else(|| (plural(api_version, kind), false));
            let watched = gitship_kube::health::is_watched(kind);
            if custom_cluster_scoped || is_cluster_scoped(group, kind) {
                let grant = grant(&mut rbac.cluster, group, &resource);
                grant.named(name, &NAMED_VERBS);
                if watched {
                    grant.named(name, &WATCH_VERBS);
                }
                continue;
            }
            let object_namespace = manifest
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace);
            let grants = rbac
                .namespaced
                .entry(object_namespace.to_string())
                .or_default();
            if group.is_empty() && kind == "Secret" {
                grant(grants, group, &resource).named(name, &NAMED_VERBS);
                continue;
            }
            grant(grants, group, &resource).any(&DECLARED_VERBS);
            if watched {
                grant(grants, group, &resource).any(&WATCH_VERBS);
                // A rollout that fails is explained by its Events (`kube::health::report`).
                grant(grants, "", "events").any(&["list"]);
            }
            // The status page shows a workload's ReplicaSets and Pods (`kube::tree`).
            if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job") {
                grant(grants, "", "pods").any(&["get", "list"]);
                if kind == "Deployment" {
                    grant(grants, "apps", "replicasets").any(&["get", "list"]);
                }
            }
        }
        rbac
    }

    /// gitship's own objects in the environment's namespace, by name where Kubernetes allows it.
    fn own_objects(&mut self, environment: &str, namespace: &str) {
        let own = self.namespaced.entry(namespace.to_string()).or_default();
        let reserved = gitship_foundation::model::reserved_name(environment);
        let agent = gitship_foundation::model::agent_lease_name(environment);
        // The deploy lock and the leader Lease: read, renewed (`update`), released (`delete`).
        // They are taken with a create (POST), which names no object to RBAC: `create` cannot be
        // limited by name, so the agent can create Leases, but read or change only its own.
        let leases = grant(own, "coordination.k8s.io", "leases");
        leases.any(&["create"]);
        for name in [&reserved, &agent] {
            leases.named(name, &["get", "update", "delete"]);
        }
        // The inventory (and the pin in it) and the agent's status: server-side applies, which
        // create a missing object under the `create` verb with its name (allowed by name).
        let status = gitship_foundation::model::agent_status_name(environment);
        let copy = gitship_kube::inventory::copy_name(environment);
        let configmaps = grant(own, "", "configmaps");
        for name in [&reserved, &status, &copy] {
            configmaps.named(name, &["get", "create", "patch"]);
        }
        // The manifests each deploy applied, for an exact rollback: one Secret, by name.
        let revisions = gitship_kube::revisions::secret_name(environment);
        grant(own, "", "secrets").named(&revisions, &["get", "create", "patch"]);
        // The agent's Events (a POST: no name), and the ones a failed rollout's report lists.
        grant(own, "", "events").any(&["list", "create"]);
        // Preflight reads the environment's namespace: a Role grants that for its own namespace.
        grant(own, "", "namespaces").named(namespace, &["get"]);
    }
}

/// The plural and scope (`spec.scope: Cluster`) of every kind a CRD among `manifests` defines,
/// by (group, kind).
fn crd_resources(manifests: &[Manifest]) -> BTreeMap<(String, String), (String, bool)> {
    manifests
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
        .filter_map(|m| {
            let spec = m.object.get("spec")?;
            Some((
                (
                    spec.get("group")?.as_str()?.to_string(),
                    spec.pointer("/names/kind")?.as_str()?.to_string(),
                ),
                (
                    spec.pointer("/names/plural")?.as_str()?.to_string(),
                    spec.get("scope").and_then(Value::as_str) == Some("Cluster"),
                ),
            ))
        })
        .collect()
}

/// The plural resource name of `kind` (kube's pluralization of the built-in kinds:
/// `Ingress` -> `ingresses`, `NetworkPolicy` -> `networkpolicies`, `Endpoints` -> `endpoints`).
pub fn plural(api_version: &str, kind: &str) -> String {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural
}

/// `verbs` in the order RBAC conventionally lists them.
fn ordered(verbs: impl Fn(&str) -> bool) -> Vec<&'static str> {
    ALL_VERBS
        .iter()
        .copied()
        .filter(|verb| verbs(verb))
        .collect()
}

/// RBAC rules: one per API group and set of verbs on every object, then one per resource whose
/// named objects get more (`resourceNames`), sorted.
fn rules(grants: &Grants) -> Vec<Value> {
    let mut by_group_and_verbs: BTreeMap<(String, Vec<&'static str>), Vec<String>> =
        BTreeMap::new();
    let mut named = Vec::new();
    for (resource, grant) in grants {
        let any = ordered(|verb| grant.any.contains(verb));
        if !any.is_empty() {
            by_group_and_verbs
                .entry((resource.group.clone(), any))
                .or_default()
                .push(resource.resource.clone());
        }
        let only_named = ordered(|verb| grant.named.contains(verb) && !grant.any.contains(verb));
        if !only_named.is_empty() {
            named.push(json!({
                "apiGroups": [resource.group],
                "resources": [resource.resource],
                "resourceNames": grant.names,
                "verbs": only_named,
            }));
        }
    }
    by_group_and_verbs
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
        .chain(named)
        .collect()
}

/// The agent of one environment.
struct Agent<'a> {
    environment: &'a str,
    namespace: &'a str,
    image: &'a str,
    source: &'a str,
    branch: &'a str,
    path: Option<&'a Path>,
}

impl Agent<'_> {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": AGENT_NAME,
            "app.kubernetes.io/part-of": "gitship",
            ENVIRONMENT_LABEL: self.environment,
        })
    }

    fn selector(&self) -> Value {
        json!({
            "app.kubernetes.io/name": AGENT_NAME,
            ENVIRONMENT_LABEL: self.environment,
        })
    }

    fn metadata(&self, name: &str, namespace: Option<&str>) -> Value {
        match namespace {
            Some(namespace) => {
                json!({"name": name, "namespace": namespace, "labels": self.labels()})
            }
            None => json!({"name": name, "labels": self.labels()}),
        }
    }

    fn subject(&self) -> Value {
        json!([{"kind": "ServiceAccount", "name": AGENT_NAME, "namespace": self.namespace}])
    }

    /// The cluster-scoped objects' name: the namespace is unique in a cluster.
    fn cluster_name(&self) -> String {
        format!("{AGENT_NAME}-{}", self.namespace)
    }

    fn objects(&self, rbac: &Rbac) -> Vec<Value> {
        let mut objects = vec![json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self.metadata(AGENT_NAME, Some(self.namespace)),
        })];
        if !rbac.cluster.is_empty() {
            let name = self.cluster_name();
            objects.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": self.metadata(&name, None),
                "rules": rules(&rbac.cluster),
            }));
            objects.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": self.metadata(&name, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": self.subject(),
            }));
        }
        for (namespace, grants) in &rbac.namespaced {
            objects.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": self.metadata(AGENT_NAME, Some(namespace)),
                "rules": rules(grants),
            }));
            objects.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": self.metadata(AGENT_NAME, Some(namespace)),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT_NAME},
                "subjects": self.subject(),
            }));
        }
        objects.push(self.deployment());
        objects.push(self.disruption_budget());
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(AGENT_NAME, Some(self.namespace)),
            "spec": {
                "selector": self.selector(),
                "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        }));
        objects
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "agent",
            self.environment,
            "--source",
            self.source,
            "--branch",
            self.branch,
            "--listen",
            &format!("0.0.0.0:{HTTP_PORT}"),
            "--cache",
            CACHE_DIR,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        if let Some(path) = self.path {
            args.push("--path".into());
            args.push(path.to_string_lossy().into_owned());
        }
        args
    }

    /// With two replicas and one leader, a voluntary disruption (a node drain) may take one
    /// replica at a time and never both: `maxUnavailable: 1`, rather than `minAvailable: 1`,
    /// which would block every drain for good were the Deployment scaled to one replica. A
    /// replica that is not ready (crash-looping, say) may always be evicted
    /// (`unhealthyPodEvictionPolicy: AlwaysAllow`): a broken agent never holds a node.
    fn disruption_budget(&self) -> Value {
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.metadata(AGENT_NAME, Some(self.namespace)),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": self.selector()},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        })
    }

    /// The container's environment: the webhook's secret, the Git credentials of a private
    /// repository (each from an optional Secret: absent, the variable is unset), and where the
    /// SSH Secret's files are (an SSH key the agent finds missing is not offered).
    fn env(&self) -> Value {
        let secret = |variable: &str, name: &str, key: &str| {
            json!({
                "name": variable,
                "valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": true}},
            })
        };
        json!([
            secret(
                crate::agent::http::GITHUB_SECRET_VARIABLE,
                WEBHOOK_SECRET_NAME,
                "secret"
            ),
            secret(
                crate::agent::notify::GITHUB_TOKEN_VARIABLE,
                NOTIFY_SECRET_NAME,
                "github-token"
            ),
            secret(
                crate::agent::notify::GITLAB_TOKEN_VARIABLE,
                NOTIFY_SECRET_NAME,
                "gitlab-token"
            ),
            secret(crate::git::clone::TOKEN_VARIABLE, GIT_TOKEN_SECRET_NAME, "token"),
            secret(
                crate::git::clone::USERNAME_VARIABLE,
                GIT_TOKEN_SECRET_NAME,
                "username"
            ),
            {"name": crate::git::clone::SSH_KEY_VARIABLE, "value": format!("{SSH_DIR}/ssh-privatekey")},
            {"name": crate::git::clone::KNOWN_HOSTS_VARIABLE, "value": format!("{SSH_DIR}/known_hosts")},
            // The root filesystem is read-only: Git and Terraform write here.
            {"name": "HOME", "value": "/tmp"},
            // Where the other replica forwards webhooks (`agent::http`), and who the records
            // and Events name (`pod NAMESPACE/NAME`).
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ])
    }

    /// The two replicas on different nodes where the scheduler can: a node's loss then costs
    /// the standby at most.
    fn affinity(&self) -> Value {
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": self.selector()},
                "topologyKey": "kubernetes.io/hostname",
            },
        }]}})
    }

    fn deployment(&self) -> Value {
        let probe = |path: &str| {
            json!({
                "httpGet": {"path": path, "port": "http"},
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            })
        };
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(AGENT_NAME, Some(self.namespace)),
            "spec": {
                // One leads (the Lease), the other takes over within the Lease's duration.
                "replicas": 2,
                "selector": {"matchLabels": self.selector()},
                "template": {
                    "metadata": {"labels": self.labels()},
                    "spec": {
                        "serviceAccountName": AGENT_NAME,
                        "affinity": self.affinity(),
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": AGENT_USER,
                            "runAsGroup": AGENT_USER,
                            "fsGroup": AGENT_USER,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "agent",
                            "image": self.image,
                            "args": self.args(),
                            "env": self.env(),
                            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
                            "livenessProbe": probe("/healthz"),
                            "readinessProbe": probe("/readyz"),
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": AGENT_USER,
                                "readOnlyRootFilesystem": true,
                                "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": [
                                {"name": "cache", "mountPath": CACHE_DIR},
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "ssh", "mountPath": SSH_DIR, "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "cache", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                            // 0400 (the pod's fsGroup adds the group's read: the files are the
                            // agent's group's, never other users').
                            {"name": "ssh", "secret": {
                                "secretName": SSH_SECRET_NAME,
                                "defaultMode": 0o400,
                                "optional": true,
                            }},
                        ],
                    },
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::diagnostics::Location;

    fn manifest(api_version: &str, kind: &str, namespace: Option<&str>) -> Manifest {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        Manifest {
            source: Location::new("k.yaml", 1, 1),
            object,
        }
    }

    #[test]
    fn plurals_of_the_built_in_kinds() {
        for (api_version, kind, expected) in [
            ("networking.k8s.io/v1", "Ingress", "ingresses"),
            ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
            ("v1", "Endpoints", "endpoints"),
            ("apps/v1", "Deployment", "deployments"),
            ("v1", "ConfigMap", "configmaps"),
            ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
            (
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            ("storage.k8s.io/v1", "StorageClass", "storageclasses"),
        ] {
            assert_eq!(plural(api_version, kind), expected, "{kind}");
        }
    }

    /// Namespaced and cluster-scoped kinds in two namespaces, a Secret, and two CRDs (one of
    /// them cluster-scoped).
    fn deployed() -> Vec<Manifest> {
        vec![
            manifest("apps/v1", "Deployment", Some("blog")),
            manifest("v1", "Namespace", None),
            manifest("networking.k8s.io/v1", "Ingress", None),
            manifest("v1", "Service", Some("monitoring")),
            manifest("v1", "ConfigMap", Some("blog")),
            manifest("v1", "Secret", Some("blog")),
            manifest("example.com/v1", "Widget", Some("blog")),
            Manifest {
                source: Location::new("k.yaml", 1, 1),
                object: json!({"apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
                    "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"kind": "Widget", "plural": "widgetz"}}}),
            },
            // A cluster-scoped custom resource: a Role cannot grant it.
            manifest("example.com/v1", "Gadget", None),
            Manifest {
                source: Location::new("k.yaml", 1, 1),
                object: json!({"apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.com"},
                    "spec": {"group": "example.com", "scope": "Cluster",
                        "names": {"kind": "Gadget", "plural": "gadgets"}}}),
            },
        ]
    }

    fn resources(grants: &Grants) -> Vec<String> {
        grants
            .keys()
            .map(|r| format!("{}/{}", r.group, r.resource))
            .collect()
    }

    #[test]
    fn rbac_grants_the_deployed_kinds_by_scope_and_namespace() {
        let rbac = Rbac::for_manifests(&deployed(), "prod", "blog");
        assert_eq!(
            resources(&rbac.cluster),
            [
                "/namespaces",
                "apiextensions.k8s.io/customresourcedefinitions",
                "example.com/gadgets"
            ]
        );
        // Cluster-wide: nothing but the named objects (a CRD's health is followed by name).
        for grant in rbac.cluster.values() {
            assert!(grant.any.is_empty(), "{grant:?}");
        }
        let crds = &rbac.cluster[&GroupResource {
            group: "apiextensions.k8s.io".into(),
            resource: "customresourcedefinitions".into(),
        }];
        assert_eq!(
            crds.names.iter().collect::<Vec<_>>(),
            ["gadgets.example.com", "widgets.example.com"]
        );
        assert_eq!(
            ordered(|v| crds.named.contains(v)),
            ["get", "list", "watch", "create", "patch", "delete"]
        );
        assert_eq!(
            resources(&rbac.namespaced["blog"]),
            [
                "/configmaps",
                "/events",
                "/namespaces",
                "/pods",
                "/secrets",
                "apps/deployments",
                "apps/replicasets",
                "coordination.k8s.io/leases",
                "example.com/widgetz",
                "networking.k8s.io/ingresses"
            ]
        );
        assert_eq!(resources(&rbac.namespaced["monitoring"]), ["/services"]);
    }

    /// The rules of the environment's namespace: unnamed verbs per declared kind, names only for
    /// Secrets, the namespace itself and gitship's Leases.
    #[test]
    fn rbac_rules_of_the_environment_namespace_name_secrets_and_leases() {
        let rbac = Rbac::for_manifests(&deployed(), "prod", "blog");
        let blog = rules(&rbac.namespaced["blog"]);
        let expected = [
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}),
            json!({"apiGroups": [""], "resources": ["configmaps"],
                "verbs": ["get", "list", "create", "patch", "delete"]}),
            json!({"apiGroups": [""], "resources": ["events"], "verbs": ["list", "create"]}),
            // The status page's ReplicaSets and Pods of the Deployments (`kube::tree`).
            json!({"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]}),
            json!({"apiGroups": ["apps"], "resources": ["deployments"],
                "verbs": ["get", "list", "watch", "create", "patch", "delete"]}),
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["create"]}),
            json!({"apiGroups": ["example.com"], "resources": ["widgetz"],
                "verbs": ["get", "list", "create", "patch", "delete"]}),
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                "verbs": ["get", "list", "create", "patch", "delete"]}),
            // The declared ConfigMaps cover gitship's own: no named rule for them.
            json!({"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["blog"],
                "verbs": ["get"]}),
            json!({"apiGroups": [""], "resources": ["secrets"],
                "resourceNames": ["gitship-prod.revisions", "x"],
                "verbs": ["get", "create", "patch", "delete"]}),
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "resourceNames": ["gitship-prod", "gitship-prod.agent"],
                "verbs": ["get", "update", "delete"]}),
        ];
        assert_eq!(blog, expected);
        assert_eq!(
            rules(&rbac.namespaced["monitoring"]),
            [json!({"apiGroups": [""], "resources": ["services"],
                "verbs": ["get", "list", "create", "patch", "delete"]})]
        );
    }

    /// Without declared ConfigMaps, gitship's own are granted by name: no LIST of the
    /// namespace's ConfigMaps, no Secret but the revisions one.
    #[test]
    fn gitship_s_own_objects_are_granted_by_name() {
        let rbac = Rbac::for_manifests(&[manifest("v1", "Service", None)], "prod", "blog");
        let rules = rules(&rbac.namespaced["blog"]);
        assert!(
            rules.contains(&json!({"apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": ["gitship-prod", "gitship-prod.agent", "gitship-prod.history"],
                "verbs": ["get", "create", "patch"]})),
            "{rules:#?}"
        );
        let secrets: Vec<&Value> = rules
            .iter()
            .filter(|rule| rule["resources"] == json!(["secrets"]))
            .collect();
        assert_eq!(
            secrets,
            [&json!({"apiGroups": [""], "resources": ["secrets"],
                "resourceNames": ["gitship-prod.revisions"], "verbs": ["get", "create", "patch"]})]
        );
        assert!(rbac.cluster.is_empty());
    }

    #[test]
    fn bad_images_and_sources_are_refused() {
        assert!(check_image("ghcr.io/acme/gitship:0.1.0").is_ok());
        for bad in ["", "a b", "ghcr.io/x\n"] {
            assert!(check_image(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(Path::new("deploy/blog")).is_ok());
        for bad in ["/abs", "../up", "a/../../b", ""] {
            assert!(check_path(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert!(check_source("https://user:token@github.com/acme/r.git").is_err());
        assert!(check_source("https://token@github.com/acme/r.git").is_err());
        assert!(check_source("ssh://git@github.com/acme/r.git").is_ok());
        assert!(check_source("git@github.com:acme/r.git").is_ok());
        assert_eq!(
            crate::git::clone::display_url("https://token@github.com/acme/r.git"),
            "https://github.com/acme/r.git"
        );
        assert_eq!(
            crate::git::clone::display_url("ssh://git@github.com/acme/r.git"),
            "ssh://git@github.com/acme/r.git"
        );
    }
}
