//! `gitship history` through the built CLI, in the sandbox: the records two deploys leave (the
//! commit's subject and author, counts, timing), newest first, as JSON, a table and Markdown,
//! and `--limit`.

use gitship::facade::ops::history::HistoryReport;
use gitship_kube::inventory::{DeployOutcome, RecordSource};

use crate::support::repo::Repo;

/// One ConfigMap in environment `staging` (namespace `web`), no Terraform, no apps; committed.
fn site_repo() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  context: kubesim\n  namespace: web\n",
    );
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: one\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("site: the first title");
    repo
}

fn history_json(repo: &Repo, extra: &[&str]) -> HistoryReport {
    let mut args = vec!["-o", "json", "history", "staging", "--sandbox"];
    args.extend_from_slice(extra);
    let run = repo.ok(&args);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not a history report ({error}):\n{}", run.stdout))
}

fn head(repo: &Repo) -> String {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo.path())
        .output()
        .expect("git");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn history_lists_the_deploys_newest_first() {
    let repo = site_repo();
    let never = repo.ok(&["history", "staging", "--sandbox"]);
    assert_eq!(never.stdout, "environment `staging`: never deployed\n");
    let report = history_json(&repo, &[]);
    assert!(!report.deployed && report.records.is_empty());

    repo.ok(&["deploy", "staging", "--sandbox"]);
    let first = head(&repo);
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.commit("site: a second title");
    repo.ok(&["deploy", "staging", "--sandbox"]);
    let second = head(&repo);

    let report = history_json(&repo, &[]);
    assert!(report.deployed);
    assert_eq!(report.environment, "staging");
    let [newest, oldest] = report.records.as_slice() else {
        panic!("two records: {:#?}", report.records);
    };
    assert_eq!(newest.sha.as_deref(), Some(second.as_str()));
    assert_eq!(newest.subject.as_deref(), Some("site: a second title"));
    assert_eq!(oldest.sha.as_deref(), Some(first.as_str()));
    assert_eq!(oldest.subject.as_deref(), Some("site: the first title"));
    for record in [newest, oldest] {
        assert_eq!(record.author.as_deref(), Some("test"));
        assert_eq!(record.source, RecordSource::Deploy);
        assert_eq!(record.outcome, DeployOutcome::Succeeded);
        let started = record.started.expect("started");
        assert!(started <= record.time, "{record:?}");
        let duration = record.duration_ms.expect("duration");
        assert_eq!(
            i64::try_from(duration).unwrap(),
            (record.time - started).num_milliseconds()
        );
        assert_eq!(record.terraform, None, "no Terraform layer");
        assert!(record.images.is_empty(), "no apps");
    }
    assert_eq!(
        (oldest.counts.created, oldest.counts.configured),
        (1, 0),
        "{oldest:?}"
    );
    assert_eq!(
        (
            newest.counts.created,
            newest.counts.configured,
            newest.counts.pruned
        ),
        (0, 1, 0),
        "{newest:?}"
    );

    let table = repo.ok(&["history", "staging", "--sandbox"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("#   REVISION"), "{table}");
    for header in [
        "AUTHOR", "WHO", "SOURCE", "STARTED", "DURATION", "OUTCOME", "CHANGES",
    ] {
        assert!(lines[0].contains(header), "{table}");
    }
    assert!(
        lines[1].starts_with(&format!("#2  {} site: a second title", &second[..8])),
        "{table}"
    );
    assert!(
        lines[1].contains("0 created, 1 configured, 0 pruned"),
        "{table}"
    );
    assert!(
        lines[2].starts_with(&format!("#1  {} site: the first title", &first[..8])),
        "{table}"
    );
    assert!(lines[2].contains("succeeded"), "{table}");

    let limited = history_json(&repo, &["--limit", "1"]);
    assert_eq!(limited.records.len(), 1);
    assert_eq!(limited.records[0].sha.as_deref(), Some(second.as_str()));
    let table = repo
        .ok(&["history", "staging", "--sandbox", "--limit", "1"])
        .stdout;
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("site: a second title"), "{table}");

    let markdown = repo
        .ok(&["-o", "markdown", "history", "staging", "--sandbox"])
        .stdout;
    assert!(markdown.contains("| # | revision | author |"), "{markdown}");
    // The header, its separator and one row per deploy.
    assert_eq!(markdown.lines().filter(|l| l.starts_with("| ")).count(), 4);

    let zero = repo.gitship(&["history", "staging", "--sandbox", "--limit", "0"]);
    assert_eq!(zero.code, 64, "{}", zero.all());
    assert!(
        zero.stderr.contains("`--limit` must be at least 1"),
        "{}",
        zero.stderr
    );
}

/// With a Terraform layer (the real `terraform`, in the sandbox): the record counts the plan it
/// applied, and says nothing of Terraform when the plan had no changes.
#[test]
fn history_counts_the_terraform_plan_applied() {
    if !crate::support::require_tool("terraform", "version") {
        return;
    }
    let repo = crate::transaction::terraform_and_configmap(
        tempfile::tempdir().expect("temp"),
        None,
        "web",
    );
    repo.ok(&["deploy", "staging", "--sandbox"]);
    repo.ok(&["deploy", "staging", "--sandbox"]);
    let report = history_json(&repo, &[]);
    let [unchanged, first] = report.records.as_slice() else {
        panic!("two records: {:#?}", report.records);
    };
    let applied = first.terraform.expect("the first deploy applied a plan");
    assert_eq!(
        (
            applied.add,
            applied.change,
            applied.replace,
            applied.destroy
        ),
        (1, 0, 0, 0)
    );
    assert_eq!(unchanged.terraform, None, "{unchanged:?}");
    let table = repo.ok(&["history", "staging", "--sandbox"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[2].ends_with("; tf +1 ~0 -0"), "{table}");
    assert!(!lines[1].contains("tf "), "{table}");
}
