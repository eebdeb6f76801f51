//! What the server writes into an object that the client did not: the defaulting of the
//! Kubernetes defaulters (core/v1, apps/v1, batch/v1), the Service registry's allocations
//! (`clusterIP`, `nodePort`, IP families), the Job strategy's generated selector, and the
//! canonical form of every `resource.Quantity`.
//!
//! Defaulted, when absent:
//! - **Pod specs** (bare Pods and the templates of Deployments, StatefulSets, DaemonSets, Jobs,
//!   CronJobs, ReplicaSets and PodTemplates): `restartPolicy: Always`, `dnsPolicy: ClusterFirst`,
//!   `schedulerName: default-scheduler`, `securityContext: {}`,
//!   `terminationGracePeriodSeconds: 30`; bare Pods also `enableServiceLinks: true` and
//!   `requests` copied from `limits` for the resources that have no request.
//! - **Containers** (containers, init containers, ephemeral containers): `imagePullPolicy`
//!   (`Always` for a `:latest` or untagged image, `IfNotPresent` otherwise, including digests),
//!   `terminationMessagePath: /dev/termination-log`, `terminationMessagePolicy: File`,
//!   `resources: {}`; ports `protocol: TCP`; probes `timeoutSeconds: 1`, `periodSeconds: 10`,
//!   `successThreshold: 1`, `failureThreshold: 3`, and `httpGet` `path: /`, `scheme: HTTP`;
//!   `fieldRef.apiVersion: v1` in env and downward-API items.
//! - **Volumes**: `defaultMode: 420` on configMap, secret, projected and downwardAPI volumes.
//! - **Deployment**: `replicas: 1`, `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`,
//!   `strategy.type: RollingUpdate` with `maxSurge: 25%`, `maxUnavailable: 25%`.
//! - **StatefulSet**: `replicas: 1`, `revisionHistoryLimit: 10`,
//!   `podManagementPolicy: OrderedReady`, `updateStrategy` `RollingUpdate` with `partition: 0`
//!   and `maxUnavailable: 1`, `persistentVolumeClaimRetentionPolicy` `Retain`/`Retain`, and
//!   `volumeMode: Filesystem` in volume claim templates.
//! - **DaemonSet**: `revisionHistoryLimit: 10`, `updateStrategy` `RollingUpdate` with
//!   `maxSurge: 0`, `maxUnavailable: 1`.
//! - **Job**: `completions: 1` and `parallelism: 1` (when both are absent), `parallelism: 1`,
//!   `backoffLimit: 6`, `completionMode: NonIndexed`, `suspend: false`,
//!   `podReplacementPolicy: TerminatingOrFailed` (`Failed` with a `podFailurePolicy`),
//!   `metadata.labels` from the template's labels when the Job has none; unless
//!   `manualSelector: true`, a generated `selector` on `batch.kubernetes.io/controller-uid` and
//!   the labels `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`,
//!   `controller-uid` and `job-name` on the template.
//! - **CronJob**: `concurrencyPolicy: Allow`, `suspend: false`, `successfulJobsHistoryLimit: 3`,
//!   `failedJobsHistoryLimit: 1`.
//! - **Service**: `type: ClusterIP`, `sessionAffinity: None`, ports `protocol: TCP` and
//!   `targetPort` = `port`, `internalTrafficPolicy: Cluster` (ClusterIP, NodePort,
//!   LoadBalancer), `externalTrafficPolicy: Cluster` and a `nodePort` per port (30000-32767)
//!   for NodePort and LoadBalancer, `allocateLoadBalancerNodePorts: true` for LoadBalancer;
//!   `clusterIP`/`clusterIPs` allocated from 10.96.0.0/12 (deterministic by namespace and name,
//!   unique, kept across updates), `ipFamilies: [IPv4]`, `ipFamilyPolicy: SingleStack`
//!   (headless Services too; ExternalName Services get none of these).
//! - **PersistentVolumeClaim**: `volumeMode: Filesystem`.
//! - **Secret**: `type: Opaque`, `stringData` merged into base64 `data`.
//! - **Namespace**: label `kubernetes.io/metadata.name`.
//!
//! Defaults are filled in after the managed-fields bookkeeping of a server-side apply, so no
//! applier owns them and re-applying a manifest that omits them neither removes them nor
//! conflicts. As on a real server, an `Update` (POST, PUT, patch) owns what it created or
//! changed, defaults included, because the real server defaults while decoding the body.

use crate::quantity::{self, QuantityError};
use crate::registry::Resource;
use crate::schema::Node;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// Rewrites every `resource.Quantity` of a built-in object into its canonical form.
pub fn canonicalize_quantities(
    resource: &Resource,
    object: &mut Value,
) -> Result<(), QuantityError> {
    let root = Node::root(&resource.api_version(), &resource.kind);
    let Some(map) = object.as_object_mut() else {
        return Ok(());
    };
    // `metadata`, `apiVersion` and `kind` hold no quantities: not walking them keeps writes fast.
    for (key, value) in map.iter_mut() {
        if !matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
            quantity::canonicalize(value, root.field(key))?;
        }
    }
    Ok(())
}

/// Sets `field` of an object to `value` when it is absent (or null).
fn default(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut()
        && map.get(field).is_none_or(Value::is_null)
    {
        map.insert(field.to_string(), value);
    }
}

/// The object at `field`, created empty when absent.
fn child<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Value> {
    let map = object.as_object_mut()?;
    let entry = map
        .entry(field.to_string())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if entry.is_null() {
        *entry = Value::Object(serde_json::Map::new());
    }
    entry.is_object().then_some(entry)
}

fn items_mut<'a>(object: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    object
        .get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// The tag the defaulter sees: `latest` when the image names neither a tag nor a digest.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest.is_some() => None,
        None => Some("latest"),
    }
}

fn default_probe(probe: &mut Value) {
    if !probe.is_object() {
        return;
    }
    default(probe, "timeoutSeconds", json!(1));
    default(probe, "periodSeconds", json!(10));
    default(probe, "successThreshold", json!(1));
    default(probe, "failureThreshold", json!(3));
    if let Some(http) = probe.get_mut("httpGet").filter(|http| http.is_object()) {
        default(http, "path", json!("/"));
        default(http, "scheme", json!("HTTP"));
    }
}

fn default_field_ref(holder: &mut Value) {
    if let Some(field_ref) = holder.get_mut("fieldRef").filter(|value| value.is_object()) {
        default(field_ref, "apiVersion", json!("v1"));
    }
}

fn default_container(container: &mut Value) {
    if !container.is_object() {
        return;
    }
    let image = container["image"].as_str().unwrap_or("").to_string();
    let policy = if image_tag(&image) == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(container, "imagePullPolicy", json!(policy));
    default(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    default(container, "terminationMessagePolicy", json!("File"));
    default(container, "resources", json!({}));
    for port in items_mut(container, "ports") {
        default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get_mut(probe) {
            default_probe(probe);
        }
    }
    for variable in items_mut(container, "env") {
        if let Some(source) = variable.get_mut("valueFrom") {
            default_field_ref(source);
        }
    }
}

fn default_volume(volume: &mut Value) {
    for source in ["configMap", "secret", "projected", "downwardAPI"] {
        if let Some(source_value) = volume.get_mut(source).filter(|value| value.is_object()) {
            default(source_value, "defaultMode", json!(420));
            for item in items_mut(source_value, "items") {
                default_field_ref(item);
            }
            for projection in items_mut(source_value, "sources") {
                if let Some(downward) = projection.get_mut("downwardAPI") {
                    for item in items_mut(downward, "items") {
                        default_field_ref(item);
                    }
                }
            }
        }
    }
}

/// `SetDefaults_PodSpec` and the container, volume and probe defaulters under it.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in items_mut(spec, list) {
            default_container(container);
        }
    }
    for volume in items_mut(spec, "volumes") {
        default_volume(volume);
    }
}

fn default_template(spec: &mut Value) {
    if let Some(pod) = spec
        .get_mut("template")
        .and_then(|template| template.get_mut("spec"))
    {
        default_pod_spec(pod);
    }
}

/// `SetDefaults_Pod`: a bare Pod's requests default to its limits.
fn default_pod(spec: &mut Value) {
    default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        for container in items_mut(spec, list) {
            let Some(limits) = container["resources"]["limits"].as_object().cloned() else {
                continue;
            };
            let Some(requests) = child(container, "resources").and_then(|r| child(r, "requests"))
            else {
                continue;
            };
            for (resource, amount) in limits {
                default(requests, &resource, amount);
            }
        }
    }
    default_pod_spec(spec);
}

fn default_rolling(
    strategy: Option<&mut Value>,
    type_field: &str,
    rolling: &str,
    values: &[(&str, Value)],
) {
    let Some(strategy) = strategy else {
        return;
    };
    default(strategy, type_field, json!("RollingUpdate"));
    if strategy[type_field] == "RollingUpdate"
        && let Some(rolling) = child(strategy, rolling)
    {
        for (field, value) in values {
            default(rolling, field, value.clone());
        }
    }
}

fn default_deployment(spec: &mut Value) {
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    default_rolling(
        child(spec, "strategy"),
        "type",
        "rollingUpdate",
        &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
    );
    default_template(spec);
}

fn default_stateful_set(spec: &mut Value) {
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    default_rolling(
        child(spec, "updateStrategy"),
        "type",
        "rollingUpdate",
        &[("partition", json!(0)), ("maxUnavailable", json!(1))],
    );
    if let Some(retention) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default(retention, "whenDeleted", json!("Retain"));
        default(retention, "whenScaled", json!("Retain"));
    }
    for claim in items_mut(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = claim.get_mut("spec").filter(|value| value.is_object()) {
            default(claim_spec, "volumeMode", json!("Filesystem"));
        }
    }
    default_template(spec);
}

fn default_daemon_set(spec: &mut Value) {
    default(spec, "revisionHistoryLimit", json!(10));
    default_rolling(
        child(spec, "updateStrategy"),
        "type",
        "rollingUpdate",
        &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
    );
    default_template(spec);
}

/// `SetDefaults_Job`, and on create the selector and labels the Job strategy generates.
fn default_job(object: &mut Value, created: bool) {
    let template_labels = object["spec"]["template"]["metadata"]["labels"].clone();
    if template_labels
        .as_object()
        .is_some_and(|labels| !labels.is_empty())
        && object["metadata"]["labels"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty)
    {
        object["metadata"]["labels"] = template_labels;
    }
    let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let Some(spec) = object.get_mut("spec").filter(|spec| spec.is_object()) else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        default(spec, "completions", json!(1));
    }
    default(spec, "parallelism", json!(1));
    if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        default(spec, "backoffLimit", json!(i32::MAX));
    } else {
        default(spec, "backoffLimit", json!(6));
    }
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    if created && spec["manualSelector"] != true && !uid.is_empty() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        if let Some(metadata) = spec.get_mut("template").and_then(|t| child(t, "metadata"))
            && let Some(labels) = child(metadata, "labels")
        {
            for (key, value) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels[key] = json!(value);
            }
        }
    }
    default_template(spec);
}

fn default_cron_job(spec: &mut Value) {
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = spec
        .get_mut("jobTemplate")
        .and_then(|template| template.get_mut("spec"))
    {
        default_template(job_spec);
    }
}

/// The addresses one Service holds.
#[derive(Debug, Default, PartialEq)]
struct Held {
    cluster_ips: Vec<String>,
    node_ports: Vec<i64>,
}

impl Held {
    fn of(service: &Value) -> Held {
        let mut held = Held::default();
        let addresses = service["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(service["spec"].get("clusterIP"))
            .filter_map(Value::as_str);
        for address in addresses {
            if !held.cluster_ips.iter().any(|known| known == address) {
                held.cluster_ips.push(address.to_string());
            }
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(node_port) = port["nodePort"].as_i64()
                && !held.node_ports.contains(&node_port)
            {
                held.node_ports.push(node_port);
            }
        }
        held
    }
}

/// The cluster IPs and node ports held by the stored Services, kept up to date by the store as
/// Services are written (the apiserver's allocators), so that writing a Service never has to
/// read all the others.
#[derive(Debug, Default)]
pub struct ServiceAddresses {
    by_service: HashMap<(String, String), Held>,
    cluster_ips: HashMap<String, usize>,
    node_ports: HashMap<i64, usize>,
}

impl ServiceAddresses {
    /// Records what the Service `key` (namespace, name) now holds: `None` once it is gone.
    pub fn record(&mut self, key: &(String, String), service: Option<&Value>) {
        if let Some(previous) = self.by_service.remove(key) {
            for address in &previous.cluster_ips {
                release(&mut self.cluster_ips, address);
            }
            for port in &previous.node_ports {
                release(&mut self.node_ports, port);
            }
        }
        let Some(service) = service else {
            return;
        };
        let held = Held::of(service);
        if held == Held::default() {
            return;
        }
        for address in &held.cluster_ips {
            *self.cluster_ips.entry(address.clone()).or_default() += 1;
        }
        for port in &held.node_ports {
            *self.node_ports.entry(*port).or_default() += 1;
        }
        self.by_service.insert(key.clone(), held);
    }
}

/// Takes one holder off `key`'s count.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// Service addresses already allocated to other Services: what the store's
/// [`ServiceAddresses`] holds except the Service being written, plus what this write has taken.
#[derive(Debug, Default)]
pub struct Allocated<'a> {
    held: Option<(&'a ServiceAddresses, (String, String))>,
    /// Cluster IPs in use besides the held ones.
    pub cluster_ips: HashSet<String>,
    /// Node ports in use besides the held ones.
    pub node_ports: HashSet<i64>,
}

impl<'a> Allocated<'a> {
    /// What every stored Service holds, except the Service `key` (namespace, name) itself.
    pub fn except(addresses: &'a ServiceAddresses, key: (String, String)) -> Allocated<'a> {
        Allocated {
            held: Some((addresses, key)),
            ..Allocated::default()
        }
    }

    fn has_cluster_ip(&self, address: &str) -> bool {
        self.cluster_ips.contains(address)
            || self.held.as_ref().is_some_and(|(addresses, own)| {
                let holders = addresses.cluster_ips.get(address).copied().unwrap_or(0);
                let own_holds = addresses
                    .by_service
                    .get(own)
                    .is_some_and(|held| held.cluster_ips.iter().any(|known| known == address));
                holders > usize::from(own_holds)
            })
    }

    fn has_node_port(&self, port: i64) -> bool {
        self.node_ports.contains(&port)
            || self.held.as_ref().is_some_and(|(addresses, own)| {
                let holders = addresses.node_ports.get(&port).copied().unwrap_or(0);
                let own_holds = addresses
                    .by_service
                    .get(own)
                    .is_some_and(|held| held.node_ports.contains(&port));
                holders > usize::from(own_holds)
            })
    }
}

/// FNV-1a, for a placement that depends only on the Service's namespace and name.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A free address in 10.96.0.0/12 (10.96.0.1 is the `kubernetes` Service's; .0 and the
/// broadcast address are never handed out).
fn allocate_cluster_ip(key: &str, allocated: &Allocated) -> Option<String> {
    const SIZE: u64 = (1 << 20) - 11;
    let start = hash(key) % SIZE;
    (0..SIZE).find_map(|offset| {
        let host = 10 + (start + offset) % SIZE;
        let address = format!(
            "10.{}.{}.{}",
            96 + (host >> 16),
            (host >> 8) & 0xff,
            host & 0xff
        );
        (!allocated.has_cluster_ip(&address)).then_some(address)
    })
}

fn allocate_node_port(key: &str, allocated: &mut Allocated) -> Option<i64> {
    const FIRST: i64 = 30000;
    const SIZE: i64 = 2768;
    let start = (hash(key) % SIZE as u64) as i64;
    let port = (0..SIZE)
        .map(|offset| FIRST + (start + offset) % SIZE)
        .find(|port| !allocated.has_node_port(*port))?;
    allocated.node_ports.insert(port);
    Some(port)
}

/// `SetDefaults_Service` and the Service registry's allocations.
fn default_service(object: &mut Value, old: Option<&Value>, mut allocated: Allocated) {
    let key = format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    );
    let Some(spec) = object.get_mut("spec").filter(|spec| spec.is_object()) else {
        return;
    };
    if let Some(old) = old {
        // An update that omits the allocated addresses keeps them, as the apiserver does.
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if spec.get(field).is_none()
                && let Some(value) = old["spec"].get(field)
            {
                spec[field] = value.clone();
            }
        }
    }
    default(spec, "sessionAffinity", json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        let timeout = &spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"];
        if timeout.is_null() {
            spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
        }
    }
    default(spec, "type", json!("ClusterIP"));
    let service_type = spec["type"].as_str().unwrap_or("").to_string();
    let external = matches!(service_type.as_str(), "NodePort" | "LoadBalancer");
    let old_ports: Vec<Value> = old
        .and_then(|old| old["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    for port in items_mut(spec, "ports") {
        default(port, "protocol", json!("TCP"));
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(number)) => number.as_i64() == Some(0),
            Some(Value::String(text)) => text.is_empty(),
            Some(_) => false,
        };
        if target_unset {
            port["targetPort"] = port["port"].clone();
        }
        if external && port.get("nodePort").is_none_or(Value::is_null) {
            let kept = old_ports
                .iter()
                .find(|previous| {
                    previous["port"] == port["port"] && previous["protocol"] == port["protocol"]
                })
                .and_then(|previous| previous["nodePort"].as_i64());
            let node_port = kept
                .or_else(|| allocate_node_port(&format!("{key}/{}", port["port"]), &mut allocated));
            if let Some(node_port) = node_port {
                port["nodePort"] = json!(node_port);
            }
        }
    }
    if external {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if external || service_type == "ClusterIP" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if service_type == "ExternalName" {
        return;
    }
    if spec.get("clusterIP").is_none_or(Value::is_null) || spec["clusterIP"] == "" {
        match spec["clusterIPs"].get(0).cloned() {
            Some(first) => spec["clusterIP"] = first,
            None => {
                if let Some(address) = allocate_cluster_ip(&key, &allocated) {
                    spec["clusterIP"] = json!(address);
                }
            }
        }
    }
    if spec.get("clusterIPs").is_none_or(Value::is_null) {
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(spec, "ipFamilies", json!(["IPv4"]));
}

/// Standard base64 with padding (for Secret `stringData`).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..4 {
            if index <= chunk.len() {
                encoded.push(ALPHABET[((triple >> (18 - 6 * index)) & 63) as usize] as char);
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

/// Fills in the defaults of a built-in object being written. `old` is the stored object of an
/// update; `allocated` what other Services hold (only read for Services).
pub fn apply<'a>(
    resource: &Resource,
    object: &mut Value,
    old: Option<&Value>,
    allocated: impl FnOnce() -> Allocated<'a>,
) {
    let group = resource.group.as_str();
    let kind = resource.kind.as_str();
    if !object["spec"].is_object() {
        if let Some(map) = object.as_object_mut()
            && map.get("spec").is_some_and(Value::is_null)
        {
            map.remove("spec");
        }
        if !matches!((group, kind), ("", "Namespace" | "Secret")) {
            return;
        }
    }
    match (group, kind) {
        ("apps", "Deployment") => default_deployment(&mut object["spec"]),
        ("apps", "StatefulSet") => default_stateful_set(&mut object["spec"]),
        ("apps", "DaemonSet") => default_daemon_set(&mut object["spec"]),
        ("apps", "ReplicaSet") => {
            default(&mut object["spec"], "replicas", json!(1));
            default_template(&mut object["spec"]);
        }
        ("batch", "Job") => default_job(object, old.is_none()),
        ("batch", "CronJob") => default_cron_job(&mut object["spec"]),
        ("", "Pod") => default_pod(&mut object["spec"]),
        ("", "PodTemplate") => {
            if let Some(pod) = object
                .get_mut("template")
                .and_then(|template| template.get_mut("spec"))
            {
                default_pod_spec(pod);
            }
        }
        ("", "ReplicationController") => {
            default(&mut object["spec"], "replicas", json!(1));
            default_template(&mut object["spec"]);
        }
        ("", "Service") => default_service(object, old, allocated()),
        ("", "PersistentVolumeClaim") => {
            default(&mut object["spec"], "volumeMode", json!("Filesystem"));
        }
        ("", "Namespace") => {
            let name = object["metadata"]["name"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        ("", "Secret") => {
            if object.get("type").is_none() {
                object["type"] = json!("Opaque");
            }
            // `stringData` is write-only: merged into `data`, base64-encoded.
            if let Some(Value::Object(plain)) = object
                .as_object_mut()
                .and_then(|map| map.remove("stringData"))
            {
                for (key, value) in plain {
                    let text = value.as_str().unwrap_or_default().to_string();
                    object["data"][key] = json!(base64_encode(text.as_bytes()));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"hunter2!"), "aHVudGVyMiE=");
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, tag) in [
            ("nginx", Some("latest")),
            ("nginx:latest", Some("latest")),
            ("nginx:1.27", Some("1.27")),
            ("localhost:5000/app", Some("latest")),
            ("localhost:5000/app:v1", Some("v1")),
            ("app@sha256:abc", None),
            ("app:v1@sha256:abc", Some("v1")),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    fn core(kind: &str) -> Resource {
        Resource {
            group: String::new(),
            version: "v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced: true,
            status: true,
            scale: false,
            custom: false,
            names: Value::Null,
        }
    }

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn services_by_type() {
        let mut node_port = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        apply(&core("Service"), &mut node_port, None, Allocated::default);
        let spec = &node_port["spec"];
        let allocated = spec["ports"][0]["nodePort"].as_i64().unwrap_or_default();
        assert!((30000..32768).contains(&allocated), "{spec}");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        let mut updated = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        apply(
            &core("Service"),
            &mut updated,
            Some(&node_port),
            Allocated::default,
        );
        assert_eq!(updated["spec"]["ports"][0]["nodePort"], allocated, "kept");
        assert_eq!(updated["spec"]["clusterIP"], node_port["spec"]["clusterIP"]);

        let mut headless = service(json!({"clusterIP": "None", "ports": [{"port": 5432}]}));
        apply(&core("Service"), &mut headless, None, Allocated::default);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");

        let mut external =
            service(json!({"type": "ExternalName", "externalName": "db.example.com"}));
        apply(&core("Service"), &mut external, None, Allocated::default);
        assert!(external["spec"].get("clusterIP").is_none(), "{external}");
        assert!(external["spec"].get("ipFamilies").is_none(), "{external}");
        assert_eq!(external["spec"]["sessionAffinity"], "None");
    }

    #[test]
    fn bare_pods_copy_limits_into_missing_requests() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}]}});
        apply(&core("Pod"), &mut pod, None, Allocated::default);
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["resources"]["requests"],
            json!({"cpu": "100m", "memory": "1Gi"})
        );
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn the_address_index_counts_other_services_only_and_forgets_removed_ones() {
        let mut addresses = ServiceAddresses::default();
        let web = ("default".to_string(), "web".to_string());
        let api = ("default".to_string(), "api".to_string());
        let mut first = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        apply(&core("Service"), &mut first, None, || {
            Allocated::except(&addresses, web.clone())
        });
        addresses.record(&web, Some(&first));
        let address = first["spec"]["clusterIP"].as_str().unwrap_or_default();
        let port = first["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);

        // The Service itself does not count, so an update may keep what it holds...
        let own = Allocated::except(&addresses, web.clone());
        assert!(!own.has_cluster_ip(address) && !own.has_node_port(port));
        // ...another Service sees both taken and gets others.
        let other = Allocated::except(&addresses, api.clone());
        assert!(other.has_cluster_ip(address) && other.has_node_port(port));
        assert_ne!(
            allocate_cluster_ip("default/web", &other).as_deref(),
            Some(address)
        );

        // Deleted, or rewritten without them: the addresses are free again.
        addresses.record(&web, None);
        let freed = Allocated::except(&addresses, api.clone());
        assert!(!freed.has_cluster_ip(address) && !freed.has_node_port(port));
        addresses.record(&web, Some(&first));
        addresses.record(&web, Some(&service(json!({"type": "ExternalName"}))));
        let rewritten = Allocated::except(&addresses, api);
        assert!(!rewritten.has_cluster_ip(address) && !rewritten.has_node_port(port));
    }

    #[test]
    fn cluster_ips_are_deterministic_unique_and_in_range() {
        let mut allocated = Allocated::default();
        let first = allocate_cluster_ip("default/web", &allocated).unwrap_or_default();
        assert_eq!(
            Some(first.clone()),
            allocate_cluster_ip("default/web", &allocated)
        );
        allocated.cluster_ips.insert(first.clone());
        let second = allocate_cluster_ip("default/web", &allocated).unwrap_or_default();
        assert_ne!(first, second);
        for address in [&first, &second] {
            let octets: Vec<u32> = address.split('.').filter_map(|o| o.parse().ok()).collect();
            assert_eq!(octets.len(), 4, "{address}");
            assert_eq!(octets[0], 10);
            assert!((96..112).contains(&octets[1]), "{address}");
        }
    }
}
