//! `init`'s last step: the environment it wrote is checked as `validate` checks it, so that
//! `init` either leaves a repository `validate` passes on, or says exactly what to edit.

use std::path::Path;

use super::InitReport;
use crate::repo::Repository;
use gitship_foundation::diagnostics::{render, user_error};

/// Check the written environment; a failure becomes the report's `edit` (unless `init` already
/// said what to edit: the same problem, in `init`'s words).
pub(super) fn written(root: &Path, env: &str, report: &mut InitReport) {
    let result = Repository::open(root.to_path_buf())
        .map_err(user_error)
        .and_then(|repo| crate::ops::validate::validate_environment(&repo, env, None));
    if let Err(error) = result
        && report.edit.is_empty()
    {
        report.edit.push(format!(
            "`gitship validate {env}` fails on what init wrote; fix this first:\n{}",
            render(&error)
        ));
    }
}
