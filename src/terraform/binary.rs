//! Which Terraform binary gitship drives (`terraform` or OpenTofu's `tofu`) and its version, read
//! from `version -json`.

use std::fmt;
use std::path::Path;

/// The oldest version gitship supports (`-json` plan output, `workspace select -or-create`,
/// `terraform_data`).
pub const MINIMUM_VERSION: Version = Version {
    major: 1,
    minor: 5,
    patch: 0,
};

/// Terraform or OpenTofu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryKind {
    Terraform,
    OpenTofu,
}

impl fmt::Display for BinaryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryKind::Terraform => "Terraform",
            BinaryKind::OpenTofu => "OpenTofu",
        })
    }
}

/// A `major.minor.patch` version (pre-release suffixes are ignored).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// Parse `1.11.4`, `v1.6.0-beta1` and the like.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Read kind and version from `version -json` output. OpenTofu prints the same document
/// (it keeps the `terraform_version` key), so the kind also looks at the binary's name.
pub fn parse_version_json(binary: &str, text: &str) -> Result<(BinaryKind, Version), String> {
    let document: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON ({error})"))?;
    let version_text = document
        .get("terraform_version")
        .or_else(|| document.get("tofu_version"))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| "no `terraform_version` field".to_string())?;
    let version =
        Version::parse(version_text).ok_or_else(|| format!("`{version_text}` is not a version"))?;
    let name = Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(binary);
    let kind = if name.starts_with("tofu") || document.get("tofu_version").is_some() {
        BinaryKind::OpenTofu
    } else {
        BinaryKind::Terraform
    };
    Ok((kind, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(
            Version::parse("1.11.4"),
            Some(Version {
                major: 1,
                minor: 11,
                patch: 4
            })
        );
        assert_eq!(
            Version::parse("v1.6.0-beta1"),
            Some(Version {
                major: 1,
                minor: 6,
                patch: 0
            })
        );
        assert_eq!(Version::parse("banana"), None);
        assert!(Version::parse("1.4.7").unwrap() < MINIMUM_VERSION);
        assert!(Version::parse("1.10.0").unwrap() > MINIMUM_VERSION);
    }

    #[test]
    fn version_json_gives_kind_and_version() {
        let text = r#"{"terraform_version":"1.11.4","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}"#;
        assert_eq!(
            parse_version_json("terraform", text).unwrap(),
            (
                BinaryKind::Terraform,
                Version {
                    major: 1,
                    minor: 11,
                    patch: 4
                }
            )
        );
        assert_eq!(
            parse_version_json("/usr/bin/tofu", text).unwrap().0,
            BinaryKind::OpenTofu
        );
        assert!(parse_version_json("terraform", "Terraform v1.2").is_err());
    }
}
