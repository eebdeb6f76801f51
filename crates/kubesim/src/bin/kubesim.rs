//! `kubesim [--port N] [--kubeconfig FILE] [--state FILE] [--token TOKEN] [--rollout-delay-ms MS]
//! [--latency-ms MS]`: serves a simulated Kubernetes API until stopped (Ctrl-C / SIGTERM),
//! optionally persisting objects to a JSON state file, requiring a bearer token and delaying
//! responses by a simulated network round trip.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A simulated Kubernetes API server (see the kubesim crate documentation for what is simulated).
#[derive(Debug, Parser)]
#[command(name = "kubesim", version)]
struct Arguments {
    /// Port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write a kubeconfig for the server to this file.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Load objects from and persist them to this JSON state file.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on every request (401 Unauthorized otherwise); the
    /// kubeconfig written carries it. Also read from `KUBESIM_TOKEN`, which keeps it off argv.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KUBESIM_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Milliseconds simulated workloads take to become healthy.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    rollout_delay_ms: u64,
    /// Simulated network round-trip time in milliseconds: every response, and every event of a
    /// watch, is delayed this long (concurrent requests overlap, as over a network).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let arguments = Arguments::parse();
    let options = kubesim::Options {
        port: arguments.port,
        state_file: arguments.state,
        kubeconfig_path: arguments.kubeconfig,
        rollout_delay: Duration::from_millis(arguments.rollout_delay_ms),
        token: arguments.token.filter(|token| !token.is_empty()),
        latency: Duration::from_millis(arguments.latency_ms),
        ..kubesim::Options::default()
    };
    let sim = match kubesim::KubeSim::start_with(options).await {
        Ok(sim) => sim,
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!("\n  caused by: {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", sim.url());
    eprintln!(
        "kubesim: serving on {} (kubeconfig: {})",
        sim.url(),
        sim.kubeconfig_path().display()
    );
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("error: cannot listen for SIGTERM\n  caused by: {error}");
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("kubesim: stopping");
    if let Err(error) = sim.save_state() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
