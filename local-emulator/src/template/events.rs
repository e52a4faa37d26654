//! A function's `Events`: HTTP API routes, SQS queues and schedules.

use std::time::Duration;

use saphyr::{ScalarOwned, YamlDataOwned};

use super::functions::{bounded, text};
use super::resolve::{Context, QUEUE_TYPE};
use super::yaml::{Node, entries, get, plain_str, position};
use super::{EventDef, EventKind, ScheduleExpr, TemplateError};

/// The HTTP methods an `HttpApi` route may use.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// Reads a function's `Events` mapping.
pub(super) fn read_events<'n>(
    ctx: &Context<'n>,
    events: &'n Node,
) -> Result<Vec<EventDef>, TemplateError> {
    ctx.src.require_mapping(events, "`Events`")?;
    let mut out = Vec::new();
    for (name, key, event) in entries(events) {
        let what = format!("event `{name}`");
        ctx.src.require_mapping(event, &what)?;
        let expected = "an event type such as HttpApi, SQS, Schedule or ScheduleV2";
        let ty_node = ctx.src.required(event, "Type", key, &what, expected)?;
        let ty = text(ctx, ty_node, "the event's Type")?;
        let props = get(event, "Properties");
        if let Some(p) = props {
            ctx.src
                .require_mapping(p, &format!("the Properties of {what}"))?;
        }
        let what = format!("{ty} {what}");
        let props = Props {
            props,
            event: key,
            what: &what,
        };
        let kind = match ty.as_str() {
            "HttpApi" => http_api(ctx, props)?,
            "SQS" => sqs(ctx, props)?,
            "Schedule" => schedule(ctx, props, "Schedule")?,
            "ScheduleV2" => schedule(ctx, props, "ScheduleExpression")?,
            _ => EventKind::Other { event_type: ty },
        };
        out.push(EventDef {
            name: name.to_owned(),
            line: position(key).0,
            kind,
        });
    }
    Ok(out)
}

fn http_api<'n>(ctx: &Context<'n>, props: Props<'n, '_>) -> Result<EventKind, TemplateError> {
    let path_node = props.required(ctx, "Path", "a route path such as `/orders`")?;
    let path = text(ctx, path_node, "Path")?;
    if !path.starts_with('/') {
        return Err(ctx.src.error(
            path_node,
            format!("Path must start with `/`, such as `/orders`, got {path:?}"),
        ));
    }
    let method = match props.get("Method") {
        Some(n) => {
            let m = text(ctx, n, "Method")?.to_ascii_uppercase();
            let m = if m == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                "ANY".to_owned()
            } else {
                m
            };
            if !METHODS.contains(&m.as_str()) {
                return Err(ctx.src.error(
                    n,
                    format!(
                        "Method must be an HTTP method ({}), got {}",
                        METHODS.join(", "),
                        ctx.src.describe(n)
                    ),
                ));
            }
            m
        }
        None => "ANY".to_owned(),
    };
    Ok(EventKind::HttpApi { method, path })
}

fn sqs<'n>(ctx: &Context<'n>, props: Props<'n, '_>) -> Result<EventKind, TemplateError> {
    let expected = "`!GetAtt <QueueLogicalId>.Arn` of an AWS::SQS::Queue resource";
    let queue_node = props.required(ctx, "Queue", expected)?;
    let batch_size = match props.get("BatchSize") {
        Some(n) => bounded(ctx, n, "BatchSize", 1..=10_000, "a number of messages")?,
        None => 10,
    };
    let batch_size = u32::try_from(batch_size).unwrap_or(10);
    let Some(queue) = queue_resource(ctx, queue_node, "Queue", expected)? else {
        // A literal ARN: a queue outside the template, with SQS's defaults.
        return Ok(EventKind::Sqs {
            queue: arn_name(ctx, queue_node, "Queue", expected)?,
            batch_size,
            max_receive_count: None,
            visibility_timeout: Duration::from_secs(30),
            dead_letter_queue: None,
        });
    };
    let qprops = queue.props;
    let visibility_timeout = match qprops.and_then(|p| get(p, "VisibilityTimeout")) {
        Some(n) => bounded(
            ctx,
            n,
            "VisibilityTimeout",
            0..=43_200,
            "a number of seconds",
        )?,
        None => 30,
    };
    let (max_receive_count, dead_letter_queue) = match qprops.and_then(|p| get(p, "RedrivePolicy"))
    {
        Some(policy) => redrive(ctx, policy)?,
        None => (None, None),
    };
    Ok(EventKind::Sqs {
        queue: ctx.resource_name(queue)?,
        batch_size,
        max_receive_count,
        visibility_timeout: Duration::from_secs(visibility_timeout.unsigned_abs()),
        dead_letter_queue,
    })
}

/// The queue resource `node` refers to (`!GetAtt Q.Arn`, `!Ref Q`); `None`
/// for a plain string; an error for a reference to anything but a queue of
/// this template.
fn queue_resource<'a, 'n>(
    ctx: &'a Context<'n>,
    node: &'n Node,
    what: &str,
    expected: &str,
) -> Result<Option<&'a super::resolve::Resource<'n>>, TemplateError> {
    let Some(id) = ctx.referenced_id(node)? else {
        return Ok(None);
    };
    match ctx.resource(&id) {
        Some(res) if res.ty == QUEUE_TYPE => Ok(Some(res)),
        Some(res) => Err(ctx.src.error(
            node,
            format!("{what} refers to `{id}`, whose type is {} rather than {QUEUE_TYPE}; expected {expected}", res.ty),
        )),
        None => Err(ctx.src.error(
            node,
            format!("{what} refers to `{id}`, which is not a resource of this template; expected {expected}"),
        )),
    }
}

/// The queue name at the end of a literal ARN (`arn:aws:sqs:region:account:name`).
fn arn_name<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    expected: &str,
) -> Result<String, TemplateError> {
    let arn = match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Tagged(..) => {
            ctx.text(node)?
        }
        _ => None,
    };
    let name = arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
        .filter(|n| !n.is_empty() && !n.contains(['$', '{', '}']));
    name.map(str::to_owned).ok_or_else(|| {
        ctx.src.error(
            node,
            format!(
                "{what} must be {expected} or a queue ARN, got {}",
                ctx.src.describe(node)
            ),
        )
    })
}

/// A queue's `RedrivePolicy` (a mapping, or the same as a JSON string):
/// `(maxReceiveCount, dead-letter queue name)`.
fn redrive<'n>(
    ctx: &Context<'n>,
    policy: &'n Node,
) -> Result<(Option<u32>, Option<String>), TemplateError> {
    let expected = "`!GetAtt <QueueLogicalId>.Arn` of the dead-letter queue";
    if let Some(json) = plain_str(policy) {
        let bad = |why: String| {
            ctx.src.error(
                policy,
                format!("RedrivePolicy must be a mapping with deadLetterTargetArn and maxReceiveCount, {why}"),
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(format!("got invalid JSON ({e})")))?;
        let count = value.get("maxReceiveCount").and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        });
        let count = count
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| (1..=1000).contains(c));
        let dlq = value
            .get("deadLetterTargetArn")
            .and_then(|a| a.as_str())
            .and_then(|arn| arn.rsplit(':').next())
            .map(str::to_owned);
        return match count {
            Some(c) => Ok((Some(c), dlq)),
            None => Err(bad("got no maxReceiveCount from 1 to 1000".to_owned())),
        };
    }
    ctx.src.require_mapping(policy, "RedrivePolicy")?;
    let count = match get(policy, "maxReceiveCount") {
        Some(n) => Some(bounded(
            ctx,
            n,
            "maxReceiveCount",
            1..=1_000,
            "a number of receives",
        )?),
        None => None,
    };
    let dlq = match get(policy, "deadLetterTargetArn") {
        Some(n) => Some(
            match queue_resource(ctx, n, "deadLetterTargetArn", expected)? {
                Some(res) => ctx.resource_name(res)?,
                None => arn_name(ctx, n, "deadLetterTargetArn", expected)?,
            },
        ),
        None => None,
    };
    Ok((count.and_then(|c| u32::try_from(c).ok()), dlq))
}

fn schedule<'n>(
    ctx: &Context<'n>,
    props: Props<'n, '_>,
    key: &str,
) -> Result<EventKind, TemplateError> {
    let expected = "a schedule expression such as `rate(5 minutes)` or `cron(0 12 * * ? *)`";
    let expr_node = props.required(ctx, key, expected)?;
    let expr_text = text(ctx, expr_node, key)?;
    let expression =
        ScheduleExpr::parse(&expr_text).map_err(|e| ctx.src.error(expr_node, e.to_string()))?;
    let timezone = match props.get("ScheduleExpressionTimezone") {
        Some(n) if key == "ScheduleExpression" => Some(text(ctx, n, "ScheduleExpressionTimezone")?),
        _ => None,
    };
    let enabled = match (props.get("State"), props.get("Enabled")) {
        (Some(n), _) => match text(ctx, n, "State")?.as_str() {
            "ENABLED" => true,
            "DISABLED" => false,
            _ => {
                return Err(ctx.src.error(
                    n,
                    format!(
                        "State must be ENABLED or DISABLED, got {}",
                        ctx.src.describe(n)
                    ),
                ));
            }
        },
        (None, Some(n)) => match ctx.text(n)?.as_deref() {
            Some("true" | "True" | "TRUE") => true,
            Some("false" | "False" | "FALSE") => false,
            _ => {
                return Err(ctx.src.error(
                    n,
                    format!("Enabled must be true or false, got {}", ctx.src.describe(n)),
                ));
            }
        },
        (None, None) => true,
    };
    let name = props
        .get("Name")
        .map(|n| text(ctx, n, "Name"))
        .transpose()?;
    let input = match props.get("Input") {
        Some(n) if key == "ScheduleExpression" => {
            let t = text(ctx, n, "Input")?;
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&t) {
                return Err(ctx.src.error(
                    n,
                    format!("Input must be JSON text, such as '{{\"key\": \"value\"}}': {e}"),
                ));
            }
            Some(t)
        }
        _ => None,
    };
    Ok(EventKind::Schedule {
        expression,
        timezone,
        enabled,
        name,
        input,
    })
}

/// An event's `Properties` (if it has them) and how to name the event.
#[derive(Clone, Copy)]
struct Props<'n, 'w> {
    props: Option<&'n Node>,
    /// The event's key, where errors point when it has no `Properties`.
    event: &'n Node,
    what: &'w str,
}

impl<'n> Props<'n, '_> {
    /// The non-null value of a property.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.props.and_then(|p| get(p, key))
    }

    /// A required property; the error points at `Properties` (or at the
    /// event when it has none).
    fn required(
        &self,
        ctx: &Context<'n>,
        key: &str,
        expected: &str,
    ) -> Result<&'n Node, TemplateError> {
        self.get(key).ok_or_else(|| {
            ctx.src.error(
                self.props.unwrap_or(self.event),
                format!("{} has no `{key}`; expected {expected}", self.what),
            )
        })
    }
}
