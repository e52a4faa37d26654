//! The metric groups. Each lives in its own module with a `METRICS` list and
//! an `async fn run(Scale, &mut Report)` that reports a figure or an error for
//! every metric in its list. To add a group: write the module, add a variant
//! here and to [`MetricGroup::ALL`].

mod group_commit;
mod replay;
mod step_cost;

use crate::Scale;
use crate::report::Report;

/// A group of metrics measured together (they share a setup or a floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricGroup {
    /// One durable step against one raw SQLite commit.
    StepCost,
    /// Replaying long journals.
    Replay,
    /// Concurrent steps sharing commits.
    GroupCommit,
}

impl MetricGroup {
    /// Every group, in the order they run.
    pub(crate) const ALL: [MetricGroup; 3] = [
        MetricGroup::StepCost,
        MetricGroup::Replay,
        MetricGroup::GroupCommit,
    ];

    /// The name `--only` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetricGroup::StepCost => "step_cost",
            MetricGroup::Replay => "replay",
            MetricGroup::GroupCommit => "group_commit",
        }
    }

    /// The group called `name`.
    pub(crate) fn named(name: &str) -> Option<MetricGroup> {
        MetricGroup::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The metrics the group reports.
    pub(crate) fn metrics(self) -> &'static [&'static str] {
        match self {
            MetricGroup::StepCost => step_cost::METRICS,
            MetricGroup::Replay => replay::METRICS,
            MetricGroup::GroupCommit => group_commit::METRICS,
        }
    }

    /// Measures the group and reports its figures.
    pub(crate) async fn run(self, scale: Scale, report: &mut Report) {
        match self {
            MetricGroup::StepCost => step_cost::run(scale, report).await,
            MetricGroup::Replay => replay::run(scale, report).await,
            MetricGroup::GroupCommit => group_commit::run(scale, report).await,
        }
    }
}
