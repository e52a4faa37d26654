//! The workflows the benchmarks run, written as a user would, through the
//! public SDK. Each counts the step bodies it runs so a benchmark can check
//! that what it timed is what it meant to time (e.g. a replay ran no bodies).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use durafn::prelude::*;
use durafn_runtime::model::{OpKind, OpStatus, Operation};
use serde::{Deserialize, Serialize};

use crate::measure::{Result, join_all};

/// The name every benchmark step has.
pub(crate) const STEP_NAME: &str = "work";

/// What each step returns: a small JSON object. With it an operation record
/// weighs about [`crate::floor::ROW_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepResult {
    /// The step's 1-based position (equal to its operation id).
    pub(crate) seq: u64,
    /// Filler, so the record has a realistic size.
    pub(crate) note: String,
}

impl StepResult {
    /// The result of the `seq`-th step.
    pub(crate) fn new(seq: u64) -> Self {
        StepResult {
            seq,
            note: "a small result, as most steps return: an id or a status".into(),
        }
    }
}

/// Counts the step bodies a workflow ran.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyCount(Arc<AtomicU64>);

impl BodyCount {
    /// How many bodies ran so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The sum of `seq` over steps `1..=n`: the output of both workflows.
pub(crate) fn expected_output(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// Input `n`: runs `n` steps one after another, each returning
/// [`StepResult`]; outputs the sum of their `seq`.
pub(crate) fn sequential_steps(bodies: BodyCount) -> Handler {
    durafn::handler(move |ctx: DurableContext, n: u64| {
        let bodies = bodies.clone();
        async move {
            let mut sum = 0;
            for seq in 1..=n {
                let bodies = bodies.clone();
                let r: StepResult = ctx
                    .step(STEP_NAME, move |_| async move {
                        bodies.bump();
                        Ok::<_, DurableError>(StepResult::new(seq))
                    })
                    .await?;
                sum += r.seq;
            }
            Ok::<_, DurableError>(sum)
        }
    })
}

/// Input `n`: creates `n` steps and awaits them together, so their
/// checkpoints are written concurrently; outputs the sum of their `seq`.
pub(crate) fn parallel_steps(bodies: BodyCount) -> Handler {
    durafn::handler(move |ctx: DurableContext, n: u64| {
        let bodies = bodies.clone();
        async move {
            let steps = (1..=n).map(|seq| {
                let bodies = bodies.clone();
                ctx.step(STEP_NAME, move |_| async move {
                    bodies.bump();
                    Ok::<_, DurableError>(StepResult::new(seq))
                })
            });
            let mut sum = 0;
            for r in join_all(steps).await {
                let r: StepResult = r?;
                sum += r.seq;
            }
            Ok::<_, DurableError>(sum)
        }
    })
}

/// The record a successful first attempt of the `seq`-th step leaves, as the
/// SDK would write it.
pub(crate) fn completed_step(seq: u64, at: Timestamp) -> Result<Operation> {
    Ok(Operation {
        id: seq.to_string(),
        kind: OpKind::Step,
        name: STEP_NAME.into(),
        status: OpStatus::Succeeded,
        attempt: 1,
        result: Some(serde_json::to_value(StepResult::new(seq))?),
        error: None,
        started_at: at,
        ended_at: Some(at),
        wake_at: None,
        rev: 1,
    })
}
