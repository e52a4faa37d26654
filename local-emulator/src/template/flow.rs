//! `Metadata.Durafn.{Throttle, Debounce, Batch}`: a function's flow control
//! (`durafn_runtime::dispatch::flow`; documented in `docs/flow-control.md`).

use std::time::Duration;

use durafn_runtime::dispatch::flow::{
    Batch, Debounce, FlowControl, InputKey, MAX_COUNT, MAX_PERIOD, Throttle,
};

use super::TemplateError;
use super::functions::{bounded, text};
use super::resolve::Context;
use super::yaml::{Node, entries, get};

/// Reads the flow control of a function's `Metadata` (none when absent).
pub(super) fn read_flow<'n>(
    ctx: &Context<'n>,
    metadata: Option<&'n Node>,
) -> Result<FlowControl, TemplateError> {
    let Some(durafn) = metadata.and_then(|m| get(m, "Durafn")) else {
        return Ok(FlowControl::default());
    };
    let throttle = match get(durafn, "Throttle") {
        Some(n) => {
            section(ctx, n, "Throttle", &["Limit", "Period", "Key"])?;
            Some(Throttle {
                limit: count(ctx, n, "Throttle", "Limit", "a number of starts")?,
                period: period(ctx, n, "Throttle", "Period")?,
                key: key(ctx, n, "Throttle")?,
            })
        }
        None => None,
    };
    let debounce = match get(durafn, "Debounce") {
        Some(n) => {
            section(ctx, n, "Debounce", &["Period", "Key"])?;
            Some(Debounce {
                period: period(ctx, n, "Debounce", "Period")?,
                key: key(ctx, n, "Debounce")?,
            })
        }
        None => None,
    };
    let batch = match get(durafn, "Batch") {
        Some(n) => {
            section(ctx, n, "Batch", &["MaxSize", "Timeout", "Key"])?;
            Some(Batch {
                max_size: count(ctx, n, "Batch", "MaxSize", "a number of starts")?,
                timeout: period(ctx, n, "Batch", "Timeout")?,
                key: key(ctx, n, "Batch")?,
            })
        }
        None => None,
    };
    if let (Some(_), Some(n)) = (&batch, get(durafn, "Debounce")) {
        return Err(ctx.src.error(
            n,
            "Metadata.Durafn.Debounce and Batch cannot both be set: a debounce runs only the last start, a batch runs them all",
        ));
    }
    Ok(FlowControl::new(throttle, debounce, batch))
}

/// `Metadata.Durafn.PauseOnFailure` (`true`/`false`, default false).
pub(super) fn pause_on_failure<'n>(
    ctx: &Context<'n>,
    metadata: Option<&'n Node>,
) -> Result<bool, TemplateError> {
    let Some(n) = metadata
        .and_then(|m| get(m, "Durafn"))
        .and_then(|d| get(d, "PauseOnFailure"))
    else {
        return Ok(false);
    };
    match ctx.text(n)?.as_deref().map(str::trim) {
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        _ => Err(ctx.src.error(
            n,
            format!(
                "Metadata.Durafn.PauseOnFailure must be true or false, got {}",
                ctx.src.describe(n)
            ),
        )),
    }
}

/// A mapping with only these keys (a misspelt one is an error, not ignored).
fn section<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    known: &[&str],
) -> Result<(), TemplateError> {
    ctx.src
        .require_mapping(node, &format!("`Metadata.Durafn.{what}`"))?;
    for (k, key_node, _) in entries(node) {
        if !known.contains(&k) {
            return Err(ctx.src.error(
                key_node,
                format!(
                    "Metadata.Durafn.{what} has no setting {k:?}; expected {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn required<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    field: &str,
) -> Result<&'n Node, TemplateError> {
    get(node, field).ok_or_else(|| {
        ctx.src
            .error(node, format!("Metadata.Durafn.{what} needs {field}"))
    })
}

fn count<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    field: &str,
    expected: &str,
) -> Result<u32, TemplateError> {
    let n = required(ctx, node, what, field)?;
    let v = bounded(
        ctx,
        n,
        &format!("Metadata.Durafn.{what}.{field}"),
        1..=i64::from(MAX_COUNT),
        expected,
    )?;
    Ok(u32::try_from(v).unwrap_or(MAX_COUNT))
}

fn period<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    field: &str,
) -> Result<Duration, TemplateError> {
    let n = required(ctx, node, what, field)?;
    let max = i64::try_from(MAX_PERIOD.as_secs()).unwrap_or(i64::MAX);
    let secs = bounded(
        ctx,
        n,
        &format!("Metadata.Durafn.{what}.{field}"),
        1..=max,
        "a number of seconds",
    )?;
    Ok(Duration::from_secs(secs.unsigned_abs()))
}

fn key<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
) -> Result<Option<InputKey>, TemplateError> {
    let Some(n) = get(node, "Key") else {
        return Ok(None);
    };
    let k = text(ctx, n, &format!("Metadata.Durafn.{what}.Key"))?;
    match InputKey::parse(&k) {
        Some(key) => Ok(Some(key)),
        None => Err(ctx.src.error(
            n,
            format!(
                "Metadata.Durafn.{what}.Key must name an input field, such as input.customer_id, got {k:?}"
            ),
        )),
    }
}
