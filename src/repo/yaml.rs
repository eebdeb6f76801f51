//! Position-aware YAML: the repository's YAML files (environment configs, `gitship.yaml`,
//! manifests) parsed into a tree that remembers the line and column of every node, so that every
//! error can name `file:line:column`.
//!
//! Built on the event parser of `yaml-rust2`. Scalars keep their text and style: whether a plain
//! scalar is a number, a boolean or null is decided later ([`resolve_plain`]), after templates had
//! their say. Anchors and aliases are expanded; duplicate mapping keys are an error. Nesting depth
//! and alias expansion are bounded ([`crate::repo::limits`]).

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::repo::limits::{MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH};

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
///
/// The parser is driven event by event (not with `Parser::load`, which recurses once per nesting
/// level), so that the limits of [`crate::repo::limits`] stop a hostile file early: nesting
/// deeper than [`MAX_DEPTH`], more than [`MAX_ALIASES`] aliases or more than [`MAX_ALIAS_NODES`]
/// nodes added by them is an error at the offending position.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|err| YamlError {
            line: err.marker().line(),
            column: err.marker().col() + 1,
            message: err.info().to_string(),
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, mark);
        if let Some(error) = builder.fatal.take() {
            return Err(error);
        }
    }
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

/// A collection being built.
struct Frame {
    node: Node,
    /// For a mapping: the key whose value has not arrived yet.
    pending_key: Option<Node>,
    anchor: usize,
    /// For a mapping: the scalar keys seen so far, for the duplicate check in O(1).
    keys: HashSet<String>,
    /// Nodes in the collection so far, itself included (what an alias to it would add).
    size: usize,
}

/// Builds [`Node`]s from parser events.
#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    /// Open collections, innermost last.
    stack: Vec<Frame>,
    /// Anchored nodes of the current document with their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    document_line: usize,
    document_count: usize,
    /// Aliases seen and nodes they added, in the whole stream.
    aliases: usize,
    alias_nodes: usize,
    /// The first structural error (a duplicate key); parsing goes on to report syntax errors.
    error: Option<YamlError>,
    /// A limit was exceeded: parsing stops.
    fatal: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(frame) = self.stack.last_mut() else {
            self.documents.push(Document {
                line: node.line,
                root: Some(node),
            });
            return;
        };
        frame.size = frame.size.saturating_add(size);
        match &mut frame.node.kind {
            NodeKind::Sequence(items) => items.push(node),
            NodeKind::Mapping(entries) => match frame.pending_key.take() {
                None => frame.pending_key = Some(node),
                Some(key) => {
                    if let Some(name) = key.as_scalar()
                        && !frame.keys.insert(name.to_string())
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

    fn open(&mut self, kind: NodeKind, anchor: usize, line: usize, column: usize) {
        if self.stack.len() >= MAX_DEPTH {
            self.fatal = Some(YamlError {
                line,
                column,
                message: format!("the YAML nests deeper than {MAX_DEPTH} levels"),
            });
            return;
        }
        self.stack.push(Frame {
            node: Node { kind, line, column },
            pending_key: None,
            anchor,
            keys: HashSet::new(),
            size: 1,
        });
    }

    fn alias(&mut self, anchor: usize, line: usize, column: usize) {
        let Some((node, size)) = self.anchors.get(&anchor) else {
            // The parser knows the anchor, but from an earlier document.
            self.fatal = Some(YamlError {
                line,
                column,
                message: "alias to an anchor of an earlier document".into(),
            });
            return;
        };
        let size = *size;
        self.aliases += 1;
        self.alias_nodes = self.alias_nodes.saturating_add(size);
        if self.aliases > MAX_ALIASES {
            self.fatal = Some(YamlError {
                line,
                column,
                message: format!("more than {MAX_ALIASES} aliases in one file"),
            });
            return;
        }
        if self.alias_nodes > MAX_ALIAS_NODES {
            self.fatal = Some(YamlError {
                line,
                column,
                message: format!(
                    "aliases expand to more than {MAX_ALIAS_NODES} nodes (a \"billion laughs\" file?)"
                ),
            });
            return;
        }
        let node = node.clone();
        self.push_value(node, 0, size);
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
    let mut present: HashSet<Option<String>> = own
        .iter()
        .map(|(key, _)| key.as_scalar().map(str::to_string))
        .collect();
    for source in sources {
        for (key, value) in source {
            if present.insert(key.as_scalar().map(str::to_string)) {
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
                self.anchors.clear();
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
                self.push_value(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => {
                self.open(NodeKind::Sequence(Vec::new()), anchor, line, column);
            }
            Event::MappingStart(anchor, _) => {
                self.open(NodeKind::Mapping(Vec::new()), anchor, line, column);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(mut frame) = self.stack.pop() {
                    expand_merge_keys(&mut frame.node);
                    self.push_value(frame.node, frame.anchor, frame.size);
                }
            }
            Event::Alias(anchor) => self.alias(anchor, line, column),
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

    #[test]
    fn billion_laughs_is_refused_early() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = level - 1;
            text.push_str(&format!(
                "a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"
            ));
        }
        assert!(text.len() < 800, "{}", text.len());
        let err = parse_documents(&text).unwrap_err();
        assert!(
            err.message.contains("aliases expand to more than"),
            "{err:?}"
        );
        assert!(err.line >= 5, "{err:?}");
    }

    #[test]
    fn alias_count_is_bounded() {
        let mut text = String::from("a: &a x\nb:\n");
        for _ in 0..=MAX_ALIASES {
            text.push_str("  - *a\n");
        }
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(
            err.message,
            format!("more than {MAX_ALIASES} aliases in one file")
        );
        assert_eq!(err.line, MAX_ALIASES + 3);
    }

    #[test]
    fn aliases_to_earlier_documents_are_errors() {
        let err = parse_documents("a: &x 1\n---\nb: *x\n").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (3, "alias to an anchor of an earlier document")
        );
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        // 20,000 nested block sequences: `- - - ...` one level per line.
        let mut text = String::new();
        for depth in 0..20_000 {
            text.push_str(&" ".repeat(depth * 2));
            text.push_str("-\n");
        }
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(
            err.message,
            format!("the YAML nests deeper than {MAX_DEPTH} levels")
        );
        assert_eq!(err.line, MAX_DEPTH + 1);
        // Just below the limit is fine.
        let ok: String = (0..MAX_DEPTH - 1)
            .map(|depth| format!("{}- \n", " ".repeat(depth * 2)))
            .collect::<String>()
            + &" ".repeat((MAX_DEPTH - 1) * 2)
            + "- leaf\n";
        assert!(parse_documents(&ok).is_ok());
        // Flow nesting is the parser's own limit.
        let flow = "[".repeat(300) + &"]".repeat(300);
        assert!(parse_documents(&flow).is_err());
    }

    #[test]
    fn many_keys_are_linear() {
        // 100,000 keys took minutes with a list scan per key.
        let mut text = String::from("data:\n");
        for index in 0..100_000 {
            text.push_str(&format!("  key-{index}: value\n"));
        }
        text.push_str("merged:\n  <<: *base\n");
        let text = text.replacen("data:\n", "data: &base\n", 1);
        let started = std::time::Instant::now();
        let docs = parse_documents(&text).unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let json = docs[0].root.as_ref().unwrap().to_json();
        assert_eq!(json["merged"].as_object().map(|m| m.len()), Some(100_000));
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (3, "duplicate key `a`"));
    }
}
