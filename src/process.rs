//! The one way gitship runs a child process (terraform, docker, podman, buildah, git hooks...).
//!
//! Always argv, never a shell string. The child gets an explicit environment (the caller decides
//! what it inherits), runs in its own process group so a terminal's Ctrl-C reaches gitship first,
//! and on interrupt receives SIGINT and a bounded grace period before SIGKILL (so that e.g.
//! Terraform can release its state lock). Failures come back as a typed [`ProcessError`] carrying
//! program, args, exit status and the trimmed tail of stderr.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// How many trailing stderr lines an error keeps.
const STDERR_TAIL_LINES: usize = 20;

/// A child process to run.
#[derive(Debug, Clone)]
pub struct Process {
    pub program: String,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// The complete environment of the child (nothing else is inherited).
    pub env: BTreeMap<OsString, OsString>,
    /// After SIGINT on interrupt, how long to wait before SIGKILL.
    pub grace: Duration,
    /// Bytes written to the child's stdin, if any.
    pub stdin: Option<Vec<u8>>,
}

/// What a finished child produced.
#[derive(Debug, Clone)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ProcessOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A child process that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not installed, not executable).
    #[error("could not run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error(
        "`{}` failed ({status}){}",
        command_line(program, args),
        tail_suffix(stderr_tail)
    )]
    Failed {
        program: String,
        args: Vec<String>,
        status: String,
        stderr_tail: String,
        output: ProcessOutput,
    },
    /// gitship was interrupted while the program ran; it was stopped.
    #[error("`{program}` was interrupted")]
    Interrupted { program: String },
    /// Reading the program's output failed.
    #[error("i/o error talking to `{program}`: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

fn command_line(program: &str, args: &[String]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    }
}

impl Process {
    /// A process with an empty environment; add what it needs with [`Process::env`] or
    /// [`Process::inherit_env`].
    pub fn new(program: impl Into<String>) -> Self {
        Process {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: BTreeMap::new(),
            grace: Duration::from_secs(10),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Copy the variables of gitship's own environment that `keep` accepts.
    pub fn inherit_env(mut self, keep: impl Fn(&str) -> bool) -> Self {
        for (key, value) in std::env::vars_os() {
            if key.to_str().is_some_and(&keep) {
                self.env.insert(key, value);
            }
        }
        self
    }

    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    fn display_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Run to completion, capturing stdout and stderr; a non-zero exit is an error.
    pub async fn run(&self) -> Result<ProcessOutput, ProcessError> {
        let output = self.run_unchecked(|_| {}).await?;
        self.check(output)
    }

    /// Run to completion, calling `on_line` for every line of stdout and stderr as it arrives
    /// (for streaming build logs), and capturing both; a non-zero exit is an error.
    pub async fn run_streaming(
        &self,
        on_line: impl FnMut(&str) + Send,
    ) -> Result<ProcessOutput, ProcessError> {
        let output = self.run_unchecked(on_line).await?;
        self.check(output)
    }

    /// Turn a non-zero exit into [`ProcessError::Failed`].
    // `Failed` carries the whole output by design (callers inspect it); boxing it would change
    // the public shape of `ProcessError`.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, output: ProcessOutput) -> Result<ProcessOutput, ProcessError> {
        if output.status.success() {
            return Ok(output);
        }
        Err(ProcessError::Failed {
            program: self.program.clone(),
            args: self.display_args(),
            status: describe_status(output.status),
            stderr_tail: tail(&output.stderr_text(), STDERR_TAIL_LINES),
            output,
        })
    }

    /// Run to completion and return whatever it exited with (for programs like
    /// `terraform plan -detailed-exitcode` whose non-zero codes carry meaning).
    pub async fn run_unchecked(
        &self,
        on_line: impl FnMut(&str) + Send,
    ) -> Result<ProcessOutput, ProcessError> {
        self.run_unchecked_with_interrupt(on_line, interrupt_receiver())
            .await
    }

    /// Like [`Process::run_unchecked`], but stopped (SIGINT, grace, SIGKILL) when `interrupted`
    /// flips to `true` instead of on gitship's global interrupt flag. Lets a caller cancel one
    /// child (a test, a timeout, one branch of a parallel plan) without interrupting the rest.
    pub async fn run_unchecked_with_interrupt(
        &self,
        mut on_line: impl FnMut(&str) + Send,
        mut interrupted: watch::Receiver<bool>,
    ) -> Result<ProcessOutput, ProcessError> {
        if *interrupted.borrow() {
            // Interrupted before it started: do not start it at all.
            return Err(ProcessError::Interrupted {
                program: self.program.clone(),
            });
        }
        let Running {
            mut child,
            lines,
            readers,
        } = self.start().map_err(|source| ProcessError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let finished = self
            .supervise(&mut child, lines, &mut on_line, &mut interrupted)
            .await?;
        for task in readers.into_iter().flatten() {
            let _ = task.await;
        }
        if finished.interrupted {
            tracing::debug!(program = %self.program, status = %describe_status(finished.status), "stopped after interrupt");
            return Err(ProcessError::Interrupted {
                program: self.program.clone(),
            });
        }
        Ok(ProcessOutput {
            status: finished.status,
            stdout: finished.stdout,
            stderr: finished.stderr,
        })
    }

    /// The command: argv, the explicit environment, piped output, its own process group.
    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command
    }

    /// Spawn the child, feed its stdin and start reading its output lines.
    fn start(&self) -> std::io::Result<Running> {
        let mut command = self.command();
        tracing::debug!(program = %self.program, args = ?self.display_args(), "running");
        let mut child = command.spawn()?;
        if let (Some(bytes), Some(mut stdin)) = (self.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (line_tx, lines) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
        let out_task = stdout.map(|s| tokio::spawn(read_lines(s, false, line_tx.clone())));
        let err_task = stderr.map(|s| tokio::spawn(read_lines(s, true, line_tx.clone())));
        drop(line_tx);
        Ok(Running {
            child,
            lines,
            readers: [out_task, err_task],
        })
    }

    /// Collect the child's output lines until it exits, stopping it gracefully once when
    /// `interrupted` flips to `true`.
    async fn supervise(
        &self,
        child: &mut tokio::process::Child,
        mut lines: tokio::sync::mpsc::UnboundedReceiver<(bool, String)>,
        on_line: &mut (impl FnMut(&str) + Send),
        interrupted: &mut watch::Receiver<bool>,
    ) -> Result<Finished, ProcessError> {
        let pid = child.id();
        let mut stdout_buf = Vec::new();
        let mut stderr_buf = Vec::new();
        let mut was_interrupted = false;
        // False once the interrupt channel's sender is gone: then nothing can interrupt any more.
        let mut interrupt_open = true;
        // Set once the child has been asked to stop, so that SIGINT is sent exactly once (a
        // second SIGINT makes Terraform abort without releasing its state lock).
        let mut stopped: Option<ExitStatus> = None;
        let status = loop {
            if was_interrupted && stopped.is_none() {
                stopped = stop_gracefully(pid, self.grace, child).await;
                if stopped.is_none() {
                    // Could not observe the exit (already reaped or wait failed): fall through to
                    // the ordinary wait below, which reports it.
                    stopped = child.try_wait().ok().flatten();
                }
            }
            tokio::select! {
                line = lines.recv() => {
                    if let Some((is_err, line)) = line {
                        on_line(&line);
                        let buf = if is_err { &mut stderr_buf } else { &mut stdout_buf };
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    } else {
                        if let Some(status) = stopped {
                            break status;
                        }
                        // Both streams closed; wait for the exit status.
                        let status = tokio::select! {
                            status = child.wait() => status,
                            changed = interrupted.changed(), if !was_interrupted && interrupt_open => {
                                interrupt_open = changed.is_ok();
                                was_interrupted = interrupt_open && *interrupted.borrow();
                                continue;
                            }
                        };
                        break status.map_err(|source| ProcessError::Io { program: self.program.clone(), source })?;
                    }
                }
                changed = interrupted.changed(), if !was_interrupted && interrupt_open => {
                    // A closed channel (sender dropped) never interrupts.
                    interrupt_open = changed.is_ok();
                    was_interrupted = interrupt_open && *interrupted.borrow();
                }
            }
        };
        Ok(Finished {
            status,
            stdout: stdout_buf,
            stderr: stderr_buf,
            interrupted: was_interrupted,
        })
    }
}

/// A spawned child: the process, its output lines (`true` for stderr) and the tasks reading
/// stdout and stderr.
struct Running {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<(bool, String)>,
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
}

/// How a supervised child ended.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Whether it was stopped because of an interrupt.
    interrupted: bool,
}

async fn read_lines(
    stream: impl AsyncRead + Unpin,
    is_err: bool,
    tx: tokio::sync::mpsc::UnboundedSender<(bool, String)>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if tx.send((is_err, line)).is_err() {
                    break;
                }
            }
        }
    }
}

/// SIGINT to the child's process group (once), wait up to `grace`, then SIGKILL the group.
/// Returns the child's exit status when it could be observed.
async fn stop_gracefully(
    pid: Option<u32>,
    grace: Duration,
    child: &mut tokio::process::Child,
) -> Option<ExitStatus> {
    let Some(pid) = pid else {
        return child.wait().await.ok();
    };
    let Ok(raw) = i32::try_from(pid) else {
        return child.wait().await.ok();
    };
    let group = nix::unistd::Pid::from_raw(raw);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::warn!(
                pid,
                "child did not stop within {grace:?} after SIGINT; killing it"
            );
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown exit status".to_string(),
    }
}

/// The last `lines` non-empty lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

static INTERRUPT: OnceLock<watch::Sender<bool>> = OnceLock::new();

fn interrupt_sender() -> &'static watch::Sender<bool> {
    INTERRUPT.get_or_init(|| watch::channel(false).0)
}

/// A receiver that flips to `true` once gitship is interrupted (SIGINT or SIGTERM).
pub fn interrupt_receiver() -> watch::Receiver<bool> {
    interrupt_sender().subscribe()
}

/// Whether gitship has been interrupted.
pub fn is_interrupted() -> bool {
    *interrupt_sender().borrow()
}

/// Mark gitship as interrupted (used by the signal listener, and by tests).
pub fn trigger_interrupt() {
    interrupt_sender().send_replace(true);
}

/// Listen for SIGINT and SIGTERM on the current runtime and turn them into the interrupt flag.
/// Children run in their own process groups, so a terminal's Ctrl-C reaches only gitship, which
/// then forwards SIGINT to each child and waits for it.
pub fn install_signal_handlers() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut sigint) = signal(SignalKind::interrupt()) else {
        return;
    };
    let Ok(mut sigterm) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        tracing::warn!("interrupted: stopping child processes gracefully");
        trigger_interrupt();
    });
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&command_line(&self.program, &self.display_args()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_output_and_reports_failures() {
        let ok = Process::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .inherit_env(|k| k == "PATH");
        let out = ok.run().await.unwrap();
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");

        let bad = Process::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .inherit_env(|k| k == "PATH");
        let err = bad.run().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit status 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn environment_is_explicit() {
        let p = Process::new("/usr/bin/env").env("ONLY", "this");
        let out = p.run().await.unwrap();
        assert_eq!(out.stdout_text(), "ONLY=this\n");
    }

    #[tokio::test]
    async fn a_per_call_interrupt_sends_one_sigint_and_waits() {
        let dir = tempfile::tempdir().unwrap();
        let count_file = dir.path().join("sigints");
        // Counts SIGINTs into a file, keeps printing for a while after the first one (the old
        // loop re-signalled on every line), then exits on its own.
        let script = format!(
            "n=0; trap 'n=$((n+1)); echo $n > {file}' INT; echo ready; \
             while [ $n -eq 0 ]; do sleep 0.05; done; \
             for i in 1 2 3 4 5 6; do echo after$i; sleep 0.05; done; exit 0",
            file = count_file.display()
        );
        let (interrupt, interrupted) = watch::channel(false);
        let process = Process::new("sh")
            .args(["-c", script.as_str()])
            .inherit_env(|k| k == "PATH");
        let started = std::time::Instant::now();
        let mut interrupt = Some(interrupt);
        let result = process
            .run_unchecked_with_interrupt(
                move |line| {
                    if line == "ready"
                        && let Some(sender) = interrupt.take()
                    {
                        // Keep the sender alive in a task so the channel stays open.
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            sender.send_replace(true);
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        });
                    }
                },
                interrupted,
            )
            .await;
        assert!(
            matches!(result, Err(ProcessError::Interrupted { .. })),
            "{result:?}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(350),
            "waited for the child to finish its cleanup: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "no SIGKILL grace needed: {elapsed:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&count_file).unwrap().trim(),
            "1",
            "exactly one SIGINT"
        );
        assert!(
            !is_interrupted(),
            "a per-call interrupt leaves the global flag alone"
        );
    }

    #[tokio::test]
    async fn a_dropped_interrupt_sender_never_interrupts() {
        let (sender, receiver) = watch::channel(false);
        drop(sender);
        let process = Process::new("sh")
            .args(["-c", "sleep 0.2; echo done"])
            .inherit_env(|k| k == "PATH");
        let output = process
            .run_unchecked_with_interrupt(|_| {}, receiver)
            .await
            .unwrap();
        assert_eq!(output.stdout_text(), "done\n");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = Process::new("definitely-not-a-program-gitship")
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }));
    }
}
