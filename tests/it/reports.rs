//! Every command's JSON is a typed, versioned report (see "JSON reports" in the README): each
//! command that prints one is run here (in the sandbox where a cluster is needed) and its output
//! must be an object with an integer `format_version`. The table is checked against the command
//! line, so a new command must either be added to it or named, with a reason, as printing no
//! JSON report.

use std::collections::BTreeSet;

use clap::CommandFactory as _;

use crate::support::repo::Repo;

/// The commands that print a JSON report with `-o json`, each with the arguments it runs with
/// here (after `-o json`), in the order they run: the deploy before what reads its record.
const REPORTS: &[(&str, &[&str])] = &[
    ("envs", &["envs"]),
    ("gc", &["gc", "--dry-run"]),
    ("validate", &["validate"]),
    (
        "render",
        &["render", "staging", "--terraform-outputs", OUTPUTS],
    ),
    (
        "plan",
        &[
            "plan",
            "staging",
            "--sandbox",
            "--terraform-outputs",
            OUTPUTS,
        ],
    ),
    (
        "deploy",
        &[
            "deploy",
            "staging",
            "--sandbox",
            "--terraform-outputs",
            OUTPUTS,
        ],
    ),
    (
        "diff",
        &[
            "diff",
            "staging",
            "--sandbox",
            "--terraform-outputs",
            OUTPUTS,
        ],
    ),
    (
        "drift",
        &[
            "drift",
            "staging",
            "--sandbox",
            "--terraform-outputs",
            OUTPUTS,
        ],
    ),
    ("status", &["status", "staging", "--sandbox"]),
    ("history", &["history", "staging", "--sandbox"]),
    (
        "history --diff",
        &["history", "staging", "--sandbox", "--diff", "1", "1"],
    ),
    (
        "destroy",
        &[
            "destroy",
            "staging",
            "--sandbox",
            "--yes",
            "--keep-terraform",
        ],
    ),
    ("affected", &["affected", "--since", "HEAD"]),
    ("ci init", &["ci", "init", "github"]),
    ("build", &["build", "staging"]),
    ("init", &["init"]),
];

/// The commands that print no JSON report, and why.
const NO_REPORT: &[(&str, &str)] = &[
    (
        "env new",
        "writes a config file and says so on stderr; `--ephemeral` needs a cluster, its report is read in `preview`",
    ),
    ("pin", "changes the pin and says so on stderr"),
    (
        "rollback",
        "deploys, and says what it rolled back to on stderr",
    ),
    (
        "resume",
        "changes the pin and the suspension, says so on stderr",
    ),
    ("suspend", "changes the suspension and says so on stderr"),
    ("sync", "asks the agent to sync and says so on stderr"),
    ("unlock", "breaks the lock and says so on stderr"),
    (
        "agent",
        "a long-running loop; its status is `status -o json`",
    ),
    (
        "agent manifests",
        "prints Kubernetes manifests (YAML), not a report",
    ),
    ("completions", "prints a shell script"),
];

/// `--terraform-outputs`: the example's.
const OUTPUTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/blog-infra/terraform-outputs.example.json"
);

/// Every leaf command of the command line (`ci init`, `env new`, `agent manifests`, ...).
fn leaf_commands(command: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
    for sub in command.get_subcommands() {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.get_name() == "help" {
            continue;
        }
        if !sub.is_subcommand_required_set() {
            out.insert(name.clone());
        }
        leaf_commands(sub, &format!("{name} "), out);
    }
}

#[test]
fn every_command_is_in_the_table_of_json_reports() {
    let mut commands = BTreeSet::new();
    leaf_commands(&gitship::cli::Cli::command(), "", &mut commands);
    let listed: BTreeSet<String> = REPORTS
        .iter()
        .map(|(name, _)| name.split(" --").next().unwrap_or(name).to_string())
        .chain(NO_REPORT.iter().map(|(name, _)| name.to_string()))
        .collect();
    assert_eq!(
        commands, listed,
        "a command is missing from REPORTS (it prints a JSON report) or NO_REPORT (it does not, and why)"
    );
}

#[test]
fn every_json_report_is_an_object_with_a_format_version() {
    let repo = Repo::example();
    // The snapshot's branch for `ci init`, whatever `git init` defaults to here.
    repo.git(&["branch", "-M", "main"]);
    // `build` with no app to build (the example's apps need a registry): a copy without them.
    let no_apps = Repo::example();
    std::fs::remove_dir_all(no_apps.path().join("apps")).expect("remove apps");
    no_apps.commit("no apps");
    let fresh = tempfile::tempdir().expect("temp");
    let fresh = Repo {
        dir: fresh,
        kubeconfig: None,
    };
    fresh.git(&["init", "-q"]);
    fresh.write("README.md", "a new repository\n");
    fresh.commit("initial");
    for (name, args) in REPORTS {
        let at = match *name {
            "build" => &no_apps,
            "init" => &fresh,
            _ => &repo,
        };
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let run = at.gitship(&all);
        let report: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|error| panic!("`{name}`: not JSON ({error}):\n{}", run.all()));
        assert!(report.is_object(), "`{name}`: not an object:\n{report:#}");
        assert!(
            report["format_version"].is_u64(),
            "`{name}`: no integer `format_version`:\n{report:#}"
        );
    }
}
