//! The `render` stage: the template engine and manifest normalisation.
//!
//! Manifests are YAML files under the repository's Kubernetes directory. Placeholders `${...}` in
//! YAML scalars are resolved against the environment (`values.*`, `env.name`, `env.namespace`),
//! Git (`git.sha`), the apps' image references (`images.<app>`) and Terraform outputs
//! (`terraform.<output>`). The engine works on the parsed YAML tree, never on text: a scalar that
//! is exactly one placeholder takes the value's type, a placeholder inside longer text
//! interpolates, and a value can never inject YAML structure. Every problem in every file is
//! collected and reported at once, each with `file:line:column`.
//!
//! Other tools' `${...}` (shell variables in a container's script) are left as written and
//! noted ([`LeftLiteral`]); an object annotated `gitship.dev/template: "off"` is not templated at
//! all ([`TEMPLATE_ANNOTATION`]).
//!
//! Then every object is normalised: namespaced objects without a namespace get the environment's
//! namespace, every object gets gitship's labels, and duplicate identities are an error. Last, a
//! container whose `image` is exactly an app's name gets that app's image ([`bare_images`]).

pub mod bare_images;
pub mod digests;
pub mod emit;
pub mod helm;
pub mod kustomize;
mod program;
pub mod template;
pub mod used_images;
pub mod validate;

use std::collections::{BTreeMap, HashMap};

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::git::GitError;
use crate::repo::limits::{MAX_OBJECT_BYTES, MAX_OBJECTS, human_bytes};
use crate::repo::yaml::{self, Node, NodeKind, ScalarStyle};
use crate::repo::{EnvConfig, Repository};
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{
    ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectId, group_of, is_cluster_scoped,
};
use gitship_foundation::model::{ImageRef, KnownSecrets, Manifest, Outputs};
use template::{Derived, Segment};

/// The annotation that turns templating off for one object: `gitship.dev/template: "off"`.
pub const TEMPLATE_ANNOTATION: &str = "gitship.dev/template";

/// What redacted values are replaced with.
pub const REDACTED: &str = gitship_foundation::model::REDACTED;

/// Everything placeholders can refer to.
#[derive(Debug, Clone)]
pub struct RenderInputs {
    /// `env.name`.
    pub environment: String,
    /// `env.namespace`, also the default namespace of namespaced objects.
    pub namespace: String,
    /// `values.*`.
    pub values: Value,
    /// `git.sha`.
    pub git_sha: String,
    /// `images.<app>`.
    pub images: BTreeMap<String, ImageRef>,
    /// `terraform.<output>`; empty when no outputs are available.
    pub terraform: Outputs,
    /// A container's `image: <app>` gets the app's image (`images.bare_names` in
    /// `gitship.yaml`, default on).
    pub bare_image_names: bool,
}

impl RenderInputs {
    /// Inputs for `env` from the repository (`HEAD`'s SHA), with the apps' image references
    /// (the image stage's, computed once per operation) and the given Terraform outputs.
    pub fn for_environment(
        repo: &Repository,
        env: &EnvConfig,
        images: BTreeMap<String, ImageRef>,
        terraform: Outputs,
    ) -> Result<RenderInputs, RenderError> {
        let git_sha = crate::git::head_sha(&repo.root).map_err(RenderError::Git)?;
        Ok(RenderInputs {
            environment: env.name.clone(),
            namespace: env.cluster.namespace.clone(),
            values: env.values.clone(),
            git_sha,
            images,
            terraform,
            bare_image_names: repo.layout.bare_image_names,
        })
    }
}

/// What to do with a Terraform output whose value is not known yet (before the first apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOutputs {
    /// It is an error (deploy, render).
    Error,
    /// Render it as the string `(known after apply)` (plan).
    Placeholder,
}

/// One problem found while rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub message: String,
    /// The problem is a `terraform.*` placeholder while no outputs are available.
    pub no_terraform_outputs: bool,
}

/// Another tool's `${...}` left as written (see [`template::foreign_variable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftLiteral {
    /// Where it is written.
    pub location: Location,
    /// The whole `${...}`.
    pub placeholder: String,
}

/// What a render did besides producing the objects, for `validate` and `plan` to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderNotes {
    /// Other tools' `${...}`, left as written, in file order.
    pub left_literal: Vec<LeftLiteral>,
    /// Containers whose bare `image: <app>` became the app's image.
    pub bare_images: Vec<bare_images::BareImage>,
}

/// The rendered objects and the notes of the render.
#[derive(Debug, Clone, Default)]
pub struct RenderOutput {
    pub manifests: Vec<Manifest>,
    pub notes: RenderNotes,
}

/// Errors of rendering an environment.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Problems in the manifests: unknown placeholders, invalid YAML, objects without identity,
    /// duplicates, sensitive values outside Secrets. All of them, across all files.
    #[error("{}", problems_message(environment, problems))]
    Problems {
        environment: String,
        problems: Vec<Problem>,
    },
    /// A manifest file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Git state needed for `git.sha` could not be read.
    #[error("cannot read the Git revision")]
    Git(#[source] GitError),
    /// The environment's manifests directory could not be read.
    #[error(transparent)]
    Repository(#[from] crate::repo::RepoError),
    /// A kustomization could not be built.
    #[error(transparent)]
    Kustomize(Box<kustomize::KustomizeError>),
    /// A Helm chart of `kubernetes.helm` could not be rendered.
    #[error(transparent)]
    Helm(Box<helm::HelmError>),
    /// Helm charts in the manifests tree that the environment does not render: their templates
    /// are not manifests.
    #[error("{}", unrendered_charts_message(environment, charts))]
    UnrenderedCharts {
        environment: String,
        /// The environment's config file, relative to the repository root.
        config: PathBuf,
        /// The charts' directories, relative to the repository root.
        charts: Vec<PathBuf>,
    },
}

fn unrendered_charts_message(environment: &str, charts: &[PathBuf]) -> String {
    let mut text = format!(
        "the manifests of environment `{environment}` hold Helm charts, whose templates are not plain manifests:"
    );
    for chart in charts {
        text.push_str(&format!(
            "\n{}: `{}` is a Helm chart",
            Location::new(chart.join(crate::repo::helm::CHART_FILE), 1, 1),
            chart.display()
        ));
    }
    text
}

fn problems_message(environment: &str, problems: &[Problem]) -> String {
    let mut text = match problems.len() {
        1 => format!("1 problem in the manifests of environment `{environment}`:"),
        n => format!("{n} problems in the manifests of environment `{environment}`:"),
    };
    for problem in problems {
        text.push_str(&format!("\n{}: {}", problem.location, problem.message));
    }
    text
}

impl RenderError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::Problems { problems, .. } if problems.iter().any(|p| p.no_terraform_outputs) => Some(
                "pass Terraform outputs with `--terraform-outputs FILE` (the output of `terraform output -json`)".into(),
            ),
            RenderError::Problems { .. } => {
                Some("fix the manifests at the positions shown; `values.*` come from the environment's `values`".into())
            }
            RenderError::Git(_) => Some("gitship renders from a Git work tree with at least one commit".into()),
            RenderError::Io { .. } => None,
            RenderError::Repository(error) => error.hint(),
            RenderError::Kustomize(error) => error.hint(),
            RenderError::Helm(error) => error.hint(),
            RenderError::UnrenderedCharts { config, charts, .. } => {
                let chart = charts.first().map(|c| c.display().to_string()).unwrap_or_default();
                let release = charts
                    .first()
                    .and_then(|c| c.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Some(format!(
                    "render each with helm: add `kubernetes: {{helm: [{{chart: {chart}, release: {release}}}]}}` to `{}` (`gitship init` writes it for a new repository), or leave it out with `paths.exclude` in `gitship.yaml`",
                    config.display()
                ))
            }
        }
    }
}

impl gitship_foundation::diagnostics::StageError for RenderError {
    fn hint(&self) -> Option<String> {
        RenderError::hint(self)
    }
}

/// Render every manifest of the repository for one environment: from the environment's own
/// `kubernetes.path` or else the repository's manifests directory, built with kustomize when
/// that directory holds a kustomization ([`kustomize`]), and the Helm charts of its
/// `kubernetes.helm` ([`helm`]); with what the render left literal and substituted.
pub fn render_environment_noted(
    repo: &Repository,
    env: &EnvConfig,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<RenderOutput, RenderError> {
    let mut output = render_manifests(repo, env, inputs, unknown_outputs)?;
    if !env.kubernetes.helm.is_empty() {
        for release in &env.kubernetes.helm {
            let chart = helm::render(repo, &env.name, release, inputs, unknown_outputs)?;
            output.manifests.extend(chart.manifests);
            output.notes.left_literal.extend(chart.notes.left_literal);
        }
        check_duplicates(&env.name, &output.manifests)?;
        if output.manifests.len() > MAX_OBJECTS {
            return Err(RenderError::Problems {
                environment: env.name.clone(),
                problems: vec![Problem {
                    location: Location::new(repo.relative(&env.file), 1, 1),
                    message: format!(
                        "more than {MAX_OBJECTS} objects: gitship renders at most {MAX_OBJECTS} objects per environment"
                    ),
                    no_terraform_outputs: false,
                }],
            });
        }
    }
    substitute_bare_images(&mut output, inputs);
    Ok(output)
}

/// The environment's manifests directory rendered (plain files, or a kustomization), without
/// bare image names; a Helm chart in it is rendered only through `kubernetes.helm`.
fn render_manifests(
    repo: &Repository,
    env: &EnvConfig,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<RenderOutput, RenderError> {
    let dir = env
        .kubernetes
        .dir
        .as_deref()
        .or(repo.layout.kubernetes_dir.as_deref());
    if let Some(dir) = dir
        && kustomize::kustomization_file(dir).is_some()
    {
        return kustomize::render(repo, &env.name, dir, inputs, unknown_outputs);
    }
    let tree = match &env.kubernetes.dir {
        Some(dir) => crate::repo::files::manifest_tree(
            &repo.root,
            dir,
            &repo.layout.exclude,
            &repo.layout.not_manifests,
        )?,
        None => repo.manifests.clone(),
    };
    let files = without_charts(repo, env, tree.files)?;
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|source| RenderError::Io {
            path: file.clone(),
            source,
        })?;
        sources.push((repo.relative(file), text));
    }
    let mut output = render_sources_with(&env.name, &sources, inputs, unknown_outputs, false)?;
    // A kustomization below a plain manifests directory is built whole, as Flux builds it.
    for dir in &tree.kustomizations {
        let built = kustomize::render(repo, &env.name, dir, inputs, unknown_outputs)?;
        output.manifests.extend(built.manifests);
        output.notes.left_literal.extend(built.notes.left_literal);
    }
    if !tree.kustomizations.is_empty() {
        check_duplicates(&env.name, &output.manifests)?;
    }
    Ok(output)
}

/// `files` without the `Chart.yaml` of each chart the walk found in place of its templates
/// ([`crate::repo::files::manifest_files`]): a chart `kubernetes.helm` renders is left to
/// [`helm`], any other is an error naming it.
fn without_charts(
    repo: &Repository,
    env: &EnvConfig,
    files: Vec<PathBuf>,
) -> Result<Vec<PathBuf>, RenderError> {
    let mut unrendered = Vec::new();
    let mut manifests = Vec::with_capacity(files.len());
    for file in files {
        if file.file_name() != Some(std::ffi::OsStr::new(crate::repo::helm::CHART_FILE)) {
            manifests.push(file);
            continue;
        }
        let chart = file.parent().unwrap_or(&repo.root);
        let canonical = chart.canonicalize().unwrap_or_else(|_| chart.to_path_buf());
        if !env.kubernetes.helm.iter().any(|r| r.chart_dir == canonical) {
            unrendered.push(repo.relative(chart));
        }
    }
    if unrendered.is_empty() {
        return Ok(manifests);
    }
    Err(RenderError::UnrenderedCharts {
        environment: env.name.clone(),
        config: repo.relative(&env.file),
        charts: unrendered,
    })
}

/// Duplicate identities across separately rendered parts (plain files and the kustomizations
/// below them).
fn check_duplicates(environment: &str, manifests: &[Manifest]) -> Result<(), RenderError> {
    let mut seen: HashMap<ObjectId, Location> = HashMap::with_capacity(manifests.len());
    let mut problems = Vec::new();
    // A hook with a `generateName` has no identity of its own (each run makes one).
    for manifest in manifests
        .iter()
        .filter(|m| ObjectId::of(&m.object).is_some())
    {
        if let Some(first) = seen.insert(manifest.id(), manifest.source.clone()) {
            problems.push(Problem {
                location: manifest.source.clone(),
                message: format!(
                    "duplicate object `{}`: also defined at {first}",
                    manifest.id().qualified()
                ),
                no_terraform_outputs: false,
            });
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by(|a, b| a.location.cmp(&b.location));
    Err(RenderError::Problems {
        environment: environment.to_string(),
        problems,
    })
}

/// Last step of every render: bare image names, when `inputs` ask for them.
fn substitute_bare_images(output: &mut RenderOutput, inputs: &RenderInputs) {
    if inputs.bare_image_names {
        output.notes.bare_images = bare_images::substitute(&mut output.manifests, &inputs.images);
    }
}

/// Render manifest texts (display path, YAML text) for the environment named `environment`.
pub fn render_sources(
    environment: &str,
    sources: &[(PathBuf, String)],
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<Vec<Manifest>, RenderError> {
    let mut output = render_sources_with(environment, sources, inputs, unknown_outputs, false)?;
    substitute_bare_images(&mut output, inputs);
    Ok(output.manifests)
}

/// [`render_sources`]; `literal`: placeholders are not resolved (text already templated, such
/// as kustomize's output), only the objects normalised and checked. Bare image names are left to
/// the caller ([`substitute_bare_images`]).
fn render_sources_with(
    environment: &str,
    sources: &[(PathBuf, String)],
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
    literal: bool,
) -> Result<RenderOutput, RenderError> {
    let derived = Derived::new(inputs);
    let mut renderer = Renderer::new(inputs, &derived, unknown_outputs, literal);
    let mut manifests = Vec::new();
    for (file, text) in sources {
        renderer.render_file(file, text, &mut manifests);
    }
    let left_literal = renderer.left_literal;
    let mut problems = renderer.problems;

    if let Err(RenderError::Problems {
        problems: duplicates,
        ..
    }) = check_duplicates(environment, &manifests)
    {
        problems.extend(duplicates);
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        return Err(RenderError::Problems {
            environment: environment.to_string(),
            problems,
        });
    }
    Ok(RenderOutput {
        manifests,
        notes: RenderNotes {
            left_literal,
            bare_images: Vec::new(),
        },
    })
}

struct Renderer<'i> {
    inputs: &'i RenderInputs,
    derived: &'i Derived,
    unknown_outputs: UnknownOutputs,
    problems: Vec<Problem>,
    /// Scalars are taken as they are: no placeholders (see [`render_sources_with`]), also set
    /// while a document annotated `gitship.dev/template: "off"` is read.
    literal: bool,
    /// Other tools' `${...}` met so far.
    left_literal: Vec<LeftLiteral>,
    /// The sensitive outputs, scrubbed from every problem and warning: a message quotes what
    /// it is about (a name that is not valid), which may hold one.
    redactor: Redactor,
}

/// Per-document state while rendering.
struct DocumentState<'f> {
    file: &'f Path,
    lines: Option<Vec<&'f str>>,
    text: &'f str,
    /// Sensitive Terraform outputs used in this document: the output, where, and (when it is
    /// not a value under a Secret's `data` or `stringData`) what position it is in.
    sensitive_uses: Vec<(String, Location, Option<String>)>,
    /// The keys from the document's root to the node being rendered (`[]` for list items).
    path: Vec<String>,
    /// A mapping key is being rendered.
    in_key: bool,
    /// The document is a `v1` `List` (as written): each of its `items` reads its own
    /// `gitship.dev/template` annotation.
    list: bool,
}

impl<'f> DocumentState<'f> {
    /// The state at the start of a document of `file` (whose whole text is `text`).
    fn new(file: &'f Path, text: &'f str) -> Self {
        DocumentState {
            file,
            lines: None,
            text,
            sensitive_uses: Vec::new(),
            path: Vec::new(),
            in_key: false,
            list: false,
        }
    }

    /// Where a sensitive value is being placed: `None` for a value under a Secret's `data` or
    /// `stringData` (the only place it may go: it is redacted there everywhere), otherwise the
    /// position in words. Object names, namespaces, labels, annotations and map keys are shown
    /// in every plan, diff, log and inventory, so a secret there would leak.
    fn sensitive_position(&self) -> Option<String> {
        let mut path: &[String] = &self.path;
        // The items of a `v1` `List`.
        if path.len() >= 2 && path[0] == "items" && path[1] == "[]" {
            path = &path[2..];
        }
        let under_data = path.len() >= 2 && (path[0] == "data" || path[0] == "stringData");
        match (self.in_key, under_data) {
            (false, true) => None,
            (true, _) => Some(format!("a mapping key (under `{}`)", dotted(path))),
            (false, false) => Some(format!("`{}`", dotted(path))),
        }
    }

    /// Where a placeholder is: the scalar's position plus the offset, corrected against the
    /// source line when the scalar was quoted, folded or spans lines.
    fn placeholder_location(
        &mut self,
        node: &Node,
        style: ScalarStyle,
        scalar: &str,
        offset: usize,
        raw: &str,
    ) -> Location {
        let newlines = scalar[..offset].matches('\n').count();
        let base = node.line + newlines;
        let guess = match (style, newlines) {
            (ScalarStyle::Plain, 0) => node.column + scalar[..offset].chars().count(),
            (ScalarStyle::Quoted, 0) => node.column + 1 + scalar[..offset].chars().count(),
            _ => 1,
        };
        let text = self.text;
        let lines = self.lines.get_or_insert_with(|| text.lines().collect());
        // Block scalars start on the line after their indicator, and folding may shift lines:
        // look for the placeholder's text on the expected line and the next two.
        let found = (base..base + 3).find_map(|line| {
            let source_line = lines.get(line.saturating_sub(1))?;
            let from = if line == base {
                source_line
                    .char_indices()
                    .nth(guess.saturating_sub(1))
                    .map(|(i, _)| i)
                    .unwrap_or(0)
            } else {
                0
            };
            let byte = source_line[from..]
                .find(raw)
                .map(|i| from + i)
                .or_else(|| source_line.find(raw))?;
            Some((line, source_line[..byte].chars().count() + 1))
        });
        let (line, column) = found.unwrap_or((base, guess));
        Location::new(self.file, line, column)
    }
}

impl<'i> Renderer<'i> {
    fn new(
        inputs: &'i RenderInputs,
        derived: &'i Derived,
        unknown_outputs: UnknownOutputs,
        literal: bool,
    ) -> Renderer<'i> {
        Renderer {
            inputs,
            derived,
            unknown_outputs,
            problems: Vec::new(),
            literal,
            left_literal: Vec::new(),
            redactor: Redactor::new(&inputs.terraform),
        }
    }

    /// The document `root` as JSON: templated, unless it is annotated
    /// `gitship.dev/template: "off"` (read from the source, before any templating) and then
    /// taken as written. So is an item of a `v1` `List` annotated so.
    fn document(&mut self, root: &Node, state: &mut DocumentState) -> Value {
        state.list = is_v1_list(root);
        self.object(root, state)
    }

    /// An object (a document, or an item of a `List`) as JSON, templated unless annotated
    /// `gitship.dev/template: "off"`.
    fn object(&mut self, root: &Node, state: &mut DocumentState) -> Value {
        let literal = self.literal;
        match template_switch(root) {
            Ok(on) => self.literal |= !on,
            Err((node, message)) => {
                self.problem(
                    Location::new(state.file, node.line, node.column),
                    message,
                    false,
                );
            }
        }
        let object = self.node(root, state);
        self.literal = literal;
        object
    }

    fn problem(&mut self, location: Location, message: String, no_terraform_outputs: bool) {
        self.problems.push(Problem {
            location,
            message: self.redactor.redact_text(&message),
            no_terraform_outputs,
        });
    }

    fn render_file(&mut self, file: &Path, text: &str, manifests: &mut Vec<Manifest>) {
        let documents = match yaml::parse_documents(text) {
            Ok(documents) => documents,
            Err(err) => {
                self.problem(
                    Location::new(file, err.line, err.column),
                    format!("invalid YAML: {}", err.message),
                    false,
                );
                return;
            }
        };
        let mut state = DocumentState::new(file, text);
        for document in documents {
            let Some(root) = document.root else { continue };
            if root.is_null() {
                continue;
            }
            state.sensitive_uses.clear();
            let location = Location::new(file, root.line, 1);
            let problems_before = self.problems.len();
            let object = self.document(&root, &mut state);
            // Unresolved placeholders became nulls: do not report them again as bad data.
            let check_data = self.problems.len() == problems_before;
            let sensitive_uses = std::mem::take(&mut state.sensitive_uses);
            let is_list = object.get("apiVersion").and_then(Value::as_str) == Some("v1")
                && object.get("kind").and_then(Value::as_str) == Some("List");
            let mut objects = Vec::new();
            for (index, object) in split_list(object).into_iter().enumerate() {
                match self.normalise(object, check_data) {
                    Ok(object) => {
                        let item = is_list.then_some(index);
                        self.check_identity(&object, &root, item, &location);
                        if check_data {
                            self.check_quantities(&object, &root, item, &location);
                        }
                        objects.push(object);
                    }
                    Err(message) => self.problem(location.clone(), message, false),
                }
            }
            let offender = objects.iter().find(|object| !is_secret(object));
            for (output, at, position) in sensitive_uses {
                if let Some(position) = position {
                    self.problem(
                        at,
                        format!("the sensitive Terraform output `{output}` may only be a value under a Secret's `data` or `stringData`, not {position}"),
                        false,
                    );
                } else if let Some(offender) = offender {
                    let id = ObjectId::lenient(offender).qualified();
                    self.problem(
                        at,
                        format!("the sensitive Terraform output `{output}` may only be used in a Secret, not in `{id}`"),
                        false,
                    );
                }
            }
            if manifests.len() + objects.len() > MAX_OBJECTS {
                self.problem(
                    location,
                    format!(
                        "more than {MAX_OBJECTS} objects: gitship renders at most {MAX_OBJECTS} objects per environment"
                    ),
                    false,
                );
                return;
            }
            manifests.extend(objects.into_iter().map(|object| Manifest {
                source: location.clone(),
                object,
            }));
        }
    }

    /// Names, namespaces, reserved names ([`validate::check_identity`]), each problem placed at
    /// the `metadata.name` or `metadata.namespace` it is about when the file has one; and a
    /// warning for an object over Kubernetes' size limit. `item` is the object's index in a `List`.
    fn check_identity(&mut self, object: &Value, root: &Node, item: Option<usize>, at: &Location) {
        let problems =
            validate::check_identity(object, &self.inputs.environment, &self.inputs.namespace);
        for (field, message) in problems {
            let field = match field {
                validate::Field::Name => "name",
                validate::Field::Namespace => "namespace",
            };
            let location = metadata_field(root, item, field)
                .map(|node| Location::new(&at.file, node.line, node.column))
                .unwrap_or_else(|| at.clone());
            self.problem(location, message, false);
        }
        let size = validate::json_size(object);
        if size > MAX_OBJECT_BYTES {
            tracing::warn!(
                "{at}: `{}` is {size} bytes as JSON, over the {} ({MAX_OBJECT_BYTES} bytes) Kubernetes stores for one object; the API server will likely refuse it",
                self.redactor
                    .redact_text(&ObjectId::lenient(object).qualified()),
                human_bytes(MAX_OBJECT_BYTES as u64),
            );
        }
    }

    /// Resource quantities the API server would refuse ([`validate::check_quantities`]), each
    /// placed at its value when the file has it.
    fn check_quantities(
        &mut self,
        object: &Value,
        root: &Node,
        item: Option<usize>,
        at: &Location,
    ) {
        for (path, message) in validate::check_quantities(object) {
            let location = node_at(root, item, &path)
                .map(|node| Location::new(&at.file, node.line, node.column))
                .unwrap_or_else(|| at.clone());
            self.problem(location, message, false);
        }
    }

    /// Check the object's identity, default its namespace and add gitship's labels.
    fn normalise(&self, mut object: Value, check_data: bool) -> Result<Value, String> {
        let Value::Object(map) = &mut object else {
            return Err(format!(
                "expected a Kubernetes object (a mapping), found {}",
                template::type_name(&object)
            ));
        };
        let api_version = match map.get("apiVersion") {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            _ => {
                return Err(
                    "not a Kubernetes object: `apiVersion` is missing or not a string".into(),
                );
            }
        };
        let kind = match map.get("kind") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            _ => return Err("not a Kubernetes object: `kind` is missing or not a string".into()),
        };
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Value::Object(metadata) = metadata else {
            return Err(format!("`{kind}`: `metadata` must be a mapping"));
        };
        let role =
            gitship_foundation::model::hook::role_of(&serde_json::json!({"metadata": metadata}))
                .map_err(|message| format!("`{kind}`: {message}"))?;
        check_name(&kind, metadata, &role)?;
        if !is_cluster_scoped(group_of(&api_version), &kind) {
            match metadata.get("namespace") {
                Some(Value::String(namespace)) if !namespace.is_empty() => {}
                None | Some(Value::Null) => {
                    // Right after `name`, where people write it.
                    let index = metadata
                        .keys()
                        .position(|k| k == "name")
                        .map_or(0, |i| i + 1);
                    metadata.remove("namespace");
                    let index = index.min(metadata.len());
                    metadata.shift_insert(
                        index,
                        "namespace".into(),
                        Value::String(self.inputs.namespace.clone()),
                    );
                }
                Some(_) => return Err(format!("`{kind}`: `metadata.namespace` must be a string")),
            }
        }
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if labels.is_null() {
            *labels = Value::Object(serde_json::Map::new());
        }
        let Value::Object(labels) = labels else {
            return Err(format!("`{kind}`: `metadata.labels` must be a mapping"));
        };
        labels.insert(
            MANAGED_BY_LABEL.into(),
            Value::String(MANAGED_BY_VALUE.into()),
        );
        labels.insert(
            ENVIRONMENT_LABEL.into(),
            Value::String(self.inputs.environment.clone()),
        );
        if check_data {
            check_data_fields(&api_version, &kind, &object)?;
        }
        Ok(object)
    }

    /// The node as JSON, placeholders resolved. Recursive: the YAML reader bounds the depth
    /// ([`crate::repo::limits::MAX_DEPTH`]), so the stack is bounded too.
    fn node(&mut self, node: &Node, state: &mut DocumentState) -> Value {
        match &node.kind {
            NodeKind::Scalar { text, style, tag } => {
                self.scalar(node, text, *style, tag.as_deref(), state)
            }
            NodeKind::Sequence(items) => {
                let list_items = state.list && state.path.len() == 1 && state.path[0] == "items";
                state.path.push("[]".into());
                let items = items
                    .iter()
                    .map(|item| {
                        if list_items {
                            self.object(item, state)
                        } else {
                            self.node(item, state)
                        }
                    })
                    .collect();
                state.path.pop();
                Value::Array(items)
            }
            NodeKind::Mapping(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (key, value) in entries {
                    state.in_key = true;
                    let key_text = match self.scalar(
                        key,
                        key.as_scalar().unwrap_or_default(),
                        ScalarStyle::Quoted,
                        None,
                        state,
                    ) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    state.in_key = false;
                    if !matches!(key.kind, NodeKind::Scalar { .. }) {
                        self.problem(
                            Location::new(state.file, key.line, key.column),
                            "mapping keys must be scalars".into(),
                            false,
                        );
                    }
                    state.path.push(key_text.clone());
                    let value = self.node(value, state);
                    state.path.pop();
                    map.insert(key_text, value);
                }
                Value::Object(map)
            }
        }
    }

    fn scalar(
        &mut self,
        node: &Node,
        text: &str,
        style: ScalarStyle,
        tag: Option<&str>,
        state: &mut DocumentState,
    ) -> Value {
        if self.literal {
            return yaml::scalar_to_json(text, style, tag);
        }
        let segments = match template::parse(text) {
            Ok(None) => return yaml::scalar_to_json(text, style, tag),
            Ok(Some(segments)) => segments,
            Err(error) => {
                // The placeholder the error is in: up to its `}`, else the end.
                let raw_end = text[error.offset..]
                    .find('}')
                    .map_or(text.len(), |i| error.offset + i + 1);
                let raw = &text[error.offset..raw_end];
                let location = state.placeholder_location(node, style, text, error.offset, raw);
                self.problem(location, error.message, false);
                return Value::Null;
            }
        };
        // A plain scalar that is exactly one placeholder takes the value's type.
        if let (
            [
                Segment::Placeholder {
                    expression,
                    offset,
                    raw,
                },
            ],
            ScalarStyle::Plain,
            None,
        ) = (segments.as_slice(), style, tag)
        {
            let at = Placeholder {
                node,
                style,
                text,
                offset: *offset,
                raw,
            };
            return self
                .placeholder(expression, &at, state)
                .unwrap_or(Value::Null);
        }
        let mut out = String::with_capacity(text.len());
        for segment in &segments {
            match segment {
                Segment::Text(literal) => out.push_str(literal),
                Segment::Foreign { offset, raw } => {
                    out.push_str(raw);
                    let location = state.placeholder_location(node, style, text, *offset, raw);
                    self.left_literal.push(LeftLiteral {
                        location,
                        placeholder: raw.to_string(),
                    });
                }
                Segment::Placeholder {
                    expression,
                    offset,
                    raw,
                } => {
                    let at = Placeholder {
                        node,
                        style,
                        text,
                        offset: *offset,
                        raw,
                    };
                    match self.placeholder(expression, &at, state) {
                        Some(Value::String(s)) => out.push_str(&s),
                        Some(Value::Number(n)) => out.push_str(&n.to_string()),
                        Some(Value::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
                        Some(Value::Null) | None => {}
                        Some(other) => {
                            let location =
                                state.placeholder_location(node, style, text, *offset, raw);
                            self.problem(
                                location,
                                format!(
                                    "`{raw}` is {} and cannot be part of a string; make the placeholder the whole value",
                                    template::type_name(&other)
                                ),
                                false,
                            );
                        }
                    }
                }
            }
        }
        Value::String(out)
    }

    /// The value of the placeholder `expression` at `at`, its use recorded when it is a
    /// sensitive output; `None`, with the problem reported, when it does not resolve.
    fn placeholder(
        &mut self,
        expression: &str,
        at: &Placeholder<'_>,
        state: &mut DocumentState,
    ) -> Option<Value> {
        let location = |state: &mut DocumentState| {
            state.placeholder_location(at.node, at.style, at.text, at.offset, at.raw)
        };
        match template::resolve(expression, self.inputs, self.derived, self.unknown_outputs) {
            Ok(resolved) => {
                if let Some(output) = resolved.sensitive_output {
                    let location = location(state);
                    let position = state.sensitive_position();
                    state
                        .sensitive_uses
                        .push((output.to_string(), location, position));
                }
                Some(resolved.value.into_owned())
            }
            Err(unresolved) => {
                self.problem(
                    location(state),
                    format!("`{}`: {}", at.raw, unresolved.message),
                    unresolved.no_terraform_outputs,
                );
                None
            }
        }
    }
}

/// Where a placeholder stands: its scalar and its offset in the scalar's text.
struct Placeholder<'a> {
    node: &'a Node,
    style: ScalarStyle,
    text: &'a str,
    offset: usize,
    raw: &'a str,
}

/// An object needs a name, except a hook, which may have `metadata.generateName` instead (each
/// run creates a new one): gitship finds every other object again by its name.
fn check_name(
    kind: &str,
    metadata: &serde_json::Map<String, Value>,
    role: &gitship_foundation::model::hook::Role,
) -> Result<(), String> {
    let text = |key: &str| match metadata.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.as_str()),
        _ => None,
    };
    if text("name").is_some() {
        return Ok(());
    }
    match (text("generateName"), role) {
        (
            Some(_),
            gitship_foundation::model::hook::Role::Hook(_)
            | gitship_foundation::model::hook::Role::Skipped(_),
        ) => Ok(()),
        (Some(prefix), gitship_foundation::model::hook::Role::Object) => Err(format!(
            "`{kind}`: `metadata.name` is missing (`metadata.generateName: {prefix}` is only for hooks: a deploy finds every other object again by its name, to apply, prune and check it for drift); give it a name, or make it a hook with `argocd.argoproj.io/hook: PreSync` (or Sync, PostSync, SyncFail)"
        )),
        (None, _) => Err(format!(
            "`{kind}`: `metadata.name` is missing or not a string"
        )),
    }
}

/// Whether the document `root` is templated: its `metadata.annotations` say
/// `gitship.dev/template: "off"` (not templated) or `"on"` (the default); another value is an
/// error at the value.
fn template_switch(root: &Node) -> Result<bool, (&Node, String)> {
    let Some(annotations) = metadata_field(root, None, "annotations") else {
        return Ok(true);
    };
    let NodeKind::Mapping(entries) = &annotations.kind else {
        return Ok(true);
    };
    let Some((_, value)) = entries
        .iter()
        .find(|(key, _)| key.as_scalar() == Some(TEMPLATE_ANNOTATION))
    else {
        return Ok(true);
    };
    match value.as_scalar() {
        Some("off") => Ok(false),
        Some("on") => Ok(true),
        other => Err((
            value,
            format!(
                "`{TEMPLATE_ANNOTATION}` is {}; it takes `\"off\"` (the object is not templated) or `\"on\"` (the default)",
                other.map_or("not a string".to_string(), |text| format!("`{text}`"))
            ),
        )),
    }
}

/// Whether the document says (as written) `apiVersion: v1` and `kind: List`.
fn is_v1_list(root: &Node) -> bool {
    let NodeKind::Mapping(entries) = &root.kind else {
        return false;
    };
    let field = |name: &str| {
        entries
            .iter()
            .find(|(key, _)| key.as_scalar() == Some(name))
            .and_then(|(_, value)| value.as_scalar())
    };
    field("apiVersion") == Some("v1") && field("kind") == Some("List")
}

/// The node of `metadata.<field>` in a document (or in its `items[item]` for a `List`).
fn metadata_field<'n>(root: &'n Node, item: Option<usize>, field: &str) -> Option<&'n Node> {
    let path = ["metadata", field].map(|key| validate::Step::Key(key.to_string()));
    node_at(root, item, &path)
}

/// The node at `path` in the document `root` (in its `items[item]` for a `List`).
fn node_at<'n>(root: &'n Node, item: Option<usize>, path: &[validate::Step]) -> Option<&'n Node> {
    let mut node = match item {
        Some(index) => {
            let items = node_at(root, None, &[validate::Step::Key("items".into())])?;
            match &items.kind {
                NodeKind::Sequence(items) => items.get(index)?,
                _ => return None,
            }
        }
        None => root,
    };
    for step in path {
        node = match (&node.kind, step) {
            (NodeKind::Mapping(entries), validate::Step::Key(key)) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key.as_str()))
                .map(|(_, value)| value)?,
            (NodeKind::Sequence(items), validate::Step::Index(index)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// ConfigMap and Secret data must be strings (and Secret `data` base64): catch a typed
/// placeholder (`key: ${values.port}`) before the API server rejects it.
fn check_data_fields(api_version: &str, kind: &str, object: &Value) -> Result<(), String> {
    let fields: &[&str] = match (api_version, kind) {
        ("v1", "ConfigMap") => &["data"],
        ("v1", "Secret") => &["data", "stringData"],
        _ => return Ok(()),
    };
    for field in fields {
        let Some(data) = object.get(*field) else {
            continue;
        };
        let Value::Object(entries) = data else {
            if data.is_null() {
                continue;
            }
            return Err(format!("`{kind}`: `{field}` must be a mapping"));
        };
        for (key, value) in entries {
            let Value::String(text) = value else {
                return Err(format!(
                    "`{kind}`: `{field}.{key}` is {}, but must be a string; quote the value (`\"${{...}}\"`)",
                    template::type_name(value)
                ));
            };
            if kind == "Secret" && *field == "data" && !is_base64(text) {
                return Err(format!(
                    "`{kind}`: `{field}.{key}` is not base64; put plain text under `stringData` instead"
                ));
            }
        }
    }
    Ok(())
}

fn is_base64(text: &str) -> bool {
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    text.len().is_multiple_of(4)
        && text.trim_end_matches('=').len() + 2 >= text.len()
        && text
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `object` is a core `Secret`.
fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// The items of a `v1` `List` (as `kubectl` accepts them), or the object itself.
fn split_list(object: Value) -> Vec<Value> {
    let is_list = object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("List");
    match object {
        Value::Object(mut map) if is_list => match map.remove("items") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                map.insert("items".into(), other);
                vec![Value::Object(map)]
            }
        },
        other => vec![other],
    }
}

/// Manifests as a multi-document YAML stream, each document preceded by a `# Source:` comment.
pub fn to_yaml_stream(manifests: &[Manifest]) -> String {
    let mut out = String::with_capacity(manifests.len() * 512);
    for manifest in manifests {
        out.push_str("---\n# Source: ");
        out.push_str(&manifest.source.to_string());
        out.push('\n');
        emit::write_document(&mut out, &manifest.object);
    }
    out
}

/// `metadata.labels.app`, or `the document` for the root.
fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        "the document".into()
    } else {
        path.join(".").replace(".[]", "[]")
    }
}

/// Hides sensitive values: Secret data and every occurrence of a sensitive Terraform output's
/// value. For all human and JSON output; only `render`'s YAML shows the real values. Free-text
/// scrubbing is the model's [`KnownSecrets`], which the Terraform stage uses too, so both layers
/// hide the same values the same way.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    text: KnownSecrets,
}

impl Redactor {
    /// A redactor for the sensitive outputs among `outputs` (every string and number inside
    /// their values).
    pub fn new(outputs: &Outputs) -> Redactor {
        let text = KnownSecrets::default();
        for output in outputs.values().filter(|o| o.sensitive) {
            if let Some(value) = &output.value {
                text.add_value(value);
            }
        }
        Redactor { text }
    }

    /// Also hide `value` wherever it appears (the tests' way to make a redactor).
    #[cfg(test)]
    pub fn add(&mut self, value: &str) {
        self.text.add_value(&Value::String(value.to_string()));
    }

    /// `text` with every sensitive value replaced by `<sensitive>`.
    pub fn redact_text(&self, text: &str) -> String {
        self.text.redact(text)
    }

    /// A copy of `object` safe to show: a Secret's `data` and `stringData` values are replaced by
    /// `<sensitive>`, and sensitive values anywhere else are redacted.
    pub fn redact_object(&self, object: &Value) -> Value {
        redact_sensitive(object, self)
    }
}

/// A copy of `object` with a Secret's `data`/`stringData` values replaced by `<sensitive>` and
/// every value `redactor` knows hidden in all other strings.
pub fn redact_sensitive(object: &Value, redactor: &Redactor) -> Value {
    let mut copy = object.clone();
    let is_secret = object.get("kind").and_then(Value::as_str) == Some("Secret")
        && group_of(
            object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .is_empty();
    if is_secret && let Value::Object(map) = &mut copy {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(data)) = map.get_mut(field) {
                for value in data.values_mut() {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
        // The last-applied annotation would repeat the data.
        if let Some(Value::Object(annotations)) = map
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    redact_strings(&mut copy, redactor);
    copy
}

fn redact_strings(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(s) => {
            let redacted = redactor.redact_text(s);
            if redacted != *s {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, redactor)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, redactor)),
        Value::Bool(_) | Value::Number(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn inputs() -> RenderInputs {
        let mut terraform = Outputs::new();
        terraform.insert(
            "url".into(),
            gitship_foundation::model::OutputValue {
                value: Some(json!("postgres://db")),
                sensitive: false,
            },
        );
        terraform.insert(
            "password".into(),
            gitship_foundation::model::OutputValue {
                value: Some(json!("hunter2")),
                sensitive: true,
            },
        );
        terraform.insert(
            "later".into(),
            gitship_foundation::model::OutputValue {
                value: None,
                sensitive: false,
            },
        );
        RenderInputs {
            environment: "staging".into(),
            namespace: "blog-staging".into(),
            values: json!({"replicas": 2, "domain": "x.example", "evil": "\n  evil: true", "list": [1, 2]}),
            git_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            images: BTreeMap::from([(
                "backend".to_string(),
                ImageRef {
                    app: "backend".into(),
                    repository: "r.example/backend".into(),
                    tag: "abc".into(),
                    digest: None,
                },
            )]),
            terraform,
            bare_image_names: true,
        }
    }

    fn render(text: &str) -> Result<Vec<Manifest>, RenderError> {
        render_sources(
            "staging",
            &[(PathBuf::from("m.yaml"), text.to_string())],
            &inputs(),
            UnknownOutputs::Error,
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match render(text) {
            Err(RenderError::Problems { problems, .. }) => problems
                .iter()
                .map(|p| format!("{}: {}", p.location, p.message))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn typed_and_interpolated() {
        let manifests = render(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  replicas: ${values.replicas}\n  quoted: \"${values.replicas}\"\n  host: api.${values.domain}\n  image: ${images.backend}\n  sha: ${git.sha}\n  escaped: $${values.replicas}\n  evil: ${values.evil}\n  list: ${values.list}\n",
        )
        .unwrap();
        let object = &manifests[0].object;
        assert_eq!(object["spec"]["replicas"], json!(2));
        assert_eq!(object["spec"]["quoted"], json!("2"));
        assert_eq!(object["spec"]["host"], json!("api.x.example"));
        assert_eq!(object["spec"]["image"], json!("r.example/backend:abc"));
        assert_eq!(object["spec"]["escaped"], json!("${values.replicas}"));
        assert_eq!(object["spec"]["evil"], json!("\n  evil: true"));
        assert_eq!(object["spec"]["list"], json!([1, 2]));
        assert_eq!(object["metadata"]["namespace"], json!("blog-staging"));
        assert_eq!(
            object["metadata"]["labels"][ENVIRONMENT_LABEL],
            json!("staging")
        );
        assert_eq!(
            manifests[0].id().qualified(),
            "apps/Deployment blog-staging/a"
        );
        let yaml = to_yaml_stream(&manifests);
        assert!(!yaml.contains("\nevil: true"), "{yaml}");
    }

    #[test]
    fn cluster_scoped_objects_get_no_namespace() {
        let manifests =
            render("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${env.namespace}\n")
                .unwrap();
        assert_eq!(manifests[0].object["metadata"].get("namespace"), None);
        assert_eq!(manifests[0].id().to_string(), "Namespace blog-staging");
    }

    #[test]
    fn all_problems_with_positions() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  a: ${values.nope}\n  b: \"x-${values.replicaz}\"\n  c: ${terraform.password}\n  d: ${terraform.later}\n",
        );
        assert_eq!(
            found,
            vec![
                "m.yaml:6:6: `${values.nope}`: `values.nope` is not defined",
                "m.yaml:7:9: `${values.replicaz}`: `values.replicaz` is not defined (did you mean `values.replicas`?)",
                "m.yaml:8:6: the sensitive Terraform output `password` may only be used in a Secret, not in `ConfigMap blog-staging/a`",
                "m.yaml:9:6: `${terraform.later}`: Terraform output `later` is not known until apply",
            ]
        );
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  c: ${terraform.password}\n",
        );
        assert_eq!(
            found,
            vec![
                "m.yaml:6:6: the sensitive Terraform output `password` may only be used in a Secret, not in `ConfigMap blog-staging/a`"
            ]
        );
    }

    #[test]
    fn sensitive_values_are_refused_in_names_keys_and_metadata() {
        assert_eq!(
            problems(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-${terraform.password}\nstringData:\n  ${terraform.password}: x\n  ok: ${terraform.password}\n"
            ),
            vec![
                "m.yaml:4:12: the sensitive Terraform output `password` may only be a value under a Secret's `data` or `stringData`, not `metadata.name`".to_string(),
                "m.yaml:6:3: the sensitive Terraform output `password` may only be a value under a Secret's `data` or `stringData`, not a mapping key (under `stringData`)".to_string(),
            ]
        );
        let labelled = problems(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    pw: ${terraform.password}\nstringData:\n  pw: ${terraform.password}\n",
        );
        assert_eq!(labelled.len(), 1, "{labelled:?}");
        assert!(
            labelled[0].contains("not `metadata.labels.pw`"),
            "{labelled:?}"
        );
    }

    #[test]
    fn sensitive_values_allowed_in_secrets_and_redacted() {
        let manifests = render("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: ${terraform.password}\n  url: postgres://u:${terraform.password}@db\n").unwrap();
        assert_eq!(
            manifests[0].object["stringData"]["password"],
            json!("hunter2")
        );
        let redactor = Redactor::new(&inputs().terraform);
        let shown = redact_sensitive(&manifests[0].object, &redactor);
        assert!(!shown.to_string().contains("hunter2"));
        assert_eq!(redactor.redact_text("pw=hunter2"), "pw=<sensitive>");
    }

    /// A sensitive output in a name that is not valid: the problem says so without the value.
    #[test]
    fn problems_never_quote_a_sensitive_value() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${terraform.password}\ndata:\n  a: b\n",
        );
        assert!(!found.is_empty());
        for problem in &found {
            assert!(!problem.contains("hunter2"), "{problem}");
        }
    }

    #[test]
    fn block_scalar_positions() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  script: |\n    echo start\n    echo ${values.missing} $${HOME}\n",
        );
        assert_eq!(
            found,
            vec!["m.yaml:8:10: `${values.missing}`: `values.missing` is not defined"]
        );
    }

    #[test]
    fn data_fields_must_be_strings() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  replicas: ${values.replicas}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  p: not base64!\n",
        );
        assert_eq!(
            found,
            vec![
                "m.yaml:1:1: `ConfigMap`: `data.replicas` is a number, but must be a string; quote the value (`\"${...}\"`)",
                "m.yaml:8:1: `Secret`: `data.p` is not base64; put plain text under `stringData` instead",
            ]
        );
        assert!(
            render("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  p: aGVsbG8=\n")
                .is_ok()
        );
    }

    #[test]
    fn lists_are_flattened() {
        let manifests = render(
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: a\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: b\n    stringData:\n      p: ${terraform.password}\n",
        );
        let error = manifests.unwrap_err().to_string();
        assert!(
            error.contains("not in `ConfigMap blog-staging/a`"),
            "{error}"
        );
        let manifests = render(
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: a\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: b\n",
        )
        .unwrap();
        let ids: Vec<String> = manifests.iter().map(|m| m.id().qualified()).collect();
        assert_eq!(
            ids,
            ["ConfigMap blog-staging/a", "ConfigMap blog-staging/b"]
        );
    }

    #[test]
    fn duplicates_name_both_places() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        );
        assert_eq!(
            found,
            vec![
                "m.yaml:6:1: duplicate object `ConfigMap blog-staging/a`: also defined at m.yaml:1:1"
            ]
        );
    }

    #[test]
    fn unknown_outputs_as_placeholder() {
        let manifests = render_sources(
            "staging",
            &[(PathBuf::from("m.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  d: ${terraform.later}\n".into())],
            &inputs(),
            UnknownOutputs::Placeholder,
        )
        .unwrap();
        assert_eq!(
            manifests[0].object["data"]["d"],
            json!(template::KNOWN_AFTER_APPLY)
        );
    }

    #[test]
    fn invalid_and_reserved_names_point_at_the_name() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Invalid_Name!!\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gitship-staging\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: coordination.k8s.io/v1\n    kind: Lease\n    metadata:\n      name: ok\n      namespace: ../../api\n",
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("m.yaml:4:9: `ConfigMap`: the name `Invalid_Name!!` is not valid"),
            "{found:#?}"
        );
        assert!(
            found[1]
                .starts_with("m.yaml:9:9: `ConfigMap blog-staging/gitship-staging` is reserved"),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with("m.yaml:18:18: `Lease`: the namespace `../../api` is not valid"),
            "{found:#?}"
        );
    }

    #[test]
    fn shell_variables_are_left_as_written_and_noted() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  script: |\n    echo ${FRONTEND_ADDR} $(date) ${HOME:-/}\n    STATUS=$(wget -q ${FRONTEND_ADDR})\n  env: \"${env.name}-${SUFFIX}\"\n  whole: ${TOKEN}\n";
        let output = render_sources_with(
            "staging",
            &[(PathBuf::from("m.yaml"), text.to_string())],
            &inputs(),
            UnknownOutputs::Error,
            false,
        )
        .unwrap();
        let data = &output.manifests[0].object["data"];
        assert_eq!(
            data["script"],
            json!("echo ${FRONTEND_ADDR} $(date) ${HOME:-/}\nSTATUS=$(wget -q ${FRONTEND_ADDR})\n")
        );
        assert_eq!(data["env"], json!("staging-${SUFFIX}"));
        assert_eq!(data["whole"], json!("${TOKEN}"));
        let noted: Vec<String> = output
            .notes
            .left_literal
            .iter()
            .map(|left| format!("{} {}", left.location, left.placeholder))
            .collect();
        assert_eq!(
            noted,
            [
                "m.yaml:7:10 ${FRONTEND_ADDR}",
                "m.yaml:7:35 ${HOME:-/}",
                "m.yaml:8:22 ${FRONTEND_ADDR}",
                "m.yaml:9:21 ${SUFFIX}",
                "m.yaml:10:10 ${TOKEN}",
            ]
        );
    }

    #[test]
    fn near_misses_of_sources_are_still_errors() {
        let found = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  a: ${value.replicas}\n  b: ${image.backend}\n  c: ${terrafrom.url}\n  d: ${imagse.backend}\n  e: ${Values.replicas}\n  f: ${env}\n",
        );
        assert_eq!(found.len(), 6, "{found:#?}");
        for (line, suggestion) in [
            (0, "did you mean `values`?"),
            (1, "did you mean `images`?"),
            (2, "did you mean `terraform`?"),
            (3, "did you mean `images`?"),
            (4, "did you mean `values`?"),
            (5, "`env` needs a field: `env.name` or `env.namespace`"),
        ] {
            assert!(found[line].contains(suggestion), "{}", found[line]);
        }
        // `${values}` alone is gitship's: the whole mapping, never left literal.
        let manifests = render(
            "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  all: ${values}\n",
        )
        .unwrap();
        assert_eq!(manifests[0].object["spec"]["all"]["replicas"], json!(2));
    }

    #[test]
    fn template_off_objects_are_taken_as_written() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\n  annotations:\n    gitship.dev/template: \"off\"\ndata:\n  a: ${values.nope}\n  b: $${x} ${{ nope }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: on\n  annotations:\n    gitship.dev/template: \"on\"\ndata:\n  a: \"${values.replicas}\"\n";
        let manifests = render(text).unwrap();
        let raw = &manifests[0].object;
        assert_eq!(raw["data"]["a"], json!("${values.nope}"));
        assert_eq!(raw["data"]["b"], json!("$${x} ${{ nope }}"));
        assert_eq!(
            raw["metadata"]["annotations"][TEMPLATE_ANNOTATION],
            json!("off")
        );
        assert_eq!(
            raw["metadata"]["labels"][ENVIRONMENT_LABEL],
            json!("staging")
        );
        assert_eq!(raw["metadata"]["namespace"], json!("blog-staging"));
        assert_eq!(manifests[1].object["data"]["a"], json!("2"));
        assert_eq!(
            problems(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    gitship.dev/template: disabled\n"
            ),
            [
                "m.yaml:6:27: `gitship.dev/template` is `disabled`; it takes `\"off\"` (the object is not templated) or `\"on\"` (the default)"
            ]
        );
    }

    #[test]
    fn an_item_of_a_list_turns_templating_off_for_itself() {
        let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: raw\n      annotations:\n        gitship.dev/template: \"off\"\n    data:\n      a: ${values.nope}\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: templated\n    data:\n      a: \"${values.replicas}\"\n";
        let manifests = render(text).unwrap();
        assert_eq!(manifests[0].object["metadata"]["name"], json!("raw"));
        assert_eq!(manifests[0].object["data"]["a"], json!("${values.nope}"));
        assert_eq!(manifests[1].object["data"]["a"], json!("2"));
        // A ConfigMap's `data.items` is no List's: it is templated with the rest.
        let manifests = render(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  items: \"${values.replicas}\"\n",
        )
        .unwrap();
        assert_eq!(manifests[0].object["data"]["items"], json!("2"));
        assert_eq!(
            problems(
                "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: a\n      annotations:\n        gitship.dev/template: no\n"
            ),
            [
                "m.yaml:9:31: `gitship.dev/template` is `no`; it takes `\"off\"` (the object is not templated) or `\"on\"` (the default)"
            ]
        );
    }

    #[test]
    fn bare_image_names_follow_the_setting() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: backend\n";
        let sources = [(PathBuf::from("m.yaml"), text.to_string())];
        let on = render_sources("staging", &sources, &inputs(), UnknownOutputs::Error).unwrap();
        assert_eq!(
            on[0].object["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("r.example/backend:abc")
        );
        let mut off_inputs = inputs();
        off_inputs.bare_image_names = false;
        let off = render_sources("staging", &sources, &off_inputs, UnknownOutputs::Error).unwrap();
        assert_eq!(
            off[0].object["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("backend")
        );
    }

    #[test]
    fn deep_nesting_is_a_problem_not_a_crash() {
        let mut text =
            String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nspec:\n");
        for depth in 0..20_000 {
            text.push_str(&" ".repeat(2 + depth * 2));
            text.push_str("-\n");
        }
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("invalid YAML: the YAML nests deeper than 100 levels"),
            "{found:?}"
        );
    }
}
