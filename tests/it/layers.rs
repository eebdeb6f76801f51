//! The layer rule of ARCHITECTURE.md ("## Layers") as a test, as rust-analyzer's tidy tests hold
//! its architecture: every path to a module of gitship in `src/**/*.rs` and in the sources of the
//! crates `gitship-foundation` and `gitship-kube` (a `use`, a grouped `use crate::{a, b}`, a fully
//! qualified call in code; comments and strings are not code) is checked against the table below,
//! which is the one encoding of the table in ARCHITECTURE.md; `the_table_is_the_documented_one`
//! keeps the two in step. The two crates' modules are named as they are in `gitship`
//! (`crates/gitship-kube/src/pin.rs` is `kube/pin.rs`, its `crate::` is `kube::`; a
//! `gitship_foundation::model` is `model`), so one table holds all three crates: the compiler
//! already keeps `kube` to the foundation, the test keeps the rest. Each allowed break is an
//! [`Exception`] with its reason, explained in ARCHITECTURE.md too. No cluster, no build: the
//! source is read as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One row of the layer table: a layer, its top-level modules, and the layers it may use (its
/// own always: the modules of one layer may use each other, without a circle).
struct Layer {
    name: &'static str,
    modules: &'static [&'static str],
    may_use: &'static [&'static str],
}

/// The table, from the top down. A layer uses the layers named (its own when it names itself:
/// the stages do not know each other) or single modules, in backticks.
const LAYERS: &[Layer] = &[
    Layer {
        name: "binary",
        modules: &["main", "lib", "logging", "facade"],
        may_use: &[
            "binary",
            "commands",
            "agent",
            "operations",
            "plan",
            "stages",
            "foundation",
        ],
    },
    Layer {
        name: "commands",
        modules: &["commands", "cli", "settings"],
        may_use: &["commands", "agent", "operations", "plan", "foundation"],
    },
    Layer {
        name: "agent",
        modules: &["agent"],
        may_use: &["agent", "operations", "plan", "stages", "foundation"],
    },
    Layer {
        name: "operations",
        modules: &["ops"],
        may_use: &["operations", "plan", "stages", "foundation"],
    },
    Layer {
        name: "plan",
        modules: &["plan"],
        may_use: &["plan", "`kube`", "`terraform`", "`render`", "foundation"],
    },
    Layer {
        name: "stages",
        modules: &["image", "terraform", "render", "kube"],
        may_use: &["foundation"],
    },
    Layer {
        name: "foundation",
        modules: &[
            "repo",
            "git",
            "model",
            "duration",
            "ci",
            "process",
            "private_file",
            "output",
            "diagnostics",
            "exit",
            "tls",
        ],
        may_use: &["foundation"],
    },
];

/// Rules finer than the table (ARCHITECTURE.md, "Code map"): `from` uses only these modules
/// besides its own.
const ONLY_USES: &[(&str, &[&str], &str)] = &[
    (
        "kube",
        &[
            "model",
            "diagnostics",
            "process",
            "output",
            "private_file",
            "tls",
            "duration",
        ],
        "`kube` never reads the repository nor its configs: what it needs of them comes as values",
    ),
    (
        "model",
        &["diagnostics"],
        "the domain types depend on nothing of gitship but `diagnostics::Location`",
    ),
];

/// A break of the table that is allowed, and why (ARCHITECTURE.md explains each).
struct Exception {
    /// The file, by its module path (`kube/pin.rs`; see [`sources`]).
    file: &'static str,
    /// The path used, after `crate::`; a prefix (`image::BuildRequest` allows
    /// `image::BuildRequest` and `image::BuildRequest::new`).
    uses: &'static str,
    reason: &'static str,
}

const EXCEPTIONS: &[Exception] = &[];

/// Who may write the inventory ConfigMap `gitship-<env>`: `kube::deploy` and `kube::destroy`
/// (which drops each object it deleted) through `inventory::store`, under the deploy lock
/// (ARCHITECTURE.md, "Invariants"), and `kube::pin`,
/// which merge-patches its own keys only (ARCHITECTURE.md, "The pin writes outside the lock").
const INVENTORY_STORE_CALLERS: &[&str] = &["kube/deploy.rs", "kube/destroy.rs"];
/// Each file that patches a ConfigMap named by `configmap_name`, why, and whether that is an
/// exception to the rule (then ARCHITECTURE.md explains it).
const INVENTORY_PATCHERS: &[(&str, &str, bool)] = &[
    ("kube/inventory.rs", "`inventory::store` itself", false),
    (
        "kube/deploy.rs",
        "the deploy, under the lock (its other patches are the objects and the Namespace)",
        false,
    ),
    (
        "kube/destroy.rs",
        "destroy, under the lock (its other patch takes a kept Namespace's `created-by` mark off)",
        false,
    ),
    (
        "kube/pin.rs",
        "the pin and the suspension: one key each, merge-patched under their own field manager, outside the lock",
        true,
    ),
];

#[test]
fn no_module_uses_a_layer_above_it_or_a_stage_beside_it() {
    let files = sources();
    let mut breaks = Vec::new();
    let mut used = BTreeSet::new();
    for (file, source) in &files {
        let from = top_module(file);
        for (line, path) in source.module_paths() {
            let to = path.split("::").next().unwrap_or_default().to_string();
            if to == from {
                continue;
            }
            let Some(why) = forbidden(&from, &to) else {
                continue;
            };
            if let Some(index) = EXCEPTIONS
                .iter()
                .position(|e| e.file == file && path.starts_with(e.uses))
            {
                used.insert(index);
                continue;
            }
            breaks.push(format!("{}:{line}: {why} (`{path}`)", source.shown));
        }
    }
    for (index, exception) in EXCEPTIONS.iter().enumerate() {
        if !used.contains(&index) {
            breaks.push(format!(
                "exception `{}` uses `{}` ({}) is no longer needed: remove it here and in ARCHITECTURE.md",
                exception.file, exception.uses, exception.reason
            ));
        }
    }
    assert!(
        breaks.is_empty(),
        "{} break(s) of the layer table (ARCHITECTURE.md, \"## Layers\"):\n{}",
        breaks.len(),
        breaks.join("\n")
    );
}

#[test]
fn top_level_modules_form_no_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, source) in sources() {
        let from = top_module(&file);
        for (_, path) in source.module_paths() {
            let to = path.split("::").next().unwrap_or_default().to_string();
            if to != from && !to.is_empty() {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    let mut circles = BTreeSet::new();
    for start in edges.keys() {
        if let Some(mut circle) = path_back(&edges, start) {
            // One name per circle, whichever module it is found from.
            let least = circle
                .iter()
                .enumerate()
                .min_by_key(|(_, name)| name.as_str())
                .map_or(0, |(index, _)| index);
            circle.rotate_left(least);
            circles.insert(circle.join(" -> "));
        }
    }
    assert!(
        circles.is_empty(),
        "top-level modules that use each other in a circle:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn only_the_deploy_and_the_pin_write_the_inventory() {
    let mut wrong = Vec::new();
    for (file, source) in sources() {
        let code = strip_comments_and_strings(&source.text);
        if code.contains("inventory::store(") && !INVENTORY_STORE_CALLERS.contains(&file.as_str()) {
            wrong.push(format!(
                "{} calls `inventory::store` outside the deploy",
                source.shown
            ));
        }
        let patches = code.contains(".patch(") || code.contains(".replace(");
        if patches
            && code.contains("configmap_name(")
            && !INVENTORY_PATCHERS
                .iter()
                .any(|(allowed, _, _)| *allowed == file)
        {
            wrong.push(format!(
                "{} writes a ConfigMap named by `configmap_name`: the inventory is written only by `kube::deploy` under the lock",
                source.shown
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The table in ARCHITECTURE.md names the same layers, modules and uses as [`LAYERS`], and
/// every exception's file is explained there.
#[test]
fn the_table_is_the_documented_one() {
    let document =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = document
        .split("\n## Layers\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|line| {
            line.starts_with('|') && !line.starts_with("| ---") && !line.starts_with("| layer")
        })
        .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let documented: Vec<(String, BTreeSet<String>, BTreeSet<String>)> = rows
        .iter()
        .map(|row| {
            let modules = backticked(row.get(1).copied().unwrap_or_default())
                .into_iter()
                .map(|name| {
                    name.trim_end_matches(".rs")
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect();
            let uses = row
                .get(2)
                .copied()
                .unwrap_or_default()
                .split(',')
                .map(|word| word.trim().to_string())
                .filter(|word| !word.is_empty() && word != "nothing of gitship")
                .collect();
            (row[0].to_string(), modules, uses)
        })
        .collect();
    let encoded: Vec<(String, BTreeSet<String>, BTreeSet<String>)> = LAYERS
        .iter()
        .map(|layer| {
            (
                layer.name.to_string(),
                layer.modules.iter().map(|m| m.to_string()).collect(),
                layer.may_use.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        documented, encoded,
        "the table of ARCHITECTURE.md (\"## Layers\") and `LAYERS` in tests/it/layers.rs differ"
    );
    for exception in EXCEPTIONS {
        assert!(
            document.contains(exception.file),
            "the exception of `{}` ({}) is not explained in ARCHITECTURE.md",
            exception.file,
            exception.reason
        );
    }
    for (file, why, _) in INVENTORY_PATCHERS
        .iter()
        .filter(|(_, _, exception)| *exception)
    {
        assert!(
            document.contains(file),
            "`{file}` ({why}) is not explained in ARCHITECTURE.md"
        );
    }
    // Every top-level module of `src/` is in the table.
    let tabled: BTreeSet<&str> = LAYERS
        .iter()
        .flat_map(|l| l.modules.iter().copied())
        .collect();
    let missing: Vec<String> = sources()
        .keys()
        .map(|file| top_module(file))
        .filter(|module| !tabled.contains(module.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        missing.is_empty(),
        "modules in no layer of the table: {missing:?}"
    );
}

/// Why `from` may not use `to`, if it may not.
fn forbidden(from: &str, to: &str) -> Option<String> {
    let layer_of = |module: &str| LAYERS.iter().find(|l| l.modules.contains(&module));
    let (Some(from_layer), Some(to_layer)) = (layer_of(from), layer_of(to)) else {
        return Some(format!("`{from}` or `{to}` is in no layer of the table"));
    };
    let allowed = from_layer.may_use.contains(&to_layer.name)
        || from_layer.may_use.contains(&format!("`{to}`").as_str());
    if !allowed {
        return Some(format!(
            "layer {} (`{from}`) may not use {} (`{to}`)",
            from_layer.name, to_layer.name
        ));
    }
    ONLY_USES
        .iter()
        .find(|(module, _, _)| *module == from)
        .filter(|(_, uses, _)| !uses.contains(&to))
        .map(|(_, _, why)| format!("`{from}` may not use `{to}`: {why}"))
}

/// A circle of `edges` through `start`, if there is one.
fn path_back(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

/// The words in backticks of a table cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One source file: where it is, its text, and what its `crate::` names.
struct Source {
    /// Its path from the repository's root, for messages.
    shown: String,
    text: String,
    /// What `crate::` means in it, as a module path of `gitship`: nothing for `gitship` and
    /// the foundation crate (whose modules keep their names), `kube::` in `gitship-kube`.
    crate_is: &'static str,
}

impl Source {
    /// Every path to a module of gitship in the code, with its line, named as in `gitship`:
    /// `crate::` paths, and the foundation's and kube's crates used by name.
    fn module_paths(&self) -> Vec<(usize, String)> {
        let mut found: Vec<(usize, String)> = crate_paths(&self.text, "crate::")
            .into_iter()
            .map(|(line, path)| (line, format!("{}{path}", self.crate_is)))
            .collect();
        found.extend(crate_paths(&self.text, "gitship_foundation::"));
        found.extend(
            crate_paths(&self.text, "gitship_kube::")
                .into_iter()
                .map(|(line, path)| (line, format!("kube::{path}"))),
        );
        found.sort();
        found
    }
}

/// Every `src/**/*.rs` by its path below `src/`, and the modules of the crates
/// `gitship-foundation` and `gitship-kube` by the path they would have there
/// (`crates/gitship-kube/src/pin.rs` is `kube/pin.rs`, its `lib.rs` `kube/lib.rs`). The
/// foundation crate's `lib.rs` only declares its modules: it is no module of the table.
fn sources() -> BTreeMap<String, Source> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                let name = path
                    .strip_prefix(base)
                    .expect("below src")
                    .to_string_lossy();
                out.insert(name.replace('\\', "/"), text);
            }
        }
    }
    let crates: [(&str, &str, &str); 3] = [
        ("src", "", ""),
        ("crates/gitship-foundation/src", "", ""),
        ("crates/gitship-kube/src", "kube/", "kube::"),
    ];
    let mut out = BTreeMap::new();
    for (folder, module, crate_is) in crates {
        let src = root().join(folder);
        let mut files = BTreeMap::new();
        walk(&src, &src, &mut files);
        assert!(!files.is_empty(), "read no file of {folder}/");
        for (name, text) in files {
            if folder == "crates/gitship-foundation/src" && name == "lib.rs" {
                continue;
            }
            let source = Source {
                shown: format!("{folder}/{name}"),
                text,
                crate_is,
            };
            out.insert(format!("{module}{name}"), source);
        }
    }
    assert!(out.len() > 50, "read only {} source files", out.len());
    out
}

/// The top-level module of a file by its module path: `kube/pin.rs` -> `kube`, `main.rs` -> `main`.
fn top_module(file: &str) -> String {
    let first = file.split('/').next().unwrap_or(file);
    first.trim_end_matches(".rs").to_string()
}

/// Every path of the code that starts with `root` (`crate::`, `gitship_kube::`) with its line,
/// after `root`: grouped uses are expanded (`use crate::{a, b::{c, d}}` gives `a`, `b::c`,
/// `b::d`); `$crate` is not gitship's.
fn crate_paths(text: &str, root: &str) -> Vec<(usize, String)> {
    let code: Vec<char> = strip_comments_and_strings(text).chars().collect();
    let mut found = Vec::new();
    let needle: Vec<char> = root.chars().collect();
    let mut index = 0;
    while index + needle.len() <= code.len() {
        if code[index..index + needle.len()] == needle[..]
            && (index == 0 || !is_ident(code[index - 1]) && code[index - 1] != '$')
        {
            let line = code[..index].iter().filter(|c| **c == '\n').count() + 1;
            let mut at = index + needle.len();
            for path in parse_tree(&code, &mut at, "") {
                found.push((line, path));
            }
            index = at.max(index + 1);
        } else {
            index += 1;
        }
    }
    found
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One use tree at `code[*at..]`: `a::b`, `a::{b, c::d}`, `a::b as c`, `a::*`, `self`.
fn parse_tree(code: &[char], at: &mut usize, prefix: &str) -> Vec<String> {
    let skip_space = |at: &mut usize| {
        while *at < code.len() && code[*at].is_whitespace() {
            *at += 1;
        }
    };
    let mut path = prefix.to_string();
    loop {
        skip_space(at);
        if *at < code.len() && code[*at] == '{' {
            *at += 1;
            let mut paths = Vec::new();
            loop {
                skip_space(at);
                if *at >= code.len() || code[*at] == '}' {
                    *at += 1;
                    return paths;
                }
                if code[*at] == ',' {
                    *at += 1;
                    continue;
                }
                let before = *at;
                paths.extend(parse_tree(code, at, &path));
                if *at == before {
                    *at += 1;
                }
            }
        }
        let start = *at;
        while *at < code.len() && (is_ident(code[*at]) || code[*at] == '*') {
            *at += 1;
        }
        let segment: String = code[start..*at].iter().collect();
        if segment.is_empty() {
            return vec![path.trim_end_matches("::").to_string()];
        }
        if segment != "self" {
            path.push_str(&segment);
        }
        if code.get(*at) == Some(&':') && code.get(*at + 1) == Some(&':') {
            *at += 2;
            path.push_str("::");
            continue;
        }
        // `as name`: the rename is not a path.
        let mut look = *at;
        while look < code.len() && code[look].is_whitespace() {
            look += 1;
        }
        if code[look..].starts_with(&['a', 's', ' ']) {
            *at = look + 3;
            skip_space(at);
            while *at < code.len() && is_ident(code[*at]) {
                *at += 1;
            }
        }
        return vec![path.trim_end_matches("::").to_string()];
    }
}

/// `text` with comments, string and char literals blanked (newlines kept, so lines still count).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                    out.push_str("  ");
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    out.push_str("  ");
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[index]));
                    index += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (index == 0 || !is_ident(chars[index - 1]))
        {
            // A raw string: r"..." or r#"..."#.
            let mut hashes = 0;
            let mut at = index + 1;
            while chars.get(at) == Some(&'#') {
                hashes += 1;
                at += 1;
            }
            if chars.get(at) != Some(&'"') {
                out.push(c);
                index += 1;
                continue;
            }
            at += 1;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while at < chars.len() && !chars[at..].starts_with(&closing) {
                out.push(blank(chars[at]));
                at += 1;
            }
            out.push_str("\"\"");
            index = at + closing.len();
        } else if c == '"' {
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' {
                    out.push(' ');
                    index += 1;
                }
                if let Some(&inner) = chars.get(index) {
                    out.push(blank(inner));
                }
                index += 1;
            }
            out.push_str("\"\"");
            index += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                let mut at = index + 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                out.push_str("' '");
                index = at + 1;
            } else if chars.get(index + 2) == Some(&'\'') {
                out.push_str("' '");
                index += 3;
            } else {
                out.push(c);
                index += 1;
            }
        } else {
            out.push(c);
            index += 1;
        }
    }
    out
}

#[test]
fn the_reader_finds_grouped_and_qualified_paths_and_skips_comments() {
    let text = "use crate::{a, b::{c, self, d as e}};\n// crate::f\nfn x() { crate::g::h(\"crate::i\"); let c = '\"'; r#\"crate::j\"#; }\n/* crate::k */ $crate::l; use crate::m::*;";
    let paths: Vec<(usize, String)> = crate_paths(text, "crate::");
    assert_eq!(
        paths,
        vec![
            (1, "a".to_string()),
            (1, "b::c".to_string()),
            (1, "b".to_string()),
            (1, "b::d".to_string()),
            (3, "g::h".to_string()),
            (4, "m::*".to_string()),
        ]
    );
}

#[test]
fn the_crates_modules_are_named_as_in_gitship() {
    let kube = Source {
        shown: "crates/gitship-kube/src/pin.rs".into(),
        text: "use crate::inventory;\nuse gitship_foundation::{model::ObjectId, process};".into(),
        crate_is: "kube::",
    };
    assert_eq!(
        kube.module_paths(),
        vec![
            (1, "kube::inventory".to_string()),
            (2, "model::ObjectId".to_string()),
            (2, "process".to_string()),
        ]
    );
    let gitship = Source {
        shown: "src/ops/drift.rs".into(),
        text: "fn f() { gitship_kube::live::compare_live(); crate::plan::x(); }".into(),
        crate_is: "",
    };
    assert_eq!(
        gitship.module_paths(),
        vec![
            (1, "kube::live::compare_live".to_string()),
            (1, "plan::x".to_string()),
        ]
    );
    // A module of the kube crate that used a stage would break the table like one in `src/`.
    assert!(forbidden("kube", "repo").is_some());
    let files = sources();
    assert!(files.contains_key("kube/deploy.rs") && files.contains_key("model/image_ref.rs"));
}
