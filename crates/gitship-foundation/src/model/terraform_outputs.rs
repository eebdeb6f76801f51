//! Terraform's outputs as the other layers consume them: the Terraform stage reads them
//! (`terraform output -json`, or a plan's planned values), `render` substitutes them for
//! `${terraform.<output>}` and redacts the sensitive ones, `ops` passes them between the two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One Terraform output as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputValue {
    /// `None` when the value is not known until apply.
    pub value: Option<serde_json::Value>,
    pub sensitive: bool,
}

/// Output name -> value.
pub type Outputs = BTreeMap<String, OutputValue>;
