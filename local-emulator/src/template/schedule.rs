//! Schedule expressions in AWS's syntax (EventBridge rules and EventBridge
//! Scheduler): `rate(5 minutes)`, `cron(0 12 * * ? *)`, `at(2030-01-01T09:00:00)`,
//! checked by the runtime's parser ([`ScheduleSpec`]), which the scheduler
//! also uses to compute fire times.

use std::fmt;
use std::str::FromStr;

use durafn_runtime::trigger::schedule::ScheduleSpec;

/// A validated schedule expression (in UTC: the event's time zone is kept
/// beside it and checked when the schedules start).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleExpr(ScheduleSpec);

// `ScheduleSpec`'s equality is structural over `Eq` parts.
impl Eq for ScheduleExpr {}

/// Why a schedule expression is invalid: the expression, what is wrong and
/// what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleExprError(String);

impl ScheduleExpr {
    /// Parses and validates an expression in AWS's syntax.
    pub fn parse(expression: &str) -> Result<Self, ScheduleExprError> {
        ScheduleSpec::parse(expression, None)
            .map(Self)
            .map_err(|e| ScheduleExprError(e.to_string()))
    }

    /// The parsed expression (in UTC).
    pub fn spec(&self) -> &ScheduleSpec {
        &self.0
    }
}

impl FromStr for ScheduleExpr {
    type Err = ScheduleExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ScheduleExpr {
    /// The expression as written (without surrounding spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.expression())
    }
}
