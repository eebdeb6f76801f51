//! gitship's one integration-test binary. Each module owns one area; `support` holds the shared
//! helpers (running the built CLI with a scrubbed environment, tools that must exist in CI).

mod support;

mod adopt;
mod adopt_layouts;
mod adopt_skaffold;
mod agent;
mod agent_cli;
mod agent_metrics;
mod argo;
mod bad_input;
mod bootstrap;
mod build;
mod ci;
mod ci_run;
mod cli;
mod destroy;
mod drift_rule;
mod foundation;
mod helm;
mod history;
mod kube;
mod kustomize;
mod layers;
mod plan;
mod preview;
mod quiet;
mod reports;
mod rollback;
mod terraform;
mod transaction;
mod writes;
