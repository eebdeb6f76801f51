//! One `kube::Client` per environment.
//!
//! The kubeconfig comes from, in order: an explicit file (`--kubeconfig` or the environment's
//! `cluster.kubeconfig`), `KUBECONFIG` (a list of files, merged), `~/.kube/config`; when none
//! exists, the in-cluster service-account config is used (in a pod, whatever context the
//! environment names: the agent runs with the same environment config as a laptop). The
//! command builds the client once and passes it down: nothing below calls `Client::try_default`.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::KubeError;

/// Where to find the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// An explicit kubeconfig file; `None` = `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None` = the current context.
    pub context: Option<String>,
}

/// Which cluster a client talks to, and as whom: for messages about reaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context (`None`: in-cluster, or the sandbox).
    pub context: Option<String>,
    /// The kubeconfig user of that context, when it names one.
    pub user: Option<String>,
}

impl ClusterIdentity {
    /// `https://10.0.0.1:6443 (context `prod`)`.
    pub fn describe(&self) -> String {
        match &self.context {
            Some(context) => format!("`{}` (context `{context}`)", self.server),
            None => format!("`{}`", self.server),
        }
    }
}

/// The kubeconfig context and user `options` select, read from the same files as [`config`]
/// (`None`s when no kubeconfig is readable: in-cluster).
fn context_and_user(options: &ClientOptions) -> (Option<String>, Option<String>) {
    let kubeconfig = match &options.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok(),
        None => Kubeconfig::read().ok(),
    };
    let Some(kubeconfig) = kubeconfig else {
        return (None, None);
    };
    let context = options
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let user = context.as_ref().and_then(|name| {
        kubeconfig
            .contexts
            .iter()
            .find(|named| &named.name == name)
            .and_then(|named| named.context.as_ref())
            .and_then(|context| context.user.clone())
    });
    (context, user)
}

/// A client for `options`, and who it talks to as whom.
pub async fn connect_with_identity(
    options: &ClientOptions,
) -> Result<(Client, ClusterIdentity), KubeError> {
    let config = config(options).await?;
    let (context, user) = context_and_user(options);
    let identity = ClusterIdentity {
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string(),
        context,
        user,
    };
    Ok((client_from(config)?, identity))
}

/// The `kube::Config` for `options` (no connection is made).
pub async fn config(options: &ClientOptions) -> Result<Config, KubeError> {
    let context_options = KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let mut config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                    path: Some(path.clone()),
                    source,
                })?;
            Config::from_custom_kubeconfig(kubeconfig, &context_options)
                .await
                .map_err(|source| KubeError::Kubeconfig {
                    path: Some(path.clone()),
                    source,
                })?
        }
        None => match Kubeconfig::read() {
            Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &context_options)
                .await
                .map_err(|source| KubeError::Kubeconfig { path: None, source })?,
            Err(source) => {
                without_kubeconfig(source, options.context.as_deref(), Config::incluster())?
            }
        },
    };
    prepare(&mut config);
    Ok(config)
}

/// No kubeconfig file exists: in a pod (the agent), the service account's in-cluster config,
/// whatever context the environment names (a context is an entry of the kubeconfig of those who
/// deploy from outside the cluster; a pod has none); elsewhere, the missing kubeconfig is the
/// error.
fn without_kubeconfig(
    source: kube::config::KubeconfigError,
    context: Option<&str>,
    incluster: Result<Config, kube::config::InClusterError>,
) -> Result<Config, KubeError> {
    match incluster {
        Ok(config) => {
            if let Some(context) = context {
                tracing::debug!(
                    "no kubeconfig: using the in-cluster config, not the context `{context}`"
                );
            }
            Ok(config)
        }
        Err(_) if context.is_some() => Err(KubeError::Kubeconfig { path: None, source }),
        Err(_) => Err(KubeError::NoConfig { source }),
    }
}

/// Adjust a config for gitship: gitship retries itself (classifying errors per request, see
/// [`crate::retry`]), so kube's built-in retry layer is off; requests time out instead of
/// hanging on a dead connection.
pub fn prepare(config: &mut Config) {
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
}

/// A client for `options`.
pub async fn connect(options: &ClientOptions) -> Result<Client, KubeError> {
    let config = config(options).await?;
    client_from(config)
}

/// A client for an already built config (tests and `--sandbox` pass kubesim's config here).
pub fn client_from(mut config: Config) -> Result<Client, KubeError> {
    gitship_foundation::tls::ensure_crypto_provider();
    prepare(&mut config);
    Client::try_from(config).map_err(|source| KubeError::Client { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: { server: "http://127.0.0.1:1" }
- name: prod
  cluster: { server: "http://127.0.0.1:2" }
contexts:
- name: dev
  context: { cluster: dev, user: me, namespace: dev-ns }
- name: prod
  context: { cluster: prod, user: me }
users:
- name: me
  user: { token: abc }
"#;

    #[tokio::test]
    async fn explicit_file_and_context_select_the_cluster() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let dev = config(&ClientOptions {
            kubeconfig: Some(path.clone()),
            context: None,
        })
        .await
        .unwrap();
        assert_eq!(dev.cluster_url.to_string(), "http://127.0.0.1:1/");
        assert!(!dev.default_retry);
        let prod = config(&ClientOptions {
            kubeconfig: Some(path.clone()),
            context: Some("prod".into()),
        })
        .await
        .unwrap();
        assert_eq!(prod.cluster_url.to_string(), "http://127.0.0.1:2/");
        let missing = config(&ClientOptions {
            kubeconfig: Some(path),
            context: Some("nope".into()),
        })
        .await;
        assert!(matches!(missing, Err(KubeError::Kubeconfig { .. })));
    }

    #[test]
    fn without_a_kubeconfig_a_pod_uses_its_service_account() {
        let missing = || Kubeconfig::read_from("/nonexistent/kubeconfig").unwrap_err();
        let not_in_a_pod = || {
            Err(kube::config::InClusterError::ReadEnvironmentVariable(
                std::env::VarError::NotPresent,
            ))
        };
        let pod = || Ok(Config::new("https://10.96.0.1".parse().unwrap()));
        for context in [None, Some("kind-blog")] {
            let config = without_kubeconfig(missing(), context, pod()).unwrap();
            assert_eq!(config.cluster_url.to_string(), "https://10.96.0.1/");
        }
        assert!(matches!(
            without_kubeconfig(missing(), Some("kind-blog"), not_in_a_pod()),
            Err(KubeError::Kubeconfig { path: None, .. })
        ));
        assert!(matches!(
            without_kubeconfig(missing(), None, not_in_a_pod()),
            Err(KubeError::NoConfig { .. })
        ));
    }

    #[tokio::test]
    async fn missing_file_is_named() {
        let error = config(&ClientOptions {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            context: None,
        })
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/kubeconfig"),
            "{error}"
        );
    }
}
