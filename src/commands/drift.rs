//! `gitship drift ENV`: what runs differs from Git.
//!
//! Kubernetes: managed fields changed by someone else (the field, live and Git values, and the
//! manager that owns the live value, from `managedFields`) and inventory objects that were
//! deleted; Terraform: changes made outside Terraform and changes a deploy would make. The
//! environment's `drift.ignore` rules suppress expected drift. Exit 2 when drifted, 0 in sync.
//! Reads, dry-runs and Terraform plans only.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use kube::api::ListParams;
use serde_json::Value;

use crate::commands::Context;
use crate::commands::diff::current_outputs;
use crate::commands::plan;
use crate::exit::Outcome;
use crate::kube::KubeError;
use crate::kube::deploy::{self, Checked, Environment};
use crate::kube::diff::{EnvironmentDiff, ObjectDiff, PlannedAction};
use crate::kube::discovery::Resources;
use crate::kube::retry::RetryPolicy;
use crate::plan::{DriftReport, kubernetes};
use crate::render;
use crate::settings::{ClusterSettings, OutputFormat};

pub async fn run(ctx: &Context, settings: ClusterSettings) -> Result<Outcome> {
    let session = plan::open(ctx, &settings)?;
    let mut report = DriftReport::new(&session.config.name, session.git.clone(), session.sandbox);

    if let Some(driver) = plan::terraform_driver(&session).await? {
        ctx.printer.status(&format!(
            "checking Terraform drift of `{}`...",
            session.config.name
        ));
        let drift = driver.drift().await.map_err(|e| e.into_anyhow())?;
        report.terraform = drift.to_plan_changes();
    }

    let outputs = current_outputs(&session, &settings).await?;
    let (_, images) = plan::images(&session).await?;
    let manifests = plan::render_manifests(&session, images, outputs.clone())?;
    if !manifests.is_empty() {
        let connection = plan::connect(ctx, &session).await?;
        let environment_diff = compare_live(
            &connection.client,
            &session.environment(),
            &plan::desired_objects(&manifests),
        )
        .await
        .map_err(crate::commands::deploy::user_error)?;
        let environment = session.environment();
        let inventory = crate::kube::inventory::load(
            &connection.client,
            &environment.name,
            &environment.namespace,
            &RetryPolicy::default(),
        )
        .await
        .map_err(crate::commands::deploy::user_error)?
        .unwrap_or_default();
        let redactor = render::Redactor::new(&outputs);
        let (drifted, ignored) = kubernetes::drift(
            &environment_diff,
            &inventory.objects,
            &session.config.drift.ignore,
            &redactor,
        );
        report.kubernetes = drifted;
        report.ignored = ignored;
    }

    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        OutputFormat::Markdown => {
            crate::plan::markdown::render_drift(&report, plan::MARKDOWN_LIMIT)
        }
        OutputFormat::Human => crate::plan::human::render_drift(&report, ctx.printer.color_stdout),
    };
    ctx.printer.data(&text)?;
    Ok(if report.drifted() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Every desired object compared with its live counterpart, read with one LIST per resource and
/// namespace (no dry runs: see [`kubernetes::compare_to_manifest`]). Objects whose kind is not
/// served yet (defined by a CRD of the same set) count as missing.
async fn compare_live(
    client: &kube::Client,
    environment: &Environment,
    desired: &[crate::kube::DesiredObject],
) -> Result<EnvironmentDiff, KubeError> {
    let retry = RetryPolicy::default();
    let resources = Resources::new();
    let checked = deploy::check(client, &resources, environment, desired, &retry).await?;
    let mut prepared = Vec::new();
    let mut objects = Vec::new();
    for item in checked {
        match item {
            Checked::Ready(p) => prepared.push(*p),
            Checked::Deferred(object, namespaced) => objects.push((
                deploy::deferred_id(&object, namespaced, environment),
                ObjectDiff {
                    action: PlannedAction::Create,
                    live: None,
                    desired: object.object.clone(),
                    changes: Vec::new(),
                },
            )),
        }
    }
    type ListKey = (String, String, String, Option<String>);
    let key_of = |p: &crate::kube::apply::Prepared| -> ListKey {
        (
            p.resolved.resource.group.clone(),
            p.resolved.resource.version.clone(),
            p.resolved.resource.plural.clone(),
            p.id.namespace.clone(),
        )
    };
    let mut representatives: BTreeMap<ListKey, &crate::kube::apply::Prepared> = BTreeMap::new();
    for p in &prepared {
        representatives.entry(key_of(p)).or_insert(p);
    }
    let lists = futures::future::join_all(representatives.into_iter().map(|(key, p)| {
        let retry = &retry;
        async move {
            let api = p.api(client);
            let params = ListParams::default();
            let list = retry
                .run(&format!("list {}", p.resolved.resource.plural), || {
                    api.list(&params)
                })
                .await
                .map_err(|e| crate::kube::apply::to_kube_error(p, e))?;
            let by_name: HashMap<String, Value> = list
                .items
                .into_iter()
                .filter_map(|item| {
                    let name = item.metadata.name.clone()?;
                    Some((name, serde_json::to_value(item).ok()?))
                })
                .collect();
            Ok::<_, KubeError>((key, by_name))
        }
    }))
    .await
    .into_iter()
    .collect::<Result<HashMap<_, _>, _>>()?;
    let mut compared: Vec<(crate::kube::ObjectId, ObjectDiff)> = prepared
        .iter()
        .map(|p| {
            let live = lists
                .get(&key_of(p))
                .and_then(|by_name| by_name.get(&p.id.name))
                .cloned();
            let object_diff = match live {
                None => ObjectDiff {
                    action: PlannedAction::Create,
                    live: None,
                    desired: p.body.clone(),
                    changes: Vec::new(),
                },
                Some(live) => {
                    let changes = kubernetes::compare_to_manifest(&live, &p.body);
                    ObjectDiff {
                        action: if changes.is_empty() {
                            PlannedAction::Unchanged
                        } else {
                            PlannedAction::Update
                        },
                        live: Some(live),
                        desired: p.body.clone(),
                        changes,
                    }
                }
            };
            (p.id.clone(), object_diff)
        })
        .collect();
    compared.extend(objects);
    Ok(EnvironmentDiff {
        objects: compared,
        prune: Vec::new(),
    })
}
