//! Position-aware YAML: the repository's YAML files (environment configs, `gitship.yaml`,
//! manifests) parsed into a tree that remembers the line and column of every node, so that every
//! error can name `file:line:column`.
//!
//! Built on the event parser of `yaml-rust2`. Scalars keep their text and style: whether a plain
//! scalar is a number, a boolean or null is decided later ([`resolve_plain`]), after templates had
//! their say. Anchors and aliases are expanded; duplicate mapping keys are an error.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    /// `replicas: 3`: the type is resolved from the text (YAML 1.2 core schema).
    Plain,
    /// `'...'` or `"..."`: always a string.
    Quoted,
    /// `|` or `>`: always a string.
    Block,
}

/// One YAML node with the place it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub column: usize,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        text: String,
        style: ScalarStyle,
        /// The tag suffix when one was written (`!!str` -> `str`).
        tag: Option<String>,
    },
    Sequence(Vec<Node>),
    /// Entries in file order.
    Mapping(Vec<(Node, Node)>),
}

/// One document of a (possibly multi-document) YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Line where the document's content starts.
    pub line: usize,
    /// `None` for an empty document (`---` followed by nothing but comments).
    pub root: Option<Node>,
}

/// A YAML syntax error or a structural problem such as a duplicate key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a plain `null`/`~`/empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, style: ScalarStyle::Plain, tag: None }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name of the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } => match self.to_json() {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "a string",
            },
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }

    /// The node as JSON, resolving plain scalars with the YAML 1.2 core schema.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            NodeKind::Scalar { text, style, tag } => scalar_to_json(text, *style, tag.as_deref()),
            NodeKind::Sequence(items) => items.iter().map(Node::to_json).collect(),
            NodeKind::Mapping(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| {
                        (
                            key.as_scalar().unwrap_or_default().to_string(),
                            value.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// A scalar's JSON value given its text, style and tag.
pub fn scalar_to_json(text: &str, style: ScalarStyle, tag: Option<&str>) -> serde_json::Value {
    match (style, tag) {
        (_, Some("str")) | (ScalarStyle::Quoted | ScalarStyle::Block, None) => {
            serde_json::Value::String(text.to_string())
        }
        _ => resolve_plain(text),
    }
}

/// The value of a plain scalar (YAML 1.2 core schema): null, booleans, integers, floats, else a
/// string. Values JSON cannot hold (`.inf`, `.nan`) stay strings.
pub fn resolve_plain(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::String(text.to_string());
    }
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if let Ok(integer) = unsigned.parse::<i64>() {
        return Value::from(integer);
    }
    if let Ok(integer) = unsigned.parse::<u64>() {
        return Value::from(integer);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(integer) = i64::from_str_radix(hex, 16)
    {
        return Value::from(integer);
    }
    if let Some(octal) = text.strip_prefix("0o")
        && let Ok(integer) = i64::from_str_radix(octal, 8)
    {
        return Value::from(integer);
    }
    let looks_numeric = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric
        && let Ok(float) = unsigned.parse::<f64>()
        && let Some(number) = serde_json::Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

/// Parse a YAML stream into its documents.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|err| YamlError {
        line: err.marker().line(),
        column: err.marker().col() + 1,
        message: err.info().to_string(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.documents)
}

/// Parse a single-document YAML file; an empty file is `None`.
pub fn parse_single(text: &str) -> Result<Option<Node>, YamlError> {
    let mut documents = parse_documents(text)?;
    if documents.len() > 1 {
        return Err(YamlError {
            line: documents[1].line,
            column: 1,
            message: "expected a single YAML document, found several".into(),
        });
    }
    Ok(documents.pop().and_then(|d| d.root))
}

/// Builds [`Node`]s from parser events.
#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    /// Open collections: the node being built and, for mappings, a pending key.
    stack: Vec<(Node, Option<Node>, usize)>,
    anchors: HashMap<usize, Node>,
    document_line: usize,
    document_count: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, pending_key, _)) = self.stack.last_mut() else {
            self.documents.push(Document {
                line: node.line,
                root: Some(node),
            });
            return;
        };
        match &mut parent.kind {
            NodeKind::Sequence(items) => items.push(node),
            NodeKind::Mapping(entries) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Some(name) = key.as_scalar()
                        && entries.iter().any(|(k, _)| k.as_scalar() == Some(name))
                        && self.error.is_none()
                    {
                        self.error = Some(YamlError {
                            line: key.line,
                            column: key.column,
                            message: format!("duplicate key `{name}`"),
                        });
                    }
                    entries.push((key, node));
                }
            },
            NodeKind::Scalar { .. } => {}
        }
    }
}

/// Expand YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`): the merged mappings' entries are
/// added unless the mapping sets the key itself; earlier sources win over later ones.
fn expand_merge_keys(node: &mut Node) {
    let NodeKind::Mapping(entries) = &mut node.kind else {
        return;
    };
    let is_merge = |key: &Node| matches!(&key.kind, NodeKind::Scalar { text, style: ScalarStyle::Plain, .. } if text == "<<");
    if !entries.iter().any(|(key, _)| is_merge(key)) {
        return;
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = std::mem::take(entries)
        .into_iter()
        .partition(|(key, _)| is_merge(key));
    let mut sources = Vec::new();
    for (_, value) in merges {
        match value.kind {
            NodeKind::Mapping(source) => sources.push(source),
            NodeKind::Sequence(items) => {
                sources.extend(items.into_iter().filter_map(|item| match item.kind {
                    NodeKind::Mapping(source) => Some(source),
                    _ => None,
                }))
            }
            NodeKind::Scalar { .. } => {}
        }
    }
    for source in sources {
        for (key, value) in source {
            if !own.iter().any(|(k, _)| k.as_scalar() == key.as_scalar()) {
                own.push((key, value));
            }
        }
    }
    *entries = own;
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let (line, column) = (mark.line(), mark.col() + 1);
        match event {
            Event::DocumentStart => {
                self.document_line = line;
                self.document_count = self.documents.len();
            }
            Event::DocumentEnd => {
                // A document whose root never arrived is empty: `---` followed by comments.
                if self.documents.len() == self.document_count {
                    self.documents.push(Document {
                        line: self.document_line,
                        root: None,
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    TScalarStyle::Plain => ScalarStyle::Plain,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => ScalarStyle::Quoted,
                    TScalarStyle::Literal | TScalarStyle::Folded => ScalarStyle::Block,
                };
                let tag = tag.map(|t| t.suffix);
                let node = Node {
                    kind: NodeKind::Scalar { text, style, tag },
                    line,
                    column,
                };
                self.push_value(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((
                    Node {
                        kind: NodeKind::Sequence(Vec::new()),
                        line,
                        column,
                    },
                    None,
                    anchor,
                ));
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node {
                        kind: NodeKind::Mapping(Vec::new()),
                        line,
                        column,
                    },
                    None,
                    anchor,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _, anchor)) = self.stack.pop() {
                    expand_merge_keys(&mut node);
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned().unwrap_or(Node {
                    kind: NodeKind::Scalar {
                        text: String::new(),
                        style: ScalarStyle::Plain,
                        tag: None,
                    },
                    line,
                    column,
                });
                self.push_value(node, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("a: 1\nb:\n  c: \"x\"\n").unwrap();
        let root = docs[0].root.as_ref().unwrap();
        let NodeKind::Mapping(entries) = &root.kind else {
            panic!("mapping")
        };
        assert_eq!((entries[0].0.line, entries[0].0.column), (1, 1));
        let NodeKind::Mapping(inner) = &entries[1].1.kind else {
            panic!("mapping")
        };
        assert_eq!((inner[0].0.line, inner[0].0.column), (3, 3));
        assert_eq!((inner[0].1.line, inner[0].1.column), (3, 6));
    }

    #[test]
    fn multi_document_and_types() {
        let docs =
            parse_documents("---\na: 1\n---\n# empty\n---\nb: [true, '3', 1.5, ~, x]\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.as_ref().is_none_or(Node::is_null));
        assert_eq!(
            docs[2].root.as_ref().unwrap().to_json(),
            json!({"b": [true, "3", 1.5, null, "x"]})
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
    }

    #[test]
    fn anchors_expand() {
        let docs = parse_documents("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(
            docs[0].root.as_ref().unwrap().to_json(),
            json!({"a": {"k": 1}, "b": {"k": 1}})
        );
    }

    #[test]
    fn merge_keys_expand() {
        let docs = parse_documents("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n").unwrap();
        assert_eq!(
            docs[0].root.as_ref().unwrap().to_json(),
            json!({"base": {"a": 1, "b": 2}, "x": {"b": 3, "a": 1}})
        );
    }

    #[test]
    fn plain_resolution() {
        assert_eq!(resolve_plain("3"), json!(3));
        assert_eq!(resolve_plain("-3"), json!(-3));
        assert_eq!(resolve_plain("0x10"), json!(16));
        assert_eq!(resolve_plain("1e3"), json!(1000.0));
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("yes"), json!("yes"));
        assert_eq!(resolve_plain(".inf"), json!(".inf"));
    }
}
