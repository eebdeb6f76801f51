//! The environment a Terraform child process sees: an allowlist of gitship's own environment
//! plus the automation settings gitship always sets.
//!
//! Dropped on purpose: `TF_CLI_ARGS*` (would inject flags behind gitship's back), `TF_WORKSPACE`
//! (gitship selects the workspace per environment), `TF_LOG*` (may print secrets), `TF_VAR_*`
//! (variables come only from the generated `-var-file`), `TF_DATA_DIR` and `TF_INPUT` (set per
//! environment by gitship). Kept: what providers and the CLI need (credentials, proxies,
//! `TF_CLI_CONFIG_FILE`, `TF_PLUGIN_CACHE_DIR`, `TF_TOKEN_*`, HOME, PATH, locale, TLS roots).

/// Variables always set on the child.
pub const FIXED: &[(&str, &str)] = &[
    ("TF_IN_AUTOMATION", "1"),
    ("TF_INPUT", "0"),
    ("CHECKPOINT_DISABLE", "1"),
];

/// Exact names inherited from gitship's environment.
const KEEP_EXACT: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TZ",
    "TMPDIR",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
    "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE",
    "TF_REGISTRY_CLIENT_TIMEOUT",
    "TF_REGISTRY_DISCOVERY_RETRY",
    "KUBECONFIG",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
];

/// Prefixes inherited from gitship's environment (provider credentials and settings).
const KEEP_PREFIXES: &[&str] = &[
    "LC_",
    "TF_TOKEN_",
    "AWS_",
    "AZURE_",
    "ARM_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "DIGITALOCEAN_",
    "CLOUDFLARE_",
    "HCLOUD_",
    "LINODE_",
    "OCI_",
    "SCW_",
    "VAULT_",
    "CONSUL_",
    "KUBE_",
    "HELM_",
    "DOCKER_",
    "GITHUB_",
];

/// Whether the variable `name` of gitship's environment is passed on to Terraform.
pub fn is_inherited(name: &str) -> bool {
    if name.starts_with("TF_CLI_ARGS")
        || name == "TF_WORKSPACE"
        || name.starts_with("TF_LOG")
        || name.starts_with("TF_VAR_")
        || name == "TF_DATA_DIR"
        || name == "TF_INPUT"
        || name == "TF_IN_AUTOMATION"
    {
        return false;
    }
    KEEP_EXACT.contains(&name) || KEEP_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_variables_are_dropped() {
        for name in [
            "TF_CLI_ARGS",
            "TF_CLI_ARGS_plan",
            "TF_WORKSPACE",
            "TF_LOG",
            "TF_LOG_PATH",
            "TF_VAR_password",
        ] {
            assert!(!is_inherited(name), "{name} must not be inherited");
        }
        assert!(
            !is_inherited("RANDOM_SECRET"),
            "unknown variables are not inherited"
        );
    }

    #[test]
    fn what_providers_need_is_kept() {
        for name in [
            "HOME",
            "PATH",
            "TF_CLI_CONFIG_FILE",
            "TF_PLUGIN_CACHE_DIR",
            "AWS_PROFILE",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "HTTPS_PROXY",
            "no_proxy",
            "TF_TOKEN_app_terraform_io",
        ] {
            assert!(is_inherited(name), "{name} must be inherited");
        }
    }
}
