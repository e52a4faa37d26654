//! The metric groups. Each lives in its own module with a `METRICS` list and
//! an `async fn run(Scale, &mut Report)` that reports a figure or an error for
//! every metric in its list. To add a group: write the module, add a variant
//! here and to [`Group::ALL`].

mod group_commit;
mod replay;
mod step_cost;

use crate::Scale;
use crate::report::Report;

/// A group of metrics measured together (they share a setup or a floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// One durable step against one raw SQLite commit.
    StepCost,
    /// Replaying long journals.
    Replay,
    /// Concurrent steps sharing commits.
    GroupCommit,
}

impl Group {
    /// Every group, in the order they run.
    pub(crate) const ALL: [Group; 3] = [Group::StepCost, Group::Replay, Group::GroupCommit];

    /// The name `--only` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::StepCost => "step_cost",
            Group::Replay => "replay",
            Group::GroupCommit => "group_commit",
        }
    }

    /// The group called `name`.
    pub(crate) fn named(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The metrics the group reports.
    pub(crate) fn metrics(self) -> &'static [&'static str] {
        match self {
            Group::StepCost => step_cost::METRICS,
            Group::Replay => replay::METRICS,
            Group::GroupCommit => group_commit::METRICS,
        }
    }

    /// Measures the group and reports its figures.
    pub(crate) async fn run(self, scale: Scale, report: &mut Report) {
        match self {
            Group::StepCost => step_cost::run(scale, report).await,
            Group::Replay => replay::run(scale, report).await,
            Group::GroupCommit => group_commit::run(scale, report).await,
        }
    }
}
