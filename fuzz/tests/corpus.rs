//! Replays the seed corpus (`corpus/<target>/*`) and the promoted crashes
//! (`regressions/<target>/*`) through the fuzz target bodies: `cargo test` in `fuzz/`, on stable.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("read corpus file");
            run(&data);
            count += 1;
        }
    }
    assert!(count > 0, "no seed corpus for `{target}`");
}

#[test]
fn yaml_corpus() {
    replay("yaml", gitship_fuzz::yaml);
}

#[test]
fn template_corpus() {
    replay("template", gitship_fuzz::template);
}

#[test]
fn env_config_corpus() {
    replay("env_config", gitship_fuzz::env_config);
}

#[test]
fn skaffold_corpus() {
    replay("skaffold", gitship_fuzz::skaffold);
}

#[test]
fn registry_corpus() {
    replay("registry", gitship_fuzz::registry);
}
