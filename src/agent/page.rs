//! The agent's status page (`GET /`): its [`Status`], and the [`EnvironmentView`] the leader
//! computes at each heal (objects with health, sync state, children and drift; the last deploy
//! records). Plain HTML: no script, nothing loaded from elsewhere (the server sends a
//! Content-Security-Policy saying so), every string escaped, since commit subjects, object
//! names, errors and drift values are user text. Children and drift unfold with `<details>`;
//! times read as ages ("3 min ago"), the exact time in their `title`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::agent::state::{EnvironmentView, Revision, Status};
use crate::ops::agent_view::{HistoryEntry, ObjectView, SyncStatus};
use gitship_kube::inventory::DeployOutcome;
use gitship_kube::tree::{HealthState, ObjectNode, PodNode, ReplicaSetNode};

/// The page's Content-Security-Policy: its own inline style, nothing else (no script, image,
/// frame, form target or base), so that an escaping bug could not run or load anything.
pub const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                          form-action 'none'; frame-ancestors 'none'";

/// `text` safe inside HTML text and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// How long ago `time` was, seen at `now`: `just now`, `42 s ago`, `3 min ago`, `5 h ago`,
/// `2 d ago` (a time ahead of `now`, a clock skew, is `just now`).
pub fn age(now: DateTime<Utc>, time: DateTime<Utc>) -> String {
    let seconds = now.signed_duration_since(time).num_seconds();
    match seconds {
        ..=1 => "just now".to_string(),
        2..=119 => format!("{seconds} s ago"),
        120..=7_199 => format!("{} min ago", seconds / 60),
        7_200..=172_799 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// `time` as its age, the exact time in the `title` (and `datetime`).
fn time_html(now: DateTime<Utc>, time: DateTime<Utc>) -> String {
    let exact = escape(&time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    format!(
        "<time datetime=\"{exact}\" title=\"{exact}\">{}</time>",
        escape(&age(now, time))
    )
}

/// A path segment of a repository on a known host: letters, digits, `.`, `-`, `_`.
fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The web page of commit `sha` when `source` is a repository on github.com or gitlab.com
/// (`https://github.com/acme/blog(.git)`, `git@github.com:acme/blog.git`,
/// `ssh://git@gitlab.com/acme/blog.git`); `None` for any other host or an odd path. Credentials
/// in `source` never reach the link: only the host and the path are kept.
pub fn commit_url(source: &str, sha: &str) -> Option<String> {
    if !(7..=64).contains(&sha.len()) || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let source = crate::git::clone::display_url(source.trim());
    let (host, path) = match source.split_once("://") {
        Some(("https" | "ssh", rest)) => {
            let (authority, path) = rest.split_once('/')?;
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            // `ssh://git@host:22/...`: the port is not part of the web address.
            (host.split(':').next()?, path)
        }
        Some(_) => return None,
        // scp-like `git@github.com:acme/blog.git`.
        None => {
            let (authority, path) = source.split_once(':')?;
            (
                authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host),
                path,
            )
        }
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    if !segments.iter().all(|segment| plain_segment(segment)) {
        return None;
    }
    let sha = sha.to_ascii_lowercase();
    match host.to_ascii_lowercase().as_str() {
        "github.com" if segments.len() == 2 => {
            Some(format!("https://github.com/{path}/commit/{sha}"))
        }
        "gitlab.com" if segments.len() >= 2 => {
            Some(format!("https://gitlab.com/{path}/-/commit/{sha}"))
        }
        _ => None,
    }
}

/// A commit's short sha, linked to its page when the source is a known host.
fn commit_html(source: &str, sha: &str) -> String {
    let short: String = sha.chars().take(7).collect();
    let code = format!("<code title=\"{}\">{}</code>", escape(sha), escape(&short));
    match commit_url(source, sha) {
        Some(url) => format!(
            "<a href=\"{}\" rel=\"noreferrer noopener\">{code}</a>",
            escape(&url)
        ),
        None => code,
    }
}

/// A revision as `<sha7> subject (author)`, escaped; `none` when absent.
fn revision_html(source: &str, revision: Option<&Revision>) -> String {
    match revision {
        None => "<em>none</em>".to_string(),
        Some(revision) => format!(
            "{} {} <span class=\"muted\">({})</span>",
            commit_html(source, &revision.sha),
            escape(&revision.subject),
            escape(&revision.author)
        ),
    }
}

/// A list of lines, escaped; `none` when empty.
fn list_html(items: &[String]) -> String {
    if items.is_empty() {
        return "<em>none</em>".to_string();
    }
    let mut html = String::from("<ul>");
    for item in items {
        // Writing to a String cannot fail.
        let _ = write!(html, "<li><code>{}</code></li>", escape(item));
    }
    html.push_str("</ul>");
    html
}

/// `1 Pod`, `2 Pods`.
fn count(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A colored label; `class` is one of the page's own class names, never user text.
fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

fn health_badge(health: HealthState) -> String {
    let class = match health {
        HealthState::Healthy => "good",
        HealthState::Progressing => "busy",
        HealthState::Degraded => "bad",
        HealthState::Missing => "gone",
        HealthState::Unknown => "gone",
    };
    badge(class, health.as_str())
}

fn sync_badge(sync: SyncStatus) -> String {
    match sync {
        SyncStatus::Synced => badge("good", sync.as_str()),
        SyncStatus::OutOfSync => badge("warn", sync.as_str()),
    }
}

/// The summary table: state, revisions, leader, last sync and heal, errors.
fn summary_html(status: &Status, now: DateTime<Utc>) -> String {
    let leader = if status.leader {
        "yes (this replica)".to_string()
    } else {
        match &status.leader_identity {
            Some(identity) => format!("no (<code>{}</code> leads)", escape(identity)),
            None => "no".to_string(),
        }
    };
    let last_sync = match status.last_sync {
        Some(time) => time_html(now, time),
        None => "<em>never</em>".to_string(),
    };
    let last_error = match &status.last_error {
        Some(error) => format!("<pre class=\"error\">{}</pre>", escape(error)),
        None => "<em>none</em>".to_string(),
    };
    let last_heal = match &status.last_heal {
        Some(heal) => format!("{} {}", time_html(now, heal.time), list_html(&heal.healed)),
        None => "<em>never</em>".to_string(),
    };
    let source = &status.source;
    let mut rows = vec![
        ("State", state_badge(status)),
        ("Source", format!("<code>{}</code>", escape(source))),
        ("Branch", format!("<code>{}</code>", escape(&status.branch))),
        ("Leader", leader),
        (
            "Identity",
            format!("<code>{}</code>", escape(&status.identity)),
        ),
        (
            "Revision (running)",
            revision_html(source, status.revision.as_ref()),
        ),
        (
            "Git revision (newest)",
            revision_html(source, status.git_revision.as_ref()),
        ),
    ];
    if status.pinned.is_some() {
        rows.push(("Pinned at", revision_html(source, status.pinned.as_ref())));
    }
    if let Some(suspended) = &status.suspended {
        rows.push((
            "Suspended",
            format!("<strong>{}</strong>", escape(suspended)),
        ));
    }
    rows.extend([
        ("Last sync", last_sync),
        ("Last error", last_error),
        ("Last heal", last_heal),
        ("Terraform drift", list_html(&status.terraform_drift)),
        ("Waiting for images", list_html(&status.waiting_for_images)),
        ("Drifted, not put back", list_html(&status.drifted)),
        ("Flapping", list_html(&status.flapping)),
    ]);
    let mut table = String::from("<table class=\"summary\">\n");
    for (name, value) in rows {
        let _ = writeln!(table, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    table.push_str("</table>\n");
    table
}

fn state_badge(status: &Status) -> String {
    use crate::agent::state::SyncState;
    let class = match status.state {
        SyncState::Synced => "good",
        SyncState::Progressing | SyncState::Starting | SyncState::WaitingForImages => "busy",
        SyncState::Degraded | SyncState::Error => "bad",
        SyncState::Follower | SyncState::Pinned | SyncState::Suspended => "gone",
    };
    badge(class, status.state.as_str())
}

/// One Pod: a dot (ready or not), its name, phase, readiness, restarts and reason.
fn pod_html(pod: &PodNode) -> String {
    let class = match (pod.ready, pod.phase.as_str()) {
        (_, "Failed") => "bad",
        (true, _) | (_, "Succeeded") => "good",
        _ => "busy",
    };
    let reason = pod.reason.as_deref().map_or(String::new(), |reason| {
        format!(", <strong>{}</strong>", escape(reason))
    });
    format!(
        "<li><span class=\"dot {class}\"></span>Pod <code>{}</code> <span class=\"muted\">{}, \
         {}/{} ready, {} restarts{reason}</span></li>",
        escape(&pod.name),
        escape(&pod.phase),
        pod.ready_containers,
        pod.containers,
        pod.restarts
    )
}

/// Pods, and how many were left out.
fn pods_html(pods: &[PodNode], more: usize) -> String {
    let mut html = String::from("<ul class=\"tree\">");
    for pod in pods {
        html.push_str(&pod_html(pod));
    }
    if more > 0 {
        let _ = write!(html, "<li class=\"muted\">… and {more} more Pods</li>");
    }
    if pods.is_empty() && more == 0 {
        html.push_str("<li class=\"muted\">no Pods</li>");
    }
    html.push_str("</ul>");
    html
}

fn replica_set_html(set: &ReplicaSetNode) -> String {
    let revision = set
        .revision
        .map_or(String::new(), |revision| format!(", revision {revision}"));
    let current = if set.current {
        format!(" {}", badge("current", "current"))
    } else {
        String::new()
    };
    format!(
        "<li>ReplicaSet <code>{}</code>{current} <span class=\"muted\">{}/{} ready{revision}</span>{}</li>",
        escape(&set.name),
        set.ready,
        set.desired,
        pods_html(&set.pods, set.more_pods)
    )
}

/// What unfolds under an object: its drift lines, its ReplicaSets and Pods.
fn children_html(object: &ObjectView) -> Option<(String, String)> {
    let node: &ObjectNode = &object.node;
    let mut parts = Vec::new();
    let mut body = String::new();
    if !object.drift.is_empty() {
        let lines = object.drift.len().saturating_add(object.more_drift);
        parts.push(format!("{lines} drifted"));
        body.push_str("<pre class=\"drift\">");
        for line in &object.drift {
            let _ = writeln!(body, "{}", escape(line));
        }
        if object.more_drift > 0 {
            let _ = writeln!(body, "… and {} more", object.more_drift);
        }
        body.push_str("</pre>");
    }
    if !node.replica_sets.is_empty() || node.more_replica_sets > 0 {
        let pods: usize = node
            .replica_sets
            .iter()
            .map(|set| set.pods.len().saturating_add(set.more_pods))
            .sum();
        let sets = node
            .replica_sets
            .len()
            .saturating_add(node.more_replica_sets);
        parts.push(format!(
            "{}, {}",
            count(sets, "ReplicaSet"),
            count(pods, "Pod")
        ));
        body.push_str("<ul class=\"tree\">");
        for set in &node.replica_sets {
            body.push_str(&replica_set_html(set));
        }
        if node.more_replica_sets > 0 {
            let _ = write!(
                body,
                "<li class=\"muted\">… and {} older ReplicaSets</li>",
                node.more_replica_sets
            );
        }
        body.push_str("</ul>");
    } else if !node.pods.is_empty() || node.more_pods > 0 {
        parts.push(count(node.pods.len().saturating_add(node.more_pods), "Pod"));
        body.push_str(&pods_html(&node.pods, node.more_pods));
    }
    (!parts.is_empty()).then(|| (parts.join(", "), body))
}

/// Up to this many objects, every object's details are unfolded; beyond, only those that need
/// a look.
const UNFOLD_ALL: usize = 20;

/// One row of the objects' table; its details unfolded when it needs a look or `unfold`.
fn object_row(object: &ObjectView, unfold: bool) -> String {
    let node = &object.node;
    let name = match &node.namespace {
        Some(namespace) => format!("{}/{}", namespace, node.name),
        None => node.name.clone(),
    };
    let reason = node.reason.as_deref().map_or(String::new(), |reason| {
        format!("<div class=\"reason\">{}</div>", escape(reason))
    });
    let details = match children_html(object) {
        Some((summary, body)) => format!(
            "<details{}><summary>{}</summary>{body}</details>",
            if unfold || object.is_problem() {
                " open"
            } else {
                ""
            },
            escape(&summary)
        ),
        None => String::new(),
    };
    format!(
        "<tr class=\"object\"><td>{}</td><td class=\"name\"><code>{}</code></td><td>{}{reason}</td><td>{}</td><td>{details}</td></tr>\n",
        escape(&node.kind),
        escape(&name),
        health_badge(node.health),
        sync_badge(object.sync),
    )
}

/// `12 objects: 10 Healthy, 1 Progressing, 1 Degraded; 1 OutOfSync`.
fn counts_html(view: &EnvironmentView) -> String {
    let count = |name: &str| view.counts.get(name).copied().unwrap_or(0);
    let states: Vec<String> = [
        HealthState::Healthy,
        HealthState::Progressing,
        HealthState::Degraded,
        HealthState::Missing,
        HealthState::Unknown,
    ]
    .iter()
    .filter(|state| count(state.as_str()) > 0)
    .map(|state| format!("{} {}", count(state.as_str()), state.as_str()))
    .collect();
    let total = view.objects.len().saturating_add(view.more_objects);
    format!(
        "{total} objects: {}; {} {}",
        states.join(", "),
        count(SyncStatus::OutOfSync.as_str()),
        SyncStatus::OutOfSync.as_str()
    )
}

/// The objects section.
fn objects_html(status: &Status, view: Option<&EnvironmentView>, now: DateTime<Utc>) -> String {
    let Some(view) = view else {
        let why = if status.leader {
            "not checked yet: the leader shows them after its first heal".to_string()
        } else {
            match &status.leader_identity {
                Some(identity) => format!(
                    "this replica follows: the leader <code>{}</code> shows them",
                    escape(identity)
                ),
                None => "not checked yet: the leader shows them after its first heal".to_string(),
            }
        };
        return format!("<h2>Objects</h2>\n<p class=\"muted\">{why}</p>\n");
    };
    let mut html = format!(
        "<h2>Objects</h2>\n<p>{} <span class=\"muted\">(revision {}, checked {})</span></p>\n",
        escape(&counts_html(view)),
        commit_html(&status.source, &view.revision),
        time_html(now, view.time)
    );
    for note in &view.notes {
        let _ = writeln!(html, "<p class=\"error\">{}</p>", escape(note));
    }
    html.push_str(
        "<table class=\"grid\">\n<tr><th>Kind</th><th>Name</th><th>Health</th><th>Sync</th>\
         <th>Details</th></tr>\n",
    );
    let unfold = view.objects.len() <= UNFOLD_ALL;
    for object in &view.objects {
        html.push_str(&object_row(object, unfold));
    }
    html.push_str("</table>\n");
    if view.more_objects > 0 {
        let _ = writeln!(
            html,
            "<p class=\"muted\">… and {} more objects not shown: the page holds {}, those that \
             need a look first</p>",
            view.more_objects,
            crate::ops::agent_view::MAX_OBJECTS
        );
    }
    html
}

fn history_row(source: &str, record: &HistoryEntry, now: DateTime<Utc>) -> String {
    let commit = record
        .sha
        .as_deref()
        .map_or("<em>unknown</em>".to_string(), |sha| {
            commit_html(source, sha)
        });
    let subject = record.subject.as_deref().map_or(String::new(), escape);
    let outcome = match record.outcome {
        DeployOutcome::Succeeded => badge("good", "succeeded"),
        DeployOutcome::Failed => badge("bad", "failed"),
    };
    let healed = if record.healed.is_empty() {
        String::new()
    } else {
        list_html(&record.healed)
    };
    format!(
        "<tr class=\"record\"><td>{}</td><td>{commit}</td><td>{subject}</td><td>{outcome}</td>\
         <td>{}</td><td>{}</td><td>{}{healed}</td></tr>\n",
        time_html(now, record.time),
        escape(record.source.as_str()),
        escape(&record.who),
        escape(&record.summary),
    )
}

/// The history section: the last deploy records, newest first.
fn history_html(status: &Status, view: Option<&EnvironmentView>, now: DateTime<Utc>) -> String {
    let Some(view) = view else {
        return String::new();
    };
    let mut html = String::from("<h2>History</h2>\n");
    if view.history.is_empty() {
        html.push_str("<p class=\"muted\">no deploy recorded</p>\n");
        return html;
    }
    html.push_str(
        "<table class=\"grid\">\n<tr><th>When</th><th>Commit</th><th>Subject</th><th>Outcome</th>\
         <th>Source</th><th>Who</th><th>Summary</th></tr>\n",
    );
    for record in &view.history {
        html.push_str(&history_row(&status.source, record, now));
    }
    html.push_str("</table>\n");
    html
}

const STYLE: &str = "\
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; }
th { text-align: left; vertical-align: top; padding: 0.3em 1em 0.3em 0; }
td { vertical-align: top; padding: 0.3em 1em 0.3em 0; }
table.grid { width: 100%; }
table.grid th { border-bottom: 2px solid #d0d7de; }
table.grid td { border-bottom: 1px solid #eaeef2; }
ul { margin: 0; padding-left: 1.2em; }
ul.tree { list-style: none; padding-left: 1.2em; border-left: 1px dashed #d0d7de; margin: 0.2em 0; }
pre { margin: 0.3em 0; white-space: pre-wrap; }
pre.error, p.error { color: #a40e26; }
pre.drift { background: #fff8c5; padding: 0.4em; border-radius: 4px; font-size: 0.9em; }
summary { cursor: pointer; color: #0969da; }
.muted { color: #656d76; }
.reason { color: #656d76; font-size: 0.85em; margin-top: 0.2em; }
.badge { display: inline-block; padding: 0.05em 0.6em; border-radius: 1em; font-size: 0.85em; font-weight: 600; border: 1px solid; }
.good { color: #116329; background: #dafbe1; border-color: #4ac26b; }
.busy { color: #0550ae; background: #ddf4ff; border-color: #54aeff; }
.warn { color: #7d4e00; background: #fff8c5; border-color: #d4a72c; }
.bad { color: #a40e26; background: #ffebe9; border-color: #ff8182; }
.gone { color: #57606a; background: #eaeef2; border-color: #afb8c1; }
.current { color: #6639ba; background: #fbefff; border-color: #c297ff; }
.dot { display: inline-block; width: 0.6em; height: 0.6em; border-radius: 50%; margin-right: 0.4em; border: 1px solid; }
.dot.good { background: #2da44e; } .dot.busy { background: #54aeff; } .dot.bad { background: #cf222e; }
td.name code { white-space: nowrap; }
";

/// The status page, refreshed every 10 seconds by the browser; `now` dates the ages.
pub fn status_page(status: &Status, view: Option<&EnvironmentView>, now: DateTime<Utc>) -> String {
    let environment = escape(&status.environment);
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"10\">\n\
         <title>gitship agent: {environment}</title>\n\
         <style>\n{STYLE}</style>\n\
         </head>\n\
         <body>\n\
         <h1>gitship agent: {environment}</h1>\n\
         {}{}{}\
         <p class=\"muted\">JSON: <a href=\"/status\">/status</a>, \
         <a href=\"/status/objects\">/status/objects</a>; metrics: \
         <a href=\"/metrics\">/metrics</a></p>\n\
         </body>\n\
         </html>\n",
        summary_html(status, now),
        objects_html(status, view, now),
        history_html(status, view, now),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone as _;

    use super::*;
    use gitship_kube::inventory::RecordSource;

    const HOSTILE: &str = "<script>alert('x')</script>&\"";
    const ESCAPED: &str = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0)
            .single()
            .expect("a time")
    }

    fn pod(name: &str) -> PodNode {
        PodNode {
            name: name.to_string(),
            phase: "Running".to_string(),
            ready: true,
            ready_containers: 1,
            containers: 1,
            restarts: 0,
            reason: None,
        }
    }

    fn node(kind: &str, name: &str, health: HealthState) -> ObjectNode {
        ObjectNode::leaf(
            "apps/v1".to_string(),
            kind.to_string(),
            Some("web".to_string()),
            name.to_string(),
            health,
        )
    }

    fn view(objects: Vec<ObjectView>, history: Vec<HistoryEntry>) -> EnvironmentView {
        EnvironmentView {
            time: now() - chrono::Duration::seconds(30),
            revision: "0123456789abcdef0123456789abcdef01234567".to_string(),
            objects,
            more_objects: 0,
            counts: BTreeMap::new(),
            history,
            notes: Vec::new(),
        }
    }

    fn record(sha: &str) -> HistoryEntry {
        HistoryEntry {
            time: now() - chrono::Duration::minutes(3),
            sha: Some(sha.to_string()),
            subject: Some("Add the shop".to_string()),
            author: Some("Ada".to_string()),
            outcome: DeployOutcome::Succeeded,
            source: RecordSource::Agent,
            who: "agent@cluster".to_string(),
            summary: "2 created".to_string(),
            healed: Vec::new(),
        }
    }

    fn status() -> Status {
        let mut status = Status::new(
            "production",
            "https://github.com/acme/blog.git",
            "main",
            "agent-0",
        );
        status.leader = true;
        status
    }

    #[test]
    fn escape_covers_html_metacharacters() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn ages_read_as_seconds_minutes_hours_and_days() {
        let now = now();
        let ago = |seconds: i64| age(now, now - chrono::Duration::seconds(seconds));
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(-30), "just now", "a clock ahead is not in the future");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(119), "119 s ago");
        assert_eq!(ago(180), "3 min ago");
        assert_eq!(ago(5 * 3600 + 59), "5 h ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
        let html = time_html(now, now - chrono::Duration::minutes(3));
        assert_eq!(
            html,
            "<time datetime=\"2026-12-05T11:57:00Z\" title=\"2026-12-05T11:57:00Z\">3 min ago</time>"
        );
    }

    #[test]
    fn commits_link_to_known_hosts_only_and_never_carry_credentials() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for (source, expected) in [
            (
                "https://github.com/acme/blog",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "https://github.com/acme/blog.git",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "https://GitHub.com/acme/blog/",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "git@github.com:acme/blog.git",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "ssh://git@github.com/acme/blog.git",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "https://x-access-token:s3cret@github.com/acme/blog.git",
                "https://github.com/acme/blog/commit/",
            ),
            (
                "https://gitlab.com/acme/blog.git",
                "https://gitlab.com/acme/blog/-/commit/",
            ),
            (
                "ssh://git@gitlab.com/acme/blog.git",
                "https://gitlab.com/acme/blog/-/commit/",
            ),
            (
                "ssh://git@gitlab.com:22/acme/blog.git",
                "https://gitlab.com/acme/blog/-/commit/",
            ),
            (
                "git@gitlab.com:acme/platform/blog.git",
                "https://gitlab.com/acme/platform/blog/-/commit/",
            ),
            (
                "https://oauth2:glpat-s3cret@gitlab.com/acme/blog",
                "https://gitlab.com/acme/blog/-/commit/",
            ),
        ] {
            let url = commit_url(source, sha);
            assert_eq!(url, Some(format!("{expected}{sha}")), "{source}");
        }
        for source in [
            "https://git.example/acme/blog.git",
            "file:///srv/blog.git",
            "/srv/blog.git",
            "http://github.com/acme/blog",
            "https://github.com/acme",
            "https://github.com/acme/blog/tree/main",
            "https://github.com/acme/bl\"og",
            "https://github.com/acme/<b>",
            "https://github.com/../blog",
            "https://github.com.evil.example/acme/blog",
            "https://evil.example/github.com/acme/blog",
        ] {
            assert_eq!(commit_url(source, sha), None, "{source}");
        }
        for bad_sha in ["", "0123", "not-a-sha-at-all", "0123456\"><script>"] {
            assert_eq!(
                commit_url("https://github.com/acme/blog", bad_sha),
                None,
                "{bad_sha}"
            );
        }
        let html = commit_html("https://user:s3cret@github.com/acme/blog.git", sha);
        assert!(!html.contains("s3cret"), "{html}");
        assert!(
            html.contains(&format!(
                "href=\"https://github.com/acme/blog/commit/{sha}\""
            )),
            "{html}"
        );
        assert!(html.contains(">0123456</code></a>"), "{html}");
    }

    #[test]
    fn every_field_of_the_view_is_escaped() {
        let mut deployment = node(HOSTILE, HOSTILE, HealthState::Degraded);
        deployment.namespace = Some(HOSTILE.to_string());
        deployment.reason = Some(HOSTILE.to_string());
        let mut hostile_pod = pod(HOSTILE);
        hostile_pod.phase = HOSTILE.to_string();
        hostile_pod.reason = Some(HOSTILE.to_string());
        deployment.replica_sets = vec![ReplicaSetNode {
            name: HOSTILE.to_string(),
            revision: Some(2),
            current: true,
            desired: 1,
            ready: 0,
            pods: vec![hostile_pod.clone()],
            more_pods: 0,
        }];
        let mut job = node("Job", "migrate", HealthState::Healthy);
        job.pods = vec![hostile_pod];
        let mut entry = record(HOSTILE);
        entry.subject = Some(HOSTILE.to_string());
        entry.who = HOSTILE.to_string();
        entry.summary = HOSTILE.to_string();
        entry.healed = vec![HOSTILE.to_string()];
        let mut environment = view(
            vec![
                ObjectView {
                    node: deployment,
                    sync: SyncStatus::OutOfSync,
                    drift: vec![format!("data.x: {HOSTILE} -> b")],
                    more_drift: 0,
                },
                ObjectView {
                    node: job,
                    sync: SyncStatus::Synced,
                    drift: Vec::new(),
                    more_drift: 0,
                },
            ],
            vec![entry],
        );
        environment.notes = vec![HOSTILE.to_string()];
        environment.revision = HOSTILE.to_string();
        let mut status = status();
        status.environment = HOSTILE.to_string();
        status.source = HOSTILE.to_string();
        status.branch = HOSTILE.to_string();
        status.identity = HOSTILE.to_string();
        let html = status_page(&status, Some(&environment), now());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert('x')"), "{html}");
        // Kind, name, reason, ReplicaSet, pod name, phase and reason, drift, note, revision,
        // sha, subject, who, summary, healed, environment, source, branch, identity.
        let escaped = html.matches(ESCAPED).count();
        assert!(escaped >= 20, "{escaped} escaped copies in {html}");
    }

    #[test]
    fn the_page_shows_health_children_drift_and_history() {
        let mut web = node("Deployment", "web", HealthState::Progressing);
        web.reason = Some("1 of 2 updated replicas are available".to_string());
        web.replica_sets = vec![
            ReplicaSetNode {
                name: "web-7d9f".to_string(),
                revision: Some(2),
                current: true,
                desired: 2,
                ready: 1,
                pods: vec![pod("web-7d9f-a"), {
                    let mut crashing = pod("web-7d9f-b");
                    crashing.ready = false;
                    crashing.ready_containers = 0;
                    crashing.restarts = 4;
                    crashing.reason = Some("CrashLoopBackOff".to_string());
                    crashing
                }],
                more_pods: 3,
            },
            ReplicaSetNode {
                name: "web-5c4b".to_string(),
                revision: Some(1),
                current: false,
                desired: 0,
                ready: 0,
                pods: Vec::new(),
                more_pods: 0,
            },
        ];
        web.more_replica_sets = 2;
        let mut environment = view(
            vec![
                ObjectView {
                    node: web,
                    sync: SyncStatus::OutOfSync,
                    drift: vec!["spec.replicas: 10 -> 2 (changed by kubectl)".to_string()],
                    more_drift: 4,
                },
                ObjectView {
                    node: node("ConfigMap", "site", HealthState::Healthy),
                    sync: SyncStatus::Synced,
                    drift: Vec::new(),
                    more_drift: 0,
                },
            ],
            vec![record("0123456789abcdef0123456789abcdef01234567")],
        );
        environment.more_objects = 7;
        environment.counts = BTreeMap::from([
            ("Healthy".to_string(), 8),
            ("Progressing".to_string(), 1),
            ("OutOfSync".to_string(), 1),
        ]);
        let html = status_page(&status(), Some(&environment), now());
        for expected in [
            "<span class=\"badge busy\">Progressing</span>",
            "<div class=\"reason\">1 of 2 updated replicas are available</div>",
            "<span class=\"badge warn\">OutOfSync</span>",
            "<span class=\"badge good\">Healthy</span>",
            "<span class=\"badge good\">Synced</span>",
            "<details open><summary>5 drifted, 4 ReplicaSets, 5 Pods</summary>",
            "spec.replicas: 10 -&gt; 2 (changed by kubectl)",
            "… and 4 more",
            "ReplicaSet <code>web-7d9f</code> <span class=\"badge current\">current</span>",
            "1/2 ready, revision 2",
            "Pod <code>web-7d9f-b</code> <span class=\"muted\">Running, 0/1 ready, 4 restarts, <strong>CrashLoopBackOff</strong>",
            "… and 3 more Pods",
            "… and 2 older ReplicaSets",
            "… and 7 more objects not shown",
            "9 objects: 8 Healthy, 1 Progressing; 1 OutOfSync",
            "checked <time datetime=\"2026-12-05T11:59:30Z\" title=\"2026-12-05T11:59:30Z\">30 s ago</time>",
            "<tr class=\"record\"><td><time datetime=\"2026-12-05T11:57:00Z\" title=\"2026-12-05T11:57:00Z\">3 min ago</time></td>",
            "<a href=\"https://github.com/acme/blog/commit/0123456789abcdef0123456789abcdef01234567\" rel=\"noreferrer noopener\"><code title=\"0123456789abcdef0123456789abcdef01234567\">0123456</code></a></td><td>Add the shop</td><td><span class=\"badge good\">succeeded</span></td><td>agent</td><td>agent@cluster</td><td>2 created</td>",
        ] {
            assert!(html.contains(expected), "{expected}\nnot in\n{html}");
        }
        // The ConfigMap has nothing to unfold.
        assert!(html.contains("<td class=\"name\"><code>web/site</code></td><td><span class=\"badge good\">Healthy</span></td><td><span class=\"badge good\">Synced</span></td><td></td></tr>"), "{html}");
    }

    #[test]
    fn without_a_view_the_page_says_who_shows_the_objects() {
        let mut follower = status();
        follower.leader = false;
        follower.leader_identity = Some("agent-1".to_string());
        let html = status_page(&follower, None, now());
        assert!(
            html.contains("the leader <code>agent-1</code> shows them"),
            "{html}"
        );
        assert!(!html.contains("<h2>History</h2>"), "{html}");
        let html = status_page(&status(), None, now());
        assert!(html.contains("not checked yet"), "{html}");
    }
}
