//! The template's resources and parameters, and the resolution of
//! CloudFormation intrinsic functions (`!Ref`, `!Sub`, `!GetAtt`, `!Join`,
//! in short or long form) to plain text where that can be done locally.

use std::collections::BTreeMap;

use saphyr::YamlDataOwned;

use super::TemplateError;
use super::yaml::{Node, Source, entries, get, items, plain_str};

/// CloudFormation's intrinsic functions (and `!Condition`), by the name of
/// their short tag.
const INTRINSICS: &[&str] = &[
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "And",
    "Or",
    "Not",
    "FindInMap",
    "ImportValue",
    "Base64",
    "Cidr",
    "GetAZs",
    "Condition",
    "Transform",
    "ToJsonString",
    "Length",
];

/// How deep references may chain (`!Ref A` whose name is `!Ref B` ...)
/// before giving up: guards against cycles.
const MAX_DEPTH: usize = 8;

/// The resource type of an SQS queue.
pub(super) const QUEUE_TYPE: &str = "AWS::SQS::Queue";

/// One entry of `Resources`.
pub(super) struct Resource<'n> {
    /// The logical id.
    pub(super) id: &'n str,
    /// The logical id's key node (for error positions).
    pub(super) key: &'n Node,
    /// The `Type`, such as `AWS::Serverless::Function`.
    pub(super) ty: &'n str,
    /// The `Properties` mapping, if any.
    pub(super) props: Option<&'n Node>,
    /// The `Metadata` mapping, if any.
    pub(super) metadata: Option<&'n Node>,
}

/// A call of an intrinsic function: its name without `Fn::` and its argument.
pub(super) struct Intrinsic<'n> {
    pub(super) name: &'n str,
    pub(super) arg: &'n Node,
}

/// Everything needed to read values anywhere in the template.
pub(super) struct Context<'n> {
    pub(super) src: Source<'n>,
    pub(super) resources: Vec<Resource<'n>>,
    /// `Parameters` that have a `Default`.
    params: BTreeMap<&'n str, &'n Node>,
}

impl<'n> Context<'n> {
    /// Indexes the resources (each must be a mapping with a `Type`) and the
    /// parameters' defaults.
    pub(super) fn new(
        src: Source<'n>,
        root: &'n Node,
        resources: &'n Node,
    ) -> Result<Self, TemplateError> {
        let mut list = Vec::new();
        for (id, key, res) in entries(resources) {
            let what = format!("resource `{id}`");
            src.require_mapping(res, &what)?;
            let expected = "a resource type such as AWS::Serverless::Function";
            let ty_node = src.required(res, "Type", key, &what, expected)?;
            let ty = plain_str(ty_node).ok_or_else(|| {
                src.error(
                    ty_node,
                    format!(
                        "the Type of {what} must be {expected}, got {}",
                        src.describe(ty_node)
                    ),
                )
            })?;
            let props = get(res, "Properties");
            if let Some(p) = props {
                src.require_mapping(p, &format!("the Properties of {what}"))?;
            }
            let metadata = get(res, "Metadata");
            list.push(Resource {
                id,
                key,
                ty,
                props,
                metadata,
            });
        }
        let params = get(root, "Parameters")
            .map(|p| {
                entries(p)
                    .filter_map(|(name, _, param)| Some((name, get(param, "Default")?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            src,
            resources: list,
            params,
        })
    }

    /// The resource with this logical id.
    pub(super) fn resource(&self, id: &str) -> Option<&Resource<'n>> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// The intrinsic function `node` calls, if it is `!Name arg` or a
    /// one-entry mapping `{Ref: ..}` / `{Fn::Name: ..}`. An unknown short tag
    /// is an error.
    pub(super) fn intrinsic(&self, node: &'n Node) -> Result<Option<Intrinsic<'n>>, TemplateError> {
        match &node.data {
            YamlDataOwned::Tagged(tag, arg) => {
                match INTRINSICS.iter().find(|n| tag.handle == "!" && **n == tag.suffix) {
                    Some(name) => Ok(Some(Intrinsic { name, arg })),
                    None => Err(self.src.error(
                        node,
                        format!(
                            "unknown tag {tag}; expected a plain value or a CloudFormation intrinsic function such as !Ref, !Sub or !GetAtt"
                        ),
                    )),
                }
            }
            YamlDataOwned::Mapping(m) if m.len() == 1 => {
                let Some((name, _, arg)) = entries(node).next() else {
                    return Ok(None);
                };
                let short = if name == "Ref" {
                    Some("Ref")
                } else {
                    name.strip_prefix("Fn::")
                };
                Ok(short
                    .and_then(|s| INTRINSICS.iter().find(|n| **n == s))
                    .map(|name| Intrinsic { name, arg }))
            }
            _ => Ok(None),
        }
    }

    /// The plain text of a value, resolving what can be resolved locally;
    /// `None` for null, collections and expressions that depend on AWS.
    pub(super) fn text(&self, node: &'n Node) -> Result<Option<String>, TemplateError> {
        self.text_at(node, 0)
    }

    fn text_at(&self, node: &'n Node, depth: usize) -> Result<Option<String>, TemplateError> {
        if depth > MAX_DEPTH {
            return Ok(None);
        }
        let Some(f) = self.intrinsic(node)? else {
            return Ok(self.src.scalar_text(node));
        };
        match f.name {
            "Ref" => match plain_str(f.arg) {
                Some(name) => self.ref_text(name, depth + 1),
                None => Ok(None),
            },
            "GetAtt" => match getatt_target(f.arg) {
                Some((id, attr)) => self.getatt_text(&id, &attr, depth + 1),
                None => Ok(None),
            },
            "Sub" => self.sub(f.arg, depth + 1),
            "Join" => self.join(f.arg, depth + 1),
            _ => Ok(None),
        }
    }

    /// `!Ref name`: a parameter's default or a resource's name. Pseudo
    /// parameters (`AWS::Region`) and unknown names are not resolved.
    fn ref_text(&self, name: &str, depth: usize) -> Result<Option<String>, TemplateError> {
        if let Some(default) = self.params.get(name) {
            return self.text_at(default, depth);
        }
        match self.resource(name) {
            Some(res) => self.name_of(res, depth).map(Some),
            None => Ok(None),
        }
    }

    /// `!GetAtt id.attr`: only a queue's `QueueName` has a local meaning.
    fn getatt_text(
        &self,
        id: &str,
        attr: &str,
        depth: usize,
    ) -> Result<Option<String>, TemplateError> {
        match self.resource(id) {
            Some(res) if res.ty == QUEUE_TYPE && attr == "QueueName" => {
                self.name_of(res, depth).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The name of a resource: its `TableName`, `QueueName` or
    /// `FunctionName` property when it resolves, else its logical id.
    pub(super) fn resource_name(&self, res: &Resource<'n>) -> Result<String, TemplateError> {
        self.name_of(res, 0)
    }

    fn name_of(&self, res: &Resource<'n>, depth: usize) -> Result<String, TemplateError> {
        let prop = match res.ty {
            "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable" => "TableName",
            QUEUE_TYPE => "QueueName",
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
            _ => return Ok(res.id.to_owned()),
        };
        let named = match res.props.and_then(|p| get(p, prop)) {
            Some(node) => self.text_at(node, depth + 1)?,
            None => None,
        };
        Ok(named.unwrap_or_else(|| res.id.to_owned()))
    }

    /// `!Sub template` or `!Sub [template, {var: value}]`: variables that
    /// resolve are replaced; the others (`${AWS::Region}`) stay as written.
    fn sub(&self, arg: &'n Node, depth: usize) -> Result<Option<String>, TemplateError> {
        let (template, vars) = match plain_str(arg) {
            Some(t) => (t, None),
            None => {
                let list: Vec<&Node> = items(arg).collect();
                match list.as_slice() {
                    [t, vars] => match plain_str(t) {
                        Some(t) => (t, Some(*vars)),
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                }
            }
        };
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let Some(end) = after.find('}') else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let var = after[..end].trim();
            let value = match vars.and_then(|m| get(m, var)) {
                Some(v) => self.text_at(v, depth)?,
                None => match var.split_once('.') {
                    Some((id, attr)) => self.getatt_text(id, attr, depth)?,
                    None => self.ref_text(var, depth)?,
                },
            };
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("${");
                    out.push_str(var);
                    out.push('}');
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Some(out))
    }

    /// `!Join [delimiter, [parts]]` when every part resolves.
    fn join(&self, arg: &'n Node, depth: usize) -> Result<Option<String>, TemplateError> {
        let list: Vec<&Node> = items(arg).collect();
        let [delim, parts] = list.as_slice() else {
            return Ok(None);
        };
        let Some(delim) = self.src.scalar_text(delim) else {
            return Ok(None);
        };
        let mut texts = Vec::new();
        for part in items(parts) {
            match self.text_at(part, depth)? {
                Some(t) => texts.push(t),
                None => return Ok(None),
            }
        }
        Ok(Some(texts.join(&delim)))
    }

    /// The logical id a reference such as `!GetAtt Queue.Arn` or `!Ref Queue`
    /// (short or long form) points at; `None` if `node` is no such reference.
    pub(super) fn referenced_id(&self, node: &'n Node) -> Result<Option<String>, TemplateError> {
        Ok(match self.intrinsic(node)? {
            Some(f) if f.name == "Ref" => plain_str(f.arg).map(str::to_owned),
            Some(f) if f.name == "GetAtt" => getatt_target(f.arg).map(|(id, _)| id),
            _ => None,
        })
    }
}

/// The `(logical id, attribute)` of `!GetAtt id.attr` or `!GetAtt [id, attr]`.
fn getatt_target(arg: &Node) -> Option<(String, String)> {
    if let Some(s) = plain_str(arg) {
        let (id, attr) = s.split_once('.')?;
        return Some((id.to_owned(), attr.to_owned()));
    }
    let list: Vec<&Node> = items(arg).collect();
    match list.as_slice() {
        [id, attr] => Some((plain_str(id)?.to_owned(), plain_str(attr)?.to_owned())),
        _ => None,
    }
}
