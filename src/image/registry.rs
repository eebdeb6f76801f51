//! The registry client: does `<registry>/<app>:<tag>` exist, and what is its manifest digest?
//!
//! This is what makes "build only what changed" work: content-addressed tags mean an existing tag
//! is an image that need not be built again. Requests go through the maintained `oci-client`
//! crate (HEAD on the manifest, with its bearer-token challenge handling), with credentials read
//! from `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`, then `$REGISTRY_AUTH_FILE`):
//! `auths` entries (basic) and `credHelpers`/`credsStore` helpers. Registries on loopback
//! (`localhost`, `127.0.0.0/8`, `[::1]`) are spoken to over plain HTTP, as docker does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use gitship_foundation::process::Process;

/// How long to wait for a registry to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a registry's answer once connected.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Something went wrong asking a registry about a manifest.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image repository is not a valid reference.
    #[error("`{reference}` is not a valid image reference: {message}")]
    InvalidReference { reference: String, message: String },
    /// The registry could not be reached at all.
    #[error("registry `{registry}` is unreachable: {message}")]
    Unreachable { registry: String, message: String },
    /// The registry refused our credentials (or we had none and it wants some).
    #[error("registry `{registry}` refused access to `{repository}`: {message}")]
    Unauthorized {
        registry: String,
        repository: String,
        message: String,
    },
    /// The registry answered with something other than a digest or "not found".
    #[error("registry `{registry}` failed for `{repository}`: {message}")]
    Failed {
        registry: String,
        repository: String,
        message: String,
    },
    /// The credentials file exists but cannot be read or parsed.
    #[error("cannot read registry credentials from `{}`: {message}", path.display())]
    Credentials { path: PathBuf, message: String },
}

/// A registry client shared by every app of a run (one HTTP client per registry host).
#[derive(Clone, Default)]
pub struct Registry {
    clients: Arc<Mutex<HashMap<String, Client>>>,
    credentials: Arc<CredentialSources>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("credential_files", &self.credentials.files)
            .finish()
    }
}

/// Where credentials come from: docker-style config files, searched in order.
#[derive(Debug, Default)]
struct CredentialSources {
    files: Vec<PathBuf>,
    /// `PATH` for credential helpers.
    path: Option<std::ffi::OsString>,
}

impl Registry {
    /// A client reading credentials from the standard places of the current environment:
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, then `$REGISTRY_AUTH_FILE` or
    /// `$XDG_RUNTIME_DIR/containers/auth.json` (podman's).
    pub fn new() -> Self {
        let mut files = Vec::new();
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            files.push(PathBuf::from(dir).join("config.json"));
        } else if let Some(home) = std::env::var_os("HOME") {
            files.push(PathBuf::from(home).join(".docker").join("config.json"));
        }
        if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(file));
        } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(dir).join("containers").join("auth.json"));
        }
        Registry::with_credential_files(files)
    }

    /// A client reading credentials only from `files` (docker `config.json` format), in order.
    pub fn with_credential_files(files: Vec<PathBuf>) -> Self {
        Registry {
            clients: Arc::default(),
            credentials: Arc::new(CredentialSources {
                files,
                path: std::env::var_os("PATH"),
            }),
        }
    }

    /// The digest of the manifest tagged `tag` in `image_repository` (`<registry>/<path>`), or
    /// `None` when the tag (or the whole repository) does not exist.
    pub async fn manifest_digest(
        &self,
        image_repository: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        let text = format!("{image_repository}:{tag}");
        let reference: Reference = text.parse().map_err(|error: oci_client::ParseError| {
            RegistryError::InvalidReference {
                reference: text.clone(),
                message: error.to_string(),
            }
        })?;
        let registry = reference.resolve_registry().to_string();
        let auth = self.credentials.lookup(&registry).await?;
        let client = self.client_for(&registry);
        match client.fetch_manifest_digest(&reference, &auth).await {
            Ok(digest) => Ok(Some(digest)),
            Err(error) => classify(error, &registry, reference.repository()),
        }
    }

    fn client_for(&self, registry: &str) -> Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(registry.to_string())
            .or_insert_with(|| {
                gitship_foundation::tls::ensure_crypto_provider();
                let protocol = if is_loopback(registry) {
                    ClientProtocol::Http
                } else {
                    ClientProtocol::Https
                };
                Client::new(ClientConfig {
                    protocol,
                    connect_timeout: Some(CONNECT_TIMEOUT),
                    read_timeout: Some(READ_TIMEOUT),
                    https_proxy: proxy_variable("HTTPS_PROXY"),
                    http_proxy: proxy_variable("HTTP_PROXY"),
                    no_proxy: proxy_variable("NO_PROXY"),
                    user_agent: concat!("gitship/", env!("CARGO_PKG_VERSION")),
                    ..ClientConfig::default()
                })
            })
            .clone()
    }
}

fn proxy_variable(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_ascii_lowercase()).ok())
        .filter(|value| !value.is_empty())
}

/// Turn an oci-client error into "not found" or a [`RegistryError`].
fn classify(
    error: OciDistributionError,
    registry: &str,
    repository: &str,
) -> Result<Option<String>, RegistryError> {
    let failed = |message: String| RegistryError::Failed {
        registry: registry.to_string(),
        repository: repository.to_string(),
        message,
    };
    match error {
        OciDistributionError::RegistryError { envelope, .. } => {
            let missing = envelope.errors.iter().all(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                )
            });
            let denied = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            if !envelope.errors.is_empty() && missing {
                Ok(None)
            } else if denied {
                Err(RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    repository: repository.to_string(),
                    message: envelope.to_string(),
                })
            } else {
                Err(failed(envelope.to_string()))
            }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => Ok(None),
        OciDistributionError::ServerError { code: 404, .. } => Ok(None),
        OciDistributionError::ServerError { code, message, .. } => {
            Err(failed(format!("HTTP {code}: {}", message.trim())))
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            repository: repository.to_string(),
            message: error.to_string(),
        }),
        OciDistributionError::RequestError(request)
            if request.is_connect() || request.is_timeout() =>
        {
            Err(RegistryError::Unreachable {
                registry: registry.to_string(),
                message: gitship_foundation::diagnostics::error_chain(&request),
            })
        }
        other => Err(failed(gitship_foundation::diagnostics::error_chain(&other))),
    }
}

/// Whether `registry` (`host[:port]`) is on the loopback interface.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match registry.rsplit_once(':') {
            Some((host, port))
                if port.chars().all(|c| c.is_ascii_digit()) && !host.contains(':') =>
            {
                host
            }
            _ => registry,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The key a docker config uses for `registry`, normalised: scheme and path dropped, Docker Hub's
/// many names folded into one.
fn normalise_registry_key(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The parts of a docker `config.json` (or podman `auth.json`) that matter here.
#[derive(Debug, Default, serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    credential_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    credentials_store: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

/// The answer of `docker-credential-<helper> get`.
#[derive(serde::Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl CredentialSources {
    /// The credentials for `registry`, or anonymous access when no source has any.
    async fn lookup(&self, registry: &str) -> Result<RegistryAuth, RegistryError> {
        let wanted = normalise_registry_key(registry);
        for file in &self.files {
            let Some(config) = read_config(file)? else {
                continue;
            };
            if let Some(auth) = self
                .credentials_in_config(&config, &wanted, registry, file)
                .await?
            {
                return Ok(auth);
            }
        }
        Ok(RegistryAuth::Anonymous)
    }

    async fn credentials_in_config(
        &self,
        config: &DockerConfig,
        wanted: &str,
        registry: &str,
        file: &Path,
    ) -> Result<Option<RegistryAuth>, RegistryError> {
        let helper = config
            .credential_helpers
            .iter()
            .find(|(key, _)| normalise_registry_key(key) == wanted)
            .map(|(_, helper)| helper)
            .or(config.credentials_store.as_ref());
        let entry = config
            .auths
            .iter()
            .find(|(key, _)| normalise_registry_key(key) == wanted);
        if let Some((_, entry)) = entry
            && let Some(auth) = entry_auth(entry, file)?
        {
            return Ok(Some(auth));
        }
        if let Some(helper) = helper {
            return self.credentials_from_helper(helper, registry).await;
        }
        Ok(None)
    }

    /// Ask `docker-credential-<helper>` (as docker does); a helper that knows nothing about the
    /// registry means anonymous access.
    async fn credentials_from_helper(
        &self,
        helper: &str,
        registry: &str,
    ) -> Result<Option<RegistryAuth>, RegistryError> {
        let server = if normalise_registry_key(registry) == "docker.io" {
            "https://index.docker.io/v1/".to_string()
        } else {
            registry.to_string()
        };
        let mut process = Process::new(format!("docker-credential-{helper}"))
            .arg("get")
            .stdin(server.into_bytes())
            .inherit_env(|key| {
                matches!(
                    key,
                    "HOME" | "XDG_RUNTIME_DIR" | "DBUS_SESSION_BUS_ADDRESS" | "DISPLAY"
                )
            });
        if let Some(path) = &self.path {
            process = process.env("PATH", path);
        }
        let Ok(output) = process.run().await else {
            tracing::debug!(helper, registry, "credential helper has no credentials");
            return Ok(None);
        };
        match serde_json::from_slice::<HelperCredentials>(&output.stdout) {
            Ok(credentials) if credentials.username == "<token>" => {
                Ok(Some(RegistryAuth::Bearer(credentials.secret)))
            }
            Ok(credentials) => Ok(Some(RegistryAuth::Basic(
                credentials.username,
                credentials.secret,
            ))),
            Err(_) => Ok(None),
        }
    }
}

/// The credentials a docker `config.json` (its text) stores inline for `registry` (`auths`:
/// `auth`, `username`/`password` or `registrytoken`), without asking a credential helper;
/// `None` when it has none: the inline part of what [`CredentialSources::lookup`] reads. For
/// the fuzzer.
pub fn stored_credentials(
    config: &str,
    registry: &str,
) -> Result<Option<RegistryAuth>, RegistryError> {
    let file = Path::new("config.json");
    let config: DockerConfig =
        serde_json::from_str(config).map_err(|error| RegistryError::Credentials {
            path: file.to_path_buf(),
            message: error.to_string(),
        })?;
    let wanted = normalise_registry_key(registry);
    match config
        .auths
        .iter()
        .find(|(key, _)| normalise_registry_key(key) == wanted)
    {
        Some((_, entry)) => entry_auth(entry, file),
        None => Ok(None),
    }
}

fn read_config(file: &Path) -> Result<Option<DockerConfig>, RegistryError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(RegistryError::Credentials {
                path: file.to_path_buf(),
                message: error.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| RegistryError::Credentials {
            path: file.to_path_buf(),
            message: error.to_string(),
        })
}

fn entry_auth(entry: &AuthEntry, file: &Path) -> Result<Option<RegistryAuth>, RegistryError> {
    if let Some(token) = entry.registry_token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(RegistryAuth::Bearer(token.clone())));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(RegistryAuth::Basic(
            username.clone(),
            password.clone(),
        )));
    }
    let Some(encoded) = entry.auth.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let invalid = || RegistryError::Credentials {
        path: file.to_path_buf(),
        message: "an `auth` entry is not base64 of `user:password`".to_string(),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
    Ok(Some(RegistryAuth::Basic(
        username.to_string(),
        password.to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        for registry in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(registry), "{registry}");
        }
        for registry in [
            "ghcr.io",
            "10.0.0.1:5000",
            "registry.example.com:443",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(registry), "{registry}");
        }
    }

    #[test]
    fn registry_keys_are_normalised() {
        assert_eq!(
            normalise_registry_key("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalise_registry_key("index.docker.io"), "docker.io");
        assert_eq!(normalise_registry_key("https://GHCR.io"), "ghcr.io");
        assert_eq!(normalise_registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[tokio::test]
    async fn credentials_come_from_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(
                r#"{{"auths": {{"https://registry.example.com": {{"auth": "{encoded}"}},
                    "other.example.com": {{"username": "bob", "password": "pw"}}}}}}"#
            ),
        )
        .unwrap();
        let sources = CredentialSources {
            files: vec![file.clone()],
            path: None,
        };
        assert_eq!(
            sources.lookup("registry.example.com").await.unwrap(),
            RegistryAuth::Basic("alice".into(), "s3cret".into())
        );
        assert_eq!(
            sources.lookup("other.example.com").await.unwrap(),
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(
            sources.lookup("ghcr.io").await.unwrap(),
            RegistryAuth::Anonymous
        );

        std::fs::write(&file, "{not json").unwrap();
        let error = sources.lookup("ghcr.io").await.unwrap_err();
        assert!(error.to_string().contains("config.json"), "{error}");
    }

    #[tokio::test]
    async fn missing_credential_files_mean_anonymous() {
        let sources = CredentialSources {
            files: vec![PathBuf::from("/nonexistent/config.json")],
            path: None,
        };
        assert_eq!(
            sources.lookup("ghcr.io").await.unwrap(),
            RegistryAuth::Anonymous
        );
    }

    /// How the fake registry wants to be authenticated.
    #[derive(Clone, Copy)]
    enum Challenge {
        /// `WWW-Authenticate: Bearer realm=.../token`: a token for basic credentials.
        Bearer,
        /// `WWW-Authenticate: Basic`: basic credentials on every request.
        Basic,
    }

    const DIGEST: &str = "sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

    /// A registry speaking just enough of the distribution API (and its auth) for a manifest
    /// HEAD: `web:t1` exists, anything else is unknown; credentials are `alice:s3cret`.
    async fn fake_registry(challenge: Challenge) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{address}/token");
        tokio::spawn(async move {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
            );
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (realm, basic) = (realm.clone(), basic.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).to_string();
                    let mut words = text.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let authorization = text
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        })
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default();
                    let authorized = match challenge {
                        Challenge::Bearer => authorization == "Bearer tok123",
                        Challenge::Basic => authorization == basic,
                    };
                    let unauthorized = match challenge {
                        Challenge::Bearer => format!(
                            "401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\""
                        ),
                        Challenge::Basic => {
                            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fake\"".to_string()
                        }
                    };
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                    let (head, body) = if path.starts_with("/token") {
                        if authorization == basic && path.contains("scope=repository%3Aweb%3Apull")
                        {
                            ("200 OK".to_string(), r#"{"token":"tok123"}"#)
                        } else {
                            ("401 Unauthorized".to_string(), "{}")
                        }
                    } else if !authorized {
                        (unauthorized, body)
                    } else if path == "/v2/" {
                        ("200 OK".to_string(), "{}")
                    } else if path == "/v2/web/manifests/t1" {
                        (
                            format!(
                                "200 OK\r\nDocker-Content-Digest: {DIGEST}\r\n\
                                 Content-Type: application/vnd.oci.image.manifest.v1+json"
                            ),
                            "{}",
                        )
                    } else {
                        (
                            "404 Not Found".to_string(),
                            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#,
                        )
                    };
                    let body = if method == "HEAD" { "" } else { body };
                    let response = format!(
                        "HTTP/1.1 {head}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        address
    }

    fn credentials_for(address: &str, dir: &Path) -> PathBuf {
        let file = dir.join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths": {{"{address}": {{"auth": "{encoded}"}}}}}}"#),
        )
        .unwrap();
        file
    }

    #[tokio::test]
    async fn bearer_challenges_are_answered_with_docker_config_credentials() {
        for challenge in [Challenge::Bearer, Challenge::Basic] {
            let address = fake_registry(challenge).await;
            let dir = tempfile::tempdir().unwrap();
            let registry =
                Registry::with_credential_files(vec![credentials_for(&address, dir.path())]);
            let repository = format!("{address}/web");
            assert_eq!(
                registry
                    .manifest_digest(&repository, "t1")
                    .await
                    .unwrap()
                    .as_deref(),
                Some(DIGEST)
            );
            assert_eq!(
                registry.manifest_digest(&repository, "t2").await.unwrap(),
                None
            );

            let anonymous = Registry::with_credential_files(Vec::new());
            let error = anonymous
                .manifest_digest(&repository, "t1")
                .await
                .unwrap_err();
            assert!(
                matches!(error, RegistryError::Unauthorized { .. }),
                "{error}"
            );
            assert!(!error.to_string().contains("s3cret"), "{error}");
        }
    }
}
