//! The bodies of the fuzz targets, as plain functions: `fuzz_targets/*.rs` hand them libFuzzer's
//! input, and `tests/corpus.rs` replays the seed corpus through them with a plain `cargo test`
//! (no nightly needed). Each must never panic, whatever the bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitship::facade::render::{RenderInputs, UnknownOutputs};

/// The YAML reader: any text parses to documents or to an error with a position, and the tree
/// converts to JSON.
pub fn yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An error is fine; a panic, a hang or unbounded memory is not.
    if let Ok(documents) = gitship::facade::repo::yaml::parse_documents(text) {
        for root in documents.into_iter().filter_map(|document| document.root) {
            let _ = root.to_json();
            let _ = root.type_name();
        }
    }
}

/// The template engine: any manifest text renders or reports problems; rendered objects emit as
/// YAML.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs = RenderInputs {
        environment: "staging".into(),
        namespace: "shop-staging".into(),
        values: serde_json::json!({"replicas": 2, "domain": "example.com", "list": [1, "a"], "nested": {"a": {"b": true}}}),
        git_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        images: BTreeMap::new(),
        terraform: Default::default(),
        bare_image_names: true,
    };
    let sources = [(PathBuf::from("fuzz.yaml"), text.to_string())];
    for unknown in [UnknownOutputs::Error, UnknownOutputs::Placeholder] {
        if let Ok(manifests) =
            gitship::facade::render::render_sources("staging", &sources, &inputs, unknown)
        {
            let _ = gitship::facade::render::to_yaml_stream(&manifests);
        }
    }
}

/// The environment config parser: any text is a config or an error.
pub fn env_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/repo/config/staging.yaml");
    let _ =
        gitship::facade::repo::EnvConfig::parse("staging", file, Path::new("config/staging.yaml"), text);
}

/// The `skaffold.yaml` reader of `gitship init`: any text is artifacts and manifests, or an
/// error with a position.
pub fn skaffold(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gitship::facade::ops::init::parse_skaffold(text);
}

/// The registry parsers: a `registry:` value is an image repository prefix or not (and never
/// panics), and a docker `config.json` gives credentials for a registry or an error.
pub fn registry(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gitship::facade::repo::config::is_repository_prefix(text);
    let _ = gitship::facade::image::registry::is_loopback(text);
    let (host, config) = text.split_once('\n').unwrap_or(("ghcr.io", text));
    let _ = gitship::facade::image::registry::stored_credentials(config, host);
}
