//! `gitship agent manifests ENV --image REF`: what runs the agent in the cluster.
//!
//! In the environment's namespace (assumed to exist; it is not printed): a ServiceAccount
//! `gitship-agent`, least-privilege RBAC, a Deployment of two replicas (one leads, by the Lease
//! [`crate::model::agent_lease_name`]) and a Service for its HTTP port. The RBAC grants exactly
//! the kinds the environment deploys, found by rendering its manifests with placeholder Terraform
//! outputs (no Terraform, no cluster): a Role per namespace the objects live in, a ClusterRole
//! only when the environment deploys cluster-scoped kinds, plus what gitship itself needs (the
//! deploy and leader Leases, the inventory and status ConfigMaps, Events, a read of its
//! namespace).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::diagnostics::{UserError, user_error};
use crate::model::{ENVIRONMENT_LABEL, Manifest, group_of, is_cluster_scoped};
use crate::render::UnknownOutputs;
use crate::repo::Repository;
use crate::settings::AgentManifestsSettings;
use crate::terraform;

/// The name of the agent's ServiceAccount, Role, RoleBinding, Deployment and Service.
pub const AGENT_NAME: &str = "gitship-agent";
/// The Secret (key `secret`) the Deployment reads `GITSHIP_WEBHOOK_SECRET` from, when it exists.
pub const WEBHOOK_SECRET_NAME: &str = "gitship-agent-webhook";

/// The Secret (keys `github-token`, `gitlab-token`) the Deployment reads the commit-status API
/// tokens from (`GITSHIP_GITHUB_TOKEN`, `GITSHIP_GITLAB_API_TOKEN`), when it exists.
pub const NOTIFY_SECRET_NAME: &str = "gitship-agent-notify";
/// The agent's HTTP port (`/healthz`, `/readyz`, `/metrics`, `/status`, `POST /hooks/git`).
pub const HTTP_PORT: u16 = 8080;
/// Where the agent keeps its clone (an emptyDir).
pub const CACHE_DIR: &str = "/var/cache/gitship";
/// The distroless `nonroot` user.
pub const AGENT_USER: i64 = 65532;

/// Every verb gitship uses on the objects it deploys, in the order RBAC conventionally lists them.
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
    settings: &AgentManifestsSettings,
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
    let rbac = Rbac::for_manifests(&manifests, &namespace);
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

/// The permissions the agent needs, by scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rbac {
    /// Per namespace: what the agent does there. The environment's namespace always has an entry.
    pub namespaced: BTreeMap<String, BTreeMap<GroupResource, BTreeSet<&'static str>>>,
    /// Cluster-scoped kinds the environment deploys (a ClusterRole when not empty).
    pub cluster: BTreeMap<GroupResource, BTreeSet<&'static str>>,
}

impl Rbac {
    /// What deploying `manifests` (objects without a namespace default to `namespace`) takes,
    /// plus gitship's own needs in `namespace`.
    pub fn for_manifests(manifests: &[Manifest], namespace: &str) -> Rbac {
        // A CRD the environment deploys names the plural of its kind, and its scope
        // (`spec.scope: Cluster`: its custom resources have no namespace).
        let crds: BTreeMap<(String, String), (String, bool)> = manifests
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
            .collect();
        let mut rbac = Rbac::default();
        let own = rbac.namespaced.entry(namespace.to_string()).or_default();
        let grant = |rules: &mut BTreeMap<GroupResource, BTreeSet<&'static str>>,
                     group: &str,
                     resource: &str,
                     verbs: &[&'static str]| {
            rules
                .entry(GroupResource {
                    group: group.to_string(),
                    resource: resource.to_string(),
                })
                .or_default()
                .extend(verbs);
        };
        // The deploy lock and the leader Lease.
        grant(
            own,
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update", "delete"],
        );
        // The inventory and the agent's status.
        grant(
            own,
            "",
            "configmaps",
            &["get", "list", "create", "update", "patch", "delete"],
        );
        // The agent's Events, and the ones a failed rollout's diagnostics list.
        grant(own, "", "events", &["get", "list", "create", "patch"]);
        // Preflight reads the environment's namespace: a Role grants that for its own namespace.
        grant(own, "", "namespaces", &["get"]);
        for manifest in manifests {
            let api_version = manifest.api_version();
            let kind = manifest.kind();
            if kind.is_empty() {
                continue;
            }
            let group = group_of(api_version);
            let (resource, custom_cluster_scoped) = crds
                .get(&(group.to_string(), kind.to_string()))
                .cloned()
                .unwrap_or_else(|| (plural(api_version, kind), false));
            let rules = if custom_cluster_scoped || is_cluster_scoped(group, kind) {
                &mut rbac.cluster
            } else {
                let object_namespace = manifest
                    .object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                rbac.namespaced
                    .entry(object_namespace.to_string())
                    .or_default()
            };
            grant(rules, group, &resource, &ALL_VERBS);
        }
        rbac
    }
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

/// RBAC rules, one per API group and set of verbs, sorted.
fn rules(grants: &BTreeMap<GroupResource, BTreeSet<&'static str>>) -> Vec<Value> {
    let mut by_group_and_verbs: BTreeMap<(String, Vec<&'static str>), Vec<String>> =
        BTreeMap::new();
    for (resource, verbs) in grants {
        let verbs: Vec<&'static str> = ALL_VERBS
            .iter()
            .copied()
            .filter(|verb| verbs.contains(verb))
            .collect();
        by_group_and_verbs
            .entry((resource.group.clone(), verbs))
            .or_default()
            .push(resource.resource.clone());
    }
    by_group_and_verbs
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
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
                            "env": [
                                {
                                    "name": crate::agent::http::GITHUB_SECRET_VARIABLE,
                                    "valueFrom": {"secretKeyRef": {
                                        "name": WEBHOOK_SECRET_NAME,
                                        "key": "secret",
                                        "optional": true,
                                    }},
                                },
                                {
                                    "name": crate::agent::notify::GITHUB_TOKEN_VARIABLE,
                                    "valueFrom": {"secretKeyRef": {
                                        "name": NOTIFY_SECRET_NAME,
                                        "key": "github-token",
                                        "optional": true,
                                    }},
                                },
                                {
                                    "name": crate::agent::notify::GITLAB_TOKEN_VARIABLE,
                                    "valueFrom": {"secretKeyRef": {
                                        "name": NOTIFY_SECRET_NAME,
                                        "key": "gitlab-token",
                                        "optional": true,
                                    }},
                                },
                                // The root filesystem is read-only: Git and Terraform write here.
                                {"name": "HOME", "value": "/tmp"},
                            ],
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
                            ],
                        }],
                        "volumes": [
                            {"name": "cache", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
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
    use crate::diagnostics::Location;

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

    #[test]
    fn rbac_grants_the_deployed_kinds_by_scope_and_namespace() {
        let manifests = [
            manifest("apps/v1", "Deployment", Some("blog")),
            manifest("v1", "Namespace", None),
            manifest("networking.k8s.io/v1", "Ingress", None),
            manifest("v1", "Service", Some("monitoring")),
            manifest("v1", "ConfigMap", Some("blog")),
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
        ];
        let rbac = Rbac::for_manifests(&manifests, "blog");
        let resources = |rules: &BTreeMap<GroupResource, BTreeSet<&'static str>>| {
            rules
                .keys()
                .map(|r| format!("{}/{}", r.group, r.resource))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            resources(&rbac.cluster),
            [
                "/namespaces",
                "apiextensions.k8s.io/customresourcedefinitions",
                "example.com/gadgets"
            ]
        );
        assert_eq!(
            resources(&rbac.namespaced["blog"]),
            [
                "/configmaps",
                "/events",
                "/namespaces",
                "apps/deployments",
                "coordination.k8s.io/leases",
                "example.com/widgetz",
                "networking.k8s.io/ingresses"
            ]
        );
        assert_eq!(resources(&rbac.namespaced["monitoring"]), ["/services"]);
        // Deployed ConfigMaps get every verb; gitship's own configmaps need no watch.
        let configmaps = GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        };
        assert_eq!(rbac.namespaced["blog"][&configmaps].len(), ALL_VERBS.len());
        let rules = rules(&rbac.namespaced["monitoring"]);
        assert_eq!(
            rules,
            [json!({"apiGroups": [""], "resources": ["services"], "verbs": ALL_VERBS})]
        );
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
