//! [`Terraform`]: one environment's Terraform, driven through the CLI.
//!
//! Every child runs through [`gitship_foundation::process::Process`] (argv, own process group, SIGINT with a
//! bounded grace on interrupt so Terraform releases its state lock; output through private files
//! rather than pipes, so a Terraform whose gitship was killed finishes, writes its state and
//! releases its lock instead of dying of SIGPIPE: see [`gitship_foundation::process`]) with the allowlisted
//! environment of [`crate::terraform::environment`], `TF_DATA_DIR` set to the environment's data
//! directory and, after `init`, `TF_WORKSPACE` set to its workspace. Failures are read from the
//! `-json` diagnostics.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::terraform::binary::{BinaryKind, MINIMUM_VERSION, Version, parse_version_json};
use crate::terraform::error::{Diagnostic, LockInfo, TerraformError};
use crate::terraform::plan::{DriftReport, PlanMode, PlanSummary};
use crate::terraform::static_check::{ModuleInfo, check_static, inspect_module};
use crate::terraform::{TerraformSettings, environment, parse_outputs_json};
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{KnownSecrets, Outputs};
use gitship_foundation::process::{Process, ProcessError, ProcessOutput};

/// The fingerprint of the last successful `init`, in the data directory.
const INIT_FINGERPRINT_FILE: &str = "gitship-init.sha256";
/// The generated variables file, in the data directory.
const VAR_FILE: &str = "gitship.tfvars.json";
/// The generated backend configuration (`terraform.backend_config`), in the data directory.
const BACKEND_CONFIG_FILE: &str = "gitship-backend.tfbackend";
/// The dependency lock file, in the module directory.
const LOCK_FILE: &str = ".terraform.lock.hcl";
/// How many trailing stderr lines a failure keeps.
const STDERR_TAIL_LINES: usize = 20;

/// Whether [`Terraform::init_if_needed`] ran `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// `init` ran (first time, or its inputs changed).
    Ran,
    /// Lock file, backend config and module sources were unchanged since the last successful
    /// `init`: skipped.
    Skipped,
}

/// A progress callback: one human line per Terraform event (already redacted).
pub type ProgressFn = Arc<dyn Fn(&str) + Send + Sync>;

/// One environment's Terraform.
pub struct Terraform {
    settings: TerraformSettings,
    kind: BinaryKind,
    version: Version,
    redactor: KnownSecrets,
    interrupt: watch::Receiver<bool>,
    progress: Option<ProgressFn>,
    init_runs: AtomicUsize,
}

impl fmt::Debug for Terraform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terraform")
            .field("environment", &self.settings.env_name)
            .field("binary", &self.settings.binary)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Terraform {
    /// Detect the binary's kind and version (`version -json`); it must be >= 1.5.
    pub async fn new(settings: TerraformSettings) -> Result<Terraform, TerraformError> {
        let redactor = KnownSecrets::default();
        // Sensitive variables are secrets from the start, whatever runs first.
        let (info, _) = inspect_module(&settings.module_dir, &settings.display_root);
        register_sensitive_variables(&info, &settings, &redactor);
        let binary = settings.binary.clone();
        let mut process = base_process(&settings).args(["version", "-json"]);
        // Not in the module directory: a missing module must not look like a missing binary.
        process.cwd = None;
        let output = match process
            .run_unchecked_with_interrupt(|_| {}, gitship_foundation::process::interrupt_receiver())
            .await
        {
            Ok(output) => output,
            Err(ProcessError::Spawn { source, .. }) => {
                return Err(TerraformError::BinaryMissing {
                    binary,
                    reason: source.to_string(),
                });
            }
            Err(ProcessError::Interrupted { .. }) => {
                return Err(TerraformError::Interrupted {
                    command: format!("{binary} version"),
                    environment: settings.env_name.clone(),
                });
            }
            Err(other) => {
                return Err(TerraformError::BinaryMissing {
                    binary,
                    reason: other.to_string(),
                });
            }
        };
        if !output.status.success() {
            return Err(TerraformError::UnknownVersion {
                binary,
                detail: gitship_foundation::process::tail(&output.stderr_text(), 3),
            });
        }
        let (kind, version) =
            parse_version_json(&binary, &output.stdout_text()).map_err(|detail| {
                TerraformError::UnknownVersion {
                    binary: binary.clone(),
                    detail,
                }
            })?;
        if version < MINIMUM_VERSION {
            return Err(TerraformError::BinaryTooOld {
                binary,
                kind,
                found: version,
            });
        }
        tracing::debug!(%kind, %version, environment = %settings.env_name, "terraform binary");
        Ok(Terraform {
            settings,
            kind,
            version,
            redactor,
            interrupt: gitship_foundation::process::interrupt_receiver(),
            progress: None,
            init_runs: AtomicUsize::new(0),
        })
    }

    /// Stop children when `interrupt` flips to `true` instead of on gitship's global interrupt
    /// (tests, or cancelling one environment).
    pub fn with_interrupt(mut self, interrupt: watch::Receiver<bool>) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// Report Terraform's progress (one redacted line per event: "terraform_data.a: Creating...").
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    pub fn settings(&self) -> &TerraformSettings {
        &self.settings
    }

    pub fn kind(&self) -> BinaryKind {
        self.kind
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// How many times this driver actually ran `init`.
    pub fn init_runs(&self) -> usize {
        self.init_runs.load(Ordering::Relaxed)
    }

    /// `text` with every secret this driver knows of replaced by `<sensitive>`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Run `init` (and select the workspace) unless the lock file, backend config and module
    /// sources are unchanged since the last successful `init` of this environment.
    pub async fn init_if_needed(&self) -> Result<InitOutcome, TerraformError> {
        let data_dir = &self.settings.data_dir;
        // Private (0700) when gitship creates it: it holds the planfiles, whose mode Terraform
        // sets, until [`gitship_foundation::private_file::restrict`] tightens them.
        gitship_foundation::private_file::create_dir_in(&self.settings.display_root, data_dir)
            .map_err(self.write_error())?;
        // Keep the data dir (plugins, backend config, var file with secrets) out of Git even when
        // the repository's own `.gitignore` forgets `.gitship/`.
        let ignore = data_dir.join(".gitignore");
        gitship_foundation::private_file::write_in(
            &self.settings.display_root,
            &ignore,
            b"*\n",
            gitship_foundation::private_file::Existing::Keep,
        )
        .map_err(self.write_error())?;
        let (info, problems) =
            inspect_module(&self.settings.module_dir, &self.settings.display_root);
        if !problems.is_empty() {
            return Err(TerraformError::Static {
                environment: self.settings.env_name.clone(),
                problems,
            });
        }
        let fingerprint = self.init_fingerprint(&info);
        let fingerprint_file = data_dir.join(INIT_FINGERPRINT_FILE);
        // Read only what gitship would write (a FIFO there would block the read).
        gitship_foundation::private_file::check(&fingerprint_file, None)
            .map_err(self.write_error())?;
        let recorded = std::fs::read_to_string(&fingerprint_file).unwrap_or_default();
        if recorded.trim() == fingerprint && self.init_artifacts_present(&info) {
            tracing::debug!(environment = %self.settings.env_name, "terraform init skipped: inputs unchanged");
            return Ok(InitOutcome::Skipped);
        }
        // A failed init must not leave a stale "done" mark behind.
        gitship_foundation::private_file::remove(&fingerprint_file).map_err(self.write_error())?;

        let args = self.init_args()?;
        let output = self.run(self.process(false).args(args), "init").await?;
        if !output.status.success() {
            return Err(self.failure("init", &output, None));
        }
        if let Some(workspace) = &self.settings.workspace {
            let process = self.process(false).args([
                "workspace",
                "select",
                "-or-create=true",
                workspace.as_str(),
            ]);
            let output = self.run(process, "workspace select").await?;
            if !output.status.success() {
                return Err(self.failure("workspace select", &output, None));
            }
        }
        gitship_foundation::private_file::write(
            &fingerprint_file,
            format!("{fingerprint}\n").as_bytes(),
        )
        .map_err(self.write_error())?;
        self.init_runs.fetch_add(1, Ordering::Relaxed);
        Ok(InitOutcome::Ran)
    }

    /// Check the module statically, `init` if needed, then `plan -out <out> -detailed-exitcode`
    /// and read the saved plan back with `show -json`.
    pub async fn plan(&self, mode: PlanMode, out: &Path) -> Result<PlanSummary, TerraformError> {
        self.prepare().await?;
        self.plan_prepared(mode, out).await
    }

    /// Apply exactly the saved plan `planfile`.
    pub async fn apply(&self, planfile: &Path) -> Result<(), TerraformError> {
        let planfile = absolute(planfile);
        let args: Vec<OsString> = vec![
            "apply".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-json".into(),
            self.lock_timeout_flag(),
            planfile.clone().into(),
        ];
        let output = self.run(self.process(true).args(args), "apply").await?;
        if !output.status.success() {
            return Err(self.failure("apply", &output, Some(&planfile)));
        }
        Ok(())
    }

    /// The current outputs (`output -json`), with their sensitivity. Sensitive values are real
    /// (templates may put them into Secrets) and become known secrets of this driver.
    pub async fn outputs(&self) -> Result<Outputs, TerraformError> {
        let output = self
            .run(
                self.process(true).args(["output", "-json", "-no-color"]),
                "output",
            )
            .await?;
        if !output.status.success() {
            return Err(self.failure("output", &output, None));
        }
        let outputs = parse_outputs_json(&output.stdout_text()).map_err(|error| {
            TerraformError::UnexpectedOutput {
                command: self.command_name("output"),
                detail: error.to_string(),
            }
        })?;
        for output in outputs.values().filter(|o| o.sensitive) {
            if let Some(value) = &output.value {
                self.redactor.add_value(value);
            }
        }
        Ok(outputs)
    }

    /// Terraform drift: a refresh-only plan (changes made outside Terraform, confirmed from the
    /// JSON because its exit code can claim changes that are not there) and a normal plan (what
    /// Git declares that the infrastructure does not have). Both plan files are removed.
    pub async fn drift(&self) -> Result<DriftReport, TerraformError> {
        self.prepare().await?;
        let refresh_file = self.settings.data_dir.join("gitship-drift-refresh.tfplan");
        let normal_file = self.settings.data_dir.join("gitship-drift.tfplan");
        let refresh = self
            .plan_prepared(PlanMode::RefreshOnly, &refresh_file)
            .await;
        let _ = std::fs::remove_file(&refresh_file);
        let refresh = refresh?;
        let normal = self.plan_prepared(PlanMode::Normal, &normal_file).await;
        let _ = std::fs::remove_file(&normal_file);
        Ok(DriftReport::from_plans(&refresh, &normal?))
    }

    /// Delete this environment's workspace, whose state must hold no resource any more (after a
    /// destroy): `workspace select default`, then `workspace delete` (without `-force`: Terraform
    /// refuses a workspace that still manages something). Whether there was one to delete
    /// (`false` for the default workspace, or a backend of its own). The next `init` selects it
    /// afresh, so a preview of the same name can be made again.
    pub async fn delete_workspace(&self) -> Result<bool, TerraformError> {
        let Some(workspace) = self
            .settings
            .workspace
            .as_deref()
            .filter(|w| *w != "default")
        else {
            return Ok(false);
        };
        self.prepare().await?;
        let select = self.process(false).args(["workspace", "select", "default"]);
        let output = self.run(select, "workspace select").await?;
        if !output.status.success() {
            return Err(self.failure("workspace select", &output, None));
        }
        // `init` must run (and select the workspace) again before the next command under it.
        let fingerprint_file = self.settings.data_dir.join(INIT_FINGERPRINT_FILE);
        gitship_foundation::private_file::remove(&fingerprint_file).map_err(self.write_error())?;
        let delete = self.process(false).args([
            OsString::from("workspace"),
            "delete".into(),
            self.lock_timeout_flag(),
            workspace.into(),
        ]);
        let output = self.run(delete, "workspace delete").await?;
        if !output.status.success() {
            return Err(self.failure("workspace delete", &output, None));
        }
        Ok(true)
    }

    /// Static checks, then `init` when needed.
    async fn prepare(&self) -> Result<ModuleInfo, TerraformError> {
        let info = check_static(&self.settings)?;
        register_sensitive_variables(&info, &self.settings, &self.redactor);
        self.init_if_needed().await?;
        Ok(info)
    }

    async fn plan_prepared(
        &self,
        mode: PlanMode,
        out: &Path,
    ) -> Result<PlanSummary, TerraformError> {
        let out = absolute(out);
        // The planfile holds the plan's variables, sensitive ones included: its directory is
        // private (0700) and the file itself is made 0600 once Terraform wrote it.
        if let Some(parent) = out.parent() {
            gitship_foundation::private_file::create_dir(parent).map_err(self.write_error())?;
        }
        // Never leave an older plan (or anything planted there) at `out` for a failed run to be
        // mistaken by.
        gitship_foundation::private_file::remove(&out).map_err(self.write_error())?;
        let var_file = self.write_var_file()?;
        let mut args: Vec<OsString> = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-json".into(),
            "-detailed-exitcode".into(),
            self.lock_timeout_flag(),
        ];
        match mode {
            PlanMode::Normal => {}
            PlanMode::RefreshOnly => args.push("-refresh-only".into()),
            PlanMode::Destroy => args.push("-destroy".into()),
        }
        let mut out_flag = OsString::from("-out=");
        out_flag.push(&out);
        args.push(out_flag);
        let mut var_flag = OsString::from("-var-file=");
        var_flag.push(&var_file);
        args.push(var_flag);
        let output = self.run(self.process(true).args(args), "plan").await?;
        let exit_code = output.status.code();
        if !matches!(exit_code, Some(0) | Some(2)) {
            return Err(self.failure("plan", &output, None));
        }
        gitship_foundation::private_file::restrict(&out).map_err(self.write_error())?;
        let show = self.process(true).args([
            OsString::from("show"),
            "-json".into(),
            "-no-color".into(),
            out.clone().into(),
        ]);
        let shown = self.run(show, "show").await?;
        if !shown.status.success() {
            return Err(self.failure("show", &shown, None));
        }
        let summary = PlanSummary::from_show_json(
            &shown.stdout_text(),
            &self.settings.env_name,
            mode,
            out,
            &self.redactor,
        )
        .map_err(|detail| TerraformError::UnexpectedOutput {
            command: self.command_name("show -json"),
            detail,
        })?;
        if exit_code == Some(2) && !summary.has_changes {
            tracing::debug!(environment = %self.settings.env_name, ?mode, "plan exited 2 but its JSON shows no changes");
        }
        Ok(summary)
    }

    /// Write `terraform.vars` to the generated var file (owner-only: it may hold secrets).
    fn write_var_file(&self) -> Result<PathBuf, TerraformError> {
        let path = self.settings.data_dir.join(VAR_FILE);
        let text =
            serde_json::to_string_pretty(&serde_json::Value::Object(self.settings.vars.clone()))
                .unwrap_or_else(|_| "{}".to_string());
        gitship_foundation::private_file::write(&path, text.as_bytes())
            .map_err(self.write_error())?;
        Ok(path)
    }

    /// A write of this environment's files that failed or was refused, as a [`TerraformError`].
    fn write_error(
        &self,
    ) -> impl Fn(gitship_foundation::private_file::WriteError) -> TerraformError + '_ {
        |source| TerraformError::Write {
            environment: self.settings.env_name.clone(),
            source,
        }
    }

    /// The arguments of `init`. Backend settings (credentials, often) go through an owner-only
    /// file ([`Terraform::write_backend_config`]): never on argv, where other users' `ps` and the
    /// `running` log line would show them.
    fn init_args(&self) -> Result<Vec<OsString>, TerraformError> {
        let mut args: Vec<OsString> =
            vec!["init".into(), "-input=false".into(), "-no-color".into()];
        args.push(self.lock_timeout_flag());
        let json = self.version
            >= Version {
                major: 1,
                minor: 9,
                patch: 0,
            };
        if json {
            args.push("-json".into());
        }
        if let Some(path) = self.write_backend_config()? {
            let mut flag = OsString::from("-backend-config=");
            flag.push(path);
            args.push(flag);
        }
        Ok(args)
    }

    /// Write `terraform.backend_config` as `key = "value"` lines to an owner-only (0600) file in
    /// the data directory ([`gitship_foundation::private_file::write`]: a new file renamed over nothing or a
    /// regular file; a symlink or anything else planted there is refused, so nothing can
    /// receive the values) and return its path; `None` (and no file) when it is empty.
    fn write_backend_config(&self) -> Result<Option<PathBuf>, TerraformError> {
        let path = self.settings.data_dir.join(BACKEND_CONFIG_FILE);
        if self.settings.backend_config.is_empty() {
            gitship_foundation::private_file::remove(&path).map_err(self.write_error())?;
            return Ok(None);
        }
        let text = backend_config_text(&self.settings.backend_config).map_err(|key| {
            TerraformError::InvalidBackendConfigKey {
                environment: self.settings.env_name.clone(),
                key,
            }
        })?;
        gitship_foundation::private_file::write(&path, text.as_bytes())
            .map_err(self.write_error())?;
        Ok(Some(path))
    }

    fn lock_timeout_flag(&self) -> OsString {
        format!("-lock-timeout={}", go_duration(self.settings.lock_timeout)).into()
    }

    fn command_name(&self, command: &str) -> String {
        format!("{} {command}", self.settings.binary)
    }

    /// The child for one command. `with_workspace`: select this environment's workspace through
    /// `TF_WORKSPACE` (not for `init` / `workspace select`, which Terraform refuses under it).
    fn process(&self, with_workspace: bool) -> Process {
        let mut process = base_process(&self.settings);
        if with_workspace && let Some(workspace) = &self.settings.workspace {
            process = process.env("TF_WORKSPACE", workspace);
        }
        process
    }

    /// Run a child; process-level failures become typed errors, exit codes are left to the
    /// caller.
    async fn run(&self, process: Process, command: &str) -> Result<ProcessOutput, TerraformError> {
        let progress = self.progress.clone();
        let redactor = self.redactor.clone();
        let on_line = move |line: &str| {
            if let Some(progress) = &progress
                && let Some(message) = progress_message(line)
            {
                progress(&redactor.redact(&message));
            }
        };
        match process
            .run_unchecked_with_interrupt(on_line, self.interrupt.clone())
            .await
        {
            Ok(output) => Ok(output),
            Err(ProcessError::Spawn { source, .. }) => Err(TerraformError::BinaryMissing {
                binary: self.settings.binary.clone(),
                reason: source.to_string(),
            }),
            Err(ProcessError::Interrupted { .. }) => Err(TerraformError::Interrupted {
                command: self.command_name(command),
                environment: self.settings.env_name.clone(),
            }),
            Err(other) => Err(TerraformError::Failed {
                command: self.command_name(command),
                environment: self.settings.env_name.clone(),
                status: "i/o error".to_string(),
                stderr_tail: self.redactor.redact(&other.to_string()),
            }),
        }
    }

    /// The typed error for a failed command, from its JSON diagnostics when there are any.
    fn failure(
        &self,
        command: &str,
        output: &ProcessOutput,
        planfile: Option<&Path>,
    ) -> TerraformError {
        let environment = self.settings.env_name.clone();
        let diagnostics = self.error_diagnostics(&output.stdout_text());
        for diagnostic in &diagnostics {
            if diagnostic.summary.contains("state lock")
                && let Some(lock) = LockInfo::from_diagnostic_detail(&diagnostic.detail)
            {
                return TerraformError::StateLocked {
                    environment,
                    binary: self.settings.binary.clone(),
                    lock: Box::new(lock),
                };
            }
            if let Some(planfile) = planfile
                && diagnostic.summary == "Saved plan is stale"
            {
                return TerraformError::StalePlan {
                    environment,
                    planfile: planfile.to_path_buf(),
                };
            }
        }
        if !diagnostics.is_empty() {
            return TerraformError::Diagnostics {
                command: self.command_name(command),
                environment,
                diagnostics,
            };
        }
        // No JSON diagnostics (commands without `-json`): the tail of what it printed.
        let mut text = output.stderr_text();
        if text.trim().is_empty() {
            text = output.stdout_text();
        }
        let text = strip_cli_config_warning(&text);
        TerraformError::Failed {
            command: self.command_name(command),
            environment,
            status: match output.status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_string(),
            },
            stderr_tail: self
                .redactor
                .redact(&gitship_foundation::process::tail(&text, STDERR_TAIL_LINES)),
        }
    }

    /// The error diagnostics in a `-json` stream, redacted, ranges relative to the repository.
    fn error_diagnostics(&self, stream: &str) -> Vec<Diagnostic> {
        let module_dir = self
            .settings
            .module_dir
            .strip_prefix(&self.settings.display_root)
            .unwrap_or(&self.settings.module_dir);
        let mut diagnostics: Vec<Diagnostic> = Vec::new();
        for line in stream.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event.get("type").and_then(|t| t.as_str()) != Some("diagnostic") {
                continue;
            }
            let Some(raw) = event.get("diagnostic") else {
                continue;
            };
            let text = |key: &str| {
                raw.get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            if text("severity") != "error" {
                continue;
            }
            let range = raw.get("range").and_then(|range| {
                let file = range.get("filename")?.as_str()?;
                let line = range.pointer("/start/line")?.as_u64()?;
                let column = range.pointer("/start/column")?.as_u64()?;
                let file = Path::new(file);
                if let Some(location) = self.var_file_location(file, line as usize) {
                    // A bad value in the generated var file: point at the environment file.
                    return Some(location);
                }
                // Relative to the module, or absolute.
                let shown = if file.is_absolute() {
                    file.strip_prefix(&self.settings.display_root)
                        .unwrap_or(file)
                        .to_path_buf()
                } else {
                    module_dir.join(file)
                };
                Some(Location::new(shown, line as usize, column as usize))
            });
            let diagnostic = Diagnostic {
                severity: "error".to_string(),
                summary: self.redactor.redact(&text("summary")),
                detail: self.redactor.redact(&text("detail")),
                address: raw
                    .get("address")
                    .and_then(|a| a.as_str())
                    .map(str::to_string),
                range,
            };
            if !diagnostics.contains(&diagnostic) {
                diagnostics.push(diagnostic);
            }
        }
        diagnostics
    }

    /// Where the environment file sets the variable on `line` of the generated var file.
    fn var_file_location(&self, file: &Path, line: usize) -> Option<Location> {
        let var_file = self.settings.data_dir.join(VAR_FILE);
        if file != var_file {
            return None;
        }
        let text = std::fs::read_to_string(&var_file).ok()?;
        let written = text.lines().nth(line.checked_sub(1)?)?;
        // Written by `write_var_file` (pretty JSON): `  "name": value` at the top level.
        let name = written.strip_prefix("  \"")?.split('"').next()?;
        let location = self.settings.var_spans.get(name)?;
        Some(location.relative_to(&self.settings.display_root))
    }

    /// What decides whether `init` must run again: binary, lock file, backend config, workspace
    /// and module sources (not ordinary resource edits).
    fn init_fingerprint(&self, info: &ModuleInfo) -> String {
        let mut hasher = Sha256::new();
        let mut feed = |label: &str, value: &[u8]| {
            hasher.update(label.as_bytes());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value);
        };
        feed(
            "binary",
            format!("{} {} {}", self.settings.binary, self.kind, self.version).as_bytes(),
        );
        feed(
            "module_dir",
            self.settings.module_dir.to_string_lossy().as_bytes(),
        );
        let lock_file = std::fs::read(self.settings.module_dir.join(LOCK_FILE)).unwrap_or_default();
        feed("lock_file", &lock_file);
        for (key, value) in &self.settings.backend_config {
            feed("backend_config", format!("{key}={value}").as_bytes());
        }
        feed(
            "workspace",
            self.settings.workspace.as_deref().unwrap_or("").as_bytes(),
        );
        for input in &info.init_inputs {
            feed("module_source", input.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Whether what `init` installs is still there (someone may have deleted `.gitship/`).
    fn init_artifacts_present(&self, info: &ModuleInfo) -> bool {
        let data_dir = &self.settings.data_dir;
        let lock_file =
            std::fs::read_to_string(self.settings.module_dir.join(LOCK_FILE)).unwrap_or_default();
        if lock_file.contains("provider \"") && !data_dir.join("providers").is_dir() {
            return false;
        }
        if info.init_inputs.iter().any(|i| i.starts_with("module "))
            && !data_dir.join("modules").is_dir()
        {
            return false;
        }
        true
    }
}

/// A backend configuration file (`key = "value"` lines, HCL native syntax) for `settings`; the
/// first key that is not an HCL identifier is the error.
fn backend_config_text(
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut text = String::new();
    for (key, value) in settings {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(key.clone());
        }
        text.push_str(key);
        text.push_str(" = ");
        text.push_str(&hcl_string(value));
        text.push('\n');
    }
    Ok(text)
}

/// `value` as an HCL quoted string that Terraform reads back unchanged (escapes, and no
/// `${`/`%{` template sequences).
fn hcl_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                quoted.push(c);
                quoted.push(c);
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The child with the allowlisted environment, automation settings and the data directory.
fn base_process(settings: &TerraformSettings) -> Process {
    let mut process = Process::new(settings.binary.clone())
        .cwd(&settings.module_dir)
        .inherit_env(environment::is_inherited)
        .env("TF_DATA_DIR", &settings.data_dir)
        .grace(settings.interrupt_grace)
        .survive_parent(std::env::temp_dir());
    for (key, value) in environment::FIXED {
        process = process.env(*key, *value);
    }
    process
}

fn register_sensitive_variables(
    info: &ModuleInfo,
    settings: &TerraformSettings,
    redactor: &KnownSecrets,
) {
    for name in info.sensitive_variables() {
        if let Some(value) = settings.vars.get(name) {
            redactor.add_value(value);
        }
    }
}

/// The human message of one `-json` UI event worth showing as progress.
fn progress_message(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let kind = event.get("type")?.as_str()?;
    let shown = matches!(
        kind,
        "apply_start"
            | "apply_progress"
            | "apply_complete"
            | "apply_errored"
            | "change_summary"
            | "refresh_start"
    );
    if !shown {
        return None;
    }
    Some(event.get("@message")?.as_str()?.to_string())
}

/// Drop the "Unable to open CLI configuration file" warning block Terraform prints when
/// `TF_CLI_CONFIG_FILE` points to a missing file: it is noise in an error report.
fn strip_cli_config_warning(text: &str) -> String {
    if !text.contains("Unable to open CLI configuration file") {
        return text.to_string();
    }
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("There are some problems with the CLI configuration") {
            skipping = true;
            continue;
        }
        if skipping {
            if line.starts_with('╵') {
                skipping = false;
            }
            continue;
        }
        kept.push(line);
    }
    kept.join("\n")
}

/// A duration in Go's syntax (`300s`, `1500ms`) for `-lock-timeout`.
fn go_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_go_syntax() {
        assert_eq!(go_duration(Duration::from_secs(300)), "300s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn progress_shows_apply_events_only() {
        let start =
            r#"{"@level":"info","@message":"terraform_data.a: Creating...","type":"apply_start"}"#;
        assert_eq!(
            progress_message(start).as_deref(),
            Some("terraform_data.a: Creating...")
        );
        assert_eq!(
            progress_message(r#"{"@message":"Terraform 1.11.4","type":"version"}"#),
            None
        );
        assert_eq!(progress_message("not json"), None);
    }

    /// A driver for `backend_config` whose data directory is `data_dir` (no binary is run).
    fn driver(data_dir: &Path, backend_config: &[(&str, &str)]) -> Terraform {
        let settings = TerraformSettings {
            binary: "terraform".into(),
            module_dir: data_dir.join("module"),
            data_dir: data_dir.to_path_buf(),
            env_name: "production".into(),
            env_file: data_dir.join("production.yaml"),
            workspace: None,
            backend_config: backend_config
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            vars: serde_json::Map::new(),
            var_spans: Default::default(),
            vars_location: None,
            lock_timeout: Duration::from_secs(60),
            interrupt_grace: Duration::from_secs(10),
            display_root: data_dir.to_path_buf(),
        };
        Terraform {
            settings,
            kind: BinaryKind::Terraform,
            version: Version {
                major: 1,
                minor: 11,
                patch: 4,
            },
            redactor: KnownSecrets::default(),
            interrupt: gitship_foundation::process::interrupt_receiver(),
            progress: None,
            init_runs: AtomicUsize::new(0),
        }
    }

    #[test]
    fn backend_config_goes_through_an_owner_only_file_not_argv() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = "AKIA-very-secret";
        let terraform = driver(
            dir.path(),
            &[
                ("bucket", "state-bucket"),
                ("access_key", secret),
                ("path", "a \"quoted\" \\ ${not_a_template} %{nor_this}"),
            ],
        );
        let args = terraform.init_args().unwrap();
        let file = dir.path().join(BACKEND_CONFIG_FILE);
        let mut expected_flag = OsString::from("-backend-config=");
        expected_flag.push(&file);
        assert!(args.contains(&expected_flag), "{args:?}");
        // What `running` logs, and what `ps` shows.
        let process = terraform.process(false).args(args.clone());
        let logged = format!("{process} {:?}", process.args);
        for value in [secret, "state-bucket", "not_a_template"] {
            assert!(!logged.contains(value), "{logged}");
        }
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "access_key = \"AKIA-very-secret\"\n\
             bucket = \"state-bucket\"\n\
             path = \"a \\\"quoted\\\" \\\\ $${not_a_template} %%{nor_this}\"\n"
        );

        // Rewritten fresh every time; no backend config, no file and no flag.
        let again = terraform.init_args().unwrap();
        assert_eq!(again, args);
        let none = driver(dir.path(), &[]).init_args().unwrap();
        assert!(
            none.iter()
                .all(|arg| !arg.to_string_lossy().starts_with("-backend-config")),
            "{none:?}"
        );
        assert!(!file.exists(), "a stale backend file is removed");
    }

    #[test]
    fn a_symlink_or_a_fifo_planted_at_the_backend_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "untouched\n").unwrap();
        let planted = dir.path().join(BACKEND_CONFIG_FILE);
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let terraform = driver(dir.path(), &[("token", "secret-value")]);
        let error = terraform.init_args().unwrap_err();
        assert!(
            error.to_string().contains("production")
                && gitship_foundation::diagnostics::StageError::hint(&error)
                    .is_some_and(|hint| hint.contains("symlink")),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
        assert!(planted.symlink_metadata().unwrap().file_type().is_symlink());

        std::fs::remove_file(&planted).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&planted)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(terraform.init_args().is_err());
        use std::os::unix::fs::FileTypeExt;
        assert!(planted.symlink_metadata().unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_backend_config_key_that_is_no_identifier_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = driver(dir.path(), &[("bad key = \"x\"\nother", "value")])
            .init_args()
            .unwrap_err();
        assert!(
            matches!(&error, TerraformError::InvalidBackendConfigKey { key, .. } if key.starts_with("bad key")),
            "{error:?}"
        );
        assert!(!dir.path().join(BACKEND_CONFIG_FILE).exists());
    }

    #[test]
    fn cli_config_warning_is_dropped() {
        let text = "There are some problems with the CLI configuration:\n╷\n│ Warning: Unable to open CLI configuration file\n│\n╵\n\nError: real problem\n";
        assert_eq!(strip_cli_config_warning(text).trim(), "Error: real problem");
    }
}
