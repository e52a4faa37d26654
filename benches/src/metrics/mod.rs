//! The metric groups. Each lives in its own module with a `METRICS` list and
//! an `async fn run(Scale, &mut Report)` that reports a figure or an error for
//! every metric in its list. To add a group: write the module, add a variant
//! here and to [`MetricGroup::ALL`].

mod cost;
mod ddb;
mod emulator;
mod group_commit;
mod idle_rss;
mod replay;
mod resume;
mod step_cost;
mod timers;

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
    /// Whole workflows through `durafn dev` with a real handler process.
    Emulator,
    /// Event sent → handler running again, through `durafn dev`.
    Resume,
    /// 10,000 timers due in the same second, in one process.
    Timers,
    /// The memory of `durafn dev` holding 100,000 suspended executions.
    IdleRss,
    /// One durable step against one raw conditional `PutItem`, on DynamoDB Local.
    Ddb,
}

impl MetricGroup {
    /// Every group, in the order they run.
    pub(crate) const ALL: [MetricGroup; 8] = [
        MetricGroup::StepCost,
        MetricGroup::Replay,
        MetricGroup::GroupCommit,
        MetricGroup::Emulator,
        MetricGroup::Resume,
        MetricGroup::Timers,
        MetricGroup::IdleRss,
        MetricGroup::Ddb,
    ];

    /// The name `--only` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetricGroup::StepCost => "step_cost",
            MetricGroup::Replay => "replay",
            MetricGroup::GroupCommit => "group_commit",
            MetricGroup::Emulator => "emulator",
            MetricGroup::Resume => "resume",
            MetricGroup::Timers => "timers",
            MetricGroup::IdleRss => "idle_rss",
            MetricGroup::Ddb => "ddb",
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
            MetricGroup::Emulator => emulator::METRICS,
            MetricGroup::Resume => resume::METRICS,
            MetricGroup::Timers => timers::METRICS,
            MetricGroup::IdleRss => idle_rss::METRICS,
            MetricGroup::Ddb => ddb::METRICS,
        }
    }

    /// Measures the group and reports its figures.
    pub(crate) async fn run(self, scale: Scale, report: &mut Report) {
        match self {
            MetricGroup::StepCost => step_cost::run(scale, report).await,
            MetricGroup::Replay => replay::run(scale, report).await,
            MetricGroup::GroupCommit => group_commit::run(scale, report).await,
            MetricGroup::Emulator => emulator::run(scale, report).await,
            MetricGroup::Resume => resume::run(scale, report).await,
            MetricGroup::Timers => timers::run(scale, report).await,
            MetricGroup::IdleRss => idle_rss::run(scale, report).await,
            MetricGroup::Ddb => ddb::run(scale, report).await,
        }
    }
}
