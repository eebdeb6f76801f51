//! Object storage: every object by resource and (namespace, name), the global resourceVersion
//! counter, the bounded event log that watches resume from, the broadcast channel live watches
//! and the simulated controllers listen on, and the JSON state file.
//!
//! Persistence is synchronous: with a state file configured, every persisted change rewrites the
//! file (write to a temporary file, fsync, rename) before the request is answered, so a process
//! that exits right after a request never loses it.

use crate::registry::{self, Registry, Resource};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::broadcast;

/// (namespace or `""`, name)
pub type ObjectKey = (String, String);

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

/// One persisted change.
#[derive(Debug)]
pub struct Event {
    /// `(group, plural)` of the object.
    pub storage_key: (String, String),
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletions: the last state, with the deletion's version).
    pub object: Arc<Value>,
    /// The object before the change.
    pub previous: Option<Arc<Value>>,
    /// The resourceVersion of the change.
    pub version: u64,
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
    collections: HashMap<(String, String), BTreeMap<ObjectKey, Arc<Value>>>,
    events: VecDeque<Arc<Event>>,
    /// Resource versions up to and including this one are no longer in the event log.
    pub compacted: u64,
    sender: broadcast::Sender<Arc<Event>>,
    /// Resources added by CustomResourceDefinitions.
    pub custom: Vec<Resource>,
    state_file: Option<PathBuf>,
    event_log_capacity: usize,
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
        self.collections.get(storage_key)?.get(key).cloned()
    }

    /// All objects of a resource, optionally in one namespace, in (namespace, name) order.
    pub fn list(&self, storage_key: &(String, String), namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(collection) = self.collections.get(storage_key) else {
            return Vec::new();
        };
        match namespace {
            Some(namespace) => collection
                .range((namespace.to_string(), String::new())..)
                .take_while(|((object_namespace, _), _)| object_namespace == namespace)
                .map(|(_, object)| object.clone())
                .collect(),
            None => collection.values().cloned().collect(),
        }
    }

    /// Every stored object with its storage key.
    pub fn all(&self) -> Vec<((String, String), Arc<Value>)> {
        let mut all: Vec<_> = self
            .collections
            .iter()
            .flat_map(|(storage_key, objects)| {
                objects
                    .values()
                    .map(move |object| (storage_key.clone(), object.clone()))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
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
    ) -> Arc<Value> {
        self.resource_version += 1;
        let version = self.resource_version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let object = Arc::new(object);
        let storage_key = resource.storage_key();
        let collection = self.collections.entry(storage_key.clone()).or_default();
        let previous = match kind {
            EventType::Deleted => collection.remove(&key),
            _ => collection.insert(key, object.clone()),
        };
        if collection.is_empty() {
            self.collections.remove(&storage_key);
        }
        let event = Arc::new(Event {
            storage_key: storage_key.clone(),
            kind,
            object: object.clone(),
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
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            group: &'a str,
            resource: &'a str,
            object: &'a Value,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Document<'a> {
            kind: &'static str,
            resource_version: u64,
            objects: Vec<Entry<'a>>,
        }
        let all = self.all();
        let document = Document {
            kind: "KubesimState",
            resource_version: self.resource_version,
            objects: all
                .iter()
                .map(|((group, plural), object)| Entry {
                    group,
                    resource: plural,
                    object: object.as_ref(),
                })
                .collect(),
        };
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
        let text = serde_json::to_vec_pretty(&document).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        temporary.write_all(&text).map_err(io_error)?;
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
            self.collections
                .entry((group.to_string(), plural.to_string()))
                .or_default()
                .insert((namespace, name), Arc::new(object));
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
        self.collections
            .entry(resource.storage_key())
            .or_default()
            .insert((namespace, name), Arc::new(object));
        self.compacted = self.resource_version;
    }
}
