//! The image builders gitship drives: `docker`, `podman` and `buildah`, each through its CLI with
//! argv (never a shell string) and an explicit environment.
//!
//! A builder builds one app (`-f`, context, `--build-arg`, `--target`, OCI labels for revision and
//! source), pushes it, and reports the digest the registry stored: podman and buildah write it to
//! a `--digestfile`; docker's comes from `docker image inspect` (`RepoDigests`), and the caller
//! falls back to asking the registry when docker does not say.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use gitship_foundation::process::{Process, ProcessError, ProcessOutput};

/// An image builder CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    Docker,
    Podman,
    Buildah,
}

/// Choosing a builder failed.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// The configured builder name is not one gitship knows.
    #[error("unknown image builder `{name}`: expected `docker`, `podman` or `buildah`")]
    Unknown { name: String },
    /// The configured builder is not installed or does not work.
    #[error("image builder `{builder}` does not work here")]
    Unavailable {
        builder: &'static str,
        #[source]
        source: Box<ProcessError>,
    },
    /// None of the builders works.
    #[error("no image builder works here (tried `docker`, `podman` and `buildah`)")]
    NoneAvailable,
}

/// What to build: one app's image.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    /// `<registry>/<app>:<tag>`.
    pub reference: &'a str,
    pub dockerfile: &'a Path,
    pub context: &'a Path,
    pub build_args: &'a BTreeMap<String, String>,
    pub target: Option<&'a str>,
    /// OCI labels (`org.opencontainers.image.revision`, `...source`).
    pub labels: &'a BTreeMap<String, String>,
}

/// Environment variables a builder needs from gitship's own environment: where it is installed,
/// how to reach its daemon or storage, credentials files and proxies. Nothing else is passed on.
pub fn keep_variable(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "TZ",
        "TMPDIR",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "DBUS_SESSION_BUS_ADDRESS",
        "REGISTRY_AUTH_FILE",
        "STORAGE_DRIVER",
        "STORAGE_OPTS",
        "CONTAINER_HOST",
        "CONTAINER_CONNECTION",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
    ];
    const PREFIXES: &[&str] = &["DOCKER_", "CONTAINERS_", "BUILDAH_", "PODMAN_", "LC_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// The environment builders run with: the kept variables of gitship's environment, then
/// `overrides` on top.
pub fn builder_environment(
    overrides: &BTreeMap<OsString, OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut environment: BTreeMap<OsString, OsString> = std::env::vars_os()
        .filter(|(key, _)| key.to_str().is_some_and(keep_variable))
        .collect();
    environment.extend(
        overrides
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    environment
}

impl Builder {
    /// Every builder, in auto-detection order.
    pub const ALL: [Builder; 3] = [Builder::Docker, Builder::Podman, Builder::Buildah];

    /// The builder's name (and program).
    pub fn name(self) -> &'static str {
        match self {
            Builder::Docker => "docker",
            Builder::Podman => "podman",
            Builder::Buildah => "buildah",
        }
    }

    /// The builder called `name`.
    pub fn from_name(name: &str) -> Result<Builder, BuilderError> {
        Builder::ALL
            .into_iter()
            .find(|builder| builder.name() == name)
            .ok_or_else(|| BuilderError::Unknown {
                name: name.to_string(),
            })
    }

    /// The configured builder if it works, otherwise (when none is configured) the first of
    /// docker, podman and buildah that works, with builders run in `environment`.
    pub async fn detect_in(
        preferred: Option<&str>,
        environment: &BTreeMap<OsString, OsString>,
    ) -> Result<Builder, BuilderError> {
        if let Some(name) = preferred {
            let builder = Builder::from_name(name)?;
            return match builder.probe(environment).await {
                Ok(()) => Ok(builder),
                Err(source) => Err(BuilderError::Unavailable {
                    builder: builder.name(),
                    source: Box::new(source),
                }),
            };
        }
        for builder in Builder::ALL {
            match builder.probe(environment).await {
                Ok(()) => return Ok(builder),
                Err(error) => {
                    tracing::debug!(builder = builder.name(), %error, "builder not usable")
                }
            }
        }
        Err(BuilderError::NoneAvailable)
    }

    /// Check that the builder runs (for docker: that the engine answers).
    async fn probe(self, environment: &BTreeMap<OsString, OsString>) -> Result<(), ProcessError> {
        let args: &[&str] = match self {
            Builder::Docker => &["version", "--format", "{{.Server.Version}}"],
            Builder::Podman | Builder::Buildah => &["version"],
        };
        self.command(environment).args(args).run().await.map(|_| ())
    }

    fn command(self, environment: &BTreeMap<OsString, OsString>) -> Process {
        let mut process = Process::new(self.name());
        process.env = environment.clone();
        process
    }

    /// The argv of a build (without the program).
    pub fn build_args(self, spec: &ImageSpec<'_>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["build".into()];
        args.push("-f".into());
        args.push(spec.dockerfile.into());
        args.push("-t".into());
        args.push(spec.reference.into());
        for (key, value) in spec.build_args {
            args.push("--build-arg".into());
            args.push(format!("{key}={value}").into());
        }
        if let Some(target) = spec.target {
            args.push("--target".into());
            args.push(target.into());
        }
        for (key, value) in spec.labels {
            args.push("--label".into());
            args.push(format!("{key}={value}").into());
        }
        args.push(spec.context.into());
        args
    }

    /// Build the image, calling `on_line` for every line of the builder's output.
    pub async fn build(
        self,
        spec: &ImageSpec<'_>,
        environment: &BTreeMap<OsString, OsString>,
        on_line: impl FnMut(&str) + Send,
    ) -> Result<ProcessOutput, ProcessError> {
        self.command(environment)
            .args(self.build_args(spec))
            .cwd(spec.context)
            .run_streaming(on_line)
            .await
    }

    /// Push `reference` and return the digest of the pushed manifest when the builder reports it
    /// (`None`: ask the registry). `insecure` allows plain HTTP (loopback registries).
    ///
    /// docker reports none that can be trusted: the `RepoDigests` of the local image are the
    /// registry's digest with Docker's engine, but a docker-compatible CLI on podman
    /// (podman-docker) lists the digest of the local manifest, which differs from the one it
    /// pushed. The registry's answer is the digest every pull gets.
    pub async fn push(
        self,
        reference: &str,
        insecure: bool,
        environment: &BTreeMap<OsString, OsString>,
        on_line: impl FnMut(&str) + Send,
    ) -> Result<Option<String>, PushError> {
        match self {
            Builder::Docker => {
                self.command(environment)
                    .args(["push", reference])
                    .run_streaming(on_line)
                    .await?;
                Ok(None)
            }
            Builder::Podman | Builder::Buildah => {
                let scratch = tempfile::tempdir().map_err(PushError::DigestFile)?;
                let digest_file: PathBuf = scratch.path().join("digest");
                let mut process = self
                    .command(environment)
                    .arg("push")
                    .arg("--digestfile")
                    .arg(&digest_file);
                if insecure {
                    process = process.arg("--tls-verify=false");
                }
                process = process.arg(reference).arg(format!("docker://{reference}"));
                process.run_streaming(on_line).await?;
                let digest =
                    std::fs::read_to_string(&digest_file).map_err(PushError::DigestFile)?;
                Ok(Some(digest.trim().to_string()).filter(|d| d.starts_with("sha256:")))
            }
        }
    }
}

/// Pushing failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The builder's push (or inspect) failed.
    #[error(transparent)]
    Process(Box<ProcessError>),
    /// The digest file podman/buildah wrote cannot be read.
    #[error("cannot read the pushed digest: {0}")]
    DigestFile(#[source] std::io::Error),
}

impl From<ProcessError> for PushError {
    fn from(error: ProcessError) -> Self {
        PushError::Process(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_argv_carries_file_args_target_labels_and_context() {
        let build_args = BTreeMap::from([("MODE".to_string(), "release".to_string())]);
        let labels = BTreeMap::from([(
            "org.opencontainers.image.revision".to_string(),
            "abc".to_string(),
        )]);
        let spec = ImageSpec {
            reference: "127.0.0.1:5000/web:t1",
            dockerfile: Path::new("/repo/apps/web/Dockerfile"),
            context: Path::new("/repo/apps/web"),
            build_args: &build_args,
            target: Some("runtime"),
            labels: &labels,
        };
        let args: Vec<String> = Builder::Podman
            .build_args(&spec)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "build",
                "-f",
                "/repo/apps/web/Dockerfile",
                "-t",
                "127.0.0.1:5000/web:t1",
                "--build-arg",
                "MODE=release",
                "--target",
                "runtime",
                "--label",
                "org.opencontainers.image.revision=abc",
                "/repo/apps/web",
            ]
        );
    }

    #[test]
    fn only_builder_relevant_variables_are_kept() {
        for name in [
            "PATH",
            "HOME",
            "DOCKER_HOST",
            "CONTAINERS_STORAGE_CONF",
            "BUILDAH_ISOLATION",
            "https_proxy",
        ] {
            assert!(keep_variable(name), "{name}");
        }
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "TF_VAR_password",
            "KUBECONFIG",
            "GITHUB_TOKEN",
        ] {
            assert!(!keep_variable(name), "{name}");
        }
    }

    #[test]
    fn builder_names_round_trip() {
        for builder in Builder::ALL {
            assert_eq!(Builder::from_name(builder.name()).unwrap(), builder);
        }
        assert!(matches!(
            Builder::from_name("kaniko"),
            Err(BuilderError::Unknown { .. })
        ));
    }
}
