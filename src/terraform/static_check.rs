//! Static checks of the Terraform root module against an environment, before Terraform runs.
//!
//! The module's `.tf` files are parsed with hcl-rs (its span-preserving `hcl-edit` parser, so
//! every finding has a file and line): `variable` blocks (required = no `default`, `sensitive`),
//! `output` blocks, and what decides whether `init` must run again (`terraform` blocks and the
//! `source`/`version` of `module` calls). A required variable the environment does not set, or a
//! variable the environment sets that the module does not declare, is an error naming the
//! variable, the environment file and line, and the `.tf` file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::edit::Span;
use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, Body};

use crate::terraform::TerraformSettings;
use crate::terraform::error::{StaticProblem, TerraformError};
use gitship_foundation::diagnostics::Location;

/// What gitship knows about the root module without running Terraform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Variable name -> declaration.
    pub variables: BTreeMap<String, VariableInfo>,
    /// Output name -> declaration.
    pub outputs: BTreeMap<String, OutputInfo>,
    /// The module's `.tf` / `.tf.json` files, sorted.
    pub files: Vec<PathBuf>,
    /// The source text of everything that decides whether `init` must run again (`terraform`
    /// blocks, `module` sources and versions), in file order; hashed into the init fingerprint.
    pub init_inputs: Vec<String>,
    /// The backend a `terraform` block declares (`backend "s3"`; `cloud` for a `cloud` block);
    /// `None` is Terraform's default, the local backend.
    pub backend: Option<String>,
    /// The `terraform` block's `required_version`, as written (`">= 1.5"`, `"1.9.8"`).
    pub required_version: Option<String>,
    /// The `resource` blocks of its `.tf` files: `aws_eks_cluster.main` and where.
    pub resources: Vec<(String, Location)>,
    /// The `module` calls of its `.tf` files: name, `source` as written, and where.
    pub module_calls: Vec<(String, String, Location)>,
    /// Variables the module's own variable files set (`terraform.tfvars`, `*.auto.tfvars` and
    /// their `.json` forms, which Terraform loads by itself): not missing when the environment
    /// leaves them out.
    pub set_by_files: std::collections::BTreeSet<String>,
}

impl ModuleInfo {
    /// Whether the state lives in local files (no backend declared, or `backend "local"`).
    pub fn local_state(&self) -> bool {
        self.backend
            .as_deref()
            .is_none_or(|backend| backend == "local")
    }
}

impl ModuleInfo {
    /// Names of the variables declared `sensitive = true`.
    pub fn sensitive_variables(&self) -> impl Iterator<Item = &str> {
        self.variables
            .values()
            .filter(|v| v.sensitive)
            .map(|v| v.name.as_str())
    }
}

/// One `variable` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableInfo {
    pub name: String,
    /// No `default`: the environment must set it.
    pub required: bool,
    pub sensitive: bool,
    pub declared_at: Location,
}

/// One `output` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    pub name: String,
    pub sensitive: bool,
    pub declared_at: Location,
}

/// Parse the module and check it against the environment's `terraform.vars`.
pub fn check_static(settings: &TerraformSettings) -> Result<ModuleInfo, TerraformError> {
    let (info, mut problems) = inspect_module(&settings.module_dir, &settings.display_root);
    if problems.is_empty() {
        problems.extend(check_variables(&info, settings));
    }
    if problems.is_empty() {
        Ok(info)
    } else {
        Err(TerraformError::Static {
            environment: settings.env_name.clone(),
            problems,
        })
    }
}

/// Parse every `.tf` and `.tf.json` file of `module_dir`; locations are shown relative to
/// `display_root`. Returns what was found and the files that could not be read or parsed.
pub fn inspect_module(module_dir: &Path, display_root: &Path) -> (ModuleInfo, Vec<StaticProblem>) {
    let mut info = ModuleInfo::default();
    let mut problems = Vec::new();
    let files = match files_named(module_dir, |name| {
        name.ends_with(".tf") || name.ends_with(".tf.json")
    }) {
        Ok(files) => files,
        Err(error) => {
            problems.push(StaticProblem::Unreadable {
                path: module_dir.to_path_buf(),
                message: error.to_string(),
            });
            return (info, problems);
        }
    };
    for path in &files {
        let Some((shown, text)) = read_listed(module_dir, path, display_root, &mut problems) else {
            continue;
        };
        let is_json = path.extension().is_some_and(|e| e == "json");
        let result = if is_json {
            read_json_file(&text, &shown, &mut info)
        } else {
            read_hcl_file(&text, &shown, &mut info)
        };
        if let Err(problem) = result {
            problems.push(problem);
        }
    }
    info.files = files;
    read_variable_files(module_dir, display_root, &mut info, &mut problems);
    (info, problems)
}

/// A listed file of the module (bounded: [`crate::repo::files::read_text`]), shown relative to
/// `display_root`; `None`, with the problem recorded, when it cannot be read.
fn read_listed(
    module_dir: &Path,
    path: &Path,
    display_root: &Path,
    problems: &mut Vec<StaticProblem>,
) -> Option<(PathBuf, String)> {
    let shown = path
        .strip_prefix(display_root)
        .unwrap_or(path)
        .to_path_buf();
    match crate::repo::files::read_text(module_dir, path) {
        Ok(text) => Some((shown, text)),
        Err(error) => {
            problems.push(StaticProblem::Unreadable {
                path: shown,
                message: error.to_string(),
            });
            None
        }
    }
}

/// The regular files of `dir` whose name `wanted` accepts, sorted.
fn files_named(dir: &Path, wanted: impl Fn(&str) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(&wanted)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Whether Terraform loads the file called `name` of the root module by itself.
fn is_variable_file(name: &str) -> bool {
    matches!(name, "terraform.tfvars" | "terraform.tfvars.json")
        || name.ends_with(".auto.tfvars")
        || name.ends_with(".auto.tfvars.json")
}

/// The names the module's own variable files set ([`ModuleInfo::set_by_files`]); their values are
/// never read into anything else (they may be secret).
fn read_variable_files(
    module_dir: &Path,
    display_root: &Path,
    info: &mut ModuleInfo,
    problems: &mut Vec<StaticProblem>,
) {
    let Ok(files) = files_named(module_dir, is_variable_file) else {
        return;
    };
    for path in files {
        let Some((shown, text)) = read_listed(module_dir, &path, display_root, problems) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "json") {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(map)) => info.set_by_files.extend(map.keys().cloned()),
                Ok(_) => problems.push(StaticProblem::Syntax {
                    at: Location::new(&shown, 1, 1),
                    message: "a variable file in JSON must be an object".into(),
                }),
                Err(error) => problems.push(StaticProblem::Syntax {
                    at: Location::new(&shown, error.line(), error.column()),
                    message: error.to_string(),
                }),
            }
            continue;
        }
        match hcl::edit::parser::parse_body(&text) {
            Ok(body) => info
                .set_by_files
                .extend(body.attributes().map(|a| a.key.as_str().to_string())),
            Err(error) => problems.push(StaticProblem::Syntax {
                at: Location::new(&shown, error.location().line(), error.location().column()),
                message: error.message().to_string(),
            }),
        }
    }
}

fn read_hcl_file(text: &str, shown: &Path, info: &mut ModuleInfo) -> Result<(), StaticProblem> {
    let body: Body =
        hcl::edit::parser::parse_body(text).map_err(|error| StaticProblem::Syntax {
            at: Location::new(shown, error.location().line(), error.location().column()),
            message: error.message().to_string(),
        })?;
    let location_of = |block: &Block| {
        let offset = block.span().map_or(0, |span| span.start);
        let (line, column) = line_column(text, offset);
        Location::new(shown, line, column)
    };
    for block in body.blocks() {
        let label = block.labels.first().map(|label| label.as_str().to_string());
        match (block.ident.as_str(), label) {
            ("variable", Some(name)) => {
                let variable = VariableInfo {
                    required: !block.body.has_attribute("default"),
                    sensitive: is_true(block.body.get_attribute("sensitive").map(|a| &a.value)),
                    declared_at: location_of(block),
                    name: name.clone(),
                };
                info.variables.insert(name, variable);
            }
            ("output", Some(name)) => {
                let output = OutputInfo {
                    sensitive: is_true(block.body.get_attribute("sensitive").map(|a| &a.value)),
                    declared_at: location_of(block),
                    name: name.clone(),
                };
                info.outputs.insert(name, output);
            }
            ("terraform", _) => {
                for inner in block.body.blocks() {
                    match (inner.ident.as_str(), inner.labels.first()) {
                        ("backend", Some(name)) => info.backend = Some(name.as_str().to_string()),
                        ("cloud", _) => info.backend = Some("cloud".to_string()),
                        _ => {}
                    }
                }
                if let Some(Expression::String(version)) = block
                    .body
                    .get_attribute("required_version")
                    .map(|attribute| &attribute.value)
                {
                    info.required_version = Some(version.value().to_string());
                }
                if let Some(span) = block.span() {
                    info.init_inputs
                        .push(text.get(span).unwrap_or_default().to_string());
                }
            }
            ("resource", Some(kind)) => {
                if let Some(name) = block.labels.get(1) {
                    let address = format!("{kind}.{}", name.as_str());
                    info.resources.push((address, location_of(block)));
                }
            }
            ("module", Some(name)) => {
                if let Some(source) = block
                    .body
                    .get_attribute("source")
                    .and_then(|a| a.value.as_str())
                {
                    info.module_calls
                        .push((name.clone(), source.to_string(), location_of(block)));
                }
                let mut input = format!("module {name}");
                for key in ["source", "version"] {
                    if let Some(span) = block.body.get_attribute(key).and_then(|a| a.span()) {
                        input.push('\n');
                        input.push_str(text.get(span).unwrap_or_default());
                    }
                }
                info.init_inputs.push(input);
            }
            _ => {}
        }
    }
    Ok(())
}

/// `.tf.json` files: the same blocks in Terraform's JSON syntax (locations are the file start).
fn read_json_file(text: &str, shown: &Path, info: &mut ModuleInfo) -> Result<(), StaticProblem> {
    let document: serde_json::Value =
        serde_json::from_str(text).map_err(|error| StaticProblem::Syntax {
            at: Location::new(shown, error.line(), error.column()),
            message: error.to_string(),
        })?;
    let at = Location::new(shown, 1, 1);
    if let Some(variables) = document.get("variable").and_then(|v| v.as_object()) {
        for (name, body) in variables {
            let variable = VariableInfo {
                name: name.clone(),
                required: body.get("default").is_none(),
                sensitive: body
                    .get("sensitive")
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false),
                declared_at: at.clone(),
            };
            info.variables.insert(name.clone(), variable);
        }
    }
    if let Some(outputs) = document.get("output").and_then(|v| v.as_object()) {
        for (name, body) in outputs {
            let output = OutputInfo {
                name: name.clone(),
                sensitive: body
                    .get("sensitive")
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false),
                declared_at: at.clone(),
            };
            info.outputs.insert(name.clone(), output);
        }
    }
    // `"terraform": {"backend": {"s3": {}}}`, or a list of such objects.
    let terraform_blocks = match document.get("terraform") {
        Some(serde_json::Value::Array(blocks)) => blocks.iter().collect(),
        Some(block) => vec![block],
        None => Vec::new(),
    };
    for block in terraform_blocks {
        if let Some(name) = block
            .get("backend")
            .and_then(|b| b.as_object())
            .and_then(|b| b.keys().next())
        {
            info.backend = Some(name.clone());
        }
        if block.get("cloud").is_some() {
            info.backend = Some("cloud".to_string());
        }
        if let Some(version) = block.get("required_version").and_then(|v| v.as_str()) {
            info.required_version = Some(version.to_string());
        }
    }
    for key in ["terraform", "module"] {
        if let Some(value) = document.get(key) {
            info.init_inputs.push(format!("{key} {value}"));
        }
    }
    Ok(())
}

fn is_true(expression: Option<&Expression>) -> bool {
    matches!(expression, Some(Expression::Bool(value)) if *value.value())
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |rest| rest.chars().count())
        + 1;
    (line, column)
}

fn check_variables(info: &ModuleInfo, settings: &TerraformSettings) -> Vec<StaticProblem> {
    let mut problems = Vec::new();
    let env_file = settings
        .env_file
        .strip_prefix(&settings.display_root)
        .unwrap_or(&settings.env_file);
    let vars_location = settings
        .vars_location
        .clone()
        .map(|location| location.relative_to(&settings.display_root))
        .unwrap_or_else(|| Location::new(env_file, 1, 1));
    for variable in info.variables.values() {
        // Terraform's own sources of a value: the module's variable files, `TF_VAR_<name>`.
        let set_elsewhere = info.set_by_files.contains(&variable.name)
            || std::env::var_os(format!("TF_VAR_{}", variable.name)).is_some();
        if variable.required && !settings.vars.contains_key(&variable.name) && !set_elsewhere {
            problems.push(StaticProblem::MissingVariable {
                name: variable.name.clone(),
                declared_at: variable.declared_at.clone(),
                env_location: vars_location.clone(),
            });
        }
    }
    for name in settings.vars.keys() {
        if info.variables.contains_key(name) {
            continue;
        }
        let env_location = settings
            .var_spans
            .get(name)
            .map(|location| location.relative_to(&settings.display_root))
            .unwrap_or_else(|| vars_location.clone());
        let suggestion = info
            .variables
            .keys()
            .map(|declared| (strsim::jaro_winkler(name, declared), declared))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, declared)| declared.clone());
        problems.push(StaticProblem::UndeclaredVariable {
            name: name.clone(),
            env_location,
            module_dir: settings
                .module_dir
                .strip_prefix(&settings.display_root)
                .unwrap_or(&settings.module_dir)
                .to_path_buf(),
            suggestion,
        });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_outputs_and_init_inputs_are_read_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.tf"),
            "terraform {\n  required_version = \">= 1.5\"\n}\n\nvariable \"name\" {\n  type = string\n}\n\nvariable \"password\" {\n  type      = string\n  sensitive = true\n  default   = null\n}\n\noutput \"token\" {\n  value     = var.password\n  sensitive = true\n}\n\nmodule \"net\" {\n  source = \"./net\"\n  cidr   = \"10.0.0.0/8\"\n}\n",
        )
        .unwrap();
        let (info, problems) = inspect_module(dir.path(), dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        let name = &info.variables["name"];
        assert!(name.required && !name.sensitive);
        assert_eq!(name.declared_at, Location::new("main.tf", 5, 1));
        let password = &info.variables["password"];
        assert!(!password.required && password.sensitive);
        assert!(info.outputs["token"].sensitive);
        assert_eq!(info.init_inputs.len(), 2);
        assert!(info.init_inputs[1].contains("./net") && !info.init_inputs[1].contains("10.0.0.0"));
    }

    /// `validate` right after `init` must not call a variable missing that the module's own
    /// `terraform.tfvars` or `*.auto.tfvars(.json)` sets: Terraform loads those by itself.
    #[test]
    fn variables_set_by_the_modules_own_files_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "main.tf",
            "variable \"region\" {}\nvariable \"size\" {}\nvariable \"name\" {}\n",
        );
        write("terraform.tfvars", "region = \"eu-west-1\"\n");
        write("small.auto.tfvars.json", "{\"size\": 3}");
        write("other.tfvars", "name = \"not loaded by Terraform\"\n");
        let (info, problems) = inspect_module(dir.path(), dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        let set: Vec<&str> = info.set_by_files.iter().map(String::as_str).collect();
        assert_eq!(set, ["region", "size"]);

        write("list.auto.tfvars.json", "[1, 2]");
        let (_, problems) = inspect_module(dir.path(), dir.path());
        assert!(
            problems
                .iter()
                .any(|p| p.to_string().contains("list.auto.tfvars.json:1:1")
                    && p.to_string().contains("must be an object")),
            "{problems:?}"
        );
        std::fs::remove_file(dir.path().join("list.auto.tfvars.json")).unwrap();

        write("broken.auto.tfvars", "size = = 3\n");
        let (_, problems) = inspect_module(dir.path(), dir.path());
        assert!(
            problems
                .iter()
                .any(|p| p.to_string().contains("broken.auto.tfvars:1")),
            "{problems:?}"
        );
    }

    #[test]
    fn syntax_errors_have_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("broken.tf"),
            "variable \"a\" {\n  type = string\n\nresource \"x\" {\n",
        )
        .unwrap();
        let (_, problems) = inspect_module(dir.path(), dir.path());
        match problems.as_slice() {
            [StaticProblem::Syntax { at, .. }] => assert_eq!(at.file, Path::new("broken.tf")),
            other => panic!("expected one syntax problem, got {other:?}"),
        }
    }

    #[test]
    fn the_backend_is_read_from_the_terraform_block() {
        let module = |name: &str, text: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), text).unwrap();
            inspect_module(dir.path(), dir.path()).0
        };
        assert!(module("main.tf", "resource \"terraform_data\" \"x\" {}\n").local_state());
        assert!(module("main.tf", "terraform {\n  backend \"local\" {}\n}\n").local_state());
        let s3 = module(
            "main.tf",
            "terraform {\n  required_version = \">= 1.5\"\n  backend \"s3\" {\n    bucket = \"b\"\n  }\n}\n",
        );
        assert_eq!(s3.backend.as_deref(), Some("s3"));
        assert_eq!(s3.required_version.as_deref(), Some(">= 1.5"));
        assert!(!s3.local_state());
        assert!(
            !module(
                "main.tf",
                "terraform {\n  cloud {\n    organization = \"acme\"\n  }\n}\n"
            )
            .local_state()
        );
        let json = module(
            "main.tf.json",
            r#"{"terraform": {"backend": {"kubernetes": {"secret_suffix": "x"}}}}"#,
        );
        assert_eq!(json.backend.as_deref(), Some("kubernetes"));
    }
}
