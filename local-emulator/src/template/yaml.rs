//! Walking saphyr's marked YAML nodes: positions, typed access to mappings
//! and scalars, and errors that point at a node.
//!
//! Every node of a [`MarkedYamlOwned`] tree carries a span whose start
//! marker gives the 1-based line and the 0-based column (in characters) of
//! the node in the file; errors show the column 1-based, as editors do.
//! CloudFormation short tags (`!Ref X`) are [`YamlDataOwned::Tagged`] nodes
//! whose span covers the tag and its value.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::TemplateError;

/// A YAML node with its position in the template.
pub(super) type Node = MarkedYamlOwned;

/// The template being read: its file name (for errors) and its text (to
/// quote what the user wrote).
#[derive(Clone, Copy)]
pub(super) struct Source<'t> {
    /// The file name shown in errors.
    pub(super) file: &'t str,
    /// The whole text of the template.
    pub(super) text: &'t str,
}

impl Source<'_> {
    /// Parses the text into its first YAML document (`None` if the text holds
    /// no document at all).
    pub(super) fn load(&self) -> Result<Option<Node>, TemplateError> {
        match Node::load_from_str(self.text) {
            Ok(docs) => Ok(docs.into_iter().next()),
            Err(e) => Err(TemplateError::Syntax {
                file: self.file.to_owned(),
                line: e.marker().line().max(1),
                column: e.marker().col() + 1,
                message: format!("invalid YAML: {}", e.info()),
            }),
        }
    }

    /// An error at `node`'s position.
    pub(super) fn error(&self, node: &Node, message: impl Into<String>) -> TemplateError {
        let (line, column) = position(node);
        TemplateError::Invalid {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The text the user wrote for `node` (tag and quotes included), trimmed.
    pub(super) fn text_of(&self, node: &Node) -> String {
        let (start, end) = (node.span.start.index(), node.span.end.index());
        if end <= start {
            return String::new();
        }
        let mut raw: String = self.text.chars().skip(start).take(end - start).collect();
        // A flow collection's span ends where its closing bracket starts.
        let inner = match &node.data {
            YamlDataOwned::Tagged(_, inner) => &inner.data,
            data => data,
        };
        if matches!(
            inner,
            YamlDataOwned::Sequence(_) | YamlDataOwned::Mapping(_)
        ) {
            if let Some(close) = self
                .text
                .chars()
                .nth(end)
                .filter(|c| matches!(c, ']' | '}'))
            {
                raw.push(close);
            }
        }
        raw.trim().to_owned()
    }

    /// A short description of `node` for "got ..." in error messages: the
    /// quoted text of a scalar, the source of a tagged node, or its kind.
    pub(super) fn describe(&self, node: &Node) -> String {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::Null) => "nothing".to_owned(),
            YamlDataOwned::Value(ScalarOwned::String(s)) => format!("{s:?}"),
            YamlDataOwned::Value(_) | YamlDataOwned::Representation(..) => {
                format!("{:?}", self.text_of(node))
            }
            YamlDataOwned::Tagged(..) => self.text_of(node),
            YamlDataOwned::Mapping(_) => "a mapping".to_owned(),
            YamlDataOwned::Sequence(_) => "a list".to_owned(),
            YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => "an invalid value".to_owned(),
        }
    }

    /// The text of an untagged scalar, as written (so `1.10` stays `1.10`);
    /// `None` for null, collections and tagged nodes.
    pub(super) fn scalar_text(&self, node: &Node) -> Option<String> {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::Null) => None,
            YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
            YamlDataOwned::Value(_) => Some(self.text_of(node)),
            YamlDataOwned::Representation(s, ..) => Some(s.clone()),
            _ => None,
        }
    }

    /// Checks that `node` is a mapping; `what` names it in the error.
    pub(super) fn require_mapping(&self, node: &Node, what: &str) -> Result<(), TemplateError> {
        if is_mapping(node) {
            Ok(())
        } else {
            Err(self.error(
                node,
                format!("{what} must be a mapping, got {}", self.describe(node)),
            ))
        }
    }

    /// The value of `key` in `map`; if it is missing or null, an error at
    /// `owner` (the key that holds `map`) naming it as `what` and saying
    /// what is `expected`.
    pub(super) fn required<'n>(
        &self,
        map: &'n Node,
        key: &str,
        owner: &Node,
        what: &str,
        expected: &str,
    ) -> Result<&'n Node, TemplateError> {
        get(map, key)
            .ok_or_else(|| self.error(owner, format!("{what} has no `{key}`; expected {expected}")))
    }
}

/// The 1-based line and column where `node` starts.
pub(super) fn position(node: &Node) -> (usize, usize) {
    let m = node.span.start;
    (m.line().max(1), m.col() + 1)
}

/// Whether `node` is a mapping.
pub(super) fn is_mapping(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Mapping(_))
}

/// Whether `node` is null (an empty value such as `Key:`).
pub(super) fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// The value of `key` in `map`, if `map` is a mapping holding a non-null
/// value under that key.
pub(super) fn get<'n>(map: &'n Node, key: &str) -> Option<&'n Node> {
    map.data.as_mapping_get(key).filter(|v| !is_null(v))
}

/// The entries of a mapping in document order, keys as strings (entries
/// whose key is not a string are skipped); nothing for a non-mapping.
pub(super) fn entries(map: &Node) -> impl Iterator<Item = (&str, &Node, &Node)> {
    map.data
        .as_mapping()
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| Some((plain_str(k)?, k, v)))
}

/// The items of a sequence; nothing for a non-sequence.
pub(super) fn items(seq: &Node) -> impl Iterator<Item = &Node> {
    seq.data.as_vec().into_iter().flat_map(|v| v.iter())
}

/// The string of an untagged string scalar.
pub(super) fn plain_str(node: &Node) -> Option<&str> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
        _ => None,
    }
}
