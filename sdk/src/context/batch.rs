//! `ctx.parallel` and `ctx.map`: branches in child contexts, with a
//! concurrency limit and completion rules, results in input order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use durafn_runtime::model::{ErrorObject, OpKind, OpStatus};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::child::ended;
use super::{DurableContext, Opened};
use crate::codec;
use crate::error::DurableError;
use crate::replay::batch::{Completion, CompletionReason};

/// One branch of [`DurableContext::parallel`]: made with [`Branch::new`].
pub struct Branch<'a, T> {
    run: Box<dyn FnOnce(DurableContext) -> BoxFuture<'a, Result<T, DurableError>> + Send + 'a>,
}

impl<'a, T> Branch<'a, T> {
    /// A branch running `body` in its own child context.
    pub fn new<F, Fut>(body: F) -> Self
    where
        F: FnOnce(DurableContext) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, DurableError>> + Send + 'a,
    {
        Branch {
            run: Box::new(move |ctx| Box::pin(body(ctx))),
        }
    }
}

/// How one branch ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchItem<T> {
    /// It returned a value.
    Succeeded {
        /// The value.
        value: T,
    },
    /// It failed.
    Failed {
        /// The error.
        error: ErrorObject,
    },
    /// The batch completed before it ended (or started).
    NotRun,
}

/// The outcome of a `parallel` or `map`: one item per input, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult<T> {
    /// Per-branch outcomes, in input order.
    pub items: Vec<BatchItem<T>>,
    /// Why the batch completed.
    pub completion_reason: CompletionReason,
}

impl<T> BatchResult<T> {
    /// The values of the branches that succeeded, in input order.
    pub fn values(&self) -> Vec<&T> {
        self.items
            .iter()
            .filter_map(|i| match i {
                BatchItem::Succeeded { value } => Some(value),
                _ => None,
            })
            .collect()
    }

    /// How many branches succeeded.
    pub fn succeeded(&self) -> usize {
        self.values().len()
    }

    /// The errors of the branches that failed, with their input index.
    pub fn errors(&self) -> Vec<(usize, &ErrorObject)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(n, i)| match i {
                BatchItem::Failed { error } => Some((n, error)),
                _ => None,
            })
            .collect()
    }

    /// Every value in input order, or an error if the batch exceeded its
    /// failure tolerance or any branch did not succeed.
    pub fn into_values(self) -> Result<Vec<T>, DurableError> {
        let mut out = Vec::with_capacity(self.items.len());
        for (n, item) in self.items.into_iter().enumerate() {
            match item {
                BatchItem::Succeeded { value } => out.push(value),
                BatchItem::Failed { error } => {
                    return Err(DurableError::new(
                        error.error_type.clone(),
                        format!("branch {n} failed: {}", error.message),
                    ));
                }
                BatchItem::NotRun => {
                    return Err(DurableError::new(
                        "NotRun",
                        format!("branch {n} did not run"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A `parallel` or `map` being built; a future.
#[must_use = "a batch does nothing until it is awaited"]
pub struct Batch<'a, T> {
    parts: Option<BatchParts<'a, T>>,
    running: Option<BoxFuture<'a, Result<BatchResult<T>, DurableError>>>,
}

struct BatchParts<'a, T> {
    ctx: DurableContext,
    /// `PARALLEL` or `MAP`.
    kind: OpKind,
    opened: Opened,
    name: String,
    branches: Vec<Branch<'a, T>>,
    max_concurrency: Option<usize>,
    completion: Completion,
}

impl DurableContext {
    /// Runs `branches`, each in its own child context (`<id>.1`, `<id>.2`, ...).
    /// Branches that finished are not run again on replay. Recorded as a
    /// `PARALLEL` operation with one `CHILD` operation per branch under it.
    pub fn parallel<'a, T>(&self, name: &str, branches: Vec<Branch<'a, T>>) -> Batch<'a, T>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        self.batch(OpKind::Parallel, name, branches)
    }

    fn batch<'a, T>(&self, kind: OpKind, name: &str, branches: Vec<Branch<'a, T>>) -> Batch<'a, T>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        Batch {
            parts: Some(BatchParts {
                ctx: self.clone(),
                kind,
                opened: self.open(kind, name),
                name: name.to_string(),
                branches,
                max_concurrency: None,
                completion: Completion::all(),
            }),
            running: None,
        }
    }

    /// Runs `f` over `items`, each call in its own child context; results in
    /// input order. Recorded as a `MAP` operation with one `CHILD` operation
    /// per item under it.
    pub fn map<'a, I, T, F, Fut>(&self, name: &str, items: Vec<I>, f: F) -> Batch<'a, T>
    where
        I: Send + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
        F: Fn(DurableContext, I, usize) -> Fut + Send + Sync + Clone + 'a,
        Fut: Future<Output = Result<T, DurableError>> + Send + 'a,
    {
        let branches = items
            .into_iter()
            .enumerate()
            .map(|(n, item)| {
                let f = f.clone();
                Branch::new(move |ctx| f(ctx, item, n))
            })
            .collect();
        self.batch(OpKind::Map, name, branches)
    }
}

impl<T> Batch<'_, T> {
    /// Runs at most `n` branches at once (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.max_concurrency = Some(n);
        }
        self
    }

    /// When the batch completes (default: all must succeed).
    pub fn completion(mut self, c: Completion) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.completion = c;
        }
        self
    }
}

impl<'a, T> Future for Batch<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'a,
{
    type Output = Result<BatchResult<T>, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(parts) = this.parts.take() {
            this.running = Some(Box::pin(parts.run()));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<'a, T> BatchParts<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'a,
{
    async fn run(self) -> Result<BatchResult<T>, DurableError> {
        let BatchParts {
            ctx,
            kind,
            opened,
            name,
            branches,
            max_concurrency,
            completion,
        } = self;
        if max_concurrency == Some(0) {
            return Err(DurableError::Invalid(format!(
                "{name:?}: max_concurrency must be at least 1"
            )));
        }
        let Opened { id, record } = opened;
        let Ok(record) = record else {
            return ctx.park(None).await;
        };
        let what = format!("batch {name:?} result");
        if let Some(rec) = record.filter(|r| r.status.is_final()) {
            return match rec.status {
                OpStatus::Succeeded => codec::decode(&what, rec.result.unwrap_or_default()),
                _ => Err(DurableError::ChildFailed {
                    op_id: id,
                    name,
                    error: rec
                        .error
                        .unwrap_or_else(|| ErrorObject::new("BatchFailed", "failed")),
                }),
            };
        }
        let started = ctx.clock_now();
        let batch_ctx = ctx.nested(&id);
        let total = branches.len();
        // Every branch's id is claimed now, in input order.
        let mut pending: Vec<_> = branches
            .into_iter()
            .enumerate()
            .map(|(n, b)| {
                let child = batch_ctx.child(&format!("{name}[{n}]"), move |c| (b.run)(c));
                Box::pin(async move { (n, child.await) })
                    as BoxFuture<'a, (usize, Result<T, DurableError>)>
            })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let limit = max_concurrency.unwrap_or(usize::MAX);
        let mut items: Vec<BatchItem<T>> = (0..total).map(|_| BatchItem::NotRun).collect();
        let (mut ok, mut failed) = (0, 0);
        let mut running = FuturesUnordered::new();
        let mut reason = completion.check(total, 0, 0);
        while reason.is_none() {
            while running.len() < limit {
                match pending.pop() {
                    Some(f) => running.push(f),
                    None => break,
                }
            }
            let Some((n, outcome)) = running.next().await else {
                break;
            };
            match outcome {
                Ok(value) => {
                    ok += 1;
                    items[n] = BatchItem::Succeeded { value };
                }
                Err(DurableError::ContinueAsNew(input)) => {
                    return Err(DurableError::ContinueAsNew(input));
                }
                Err(e) => {
                    failed += 1;
                    items[n] = BatchItem::Failed {
                        error: match e {
                            DurableError::ChildFailed { error, .. } => error,
                            other => other.to_error_object(),
                        },
                    };
                }
            }
            reason = completion.check(total, ok, failed);
        }
        drop(running);
        let result = BatchResult {
            items,
            completion_reason: reason.unwrap_or(CompletionReason::AllCompleted),
        };
        let encoded = codec::encode(&what, &result, ctx.payload_limit())?;
        let written = ctx
            .checkpoint(ended(
                kind,
                &id,
                &name,
                Ok(encoded),
                started,
                ctx.clock_now(),
            ))
            .await;
        codec::decode(&what, written.result.unwrap_or_default())
    }
}
