//! Integration tests: the Kubernetes stage against a cluster over real HTTP.
//!
//! Each test starts its own [`TestCluster`] (an in-process kubesim, or its own namespaces on the
//! real control plane with `GITSHIP_TEST_CLUSTER=real`), builds a `kube::Client` from its config
//! (as the deploy command does from a kubeconfig) and drives `gitship_kube::deploy_objects`.
//! Writes and dry runs are counted from kubesim's request record or the real server's audit log;
//! reads only kubesim records, so assertions on them hold on kubesim alone.

use gitship_foundation::diagnostics::StageError as _;
use std::sync::Mutex;
use std::time::Duration;

use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{Environment, Manifest};
use gitship_foundation::output::OutputFormat;
use gitship_foundation::output::Printer;
use gitship_kube::deploy::{DeployOptions, ObjectAction};
use gitship_kube::inventory::DeployOutcome;
use gitship_kube::lock::LockOptions;
use gitship_kube::retry::RetryPolicy;
use gitship_kube::{KubeError, deploy_objects};
use kubesim::{Fault, Rollout};
use serde_json::{Value, json};

use crate::support::cluster::{Backend, Mark, TestCluster, sim_only};
use crate::support::require_tool;

/// The namespace the tests call `blog` ([`TestCluster::ns`] makes it the test's own).
const NAMESPACE: &str = "blog";

fn options() -> DeployOptions {
    DeployOptions {
        timeout: Duration::from_secs(15),
        lock: LockOptions {
            timeout: Duration::from_secs(20),
            lease_duration: Duration::from_secs(3),
        },
        who: "test".into(),
        sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        retry: RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
            max_server_delay: Duration::from_millis(200),
        },
        ..DeployOptions::default()
    }
}

fn printer() -> Printer {
    Printer::plain(OutputFormat::Human)
}

fn desired(file: &str, object: Value) -> Manifest {
    Manifest {
        source: Location::new(format!("infrastructure/kubernetes/{file}"), 1, 1),
        object,
    }
}

fn deployment(name: &str, replicas: i64, image: &str) -> Manifest {
    desired(
        &format!("{name}.yaml"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
                }
            }
        }),
    )
}

fn blog() -> Vec<Manifest> {
    vec![
        desired(
            "config.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "blog-config"}, "data": {"LOG_LEVEL": "info"}}),
        ),
        desired(
            "secret.yaml",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "blog-db"}, "type": "Opaque", "stringData": {"password": "s3cret-value"}}),
        ),
        desired(
            "sa.yaml",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "blog"}}),
        ),
        desired(
            "backend-svc.yaml",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "blog-backend"},
            "spec": {"selector": {"app": "blog-backend"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        deployment("blog-backend", 3, "ghcr.io/acme/blog/backend:abc"),
        deployment("blog-frontend", 2, "ghcr.io/acme/blog/frontend:abc"),
    ]
}

/// [`blog`] without its ConfigMap `blog-config` (a prune candidate once `blog` was deployed).
fn blog_without_config() -> Vec<Manifest> {
    blog()
        .into_iter()
        .filter(|d| d.object["metadata"]["name"] != "blog-config")
        .collect()
}

struct Cluster {
    test: TestCluster,
    client: kube::Client,
    /// The test's `blog` namespace.
    namespace: String,
    /// Cluster-scoped objects the test created on the real server (`kubectl delete` arguments),
    /// deleted when the cluster drops.
    cluster_scoped: Mutex<Vec<String>>,
}

async fn cluster() -> Cluster {
    let test = TestCluster::start().await;
    let client = gitship_kube::client::client_from(test.kube_config().await).expect("client");
    let namespace = test.ns(NAMESPACE);
    Cluster {
        test,
        client,
        namespace,
        cluster_scoped: Mutex::new(Vec::new()),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let objects = self
            .cluster_scoped
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if objects.is_empty() {
            return;
        }
        let _ = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.test.kubeconfig_path())
            .args(["delete", "--wait=false", "--ignore-not-found"])
            .args(&objects)
            .output();
    }
}

impl Cluster {
    /// The environment `production` in the test's `blog` namespace.
    fn environment(&self) -> Environment {
        self.environment_named("production")
    }

    fn environment_named(&self, name: &str) -> Environment {
        Environment {
            name: name.into(),
            namespace: self.namespace.clone(),
        }
    }

    /// The name of a cluster-scoped object of `resource` (a `kubectl` resource name) the test
    /// calls `base`: `base` on kubesim, the test's own (deleted when the cluster drops) on the
    /// real server.
    fn cluster_scoped(&self, resource: &str, base: &str) -> String {
        let name = self.test.ns(base);
        if self.test.sim().is_none() {
            let mut objects = self.cluster_scoped.lock().expect("cluster-scoped objects");
            objects.push(format!("{resource}/{name}"));
        }
        name
    }

    /// The API group the tests call `example.com`: the test's own on the real server, where the
    /// CustomResourceDefinitions of every test share one cluster.
    fn example_group(&self) -> String {
        let group = format!("{}.com", self.test.ns("example"));
        if self.test.sim().is_none() {
            let mut objects = self.cluster_scoped.lock().expect("cluster-scoped objects");
            objects.push(format!("customresourcedefinition/widgets.{group}"));
        }
        group
    }

    /// `KIND NAMESPACE/NAME` of an object in the test's `blog` namespace, as gitship names it.
    fn id(&self, kind: &str, name: &str) -> String {
        format!("{kind} {}/{name}", self.namespace)
    }

    async fn deploy(
        &self,
        objects: Vec<Manifest>,
    ) -> Result<gitship_kube::DeployReport, KubeError> {
        self.deploy_with(objects, &options()).await
    }

    async fn deploy_with(
        &self,
        objects: Vec<Manifest>,
        options: &DeployOptions,
    ) -> Result<gitship_kube::DeployReport, KubeError> {
        deploy_objects(
            &self.client,
            &self.environment(),
            objects,
            options,
            &printer(),
        )
        .await
    }

    /// `kubectl scale deployment NAME --replicas=N` with the real kubectl against this cluster.
    async fn kubectl_scale(&self, deployment: &str, replicas: u32) {
        let output = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.test.kubeconfig_path())
            .args(["-n", &self.namespace, "scale", "deployment", deployment])
            .arg(format!("--replicas={replicas}"))
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl scale: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The live object as JSON, `None` when absent.
    async fn live(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .expect("kind is served");
        let api: kube::Api<kube::api::DynamicObject> =
            if capabilities.scope == kube::discovery::Scope::Namespaced {
                kube::Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
            } else {
                kube::Api::all_with(self.client.clone(), &resource)
            };
        api.get_opt(name)
            .await
            .expect("get")
            .map(|o| serde_json::to_value(o).unwrap())
    }

    /// Whether the object is gone, or goes within a few seconds: a real server deletes with
    /// foreground propagation only after the garbage collector has removed the finalizer.
    async fn is_gone(&self, api_version: &str, kind: &str, name: &str) -> bool {
        for _ in 0..100 {
            if self.live(api_version, kind, name).await.is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    async fn inventory(&self) -> gitship_kube::inventory::Inventory {
        let retry = RetryPolicy::default();
        gitship_kube::inventory::load(&self.client, "production", &self.namespace, &retry)
            .await
            .unwrap()
            .expect("inventory exists")
    }

    /// Where the records stand now.
    fn mark(&self) -> Since {
        Since {
            writes: self.test.mark(),
            requests: self
                .test
                .sim()
                .map_or(0, |sim| sim.handle().request_count()),
        }
    }

    /// Writes (not dry runs) since `mark`, as `METHOD path`.
    fn writes_since(&self, mark: Since) -> Vec<String> {
        self.test.writes_since(mark.writes)
    }

    /// Dry-run writes since `mark`, as `METHOD path`.
    fn dry_runs_since(&self, mark: Since) -> Vec<String> {
        self.test.dry_runs_since(mark.writes)
    }

    /// The lock's and the inventory's writes.
    fn is_bookkeeping(&self, write: &str) -> bool {
        write.contains(&format!("/namespaces/{}/leases", self.namespace))
            || write.contains("/configmaps/gitship-production")
    }

    /// kubesim's record of requests (reads too) from `mark` on with `method` and a matching path;
    /// `None` on the real server, whose audit log has no reads.
    fn requests_since(
        &self,
        mark: Since,
        method: &str,
        path: impl Fn(&str) -> bool,
    ) -> Option<Vec<kubesim::RequestRecord>> {
        let sim = self.test.sim()?;
        Some(
            sim.handle()
                .requests()
                .into_iter()
                .skip(mark.requests)
                .filter(|r| r.method == method && path(&r.path))
                .collect(),
        )
    }

    /// Refuse to delete ConfigMap `name`: kubesim fails the next DELETE (409); on the real
    /// server an admission policy bound to the test's namespace refuses it (403) until
    /// [`Cluster::allow_deleting`] removes the policy it returns.
    async fn refuse_deleting_config_map(&self, name: &str) -> Option<Refusal> {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        if let Some(sim) = self.test.sim() {
            sim.handle()
                .fail_next_method("DELETE", 1, Fault::Conflict409);
            return None;
        }
        let policy = self.cluster_scoped("validatingadmissionpolicy", &format!("keep-{name}"));
        self.cluster_scoped("validatingadmissionpolicybinding", &format!("keep-{name}"));
        let policies: kube::Api<ValidatingAdmissionPolicy> = kube::Api::all(self.client.clone());
        let definition = serde_json::from_value(json!({
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["DELETE"], "resources": ["configmaps"]}]},
                "validations": [{"expression": format!("oldObject.metadata.name != '{name}'"),
                    "message": format!("{name} is kept"), "reason": "Forbidden"}]
            }
        }))
        .expect("policy");
        policies
            .create(&Default::default(), &definition)
            .await
            .expect("create policy");
        let bindings: kube::Api<ValidatingAdmissionPolicyBinding> =
            kube::Api::all(self.client.clone());
        let binding = serde_json::from_value(json!({
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels":
                    {"kubernetes.io/metadata.name": self.namespace}}}
            }
        }))
        .expect("binding");
        bindings
            .create(&Default::default(), &binding)
            .await
            .expect("create binding");
        // Admission takes the policy up a moment later: until a dry run is refused.
        self.wait_for_dry_run_delete(name, false).await;
        Some(Refusal {
            policy,
            config_map: name.to_string(),
        })
    }

    /// Remove the policy [`Cluster::refuse_deleting_config_map`] made, once it took effect.
    async fn allow_deleting(&self, refusal: Option<Refusal>) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let Some(refusal) = refusal else {
            return;
        };
        let policy = &refusal.policy;
        let bindings: kube::Api<ValidatingAdmissionPolicyBinding> =
            kube::Api::all(self.client.clone());
        bindings
            .delete(policy, &Default::default())
            .await
            .expect("delete binding");
        let policies: kube::Api<ValidatingAdmissionPolicy> = kube::Api::all(self.client.clone());
        policies
            .delete(policy, &Default::default())
            .await
            .expect("delete policy");
        self.wait_for_dry_run_delete(&refusal.config_map, true)
            .await;
    }

    /// Poll a dry-run DELETE of ConfigMap `name` until it is `allowed` (or refused).
    async fn wait_for_dry_run_delete(&self, name: &str, allowed: bool) {
        let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(self.client.clone(), &self.namespace);
        let dry_run = kube::api::DeleteParams {
            dry_run: true,
            ..Default::default()
        };
        for _ in 0..100 {
            if config_maps.delete(name, &dry_run).await.is_ok() == allowed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("a dry-run DELETE of ConfigMap {name} is not allowed: {allowed} after 10s");
    }

    /// A client the server refuses to LIST the ConfigMaps of the test's namespace, though it may
    /// read, apply and delete them one by one: kubesim answers the next LIST 403; on the real
    /// server the client is a ServiceAccount whose Role grants no `list`.
    async fn client_that_may_not_list_config_maps(&self) -> kube::Client {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
        if let Some(sim) = self.test.sim() {
            sim.handle().fail_next_path(
                "GET",
                &format!("/api/v1/namespaces/{}/configmaps", self.namespace),
                1,
                Fault::Forbidden403,
            );
            return self.client.clone();
        }
        let create = kube::api::PostParams::default();
        let subject =
            json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": self.namespace}]);
        let accounts: kube::Api<ServiceAccount> =
            kube::Api::namespaced(self.client.clone(), &self.namespace);
        let account = serde_json::from_value(json!({"metadata": {"name": "deployer"}}))
            .expect("service account");
        accounts
            .create(&create, &account)
            .await
            .expect("create service account");
        let roles: kube::Api<Role> = kube::Api::namespaced(self.client.clone(), &self.namespace);
        let role = serde_json::from_value(json!({
            "metadata": {"name": "deployer"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get", "create", "update", "patch", "delete"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                    "verbs": ["get", "create", "update", "patch", "delete"]},
                {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                    "verbs": ["create", "patch"]}
            ]
        }))
        .expect("role");
        roles.create(&create, &role).await.expect("create role");
        let bindings: kube::Api<RoleBinding> =
            kube::Api::namespaced(self.client.clone(), &self.namespace);
        let binding = serde_json::from_value(json!({
            "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": subject
        }))
        .expect("role binding");
        bindings
            .create(&create, &binding)
            .await
            .expect("create role binding");
        // Its own namespace, which is cluster-scoped.
        let name = self.cluster_scoped("clusterrole", "deployer");
        self.cluster_scoped("clusterrolebinding", "deployer");
        let cluster_roles: kube::Api<ClusterRole> = kube::Api::all(self.client.clone());
        let cluster_role = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"],
                "resourceNames": [self.namespace], "verbs": ["get", "patch"]}]
        }))
        .expect("cluster role");
        cluster_roles
            .create(&create, &cluster_role)
            .await
            .expect("create cluster role");
        let cluster_bindings: kube::Api<ClusterRoleBinding> = kube::Api::all(self.client.clone());
        let cluster_binding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subject
        }))
        .expect("cluster role binding");
        cluster_bindings
            .create(&create, &cluster_binding)
            .await
            .expect("create cluster role binding");
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))
                .expect("token request");
        let token = accounts
            .create_token_request("deployer", &create, &request)
            .await
            .expect("token")
            .status
            .expect("token status")
            .token;
        let mut config = self.test.kube_config().await;
        config.auth_info =
            serde_json::from_value(json!({"token": token})).expect("token credentials");
        let client = gitship_kube::client::client_from(config).expect("client");
        let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), &self.namespace);
        let refused = config_maps.list(&Default::default()).await;
        assert!(
            matches!(&refused, Err(kube::Error::Api(status)) if status.code == 403),
            "the ServiceAccount may not list: {refused:?}"
        );
        client
    }

    /// Make the next rollout of Deployment `name` in `objects` fail: kubesim's scripted
    /// rollout, or on the real server pods that never become Ready (a label kwok knows) and a
    /// short progress deadline.
    fn fail_rollout(&self, objects: &mut [Manifest], name: &str) {
        match self.test.sim() {
            Some(sim) => sim
                .handle()
                .script_rollout(&self.namespace, name, Rollout::Fail),
            None => {
                let deployment = deployment_in(objects, name);
                deployment["spec"]["progressDeadlineSeconds"] = json!(3);
                deployment["spec"]["template"]["metadata"]["labels"]["sim.gitship.dev/unready"] =
                    json!("true");
            }
        }
    }

    /// Undo [`Cluster::fail_rollout`] on kubesim (the real server's manifests say it).
    fn heal_rollout(&self, name: &str) {
        if let Some(sim) = self.test.sim() {
            sim.handle()
                .script_rollout(&self.namespace, name, Rollout::Healthy);
        }
    }

    /// Make the next rollout of Deployment `name` in `objects` last at least `duration`:
    /// kubesim's scripted rollout, or on the real server pods that kwok makes Ready only after
    /// the delay their annotation names.
    fn slow_rollout(&self, objects: &mut [Manifest], name: &str, duration: Duration) {
        match self.test.sim() {
            Some(sim) => {
                sim.handle()
                    .script_rollout(&self.namespace, name, Rollout::Slow(duration))
            }
            None => {
                let deployment = deployment_in(objects, name);
                deployment["spec"]["template"]["metadata"]["annotations"]["pod-ready.stage.kwok.x-k8s.io/delay"] =
                    json!(format!("{}ms", duration.as_millis()));
            }
        }
    }
}

/// A point in the cluster's records: its writes on both backends, every request on kubesim.
#[derive(Debug, Clone, Copy)]
struct Since {
    writes: Mark,
    requests: usize,
}

/// An admission policy of the real server that refuses to delete a ConfigMap.
struct Refusal {
    policy: String,
    config_map: String,
}

/// The Deployment `name` in `objects`.
fn deployment_in<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut Value {
    &mut objects
        .iter_mut()
        .find(|o| o.object["kind"] == "Deployment" && o.object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
        .object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_deploy_creates_everything_and_a_second_deploy_writes_nothing() {
    let cluster = cluster().await;
    let report = cluster.deploy(blog()).await.expect("first deploy");
    assert_eq!(report.count(ObjectAction::Created), 6, "{report:?}");
    assert_eq!(report.summary["Deployment"][&ObjectAction::Created], 2);

    let backend = cluster
        .live("apps/v1", "Deployment", "blog-backend")
        .await
        .expect("backend exists");
    assert_eq!(backend["spec"]["replicas"], 3);
    assert_eq!(
        backend["metadata"]["annotations"]["gitship.dev/owned-by"],
        "production"
    );
    assert_eq!(
        backend["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "gitship"
    );
    assert!(
        cluster
            .live("v1", "Namespace", &cluster.namespace)
            .await
            .is_some(),
        "the environment namespace was created"
    );
    let inventory = cluster.inventory().await;
    assert_eq!(inventory.objects.len(), 6);
    assert!(
        inventory
            .objects
            .iter()
            .any(|e| e.kind == "Secret" && e.name == "blog-db")
    );
    assert_eq!(inventory.history.len(), 1);
    assert_eq!(inventory.history[0].outcome, DeployOutcome::Succeeded);
    assert_eq!(
        inventory.history[0].sha.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    // The lock is released.
    assert!(
        cluster
            .live("coordination.k8s.io/v1", "Lease", "gitship-production")
            .await
            .is_none()
    );

    let mark = cluster.mark();
    let second = cluster.deploy(blog()).await.expect("second deploy");
    assert_eq!(second.count(ObjectAction::Unchanged), 6, "{second:?}");
    let writes = cluster.writes_since(mark);
    let unexpected: Vec<&String> = writes
        .iter()
        .filter(|w| !cluster.is_bookkeeping(w))
        .collect();
    assert!(unexpected.is_empty(), "a no-op deploy wrote {unexpected:?}");
    assert!(
        !writes.is_empty(),
        "the lock and the inventory are bookkeeping writes"
    );
    assert_eq!(cluster.inventory().await.history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_manifest_is_pruned_and_an_empty_set_is_refused() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let without_config: Vec<Manifest> = blog_without_config();
    let report = cluster
        .deploy(without_config.clone())
        .await
        .expect("deploy without the ConfigMap");
    assert_eq!(report.count(ObjectAction::Pruned), 1, "{report:?}");
    assert_eq!(report.count(ObjectAction::Unchanged), 5);
    assert!(
        cluster.is_gone("v1", "ConfigMap", "blog-config").await,
        "pruned"
    );
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .is_some(),
        "nothing else"
    );
    assert_eq!(cluster.inventory().await.objects.len(), 5);

    let mark = cluster.mark();
    let error = cluster.deploy(Vec::new()).await.unwrap_err();
    assert!(
        matches!(error, KubeError::EmptyDesiredSet { count: 5, .. }),
        "{error}"
    );
    assert!(error.hint().unwrap().contains("--allow-empty"));
    let writes = cluster.writes_since(mark);
    assert!(
        writes.iter().all(|w| cluster.is_bookkeeping(w)),
        "refusal deleted something: {writes:?}"
    );
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .is_some()
    );

    let allowed = DeployOptions {
        allow_empty: true,
        ..options()
    };
    let report = cluster
        .deploy_with(Vec::new(), &allowed)
        .await
        .expect("allowed empty deploy");
    assert_eq!(report.count(ObjectAction::Pruned), 5, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_kinds_foreign_objects_and_opt_outs_are_not_pruned() {
    let cluster = cluster().await;
    let mut objects = blog();
    objects.push(desired(
        "pvc.yaml",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    ));
    objects.push(desired("keep.yaml", json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "keep-me", "annotations": {"gitship.dev/prune": "false"}}, "data": {}})));
    let no_wait = DeployOptions {
        wait: false,
        ..options()
    };
    cluster
        .deploy_with(objects, &no_wait)
        .await
        .expect("deploy");
    let report = cluster
        .deploy_with(blog(), &no_wait)
        .await
        .expect("deploy without pvc and keep-me");
    assert_eq!(report.count(ObjectAction::Kept), 2, "{report:?}");
    assert_eq!(report.count(ObjectAction::Pruned), 0);
    assert!(
        cluster
            .live("v1", "PersistentVolumeClaim", "data")
            .await
            .is_some()
    );
    assert!(cluster.live("v1", "ConfigMap", "keep-me").await.is_some());
    let protected = DeployOptions {
        prune_protected: true,
        ..no_wait
    };
    let report = cluster
        .deploy_with(blog(), &protected)
        .await
        .expect("prune protected");
    assert_eq!(report.count(ObjectAction::Pruned), 1, "{report:?}");
    assert!(cluster.is_gone("v1", "PersistentVolumeClaim", "data").await);
}

/// The inventory is not trusted for where to delete: objects it lists in a namespace Git
/// declares nothing in, of a cluster-scoped kind Git does not declare, or under a name gitship
/// reserves, are reported and never pruned, even annotated as the environment's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_stays_within_what_the_environment_declares() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let owned = json!({"gitship.dev/owned-by": "production"});
    let other = cluster.test.ns("other");
    cluster.test.create_namespace(&other).await;
    let role = cluster.cluster_scoped("clusterrole", "victim-role");
    let create = |api_version: &str, kind: &str, namespace: Option<&str>, name: &str| {
        let mut object = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "annotations": owned}});
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object
    };
    let forged = [
        create("v1", "ConfigMap", Some(&other), "victim"),
        create("rbac.authorization.k8s.io/v1", "ClusterRole", None, &role),
        create(
            "v1",
            "ConfigMap",
            Some(&cluster.namespace),
            "gitship-production.agent",
        ),
    ];
    let params = kube::api::PatchParams::apply("someone").force();
    for object in &forged {
        let name = object["metadata"]["name"].as_str().unwrap();
        match object["kind"].as_str() {
            Some("ClusterRole") => {
                let api: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> =
                    kube::Api::all(cluster.client.clone());
                api.patch(name, &params, &kube::api::Patch::Apply(object))
                    .await
                    .expect("ClusterRole");
            }
            _ => {
                let namespace = object["metadata"]["namespace"].as_str().unwrap();
                let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                    kube::Api::namespaced(cluster.client.clone(), namespace);
                api.patch(name, &params, &kube::api::Patch::Apply(object))
                    .await
                    .expect("ConfigMap");
            }
        }
    }
    // Someone writes them into the inventory.
    let mut inventory = cluster.inventory().await;
    for object in &forged {
        inventory
            .objects
            .push(gitship_kube::inventory::InventoryEntry {
                api_version: object["apiVersion"].as_str().unwrap().into(),
                kind: object["kind"].as_str().unwrap().into(),
                namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                name: object["metadata"]["name"].as_str().unwrap().into(),
            });
    }
    gitship_kube::inventory::store(
        &cluster.client,
        &inventory,
        "production",
        &cluster.namespace,
        50,
        &RetryPolicy::default(),
    )
    .await
    .expect("store the forged inventory");

    let report = cluster.deploy(blog()).await.expect("deploy");
    assert_eq!(report.count(ObjectAction::Pruned), 0, "{report:?}");
    assert_eq!(report.count(ObjectAction::Kept), 3, "{report:?}");
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &other);
    assert!(configmaps.get_opt("victim").await.unwrap().is_some());
    let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> =
        kube::Api::all(cluster.client.clone());
    assert!(roles.get_opt(&role).await.unwrap().is_some());
    assert!(
        cluster
            .live("v1", "ConfigMap", "gitship-production.agent")
            .await
            .is_some()
    );
    // Reported once, then no longer the environment's to manage.
    assert_eq!(cluster.inventory().await.objects.len(), blog().len());
}

/// `drift` confirms what its LISTs found changed with a dry run; where the dry run is refused
/// (RBAC granting get and list, not patch), the local comparison is what it reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_without_patch_rights_reports_the_local_comparison_sim_only() {
    if !sim_only("fault injection: 403 on PATCH") || !require_tool("kubectl", "help") {
        return;
    }
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("deploy");
    cluster.kubectl_scale("blog-backend", 10).await;
    let handle = cluster.test.sim().expect("kubesim").handle();
    handle.fail_next_method("PATCH", 1, Fault::Forbidden403);
    let compared =
        gitship_kube::live::compare_live(&cluster.client, &cluster.environment(), &blog())
            .await
            .expect("drift");
    let changed: Vec<_> = compared
        .objects
        .iter()
        .filter(|(_, d)| d.action != gitship_kube::diff::PlannedAction::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let (id, diff) = changed[0];
    assert_eq!(id.name, "blog-backend");
    assert_eq!(
        diff.changes
            .iter()
            .map(|c| c.path.to_string())
            .collect::<Vec<_>>(),
        ["spec.replicas"]
    );
    // The manifest, not a dry run's result (which the server fills with managedFields).
    assert!(
        diff.desired.pointer("/metadata/managedFields").is_none(),
        "a dry run answered: {}",
        diff.desired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_is_healed_by_the_next_deploy() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("deploy");
    cluster.kubectl_scale("blog-backend", 10).await;
    let scaled = cluster
        .live("apps/v1", "Deployment", "blog-backend")
        .await
        .unwrap();
    assert_eq!(scaled["spec"]["replicas"], 10);

    let report = cluster.deploy(blog()).await.expect("redeploy");
    let backend = report
        .objects
        .iter()
        .find(|o| o.id.kind == "Deployment" && o.id.name == "blog-backend")
        .unwrap();
    assert_eq!(backend.action, ObjectAction::Configured, "{report:?}");
    assert_eq!(report.count(ObjectAction::Unchanged), 5);
    let healed = cluster
        .live("apps/v1", "Deployment", "blog-backend")
        .await
        .unwrap();
    assert_eq!(healed["spec"]["replicas"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_fails_within_the_timeout_and_prunes_nothing() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let with_image = |tag: &str| {
        let mut objects: Vec<Manifest> = blog_without_config();
        deployment_in(&mut objects, "blog-backend")["spec"]["template"]["spec"]["containers"][0]
            ["image"] = json!(format!("ghcr.io/acme/blog/backend:{tag}"));
        objects
    };
    let mut broken = with_image("broken");
    cluster.fail_rollout(&mut broken, "blog-backend");
    let started = std::time::Instant::now();
    let error = cluster.deploy(broken).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(matches!(error, KubeError::Unhealthy { .. }), "{message}");
    assert!(
        message.contains(&cluster.id("Deployment", "blog-backend")),
        "{message}"
    );
    assert!(message.contains("ProgressDeadlineExceeded"), "{message}");
    assert!(
        message.contains("condition Progressing=False ProgressDeadlineExceeded: "),
        "{message}"
    );
    // The recent Events of the Deployment, as the deployment controller recorded them.
    assert!(
        message.contains("event Normal ScalingReplicaSet: Scaled up replica set blog-backend-"),
        "{message}"
    );
    if cluster.test.backend() == Backend::Sim {
        // kubesim's controller also records the timeout as an Event; the real one only sets
        // the condition.
        assert!(
            message.contains(
                "event Warning ProgressDeadlineExceeded: Deployment \"blog-backend\" has timed out progressing."
            ),
            "{message}"
        );
    }
    assert!(
        cluster
            .live("v1", "ConfigMap", "blog-config")
            .await
            .is_some(),
        "nothing is pruned after a failure"
    );
    let inventory = cluster.inventory().await;
    assert_eq!(inventory.history[0].outcome, DeployOutcome::Failed);
    assert!(
        inventory.objects.iter().any(|e| e.name == "blog-config"),
        "still remembered for a later prune"
    );
    assert!(
        cluster
            .live("coordination.k8s.io/v1", "Lease", "gitship-production")
            .await
            .is_none(),
        "lock released"
    );

    // A re-run after the failure converges: healthy now, and the removed ConfigMap is pruned.
    cluster.heal_rollout("blog-backend");
    let report = cluster
        .deploy(with_image("fixed"))
        .await
        .expect("the re-run converges");
    assert_eq!(report.count(ObjectAction::Pruned), 1, "{report:?}");
    assert!(cluster.is_gone("v1", "ConfigMap", "blog-config").await);
    assert_eq!(
        cluster.inventory().await.history[0].outcome,
        DeployOutcome::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deploys_of_one_environment_never_interleave() {
    let cluster = cluster().await;
    // Slow rollouts keep each deploy inside its lock for a while.
    let mut first: Vec<Manifest> = (0..5)
        .map(|i| desired("a.yaml", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("first-{i}")}, "data": {"n": "1"}})))
        .chain([deployment("first-app", 1, "first:1")])
        .collect();
    let mut second: Vec<Manifest> = (0..5)
        .map(|i| desired("b.yaml", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("second-{i}")}, "data": {"n": "2"}})))
        .chain([deployment("second-app", 1, "second:1")])
        .collect();
    cluster.slow_rollout(&mut first, "first-app", Duration::from_millis(1800));
    cluster.slow_rollout(&mut second, "second-app", Duration::from_millis(1800));
    // Each rollout outlasts the Lease duration (1s): only renewal keeps the lock held.
    let lock = LockOptions {
        timeout: Duration::from_secs(20),
        lease_duration: Duration::from_secs(1),
    };
    let no_prune = DeployOptions {
        prune: false,
        lock,
        ..options()
    };
    let mark = cluster.mark();
    let (a, b) = tokio::join!(
        cluster.deploy_with(first, &no_prune),
        cluster.deploy_with(second, &no_prune)
    );
    a.expect("first deploy");
    b.expect("second deploy");
    let writes: Vec<String> = cluster
        .writes_since(mark)
        .into_iter()
        .filter(|w| !cluster.is_bookkeeping(w))
        .collect();
    let owner = |w: &String| {
        if w.contains("first-") {
            'a'
        } else if w.contains("second-") {
            'b'
        } else {
            '?'
        }
    };
    let sequence: String = writes.iter().map(owner).filter(|c| *c != '?').collect();
    let switches = sequence
        .as_bytes()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    assert_eq!(
        switches, 1,
        "writes of the two deploys interleaved: {sequence} ({writes:?})"
    );
    assert_eq!(cluster.inventory().await.history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_sim_only() {
    if !sim_only("fault injection: 500s, 429s and dropped connections") {
        return;
    }
    let cluster = cluster().await;
    let handle = cluster.test.sim().expect("kubesim").handle();
    handle.fault_rate(
        20,
        vec![
            Fault::Status500,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        ],
    );
    let report = cluster
        .deploy(blog())
        .await
        .expect("deploy despite 500s and 429s");
    assert_eq!(report.count(ObjectAction::Created), 6);
    handle.fault_rate(20, vec![Fault::Drop, Fault::Status500]);
    let report = cluster
        .deploy(blog())
        .await
        .expect("deploy despite dropped connections");
    assert_eq!(report.count(ObjectAction::Unchanged), 6);
    handle.clear_faults();
    let faulted = handle.requests().len();
    assert!(faulted > 40, "the deploys made {faulted} requests");
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-frontend")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rejection_fails_at_once_naming_the_object() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("deploy");
    // `kubectl scale` takes `spec.replicas`; without force, gitship's apply now conflicts (409):
    // a permanent error, reported with the object, its file and the server's message, not retried.
    cluster.kubectl_scale("blog-backend", 5).await;
    let polite = DeployOptions {
        force_conflicts: false,
        ..options()
    };
    let mark = cluster.mark();
    let error = cluster.deploy_with(blog(), &polite).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "{} (infrastructure/kubernetes/blog-backend.yaml:1:1)",
            cluster.id("Deployment", "blog-backend")
        )),
        "{message}"
    );
    assert!(
        message.contains("409") && message.contains("spec.replicas"),
        "{message}"
    );
    let to_backend = |w: &String| w.ends_with("/deployments/blog-backend");
    let writes: Vec<String> = cluster
        .writes_since(mark)
        .into_iter()
        .filter(to_backend)
        .collect();
    assert!(writes.is_empty(), "only the dry run was sent: {writes:?}");
    let dry_runs: Vec<String> = cluster
        .dry_runs_since(mark)
        .into_iter()
        .filter(to_backend)
        .collect();
    assert_eq!(dry_runs.len(), 1, "a conflict is not retried: {dry_runs:?}");
    assert_eq!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .unwrap()["spec"]["replicas"],
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_422_fails_naming_the_object_and_message_without_retry_or_prune() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    // The second deploy drops `blog-config` (a prune candidate) and adds a Deployment the
    // server rejects: `spec.selector` is required (422 Invalid, permanent).
    let mut objects: Vec<Manifest> = blog_without_config();
    let mut invalid = deployment("blog-worker", 1, "ghcr.io/acme/blog/worker:abc");
    invalid.object["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("selector");
    objects.push(invalid);
    let mark = cluster.mark();
    let error = cluster.deploy(objects).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, KubeError::Api { .. }), "{message}");
    assert!(
        message.contains(&format!(
            "{} (infrastructure/kubernetes/blog-worker.yaml:1:1)",
            cluster.id("Deployment", "blog-worker")
        )),
        "{message}"
    );
    // kubesim names the first invalid field; a real server lists them all in brackets.
    assert!(
        message.contains("Deployment.apps \"blog-worker\" is invalid: ")
            && message.contains("spec.selector: Required value")
            && message.contains("422"),
        "{message}"
    );
    // The whole set is dry-run before the first write: the rejected object is never written,
    // and no other object is (a commit the server rejects changes nothing).
    let to_worker = |w: &String| w.ends_with("/deployments/blog-worker");
    let dry_runs: Vec<String> = cluster
        .dry_runs_since(mark)
        .into_iter()
        .filter(to_worker)
        .collect();
    assert_eq!(dry_runs.len(), 1, "a 422 is not retried: {dry_runs:?}");
    let objects_written: Vec<String> = cluster
        .writes_since(mark)
        .into_iter()
        .filter(|w| !cluster.is_bookkeeping(w))
        .collect();
    assert!(objects_written.is_empty(), "{objects_written:?}");
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-worker")
            .await
            .is_none(),
        "nothing was created"
    );
    assert!(
        cluster
            .live("v1", "ConfigMap", "blog-config")
            .await
            .is_some(),
        "nothing is pruned after a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_selector_fails_naming_the_field_unless_replace_is_annotated() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let before = cluster
        .live("apps/v1", "Deployment", "blog-frontend")
        .await
        .expect("deployed");
    let with_new_selector = |replace: bool| -> Vec<Manifest> {
        let mut objects = blog();
        for object in &mut objects {
            if object.object["metadata"]["name"] == "blog-frontend" {
                object.object["spec"]["selector"]["matchLabels"]["tier"] = json!("web");
                object.object["spec"]["template"]["metadata"]["labels"]["tier"] = json!("web");
                if replace {
                    object.object["metadata"]["annotations"] =
                        json!({"gitship.dev/replace": "true"});
                }
            }
        }
        objects
    };
    let error = cluster.deploy(with_new_selector(false)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, KubeError::Immutable { .. }), "{message}");
    assert!(
        message.contains(&cluster.id("Deployment", "blog-frontend"))
            && message.contains("`spec.selector`"),
        "{message}"
    );
    let hint = error.hint().unwrap_or_default();
    assert!(hint.contains("gitship.dev/replace: \"true\""), "{hint}");
    let unchanged = cluster
        .live("apps/v1", "Deployment", "blog-frontend")
        .await
        .expect("still there");
    assert_eq!(unchanged["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(unchanged["spec"]["selector"], before["spec"]["selector"]);

    let report = cluster
        .deploy(with_new_selector(true))
        .await
        .expect("replace opts into delete-and-recreate");
    assert_eq!(report.count(ObjectAction::Replaced), 1, "{report:?}");
    let after = cluster
        .live("apps/v1", "Deployment", "blog-frontend")
        .await
        .expect("recreated");
    assert_ne!(
        after["metadata"]["uid"], before["metadata"]["uid"],
        "a new object"
    );
    assert_eq!(after["spec"]["selector"]["matchLabels"]["tier"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_is_reported_with_file_and_name_before_any_write() {
    let cluster = cluster().await;
    let group = cluster.example_group();
    let mut objects = blog();
    objects.push(desired(
        "widget.yaml",
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w"}}),
    ));
    let mark = cluster.mark();
    let error = cluster.deploy(objects).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("infrastructure/kubernetes/widget.yaml:1:1"),
        "{message}"
    );
    assert!(
        message.contains("`Widget`") && message.contains("`w`"),
        "{message}"
    );
    assert_eq!(cluster.writes_since(mark), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_waits_for_its_crd_in_the_same_deploy() {
    let cluster = cluster().await;
    let group = cluster.example_group();
    let objects = vec![
        desired(
            "widget.yaml",
            json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}),
        ),
        desired(
            "crd.yaml",
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("widgets.{group}")},
                "spec": {"group": group, "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
            }),
        ),
    ];
    let report = cluster.deploy(objects).await.expect("deploy CRD and CR");
    assert_eq!(report.count(ObjectAction::Created), 2, "{report:?}");
    assert_eq!(
        report.objects[0].id.kind, "CustomResourceDefinition",
        "the CRD goes first"
    );
    let widget = cluster
        .live(&format!("{group}/v1"), "Widget", "w")
        .await
        .expect("widget exists");
    assert_eq!(widget["spec"]["size"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_times_out_naming_the_holder_and_an_expired_one_is_taken_over() {
    let cluster = cluster().await;
    cluster
        .deploy(blog())
        .await
        .expect("first deploy creates the namespace");
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let held: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": "gitship-production"},
        "spec": {"holderIdentity": "alice@laptop 1234", "leaseDurationSeconds": 60, "renewTime": now}
    }))
    .unwrap();
    leases
        .create(&Default::default(), &held)
        .await
        .expect("lease created");
    let impatient = DeployOptions {
        lock: LockOptions {
            timeout: Duration::from_millis(600),
            lease_duration: Duration::from_secs(3),
        },
        ..options()
    };
    let error = cluster.deploy_with(blog(), &impatient).await.unwrap_err();
    assert!(matches!(error, KubeError::LockTimeout { .. }), "{error}");
    assert!(error.to_string().contains("alice@laptop 1234"), "{error}");

    let old = (chrono::Utc::now() - chrono::Duration::seconds(600))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let mut expired = leases.get("gitship-production").await.unwrap();
    expired.spec.as_mut().unwrap().renew_time = serde_json::from_value(json!(old)).unwrap();
    leases
        .replace("gitship-production", &Default::default(), &expired)
        .await
        .unwrap();
    let report = cluster
        .deploy_with(blog(), &impatient)
        .await
        .expect("expired lock is taken over");
    assert_eq!(report.count(ObjectAction::Unchanged), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diff_primitives_see_no_false_drift_and_name_the_changed_field() {
    if !require_tool("kubectl", "help") {
        return;
    }
    use gitship_kube::diff::{PlannedAction, diff_environment, managers_of};
    let cluster = cluster().await;
    let retry = RetryPolicy::default();
    let before = diff_environment(
        &cluster.client,
        &cluster.environment(),
        &blog(),
        true,
        8,
        &retry,
    )
    .await
    .expect("diff before deploy");
    assert!(
        before
            .objects
            .iter()
            .all(|(_, d)| d.action == PlannedAction::Create),
        "{before:?}"
    );
    cluster.deploy(blog()).await.expect("deploy");

    let mark = cluster.mark();
    let fresh = diff_environment(
        &cluster.client,
        &cluster.environment(),
        &blog(),
        true,
        8,
        &retry,
    )
    .await
    .expect("diff");
    assert!(
        !fresh.has_changes(),
        "a freshly deployed environment shows changes: {fresh:?}"
    );
    assert_eq!(
        cluster.writes_since(mark),
        Vec::<String>::new(),
        "diff only reads and dry-runs"
    );

    cluster.kubectl_scale("blog-backend", 10).await;
    let without_config: Vec<Manifest> = blog_without_config();
    let drifted = diff_environment(
        &cluster.client,
        &cluster.environment(),
        &without_config,
        true,
        8,
        &retry,
    )
    .await
    .expect("diff");
    let changed: Vec<_> = drifted
        .objects
        .iter()
        .filter(|(_, d)| d.action != PlannedAction::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let (id, diff) = changed[0];
    assert_eq!(id.to_string(), cluster.id("Deployment", "blog-backend"));
    assert_eq!(diff.action, PlannedAction::Update);
    assert_eq!(diff.changes.len(), 1, "{:?}", diff.changes);
    assert_eq!(diff.changes[0].path.to_string(), "spec.replicas");
    assert_eq!(diff.changes[0].live, Some(json!(10)));
    assert_eq!(diff.changes[0].desired, Some(json!(3)));
    let managers = managers_of(diff.live.as_ref().unwrap(), &diff.changes[0].path);
    assert!(
        managers.iter().any(|m| m.starts_with("kubectl")),
        "{managers:?}"
    );
    assert_eq!(drifted.prune.len(), 1);
    assert_eq!(drifted.prune[0].name, "blog-config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_applied_by_stage_then_wave_then_kind() {
    let cluster = cluster().await;
    let late = desired(
        "late.yaml",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "late", "annotations": {"gitship.dev/wave": "1"}}, "data": {}}),
    );
    let early = desired(
        "early.yaml",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "early", "annotations": {"gitship.dev/wave": "-1"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "early"}},
            "template": {"metadata": {"labels": {"app": "early"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}}}),
    );
    let reader = cluster.cluster_scoped("clusterrole", "blog-reader");
    let role = desired(
        "role.yaml",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": reader}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    );
    let mut objects = vec![late, early];
    objects.extend(blog());
    objects.push(role);
    let mark = cluster.mark();
    cluster.deploy(objects).await.expect("deploy");
    let applied: Vec<String> = cluster
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.starts_with("PATCH") && !cluster.is_bookkeeping(w))
        .map(|w| {
            w.rsplit('/')
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    let position = |name: &str| {
        applied
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{name} not applied: {applied:?}"))
    };
    assert!(
        position(&format!("clusterroles/{reader}")) < position("deployments/early"),
        "bootstrap first: {applied:?}"
    );
    assert!(
        position("deployments/early") < position("serviceaccounts/blog"),
        "wave -1 before wave 0: {applied:?}"
    );
    assert!(
        position("secrets/blog-db") < position("configmaps/blog-config"),
        "{applied:?}"
    );
    assert!(
        position("configmaps/blog-config") < position("services/blog-backend"),
        "{applied:?}"
    );
    assert!(
        position("services/blog-backend") < position("deployments/blog-backend"),
        "{applied:?}"
    );
    assert!(
        position("deployments/blog-frontend") < position("configmaps/late"),
        "wave 1 last: {applied:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// `gitship deploy` through the built CLI, on a copy of the blog example.

/// A committed copy of `examples/blog-infra` in a temporary Git repository.
struct ExampleRepo {
    dir: tempfile::TempDir,
    git: git2::Repository,
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if [".gitship", ".terraform", "terraform.tfstate.d"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

impl ExampleRepo {
    fn new() -> ExampleRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_tree(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog-infra"),
            dir.path(),
        );
        let git = git2::Repository::init(dir.path()).expect("git init");
        let repo = ExampleRepo { dir, git };
        repo.commit("example");
        repo
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stage everything (respecting `.gitignore`) and commit.
    fn commit(&self, message: &str) {
        crate::support::commit_all(&self.git, message);
    }

    /// Drop the apps (their images are then fixed references): a non-sandbox deploy has nothing
    /// to build, so no registry is needed.
    fn without_apps(self) -> ExampleRepo {
        std::fs::remove_dir_all(self.path().join("apps")).expect("remove apps");
        for (file, app) in [("backend.yaml", "backend"), ("frontend.yaml", "frontend")] {
            let path = self.path().join("infrastructure/kubernetes").join(file);
            let text = std::fs::read_to_string(&path).expect("read manifest");
            let fixed = text.replace(
                &format!("${{images.{app}}}"),
                &format!("registry.test/blog/{app}:v1"),
            );
            std::fs::write(&path, fixed).expect("write manifest");
        }
        self.commit("no apps");
        self
    }

    /// Rewrite the file at `relative` with `change`, which must change it.
    fn edit(&self, relative: &str, change: impl FnOnce(&str) -> String) {
        let path = self.path().join(relative);
        let text = std::fs::read_to_string(&path).expect("read");
        let changed = change(&text);
        assert_ne!(changed, text, "{relative} is unchanged");
        std::fs::write(&path, changed).expect("write");
    }

    fn remove_manifest(&self, name: &str) {
        std::fs::remove_file(self.path().join("infrastructure/kubernetes").join(name))
            .expect("remove manifest");
    }

    /// Run the built CLI in this repository (without blocking the runtime kubesim runs on).
    async fn gitship(&self, args: &[&str]) -> std::process::Output {
        let mut command = crate::support::gitship();
        command.arg("-C").arg(self.path()).args(args);
        tokio::process::Command::from(command)
            .output()
            .await
            .expect("gitship runs")
    }
}

fn example_outputs() -> String {
    format!(
        "{}/examples/blog-infra/terraform-outputs.example.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_report(output: &std::process::Output) -> gitship_kube::DeployReport {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not a deploy report ({e}): {}", text(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sandbox_deploy_converges_prunes_and_refuses_an_empty_set() {
    let repo = ExampleRepo::new();
    let outputs = example_outputs();
    let base = [
        "deploy",
        "production",
        "--sandbox",
        "--terraform-outputs",
        outputs.as_str(),
    ];
    let first = repo.gitship(&base).await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "stderr: {}",
        text(&first.stderr)
    );
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("deployed `production` (sandbox: simulated cluster)"),
        "{stdout}"
    );
    assert!(
        text(&first.stderr).contains("sandbox"),
        "every output says it is a simulation"
    );
    assert!(
        !text(&first.stderr).contains("example-only-3f9c2a7d41b8e6c0"),
        "a secret leaked"
    );
    assert!(
        !stdout.contains("example-only-3f9c2a7d41b8e6c0"),
        "a secret leaked"
    );
    assert!(
        repo.path()
            .join(".gitship/sandbox/production.json")
            .is_file()
    );

    let second = json_report(&repo.gitship(&[&base[..], &["-o", "json"]].concat()).await);
    let total = second.objects.len();
    assert!(total >= 8, "{second:?}");
    assert_eq!(
        second.count(ObjectAction::Unchanged),
        total,
        "a second deploy changes nothing: {second:?}"
    );
    let again = repo.gitship(&base).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains(&format!(
            "deployed `production` (sandbox: simulated cluster): no changes ({total} unchanged)"
        )),
        "a no-op says so: {}",
        text(&again.stdout)
    );

    repo.remove_manifest("ingress.yaml");
    repo.commit("drop the ingress");
    let third = json_report(&repo.gitship(&[&base[..], &["-o", "json"]].concat()).await);
    let pruned: Vec<String> = third
        .objects
        .iter()
        .filter(|o| o.action == ObjectAction::Pruned)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(pruned, vec!["Ingress blog/blog".to_string()], "{third:?}");
    assert_eq!(third.count(ObjectAction::Unchanged), total - 1);

    for manifest in [
        "backend.yaml",
        "frontend.yaml",
        "namespace.yaml",
        "postgres.yaml",
    ] {
        repo.remove_manifest(manifest);
    }
    repo.commit("empty");
    // An environment that renders nothing is refused before anything runs (issue 31), with
    // the way to remove everything on purpose.
    let refused = repo.gitship(&[&base[..], &["-q"]].concat()).await;
    assert_eq!(
        refused.status.code(),
        Some(1),
        "stdout: {}",
        text(&refused.stdout)
    );
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("renders no Kubernetes object") && stderr.contains("--allow-empty"),
        "{stderr}"
    );
    // `--allow-empty` removes what the environment had, on purpose.
    let emptied = repo
        .gitship(&[&base[..], &["--allow-empty", "-o", "json"]].concat())
        .await;
    let emptied = json_report(&emptied);
    assert!(emptied.count(ObjectAction::Pruned) > 0, "{emptied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sandbox_deploy_runs_terraform_for_real() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = ExampleRepo::new();
    let output = repo
        .gitship(&["deploy", "development", "--sandbox", "-o", "json"])
        .await;
    let report = json_report(&output);
    assert!(
        report
            .objects
            .iter()
            .any(|o| o.id.kind == "Secret" && o.action == ObjectAction::Created),
        "{report:?}"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("terraform:"), "{stderr}");
    let again = json_report(
        &repo
            .gitship(&["deploy", "development", "--sandbox", "-o", "json"])
            .await,
    );
    assert_eq!(
        again.count(ObjectAction::Unchanged),
        again.objects.len(),
        "{again:?}"
    );
}

/// A kubeconfig of `cluster` whose context has the name the environment config asks for, and
/// whose current context is another.
fn kubeconfig_for(
    cluster: &TestCluster,
    context: &str,
    directory: &std::path::Path,
) -> std::path::PathBuf {
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    for named in &mut kubeconfig.contexts {
        named.name = context.to_string();
    }
    kubeconfig.current_context = Some("other".to_string());
    let path = directory.join("kubeconfig");
    // JSON is YAML.
    let text = serde_json::to_string_pretty(&kubeconfig).expect("kubeconfig as JSON");
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// The preflight asks again when the server answers 500 for a moment, as every later step does:
/// a deploy is not failed by one busy answer before it changed anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_asks_again_after_a_server_error_sim_only() {
    if !sim_only("fault injection: 500s") {
        return;
    }
    let cluster = cluster().await;
    let repo = ExampleRepo::new().without_apps();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_for(&cluster.test, "prod", home.path());
    let kubeconfig_arg = kubeconfig.display().to_string();
    let outputs = example_outputs();
    let handle = cluster.test.sim().expect("kubesim").handle();
    handle.fail_next_path(
        "GET",
        &format!("/api/v1/namespaces/{}", cluster.namespace),
        3,
        Fault::Status500,
    );
    let deploy = repo
        .gitship(&[
            "deploy",
            "production",
            "--kubeconfig",
            kubeconfig_arg.as_str(),
            "--terraform-outputs",
            outputs.as_str(),
            "--timeout",
            "20s",
        ])
        .await;
    assert_eq!(
        deploy.status.code(),
        Some(0),
        "stderr: {}",
        text(&deploy.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_heals_kubectl_scale_and_reports_a_failed_rollout() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = cluster().await;
    let repo = ExampleRepo::new().without_apps();
    if cluster.test.backend() == Backend::Real {
        repo.edit("config/production.yaml", |text| {
            cluster.test.localize(text, &[NAMESPACE])
        });
        repo.commit("the test's namespace");
    }
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_for(&cluster.test, "prod", home.path());
    let kubeconfig_arg = kubeconfig.display().to_string();
    let outputs = example_outputs();
    let deploy = [
        "deploy",
        "production",
        "--kubeconfig",
        kubeconfig_arg.as_str(),
        "--terraform-outputs",
        outputs.as_str(),
        "--timeout",
        "20s",
    ];
    let first = repo.gitship(&deploy).await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "stderr: {}",
        text(&first.stderr)
    );
    assert_eq!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .unwrap()["spec"]["replicas"],
        3
    );

    let scale = tokio::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig_arg.as_str(),
            "--context",
            "prod",
            "-n",
            &cluster.namespace,
        ])
        .args(["scale", "deployment", "blog-backend", "--replicas=10"])
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        scale.status.success(),
        "kubectl scale: {}",
        text(&scale.stderr)
    );
    assert_eq!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .unwrap()["spec"]["replicas"],
        10
    );

    let healed = json_report(&repo.gitship(&[&deploy[..], &["-o", "json"]].concat()).await);
    let configured: Vec<String> = healed
        .objects
        .iter()
        .filter(|o| o.action == ObjectAction::Configured)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(
        configured,
        vec![cluster.id("Deployment", "blog-backend")],
        "{healed:?}"
    );
    assert_eq!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .unwrap()["spec"]["replicas"],
        3
    );

    // A rollout that cannot finish: exit 1 within the timeout, naming the Deployment and the
    // condition; the ingress removed from Git is not pruned.
    match cluster.test.sim() {
        Some(sim) => sim
            .handle()
            .script_rollout(&cluster.namespace, "blog-backend", Rollout::Fail),
        // Pods that never become Ready (a label kwok knows) and a short progress deadline.
        None => repo.edit("infrastructure/kubernetes/backend.yaml", |text| {
            text.replacen(
                "spec:\n  replicas:",
                "spec:\n  progressDeadlineSeconds: 3\n  replicas:",
                1,
            )
            .replacen(
                "        app.kubernetes.io/part-of: blog\n    spec:",
                "        app.kubernetes.io/part-of: blog\n        sim.gitship.dev/unready: \"true\"\n    spec:",
                1,
            )
        }),
    }
    repo.edit("config/production.yaml", |text| {
        text.replace("replicas: 3", "replicas: 4")
    });
    repo.remove_manifest("ingress.yaml");
    repo.commit("four replicas, no ingress");
    let started = std::time::Instant::now();
    let failed = repo.gitship(&deploy).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        failed.status.code(),
        Some(1),
        "stdout: {}",
        text(&failed.stdout)
    );
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains(&cluster.id("Deployment", "blog-backend"))
            && stderr.contains("ProgressDeadlineExceeded"),
        "{stderr}"
    );
    assert!(
        cluster
            .live("networking.k8s.io/v1", "Ingress", "blog")
            .await
            .is_some(),
        "nothing is pruned after a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_secret_value_is_applied_and_never_shown() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("deploy");
    let mut objects = blog();
    for object in &mut objects {
        if object.object["kind"] == "Secret" {
            object.object["stringData"]["password"] = json!("rotated-value-42");
        }
    }
    let report = cluster.deploy(objects).await.expect("redeploy");
    let configured: Vec<String> = report
        .objects
        .iter()
        .filter(|o| o.action == ObjectAction::Configured)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(
        configured,
        vec![cluster.id("Secret", "blog-db")],
        "{report:?}"
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("rotated-value-42") && !json.contains("s3cret-value"),
        "{json}"
    );
}

#[test]
fn sandbox_state_inside_the_examples_is_git_ignored() {
    if !require_tool("git", "--version") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in [
        "examples/blog-infra/.gitship/sandbox/development.json",
        "examples/blog-infra/infrastructure/terraform/terraform.tfstate.d/development/terraform.tfstate",
    ] {
        let status = std::process::Command::new("git")
            .current_dir(root)
            .args(["check-ignore", "--quiet", "--no-index", path])
            .status()
            .expect("git runs");
        assert!(status.success(), "`{path}` is not git-ignored");
    }
}

/// A deploy whose Lease another holder takes during the health wait stops before pruning, exits
/// with an error naming the lost lock, and still records what it applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_stolen_mid_deploy_stops_it_before_pruning() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let mut next: Vec<Manifest> = blog_without_config();
    deployment_in(&mut next, "blog-backend")["spec"]["replicas"] = json!(4);
    cluster.slow_rollout(&mut next, "blog-backend", Duration::from_secs(3));
    let thief = {
        let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(cluster.client.clone(), &cluster.namespace);
        tokio::spawn(async move {
            // Wait for the deploy to hold the Lease, then take it.
            for _ in 0..100 {
                if let Ok(Some(mut lease)) = api.get_opt("gitship-production").await {
                    let spec = lease.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("thief".into());
                    if api
                        .replace("gitship-production", &Default::default(), &lease)
                        .await
                        .is_ok()
                    {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })
    };
    let error = cluster
        .deploy(next)
        .await
        .expect_err("a deploy that lost its lock fails");
    assert!(thief.await.expect("thief"), "the Lease was taken over");
    assert!(matches!(error, KubeError::LockLost { .. }), "{error}");
    assert!(
        cluster
            .live("v1", "ConfigMap", "blog-config")
            .await
            .is_some(),
        "nothing is pruned after the lock is lost"
    );
    let inventory = cluster.inventory().await;
    assert_eq!(
        inventory.history[0].outcome,
        DeployOutcome::Failed,
        "{inventory:?}"
    );
    assert!(
        inventory
            .objects
            .iter()
            .any(|entry| entry.name == "blog-config"),
        "the prune candidate stays in the inventory"
    );
}

/// Two environments that share a namespace never take each other's objects silently: the second
/// is refused with the owner's name, unless its manifest adopts the object explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_owned_by_another_environment_is_refused_unless_adopted() {
    let cluster = cluster().await;
    let shared = || {
        desired(
            "shared.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"from": "dev"}}),
        )
    };
    let dev = cluster.environment_named("dev");
    let stg = cluster.environment_named("stg");
    deploy_objects(
        &cluster.client,
        &dev,
        vec![shared()],
        &options(),
        &printer(),
    )
    .await
    .expect("dev deploys");
    let error = deploy_objects(
        &cluster.client,
        &stg,
        vec![shared()],
        &options(),
        &printer(),
    )
    .await
    .expect_err("stg may not take dev's object");
    assert!(
        matches!(&error, KubeError::OwnedElsewhere { owner, .. } if owner == "dev"),
        "{error}"
    );
    assert!(
        error.to_string().contains("owned by environment `dev`"),
        "{error}"
    );
    assert!(
        error
            .hint()
            .unwrap_or_default()
            .contains("gitship.dev/adopt")
    );
    let live = cluster
        .live("v1", "ConfigMap", "shared")
        .await
        .expect("live");
    assert_eq!(
        live["metadata"]["annotations"]["gitship.dev/owned-by"],
        "dev"
    );

    let mut adopted = shared();
    adopted.object["metadata"]["annotations"] = json!({"gitship.dev/adopt": "true"});
    deploy_objects(&cluster.client, &stg, vec![adopted], &options(), &printer())
        .await
        .expect("an explicit adoption");
    let live = cluster
        .live("v1", "ConfigMap", "shared")
        .await
        .expect("live");
    assert_eq!(
        live["metadata"]["annotations"]["gitship.dev/owned-by"],
        "stg"
    );
}

/// A prune that fails still writes the inventory: the objects created in that run and the
/// candidate that was not pruned are both in it, and the record says the deploy failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_prune_still_records_a_complete_inventory() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let mut next: Vec<Manifest> = blog_without_config();
    next.push(desired(
        "fresh.yaml",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"a": "b"}}),
    ));
    let keep = cluster.refuse_deleting_config_map("blog-config").await;
    let error = cluster
        .deploy(next)
        .await
        .expect_err("the prune's DELETE fails");
    cluster.allow_deleting(keep).await;
    assert!(error.to_string().contains("blog-config"), "{error}");
    let inventory = cluster.inventory().await;
    let names: Vec<&str> = inventory.objects.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"fresh"), "created in this run: {names:?}");
    assert!(names.contains(&"blog-config"), "not pruned: {names:?}");
    assert_eq!(inventory.history[0].outcome, DeployOutcome::Failed);
    assert!(
        cluster
            .live("v1", "ConfigMap", "blog-config")
            .await
            .is_some(),
        "the failed prune deleted nothing"
    );
    // The next deploy converges: it prunes what is left.
    let next: Vec<Manifest> = blog()
        .into_iter()
        .filter(|d| d.object["metadata"]["name"] != "blog-config")
        .chain(std::iter::once(desired(
            "fresh.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"a": "b"}}),
        )))
        .collect();
    let report = cluster.deploy(next).await.expect("the retry converges");
    assert_eq!(report.count(ObjectAction::Pruned), 1, "{report:?}");
}

/// `count` ConfigMaps `cm-<i>` (`width` digits) with `data.n: "<i>"`.
fn numbered_maps(count: usize, width: usize) -> Vec<Manifest> {
    (0..count)
        .map(|i| {
            let name = format!("cm-{i:0width$}");
            desired(
                &format!("{name}.yaml"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": i.to_string()}}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reads_live_objects_in_pages_and_keeps_only_what_it_needs() {
    use gitship_kube::diff::{PlannedAction, managers_of};
    let cluster = cluster().await;
    let maps = numbered_maps(250, 3);
    cluster.deploy(maps.clone()).await.expect("deploy");
    // One object changed by another manager, far beyond the first page; and one that Git does
    // not have, which drift must not report.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let patch = json!({"data": {"n": "changed"}});
    api.patch(
        "cm-230",
        &kube::api::PatchParams::apply("someone-else").force(),
        &kube::api::Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-230"}, "data": patch["data"]})),
    )
    .await
    .expect("patch by another manager");
    let mark = cluster.mark();

    let drift = gitship_kube::live::compare_live(&cluster.client, &cluster.environment(), &maps)
        .await
        .expect("compare");

    let list_path = format!("/namespaces/{}/configmaps", cluster.namespace);
    if let Some(lists) = cluster.requests_since(mark, "GET", |path| path.ends_with(&list_path)) {
        let lists: Vec<String> = lists.into_iter().map(|r| r.query).collect();
        assert_eq!(lists.len(), 3, "250 objects in pages of 100: {lists:?}");
        assert!(lists.iter().all(|q| q.contains("limit=100")), "{lists:?}");
    }
    assert_eq!(drift.objects.len(), 250);
    let changed: Vec<_> = drift
        .objects
        .iter()
        .filter(|(_, d)| d.action != PlannedAction::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let (id, diff) = changed[0];
    assert_eq!(id.to_string(), cluster.id("ConfigMap", "cm-230"));
    assert_eq!(diff.changes[0].path.to_string(), "data.n");
    let live = diff.live.as_ref().expect("live object");
    assert_eq!(
        managers_of(live, &diff.changes[0].path),
        vec!["someone-else".to_string()]
    );
    for (_, unchanged) in drift
        .objects
        .iter()
        .filter(|(_, d)| d.action == PlannedAction::Unchanged)
    {
        let live = unchanged.live.as_ref().expect("live object");
        assert!(live["metadata"].get("managedFields").is_none(), "{live}");
        assert!(live["metadata"]["annotations"].is_object(), "{live}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_reads_many_objects_of_a_kind_with_a_list_and_falls_back_to_gets_when_refused() {
    let cluster = cluster().await;
    let maps: Vec<Manifest> = (0..20)
        .map(|i| {
            desired(
                &format!("cm-{i:02}.yaml"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:02}")}, "data": {"n": i.to_string()}}),
            )
        })
        .collect();
    // Reads and dry runs are in kubesim's record only (`None` on the real server); writes are
    // counted on both.
    let object_gets = |mark: Since| {
        cluster
            .requests_since(mark, "GET", |path| path.contains("/configmaps/cm-"))
            .map(|requests| requests.len())
    };
    let list_path = format!("/api/v1/namespaces/{}/configmaps", cluster.namespace);
    let lists = |mark: Since| {
        cluster
            .requests_since(mark, "GET", |path| path == list_path)
            .map(|requests| requests.len())
    };
    let dry_runs = |mark: Since| {
        cluster
            .dry_runs_since(mark)
            .into_iter()
            .filter(|w| w.starts_with("PATCH") && w.contains("/configmaps/cm-"))
            .count()
    };
    let applies = |mark: Since| {
        cluster
            .writes_since(mark)
            .into_iter()
            .filter(|w| w.starts_with("PATCH") && w.contains("/configmaps/cm-"))
            .count()
    };
    let mut maps = maps;
    maps[5].object["data"]["old"] = json!("soon removed");

    // A fresh deploy: one LIST finds none of the 20, and each is created without a GET.
    let mark = cluster.mark();
    let report = cluster.deploy(maps.clone()).await.expect("deploy");
    assert_eq!(report.count(ObjectAction::Created), 20);
    assert_eq!(applies(mark), 20);
    assert!(
        object_gets(mark).is_none_or(|gets| gets == 0),
        "no GET per object"
    );
    assert!(lists(mark).is_none_or(|lists| lists >= 1));

    // Nothing changed: the live objects hold what gitship applied last (the inventory's
    // digests), so there is not even a dry run.
    let mark = cluster.mark();
    let report = cluster.deploy(maps.clone()).await.expect("deploy");
    assert_eq!(report.count(ObjectAction::Unchanged), 20, "{report:?}");
    assert_eq!(applies(mark), 0);
    assert_eq!(
        dry_runs(mark),
        0,
        "no dry run of an object applied as it is"
    );
    assert!(!cluster.inventory().await.applied.is_empty());

    // A changed object is found changed, with the LIST's live state; so is a field removed
    // from a manifest, which the live object still has (only the digest tells).
    let mut changed = maps.clone();
    changed[7].object["data"]["n"] = json!("seven");
    if let Some(data) = changed[5].object["data"].as_object_mut() {
        data.remove("old");
    }
    let mark = cluster.mark();
    let report = cluster.deploy(changed.clone()).await.expect("deploy");
    assert_eq!(report.count(ObjectAction::Configured), 2, "{report:?}");
    assert_eq!(report.count(ObjectAction::Unchanged), 18);
    assert!(object_gets(mark).is_none_or(|gets| gets == 0));
    assert_eq!(
        (dry_runs(mark), applies(mark)),
        (2, 2),
        "a dry run and an apply of each changed object"
    );
    let live = cluster
        .live("v1", "ConfigMap", "cm-05")
        .await
        .expect("cm-05");
    assert!(live["data"].get("old").is_none(), "{live}");

    // Someone else changes a field gitship applied: not skipped, put back.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.namespace);
    api.patch(
        "cm-11",
        &kube::api::PatchParams::apply("someone-else").force(),
        &kube::api::Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-11"}, "data": {"n": "edited"}})),
    )
    .await
    .expect("patch by another manager");
    let report = cluster.deploy(changed.clone()).await.expect("deploy");
    assert_eq!(report.count(ObjectAction::Configured), 1, "{report:?}");
    let live = cluster
        .live("v1", "ConfigMap", "cm-11")
        .await
        .expect("cm-11");
    assert_eq!(live["data"]["n"], "11");

    // RBAC may grant `get` but not `list`: the deploy reads the objects one by one instead.
    let client = cluster.client_that_may_not_list_config_maps().await;
    changed[3].object["data"]["n"] = json!("three");
    let mark = cluster.mark();
    let report = deploy_objects(
        &client,
        &cluster.environment(),
        changed,
        &options(),
        &printer(),
    )
    .await
    .expect("deploy without list");
    assert_eq!(report.count(ObjectAction::Configured), 1, "{report:?}");
    assert!(
        object_gets(mark).is_none_or(|gets| gets == 20),
        "a GET per object after the refused LIST"
    );
    let live = cluster
        .live("v1", "ConfigMap", "cm-03")
        .await
        .expect("cm-03");
    assert_eq!(live["data"]["n"], "three");
}

/// A Deployment pruned by one deploy and back in Git for the next exists after that deploy, even
/// while the server is still deleting the old one (foreground deletion waits for its pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_deployment_added_back_at_once_is_there_after_the_deploy() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let without_backend: Vec<Manifest> = blog()
        .into_iter()
        .filter(|d| !(d.kind() == "Deployment" && d.object["metadata"]["name"] == "blog-backend"))
        .collect();
    let report = cluster
        .deploy(without_backend)
        .await
        .expect("deploy without the backend");
    assert_eq!(report.count(ObjectAction::Pruned), 1, "{report:?}");
    // A diff sees an object being deleted as one to create.
    let retry = RetryPolicy::default();
    let diff = gitship_kube::diff::diff_environment(
        &cluster.client,
        &cluster.environment(),
        &blog(),
        true,
        8,
        &retry,
    )
    .await
    .expect("diff");
    let planned: Vec<(String, gitship_kube::diff::PlannedAction)> = diff
        .objects
        .iter()
        .filter(|(_, d)| d.action != gitship_kube::diff::PlannedAction::Unchanged)
        .map(|(id, d)| (id.to_string(), d.action))
        .collect();
    assert_eq!(
        planned,
        vec![(
            cluster.id("Deployment", "blog-backend"),
            gitship_kube::diff::PlannedAction::Create
        )],
        "{diff:?}"
    );
    let report = cluster.deploy(blog()).await.expect("the backend is back");
    let backend = report
        .objects
        .iter()
        .find(|o| o.id.kind == "Deployment" && o.id.name == "blog-backend")
        .expect("in the report");
    assert_eq!(backend.action, ObjectAction::Created, "{report:?}");
    // Whatever the server was still doing with the old one is done by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live = cluster
        .live("apps/v1", "Deployment", "blog-backend")
        .await
        .expect("the backend exists after the deploy that put it back");
    assert!(
        live["metadata"].get("deletionTimestamp").is_none(),
        "the backend is being deleted: {live}"
    );
}

/// A deploy right after the environment's namespace was deleted (`kubectl delete namespace`)
/// waits for the server to finish deleting it, creates it anew and deploys into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_into_a_namespace_being_deleted_recreates_it() {
    let cluster = cluster().await;
    cluster.deploy(blog()).await.expect("first deploy");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client.clone());
    namespaces
        .delete(&cluster.namespace, &Default::default())
        .await
        .expect("delete the namespace");
    let report = cluster.deploy(blog()).await.expect("deploy again");
    assert_eq!(report.count(ObjectAction::Created), 6, "{report:?}");
    let namespace = cluster
        .live("v1", "Namespace", &cluster.namespace)
        .await
        .expect("the namespace exists");
    assert!(
        namespace["metadata"].get("deletionTimestamp").is_none(),
        "{namespace}"
    );
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-backend")
            .await
            .is_some()
    );
}

/// A field the schema does not declare: kube-apiserver refuses the server-side apply with a 500
/// ("failed to create typed patch object"). It is the body's fault, so the deploy fails at once,
/// naming the object and the field, after one request for it (it was retried as a server error
/// for about 6 s before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_field_fails_at_once_without_retries() {
    let cluster = cluster().await;
    let mut objects = blog();
    let mut typo = deployment("blog-worker", 1, "ghcr.io/acme/blog/worker:abc");
    typo.object["spec"]["replicaz"] = json!(2);
    objects.push(typo);
    let mark = cluster.mark();
    let started = std::time::Instant::now();
    let error = cluster.deploy(objects).await.unwrap_err();
    let elapsed = started.elapsed();
    let message = error.to_string();
    assert!(
        message.contains(&cluster.id("Deployment", "blog-worker")) && message.contains("replicaz"),
        "{message}"
    );
    // One request for the object (a dry run, or the apply of a new object), not retried.
    let to_worker = |w: &String| w.ends_with("/deployments/blog-worker");
    let mut requests: Vec<String> = cluster.dry_runs_since(mark);
    requests.extend(cluster.writes_since(mark));
    requests.retain(to_worker);
    assert_eq!(requests.len(), 1, "not retried: {requests:?}");
    assert!(
        cluster
            .live("apps/v1", "Deployment", "blog-worker")
            .await
            .is_none()
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}
