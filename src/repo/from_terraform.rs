//! Config values an environment takes from its Terraform outputs: the cluster
//! (`cluster.kubeconfig`, or `cluster.server`, `cluster.certificate_authority` and
//! `cluster.token`) and the `registry`, each written as `${terraform.NAME}`, so that a deploy on
//! an empty account creates the cluster and registry first and then deploys to them
//! (ARCHITECTURE.md, "A deploy, end to end": bootstrap).
//!
//! Only whole `${terraform.NAME}` references are allowed in these keys: anything else with `${`
//! is refused at its line, and so is a literal `cluster.server`, `cluster.certificate_authority`
//! or `cluster.token` (a token in a config file is a secret in Git). The values themselves are
//! known only once Terraform has run; `ops::cluster_source` resolves them.

use gitship_foundation::diagnostics::Location;

use crate::repo::RepoError;
use crate::repo::reader::{Reader, find};
use crate::repo::yaml::Node;

/// One config key written as `${terraform.NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRef {
    /// The Terraform output's name.
    pub output: String,
    /// The config key (`cluster.kubeconfig`, `registry`, ...).
    pub key: &'static str,
    /// Where the reference was written.
    pub location: Location,
}

impl OutputRef {
    /// `` `registry: ${terraform.registry_url}` (config/dev.yaml:4:11) ``, for messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}: ${{terraform.{}}}` ({})",
            self.key, self.output, self.location
        )
    }
}

/// Where an environment's cluster comes from when Terraform makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterFromTerraform {
    /// `cluster.kubeconfig: ${terraform.NAME}`: a kubeconfig file's path, or its content.
    Kubeconfig(OutputRef),
    /// `cluster.server` with `cluster.token` (and `cluster.certificate_authority`, else the
    /// system's trust roots).
    Endpoint {
        server: OutputRef,
        certificate_authority: Option<OutputRef>,
        token: OutputRef,
    },
}

impl ClusterFromTerraform {
    /// Every reference, in the order the connection needs them.
    pub fn references(&self) -> Vec<&OutputRef> {
        match self {
            ClusterFromTerraform::Kubeconfig(kubeconfig) => vec![kubeconfig],
            ClusterFromTerraform::Endpoint {
                server,
                certificate_authority,
                token,
            } => std::iter::once(server)
                .chain(certificate_authority)
                .chain(std::iter::once(token))
                .collect(),
        }
    }
}

/// The keys of `cluster` that may only be `${terraform.NAME}`.
pub const ENDPOINT_KEYS: [&str; 3] = ["server", "certificate_authority", "token"];

/// The output `text` names when it is exactly `${terraform.NAME}`; `Ok(None)` for text without
/// `${`; an error for any other use of `${` (only a whole reference is allowed in these keys).
pub fn reference(
    reader: &Reader,
    node: &Node,
    key: &'static str,
    text: &str,
) -> Result<Option<OutputRef>, RepoError> {
    if !text.contains("${") {
        return Ok(None);
    }
    let name = text
        .trim()
        .strip_prefix("${terraform.")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|name| is_output_name(name));
    match name {
        Some(name) => Ok(Some(OutputRef {
            output: name.to_string(),
            key,
            location: reader.location(node),
        })),
        None => Err(RepoError::TerraformReference {
            location: reader.location(node),
            key: key.to_string(),
            message: "may hold `${...}` only as a whole `${terraform.NAME}` reference".into(),
            hint: format!(
                "write the value itself, or `{key}: ${{terraform.NAME}}` naming an output of the environment's Terraform module"
            ),
        }),
    }
}

/// Whether `name` is a Terraform identifier (letters, digits, `_` and `-`, not starting with a
/// digit or `-`).
fn is_output_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `cluster.server`, `cluster.certificate_authority` and `cluster.token`, each a
/// `${terraform.NAME}` reference; `None` when none is written. `kubeconfig` and `context` are
/// the other keys of the section, which an endpoint excludes.
pub fn parse_endpoint(
    reader: &Reader,
    entries: &[(Node, Node)],
    cluster_node: &Node,
) -> Result<Option<ClusterFromTerraform>, RepoError> {
    let mut found = [None, None, None];
    for (slot, name) in found.iter_mut().zip(ENDPOINT_KEYS) {
        if let Some(node) = find(entries, name) {
            *slot = Some(required_reference(reader, node, name)?);
        }
    }
    let [server, certificate_authority, token] = found;
    let Some(server) = server else {
        return match certificate_authority.or(token) {
            Some(orphan) => Err(endpoint_error(
                orphan.location.clone(),
                orphan.key,
                "is only used with `cluster.server`",
                "add `cluster.server: ${terraform.NAME}` (the API server's URL), or remove it",
            )),
            None => Ok(None),
        };
    };
    for other in ["kubeconfig", "context"] {
        if let Some(node) = find(entries, other) {
            return Err(endpoint_error(
                reader.location(node),
                if other == "kubeconfig" {
                    "cluster.kubeconfig"
                } else {
                    "cluster.context"
                },
                "cannot be used with `cluster.server`: the server, its certificate authority and the token say where and as whom to connect",
                "keep either `cluster.kubeconfig` or `cluster.server` with `cluster.token`",
            ));
        }
    }
    let Some(token) = token else {
        return Err(endpoint_error(
            reader.location(cluster_node),
            "cluster.token",
            "is required with `cluster.server`",
            "add `cluster.token: ${terraform.NAME}` naming a sensitive output (on EKS: `data.aws_eks_cluster_auth.this.token`)",
        ));
    };
    Ok(Some(ClusterFromTerraform::Endpoint {
        server,
        certificate_authority,
        token,
    }))
}

/// The `${terraform.NAME}` reference of `cluster.<name>`: a literal is refused (for the token,
/// without ever repeating it).
fn required_reference(
    reader: &Reader,
    node: &Node,
    name: &'static str,
) -> Result<OutputRef, RepoError> {
    let key = match name {
        "server" => "cluster.server",
        "certificate_authority" => "cluster.certificate_authority",
        _ => "cluster.token",
    };
    let literal = || {
        let hint = match name {
            "token" => {
                "a token in a config file is a secret in Git: make it a sensitive Terraform output and write `cluster.token: ${terraform.NAME}`, or give a kubeconfig with `--kubeconfig`"
            }
            _ => {
                "write `${terraform.NAME}` naming an output of the environment's Terraform module, or use `cluster.kubeconfig` for a cluster gitship does not create"
            }
        };
        endpoint_error(
            reader.location(node),
            key,
            "must be a `${terraform.NAME}` reference, not a literal value",
            hint,
        )
    };
    let text = reader.string(node, key).map_err(|_| literal())?;
    reference(reader, node, key, &text)?.ok_or_else(literal)
}

fn endpoint_error(location: Location, key: &str, message: &str, hint: &str) -> RepoError {
    RepoError::TerraformReference {
        location,
        key: key.to_string(),
        message: message.to_string(),
        hint: hint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::repo::config::EnvConfig;
    use std::path::Path;

    fn parse(text: &str) -> Result<EnvConfig, String> {
        EnvConfig::parse(
            "dev",
            Path::new("/r/config/dev.yaml"),
            Path::new("config/dev.yaml"),
            text,
        )
        .map_err(|error| format!("{error} | {}", error.hint().unwrap_or_default()))
    }

    #[test]
    fn a_kubeconfig_output_makes_the_cluster_come_from_terraform() {
        let config =
            parse("cluster:\n  namespace: blog\n  kubeconfig: ${terraform.kubeconfig}\n").unwrap();
        assert!(config.cluster_from_terraform());
        assert_eq!(config.cluster.kubeconfig, None);
        let literal = parse("cluster:\n  namespace: blog\n  kubeconfig: ~/.kube/dev\n").unwrap();
        assert!(!literal.cluster_from_terraform());
    }

    #[test]
    fn an_endpoint_needs_references_and_a_token() {
        let config = parse(
            "cluster:\n  namespace: blog\n  server: ${terraform.endpoint}\n  certificate_authority: ${terraform.ca}\n  token: ${terraform.token}\nregistry: ${terraform.registry_url}\n",
        )
        .unwrap();
        assert!(config.cluster_from_terraform());
        assert_eq!(
            config.registry_output.as_ref().map(|r| r.output.as_str()),
            Some("registry_url")
        );
        assert_eq!(config.registry, None);

        let literal = parse(
            "cluster:\n  namespace: blog\n  server: ${terraform.endpoint}\n  token: s3cr3t-literal-token\n",
        )
        .unwrap_err();
        assert!(literal.contains("config/dev.yaml:4:10"), "{literal}");
        assert!(literal.contains("sensitive Terraform output"), "{literal}");
        assert!(!literal.contains("s3cr3t"), "{literal}");

        let missing =
            parse("cluster:\n  namespace: blog\n  server: ${terraform.endpoint}\n").unwrap_err();
        assert!(missing.contains("`cluster.token`"), "{missing}");
        let orphan = parse("cluster:\n  namespace: blog\n  token: ${terraform.t}\n").unwrap_err();
        assert!(
            orphan.contains("only used with `cluster.server`"),
            "{orphan}"
        );
        let both = parse(
            "cluster:\n  namespace: blog\n  kubeconfig: x\n  server: ${terraform.e}\n  token: ${terraform.t}\n",
        )
        .unwrap_err();
        assert!(both.contains("config/dev.yaml:3:15"), "{both}");
    }

    #[test]
    fn only_whole_terraform_references_are_allowed() {
        for text in [
            "registry: ${values.registry}\n",
            "registry: ghcr.io/${terraform.org}\n",
            "registry: ${terraform.}\n",
        ] {
            let error = parse(&format!("cluster:\n  namespace: blog\n{text}")).unwrap_err();
            assert!(
                error.contains("config/dev.yaml:3:11") && error.contains("${terraform.NAME}"),
                "{text}: {error}"
            );
        }
        let error =
            parse("cluster:\n  namespace: blog\n  kubeconfig: ${env.KUBECONFIG}\n").unwrap_err();
        assert!(error.contains("config/dev.yaml:3:15"), "{error}");
    }
}
