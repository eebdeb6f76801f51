//! The Terraform stage: drive the real `terraform` / `tofu` CLI safely, per environment.

use std::collections::BTreeMap;

/// One Terraform output as templates see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputValue {
    /// `None` when the value is not known until apply.
    pub value: Option<serde_json::Value>,
    pub sensitive: bool,
}

/// Output name -> value.
pub type Outputs = BTreeMap<String, OutputValue>;

/// Parse the document printed by `terraform output -json`.
pub fn parse_outputs_json(text: &str) -> Result<Outputs, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Raw {
        value: serde_json::Value,
        #[serde(default)]
        sensitive: bool,
    }
    let raw: BTreeMap<String, Raw> = serde_json::from_str(text)?;
    Ok(raw
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                OutputValue {
                    value: Some(r.value),
                    sensitive: r.sensitive,
                },
            )
        })
        .collect())
}
