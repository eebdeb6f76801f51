//! Preview environments: `env new NAME --from BASE --ephemeral` records one in the base's
//! cluster (`kube::preview`), and every operation that resolves an environment by name finds it
//! there when no config file has that name ([`load_env`]): its config is the base's, derived in
//! memory (`repo::preview`). `envs` lists them ([`list`]); `gc` finds the expired ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::repo::preview::{self, ValueOverride};
use crate::repo::{EnvConfig, Repository};
use crate::terraform::TerraformSettings;
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::output::Printer;
use gitship_kube::ClientOptions;
use gitship_kube::preview::{Decoded, PreviewRecord, Recorded, UnreadableRecord};
use gitship_kube::retry::RetryPolicy;

/// Version of [`PreviewReport`]'s JSON (`env new --ephemeral -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// `env new NAME --from BASE --ephemeral`: what to record.
#[derive(Debug, Clone)]
pub struct EphemeralRequest {
    pub name: String,
    pub base: String,
    /// How long from now until the preview expires (`--ttl`).
    pub ttl: Duration,
    /// `--set values.KEY=VALUE`, in command-line order (a later one wins).
    pub sets: Vec<ValueOverride>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// What `env new --ephemeral` did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PreviewReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `created` or `updated`.
    pub action: String,
    pub preview: PreviewRecord,
    /// The preview's `values`: its base's with the overrides (what `${values.KEY}` renders;
    /// `ci init --preview-url` reads its URL here).
    pub values: serde_json::Value,
}

/// Record (or update) the preview in its base's cluster. Nothing is written to the repository.
pub async fn create(repo_dir: Option<&Path>, request: &EphemeralRequest) -> Result<PreviewReport> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    if repo.environments.contains_key(&request.name) {
        return Err(UserError::usage(
            format!(
                "`{}` is a committed environment (`{}`), not a preview",
                request.name,
                repo.relative(&repo.environments[&request.name]).display()
            ),
            "choose another name for the preview, e.g. `pr-123`",
        )
        .into());
    }
    let base = repo.load_env(&request.base).map_err(user_error)?;
    if base.cluster_from_terraform() {
        // The record lives in the base's cluster, and the preview's own Terraform workspace would
        // make a cluster of its own: neither is the cluster a preview is found in.
        return Err(UserError::usage(
            format!(
                "`{}` takes its cluster from Terraform outputs (`{}`): a preview of it would \
                 make a cluster of its own in its Terraform workspace",
                base.name,
                base.spans.file.display()
            ),
            "derive previews from an environment that names its cluster (`cluster.context` or \
             `cluster.kubeconfig` as a path)",
        )
        .into());
    }
    let values: BTreeMap<String, serde_json::Value> = request
        .sets
        .iter()
        .map(|set| (set.key.clone(), set.value.clone()))
        .collect();
    refuse_sensitive(&repo, &base, values.keys())?;
    let derived = preview::derive(&base, &request.name, &values).map_err(user_error)?;
    refuse_shared_workspace(&repo, &derived)?;
    // Whole seconds: the record keeps RFC 3339 times to the second.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    let ttl = chrono::Duration::from_std(request.ttl)
        .map_err(|_| anyhow::anyhow!("the TTL `{:?}` is out of range", request.ttl))?;
    let expires_at = now
        .checked_add_signed(ttl)
        .ok_or_else(|| anyhow::anyhow!("the TTL `{:?}` is out of range", request.ttl))?;
    let record = PreviewRecord {
        name: derived.name.clone(),
        base: base.name.clone(),
        namespace: derived.cluster.namespace.clone(),
        created_at: now,
        expires_at,
        values,
    };
    let client = connect(request.kubeconfig.as_deref(), &base).await?;
    let (recorded, stored) =
        gitship_kube::preview::record(&client, &record, &RetryPolicy::default())
            .await
            .map_err(user_error)?;
    Ok(PreviewReport {
        format_version: FORMAT_VERSION,
        action: match recorded {
            Recorded::Created => "created",
            Recorded::Updated => "updated",
        }
        .to_string(),
        preview: stored,
        values: derived.values,
    })
}

/// Refuse a `--set` of a key whose value in the base comes from a sensitive Terraform output
/// (the record's values are shown by `envs` and stored in an annotation).
fn refuse_sensitive<'a>(
    repo: &Repository,
    base: &EnvConfig,
    keys: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let Some(settings) = TerraformSettings::for_environment(repo, base) else {
        return Ok(());
    };
    let (info, _) = crate::terraform::static_check::inspect_module(
        &settings.module_dir,
        &settings.display_root,
    );
    for key in keys {
        let pointer = format!(
            "/{}",
            key.replace('~', "~0").replace('/', "~1").replace('.', "/")
        );
        let Some(value) = base.values.pointer(&pointer) else {
            continue;
        };
        let sensitive = terraform_references(value)
            .into_iter()
            .find(|output| info.outputs.get(output).is_some_and(|o| o.sensitive));
        if let Some(output) = sensitive {
            return Err(UserError::usage(
                format!(
                    "`--set values.{key}`: `{}` fills `values.{key}` from the sensitive Terraform output `{output}`",
                    base.spans.location(&format!("values.{key}"))
                ),
                "a preview's values are recorded in its namespace's annotations, visible to \
                 anyone who can read namespaces: set a key that holds no secret",
            )
            .into());
        }
    }
    Ok(())
}

/// The Terraform outputs `${terraform.NAME...}` that the strings of `value` name.
fn terraform_references(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(text) => text
            .match_indices("${terraform.")
            .map(|(start, marker)| {
                text[start + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect()
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().flat_map(terraform_references).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(terraform_references).collect(),
        _ => Vec::new(),
    }
}

async fn connect(kubeconfig: Option<&Path>, config: &EnvConfig) -> Result<kube::Client> {
    let options = crate::ops::cluster_source::client_options(kubeconfig, &config.cluster);
    gitship_kube::client::connect(&options)
        .await
        .map_err(user_error)
}

/// The previews found in the clusters of the committed environments, and the clusters that
/// could not be read (their error, for a warning or a hint).
#[derive(Debug, Default)]
pub struct Found {
    /// Each preview with its derived config.
    pub previews: Vec<(PreviewRecord, EnvConfig)>,
    /// The records that do not decode (never destroyed by `gc`, never deployed).
    pub unreadable: Vec<UnreadableRecord>,
    /// `context (kubeconfig)`: why it could not be listed.
    pub unreachable: Vec<String>,
}

/// Every live preview of the repository's committed environments: each distinct cluster (the
/// kubeconfig and context of an environment that deploys Kubernetes objects) is listed once by
/// label selector; a record counts only when its base is a committed environment of that
/// cluster and its namespace is the one derived from that base (another repository's preview
/// in a shared cluster is not ours), and its name is no committed environment's (a namespace
/// that a committed environment took over from a preview is that environment's, never a
/// preview's to destroy).
pub async fn find(repo: &Repository, kubeconfig: Option<&Path>, name: Option<&str>) -> Found {
    let mut found = Found::default();
    let bases: Vec<EnvConfig> = repo
        .load_all_envs()
        .into_iter()
        .filter_map(|(_, config)| config.ok())
        .filter(|config| !config.kubernetes.disabled && !config.cluster_from_terraform())
        .collect();
    let mut clusters: Vec<(ClientOptions, Vec<&EnvConfig>)> = Vec::new();
    for base in &bases {
        let options = crate::ops::cluster_source::client_options(kubeconfig, &base.cluster);
        match clusters.iter_mut().find(|(known, _)| {
            known.kubeconfig == options.kubeconfig && known.context == options.context
        }) {
            Some((_, members)) => members.push(base),
            None => clusters.push((options, vec![base])),
        }
    }
    for (options, members) in clusters {
        match list_cluster(&options, name).await {
            Ok(listed) => add_ours(&mut found, repo, &members, listed),
            // The error's own message, not its causes: one short line per cluster.
            Err(error) => found.unreachable.push(format!(
                "context {} ({}): {error}",
                options
                    .context
                    .as_deref()
                    .map(|context| format!("`{context}`"))
                    .unwrap_or_else(|| "(current)".into()),
                options
                    .kubeconfig
                    .as_deref()
                    .map(|path| path.display().to_string())
                    .unwrap_or_else(|| "the default kubeconfig".into()),
            )),
        }
    }
    found
}

/// Add to `found` the records of `listed` (one cluster's) that are previews of this repository:
/// based on one of `members` (the committed environments of that cluster), in the namespace
/// derived from it, and named like no committed environment.
fn add_ours(
    found: &mut Found,
    repo: &Repository,
    members: &[&EnvConfig],
    listed: gitship_kube::preview::Listed,
) {
    let ours = |name: &str, base: &str, namespace: &str| {
        !repo.environments.contains_key(name)
            && members.iter().any(|member| {
                member.name == base
                    && preview::namespace_of(member, name).ok().as_deref() == Some(namespace)
            })
    };
    found.previews.extend(
        listed
            .records
            .into_iter()
            .filter(|r| ours(&r.name, &r.base, &r.namespace))
            .filter_map(|record| {
                let base = members.iter().find(|base| base.name == record.base)?;
                let config = preview::derive(base, &record.name, &record.values).ok()?;
                Some((record, config))
            }),
    );
    found.unreadable.extend(
        listed
            .unreadable
            .into_iter()
            .filter(|r| ours(&r.name, &r.base, &r.namespace)),
    );
}

async fn list_cluster(
    options: &ClientOptions,
    name: Option<&str>,
) -> Result<gitship_kube::preview::Listed> {
    let client = gitship_kube::client::connect(options).await?;
    let retry = RetryPolicy::default();
    Ok(match name {
        Some(name) => gitship_kube::preview::find(&client, name, &retry).await?,
        None => gitship_kube::preview::list(&client, &retry).await?,
    })
}

/// The config of environment `name`: its file's, or else a preview's found in the clusters of
/// the committed environments. Not found: the unknown environment's error, with how to create
/// a preview (and the clusters that could not be read).
pub async fn load_env(
    repo: &Repository,
    name: &str,
    kubeconfig: Option<&Path>,
    printer: &Printer,
) -> Result<(EnvConfig, Option<PreviewRecord>)> {
    let missing = match repo.load_env(name) {
        Ok(config) => return Ok((config, None)),
        Err(error @ crate::repo::RepoError::UnknownEnvironment { .. })
            if crate::repo::config::is_dns_label(name) =>
        {
            error
        }
        Err(error) => return Err(user_error(error)),
    };
    let found = find(repo, kubeconfig, Some(name)).await;
    if let Some(unreadable) = found.unreadable.first() {
        return Err(unreadable_error(unreadable));
    }
    let mut matches = found.previews.into_iter();
    match (matches.next(), matches.next()) {
        (Some((record, config)), None) => {
            printer.status(&format!(
                "`{name}` is a preview of `{}` (namespace `{}`, expires {})",
                record.base,
                record.namespace,
                record
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
            refuse_shared_workspace(repo, &config)?;
            Ok((config, Some(record)))
        }
        (Some((first, _)), Some((second, _))) => Err(UserError::new(
            format!(
                "`{name}` names two previews: of `{}` and of `{}`",
                first.base, second.base
            ),
            "destroy one of them, or give previews of different bases different names",
        )
        .into()),
        (None, _) => Err(not_found(missing, name, &found.unreachable)),
    }
}

fn not_found(error: crate::repo::RepoError, name: &str, unreachable: &[String]) -> anyhow::Error {
    use gitship_foundation::diagnostics::StageError as _;
    let mut hint = error.hint().unwrap_or_default();
    if !hint.is_empty() {
        hint.push_str("; ");
    }
    hint.push_str(&format!(
        "no preview `{name}` either: create one with `gitship env new {name} --from ENV --ephemeral`"
    ));
    for cluster in unreachable {
        hint.push_str(&format!("\n  (could not look for previews in {cluster})"));
    }
    UserError {
        message: error.to_string(),
        hint: Some(hint),
        class: error.class(),
    }
    .into()
}

/// The config of the preview `record` in `repo` (a revision's clone): its base's config there,
/// derived again.
pub fn derive_at(repo: &Repository, record: &PreviewRecord) -> Result<EnvConfig> {
    let base = repo.load_env(&record.base).map_err(user_error)?;
    preview::derive(&base, &record.name, &record.values).map_err(user_error)
}

/// How long `env new` (committed) waits for its cluster to say what its namespace holds.
const NAMESPACE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuse a new committed environment whose namespace holds a preview's record (readable or
/// not): deployed, it would take the preview's namespace over, labels and expiry included. A
/// cluster that cannot be asked is a warning (the file is still written).
pub async fn refuse_preview_namespace(
    kubeconfig: Option<&Path>,
    config: &EnvConfig,
    printer: &Printer,
) -> Result<()> {
    if config.kubernetes.disabled || config.cluster_from_terraform() {
        return Ok(());
    }
    let namespace = &config.cluster.namespace;
    let asked = tokio::time::timeout(NAMESPACE_CHECK_TIMEOUT, async {
        let client = connect(kubeconfig, config).await?;
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        anyhow::Ok(api.get_opt(namespace).await?)
    })
    .await;
    let found = match asked {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            printer.warn(&format!(
                "could not check whether namespace `{namespace}` holds a preview's record: {error}"
            ));
            return Ok(());
        }
        Err(_) => {
            printer.warn(&format!(
                "could not check whether namespace `{namespace}` holds a preview's record: no \
                 answer from its cluster in {}s",
                NAMESPACE_CHECK_TIMEOUT.as_secs()
            ));
            return Ok(());
        }
    };
    let (preview, base) = match found.as_ref().and_then(gitship_kube::preview::decode) {
        None => return Ok(()),
        Some(Decoded::Record(record)) => (record.name, record.base),
        Some(Decoded::Unreadable(record)) => (record.name, record.base),
    };
    Err(UserError::usage(
        format!(
            "namespace `{namespace}` of the new environment `{}` holds the record of preview \
             `{preview}` (of `{base}`): deployed, the environment would take it over",
            config.name
        ),
        format!(
            "destroy the preview first (`gitship destroy {preview}`), or give the environment \
             another namespace with `--namespace`"
        ),
    )
    .into())
}

/// The error of an operation on the preview whose record does not decode.
pub fn unreadable_error(unreadable: &UnreadableRecord) -> anyhow::Error {
    UserError::new(
        format!(
            "preview `{}` (of `{}`) has an unreadable record on namespace `{}`: {}",
            unreadable.name, unreadable.base, unreadable.namespace, unreadable.why
        ),
        format!(
            "gitship neither deploys nor destroys it, and `gc` leaves it alone: record it again \
             with `gitship env new {} --from {} --ephemeral` (then destroy it as any preview), \
             or inspect it with `kubectl get namespace {} -o yaml`",
            unreadable.name, unreadable.base, unreadable.namespace
        ),
    )
    .into()
}

/// Refuse a preview whose Terraform workspace would hold another environment's state: the
/// workspace `default` (a base with `backend_config` and no fixed workspace keeps its own state
/// there) or the workspace any committed environment resolves to.
pub fn refuse_shared_workspace(repo: &Repository, preview: &EnvConfig) -> Result<()> {
    let Some(settings) = TerraformSettings::for_environment(repo, preview) else {
        return Ok(());
    };
    let Some(workspace) = settings.workspace else {
        return Ok(());
    };
    let owner = if workspace == "default" {
        Some(
            "the default workspace, where an environment without a fixed workspace keeps its state"
                .to_string(),
        )
    } else {
        repo.load_all_envs()
            .into_iter()
            .filter_map(|(_, config)| config.ok())
            .find(|config| {
                TerraformSettings::for_environment(repo, config)
                    .and_then(|settings| settings.workspace)
                    .is_some_and(|theirs| theirs == workspace)
            })
            .map(|config| {
                format!(
                    "the Terraform workspace of environment `{}` (`{}`)",
                    config.name,
                    repo.relative(&config.file).display()
                )
            })
    };
    match owner {
        None => Ok(()),
        Some(owner) => Err(UserError::usage(
            format!(
                "preview `{}`: its Terraform workspace `{workspace}` is {owner}; its deploy and \
                 destroy would act on that state",
                preview.name
            ),
            "a preview's workspace is its name: choose another name, e.g. `pr-123`",
        )
        .into()),
    }
}

/// Whether the preview has expired (now), and a warning saying so.
pub fn expiry_warning(record: &PreviewRecord, now: DateTime<Utc>) -> Option<String> {
    record.is_expired(now).then(|| {
        format!(
            "preview `{}` expired at {}: `gitship gc` will destroy it (run `gitship env new {} --from {} --ephemeral --ttl ...` to extend it)",
            record.name,
            record.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            record.name,
            record.base
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terraform_references_are_found_in_nested_values() {
        let value = json!({"a": "postgres://${terraform.db_user}:${terraform.db_password}@x", "b": ["${terraform.host}"], "c": 1});
        let mut found = terraform_references(&value);
        found.sort();
        assert_eq!(found, ["db_password", "db_user", "host"]);
    }
}
