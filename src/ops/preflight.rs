//! Preflight: everything a deploy needs from the outside world, checked before it changes
//! anything, within a few seconds, one clear line per problem.
//!
//! - **cluster**: the API server answers (`/version`) and the credentials work (an authenticated
//!   read of the environment's namespace);
//! - **namespace**: the environment's namespace exists or can be created;
//! - **registry**: the registry answers and accepts the credentials (the tags of the images a
//!   deploy would build or reuse are looked up);
//! - **terraform**: the backend initialises (`terraform init`, skipped when already done);
//! - **manifests**: they render (checked by the caller, and reported here).
//!
//! `deploy` refuses to start when one fails (`--skip-preflight` skips it); `plan` reports it.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde::{Deserialize, Serialize};

use crate::image::{self, BuildRequest, Registry};
use crate::ops::session::{ClusterConnection, Session};
pub use crate::plan::PreflightCheck;
use crate::terraform::Terraform;
use gitship_foundation::diagnostics::{StageError, UserError};
use gitship_kube::client::ClusterIdentity;

/// How long the cluster and the registry may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Every check's result, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub checks: Vec<PreflightCheck>,
}

impl Preflight {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }

    /// `preflight: 4 ok, 1 failed` and one line per check.
    pub fn render(&self) -> String {
        let mut text = String::from("Preflight:\n");
        for check in &self.checks {
            let mark = if check.ok { "ok    " } else { "FAILED" };
            text.push_str(&format!("  {mark} {:<10} {}\n", check.check, check.detail));
        }
        text
    }

    /// The error of a failed preflight: one line per problem, the hints of each. `deploying`:
    /// the failure stops a deploy, which `--skip-preflight` can force (not a plan: it has no
    /// such flag, so its hint names `deploy`).
    pub fn error(&self, environment: &str, deploying: bool) -> anyhow::Error {
        let failed: Vec<&PreflightCheck> = self.checks.iter().filter(|c| !c.ok).collect();
        let mut message = format!(
            "preflight of environment `{environment}` failed ({} problem{}); nothing was changed",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" }
        );
        for check in &failed {
            message.push_str(&format!("\n{}: {}", check.check, check.detail));
        }
        let hints: Vec<&str> = failed.iter().filter_map(|c| c.hint.as_deref()).collect();
        let hint = if hints.is_empty() && deploying {
            "fix the problems above, or pass `--skip-preflight` to deploy anyway".to_string()
        } else if hints.is_empty() {
            format!(
                "fix the problems above (`gitship deploy {environment} --skip-preflight` would deploy anyway)"
            )
        } else {
            hints.join("; ")
        };
        UserError::new(message, hint).into()
    }
}

/// Run every check (concurrently), given the cluster (none without a Kubernetes layer), what
/// the operation will build or reuse, and which Terraform driver it will use. `objects`: how
/// many manifests rendered, when the caller rendered them already.
pub async fn preflight(
    session: &Session,
    connection: Option<&ClusterConnection>,
    images: &[BuildRequest],
    terraform: Option<&Terraform>,
    objects: Option<usize>,
) -> Preflight {
    let cluster = async {
        match connection {
            Some(connection) => {
                let mut checks = check_cluster(session, connection).await;
                name_terraform_cluster(session, &mut checks);
                checks
            }
            None => Vec::new(),
        }
    };
    let (cluster, registry, terraform) =
        tokio::join!(cluster, check_registry(images), check_terraform(terraform),);
    let mut checks = cluster;
    checks.extend(registry);
    checks.extend(terraform);
    if let Some(objects) = objects {
        checks.push(PreflightCheck::passed(
            "manifests",
            format!("{objects} object(s) render"),
        ));
    }
    Preflight { checks }
}

/// For a cluster that comes from Terraform outputs, a failed check's hint names them: the
/// kubeconfig, context and token are theirs, not the user's.
fn name_terraform_cluster(session: &Session, checks: &mut [PreflightCheck]) {
    let Some(cluster) = session.config.cluster.from_terraform.as_ref() else {
        return;
    };
    if session.kubeconfig.is_some() {
        return;
    }
    let outputs: Vec<String> = cluster
        .references()
        .iter()
        .map(|reference| format!("`{}`", reference.output))
        .collect();
    let note = format!(
        "the cluster comes from the Terraform output(s) {} of `{}`: check their values (`terraform output`) and what the module makes",
        outputs.join(", "),
        session.config.name
    );
    for check in checks.iter_mut().filter(|check| !check.ok) {
        check.hint = Some(match check.hint.take() {
            Some(hint) => format!("{note}; {hint}"),
            None => note.clone(),
        });
    }
}

/// The cluster answers and the credentials work; the namespace exists or can be created.
async fn check_cluster(session: &Session, connection: &ClusterConnection) -> Vec<PreflightCheck> {
    let identity = &connection.identity;
    let client = &connection.client;
    // A server under load or restarting answers 429 or 5xx for a moment: asked again (within
    // the same time limit); a network error is said at once.
    let retry = gitship_kube::retry::RetryPolicy::default();
    let asked = retry.run_on_answers("read the server version", || client.apiserver_version());
    let version = match tokio::time::timeout(ANSWER_TIMEOUT, asked).await {
        Err(_) => {
            return vec![unreachable(
                identity,
                &format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()),
            )];
        }
        Ok(Err(error)) => return vec![cluster_error(identity, &error)],
        Ok(Ok(info)) => info.git_version,
    };
    let mut checks = vec![PreflightCheck::passed(
        "cluster",
        format!("{} answers (Kubernetes {version})", identity.describe()),
    )];
    let namespace = &session.config.cluster.namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let asked = retry.run_on_answers("read the namespace", || api.get_opt(namespace));
    let read = tokio::time::timeout(ANSWER_TIMEOUT, asked).await;
    checks.push(match read {
        Err(_) => unreachable(identity, "reading the namespace timed out"),
        Ok(Err(error)) => {
            let mut check = cluster_error(identity, &error);
            check.check = "namespace".into();
            check
        }
        Ok(Ok(Some(_))) => PreflightCheck::passed("namespace", format!("`{namespace}` exists")),
        Ok(Ok(None)) => {
            PreflightCheck::passed("namespace", format!("`{namespace}` will be created"))
        }
    });
    checks
}

fn unreachable(identity: &ClusterIdentity, cause: &str) -> PreflightCheck {
    PreflightCheck::failed(
        "cluster",
        format!("cannot reach the cluster at {}: {cause}", identity.describe()),
        Some(
            "check the kubeconfig (`--kubeconfig`, `KUBECONFIG`) and the environment's `cluster.context`, \
             that the server is up, and your VPN or network"
                .into(),
        ),
    )
}

/// A failed request to the cluster, in words: unreachable, unauthorized or forbidden.
fn cluster_error(identity: &ClusterIdentity, error: &kube::Error) -> PreflightCheck {
    let user = identity
        .user
        .as_deref()
        .map(|user| format!("user `{user}`"))
        .unwrap_or_else(|| "these credentials".into());
    match error {
        kube::Error::Api(status) if status.code == 401 => PreflightCheck::failed(
            "cluster",
            format!("unauthorized for {user} on {}", identity.describe()),
            Some(
                "the credentials were refused: refresh the kubeconfig's token or certificate"
                    .into(),
            ),
        ),
        kube::Error::Api(status) if status.code == 403 => PreflightCheck::failed(
            "cluster",
            format!(
                "forbidden for {user} on {}: {}",
                identity.describe(),
                status.message
            ),
            Some(
                "grant the user read access to the environment's namespace, or use another context"
                    .into(),
            ),
        ),
        kube::Error::Api(status) => PreflightCheck::failed(
            "cluster",
            format!(
                "{} answered {} {}",
                identity.describe(),
                status.code,
                status.message
            ),
            None,
        ),
        other => unreachable(identity, &innermost(other)),
    }
}

/// The innermost cause of an error: said once, without the wrappers' repetitions.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The registry answers and accepts the credentials: the images' tags are looked up.
async fn check_registry(images: &[BuildRequest]) -> Vec<PreflightCheck> {
    let Some(first) = images.first() else {
        return Vec::new();
    };
    let registry = first.registry().to_string();
    let planned = tokio::time::timeout(
        ANSWER_TIMEOUT * 2,
        image::plan_images(images, &Registry::new()),
    )
    .await;
    vec![match planned {
        Err(_) => PreflightCheck::failed(
            "registry",
            format!(
                "`{registry}` did not answer within {}s",
                ANSWER_TIMEOUT.as_secs() * 2
            ),
            Some(format!(
                "check that `{registry}` is up and reachable from here"
            )),
        ),
        Ok(Err(error)) => {
            PreflightCheck::failed("registry", innermost_message(&error), error.hint())
        }
        Ok(Ok(plans)) => {
            let missing = plans
                .iter()
                .filter(|plan| matches!(plan.action, image::PlannedAction::Build { .. }))
                .count();
            PreflightCheck::passed(
                "registry",
                format!(
                    "`{registry}` answers: {} image(s), {missing} to build",
                    plans.len()
                ),
            )
        }
    }]
}

/// The error's own message, with its innermost cause when that adds something.
fn innermost_message(error: &(dyn std::error::Error + 'static)) -> String {
    let message = error.to_string();
    let cause = innermost(error);
    if message.contains(&cause) {
        message
    } else {
        format!("{message}: {cause}")
    }
}

/// Terraform's backend initialises.
async fn check_terraform(driver: Option<&Terraform>) -> Vec<PreflightCheck> {
    let Some(driver) = driver else {
        return Vec::new();
    };
    vec![match driver.init_if_needed().await {
        Ok(_) => PreflightCheck::passed("terraform", "the backend is initialised"),
        Err(error) => PreflightCheck::failed("terraform", innermost_message(&error), error.hint()),
    }]
}

/// Run the preflight and turn a failure into the deploy's error.
pub async fn require(
    session: &Session,
    connection: &ClusterConnection,
    images: &[BuildRequest],
    terraform: Option<&Terraform>,
    objects: usize,
) -> Result<Preflight> {
    let result = preflight(session, Some(connection), images, terraform, Some(objects)).await;
    if result.passed() {
        Ok(result)
    } else {
        Err(result.error(&session.config.name, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn identity() -> ClusterIdentity {
        ClusterIdentity {
            server: "https://10.0.0.1:6443".into(),
            context: Some("prod".into()),
            user: Some("deployer".into()),
        }
    }

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            message: message.into(),
            ..Status::failure(message, "")
        }))
    }

    #[test]
    fn refused_credentials_name_the_user_server_and_context() {
        let unauthorized = cluster_error(&identity(), &status(401, "Unauthorized"));
        assert!(!unauthorized.ok);
        assert_eq!(
            unauthorized.detail,
            "unauthorized for user `deployer` on `https://10.0.0.1:6443` (context `prod`)"
        );
        assert!(unauthorized.hint.is_some());
        let forbidden = cluster_error(
            &identity(),
            &status(403, "namespaces \"blog\" is forbidden"),
        );
        assert!(
            forbidden
                .detail
                .starts_with("forbidden for user `deployer` on `https://10.0.0.1:6443`"),
            "{}",
            forbidden.detail
        );
        assert!(forbidden.hint.unwrap_or_default().contains("read access"));
    }

    #[test]
    fn a_failed_preflight_is_one_error_listing_every_problem_with_hints() {
        let preflight = Preflight {
            checks: vec![
                PreflightCheck::failed("cluster", "cannot reach", Some("check the VPN".into())),
                PreflightCheck::passed("namespace", "exists"),
                PreflightCheck::failed("registry", "no answer", Some("check the registry".into())),
            ],
        };
        assert!(!preflight.passed());
        // `plan` has no `--skip-preflight`: its hint names `deploy`'s.
        let unhinted = Preflight {
            checks: vec![PreflightCheck::failed("cluster", "cannot reach", None)],
        };
        let plan = gitship_foundation::diagnostics::render(&unhinted.error("prod", false));
        assert!(
            plan.ends_with("hint: fix the problems above (`gitship deploy prod --skip-preflight` would deploy anyway)"),
            "{plan}"
        );
        let rendered = gitship_foundation::diagnostics::render(&preflight.error("prod", true));
        assert_eq!(
            rendered,
            "error: preflight of environment `prod` failed (2 problems); nothing was changed\n  cluster: cannot reach\n  registry: no answer\nhint: check the VPN; check the registry"
        );
        assert!(preflight.render().contains("FAILED registry"));
    }
}
