//! Checks on a rendered object's identity that the API server would otherwise make (or worse,
//! not make) only at deploy time: names and namespaces follow the Kubernetes rules, no object
//! takes a name gitship reserves for itself, and an object is not larger than Kubernetes stores.
//!
//! The name rules are apimachinery's: a namespace is an RFC 1123 DNS label; so are the names of
//! Namespaces and Services (the API server wants an RFC 1035 label for a Service; gitship is as
//! lenient as the relaxed rule of Kubernetes 1.34). Most built-in kinds want an RFC 1123 DNS
//! subdomain. RBAC kinds and PersistentVolumes only need a valid path segment, and so do kinds
//! gitship does not know (custom resources): there only `/`, `%`, `.` and `..` are refused, which
//! would change the meaning of the request path.

use serde_json::Value;

use gitship_foundation::model::{group_of, is_cluster_scoped};

/// Which part of the object a problem is about, to place it in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
}

/// How a kind's names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    DnsLabel,
    DnsSubdomain,
    PathSegment,
}

/// API groups whose kinds are built into the API server (names are DNS subdomains unless
/// [`name_rule`] says otherwise).
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
];

fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace" | "Service") => NameRule::DnsLabel,
        ("", "PersistentVolume") | ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ if BUILT_IN_GROUPS.contains(&group) => NameRule::DnsSubdomain,
        _ => NameRule::PathSegment,
    }
}

/// RFC 1123 label: at most 63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit.
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// RFC 1123 subdomain: at most 253 characters, DNS labels joined by `.`.
pub fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// A name that can be one segment of a request path.
pub fn is_path_segment(text: &str) -> bool {
    !text.is_empty() && text != "." && text != ".." && !text.contains(['/', '%'])
}

/// Problems with `object`'s name and namespace, and whether it takes a name gitship reserves in
/// `environment` (whose namespace is `namespace`).
pub fn check_identity(object: &Value, environment: &str, namespace: &str) -> Vec<(Field, String)> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(kind), Some(name)) =
        (text("/apiVersion"), text("/kind"), text("/metadata/name"))
    else {
        return Vec::new();
    };
    let group = group_of(api_version);
    let mut problems = Vec::new();
    let rule = name_rule(group, kind);
    let valid = match rule {
        NameRule::DnsLabel => is_dns_label(name),
        NameRule::DnsSubdomain => is_dns_subdomain(name),
        NameRule::PathSegment => is_path_segment(name),
    };
    if !valid {
        let expected = match rule {
            NameRule::DnsLabel => {
                "a DNS label: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"
            }
            NameRule::DnsSubdomain => {
                "a DNS subdomain: at most 253 lowercase letters, digits, `-` and `.`, each part starting and ending with a letter or digit"
            }
            NameRule::PathSegment => "a name that is not `.` or `..` and has no `/` or `%`",
        };
        problems.push((
            Field::Name,
            format!("`{kind}`: the name `{name}` is not valid: a {kind} name must be {expected}"),
        ));
    }
    let object_namespace = text("/metadata/namespace");
    if let Some(object_namespace) = object_namespace
        && !is_dns_label(object_namespace)
    {
        problems.push((
            Field::Namespace,
            format!(
                "`{kind}`: the namespace `{object_namespace}` is not valid: a namespace must be a DNS label: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"
            ),
        ));
    }
    if gitship_foundation::model::is_reserved(environment, name)
        && !is_cluster_scoped(group, kind)
        && object_namespace == Some(namespace)
    {
        problems.push((
            Field::Name,
            format!(
                "`{kind} {namespace}/{name}` is reserved: gitship keeps its own objects of environment `{environment}` under `{}` and `{}.*` (the inventory, the deploy lock, the agent's Lease and status); give the object another name",
                gitship_foundation::model::reserved_name(environment),
                gitship_foundation::model::reserved_name(environment)
            ),
        ));
    }
    problems
}

/// One step into a rendered object: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// `spec.containers[0].resources.limits.cpu`.
pub fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// The resource quantities of `object` that the API server would refuse (`cpu: 100x`): each
/// with its path and why. Looked at: the containers' (and init and ephemeral containers')
/// `resources`, a pod's `resources` and `overhead` in every workload's pod template, a
/// PersistentVolumeClaim's `resources`, a ResourceQuota's `hard` and a LimitRange's limits.
pub fn check_quantities(object: &Value) -> Vec<(Vec<Step>, String)> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut problems = Vec::new();
    for path in quantity_maps(object) {
        let Some(Value::Object(quantities)) = lookup(object, &path) else {
            continue;
        };
        for (name, value) in quantities {
            let valid = match value {
                Value::Number(_) => true,
                // An output not known until apply: checked when it is.
                Value::String(text) => {
                    is_quantity(text) || text == gitship_foundation::model::KNOWN_AFTER_APPLY
                }
                _ => false,
            };
            if valid {
                continue;
            }
            let mut at = path.clone();
            at.push(Step::Key(name.clone()));
            let shown = match value {
                Value::String(text) => format!("`{}`", text.escape_default()),
                other => format!("{} `{other}`", crate::render::template::type_name(other)),
            };
            let message = format!(
                "`{kind}`: `{}` is {shown}, not a Kubernetes quantity (like `500m`, `2`, `1.5Gi`, `1e3`)",
                path_text(&at)
            );
            problems.push((at, message));
        }
    }
    problems
}

/// The paths of `object`'s mappings of resource quantities (see [`check_quantities`]).
fn quantity_maps(object: &Value) -> Vec<Vec<Step>> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (text("/apiVersion"), text("/kind")) else {
        return Vec::new();
    };
    let keys = |names: &[&str]| names.iter().map(|n| Step::Key(n.to_string())).collect();
    let pod_spec: Option<Vec<Step>> = match (group_of(api_version), kind) {
        ("", "Pod") => Some(keys(&["spec"])),
        ("", "PodTemplate") => Some(keys(&["template", "spec"])),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("", "ReplicationController")
        | ("batch", "Job") => Some(keys(&["spec", "template", "spec"])),
        ("batch", "CronJob") => Some(keys(&["spec", "jobTemplate", "spec", "template", "spec"])),
        _ => None,
    };
    // (path to a mapping of quantities)
    let mut maps: Vec<Vec<Step>> = Vec::new();
    if let Some(spec) = pod_spec {
        let at = |path: &[Step]| lookup(object, path);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let mut containers = spec.clone();
            containers.push(Step::Key(list.into()));
            let count = at(&containers)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for index in 0..count {
                for field in ["limits", "requests"] {
                    let mut path = containers.clone();
                    path.extend([
                        Step::Index(index),
                        Step::Key("resources".into()),
                        Step::Key(field.into()),
                    ]);
                    maps.push(path);
                }
            }
        }
        for field in [
            &["resources", "limits"][..],
            &["resources", "requests"],
            &["overhead"],
        ] {
            let mut path = spec.clone();
            path.extend(field.iter().map(|key| Step::Key(key.to_string())));
            maps.push(path);
        }
    }
    match (group_of(api_version), kind) {
        ("", "PersistentVolumeClaim") => {
            maps.push(keys(&["spec", "resources", "requests"]));
            maps.push(keys(&["spec", "resources", "limits"]));
        }
        ("", "ResourceQuota") => maps.push(keys(&["spec", "hard"])),
        ("", "LimitRange") => {
            let count = object
                .pointer("/spec/limits")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for index in 0..count {
                for field in [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ] {
                    let mut path = keys(&["spec", "limits"]);
                    path.extend([Step::Index(index), Step::Key(field.into())]);
                    maps.push(path);
                }
            }
        }
        _ => {}
    }
    maps
}

/// The value at `path` in `value`.
fn lookup<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |node, step| match step {
        Step::Key(key) => node.get(key),
        Step::Index(index) => node.get(index),
    })
}

/// Whether `text` is a Kubernetes quantity (apimachinery's grammar): a signed decimal number
/// (`1`, `1.5`, `.5`, `1.`) and a suffix: binary SI (`Ki` ... `Ei`), decimal SI (`n u m k M G T
/// P E`, or none) or a decimal exponent (`e3`, `E-2`).
pub fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let number_ok = digits > 0 && number.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exponent| exponent.strip_prefix(['+', '-']).unwrap_or(exponent))
        .is_some_and(|exponent| {
            !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
        });
    number_ok && suffix_ok
}

/// The size of `object` as compact JSON (what goes to the API server), without building it.
pub fn json_size(object: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, object);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_the_api_servers_grammar() {
        for valid in [
            "1",
            "500m",
            "1.5Gi",
            ".5",
            "1.",
            "+2",
            "-1",
            "1e3",
            "2E-2",
            "128974848",
            "0",
        ] {
            assert!(is_quantity(valid), "{valid}");
        }
        for invalid in [
            "100x", "", "m", "1.2.3", "1Kb", "1 Gi", "1e", "Gi", "1ki", "e3", "1e3.5",
        ] {
            assert!(!is_quantity(invalid), "{invalid}");
        }
    }

    #[test]
    fn bad_quantities_are_found_in_pod_templates_claims_and_quotas() {
        let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "100x", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": 2, "memory": true}}}]}}}});
        let found: Vec<String> = check_quantities(&deployment)
            .into_iter()
            .map(|(path, _)| path_text(&path))
            .collect();
        assert_eq!(
            found,
            [
                "spec.template.spec.containers[0].resources.limits.cpu",
                "spec.template.spec.containers[1].resources.requests.memory"
            ]
        );
        let claim = serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "spec": {"resources": {"requests": {"storage": "10 GB"}}}});
        let problems = check_quantities(&claim);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.contains("`10 GB`, not a Kubernetes quantity"),
            "{}",
            problems[0].1
        );
        let quota = serde_json::json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "spec": {"hard": {"pods": "10", "requests.cpu": "4x"}}});
        assert_eq!(check_quantities(&quota).len(), 1);
        let cron = serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "1u"}}}]}}}}}});
        assert!(check_quantities(&cron).is_empty());
    }
    use serde_json::json;

    fn check(api_version: &str, kind: &str, name: &str, namespace: Option<&str>) -> Vec<String> {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        check_identity(&object, "staging", "shop-staging")
            .into_iter()
            .map(|(_, message)| message)
            .collect()
    }

    #[test]
    fn names_follow_the_kubernetes_rules() {
        assert!(check("v1", "ConfigMap", "app.config-1", Some("shop")).is_empty());
        assert!(
            check("v1", "ConfigMap", "Invalid_Name!!", Some("shop"))[0].contains(
                "the name `Invalid_Name!!` is not valid: a ConfigMap name must be a DNS subdomain"
            )
        );
        assert!(!check("v1", "ConfigMap", "../../api/v1/secrets", Some("shop")).is_empty());
        assert!(!check("v1", "Service", "a.b", Some("shop")).is_empty());
        assert!(check("v1", "Service", "1-web", Some("shop")).is_empty());
        assert!(!check("v1", "Namespace", "Shop", None).is_empty());
        assert!(!check("apps/v1", "Deployment", &"a".repeat(254), Some("shop")).is_empty());
        // RBAC allows path-segment names such as `system:controller:x`.
        let rbac = "rbac.authorization.k8s.io/v1";
        assert!(check(rbac, "ClusterRole", "system:controller:Foo", None).is_empty());
        assert!(!check(rbac, "ClusterRole", "..", None).is_empty());
        assert!(!check(rbac, "Role", "a/b", Some("shop")).is_empty());
        assert!(!check(rbac, "Role", "a%2F", Some("shop")).is_empty());
        // Unknown kinds: only what breaks the request path.
        assert!(check("example.com/v1", "Widget", "My_Widget", Some("shop")).is_empty());
        assert!(!check("example.com/v1", "Widget", "../x", Some("shop")).is_empty());
        // Namespaces are DNS labels.
        assert!(
            check("v1", "ConfigMap", "a", Some("Bad_NS"))[0]
                .contains("the namespace `Bad_NS` is not valid")
        );
        assert!(!check("v1", "ConfigMap", "a", Some("a/../b")).is_empty());
    }

    #[test]
    fn gitship_names_are_reserved() {
        assert_eq!(
            check("v1", "ConfigMap", "gitship-staging", Some("shop-staging")),
            [
                "`ConfigMap shop-staging/gitship-staging` is reserved: gitship keeps its own objects of environment `staging` under `gitship-staging` and `gitship-staging.*` (the inventory, the deploy lock, the agent's Lease and status); give the object another name"
            ]
        );
        assert_eq!(
            check(
                "coordination.k8s.io/v1",
                "Lease",
                "gitship-staging",
                Some("shop-staging")
            )
            .len(),
            1
        );
        // Elsewhere, or for another environment, or another kind, the name is free.
        assert!(check("v1", "ConfigMap", "gitship-staging", Some("other")).is_empty());
        assert!(
            check(
                "v1",
                "ConfigMap",
                "gitship-production",
                Some("shop-staging")
            )
            .is_empty()
        );
        // One prefix rule, whatever the kind: the agent's Lease and status, and later names.
        for (api_version, kind) in [
            ("coordination.k8s.io/v1", "Lease"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
        ] {
            assert_eq!(
                check(
                    api_version,
                    kind,
                    "gitship-staging.agent",
                    Some("shop-staging")
                )
                .len(),
                1,
                "{kind}"
            );
        }
        assert_eq!(
            check("v1", "Secret", "gitship-staging", Some("shop-staging")).len(),
            1
        );
        assert!(check("v1", "Secret", "gitship-staging-web", Some("shop-staging")).is_empty());
    }

    #[test]
    fn json_size_counts_compact_json() {
        let object = json!({"a": [1, "x"]});
        assert_eq!(json_size(&object), object.to_string().len());
    }
}
