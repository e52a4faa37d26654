//! Schedule expressions in AWS's syntax (EventBridge rules and EventBridge
//! Scheduler): `rate(5 minutes)`, `cron(0 12 * * ? *)`, `at(2030-01-01T09:00:00)`.
//!
//! This module validates an expression and keeps its parsed form; computing
//! fire times is the scheduler's job.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::cron::parse_cron;

/// A validated schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpr {
    /// `rate(<value> <unit>)`: fires every `every` (a whole number of
    /// minutes, hours or days).
    Rate {
        /// The period between two fires.
        every: Duration,
    },
    /// `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, AWS's
    /// six-field cron (UTC unless the event gives a time zone).
    ///
    /// Each field is kept as written, upper-cased (`JAN`, `MON-FRI`), in
    /// that order (see [`ScheduleExpr::CRON_FIELDS`]). Fields were checked
    /// for their ranges and allowed characters (`, - * / ? L W #`); exactly
    /// one of Day-of-month and Day-of-week is `?`; `L`, `W`, `#` and `?`
    /// items stand alone in their field. A range whose start is past its
    /// end wraps around (`FRI-MON`, `22-2`), except in Year.
    Cron {
        /// Minutes, Hours, Day-of-month, Month, Day-of-week, Year.
        fields: [String; 6],
    },
    /// `at(yyyy-mm-ddThh:mm:ss)`: fires once (EventBridge Scheduler only).
    At {
        /// The date and time as written, `yyyy-mm-ddThh:mm:ss`, already
        /// checked to be a real calendar date and time.
        at: String,
    },
}

/// Why a schedule expression is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule expression {expression:?}: {reason}")]
pub struct ScheduleExprError {
    /// The expression as given.
    pub expression: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl ScheduleExpr {
    /// The names of a cron expression's six fields, in order.
    pub const CRON_FIELDS: [&'static str; 6] = [
        "Minutes",
        "Hours",
        "Day-of-month",
        "Month",
        "Day-of-week",
        "Year",
    ];

    /// Parses and validates an expression in AWS's syntax.
    pub fn parse(expression: &str) -> Result<Self, ScheduleExprError> {
        let fail = |reason: String| ScheduleExprError {
            expression: expression.to_owned(),
            reason,
        };
        let e = expression.trim();
        let call = |prefix: &str| e.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(inner) = call("rate(") {
            parse_rate(inner).map_err(fail)
        } else if let Some(inner) = call("cron(") {
            parse_cron(inner).map_err(fail)
        } else if let Some(inner) = call("at(") {
            parse_at(inner.trim()).map_err(fail)
        } else {
            Err(fail(
                "expected `rate(<value> <unit>)`, `cron(<6 fields>)` or `at(yyyy-mm-ddThh:mm:ss)`"
                    .to_owned(),
            ))
        }
    }
}

impl FromStr for ScheduleExpr {
    type Err = ScheduleExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ScheduleExpr {
    /// Writes the expression back in AWS's syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rate { every } => {
                let secs = every.as_secs();
                let (value, unit) = if secs % 86_400 == 0 {
                    (secs / 86_400, "day")
                } else if secs % 3_600 == 0 {
                    (secs / 3_600, "hour")
                } else {
                    (secs / 60, "minute")
                };
                let plural = if value == 1 { "" } else { "s" };
                write!(f, "rate({value} {unit}{plural})")
            }
            Self::Cron { fields } => write!(f, "cron({})", fields.join(" ")),
            Self::At { at } => write!(f, "at({at})"),
        }
    }
}

fn parse_rate(inner: &str) -> Result<ScheduleExpr, String> {
    let expected = "expected `rate(<value> <unit>)` with a whole number and minute(s), hour(s) or day(s), such as `rate(5 minutes)`";
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(expected.to_owned());
    };
    let n: u64 = match value.parse() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Err(format!(
                "the value {value:?} is not a positive whole number; {expected}"
            ));
        }
    };
    let (singular, unit_secs) = match *unit {
        "minute" | "minutes" => ("minute", 60),
        "hour" | "hours" => ("hour", 3_600),
        "day" | "days" => ("day", 86_400),
        _ => {
            return Err(format!(
                "the unit {unit:?} is not minute(s), hour(s) or day(s)"
            ));
        }
    };
    let is_singular = *unit == singular;
    if n == 1 && !is_singular {
        return Err(format!(
            "a value of 1 takes the singular unit `{singular}`, not `{unit}`"
        ));
    }
    if n > 1 && is_singular {
        return Err(format!(
            "a value of {n} takes the plural unit `{singular}s`, not `{unit}`"
        ));
    }
    let secs = n
        .checked_mul(unit_secs)
        .ok_or_else(|| format!("the rate {n} {unit} is too large"))?;
    Ok(ScheduleExpr::Rate {
        every: Duration::from_secs(secs),
    })
}

fn parse_at(inner: &str) -> Result<ScheduleExpr, String> {
    let expected = "expected `at(yyyy-mm-ddThh:mm:ss)`, such as `at(2030-01-31T09:30:00)`";
    let b = inner.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(format!("{inner:?} is not a date and time; {expected}"));
    }
    let num = |from: usize, to: usize| -> u32 {
        b[from..to]
            .iter()
            .fold(0, |acc, c| acc * 10 + u32::from(c - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range 01-12; {expected}"));
    }
    let days = days_in_month(year, month);
    if day < 1 || day > days {
        return Err(format!(
            "day {day} is out of range 01-{days} for {year:04}-{month:02}; {expected}"
        ));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is not a valid time of day (00:00:00-23:59:59)"
        ));
    }
    Ok(ScheduleExpr::At {
        at: inner.to_owned(),
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
