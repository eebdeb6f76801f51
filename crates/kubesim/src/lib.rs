//! kubesim: a simulated Kubernetes API server for gitship's tests and its `--sandbox` mode.
//!
//! No kube-apiserver can run on the machines gitship is built on, so this crate serves the parts
//! of the Kubernetes API that gitship and kubectl depend on, over real HTTP (HTTP/1.1 on
//! `127.0.0.1`), with real semantics. The real `kubectl` 1.32 works against it (see
//! `tests/kubectl.rs`), including `apply --server-side` *without* `--validate=false`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kubesim::{KubeSim, Options, Rollout};
//! let sim = KubeSim::start().await?; // or KubeSim::start_with(Options { .. })
//! let client = sim.client()?; // or kube::Client::try_from(sim.kube_config())
//! // kubectl: KUBECONFIG=<sim.kubeconfig_path()> (context `kubesim`, namespace `default`)
//! let handle = sim.handle();
//! handle.script_rollout("default", "web", Rollout::Fail);
//! // ... run the code under test with `client` ...
//! let writes = handle.requests().iter().filter(|request| request.is_write()).count();
//! let deployment = handle.get("apps/v1", "Deployment", "default", "web");
//! # let _ = (client, writes, deployment); Ok(()) }
//! ```
//!
//! The binary `kubesim [--port N] [--kubeconfig FILE] [--state FILE] [--token TOKEN]
//! [--rollout-delay-ms MS] [--latency-ms MS]` serves until SIGINT/SIGTERM and prints its URL on
//! stdout (`KUBESIM_TOKEN` may hold the token instead of argv).
//!
//! # What is simulated
//! - **Discovery**: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//!   `/apis/<group>/<version>` from the real discovery documents (copied byte-for-byte into
//!   `data/discovery`). `/apis` lists only the group/versions that have a resource list, because
//!   kubectl fails on a listed group it cannot fetch; the groups without documents
//!   (apiregistration, authentication, certificates, flowcontrol, node, resource, ...) are not
//!   served. Resources of a CustomResourceDefinition appear as soon as it is created. The
//!   aggregated-discovery `Accept` header is answered with the plain documents.
//! - **OpenAPI v3**: `/openapi/v3` and a minimal document per group/version declaring, for every
//!   kind, its GET/PUT/PATCH/DELETE operations and their `fieldValidation`, `dryRun`,
//!   `fieldManager` and `force` parameters: what kubectl checks before `apply --server-side`.
//!   The documents hold no object schemas (so no `kubectl explain`); `/openapi/v2` is not served.
//! - **CRUD** for every discovered resource, namespaced and cluster-scoped: GET, LIST (label
//!   selectors `=`, `==`, `!=`, `in`, `notin`, exists, `!`; field selectors `metadata.name` and
//!   `metadata.namespace`; `limit` and `continue`, with `remainingItemCount` when no selector
//!   filters; items of built-in kinds without `apiVersion` and `kind`, as a real server
//!   sends them, custom resources with them), POST (with `generateName`), PUT (with
//!   resourceVersion preconditions), JSON merge patch, JSON patch, strategic merge patch
//!   for built-in kinds (module `strategic`: lists merged by the schema's
//!   `x-kubernetes-patch-merge-key` where the patch strategy is `merge`, replaced otherwise, in
//!   apimachinery's order; the directives kubectl sends, `$patch: delete|replace|merge`,
//!   `$setElementOrder`, `$deleteFromPrimitiveList` and `$retainKeys`; a custom resource gets
//!   the real 415), DELETE
//!   (`propagationPolicy`, preconditions, finalizers: `deletionTimestamp` set and the object
//!   removed once the last finalizer goes; dependents found through `ownerReferences` deleted
//!   unless `Orphan`; namespace deletion: Terminating, then its objects and itself removed;
//!   CRD deletion removes its custom resources), DELETE of a collection. `Table` responses for
//!   `kubectl get` (the real printers' columns, `-o wide` ones at priority 1, for Deployments,
//!   StatefulSets, DaemonSets, Jobs, CronJobs, Services, Namespaces, ConfigMaps, Secrets,
//!   PersistentVolumeClaims, Ingresses and Events, NAME/AGE otherwise; ages in apimachinery's
//!   `HumanDuration`; `includeObject=Object|Metadata|None`, so `kubectl get --sort-by` works).
//! - **WATCH** (`?watch=true`) from a resourceVersion (resumed from a log of the last
//!   [`Options::event_log_capacity`] events, 4096 by default; an older version gets an `ERROR`
//!   event carrying a 410 `Expired` Status, as a real server's watch cache sends), or from
//!   `0`/nothing (synthetic ADDED events first); ADDED/MODIFIED/DELETED (an object leaving a
//!   selection is DELETED, entering it ADDED); label and field selectors; `allowWatchBookmarks`
//!   (a BOOKMARK every [`Options::bookmark_interval`]); `sendInitialEvents` (with the
//!   `k8s.io/initial-events-end` bookmark); `timeoutSeconds`.
//! - **Server-side apply** (`PATCH` with `application/apply-patch+yaml`, JSON or YAML body):
//!   `fieldManager` required (422 Invalid `PatchOptions.meta.k8s.io "" is invalid`
//!   otherwise); a field the schema does not declare is a 500 `failed to create typed patch
//!   object` whatever `fieldValidation` says; create-on-apply (201); `metadata.managedFields` per
//!   manager, operation (Apply/Update) and subresource, in FieldsV1; associative lists merged by
//!   the `x-kubernetes-list-map-keys` of the Kubernetes v1.37 schema (`data/
//!   v1.37-definitions.json`: containers and initContainers by name, env by name, container
//!   ports by containerPort+protocol, volumes and volumeMounts, Service ports by port+protocol,
//!   conditions by type, ...), `set` lists by value, atomic lists and `x-kubernetes-map-type:
//!   atomic` maps replaced whole; a field the same manager applied before and omits now is
//!   removed unless another manager owns it (an omitted list item is kept while another manager
//!   owns something in it); a conflict only when another manager owns a field whose value the
//!   apply would change: 409, reason Conflict, `details.causes[]` with reason
//!   FieldManagerConflict, the field (`.spec.replicas`) and the manager, and the message kubectl
//!   prints; `force=true` takes ownership. PUT, patches and the `scale`/`status` subresources
//!   are Update operations that take ownership of what they change (`kubectl scale` shows up as
//!   manager `kubectl`, subresource `scale`, owning `spec.replicas`; a scale to 0 leaves no owner
//!   of it, since the Scale omits a zero, as a real server records it). Without `fieldManager` an
//!   Update's manager is the user agent's program name, as on a real server.
//! - **Validation** for built-in kinds, from the same schema: fields the schema does not declare
//!   are dropped (as decoding into the API types does), or rejected when
//!   `fieldValidation=Strict` (kubectl's default: 400 `strict decoding error` for create and
//!   update, 422 for patches); missing `required` fields (a Deployment's
//!   `spec.selector`, a container's `name`, ...) give 422 Invalid with FieldValueRequired causes;
//!   missing apiVersion/kind/name give 422 Invalid. Updates of well-known immutable fields give
//!   422 Invalid with the real messages and `details.causes[].field`: Deployment, StatefulSet and
//!   DaemonSet `spec.selector`; Job `spec.selector` and `spec.template`; Service `clusterIP`
//!   once set (refused as `spec.clusterIPs[0]`; an update omitting it keeps it); a PVC's `spec`
//!   (except `resources.requests` once the claim is Bound); the
//!   `data`/`binaryData`/`immutable` of a ConfigMap or Secret marked `immutable: true`.
//! - **dryRun=All** on every write (create, update, patch, apply, delete): the full result is
//!   returned, nothing is stored, no event is emitted, resourceVersion does not move.
//! - **Metadata**: one global resourceVersion counter, bumped on every persisted change and not
//!   on a no-op write (a re-apply of the same configuration returns the stored object
//!   untouched); `generation` (apps, batch, autoscaling, policy, networking.k8s.io, CRDs and
//!   custom resources) bumped on changes outside metadata and status (Deployments: also on
//!   annotation changes); `uid` and `creationTimestamp` on create; `status` ignored by writes to
//!   the main resource of kinds with a status subresource; `scale` as an autoscaling/v1 Scale.
//! - **What the server rewrites** (module `defaults`, which lists every field): every
//!   `resource.Quantity` of a built-in kind, found through the schema, in apimachinery's
//!   canonical form (`0.5` -> `500m`, `1024Mi` -> `1Gi`). The body is decoded first, as on a
//!   real server, before the object or its namespace is looked up: an invalid quantity is a
//!   400 BadRequest `... cannot be handled as a ...` on create and update, a 422 Invalid
//!   `patch: Invalid value` on a patch, and on server-side apply (after conflicts, before the
//!   namespace check) a 500 `failed to convert new object`. The defaults of the core/v1,
//!   apps/v1 and batch/v1 defaulters for Pods and pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//!   CronJob), containers, probes and volumes, Services (with a unique, deterministic
//!   `clusterIP` from 10.96.0.0/12, node ports, IP families) and PVCs; a Job's generated
//!   selector and labels; Secret `type: Opaque` and `stringData` merged into base64 `data`;
//!   Namespace label `kubernetes.io/metadata.name`, phase Active and `spec.finalizers:
//!   [kubernetes]` (owned by no manager). Defaults are filled in
//!   after server-side apply's bookkeeping, so no applier owns them (an Update owns what it
//!   created, defaults included, as on a real server).
//! - **Errors** are `Status` objects with the real reasons and messages (details without the
//!   empty core group): 404 NotFound
//!   (`deployments.apps "web" not found`, also for a missing namespace), 409 AlreadyExists and
//!   Conflict, 422 Invalid, 400 BadRequest, 403 Forbidden (creating in a terminating
//!   namespace), 405, 410 Expired, 415 for a body or patch type the real server refuses.
//! - **Protobuf request bodies** (module `protobuf`): what kubectl's imperative `create
//!   namespace|configmap|secret|deployment|service|job|cronjob|role|...` POST, for every
//!   built-in kind of the served group/versions, decoded through a field table generated from
//!   the v1.37.2 `.proto` files (`data/v1.37-protobuf.json`, `data/generate-protobuf.py`); an
//!   undecodable body gets the real 400. Answers are JSON, which kubectl accepts.
//! - **Controllers** (status writes as manager `kube-controller-manager`, subresource status):
//!   Deployments, StatefulSets, DaemonSets and Jobs report progress at once and a healthy status
//!   after [`Options::rollout_delay`] (observedGeneration, replicas, updatedReplicas,
//!   readyReplicas, availableReplicas; Deployment conditions Available/MinimumReplicasAvailable
//!   and Progressing/NewReplicaSetAvailable; Job Complete), so `kubectl rollout status` and
//!   `kubectl wait` work. [`SimHandle::script_rollout`] with [`Rollout::Fail`] ends a
//!   Deployment's rollout with Progressing=False, reason ProgressDeadlineExceeded (Jobs: Failed,
//!   BackoffLimitExceeded; StatefulSets and DaemonSets never become ready); [`Rollout::Slow`]
//!   delays readiness. PVCs become Bound, CRDs Established (NamesAccepted). Rollouts record
//!   core `v1` Events on the workload like the real controllers: Deployments `ScalingReplicaSet`
//!   (Normal) and, when failed, a Warning `ProgressDeadlineExceeded`; Jobs `SuccessfulCreate`,
//!   `Completed`, `BackoffLimitExceeded`; StatefulSets `SuccessfulCreate`. `fieldSelector`
//!   accepts the Event field labels (`involvedObject.*`, `reason`, `type`, ...) on any resource.
//!   `events.k8s.io/v1` Events are the same stored objects as core Events, as on a real server
//!   (module `events`: `note` <-> `message`, `regarding` <-> `involvedObject`,
//!   `deprecatedLastTimestamp` <-> `lastTimestamp`, ...; both views carry the always-serialised
//!   zero fields; an update through `events.k8s.io/v1` may change only `series` and metadata,
//!   422 otherwise). Writes through `events.k8s.io/v1` are recorded in `managedFields` with
//!   apiVersion `v1` and core field names (a real server records `events.k8s.io/v1`).
//! - **Fault injection**: [`SimHandle::fail_next`] and [`SimHandle::fault_rate`] with 500, 429
//!   with `Retry-After`, 409, or a dropped connection; they hit resource requests only, never
//!   `/version`, discovery or OpenAPI, so a client can always start. Note that kube's default
//!   client retries 429s.
//! - **Network latency** ([`Options::latency`], binary `--latency-ms`,
//!   [`SimHandle::set_latency`]): a model of the round-trip time between a client and a remote
//!   cluster, not of server load. Every response (discovery included) waits that long, each on
//!   its own task, so 20 concurrent requests take one round trip, not 20, and a client that
//!   sends one request at a time pays it on every request, as over a real network. A WATCH
//!   pays it on its initial response and on every event (a change reaches the watcher that
//!   long after it happened; events keep their order and their delays do not add up).
//!   `tests/latency.rs` checks both.
//! - **Inspection**: [`SimHandle::requests`] records method, path, query, dry-run, content type,
//!   field manager and watch for every request; [`SimHandle::get`] / [`SimHandle::objects`]
//!   read the stored state; [`SimHandle::apply`] applies in-process (seeding).
//! - **Bearer token** ([`Options::token`], binary `--token`): when set, every request, discovery
//!   and `/version` included, must carry `Authorization: Bearer <token>` (scheme in any case);
//!   any other request gets kube-apiserver's 401: `{"kind":"Status","apiVersion":"v1",
//!   "metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized",
//!   "code":401}`. [`KubeSim::kube_config`], [`KubeSim::client`] and the kubeconfig file (mode
//!   0600) carry the token. kubectl never sends credentials to an `http://` server (client-go
//!   applies a kubeconfig's user only over TLS), so with a token kubectl gets 401 and prints
//!   `error: You must be logged in to the server (...)`; kube-rs clients do send it.
//! - **Persistence** ([`Options::state_file`], binary `--state`): the file is loaded on start
//!   when it exists, and rewritten (temporary file, fsync, rename) synchronously after *every*
//!   persisted change, before the response is sent, so a process that exits right after a
//!   request loses nothing; also on [`KubeSim::save_state`] and on drop. Rollouts that had not
//!   finished are completed after the next start. One process per state file at a time.
//! - **Scale**: objects are held as compact JSON text; 10,000 Deployments take about 55 MB of
//!   resident memory (test + server), and 1,000 server-side applies from 8 concurrent clients
//!   take well under 2 seconds (`tests/performance.rs` prints both figures).
//!
//! # What is not simulated
//! No nodes, scheduling, kubelet or container runtime: no Pods, ReplicaSets or ControllerRevisions
//! are created for workloads, so `kubectl logs`, `exec`, `port-forward` and `rollout history` or
//! `undo` have nothing to work on; no Service endpoints, networking or DNS. No authentication
//! beyond the one optional bearer token, no authorization or RBAC (an authenticated request is
//! allowed everything), no admission webhooks and no admission
//! plugins other than namespace existence and termination; no resource quotas or limit ranges.
//! No controllers beyond those listed above: a new namespace gets no `default` ServiceAccount
//! and no `kube-root-ca.crt` ConfigMap, CronJobs never run, PVCs are Bound without a volume.
//! Validation is limited to unknown and required fields of built-in kinds and the immutable
//! fields listed above (no value formats, enums or other cross-field rules; custom resources are not validated, pruned or
//! defaulted against their CRD schema and merge with deduced rules: objects field by field,
//! lists atomically). Defaulting is limited to the fields `defaults` lists (no admission-plugin
//! defaults: service accounts, tolerations, priority, storage classes). No API version
//! conversion: an object is stored and returned as written (autoscaling/v1 vs v2 share storage
//! unconverted). `managedFields` sent by a client are ignored. No protobuf responses (requests
//! only; a protobuf singular field holding zero, such as `replicas: 0`, is taken as unset and
//! defaulted), no aggregated discovery format, no `/openapi/v2`,
//! no HTTP/2, no TLS. Deletion is immediate (no grace periods; foreground deletion behaves like
//! background). Timing (rollout delays, bookmarks every second) is not real-world timing.

mod api;
mod controllers;
mod defaults;
mod errors;
mod events;
mod fields;
mod immutable;
mod managed;
mod protobuf;
mod quantity;
mod registry;
mod schema;
mod selectors;
mod server;
mod store;
mod strategic;
mod table;

use server::{Faults, Shared, lock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;

pub use store::StateError;

/// Errors starting or persisting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig file could not be written.
    #[error("cannot write kubeconfig `{path}`")]
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free port.
    pub port: u16,
    /// JSON state file: loaded when present, rewritten after every change.
    pub state_file: Option<PathBuf>,
    /// Where to write the kubeconfig; a file in a private temporary directory when `None`.
    pub kubeconfig_path: Option<PathBuf>,
    /// How long simulated workloads take to become healthy.
    pub rollout_delay: Duration,
    /// Interval between watch bookmarks (when a watch allows them).
    pub bookmark_interval: Duration,
    /// How many events are kept for watches resuming from a resourceVersion; older versions
    /// get 410 Gone.
    pub event_log_capacity: usize,
    /// A bearer token every request must carry (`Authorization: Bearer <token>`); without it,
    /// or with another one, the answer is 401 Unauthorized. `None` serves everyone.
    pub token: Option<String>,
    /// The simulated network round-trip time (binary `--latency-ms`; changed later with
    /// [`SimHandle::set_latency`]): every response waits this long before it is sent, on its own
    /// task, so concurrent requests overlap as they do over a network; a WATCH's initial
    /// response waits once, then every event it streams reaches the client this long after it
    /// happened. A model of distance, not of server load: throughput does not drop with it.
    pub latency: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            port: 0,
            state_file: None,
            kubeconfig_path: None,
            rollout_delay: Duration::from_millis(100),
            bookmark_interval: Duration::from_secs(1),
            event_log_capacity: 4096,
            token: None,
            latency: Duration::ZERO,
        }
    }
}

/// A fault to inject into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 InternalError.
    Status500,
    /// 429 TooManyRequests with a `Retry-After` header.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after_secs: u64,
    },
    /// 409 Conflict.
    Conflict409,
    /// 403 Forbidden (what RBAC answers for a verb it does not grant).
    Forbidden403,
    /// Close the connection without answering.
    Drop,
}

/// A scripted rollout outcome for the workload with a given namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Becomes healthy after the rollout delay (the default).
    Healthy,
    /// Progressing=False with reason ProgressDeadlineExceeded (Jobs: Failed).
    Fail,
    /// Becomes healthy after this long instead of the rollout delay.
    Slow(Duration),
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method (`GET`, `PATCH`, ...).
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Whether `dryRun=All` was set.
    pub dry_run: bool,
    /// `Content-Type` without parameters (empty when absent).
    pub content_type: String,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// Whether this was a WATCH.
    pub watch: bool,
}

impl RequestRecord {
    /// Whether the request could change state (POST, PUT, PATCH, DELETE) and was not a dry run.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && !self.dry_run
    }
}

/// A running simulated API server; stops when dropped.
pub struct KubeSim {
    shared: Arc<Shared>,
    address: SocketAddr,
    kubeconfig: PathBuf,
    token: Option<String>,
    _directory: Option<tempfile::TempDir>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KubeSim {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KubeSim")
            .field("address", &self.address)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

fn default_namespace(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

impl KubeSim {
    /// Starts a simulator on a free port with default options.
    pub async fn start() -> Result<KubeSim, Error> {
        KubeSim::start_with(Options::default()).await
    }

    /// Starts a simulator. Must be called inside a Tokio runtime.
    pub async fn start_with(options: Options) -> Result<KubeSim, Error> {
        schema::preload();
        let mut store = Store::new(options.state_file.clone(), options.event_log_capacity);
        store.load()?;
        let namespaces = store.registry().by_plural("", "v1", "namespaces");
        if let Some(namespaces) = namespaces {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                if store
                    .get(
                        &namespaces.storage_key(),
                        &(String::new(), name.to_string()),
                    )
                    .is_none()
                {
                    store.seed(&namespaces, default_namespace(name));
                }
            }
        }
        let requested = SocketAddr::from(([127, 0, 0, 1], options.port));
        let listener = tokio::net::TcpListener::bind(requested)
            .await
            .map_err(|source| Error::Bind {
                address: requested,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Bind {
            address: requested,
            source,
        })?;
        let (directory, kubeconfig) = match &options.kubeconfig_path {
            Some(path) => (None, path.clone()),
            None => {
                let directory = tempfile::Builder::new()
                    .prefix("kubesim-")
                    .tempdir()
                    .map_err(|source| Error::Kubeconfig {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let path = directory.path().join("kubeconfig");
                (Some(directory), path)
            }
        };
        write_private(
            &kubeconfig,
            &kubeconfig_text_with_token(&format!("http://{address}"), options.token.as_deref()),
        )
        .map_err(|source| Error::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;
        let (controller_sender, controller_receiver) = tokio::sync::mpsc::unbounded_channel();
        store.controller = Some(store::ControllerFeed {
            sender: controller_sender,
            watches: controllers::watches,
        });
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults: Mutex::new(Faults {
                seed: 0x9e37_79b9_7f4a_7c15,
                ..Faults::default()
            }),
            requests: Mutex::new(Vec::new()),
            scripts: Mutex::new(HashMap::new()),
            latency: Mutex::new(options.latency),
            rollout_delay: options.rollout_delay,
            bookmark_interval: options.bookmark_interval.max(Duration::from_millis(10)),
            token: options.token.clone(),
            shutdown,
        });
        let tasks = vec![
            tokio::spawn(server::serve(listener, shared.clone())),
            tokio::spawn(controllers::run(shared.clone(), controller_receiver)),
        ];
        Ok(KubeSim {
            shared,
            address,
            kubeconfig,
            token: options.token,
            _directory: directory,
            tasks,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A kubeconfig file for this server (cluster, user and context named `kubesim`, namespace
    /// `default`; the user carries [`Options::token`] when one is set). Mode 0600.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kube::Config` for this server (default namespace `default`; bearer
    /// [`Options::token`] when one is set).
    pub fn kube_config(&self) -> kube::Config {
        let url = self.url().parse().unwrap_or_default();
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".into();
        config.read_timeout = Some(Duration::from_secs(300));
        config.auth_info.token = self
            .token
            .as_deref()
            .map(|token| secrecy::SecretString::from(token.to_string()));
        config
    }

    /// The bearer token requests must carry ([`Options::token`]).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A `kube::Client` for this server.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.kube_config())
    }

    /// A handle to inspect state and script behaviour.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: self.shared.clone(),
        }
    }

    /// Writes the state file now (it is also written after every change).
    pub fn save_state(&self) -> Result<(), Error> {
        self.handle().save_state()
    }

    /// Stops serving (also done on drop).
    pub fn stop(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    /// Waits until [`KubeSim::stop`] is called.
    pub async fn stopped(&self) {
        let mut receiver = self.shared.shutdown.subscribe();
        while !*receiver.borrow_and_update() {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        let _ = self.shared.shutdown.send(true);
        if let Err(error) = lock(&self.shared.store).save() {
            tracing::error!(error = %error, "kubesim: cannot persist state");
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The kubeconfig text for a server URL (a user without credentials).
pub fn kubeconfig_text(url: &str) -> String {
    kubeconfig_text_with_token(url, None)
}

/// The kubeconfig text for a server URL whose user authenticates with a bearer `token`.
pub fn kubeconfig_text_with_token(url: &str, token: Option<&str>) -> String {
    let user = match token {
        // JSON string syntax is valid YAML and escapes anything a token may hold.
        Some(token) => format!("\n    token: {}", serde_json::Value::from(token)),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {url}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:{user}\npreferences: {{}}\n"
    )
}

/// Writes `text` to `path` with mode 0600 (a kubeconfig may hold a token), replacing it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open; tighten it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Inspects and scripts a running simulator; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Every stored object.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        lock(&self.shared.store)
            .all()
            .into_iter()
            .map(|(_, object)| (*object).clone())
            .collect()
    }

    /// How many objects are stored.
    pub fn object_count(&self) -> usize {
        lock(&self.shared.store).len()
    }

    /// One object by apiVersion, kind, namespace (`""` for cluster-scoped) and name.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let store = lock(&self.shared.store);
        let resource = store.registry().by_kind(api_version, kind)?;
        let namespace = if resource.namespaced { namespace } else { "" };
        store
            .get(
                &resource.storage_key(),
                &(namespace.to_string(), name.to_string()),
            )
            .map(|object| (*object).clone())
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).resource_version
    }

    /// How many requests were received (since the last reset).
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// The requests received (since the last reset), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn reset_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Makes the next `count` resource requests fail with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults.queue.extend(std::iter::repeat_n(fault, count));
    }

    /// Answer the next `count` requests with HTTP method `method` (`DELETE`, `PATCH`, ...) with
    /// `fault`; other requests are not affected.
    pub fn fail_next_method(&self, method: &str, count: usize, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults
            .by_method
            .entry(method.to_ascii_uppercase())
            .or_default()
            .extend(std::iter::repeat_n(fault, count));
    }

    /// Answer the next `count` requests with `method` to exactly `path` (no query; e.g. a LIST:
    /// `GET /api/v1/namespaces/blog/configmaps`) with `fault`; other requests are not affected.
    pub fn fail_next_path(&self, method: &str, path: &str, count: usize, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults
            .by_path
            .entry((method.to_ascii_uppercase(), path.to_string()))
            .or_default()
            .extend(std::iter::repeat_n(fault, count));
    }

    /// Makes `percent` % of resource requests fail with one of `faults` (pseudo-random,
    /// deterministic sequence); `percent` 0 turns it off.
    pub fn fault_rate(&self, percent: u8, faults: Vec<Fault>) {
        let mut state = lock(&self.shared.faults);
        state.rate = if percent == 0 {
            None
        } else {
            Some((percent.min(100), faults))
        };
    }

    /// Removes all pending and random faults.
    pub fn clear_faults(&self) {
        let mut faults = lock(&self.shared.faults);
        faults.queue.clear();
        faults.rate = None;
    }

    /// Sets the simulated round-trip time ([`Options::latency`]) from now on.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Scripts the rollout outcome of the workload `namespace`/`name` (any workload kind).
    pub fn script_rollout(&self, namespace: &str, name: &str, rollout: Rollout) {
        lock(&self.shared.scripts).insert((namespace.to_string(), name.to_string()), rollout);
    }

    /// Writes the state file now.
    pub fn save_state(&self) -> Result<(), Error> {
        lock(&self.shared.store).save().map_err(Error::from)
    }

    /// Server-side applies `object` as `field_manager` without going through HTTP (same
    /// semantics, events and persistence as a `PATCH`; not recorded as a request). Handy to seed
    /// state in tests. Namespaced objects without a namespace go to `default`.
    pub fn apply(
        &self,
        object: &serde_json::Value,
        field_manager: &str,
        force: bool,
    ) -> Result<serde_json::Value, ApplyError> {
        let mut store = lock(&self.shared.store);
        api::apply_object(&mut store, object, field_manager, force).map_err(|error| ApplyError {
            code: error.code,
            reason: error.reason.to_string(),
            message: error.message.clone(),
        })
    }
}

/// A failed [`SimHandle::apply`]: the `Status` the API would have answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApplyError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
}
