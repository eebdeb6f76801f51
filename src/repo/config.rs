//! The typed environment config, `config/<env>.yaml`.
//!
//! ```yaml
//! cluster:
//!   context: prod            # kubeconfig context (default: the kubeconfig's current context)
//!   namespace: blog          # default namespace for namespaced objects (required)
//!   kubeconfig: ~/.kube/prod # optional kubeconfig file for this environment
//!   force_conflicts: true    # server-side apply takes ownership from other managers (default)
//! registry: ghcr.io/acme/blog  # required when the repository has apps
//! terraform:
//!   workspace: production    # or backend_config: {key: value}
//!   vars: { db_instance_class: db.t3.medium }
//!   lock_timeout: 5m
//! deploy:
//!   timeout: 5m              # health wait
//!   lock_timeout: 5m         # wait for another deploy of this environment
//!   require_clean_tree: true # default: true for `production`, false otherwise
//!   history: 10              # deploy records kept in the inventory
//! drift:
//!   ignore:
//!     - { kind: Deployment, name: blog-backend, pointer: /spec/replicas }
//!     - { manager: horizontal-pod-autoscaler, pointer: /spec/replicas }
//! values: { backend: { replicas: 3 } }   # free-form, used by templates
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostics::Location;

/// One environment's validated config.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// The environment's name (a DNS label; the file stem).
    pub name: String,
    /// Absolute path of `config/<env>.yaml`.
    pub file: PathBuf,
    pub cluster: ClusterConfig,
    pub registry: Option<String>,
    pub terraform: TerraformConfig,
    pub deploy: DeployConfig,
    pub drift: DriftConfig,
    /// Free-form values for templates (`values.*`); an object.
    pub values: serde_json::Value,
    /// Where each key was written, for error messages.
    pub spans: SpanMap,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub context: Option<String>,
    pub namespace: String,
    pub kubeconfig: Option<PathBuf>,
    pub force_conflicts: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TerraformConfig {
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

/// Key path (`terraform.vars.db_size`) -> where it was written.
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
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
