//! `gitship validate`'s report: a line per environment (with the `${...}` left as written), and
//! the GitLab Code Quality report (`-o codequality`).

use std::path::Path;

use super::CommandReport;
use crate::ops::validate::{LeftLiteral, ValidateReport};

impl CommandReport for ValidateReport {
    const KIND: &'static str = "validate";

    fn human(&self, _color: bool) -> String {
        let width = self
            .environments
            .iter()
            .map(|r| r.environment.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for result in &self.environments {
            let line = if result.valid {
                format!(
                    "ok      {:width$}  {} objects",
                    result.environment, result.objects
                )
            } else {
                format!("FAILED  {}", result.environment)
            };
            out.push_str(&line);
            out.push('\n');
            if self.show_left_literal {
                write_left_literal(&mut out, &result.left_literal);
            }
        }
        out
    }
}

/// `        left literal: ${FRONTEND_ADDR}  file:line:column (and 2 more)`, per placeholder.
fn write_left_literal(out: &mut String, left_literal: &[LeftLiteral]) {
    let mut seen: Vec<(&str, &str, usize)> = Vec::new();
    for left in left_literal {
        match seen
            .iter_mut()
            .find(|(placeholder, _, _)| *placeholder == left.placeholder)
        {
            Some((_, _, count)) => *count += 1,
            None => seen.push((&left.placeholder, &left.location, 1)),
        }
    }
    for (placeholder, location, count) in seen {
        let more = match count {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        out.push_str(&format!(
            "        left literal: {placeholder}  {location}{more}\n"
        ));
    }
}

impl ValidateReport {
    /// A GitLab Code Quality report (`-o codequality`, GitLab's format, not versioned by
    /// gitship): one issue per located problem of each failed environment, else one at the top
    /// of its config file. Paths are relative to the checkout (`base`).
    pub fn codequality(&self, base: Option<&Path>) -> serde_json::Value {
        use sha2::{Digest, Sha256};
        let config_files: std::collections::BTreeMap<String, String> =
            crate::ops::envs::committed(base)
                .map(|(_, environments)| {
                    environments.into_iter().map(|e| (e.name, e.file)).collect()
                })
                .unwrap_or_default();
        let mut issues = Vec::new();
        // How many issues of the same file and description came before: the fingerprint's
        // tie-breaker instead of the line, which moves whenever a line is inserted above.
        let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
        for result in &self.environments {
            let Some(error) = &result.error else { continue };
            let mut problems = gitship_foundation::diagnostics::located_problems(error);
            if problems.is_empty() {
                let file = config_files
                    .get(&result.environment)
                    .cloned()
                    .unwrap_or_else(|| format!("config/{}.yaml", result.environment));
                let message = error.trim().strip_prefix("error: ").unwrap_or(error.trim());
                problems.push(gitship_foundation::diagnostics::LocatedProblem {
                    file,
                    line: 1,
                    column: None,
                    message: message.to_string(),
                });
            }
            for problem in problems {
                let path = gitship_foundation::diagnostics::workspace_relative(&problem.file, base);
                let description =
                    format!("{} (environment `{}`)", problem.message, result.environment);
                let occurrence = seen.entry((path.clone(), description.clone())).or_default();
                *occurrence += 1;
                let fingerprint = hex::encode(Sha256::digest(
                    format!("gitship-validate\n{path}\n{description}\n{occurrence}").as_bytes(),
                ));
                issues.push(serde_json::json!({
                    "description": description,
                    "check_name": "gitship-validate",
                    "fingerprint": fingerprint,
                    "severity": "major",
                    "location": { "path": path, "lines": { "begin": problem.line } },
                }));
            }
        }
        serde_json::Value::Array(issues)
    }
}
