//! Object storage: every object by resource and (namespace, name), the global resourceVersion
//! counter, the bounded event log that watches resume from, the broadcast channel live watches
//! and the simulated controllers listen on, and the JSON state file.
//!
//! Persistence is synchronous: with a state file configured, every persisted change rewrites the
//! file (write to a temporary file, fsync, rename) before the request is answered, so a process
//! that exits right after a request never loses it.

use crate::defaults::ServiceAddresses;
use crate::registry::{self, Registry, Resource};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::broadcast;

/// (namespace or `""`, name)
pub type ObjectKey = (String, String);

/// Where the store reports changed objects to the simulated controllers: the channel, and which
/// storage keys they care about (given by whoever wires the two together, so that the store
/// does not depend on the controllers).
#[derive(Debug)]
pub struct ControllerFeed {
    pub sender: tokio::sync::mpsc::UnboundedSender<Change>,
    pub watches: fn(&(String, String)) -> bool,
}

/// A stored object that changed: (storage key, object key), for the simulated controllers.
pub type Change = ((String, String), ObjectKey);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One persisted change. Objects are kept as compact JSON text (shared with the store), which
/// takes a tenth of the memory of a parsed `serde_json::Value`.
#[derive(Debug)]
pub struct Event {
    /// `(group, plural)` of the object.
    pub storage_key: (String, String),
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletions: the last state, with the deletion's version).
    pub object: Arc<str>,
    /// The object before the change.
    pub previous: Option<Arc<str>>,
    /// The resourceVersion of the change.
    pub version: u64,
}

/// Parses stored JSON text (written by the store itself, so it is valid).
pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("cannot access state file `{path}`")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kubesim state document.
    #[error("state file `{path}` is not valid kubesim state")]
    Parse {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// All stored objects.
pub struct Store {
    /// The last resourceVersion handed out.
    pub resource_version: u64,
    collections: HashMap<(String, String), BTreeMap<ObjectKey, Arc<str>>>,
    events: VecDeque<Arc<Event>>,
    /// Resource versions up to and including this one are no longer in the event log.
    pub compacted: u64,
    sender: broadcast::Sender<Arc<Event>>,
    /// Resources added by CustomResourceDefinitions.
    pub custom: Vec<Resource>,
    state_file: Option<PathBuf>,
    event_log_capacity: usize,
    /// Where changes of objects the controllers watch are reported.
    pub controller: Option<ControllerFeed>,
    /// The cluster IPs and node ports the stored Services hold.
    pub service_addresses: ServiceAddresses,
}

/// Whether `storage_key` is core/v1 Services'.
fn is_services(storage_key: &(String, String)) -> bool {
    storage_key.0.is_empty() && storage_key.1 == "services"
}

impl Store {
    /// An empty store with the default namespaces.
    pub fn new(state_file: Option<PathBuf>, event_log_capacity: usize) -> Store {
        let (sender, _) = broadcast::channel(8192);
        Store {
            resource_version: 0,
            collections: HashMap::new(),
            events: VecDeque::new(),
            compacted: 0,
            sender,
            custom: Vec::new(),
            state_file,
            event_log_capacity: event_log_capacity.max(1),
            controller: None,
            service_addresses: ServiceAddresses::default(),
        }
    }

    /// The registry view including custom resources.
    pub fn registry(&self) -> Registry<'_> {
        Registry {
            custom: &self.custom,
        }
    }

    /// Subscribes to every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Logged events after `version` (oldest first).
    pub fn events_since(&self, version: u64) -> Vec<Arc<Event>> {
        self.events
            .iter()
            .filter(|event| event.version > version)
            .cloned()
            .collect()
    }

    /// One object.
    pub fn get(&self, storage_key: &(String, String), key: &ObjectKey) -> Option<Arc<Value>> {
        self.collections
            .get(storage_key)?
            .get(key)
            .map(|text| Arc::new(parse(text)))
    }

    /// Whether an object exists.
    pub fn contains(&self, storage_key: &(String, String), key: &ObjectKey) -> bool {
        self.collections
            .get(storage_key)
            .is_some_and(|collection| collection.contains_key(key))
    }

    /// All objects of a resource, optionally in one namespace, in (namespace, name) order.
    pub fn list(&self, storage_key: &(String, String), namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(collection) = self.collections.get(storage_key) else {
            return Vec::new();
        };
        let texts: Vec<&Arc<str>> = match namespace {
            Some(namespace) => collection
                .range((namespace.to_string(), String::new())..)
                .take_while(|((object_namespace, _), _)| object_namespace == namespace)
                .map(|(_, text)| text)
                .collect(),
            None => collection.values().collect(),
        };
        texts
            .into_iter()
            .map(|text| Arc::new(parse(text)))
            .collect()
    }

    /// The stored objects accepted by a cheap pre-filter on (storage key, object key, JSON
    /// text), parsed, with their storage keys.
    pub fn matching(
        &self,
        filter: impl Fn(&(String, String), &ObjectKey, &str) -> bool,
    ) -> Vec<((String, String), Arc<Value>)> {
        let mut matching: Vec<_> = self
            .collections
            .iter()
            .flat_map(|(storage_key, objects)| {
                objects
                    .iter()
                    .filter(|(key, text)| filter(storage_key, key, text))
                    .map(move |(_, text)| (storage_key.clone(), text.clone()))
            })
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        matching
            .into_iter()
            .map(|(storage_key, text)| (storage_key, Arc::new(parse(&text))))
            .collect()
    }

    /// Every stored object with its storage key.
    pub fn all(&self) -> Vec<((String, String), Arc<Value>)> {
        self.matching(|_, _, _| true)
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.collections.values().map(BTreeMap::len).sum()
    }

    /// Persists a change: assigns the next resourceVersion, stores or removes the object, logs and
    /// broadcasts the event, refreshes CRD resources and writes the state file.
    pub fn commit(
        &mut self,
        resource: &Resource,
        key: ObjectKey,
        mut object: Value,
        kind: EventType,
    ) -> Value {
        self.resource_version += 1;
        let version = self.resource_version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let text: Arc<str> = Arc::from(object.to_string());
        let storage_key = resource.storage_key();
        let collection = self.collections.entry(storage_key.clone()).or_default();
        if kind != EventType::Deleted
            && let Some(controller) = &self.controller
            && (controller.watches)(&storage_key)
        {
            let _ = controller.sender.send((storage_key.clone(), key.clone()));
        }
        if is_services(&storage_key) {
            let stored = (kind != EventType::Deleted).then_some(&object);
            self.service_addresses.record(&key, stored);
        }
        let previous = match kind {
            EventType::Deleted => collection.remove(&key),
            _ => collection.insert(key, text.clone()),
        };
        if collection.is_empty() {
            self.collections.remove(&storage_key);
        }
        let event = Arc::new(Event {
            storage_key: storage_key.clone(),
            kind,
            object: text,
            previous,
            version,
        });
        if self.events.len() >= self.event_log_capacity
            && let Some(dropped) = self.events.pop_front()
        {
            self.compacted = dropped.version;
        }
        self.events.push_back(event.clone());
        let _ = self.sender.send(event);
        if storage_key.0 == "apiextensions.k8s.io" && storage_key.1 == "customresourcedefinitions" {
            self.refresh_custom();
        }
        if let Err(error) = self.save() {
            tracing::error!(error = %error, "kubesim: cannot persist state");
        }
        object
    }

    fn refresh_custom(&mut self) {
        let definitions = self.list(
            &(
                "apiextensions.k8s.io".into(),
                "customresourcedefinitions".into(),
            ),
            None,
        );
        self.custom = definitions
            .iter()
            .filter(|definition| definition["metadata"].get("deletionTimestamp").is_none())
            .flat_map(|definition| registry::custom_resources(definition))
            .collect();
    }

    /// Writes the state file (if configured).
    pub fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let mut text = format!(
            "{{\n\"kind\": \"KubesimState\",\n\"resourceVersion\": {},\n\"objects\": [",
            self.resource_version
        );
        let mut storage_keys: Vec<&(String, String)> = self.collections.keys().collect();
        storage_keys.sort();
        let mut first = true;
        for storage_key in storage_keys {
            for object in self.collections[storage_key].values() {
                if !first {
                    text.push(',');
                }
                first = false;
                text.push_str(&format!(
                    "\n{{\"group\": {}, \"resource\": {}, \"object\": {object}}}",
                    json!(storage_key.0),
                    json!(storage_key.1)
                ));
            }
        }
        text.push_str("\n]}\n");
        let io_error = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(directory).map_err(io_error)?;
        let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(io_error)?;
        temporary.write_all(text.as_bytes()).map_err(io_error)?;
        temporary.as_file().sync_all().map_err(io_error)?;
        temporary
            .persist(path)
            .map_err(|error| io_error(error.error))?;
        Ok(())
    }

    /// Loads objects from the state file if it exists (no events are emitted).
    pub fn load(&mut self) -> Result<(), StateError> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let document: Value = serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        self.collections.clear();
        self.service_addresses = ServiceAddresses::default();
        for entry in document["objects"].as_array().cloned().unwrap_or_default() {
            let (Some(group), Some(plural)) = (entry["group"].as_str(), entry["resource"].as_str())
            else {
                continue;
            };
            let object = entry["object"].clone();
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
                continue;
            };
            let storage_key = (group.to_string(), plural.to_string());
            let key = (namespace, name);
            if is_services(&storage_key) {
                self.service_addresses.record(&key, Some(&object));
            }
            self.collections
                .entry(storage_key)
                .or_default()
                .insert(key, Arc::from(object.to_string()));
        }
        self.resource_version = document["resourceVersion"].as_u64().unwrap_or(0);
        self.compacted = self.resource_version;
        self.refresh_custom();
        Ok(())
    }

    /// Stores an object directly, without an event (used for the initial namespaces).
    pub fn seed(&mut self, resource: &Resource, object: Value) {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.resource_version += 1;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let storage_key = resource.storage_key();
        let key = (namespace, name);
        if is_services(&storage_key) {
            self.service_addresses.record(&key, Some(&object));
        }
        self.collections
            .entry(storage_key)
            .or_default()
            .insert(key, Arc::from(object.to_string()));
        self.compacted = self.resource_version;
    }
}
