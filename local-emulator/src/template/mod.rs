//! Reading `template.yaml` (AWS SAM): the functions, their events and the
//! table.
//!
//! `durafn dev` runs the same template that deploys the functions to AWS.
//! This module reads what the emulator needs from it and ignores the rest
//! (unknown resource types and properties are AWS-only details):
//!
//! - every `AWS::Serverless::Function`, with `Globals.Function` applied
//!   (`Timeout`, `MemorySize`, `Environment`, `CodeUri`, `Handler`);
//! - their `HttpApi`, `SQS`, `Schedule` and `ScheduleV2` events (other event
//!   types are kept as [`EventKind::Other`]);
//! - the first `AWS::DynamoDB::Table` / `AWS::Serverless::SimpleTable`.
//!
//! CloudFormation intrinsic functions are resolved where that can be done
//! locally: `!Ref` to a resource gives its name (`TableName`, `QueueName`,
//! `FunctionName`, else the logical id), `!Ref` to a parameter gives its
//! `Default`, `!Sub` substitutes those and leaves pseudo parameters such as
//! `${AWS::Region}` as written, `!Join` joins resolved parts. Anything else
//! is kept as the text written in the template.
//!
//! Errors always name the file, line and column, what is wrong and what is
//! expected: `template.yaml:14:7: Timeout must be a number of seconds, got "ten"`.

mod events;
mod flow;
mod functions;
mod resolve;
mod schedule;
#[cfg(test)]
mod tests;
mod yaml;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use schedule::{ScheduleExpr, ScheduleExprError};

use resolve::Context;
use yaml::{Source, get};

/// What the emulator needs from a SAM template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The `AWS::Serverless::Function` resources, in template order, with
    /// `Globals.Function` applied.
    pub functions: Vec<FunctionDef>,
    /// The first DynamoDB table of the template, if any.
    pub table: Option<TableDef>,
}

impl Template {
    /// The function whose name (`FunctionName`, else logical id) is `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// An `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    /// The resource's logical id, such as `OrderFunction`.
    pub logical_id: String,
    /// The `FunctionName` property, else the logical id. Unique in a template.
    pub name: String,
    /// `CodeUri`: the function's crate, relative to the template's folder.
    pub code_uri: String,
    /// The Rust binary to run: `Metadata.BuildProperties.Binary` (cargo
    /// lambda's setting), else `Handler` (unless it is the conventional
    /// `bootstrap`), else the function's name.
    pub binary: String,
    /// `Environment.Variables` (globals first, then the function's own),
    /// with intrinsic functions resolved where possible.
    pub environment: BTreeMap<String, String>,
    /// `Timeout` (3 s when neither the function nor the globals set it).
    pub timeout: Duration,
    /// `MemorySize` in MB (128 when not set).
    pub memory_size_mb: u32,
    /// The function's `Events`, in template order.
    pub events: Vec<EventDef>,
    /// `Metadata.DurafnRole`: set on the platform's own functions, which run
    /// only under `durafn dev --aws` (locally the emulator plays their part).
    pub platform: Option<PlatformRole>,
    /// Concurrency limits: `ReservedConcurrentExecutions` and
    /// `Metadata.Durafn.ConcurrencyKey` / `MaxPerKey`.
    pub concurrency: Concurrency,
    /// Flow control: `Metadata.Durafn.{Throttle, Debounce, Batch}`.
    pub flow: durafn_runtime::dispatch::FlowControl,
    /// `Metadata.Durafn.PauseOnFailure`: a step whose retries run out pauses
    /// the execution instead of failing it.
    pub pause_on_failure: bool,
}

/// A function's concurrency limits (`docs/self-hosting-scylla.md`, "Limits").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concurrency {
    /// `ReservedConcurrentExecutions`: at most this many executions in
    /// progress at once (started and not ended); more wait as `PENDING`.
    pub reserved: Option<u32>,
    /// `Metadata.Durafn.ConcurrencyKey`, e.g. `input.customer_id`: the input
    /// field whose value keys the limit below.
    pub key: Option<String>,
    /// `Metadata.Durafn.MaxPerKey` (default 1): at most this many
    /// executions in progress per key value.
    pub max_per_key: u32,
}

/// One of the platform's own functions on AWS (`Metadata.DurafnRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformRole {
    /// `dispatcher`: claims due executions and invokes their functions.
    Dispatcher,
    /// `control`: the REST API and UI.
    Control,
}

/// One entry of a function's `Events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDef {
    /// The event's logical key under `Events`.
    pub name: String,
    /// The line of that key in the template (1-based).
    pub line: usize,
    /// What triggers the function.
    pub kind: EventKind,
}

/// The trigger an event describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// An API Gateway HTTP API route (`Type: HttpApi`).
    HttpApi {
        /// The upper-case HTTP method, or `ANY`.
        method: String,
        /// The route path, such as `/orders/{id}`.
        path: String,
    },
    /// An SQS queue (`Type: SQS`).
    Sqs {
        /// The queue's name: its `QueueName`, else its logical id (or the
        /// last part of a literal queue ARN).
        queue: String,
        /// `BatchSize` (default 10).
        batch_size: u32,
        /// The queue's `RedrivePolicy.maxReceiveCount`, if it has one.
        max_receive_count: Option<u32>,
        /// The queue's `VisibilityTimeout` (default 30 s).
        visibility_timeout: Duration,
        /// The name of the queue's dead-letter queue, if it has one.
        dead_letter_queue: Option<String>,
    },
    /// A schedule (`Type: Schedule`, an EventBridge rule, or `Type:
    /// ScheduleV2`, EventBridge Scheduler).
    Schedule {
        /// The validated expression.
        expression: ScheduleExpr,
        /// `ScheduleExpressionTimezone` (ScheduleV2), such as `Europe/Paris`.
        timezone: Option<String>,
        /// `State: ENABLED|DISABLED` or `Enabled: true|false` (default enabled).
        enabled: bool,
        /// The schedule's `Name`, if given.
        name: Option<String>,
        /// `Input` (ScheduleV2): the JSON text EventBridge Scheduler sends
        /// the function, `<aws.scheduler.*>` context attributes unexpanded.
        input: Option<String>,
    },
    /// Any other event type: kept, but not run by the emulator.
    Other {
        /// The event's `Type`, such as `S3`.
        event_type: String,
    },
}

/// The table the store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The resource's logical id, such as `DurafnTable`.
    pub logical_id: String,
    /// Its `TableName`, else the logical id.
    pub table_name: String,
}

/// Why a template could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{file}: cannot read the template: {source}")]
    Read {
        /// The template's path.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The template's path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the YAML parser found.
        message: String,
    },
    /// The YAML is valid but the template is not.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The template's path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl TemplateError {
    /// The 1-based line of the error (none for [`TemplateError::Read`]).
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. } | Self::Invalid { line, .. } => Some(*line),
        }
    }

    /// The 1-based column of the error (none for [`TemplateError::Read`]).
    pub fn column(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { column, .. } | Self::Invalid { column, .. } => Some(*column),
        }
    }
}

/// Reads and checks the template at `path`. Errors name the file as `path`
/// is written.
pub fn load(path: &Path) -> Result<Template, TemplateError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(source) => Err(TemplateError::Read { file, source }),
    }
}

/// Reads and checks a template's text; `file` is the name errors show.
pub fn parse(text: &str, file: &str) -> Result<Template, TemplateError> {
    let src = Source { file, text };
    let Some(root) = src.load()? else {
        return Err(TemplateError::Invalid {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: "the template is empty; expected a mapping with a `Resources` section"
                .to_owned(),
        });
    };
    src.require_mapping(&root, "the template")?;
    let resources = get(&root, "Resources").ok_or_else(|| {
        src.error(
            &root,
            "the template has no `Resources` section; expected a mapping of logical ids to resources",
        )
    })?;
    src.require_mapping(resources, "`Resources`")?;
    let ctx = Context::new(src, &root, resources)?;
    let table = ctx
        .resources
        .iter()
        .find(|r| {
            matches!(
                r.ty,
                "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable"
            )
        })
        .map(|r| {
            Ok::<_, TemplateError>(TableDef {
                logical_id: r.id.to_owned(),
                table_name: ctx.resource_name(r)?,
            })
        })
        .transpose()?;
    let functions = functions::read_functions(&ctx, get(&root, "Globals"))?;
    Ok(Template { functions, table })
}
