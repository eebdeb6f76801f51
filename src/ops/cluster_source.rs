//! The cluster and registry an environment takes from its Terraform outputs
//! (`repo::from_terraform`), resolved from a set of outputs: the current state's for every
//! command that connects, the ones just applied for the deploy that creates them.
//!
//! A kubeconfig output is either a file's path or a kubeconfig's content (it parses as a
//! kubeconfig with `clusters:`); `cluster.server` with `cluster.certificate_authority` and
//! `cluster.token` become a kubeconfig of one context. Content is written to a private 0600 file
//! in a private temporary directory that lives as long as the [`TerraformValues`] (the run) and
//! is never printed; the token appears in no message, log or report (ARCHITECTURE.md,
//! "Invariants": secrets).

use std::path::{Path, PathBuf};

use anyhow::Result;
use base64::Engine as _;
use gitship_foundation::diagnostics::UserError;
use gitship_foundation::model::Outputs;

use crate::repo::EnvConfig;
use crate::repo::config::{ClusterFromTerraform, OutputRef};

/// The values an environment takes from Terraform, resolved.
#[derive(Debug)]
pub struct TerraformValues {
    /// The kubeconfig file to connect with (a path the output named, or the private file).
    pub kubeconfig: Option<PathBuf>,
    /// The registry prefix, from `registry: ${terraform.NAME}`.
    pub registry: Option<String>,
    /// The private directory of a kubeconfig written from content; removed on drop.
    _private: Option<tempfile::TempDir>,
}

/// Whether `config` takes anything from Terraform outputs.
pub fn needs_outputs(config: &EnvConfig) -> bool {
    config.cluster_from_terraform() || config.registry_output.is_some()
}

/// The references of `config` whose outputs have no value in `outputs` (first run: known after
/// apply); the cluster's only when `cluster` (see [`resolve`]).
pub fn unknown<'c>(config: &'c EnvConfig, outputs: &Outputs, cluster: bool) -> Vec<&'c OutputRef> {
    references(config)
        .into_iter()
        .filter(|reference| cluster || reference.key == "registry")
        .filter(|reference| {
            outputs
                .get(&reference.output)
                .and_then(|output| output.value.as_ref())
                .is_none_or(serde_json::Value::is_null)
        })
        .collect()
}

/// Every `${terraform.NAME}` reference of `config`'s cluster and registry.
pub fn references(config: &EnvConfig) -> Vec<&OutputRef> {
    let mut all: Vec<&OutputRef> = config
        .cluster
        .from_terraform
        .as_ref()
        .map(ClusterFromTerraform::references)
        .unwrap_or_default();
    all.extend(&config.registry_output);
    all
}

/// Resolve `config`'s cluster and registry from `outputs`. `module_dir`: where a relative
/// kubeconfig path is (Terraform's `path.module`). `cluster`: whether the cluster is wanted
/// (not for the sandbox, nor with `--kubeconfig`).
pub fn resolve(
    config: &EnvConfig,
    outputs: &Outputs,
    module_dir: Option<&Path>,
    cluster: bool,
) -> Result<TerraformValues> {
    let from_terraform = config.cluster.from_terraform.as_ref().filter(|_| cluster);
    let (kubeconfig, private) = match from_terraform {
        None => (None, None),
        Some(ClusterFromTerraform::Kubeconfig(reference)) => {
            let text = string(config, outputs, reference)?;
            if is_kubeconfig_content(&text) {
                let (path, dir) = write_private(text.as_bytes())?;
                (Some(path), Some(dir))
            } else {
                (Some(kubeconfig_path(reference, &text, module_dir)?), None)
            }
        }
        Some(ClusterFromTerraform::Endpoint {
            server,
            certificate_authority,
            token,
        }) => {
            let content = endpoint_kubeconfig(
                config,
                outputs,
                server,
                certificate_authority.as_ref(),
                token,
            )?;
            let (path, dir) = write_private(content.as_bytes())?;
            (Some(path), Some(dir))
        }
    };
    let registry = match &config.registry_output {
        Some(reference) => Some(registry(config, outputs, reference)?),
        None => None,
    };
    Ok(TerraformValues {
        kubeconfig,
        registry,
        _private: private,
    })
}

/// The string value of `reference`'s output; an error naming it and the config line when it
/// has no value yet or is not a string (never showing the value).
fn string(config: &EnvConfig, outputs: &Outputs, reference: &OutputRef) -> Result<String> {
    let name = &config.name;
    let what = if reference.key == "registry" {
        "registry"
    } else {
        "cluster"
    };
    let value = outputs
        .get(&reference.output)
        .and_then(|output| output.value.as_ref())
        .filter(|value| !value.is_null());
    match value {
        None => Err(UserError::new(
            format!(
                "the {what} comes from Terraform output `{}`, which has no value yet ({})",
                reference.output,
                reference.describe()
            ),
            format!(
                "run `gitship deploy {name}` first: it applies Terraform, then connects to what it made (`gitship plan {name}` shows it as known after apply)"
            ),
        )
        .into()),
        Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(_) => Err(invalid(reference, "is not a non-empty string")),
    }
}

/// An error about the value of `reference`'s output (`problem` never holds the value).
fn invalid(reference: &OutputRef, problem: &str) -> anyhow::Error {
    UserError::new(
        format!(
            "Terraform output `{}` {problem} ({})",
            reference.output,
            reference.describe()
        ),
        format!(
            "fix the output `{}` of the environment's Terraform module, then deploy again",
            reference.output
        ),
    )
    .into()
}

/// The registry prefix of `registry: ${terraform.NAME}`, checked as a literal one is.
pub fn registry(config: &EnvConfig, outputs: &Outputs, reference: &OutputRef) -> Result<String> {
    let text = string(config, outputs, reference)?;
    if crate::repo::config::is_repository_prefix(&text) {
        return Ok(text);
    }
    let sensitive = outputs
        .get(&reference.output)
        .is_some_and(|output| output.sensitive);
    let shown = match sensitive {
        true => String::from("(sensitive)"),
        false => format!("`{}`", text.escape_debug()),
    };
    Err(invalid(
        reference,
        &format!(
            "is {shown}, not an image repository prefix like `ghcr.io/acme/blog` (no scheme, no trailing `/`)"
        ),
    ))
}

/// Whether `text` is a kubeconfig's content (a YAML mapping with `clusters:`), not a path.
fn is_kubeconfig_content(text: &str) -> bool {
    if !text.contains('\n') && !text.trim_start().starts_with('{') {
        return false;
    }
    matches!(
        crate::repo::yaml::parse_single(text),
        Ok(Some(node)) if node.to_json().get("clusters").is_some()
    )
}

/// The kubeconfig file a path output names: relative to the Terraform module (as
/// `path.module` is), and a regular file.
fn kubeconfig_path(
    reference: &OutputRef,
    text: &str,
    module_dir: Option<&Path>,
) -> Result<PathBuf> {
    if text.contains(['\n', '\0']) {
        return Err(invalid(
            reference,
            "is neither a kubeconfig (YAML with `clusters:`) nor a file's path",
        ));
    }
    // `~/` is the user's home, as in the config's own `cluster.kubeconfig`.
    let path = crate::repo::config::expand_home(text.trim());
    let path = match (path.is_absolute(), module_dir) {
        (false, Some(dir)) => dir.join(path),
        _ => path,
    };
    if !path.is_file() {
        return Err(invalid(
            reference,
            // Never the value: it may be a credential (a base64 kubeconfig, a token) that only
            // looks like a path.
            &format!(
                "is no kubeconfig's content and names no kubeconfig file (a value of {} characters; a relative path is the Terraform module's)",
                text.chars().count()
            ),
        ));
    }
    Ok(path)
}

/// A kubeconfig of one context for `cluster.server`, its certificate authority and token.
fn endpoint_kubeconfig(
    config: &EnvConfig,
    outputs: &Outputs,
    server: &OutputRef,
    certificate_authority: Option<&OutputRef>,
    token: &OutputRef,
) -> Result<String> {
    let url = string(config, outputs, server)?;
    let url = url.trim();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_default();
    if host.is_empty()
        || host.starts_with(['/', ':'])
        || host.contains(|c: char| c.is_whitespace() || c.is_control() || "?#@\\".contains(c))
    {
        return Err(invalid(
            server,
            // Never the value: the output may be sensitive.
            "is not the API server's URL (`https://HOST[:PORT]`)",
        ));
    }
    let mut cluster = serde_json::json!({ "server": url });
    if let Some(reference) = certificate_authority {
        let text = string(config, outputs, reference)?;
        cluster["certificate-authority-data"] = certificate_data(&text)
            .ok_or_else(|| invalid(reference, "is neither a PEM certificate nor base64 of one"))?
            .into();
    }
    let token_value = string(config, outputs, token)?;
    let token_value = token_value.trim();
    if token_value.contains(char::is_whitespace) {
        return Err(invalid(token, "holds whitespace inside the token"));
    }
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": config.name, "cluster": cluster }],
        "users": [{ "name": "gitship", "user": { "token": token_value } }],
        "contexts": [{ "name": config.name, "context": { "cluster": config.name, "user": "gitship" } }],
        "current-context": config.name,
    });
    Ok(document.to_string())
}

/// `certificate-authority-data` (base64 of PEM) of a PEM certificate or of base64 of one (as
/// EKS's `certificate_authority[0].data` and GKE's `cluster_ca_certificate` are).
fn certificate_data(text: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let text = text.trim();
    let is_pem = |pem: &str| pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----");
    if is_pem(text) {
        return Some(engine.encode(text));
    }
    let compact: String = text.split_whitespace().collect();
    let decoded = engine.decode(compact.as_bytes()).ok()?;
    let pem = String::from_utf8(decoded).ok()?;
    is_pem(&pem).then_some(compact)
}

/// Write `bytes` to `kubeconfig` in a new private temporary directory (0700, the file 0600).
fn write_private(bytes: &[u8]) -> Result<(PathBuf, tempfile::TempDir)> {
    let dir = tempfile::Builder::new()
        .prefix("gitship-kubeconfig-")
        .tempdir()
        .map_err(|error| {
            anyhow::Error::new(error).context("cannot create a private temporary directory")
        })?;
    let path = dir.path().join("kubeconfig");
    gitship_foundation::private_file::write(&path, bytes)
        .map_err(gitship_foundation::diagnostics::user_error)?;
    Ok((path, dir))
}

/// The Kubernetes stage's client options for an environment: the `--kubeconfig` flag wins over
/// the environment's `cluster.kubeconfig`; the context is its `cluster.context`. Built here, so
/// that `kube` never reads the repository's configs.
pub fn client_options(
    kubeconfig_flag: Option<&Path>,
    cluster: &crate::repo::config::ClusterConfig,
) -> gitship_kube::ClientOptions {
    gitship_kube::ClientOptions {
        kubeconfig: kubeconfig_flag
            .map(Path::to_path_buf)
            .or_else(|| cluster.kubeconfig.clone()),
        context: cluster.context.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::model::OutputValue;
    use std::os::unix::fs::PermissionsExt;

    fn config(text: &str) -> EnvConfig {
        EnvConfig::parse(
            "dev",
            Path::new("/r/config/dev.yaml"),
            Path::new("config/dev.yaml"),
            text,
        )
        .unwrap()
    }

    fn config_endpoint() -> EnvConfig {
        config(
            "cluster:\n  namespace: blog\n  server: ${terraform.endpoint}\n  token: ${terraform.token}\n",
        )
    }

    fn outputs(pairs: &[(&str, &str)]) -> Outputs {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    OutputValue {
                        value: Some(serde_json::Value::String(value.to_string())),
                        sensitive: *name == "token",
                    },
                )
            })
            .collect()
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn an_endpoint_becomes_a_private_kubeconfig_that_goes_away() {
        let config = config(
            "cluster:\n  namespace: blog\n  server: ${terraform.endpoint}\n  certificate_authority: ${terraform.ca}\n  token: ${terraform.token}\n",
        );
        let ca = base64::engine::general_purpose::STANDARD.encode(PEM);
        let values = resolve(
            &config,
            &outputs(&[
                ("endpoint", "https://10.0.0.1:6443"),
                ("ca", &ca),
                ("token", "tok-1"),
            ]),
            None,
            true,
        )
        .unwrap();
        let path = values.kubeconfig.clone().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&ca) && text.contains("tok-1"), "{text}");
        drop(values);
        assert!(!path.exists());
        // A PEM is encoded; anything else is refused without showing it.
        let encoded = base64::engine::general_purpose::STANDARD.encode(PEM.trim());
        assert_eq!(certificate_data(PEM), Some(encoded));
        assert_eq!(certificate_data(&ca), Some(ca));
        assert_eq!(certificate_data("not a certificate"), None);
    }

    #[test]
    fn a_kubeconfig_output_is_content_or_a_path() {
        let config = config("cluster:\n  namespace: blog\n  kubeconfig: ${terraform.kubeconfig}\n");
        let content = "apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: 'http://x'}\n";
        let values = resolve(&config, &outputs(&[("kubeconfig", content)]), None, true).unwrap();
        let written = values.kubeconfig.clone().unwrap();
        assert_eq!(std::fs::read_to_string(&written).unwrap(), content);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kc"), content).unwrap();
        let values = resolve(
            &config,
            &outputs(&[("kubeconfig", "kc")]),
            Some(dir.path()),
            true,
        )
        .unwrap();
        assert_eq!(values.kubeconfig, Some(dir.path().join("kc")));
        // `~/` is the home directory, not a directory of the module.
        if let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) {
            let in_home = tempfile::tempdir_in(&home).unwrap();
            std::fs::write(in_home.path().join("kc"), content).unwrap();
            let relative = in_home.path().strip_prefix(&home).unwrap();
            let given = format!("~/{}/kc", relative.display());
            let values = resolve(
                &config,
                &outputs(&[("kubeconfig", &given)]),
                Some(Path::new("/nowhere")),
                true,
            )
            .unwrap();
            assert_eq!(values.kubeconfig, Some(in_home.path().join("kc")));
        }

        let missing = resolve(
            &config,
            &outputs(&[("kubeconfig", "nope")]),
            Some(dir.path()),
            true,
        )
        .unwrap_err();
        assert!(
            format!("{missing:#}").contains("config/dev.yaml:3:15"),
            "{missing:#}"
        );
        // A credential that only looks like a path (a base64 kubeconfig) is never repeated.
        let secret = "YXBpVmVyc2lvbjogdjEKY2x1c3RlcnM6IFtdCg";
        let refused = resolve(
            &config,
            &outputs(&[("kubeconfig", secret)]),
            Some(dir.path()),
            true,
        )
        .unwrap_err();
        let text = format!("{refused:#}");
        assert!(
            !text.contains(secret) && text.contains("a value of 38 characters"),
            "{text}"
        );
        let endpoint = config_endpoint();
        let mut values = outputs(&[("ca", ""), ("token", "t")]);
        values.insert(
            "endpoint".into(),
            OutputValue {
                value: Some(serde_json::Value::String("sekrit-host-name".into())),
                sensitive: true,
            },
        );
        let refused = resolve(&endpoint, &values, None, true).unwrap_err();
        assert!(!format!("{refused:#}").contains("sekrit"), "{refused:#}");
        let unset = resolve(&config, &Outputs::new(), None, true).unwrap_err();
        let text = format!("{unset:#}");
        assert!(
            text.contains(
                "the cluster comes from Terraform output `kubeconfig`, which has no value yet"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_registry_output_must_be_a_prefix() {
        let config = config("cluster:\n  namespace: blog\nregistry: ${terraform.registry_url}\n");
        let values = resolve(
            &config,
            &outputs(&[("registry_url", "127.0.0.1:5000/blog")]),
            None,
            true,
        )
        .unwrap();
        assert_eq!(values.registry.as_deref(), Some("127.0.0.1:5000/blog"));
        let bad = resolve(
            &config,
            &outputs(&[("registry_url", "http://r/")]),
            None,
            true,
        )
        .unwrap_err();
        let text = format!("{bad:#}");
        assert!(
            text.contains("`registry_url`") && text.contains("config/dev.yaml:3:11"),
            "{text}"
        );
        assert_eq!(unknown(&config, &Outputs::new(), true).len(), 1);
    }
}
