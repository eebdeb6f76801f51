//! The REST semantics of the API server: routing of resource paths, GET/LIST/POST/PUT/PATCH/
//! DELETE, the write pipeline (system metadata, defaults, managed fields, generation,
//! resourceVersion, no-op detection, `dryRun=All`), subresources `status` and `scale`, and
//! deletion with finalizers, cascading to dependents and namespace termination.

use crate::defaults;
use crate::errors::ApiError;
use crate::events;
use crate::immutable;
use crate::managed::{self, Scope};
use crate::registry::Resource;
use crate::schema::{self, Node};
use crate::selectors::Selector;
use crate::store::{EventType, ObjectKey, Store};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A parsed HTTP request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: String,
    /// Decoded query parameters (last value wins).
    pub query: HashMap<String, String>,
    /// `Content-Type` without parameters.
    pub content_type: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// `Accept`.
    pub accept: String,
    /// Request body.
    pub body: bytes::Bytes,
}

impl ApiRequest {
    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// Whether `dryRun=All` was requested.
    pub fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The field manager: `fieldManager`, else the user agent's program name (as a real server).
    fn manager(&self) -> String {
        match self.param("fieldManager") {
            Some(manager) => manager.to_string(),
            None => self
                .user_agent
                .split('/')
                .next()
                .filter(|name| !name.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    /// The body as JSON: JSON or YAML, or for built-in kinds Kubernetes protobuf (what kubectl's
    /// imperative `create` commands send).
    fn json_body(&self, resource: &Resource) -> Result<Value, ApiError> {
        if self.content_type.contains("protobuf") {
            if resource.custom {
                return Err(ApiError::unsupported_media_type(
                    "application/json, application/yaml",
                ));
            }
            return crate::protobuf::decode(&self.body)
                .map_err(|error| crate::protobuf::undecodable(resource, &self.body, &error));
        }
        parse_document(&self.body)
    }
}

/// Parses a JSON or YAML document.
pub fn parse_document(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(value);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    let documents = yaml_rust2::YamlLoader::load_from_str(text)
        .map_err(|error| ApiError::bad_request(format!("error decoding YAML: {error}")))?;
    Ok(documents.first().map(yaml_to_json).unwrap_or(Value::Null))
}

fn yaml_to_json(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Yaml::Integer(number) => json!(number),
        Yaml::String(text) => json!(text),
        Yaml::Boolean(flag) => json!(flag),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(text) => text.clone(),
                    Yaml::Integer(number) => number.to_string(),
                    Yaml::Boolean(flag) => flag.to_string(),
                    Yaml::Real(text) => text.clone(),
                    _ => continue,
                };
                map.insert(key, yaml_to_json(value));
            }
            Value::Object(map)
        }
        _ => Value::Null,
    }
}

/// The object a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub resource: Resource,
    /// The namespace in the path.
    pub namespace: Option<String>,
    /// The object name in the path.
    pub name: Option<String>,
    /// The subresource in the path.
    pub subresource: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> ObjectKey {
        (
            if self.resource.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    fn scope(&self) -> Scope {
        match self.subresource.as_deref() {
            Some("status") => Scope::Status,
            Some("scale") => Scope::Scale,
            _ => Scope::Main {
                has_status: self.resource.status,
            },
        }
    }
}

/// Resolves `api/v1/...` or `apis/<group>/<version>/...` (already split) to a target.
pub fn route(store: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let registry = store.registry();
    if let [first, namespace, plural, more @ ..] = rest
        && *first == "namespaces"
        && more.len() <= 2
        && let Some(resource) = registry
            .by_plural(group, version, plural)
            .filter(|r| r.namespaced)
    {
        return Ok(Target {
            resource,
            namespace: Some(namespace.to_string()),
            name: more.first().map(|name| name.to_string()),
            subresource: more.get(1).map(|sub| sub.to_string()),
        });
    }
    let [plural, more @ ..] = rest else {
        return Err(ApiError::path_not_found());
    };
    if more.len() > 2 {
        return Err(ApiError::path_not_found());
    }
    let resource = registry
        .by_plural(group, version, plural)
        .ok_or_else(ApiError::path_not_found)?;
    if resource.namespaced && !more.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let target = Target {
        resource,
        namespace: None,
        name: more.first().map(|name| name.to_string()),
        subresource: more.get(1).map(|sub| sub.to_string()),
    };
    Ok(target)
}

/// A successful answer.
pub enum Answer {
    /// A JSON body with a status code.
    Json(u16, Value),
}

/// A stored object as the resource's API shows it (Events have two views of one object).
fn view(resource: &Resource, object: &Value) -> Value {
    if resource.is_events_v1() {
        events::v1_view(object)
    } else if resource.is_core_events() {
        events::core_view(object)
    } else {
        object.clone()
    }
}

fn with_type(resource: &Resource, object: &Value) -> Value {
    let mut object = view(resource, object);
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
    object
}

/// An object as a LIST (or a DELETE of a collection) returns it: a real server leaves
/// `apiVersion` and `kind` off the items of built-in kinds (the list carries them), and keeps
/// them on custom resources, which it serves as unstructured JSON.
fn list_item(resource: &Resource, object: &Value) -> Value {
    if resource.custom {
        return with_type(resource, object);
    }
    let mut object = view(resource, object);
    if let Some(map) = object.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

fn scale_view(resource: &Resource, object: &Value) -> Value {
    let selector = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let metadata = &object["metadata"];
    let _ = resource;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"], "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Handles a request for a resource path (everything except watches).
pub fn handle(
    store: &mut Store,
    target: &Target,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    if let Some(subresource) = &target.subresource {
        let allowed = (subresource == "status" && target.resource.status)
            || (subresource == "scale" && target.resource.scale);
        if !allowed {
            return Err(ApiError::path_not_found());
        }
    }
    if target.resource.is_events_v1() && request.method != "GET" {
        return events_v1_write(store, target, request);
    }
    let answer = match (request.method.as_str(), &target.name) {
        ("GET", Some(name)) => get(store, target, name, request),
        ("GET", None) => list(store, target, request),
        ("POST", None) => create(store, target, request),
        ("PUT", Some(name)) => update(store, target, name, request),
        ("PATCH", Some(name)) => patch(store, target, name, request),
        ("DELETE", Some(name)) => delete(store, target, name, request),
        ("DELETE", None) => delete_collection(store, target, request),
        _ => Err(ApiError::method_not_allowed()),
    }?;
    // Writes answer with the stored object: show Events as their API does.
    let Answer::Json(code, value) = answer;
    if target.resource.is_core_events() && value["kind"] == "Event" {
        return Ok(Answer::Json(code, events::core_view(&value)));
    }
    Ok(Answer::Json(code, value))
}

fn get(
    store: &Store,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let object = store
        .get(&target.resource.storage_key(), &target.key(name))
        .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
    if target.subresource.as_deref() == Some("scale") {
        return Ok(Answer::Json(200, scale_view(&target.resource, &object)));
    }
    if request.wants_table() {
        let version = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let typed = with_type(&target.resource, &object);
        return Ok(Answer::Json(
            200,
            crate::table::table(
                &target.resource,
                &[typed],
                &version,
                None,
                request.param("includeObject").unwrap_or("Metadata"),
            ),
        ));
    }
    Ok(Answer::Json(200, with_type(&target.resource, &object)))
}

/// Parses `labelSelector` and `fieldSelector`.
pub fn selectors(request: &ApiRequest) -> Result<(Selector, Selector), ApiError> {
    let labels = Selector::parse(request.param("labelSelector").unwrap_or(""))
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let fields = Selector::parse_fields(request.param("fieldSelector").unwrap_or(""))
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok((labels, fields))
}

fn encode_continue(key: &ObjectKey) -> String {
    format!("{}/{}", key.0, key.1)
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<ObjectKey> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(token.get(index..index + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (namespace, name) = text.split_once('/')?;
    Some((namespace.to_string(), name.to_string()))
}

fn list(store: &Store, target: &Target, request: &ApiRequest) -> Result<Answer, ApiError> {
    let (labels, fields) = selectors(request)?;
    let limit = request
        .param("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .filter(|limit| *limit > 0);
    let start = match request.param("continue") {
        Some(token) => Some(
            decode_continue(token)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
        ),
        None => None,
    };
    let namespace = if target.resource.namespaced {
        target.namespace.as_deref()
    } else {
        None
    };
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    for object in store.list(&target.resource.storage_key(), namespace) {
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        if start.as_ref().is_some_and(|start| &key <= start) {
            continue;
        }
        if !labels.matches_labels(&object) || !fields.matches_fields(&object) {
            continue;
        }
        if limit.is_some_and(|limit| items.len() >= limit) {
            if next.is_none() {
                next = items.last().map(|last: &Value| {
                    encode_continue(&(
                        last["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        last["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ))
                });
            }
            remaining += 1;
            continue;
        }
        items.push(if request.wants_table() {
            // A table row's object (includeObject=Object) is a whole, typed object.
            with_type(&target.resource, &object)
        } else {
            list_item(&target.resource, &object)
        });
    }
    let mut metadata = json!({"resourceVersion": store.resource_version.to_string()});
    if request.wants_table() {
        let version = store.resource_version.to_string();
        return Ok(Answer::Json(
            200,
            crate::table::table(
                &target.resource,
                &items,
                &version,
                next.as_deref(),
                request.param("includeObject").unwrap_or("Metadata"),
            ),
        ));
    }
    if let Some(next) = next {
        metadata["continue"] = json!(next);
        // A real server counts the rest only when it need not filter it.
        if request.param("labelSelector").is_none() && request.param("fieldSelector").is_none() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(Answer::Json(
        200,
        json!({
            "kind": format!("{}List", target.resource.kind),
            "apiVersion": target.resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    ))
}

fn require_namespace(store: &Store, target: &Target) -> Result<(), ApiError> {
    if !target.resource.namespaced {
        return Ok(());
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let namespaces = Resource {
        group: String::new(),
        version: "v1".into(),
        plural: "namespaces".into(),
        singular: "namespace".into(),
        kind: "Namespace".into(),
        namespaced: false,
        status: true,
        scale: false,
        custom: false,
        names: Value::Null,
    };
    match store.get(
        &namespaces.storage_key(),
        &(String::new(), namespace.clone()),
    ) {
        None => Err(ApiError::not_found(&namespaces, &namespace)),
        Some(object) if object["metadata"].get("deletionTimestamp").is_some() => {
            Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                target.resource.qualified()
            )))
        }
        Some(_) => Ok(()),
    }
}

fn check_type(target: &Target, object: &Value, name: &str) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    if object["apiVersion"].as_str().is_none_or(str::is_empty) {
        causes.push(("apiVersion", "Required value: must not be empty"));
    }
    if object["kind"].as_str().is_none_or(str::is_empty) {
        causes.push(("kind", "Required value: must not be empty"));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &target.resource.qualified_kind(),
            name,
            &causes,
        ));
    }
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    if kind != target.resource.kind || api_version != target.resource.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind} does not match {}",
            target.resource.api_version(),
            target.resource.kind
        )));
    }
    Ok(())
}

fn check_namespace(target: &Target, object: &Value) -> Result<(), ApiError> {
    if let (true, Some(body_namespace), Some(path_namespace)) = (
        target.resource.namespaced,
        object["metadata"]["namespace"].as_str(),
        target.namespace.as_deref(),
    ) && !body_namespace.is_empty()
        && body_namespace != path_namespace
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|byte| ALPHABET[*byte as usize % ALPHABET.len()] as char)
        .collect()
}

fn create(store: &mut Store, target: &Target, request: &ApiRequest) -> Result<Answer, ApiError> {
    let mut object = request.json_body(&target.resource)?;
    if !object.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    let mut name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if name.is_empty()
        && let Some(prefix) = object["metadata"]["generateName"]
            .as_str()
            .filter(|prefix| !prefix.is_empty())
    {
        name = format!("{prefix}{}", random_suffix());
        object["metadata"]["name"] = json!(name);
    }
    check_type(target, &object, &name)?;
    decode(target, &mut object, request).map_err(|error| error.bad_request(&target.resource))?;
    if name.is_empty() {
        return Err(ApiError::invalid(
            &target.resource.qualified_kind(),
            "",
            &[(
                "metadata.name",
                "Required value: name or generateName is required",
            )],
        ));
    }
    check_namespace(target, &object)?;
    if store
        .get(&target.resource.storage_key(), &target.key(&name))
        .is_some()
    {
        return Err(ApiError::already_exists(&target.resource, &name));
    }
    require_namespace(store, target)?;
    let written = write(
        store,
        target,
        PendingWrite {
            name: &name,
            old: None,
            new: object,
            manager: &request.manager(),
            managed_done: false,
            dry_run: request.dry_run(),
        },
    )?;
    Ok(Answer::Json(201, written))
}

fn check_name(object: &Value, name: &str) -> Result<(), ApiError> {
    match object["metadata"]["name"].as_str() {
        Some(body_name) if !body_name.is_empty() && body_name != name => {
            Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )))
        }
        _ => Ok(()),
    }
}

fn check_resource_version(
    target: &Target,
    name: &str,
    object: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    if let Some(version) = object["metadata"]["resourceVersion"]
        .as_str()
        .filter(|version| !version.is_empty())
        && Some(version) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::modified(&target.resource, name));
    }
    Ok(())
}

/// Builds the new full object from a written view of the subresource.
fn from_view(target: &Target, old: &Value, written: Value) -> Result<Value, ApiError> {
    match target.subresource.as_deref() {
        Some("status") => {
            let mut new = old.clone();
            new["status"] = written.get("status").cloned().unwrap_or(Value::Null);
            if new["status"].is_null()
                && let Some(map) = new.as_object_mut()
            {
                map.remove("status");
            }
            Ok(new)
        }
        Some("scale") => {
            let replicas = written["spec"]["replicas"]
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("spec.replicas is required in a Scale"))?;
            let mut new = old.clone();
            new["spec"]["replicas"] = json!(replicas);
            Ok(new)
        }
        _ => Ok(written),
    }
}

fn answer_view(target: &Target, object: Value) -> Value {
    if target.subresource.as_deref() == Some("scale") {
        scale_view(&target.resource, &object)
    } else {
        object
    }
}

fn update(
    store: &mut Store,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let mut body = request.json_body(&target.resource)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    if target.subresource.is_none() {
        check_type(target, &body, name)?;
    }
    decode(target, &mut body, request).map_err(|error| error.bad_request(&target.resource))?;
    check_name(&body, name)?;
    let old = store
        .get(&target.resource.storage_key(), &target.key(name))
        .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
    check_resource_version(target, name, &body, &old)?;
    if target.subresource.is_none() {
        check_namespace(target, &body)?;
    }
    replace_with_view(store, target, name, old, body, request)
}

/// Store the object a PUT or PATCH produced (`view` is what the client sees of it) and answer
/// with it: the shared tail of update and the non-apply patches.
fn replace_with_view(
    store: &mut Store,
    target: &Target,
    name: &str,
    old: Arc<Value>,
    view: Value,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let new = from_view(target, &old, view)?;
    let written = write(
        store,
        target,
        PendingWrite {
            name,
            old: Some(old),
            new,
            manager: &request.manager(),
            managed_done: false,
            dry_run: request.dry_run(),
        },
    )?;
    Ok(Answer::Json(200, answer_view(target, written)))
}

fn patch(
    store: &mut Store,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let content_type = request.content_type.as_str();
    if content_type == "application/apply-patch+yaml" {
        return apply(store, target, name, request);
    }
    let strategic = content_type == "application/strategic-merge-patch+json";
    let known = strategic
        || matches!(
            content_type,
            "application/merge-patch+json" | "application/json-patch+json"
        );
    if target.resource.custom && (strategic || !known) {
        // Custom resources have no strategic merge patch.
        return Err(ApiError::unsupported_media_type(
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    if !known {
        return Err(ApiError::unsupported_patch_type());
    }
    let old = store
        .get(&target.resource.storage_key(), &target.key(name))
        .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
    let view = answer_view(target, with_type(&target.resource, &old));
    let body = request.json_body(&target.resource)?;
    let mut view = patched_view(target, name, view, content_type, &request.body)?;
    if let Err(error) = decode(target, &mut view, request) {
        // A real server quotes the strategic merge patch as Go prints it, the other patches'
        // result as JSON.
        let quoted = if strategic {
            go_value(&body)
        } else {
            view.to_string()
        };
        return Err(ApiError::invalid_patch(&quoted, &error.message()));
    }
    check_resource_version(target, name, &view, &old)?;
    replace_with_view(store, target, name, old, view, request)
}

/// Applies a merge, JSON or strategic merge patch (`content_type`, `body`) to what the client
/// sees of an object.
pub fn patched_view(
    target: &Target,
    name: &str,
    mut view: Value,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body = parse_document(body)?;
    match content_type {
        "application/merge-patch+json" => json_patch::merge(&mut view, &body),
        "application/json-patch+json" => {
            let operations: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|error| ApiError::bad_request(format!("invalid JSON patch: {error}")))?;
            json_patch::patch(&mut view, &operations).map_err(|error| {
                ApiError::invalid(
                    &target.resource.qualified_kind(),
                    name,
                    &[("patch", &format!("Invalid value: {error}"))],
                )
            })?;
        }
        _ => {
            let node = Node::root(&target.resource.api_version(), &target.resource.kind);
            crate::strategic::apply(&mut view, &body, node);
        }
    }
    Ok(view)
}

fn apply(
    store: &mut Store,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let Some(manager) = request.param("fieldManager").map(str::to_string) else {
        return Err(ApiError::invalid_options(
            "PatchOptions",
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    };
    let force = request.param("force") == Some("true");
    let mut config = parse_document(&request.body)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    let old = store.get(&target.resource.storage_key(), &target.key(name));
    if target.subresource.as_deref() == Some("scale") {
        let old = old
            .as_ref()
            .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
        let replicas = config["spec"]["replicas"].clone();
        config = json!({
            "apiVersion": target.resource.api_version(), "kind": target.resource.kind,
            "metadata": {"name": name}, "spec": {"replicas": replicas},
        });
        let _ = old;
    } else {
        check_type(target, &config, name)?;
        check_name(&config, name)?;
        check_namespace(target, &config)?;
    }
    if let Some(old) = &old {
        check_resource_version(target, name, &config, old)?;
    }
    let created = old.is_none();
    if created && target.subresource.is_some() {
        return Err(ApiError::not_found(&target.resource, name));
    }
    check_applied_fields(target, name, &config)?;
    // Conflicts come before conversion errors; the namespace is checked (by admission) last.
    // (Undeclared fields are refused above, so only the quantities are left to convert.)
    let converted = if target.subresource.as_deref() == Some("scale") || target.resource.custom {
        Ok(())
    } else {
        defaults::canonicalize_quantities(&target.resource, &mut config)
            .map_err(Undecodable::Quantity)
    };
    let mut merged = managed::apply(old.as_deref(), &config, &manager, force, target.scope())
        .map_err(|conflicts| ApiError::apply_conflicts(&target.resource, name, &conflicts))?;
    if let Err(error) = converted {
        return Err(unconvertible(&target.resource, &merged, name, &error));
    }
    if created {
        require_namespace(store, target)?;
    }
    merged["metadata"]["name"] = json!(name);
    let written = write(
        store,
        target,
        PendingWrite {
            name,
            old,
            new: merged,
            manager: &manager,
            managed_done: true,
            dry_run: request.dry_run(),
        },
    )?;
    Ok(Answer::Json(
        if created { 201 } else { 200 },
        answer_view(target, written),
    ))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Why a body does not decode into the API type of its kind.
enum Undecodable {
    /// An invalid `resource.Quantity`.
    Quantity(crate::quantity::QuantityError),
    /// Fields the schema does not declare (paths like `spec.replicaz`), under
    /// `fieldValidation=Strict`.
    UnknownFields(Vec<String>),
}

impl Undecodable {
    /// The decoder's words, as a real server quotes them.
    fn message(&self) -> String {
        match self {
            Undecodable::Quantity(error) => error.to_string(),
            Undecodable::UnknownFields(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|field| format!("unknown field \"{field}\""))
                    .collect();
                format!("strict decoding error: {}", fields.join(", "))
            }
        }
    }

    /// The 400 a create or update gets: `X in version "v1" cannot be handled as a X: ...`.
    fn bad_request(&self, resource: &Resource) -> ApiError {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            resource.kind,
            resource.version,
            resource.kind,
            self.message()
        ))
    }
}

/// Decodes a written object as the real server decodes a body into the API type: quantities
/// of built-in kinds canonicalised (an invalid one fails), undeclared fields refused under
/// `fieldValidation=Strict` and dropped otherwise. Subresource views are left alone.
fn decode(target: &Target, object: &mut Value, request: &ApiRequest) -> Result<(), Undecodable> {
    if target.subresource.as_deref() == Some("scale") || target.resource.custom {
        return Ok(());
    }
    defaults::canonicalize_quantities(&target.resource, object).map_err(Undecodable::Quantity)?;
    if target.subresource.is_some() {
        return Ok(());
    }
    let node = Node::root(&target.resource.api_version(), &target.resource.kind);
    let unknown = schema::unknown_fields(object, node);
    if unknown.is_empty() {
        return Ok(());
    }
    if request.param("fieldValidation") == Some("Strict") {
        return Err(Undecodable::UnknownFields(unknown));
    }
    schema::prune_unknown(object, node);
    Ok(())
}

/// `(namespace/name; group/version, Kind=Kind)` as server-side apply's errors name an object.
fn apply_subject(resource: &Resource, object: &Value, name: &str) -> String {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    format!(
        "({namespace}/{name}; {}/{}, Kind={})",
        resource.group, resource.version, resource.kind
    )
}

/// Server-side apply refuses any field the schema does not declare, whatever
/// `fieldValidation` says: a 500 `failed to create typed patch object`, as on a real server.
fn check_applied_fields(target: &Target, name: &str, config: &Value) -> Result<(), ApiError> {
    if target.subresource.is_some() || target.resource.custom {
        return Ok(());
    }
    let node = Node::root(&target.resource.api_version(), &target.resource.kind);
    let unknown = schema::unknown_fields(config, node);
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|field| format!(".{field}: field not declared in schema"))
        .collect();
    Err(ApiError::apply_failed(format!(
        "failed to create typed patch object {}: {}",
        apply_subject(&target.resource, config, name),
        fields.join(", ")
    )))
}

/// The 500 of a server-side apply whose merged object does not convert (an invalid quantity).
fn unconvertible(resource: &Resource, merged: &Value, name: &str, error: &Undecodable) -> ApiError {
    ApiError::apply_failed(format!(
        "failed to convert new object {} to proper version: unable to convert unstructured object to {}/{}, Kind={}: {}",
        apply_subject(resource, merged, name),
        resource.group,
        resource.version,
        resource.kind,
        error.message()
    ))
}

/// Renders a JSON value as Go's `%v` renders the decoded `map[string]interface{}` (sorted
/// keys, `map[k:v]`, `[a b]`): how a real server quotes a strategic merge patch in errors.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .iter()
                .map(|key| format!("{key}:{}", go_value(&map[key.as_str()])))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// The cluster IPs and node ports held by every Service except `name` in the target namespace.
fn services_allocated<'a>(
    store: &'a Store,
    target: &Target,
    name: &str,
) -> defaults::Allocated<'a> {
    defaults::Allocated::except(&store.service_addresses, target.key(name))
}

fn generation_changed(resource: &Resource, old: &Value, new: &Value) -> bool {
    let ignored =
        |key: &String| matches!(key.as_str(), "metadata" | "status" | "apiVersion" | "kind");
    let empty = serde_json::Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let changed = old_map
        .iter()
        .filter(|(key, _)| !ignored(key))
        .any(|(key, value)| new_map.get(key) != Some(value))
        || new_map
            .keys()
            .filter(|key| !ignored(key))
            .any(|key| !old_map.contains_key(key));
    changed
        || (resource.kind == "Deployment"
            && old["metadata"]["annotations"] != new["metadata"]["annotations"])
}

/// One object on its way through [`write`].
struct PendingWrite<'a> {
    /// The object's name.
    name: &'a str,
    /// The stored object, `None` on create.
    old: Option<Arc<Value>>,
    /// The object as the client wants it.
    new: Value,
    /// The field manager of the write.
    manager: &'a str,
    /// Whether managed fields are already up to date (server-side apply tracks them itself).
    managed_done: bool,
    /// `dryRun=All`: run the pipeline but store nothing.
    dry_run: bool,
}

/// The write pipeline shared by create, update, patch and apply.
fn write(store: &mut Store, target: &Target, pending: PendingWrite) -> Result<Value, ApiError> {
    let PendingWrite {
        name,
        old,
        mut new,
        manager,
        managed_done,
        dry_run,
    } = pending;
    let resource = &target.resource;
    new["apiVersion"] = json!(resource.api_version());
    new["kind"] = json!(resource.kind);
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    let metadata = &mut new["metadata"];
    metadata["name"] = json!(name);
    match (&target.namespace, resource.namespaced) {
        (Some(namespace), true) => metadata["namespace"] = json!(namespace),
        _ => {
            if let Some(map) = metadata.as_object_mut() {
                map.remove("namespace");
            }
        }
    }
    let system = [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ];
    match &old {
        Some(old) => {
            for field in system {
                match old["metadata"].get(field) {
                    Some(value) => metadata[field] = value.clone(),
                    None => {
                        if let Some(map) = metadata.as_object_mut() {
                            map.remove(field);
                        }
                    }
                }
            }
        }
        None => {
            if let Some(map) = metadata.as_object_mut() {
                for field in system {
                    map.remove(field);
                }
            }
            metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
            metadata["creationTimestamp"] = json!(now());
            if resource.tracks_generation() {
                metadata["generation"] = json!(1);
            }
        }
    }
    if target.subresource.is_none() && resource.status {
        match old.as_ref().and_then(|old| old.get("status")) {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        if old.is_none() && resource.kind == "Namespace" && resource.group.is_empty() {
            new["status"] = json!({"phase": "Active"});
        }
    }
    if !resource.custom {
        defaults::canonicalize_quantities(resource, &mut new)
            .map_err(|error| Undecodable::Quantity(error).bad_request(resource))?;
        defaults::apply(resource, &mut new, old.as_deref(), || {
            services_allocated(store, target, name)
        });
    }
    if target.subresource.is_none()
        && let Some(old) = &old
    {
        refuse(resource, name, &immutable::violations(resource, old, &new))?;
    }
    if target.subresource.is_none() {
        refuse(resource, name, &immutable::invalid_values(resource, &new))?;
        let missing =
            schema::missing_required(&new, Node::root(&resource.api_version(), &resource.kind));
        if !missing.is_empty() {
            let causes: Vec<(&str, &str)> = missing
                .iter()
                .map(|field| (field.as_str(), "Required value"))
                .collect();
            return Err(ApiError::invalid(&resource.qualified_kind(), name, &causes));
        }
    }
    if !managed_done {
        managed::track_update(old.as_deref(), &mut new, manager, target.scope());
    }
    if old.is_none()
        && resource.kind == "Namespace"
        && resource.group.is_empty()
        && (new["spec"].is_object() || new["spec"].is_null())
    {
        // The namespace strategy adds the `kubernetes` finalizer, owned by no manager.
        new["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if let Some(old) = &old {
        if resource.tracks_generation() && generation_changed(resource, old, &new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if **old == new {
            return Ok((**old).clone());
        }
    }
    let finalizers_done = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    let deleting = new["metadata"].get("deletionTimestamp").is_some() && finalizers_done;
    if dry_run {
        return Ok(new);
    }
    let key = target.key(name);
    if deleting {
        return Ok(store.commit(resource, key, new, EventType::Deleted));
    }
    let kind = if old.is_some() {
        EventType::Modified
    } else {
        EventType::Added
    };
    Ok(store.commit(resource, key, new, kind))
}

fn delete_options(request: &ApiRequest) -> Value {
    if request.body.is_empty() {
        json!({})
    } else {
        parse_document(&request.body).unwrap_or_else(|_| json!({}))
    }
}

/// Deletes one object (honouring finalizers) and, unless orphaning, its dependents.
fn delete_object(
    store: &mut Store,
    resource: &Resource,
    key: ObjectKey,
    orphan: bool,
) -> Option<Value> {
    let old = store.get(&resource.storage_key(), &key)?;
    if old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|finalizers| !finalizers.is_empty())
    {
        if old["metadata"].get("deletionTimestamp").is_some() {
            return Some((*old).clone());
        }
        let mut marked = (*old).clone();
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        return Some(store.commit(resource, key, marked, EventType::Modified));
    }
    let uid = old["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let custom_resources = if resource.group == "apiextensions.k8s.io"
        && resource.plural == "customresourcedefinitions"
    {
        crate::registry::custom_resources(&old)
    } else {
        Vec::new()
    };
    store.commit(resource, key, (*old).clone(), EventType::Deleted);
    // Deleting a CRD deletes all its custom resources.
    if let Some(custom) = custom_resources.first() {
        let storage_key = custom.storage_key();
        for (_, object) in store.matching(|candidate, _, _| candidate == &storage_key) {
            let object_key = (
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            store.commit(custom, object_key, (*object).clone(), EventType::Deleted);
        }
    }
    if !orphan && !uid.is_empty() {
        let dependents: Vec<((String, String), Arc<Value>)> = store
            .matching(|_, _, text| text.contains(uid.as_str()))
            .into_iter()
            .filter(|(_, object)| {
                object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|owners| owners.iter().any(|owner| owner["uid"] == uid.as_str()))
            })
            .collect();
        for (storage_key, dependent) in dependents {
            let Some(dependent_resource) = store.registry().by_storage_key(&storage_key) else {
                continue;
            };
            let dependent_key = (
                dependent["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                dependent["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            delete_object(store, &dependent_resource, dependent_key, false);
        }
    }
    None
}

/// Removes everything in a terminating namespace, then the namespace.
pub fn finish_namespace(store: &mut Store, namespace: &str) {
    let contents = store.matching(|_, key, _| key.0 == namespace);
    for (storage_key, object) in contents {
        let Some(resource) = store.registry().by_storage_key(&storage_key) else {
            continue;
        };
        let key = (
            namespace.to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        if store.contains(&storage_key, &key) {
            store.commit(&resource, key, (*object).clone(), EventType::Deleted);
        }
    }
    let namespaces = store
        .registry()
        .by_storage_key(&(String::new(), "namespaces".into()));
    if let Some(namespaces) = namespaces
        && let Some(object) = store.get(
            &namespaces.storage_key(),
            &(String::new(), namespace.to_string()),
        )
    {
        store.commit(
            &namespaces,
            (String::new(), namespace.to_string()),
            (*object).clone(),
            EventType::Deleted,
        );
    }
}

fn delete(
    store: &mut Store,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let resource = &target.resource;
    let key = target.key(name);
    let old = store
        .get(&resource.storage_key(), &key)
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let options = delete_options(request);
    if let Some(uid) = options["preconditions"]["uid"].as_str()
        && old["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::modified(resource, name));
    }
    if let Some(version) = options["preconditions"]["resourceVersion"].as_str()
        && old["metadata"]["resourceVersion"].as_str() != Some(version)
    {
        return Err(ApiError::modified(resource, name));
    }
    let policy = request
        .param("propagationPolicy")
        .or_else(|| options["propagationPolicy"].as_str())
        .unwrap_or("Background");
    let dry_run = request.dry_run()
        || options["dryRun"]
            .as_array()
            .is_some_and(|modes| modes.iter().any(|mode| mode == "All"));
    let mut details = crate::errors::details(name, &resource.group, &resource.plural);
    details["uid"] = old["metadata"]["uid"].clone();
    let success = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details,
    });
    if resource.group.is_empty() && resource.plural == "namespaces" {
        let mut terminating = (*old).clone();
        if terminating["metadata"].get("deletionTimestamp").is_none() {
            terminating["metadata"]["deletionTimestamp"] = json!(now());
        }
        terminating["status"] = json!({"phase": "Terminating"});
        if dry_run {
            return Ok(Answer::Json(200, with_type(resource, &terminating)));
        }
        let committed = store.commit(resource, key, terminating, EventType::Modified);
        return Ok(Answer::Json(200, with_type(resource, &committed)));
    }
    if dry_run {
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|finalizers| !finalizers.is_empty());
        return Ok(Answer::Json(
            200,
            if has_finalizers {
                with_type(resource, &old)
            } else {
                success
            },
        ));
    }
    match delete_object(store, resource, key, policy == "Orphan") {
        Some(pending) => Ok(Answer::Json(200, with_type(resource, &pending))),
        None => Ok(Answer::Json(200, success)),
    }
}

fn delete_collection(
    store: &mut Store,
    target: &Target,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let (labels, fields) = selectors(request)?;
    let namespace = if target.resource.namespaced {
        target.namespace.as_deref()
    } else {
        None
    };
    let matching: Vec<Arc<Value>> = store
        .list(&target.resource.storage_key(), namespace)
        .into_iter()
        .filter(|object| labels.matches_labels(object) && fields.matches_fields(object))
        .collect();
    let mut items = Vec::new();
    for object in matching {
        items.push(list_item(&target.resource, &object));
        if request.dry_run() {
            continue;
        }
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        delete_object(store, &target.resource, key, false);
    }
    Ok(Answer::Json(
        200,
        json!({"kind": format!("{}List", target.resource.kind), "apiVersion": target.resource.api_version(),
            "metadata": {"resourceVersion": store.resource_version.to_string()}, "items": items}),
    ))
}

/// Applies `with_type` for watch output.
pub fn typed(resource: &Resource, object: &Value) -> Value {
    with_type(resource, object)
}

/// Server-side apply of one object without HTTP (for [`crate::SimHandle::apply`]): the same
/// code path as `PATCH` with `application/apply-patch+yaml`.
pub fn apply_object(
    store: &mut Store,
    object: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let resource = store.registry().by_kind(api_version, kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no resource for apiVersion {api_version:?} kind {kind:?}"
        ))
    })?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            &resource.qualified_kind(),
            "",
            &[("metadata.name", "Required value: name is required")],
        ));
    }
    let namespace = resource.namespaced.then(|| {
        object["metadata"]["namespace"]
            .as_str()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or("default")
            .to_string()
    });
    let target = Target {
        resource,
        namespace,
        name: Some(name.clone()),
        subresource: None,
    };
    let mut query = HashMap::new();
    query.insert("fieldManager".to_string(), manager.to_string());
    if force {
        query.insert("force".to_string(), "true".to_string());
    }
    let request = ApiRequest {
        method: "PATCH".into(),
        query,
        content_type: "application/apply-patch+yaml".into(),
        user_agent: "kubesim-handle".into(),
        accept: String::new(),
        body: bytes::Bytes::from(object.to_string()),
    };
    match apply(store, &target, &name, &request)? {
        Answer::Json(_, value) => Ok(value),
    }
}

/// Converts an answer of the core resource into what `events.k8s.io/v1` answers.
fn answer_as_v1(answer: Answer) -> Answer {
    let Answer::Json(code, value) = answer;
    let converted = match value["kind"].as_str() {
        Some("Event") => events::v1_view(&value),
        Some("EventList") => {
            let mut list = value.clone();
            list["apiVersion"] = json!("events.k8s.io/v1");
            if let Some(items) = list["items"].as_array_mut() {
                for item in items.iter_mut() {
                    *item = events::v1_view(item);
                }
            }
            list
        }
        _ => value,
    };
    Answer::Json(code, converted)
}

/// A write (POST, PUT, PATCH, apply, DELETE) through `events.k8s.io/v1`: carried out on the
/// stored core Event, with the body and the answer converted.
fn events_v1_write(
    store: &mut Store,
    target: &Target,
    request: &ApiRequest,
) -> Result<Answer, ApiError> {
    let core = store
        .registry()
        .by_plural("", "v1", "events")
        .ok_or_else(ApiError::path_not_found)?;
    let core_target = Target {
        resource: core,
        ..target.clone()
    };
    let mut core_request = request.clone();
    let name = target.name.as_deref().unwrap_or("");
    let storage_key = core_target.resource.storage_key();
    let key = target_key(target, name);
    let stored = |store: &Store| {
        store
            .get(&storage_key, &key)
            .ok_or_else(|| ApiError::not_found(&target.resource, name))
    };
    match (request.method.as_str(), request.content_type.as_str()) {
        ("POST", _) | ("PATCH", "application/apply-patch+yaml") => {
            let body = parse_document(&request.body)?;
            core_request.body = events::core_from_v1(&body).to_string().into();
        }
        ("PUT", _) => {
            let body = events::core_from_v1(&parse_document(&request.body)?);
            events::check_immutable(name, &*stored(store)?, &body)?;
            core_request.body = body.to_string().into();
        }
        ("PATCH", content_type) => {
            // The patch is written against the events.k8s.io/v1 form: patch that view, then
            // store its core form.
            let old = stored(store)?;
            let mut view = events::v1_view(&old);
            view["apiVersion"] = json!("events.k8s.io/v1");
            view["kind"] = json!("Event");
            let patched = patched_view(target, name, view, content_type, &request.body)?;
            let body = events::core_from_v1(&patched);
            events::check_immutable(name, &old, &body)?;
            core_request.method = "PUT".into();
            core_request.content_type = "application/json".into();
            core_request.body = body.to_string().into();
        }
        _ => {}
    }
    handle(store, &core_target, &core_request).map(answer_as_v1)
}

fn target_key(target: &Target, name: &str) -> (String, String) {
    (
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    )
}

/// 422 Invalid naming each of `violations`, when there are any.
fn refuse(
    resource: &Resource,
    name: &str,
    violations: &[immutable::Violation],
) -> Result<(), ApiError> {
    if violations.is_empty() {
        return Ok(());
    }
    let causes: Vec<(&str, &str, &str)> = violations
        .iter()
        .map(|v| (v.field.as_str(), v.reason, v.message.as_str()))
        .collect();
    Err(ApiError::invalid_with(
        &resource.qualified_kind(),
        name,
        &causes,
    ))
}
