//! The errors of the Kubernetes stage. Every variant names the object (and the file it came from
//! where one exists) so that the rendered message alone tells the user what to fix.

use std::path::PathBuf;
use std::time::Duration;

use gitship_foundation::diagnostics::{ErrorClass, Location, StageError};

/// What can go wrong between a rendered manifest and a converged environment.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("cannot load the kubeconfig{}", path_suffix(.path))]
    Kubeconfig {
        path: Option<PathBuf>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor an in-cluster config is available.
    #[error("no Kubernetes configuration found (no kubeconfig and not running in a cluster)")]
    NoConfig {
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The HTTP client could not be built from the config.
    #[error("cannot create the Kubernetes client")]
    Client {
        #[source]
        source: kube::Error,
    },
    /// A manifest is not a Kubernetes object (missing `apiVersion`, `kind` or `metadata.name`).
    #[error("{location}: invalid manifest: {message}")]
    InvalidManifest { location: Location, message: String },
    /// Two manifests describe the same object.
    #[error("{second}: `{id}` is also defined at {first}")]
    Duplicate {
        id: String,
        first: Location,
        second: Location,
    },
    /// The cluster does not serve this apiVersion/kind, and no CRD in this deploy defines it.
    #[error(
        "{location}: unknown kind `{kind}` (apiVersion `{api_version}`) for `{name}`: the cluster does not serve it"
    )]
    UnknownKind {
        location: Location,
        api_version: String,
        kind: String,
        name: String,
    },
    /// A CRD applied by this deploy did not become Established in time.
    #[error("CustomResourceDefinition `{name}` did not become Established within {timeout:?}")]
    CrdNotEstablished { name: String, timeout: Duration },
    /// A request about one object failed (after retries, when the failure was transient).
    #[error("{object}: {message}")]
    Api {
        object: String,
        message: String,
        #[source]
        source: kube::Error,
    },
    /// An immutable field changed and the object did not opt into replacement.
    #[error("{object}: field `{field}` is immutable and differs from the live object")]
    Immutable {
        object: String,
        field: String,
        message: String,
    },
    /// The live object is being deleted (finalizers) and was not gone in time to be created anew.
    #[error("{object}: the live object is being deleted and was not gone within {waited:?}")]
    StillDeleting { object: String, waited: Duration },
    /// `gitship destroy`: objects it deleted were still there when its `--timeout` ran out
    /// (each `Kind namespace/name (finalizers: a, b)`).
    #[error("{} object(s) still there after {waited:?}:\n{}", .objects.len(), .objects.join("\n"))]
    DestroyTimeout {
        objects: Vec<String>,
        waited: Duration,
        environment: String,
    },
    /// Applying failed for some objects; the others of the wave were applied.
    #[error("applying {} object(s) failed:\n{}", .failures.len(), .failures.join("\n"))]
    ApplyFailed { failures: Vec<String> },
    /// Workloads did not become healthy; the report names each with conditions and Events.
    #[error("{count} object(s) did not become healthy:\n{report}")]
    Unhealthy { count: usize, report: String },
    /// A hook (ARCHITECTURE.md, "Waves and hooks") failed or did not finish in time: the deploy
    /// stopped there.
    #[error("{phase} hook {hook} {how}: {reason}")]
    HookFailed {
        phase: &'static str,
        /// `Job blog/migrate-7xk2p (deploy/migrate.yaml:1:1)`.
        hook: String,
        /// `failed` or `timed out`.
        how: &'static str,
        reason: String,
    },
    /// Another deploy holds the environment's lock.
    #[error("environment `{env}` is locked by `{holder}` (waited {waited:?})")]
    LockTimeout {
        env: String,
        holder: String,
        waited: Duration,
    },
    /// The live object belongs to another environment (`gitship.dev/owned-by`).
    #[error("{object}: owned by environment `{owner}`, not `{environment}`")]
    OwnedElsewhere {
        object: String,
        owner: String,
        environment: String,
    },
    /// Another holder took the environment's Lease during the deploy: it stopped before pruning.
    #[error(
        "the lock of environment `{env}` was taken over during the deploy: stopped before pruning"
    )]
    LockLost { env: String },
    /// The desired set is empty and pruning would delete everything gitship deployed.
    #[error(
        "refusing to prune all {count} object(s) of environment `{env}`: the desired set is empty"
    )]
    EmptyDesiredSet { env: String, count: usize },
    /// SIGINT/SIGTERM arrived; the deploy stopped between steps (the lock was released).
    #[error("interrupted")]
    Interrupted,
    /// The inventory ConfigMap exists but cannot be read.
    #[error("the inventory ConfigMap `{name}` is corrupt: {message}")]
    CorruptInventory { name: String, message: String },
    /// The pin (`pin.json` of the inventory ConfigMap) cannot be read.
    #[error(
        "the pin of `{environment}` in the inventory ConfigMap `{name}` is unreadable: {message}"
    )]
    CorruptPin {
        name: String,
        environment: String,
        message: String,
    },
    /// The namespace a preview would be recorded in holds something else.
    #[error("cannot record preview `{preview}`: namespace `{namespace}` {why}")]
    PreviewTaken {
        preview: String,
        namespace: String,
        why: String,
    },
}

/// The bridge from the Kubernetes stage to the user's error (see [`gitship_foundation::diagnostics::user_error`]).
impl StageError for KubeError {
    /// A hint for the user, when there is a useful one.
    fn hint(&self) -> Option<String> {
        match self {
            KubeError::Kubeconfig { .. } | KubeError::NoConfig { .. } => Some(
                "pass `--kubeconfig FILE`, set `KUBECONFIG`, or set `cluster.kubeconfig` / `cluster.context` in the environment config"
                    .into(),
            ),
            KubeError::UnknownKind { .. } => Some(
                "install the CustomResourceDefinition first, add it to the manifests, or fix `apiVersion`/`kind`".into(),
            ),
            KubeError::Immutable { .. } => Some(
                "annotate the object with `gitship.dev/replace: \"true\"` to delete and recreate it".into(),
            ),
            KubeError::StillDeleting { .. } => Some(
                "a finalizer holds the object: check `kubectl get -o yaml` for `metadata.finalizers`, then deploy again".into(),
            ),
            KubeError::LockTimeout { .. } => Some(
                "wait for the other deploy to finish or raise `--lock-timeout`; an abandoned lock expires on its own".into(),
            ),
            KubeError::OwnedElsewhere { owner, .. } => Some(format!(
                "two environments share this name and namespace: rename the object, move one environment to its own namespace, \
                 or take it over from `{owner}` with the annotation `gitship.dev/adopt: \"true\"`"
            )),
            KubeError::DestroyTimeout { environment, .. } => Some(format!(
                "a finalizer holds each object: its controller removes it, or remove it by hand (`kubectl patch --type=merge -p '{{\"metadata\":{{\"finalizers\":null}}}}'`); then run `gitship destroy {environment}` again, which goes on from there (or raise `--timeout`)"
            )),
            KubeError::LockLost { .. } => Some(
                "another deploy (or a lock released by hand) took the environment: check `kubectl get lease` and deploy again".into(),
            ),
            KubeError::EmptyDesiredSet { .. } => {
                Some("pass `--allow-empty` to really delete everything, or `--no-prune`".into())
            }
            KubeError::CorruptPin { environment, .. } => Some(format!(
                "run `gitship resume {environment}` to remove it (then pin again if the environment must stay at a revision)"
            )),
            KubeError::PreviewTaken { .. } => Some(
                "choose another preview name, or destroy what holds the namespace first".into(),
            ),
            KubeError::HookFailed { .. } => Some(
                "see its pods with `kubectl describe` and `kubectl logs`; fix the hook (or what it needs) and deploy again; its delete policy decides whether the failed object stays for inspection".into(),
            ),
            KubeError::Unhealthy { .. } => {
                Some("inspect the objects above with `kubectl describe`; raise `--timeout` if they are only slow".into())
            }
            _ => None,
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            KubeError::Interrupted => ErrorClass::Interrupted,
            _ => ErrorClass::Failure,
        }
    }
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!(" `{}`", path.display()),
        None => String::new(),
    }
}

/// The field named by an "immutable" rejection (422), if this is one.
pub(crate) fn immutable_field(error: &kube::Error) -> Option<String> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    if status.code != 422 && status.code != 400 {
        return None;
    }
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    for cause in causes {
        if names_immutable(&cause.message) {
            if !cause.field.is_empty() {
                return Some(cause.field.clone());
            }
            if let Some(field) = field_before_colon(&cause.message) {
                return Some(field);
            }
        }
    }
    if names_immutable(&status.message) {
        // `Deployment.apps "web" is invalid: spec.selector: Invalid value: ...: field is immutable`
        let after_invalid = status
            .message
            .split_once("is invalid: ")
            .map(|(_, rest)| rest)
            .unwrap_or(&status.message);
        return Some(
            field_before_colon(after_invalid).unwrap_or_else(|| "(unknown field)".to_string()),
        );
    }
    None
}

/// Whether a validation message refuses a change to a field that cannot change: most say "field
/// is immutable"; a Service's `spec.clusterIPs[0]` says "may not change once set".
fn names_immutable(message: &str) -> bool {
    message.contains("immutable") || message.contains("may not change once set")
}

fn field_before_colon(text: &str) -> Option<String> {
    let (field, _) = text.split_once(':')?;
    let field = field.trim();
    (!field.is_empty() && !field.contains(' ')).then(|| field.to_string())
}

/// The server's message of an error (the Status message for API errors).
pub fn error_message(error: &kube::Error) -> String {
    gitship_foundation::diagnostics::kube_error_text(error)
}

impl KubeError {
    /// A request about `object` failed, with the server's message.
    pub fn api(object: String, source: kube::Error) -> KubeError {
        KubeError::Api {
            object,
            message: error_message(&source),
            source,
        }
    }

    /// A request about `object` failed: an immutable-field rejection names the field, anything
    /// else keeps the server's message.
    pub fn about(object: String, source: kube::Error) -> KubeError {
        if let Some(field) = immutable_field(&source) {
            return KubeError::Immutable {
                object,
                field,
                message: error_message(&source),
            };
        }
        KubeError::Api {
            object,
            message: error_message(&source),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use serde_json::json;

    #[test]
    fn immutable_field_is_found_in_causes_or_message() {
        let with_cause: Status = serde_json::from_value(json!({
            "code": 422, "reason": "Invalid",
            "message": "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {}: field is immutable",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: {}: field is immutable", "field": "spec.selector"}]}
        }))
        .unwrap();
        let with_cause = kube::Error::Api(Box::new(with_cause));
        assert_eq!(
            immutable_field(&with_cause).as_deref(),
            Some("spec.selector")
        );
        let message_only = kube::Error::Api(Box::new(Status {
            code: 422,
            message: "Job.batch \"migrate\" is invalid: spec.template: Invalid value: ...: field is immutable".into(),
            ..Status::failure("", "Invalid")
        }));
        assert_eq!(
            immutable_field(&message_only).as_deref(),
            Some("spec.template")
        );
        let other = kube::Error::Api(Box::new(Status {
            code: 422,
            message: "spec.replicas: must be >= 0".into(),
            ..Status::failure("", "Invalid")
        }));
        assert_eq!(immutable_field(&other), None);
        // kube-apiserver v1.37's answer to a changed Service clusterIP.
        let cluster_ip: Status = serde_json::from_value(json!({
            "code": 422, "reason": "Invalid",
            "message": "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: []string{\"10.96.0.11\"}: may not change once set", "field": "spec.clusterIPs[0]"}]}
        }))
        .unwrap();
        assert_eq!(
            immutable_field(&kube::Error::Api(Box::new(cluster_ip))).as_deref(),
            Some("spec.clusterIPs[0]")
        );
    }
}
