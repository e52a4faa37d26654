//! `AWS::Serverless::Function` resources, with `Globals.Function` applied.

use std::collections::BTreeMap;
use std::time::Duration;

use super::resolve::{Context, Resource};
use super::yaml::{Node, entries, get, is_null, position};
use super::{Concurrency, FunctionDef, PlatformRole, TemplateError, events};

/// SAM's default `Timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// SAM's default `MemorySize`.
const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's longest timeout.
const MAX_TIMEOUT_SECS: i64 = 900;
/// Lambda's memory range.
const MEMORY_RANGE_MB: std::ops::RangeInclusive<i64> = 128..=10_240;

/// The settings `Globals.Function` gives every function.
#[derive(Default)]
struct Globals {
    timeout: Option<Duration>,
    memory_size_mb: Option<u32>,
    environment: BTreeMap<String, String>,
    code_uri: Option<String>,
    handler: Option<String>,
}

/// Reads every function of the template.
pub(super) fn read_functions<'n>(
    ctx: &Context<'n>,
    globals: Option<&'n Node>,
) -> Result<Vec<FunctionDef>, TemplateError> {
    let globals = match globals.and_then(|g| get(g, "Function")) {
        Some(g) => read_globals(ctx, g)?,
        None => Globals::default(),
    };
    let mut functions: Vec<FunctionDef> = Vec::new();
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for res in ctx
        .resources
        .iter()
        .filter(|r| r.ty == "AWS::Serverless::Function")
    {
        let (function, name_node) = read_function(ctx, res, &globals)?;
        let (line, _) = position(name_node);
        if let Some((other, other_line)) = seen.get(&function.name) {
            return Err(ctx.src.error(
                name_node,
                format!(
                    "duplicate function name {:?}: function `{}` already uses it (line {other_line}); expected every function to have its own FunctionName",
                    function.name, other
                ),
            ));
        }
        seen.insert(function.name.clone(), (res.id.to_owned(), line));
        functions.push(function);
    }
    Ok(functions)
}

fn read_globals<'n>(ctx: &Context<'n>, g: &'n Node) -> Result<Globals, TemplateError> {
    ctx.src.require_mapping(g, "`Globals.Function`")?;
    Ok(Globals {
        timeout: get(g, "Timeout").map(|n| timeout(ctx, n)).transpose()?,
        memory_size_mb: get(g, "MemorySize").map(|n| memory(ctx, n)).transpose()?,
        environment: environment(ctx, g)?,
        code_uri: get(g, "CodeUri").map(|n| code_uri(ctx, n)).transpose()?,
        handler: get(g, "Handler")
            .map(|n| text(ctx, n, "Handler"))
            .transpose()?,
    })
}

/// Reads one function; also returns the node that gave its name (for a
/// duplicate-name error).
fn read_function<'n>(
    ctx: &Context<'n>,
    res: &Resource<'n>,
    globals: &Globals,
) -> Result<(FunctionDef, &'n Node), TemplateError> {
    let src = &ctx.src;
    let props = res.props;
    let prop = |key: &str| props.and_then(|p| get(p, key));
    let (name, name_node) = match prop("FunctionName") {
        Some(n) => (text(ctx, n, "FunctionName")?, n),
        None => (res.id.to_owned(), res.key),
    };
    if name.is_empty() {
        return Err(src.error(name_node, "FunctionName must not be empty"));
    }
    let code_uri = match prop("CodeUri") {
        Some(n) => code_uri(ctx, n)?,
        None => globals.code_uri.clone().ok_or_else(|| {
            src.error(
                res.key,
                format!(
                    "function `{}` has no CodeUri; expected the path of its crate relative to the template's folder, such as `CodeUri: examples/order`",
                    res.id
                ),
            )
        })?,
    };
    let handler = match prop("Handler") {
        Some(n) => Some(text(ctx, n, "Handler")?),
        None => globals.handler.clone(),
    };
    let build_binary = res
        .metadata
        .and_then(|m| get(m, "BuildProperties"))
        .and_then(|b| get(b, "Binary"));
    let binary = match build_binary {
        Some(n) => text(ctx, n, "BuildProperties.Binary")?,
        None => handler
            .filter(|h| !h.is_empty() && h != "bootstrap")
            .unwrap_or_else(|| name.clone()),
    };
    let platform = match res.metadata.and_then(|m| get(m, "DurafnRole")) {
        None => None,
        Some(n) => match text(ctx, n, "Metadata.DurafnRole")?.as_str() {
            "dispatcher" => Some(PlatformRole::Dispatcher),
            "control" => Some(PlatformRole::Control),
            other => {
                return Err(src.error(
                    n,
                    format!("Metadata.DurafnRole must be `dispatcher` or `control`, got {other:?}"),
                ));
            }
        },
    };
    let concurrency = concurrency(ctx, prop("ReservedConcurrentExecutions"), res.metadata)?;
    let flow = super::flow::read_flow(ctx, res.metadata)?;
    let pause_on_failure = super::flow::pause_on_failure(ctx, res.metadata)?;
    let mut env = globals.environment.clone();
    if let Some(p) = props {
        env.extend(environment(ctx, p)?);
    }
    let events = match prop("Events") {
        Some(n) => events::read_events(ctx, n)?,
        None => Vec::new(),
    };
    let function = FunctionDef {
        logical_id: res.id.to_owned(),
        name,
        code_uri,
        binary,
        environment: env,
        timeout: match prop("Timeout") {
            Some(n) => timeout(ctx, n)?,
            None => globals.timeout.unwrap_or(DEFAULT_TIMEOUT),
        },
        memory_size_mb: match prop("MemorySize") {
            Some(n) => memory(ctx, n)?,
            None => globals.memory_size_mb.unwrap_or(DEFAULT_MEMORY_MB),
        },
        events,
        platform,
        concurrency,
        flow,
        pause_on_failure,
    };
    Ok((function, name_node))
}

/// A required text value (`what` names it in the error).
pub(super) fn text<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
) -> Result<String, TemplateError> {
    ctx.text(node)?.ok_or_else(|| {
        ctx.src.error(
            node,
            format!("{what} must be a string, got {}", ctx.src.describe(node)),
        )
    })
}

/// A whole number (an integer, a numeric string, or an expression that
/// resolves to one); `None` if `node` is something else.
pub(super) fn integer<'n>(ctx: &Context<'n>, node: &'n Node) -> Result<Option<i64>, TemplateError> {
    Ok(ctx.text(node)?.and_then(|t| t.trim().parse().ok()))
}

/// A whole number in `range`; the error says `what` must be `expected`.
pub(super) fn bounded<'n>(
    ctx: &Context<'n>,
    node: &'n Node,
    what: &str,
    range: std::ops::RangeInclusive<i64>,
    expected: &str,
) -> Result<i64, TemplateError> {
    let got = ctx.src.describe(node);
    match integer(ctx, node)? {
        None => Err(ctx
            .src
            .error(node, format!("{what} must be {expected}, got {got}"))),
        Some(n) if !range.contains(&n) => Err(ctx.src.error(
            node,
            format!(
                "{what} must be between {} and {}, got {n}",
                range.start(),
                range.end()
            ),
        )),
        Some(n) => Ok(n),
    }
}

fn timeout<'n>(ctx: &Context<'n>, node: &'n Node) -> Result<Duration, TemplateError> {
    let secs = bounded(
        ctx,
        node,
        "Timeout",
        1..=MAX_TIMEOUT_SECS,
        "a number of seconds",
    )?;
    Ok(Duration::from_secs(secs.unsigned_abs()))
}

fn memory<'n>(ctx: &Context<'n>, node: &'n Node) -> Result<u32, TemplateError> {
    let mb = bounded(
        ctx,
        node,
        "MemorySize",
        MEMORY_RANGE_MB,
        "a number of megabytes",
    )?;
    Ok(u32::try_from(mb).unwrap_or(DEFAULT_MEMORY_MB))
}

/// `ReservedConcurrentExecutions` and `Metadata.Durafn.{ConcurrencyKey, MaxPerKey}`.
fn concurrency<'n>(
    ctx: &Context<'n>,
    reserved: Option<&'n Node>,
    metadata: Option<&'n Node>,
) -> Result<Concurrency, TemplateError> {
    let reserved = match reserved {
        Some(n) => Some(bounded(
            ctx,
            n,
            "ReservedConcurrentExecutions",
            1..=100_000,
            "a number of executions",
        )?),
        None => None,
    };
    let durafn = metadata.and_then(|m| get(m, "Durafn"));
    let key = match durafn.and_then(|d| get(d, "ConcurrencyKey")) {
        Some(n) => {
            let k = text(ctx, n, "Metadata.Durafn.ConcurrencyKey")?;
            let path = k.strip_prefix("input.").unwrap_or(&k);
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(ctx.src.error(
                    n,
                    format!(
                        "Metadata.Durafn.ConcurrencyKey must name an input field, such as input.customer_id, got {k:?}"
                    ),
                ));
            }
            Some(k)
        }
        None => None,
    };
    let max_per_key = match durafn.and_then(|d| get(d, "MaxPerKey")) {
        Some(n) => bounded(
            ctx,
            n,
            "Metadata.Durafn.MaxPerKey",
            1..=100_000,
            "a number of executions",
        )?,
        None => 1,
    };
    Ok(Concurrency {
        reserved: reserved.and_then(|r| u32::try_from(r).ok()),
        key,
        max_per_key: u32::try_from(max_per_key).unwrap_or(1),
    })
}

fn code_uri<'n>(ctx: &Context<'n>, node: &'n Node) -> Result<String, TemplateError> {
    match ctx.text(node)? {
        Some(path) if !path.trim().is_empty() => Ok(path),
        _ => Err(ctx.src.error(
            node,
            format!(
                "CodeUri must be the path of the function's crate relative to the template's folder, got {}",
                ctx.src.describe(node)
            ),
        )),
    }
}

/// `Environment.Variables` of a function's properties (or of the globals).
fn environment<'n>(
    ctx: &Context<'n>,
    props: &'n Node,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut env = BTreeMap::new();
    let Some(e) = get(props, "Environment") else {
        return Ok(env);
    };
    ctx.src.require_mapping(e, "`Environment`")?;
    let Some(vars) = get(e, "Variables") else {
        return Ok(env);
    };
    ctx.src.require_mapping(vars, "`Environment.Variables`")?;
    for (key, _, value) in entries(vars) {
        let text = match ctx.text(value)? {
            Some(t) => t,
            None if is_null(value) => String::new(),
            None if ctx.intrinsic(value)?.is_some() => ctx.src.text_of(value),
            None => {
                return Err(ctx.src.error(
                    value,
                    format!(
                        "environment variable {key} must be a string, got {}",
                        ctx.src.describe(value)
                    ),
                ));
            }
        };
        env.insert(key.to_owned(), text);
    }
    Ok(env)
}
