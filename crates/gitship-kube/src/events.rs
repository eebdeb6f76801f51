//! Kubernetes Events on the environment's inventory ConfigMap, so that `kubectl get events`
//! shows what gitship did (`Deployed`, `Healed`, `SyncFailed`, ...).
//!
//! Recording an Event is best effort: a cluster that refuses one must not fail the deploy it
//! describes, so [`record`] logs the failure and returns nothing.

use chrono::Utc;
use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::inventory::configmap_name;
use crate::retry::RetryPolicy;
use gitship_foundation::model::Environment;

/// Longest message kept (the API server refuses Events whose message is over 1 KiB in
/// `events.k8s.io`; core Events are cut to the same bound).
const MAX_MESSAGE: usize = 1024;

/// Whether the Event reports something normal or a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Record one Event about `environment`'s inventory ConfigMap, reported by `reporter` (who
/// deploys: `gitship`'s `ci::who`, read by the caller).
pub async fn record(
    client: &Client,
    environment: &Environment,
    reporter: &str,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let subject = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": configmap_name(&environment.name),
        "namespace": environment.namespace,
    });
    let body = event_body(environment, &subject, reporter, kind, reason, message);
    create(client, &environment.namespace, body, reason).await;
}

/// Record one Event about `environment`'s namespace itself (a cluster-scoped object), stored
/// in the namespace `stored_in`: `gitship destroy`'s, which must outlive the namespace it
/// deletes (then it is stored in `default`, where Kubernetes puts the Events of cluster-scoped
/// objects).
pub async fn record_on_namespace(
    client: &Client,
    environment: &Environment,
    stored_in: &str,
    reporter: &str,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let subject = json!({"apiVersion": "v1", "kind": "Namespace", "name": environment.namespace});
    let mut body = event_body(environment, &subject, reporter, kind, reason, message);
    body["metadata"]["namespace"] = json!(stored_in);
    create(client, stored_in, body, reason).await;
}

async fn create(client: &Client, namespace: &str, body: serde_json::Value, reason: &str) {
    let event: Event = match serde_json::from_value(body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%reason, %error, "could not build the Event");
            return;
        }
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = PostParams::default();
    if let Err(error) = RetryPolicy::default()
        .run("Event", || api.create(&params, &event))
        .await
    {
        tracing::warn!(%reason, error = %crate::error_message(&error), "could not record the Event");
    }
}

fn event_body(
    environment: &Environment,
    subject: &serde_json::Value,
    reporter: &str,
    kind: EventType,
    reason: &str,
    message: &str,
) -> serde_json::Value {
    let now = Utc::now();
    let name = format!(
        "{}.{}",
        configmap_name(&environment.name),
        uuid::Uuid::new_v4().simple()
    );
    let mut message = message.to_string();
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": environment.namespace},
        "involvedObject": subject,
        "reason": reason,
        "message": message,
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": {"component": gitship_foundation::model::FIELD_MANAGER},
        "reportingComponent": gitship_foundation::model::FIELD_MANAGER,
        "reportingInstance": reporter,
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_inventory_and_bound_their_message() {
        let environment = Environment {
            name: "production".into(),
            namespace: "blog".into(),
        };
        let long = "é".repeat(2000);
        let subject = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "gitship-production", "namespace": "blog"});
        let body = event_body(
            &environment,
            &subject,
            "ann@laptop",
            EventType::Warning,
            "SyncFailed",
            &long,
        );
        assert_eq!(body["involvedObject"]["name"], "gitship-production");
        assert_eq!(body["type"], "Warning");
        let message = body["message"].as_str().unwrap();
        assert!(message.len() <= MAX_MESSAGE && message.starts_with('é'));
        let event: Result<Event, _> = serde_json::from_value(body);
        assert!(event.is_ok());
    }
}
