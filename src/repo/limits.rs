//! Limits on what gitship reads, so that a hostile or broken file gives a clear error instead of
//! exhausting memory or the stack.
//!
//! `yaml-rust2` 0.13 bounds only flow nesting (`[[[...]]]`, "recursion limit exceeded" past 255
//! levels); block nesting, aliases and sizes are unbounded there. The limits below are gitship's
//! own, checked while the YAML tree is built ([`crate::repo::yaml`]), while files are read
//! ([`crate::repo::files`]) and while manifests are rendered ([`crate::render`]). Each is far
//! above what a real repository needs.

/// The largest file gitship reads (a manifest, an environment config, `gitship.yaml`): 16 MiB.
/// A Kubernetes object is at most 1.5 MiB in etcd, so a larger manifest file is almost certainly
/// not hand-written.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The deepest nesting of YAML collections in one document. Kubernetes objects rarely go past
/// 20 levels (CRD schemas perhaps 50); the rendered objects travel as JSON, and `serde_json`
/// refuses to read back more than 128 levels (saved plans add a few levels on top).
pub const MAX_DEPTH: usize = 100;

/// The most aliases (`*name`) in one YAML file.
pub const MAX_ALIASES: usize = 10_000;

/// The most nodes that aliases may add to one YAML file, in total: a "billion laughs" file of a
/// few hundred bytes expands to 10^9 nodes, a real one to a few thousand.
pub const MAX_ALIAS_NODES: usize = 250_000;

/// The most objects the manifests of one environment may render to.
pub const MAX_OBJECTS: usize = 50_000;

/// The size (as JSON) above which one rendered object gets a warning: the API server refuses
/// requests over about 1.5 MiB and etcd stores at most 1 MiB comfortably; `kubectl apply`'s
/// last-applied annotation has a 256 KiB limit of its own.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// `bytes` for a message: `16 MiB`, `1.4 MiB`, `900 KiB`, `12 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        let tenths = bytes * 10 / MIB;
        if tenths.is_multiple_of(10) {
            format!("{} MiB", tenths / 10)
        } else {
            format!("{}.{} MiB", tenths / 10, tenths % 10)
        }
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(MAX_FILE_BYTES), "16 MiB");
        assert_eq!(human_bytes(1_468_006), "1.3 MiB");
        assert_eq!(human_bytes(2048), "2 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
