//! Terraform's results as entries of the cross-layer plan (their values are the same redacted
//! renderings as Terraform's own plan).

use crate::plan::{
    FieldChange, OutputAction, OutputChange, ResourceAction, ResourceChange, TerraformPart,
};
use crate::terraform::plan::render_value;
use crate::terraform::{self, ChangeAction};

/// The Terraform part of the cross-layer plan.
pub fn plan_part(summary: &terraform::PlanSummary) -> TerraformPart {
    TerraformPart {
        resources: summary.changes.iter().filter_map(resource_change).collect(),
        outputs: summary
            .output_changes
            .iter()
            .filter_map(output_change)
            .collect(),
    }
}

/// The Terraform resources of the cross-layer drift report: changed outside Terraform, then what
/// a deploy would change.
pub fn drift_changes(report: &terraform::DriftReport) -> Vec<ResourceChange> {
    report
        .changed_outside
        .iter()
        .chain(&report.pending_changes)
        .filter_map(resource_change)
        .collect()
}

/// A resource change in the cross-layer plan model; `None` for no-ops. A `forget` (removed from
/// the state, left running) shows as a destroy: the resource leaves Terraform's management.
pub fn resource_change(change: &terraform::ResourceChange) -> Option<ResourceChange> {
    let action = match change.action {
        ChangeAction::Create => ResourceAction::Create,
        ChangeAction::Update => ResourceAction::Update,
        ChangeAction::Replace => ResourceAction::Replace,
        ChangeAction::Delete | ChangeAction::Forget => ResourceAction::Destroy,
        ChangeAction::Read => ResourceAction::Read,
        ChangeAction::NoOp => return None,
    };
    Some(ResourceChange {
        address: change.address.clone(),
        action,
        replace_reasons: change.replace_reasons.clone(),
        attributes: change
            .attributes
            .iter()
            .map(|attribute| {
                FieldChange::new(
                    attribute.name.clone(),
                    attribute.before.as_ref().map(render_value),
                    attribute.after.as_ref().map(render_value),
                )
            })
            .collect(),
    })
}

/// An output change in the cross-layer plan model; `None` for no-ops and reads.
pub fn output_change(change: &terraform::OutputChange) -> Option<OutputChange> {
    let action = match change.action {
        ChangeAction::Create => OutputAction::Create,
        ChangeAction::Update | ChangeAction::Replace => OutputAction::Update,
        ChangeAction::Delete | ChangeAction::Forget => OutputAction::Delete,
        ChangeAction::Read | ChangeAction::NoOp => return None,
    };
    Some(OutputChange {
        name: change.name.clone(),
        action,
        sensitive: change.sensitive,
        before: change.before.as_ref().map(render_value),
        after: change.after.as_ref().map(render_value),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::terraform::{PlanMode, PlanSummary};
    use gitship_foundation::model::{KnownSecrets, REDACTED};

    #[test]
    fn converts_into_the_cross_layer_plan_redacted() {
        let plan = PlanSummary::from_show_json(
            &crate::terraform::plan::tests::replace_plan().to_string(),
            "staging",
            PlanMode::Normal,
            PathBuf::from("plan.tfplan"),
            &KnownSecrets::default(),
        )
        .unwrap();
        let part = plan_part(&plan);
        assert_eq!(part.resources.len(), 1);
        assert_eq!(
            part.resources[0].action,
            crate::plan::ResourceAction::Replace
        );
        assert_eq!(
            part.resources[0].replace_reasons,
            vec!["triggers_replace".to_string()]
        );
        assert_eq!(part.outputs[0].action, crate::plan::OutputAction::Update);
        assert_eq!(part.outputs[0].after.as_deref(), Some(REDACTED));
        let json = serde_json::to_string(&part).unwrap();
        assert!(!json.contains("secretpw"), "{json}");
    }
}
