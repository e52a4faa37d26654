//! Schedules: `rate(...)`, `cron(...)` (AWS's six fields) and one-shot `at(...)`,
//! in a time zone.
//!
//! - [`ScheduleSpec`]: a parsed expression and its time zone; pure next-fire
//!   computation ([`ScheduleSpec::next_after`]), no clock, no I/O.
//! - [`Scheduler`]: keeps schedule records in the [`Store`](crate::store::Store)
//!   and fires the due ones, each fire starting exactly one execution
//!   ([`fire_id`]), whatever the number of schedulers sharing the store.
//!
//! Time zones come from the IANA database bundled with the binary; daylight
//! saving time follows EventBridge Scheduler (a local time skipped by a
//! spring-forward does not fire; one repeated by a fall-back fires once).

mod cron;
mod next;
mod scheduler;

use std::fmt;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

pub use crate::model::validate_schedule_name as validate_name;
pub use scheduler::{FireOutcome, ScheduleDef, Scheduler, SchedulerConfig, TickReport};

/// The kind of a schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Rate { every_ms: i64 },
    Cron(Box<cron::Cron>),
    At(DateTime),
}

/// A schedule expression with its time zone, ready to compute fire times.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    text: String,
    timezone: Option<String>,
    tz: TimeZone,
    expr: Expr,
}

impl ScheduleSpec {
    /// Parses `rate(5 minutes)`, `cron(0 3 * * ? *)` or
    /// `at(2030-01-31T09:30:00)`, with an IANA time zone name (UTC when
    /// `None`; `rate` ignores it).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<ScheduleSpec> {
        let bad = |why: String| {
            StoreError::Invalid(format!("invalid schedule expression {expression:?}: {why}"))
        };
        let e = expression.trim();
        let call = |p: &str| e.strip_prefix(p).and_then(|r| r.strip_suffix(')'));
        let expr = if let Some(inner) = call("rate(") {
            Expr::Rate {
                every_ms: parse_rate(inner).map_err(bad)?,
            }
        } else if let Some(inner) = call("cron(") {
            Expr::Cron(Box::new(cron::Cron::parse(inner).map_err(bad)?))
        } else if let Some(inner) = call("at(") {
            Expr::At(parse_at(inner.trim()).map_err(bad)?)
        } else {
            return Err(bad(
                "expected `rate(<value> <unit>)`, `cron(<6 fields>)` or `at(yyyy-mm-ddThh:mm:ss)`"
                    .into(),
            ));
        };
        let tz = match timezone.filter(|t| !t.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|err| {
                StoreError::Invalid(format!(
                    "unknown time zone {name:?} (use an IANA name such as Europe/Paris): {err}"
                ))
            })?,
        };
        Ok(ScheduleSpec {
            text: e.to_string(),
            timezone: timezone.filter(|t| !t.is_empty()).map(str::to_string),
            tz,
            expr,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.text
    }

    /// The time zone name, if one was given.
    pub fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    /// True for a one-shot `at(...)`.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.expr, Expr::At(_))
    }

    /// The first fire strictly after `after`; `None` when there is none (a
    /// one-shot in the past, a cron whose years are over). `anchor` is when
    /// a `rate` schedule started: it fires at `anchor + k × rate`, `k ≥ 1`.
    pub fn next_after(&self, after: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        match &self.expr {
            Expr::Rate { every_ms } => {
                let every = (*every_ms).max(1);
                let k = if after.0 < anchor.0 {
                    1
                } else {
                    (after.0 - anchor.0).div_euclid(every) + 1
                };
                Some(Timestamp(anchor.0.checked_add(k.checked_mul(every)?)?))
            }
            Expr::Cron(c) => {
                next::next_cron(c, &self.tz, to_jiff(after)?).map(|t| Timestamp(t.as_millisecond()))
            }
            Expr::At(dt) => next::resolve_once(&self.tz, *dt)
                .map(|t| Timestamp(t.as_millisecond()))
                .filter(|t| *t > after),
        }
    }

    /// Every fire in `(after, until]`, at most `max` of them, in order.
    pub fn fires_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        anchor: Timestamp,
        max: usize,
    ) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < max {
            match self.next_after(t, anchor) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

impl fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.timezone {
            Some(tz) => write!(f, "{} ({tz})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

fn to_jiff(t: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(t.0).ok()
}

/// `rate(<value> <unit>)`: the period in milliseconds. As in AWS, a value
/// of 1 takes the singular unit and larger values the plural one.
fn parse_rate(inner: &str) -> std::result::Result<i64, String> {
    let expected = "expected `rate(<value> <unit>)` with a whole number and minute(s), hour(s) or day(s), such as `rate(5 minutes)`";
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(expected.into());
    };
    let n: i64 = value
        .parse()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("the value {value:?} is not a positive whole number; {expected}"))?;
    let (singular, unit_ms): (&str, i64) = match *unit {
        "minute" | "minutes" => ("minute", 60_000),
        "hour" | "hours" => ("hour", 3_600_000),
        "day" | "days" => ("day", 86_400_000),
        _ => {
            return Err(format!(
                "the unit {unit:?} is not minute(s), hour(s) or day(s)"
            ));
        }
    };
    match (n, *unit == singular) {
        (1, false) => {
            return Err(format!(
                "a value of 1 takes the singular unit `{singular}`, not `{unit}`"
            ));
        }
        (2.., true) => {
            return Err(format!(
                "a value of {n} takes the plural unit `{singular}s`, not `{unit}`"
            ));
        }
        _ => {}
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("the rate {n} {unit} is too large"))
}

/// `at(yyyy-mm-ddThh:mm:ss)`: a real calendar date and time, in exactly
/// that form.
fn parse_at(inner: &str) -> std::result::Result<DateTime, String> {
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
    let num = |from: usize, to: usize| -> i16 {
        b[from..to]
            .iter()
            .fold(0, |acc, c| acc * 10 + i16::from(c - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let month = i8::try_from(month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| format!("month {month} is out of range 01-12; {expected}"))?;
    let days = jiff::civil::Date::new(year, month, 1)
        .map_err(|e| format!("{inner:?} is not a date and time ({e}); {expected}"))?
        .days_in_month();
    let day = i8::try_from(day)
        .ok()
        .filter(|d| (1..=days).contains(d))
        .ok_or_else(|| {
            format!("day {day} is out of range 01-{days} for {year:04}-{month:02}; {expected}")
        })?;
    let time = |v: i16, max: i16| i8::try_from(v).ok().filter(|_| v <= max);
    let (Some(h), Some(m), Some(s)) = (time(hour, 23), time(minute, 59), time(second, 59)) else {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is not a valid time of day (00:00:00-23:59:59)"
        ));
    };
    DateTime::new(year, month, day, h, m, s, 0)
        .map_err(|e| format!("{inner:?} is not a date and time ({e}); {expected}"))
}

/// A fire time in UTC as it appears in execution ids: `yyyymmddThhmmssZ`.
pub fn fire_time_text(t: Timestamp) -> String {
    match to_jiff(t) {
        Some(ts) => ts.strftime("%Y%m%dT%H%M%SZ").to_string(),
        None => format!("{}ms", t.0),
    }
}

/// A fire time in RFC 3339 (UTC), as scheduled executions receive it.
pub fn fire_time_rfc3339(t: Timestamp) -> String {
    match to_jiff(t) {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{}ms", t.0),
    }
}

/// The execution a schedule's fire starts: `<schedule name>:<yyyymmddThhmmssZ>`.
/// Every scheduler computes the same id for the same fire, so creating it is
/// idempotent: a fire starts exactly one execution.
pub fn fire_id(schedule: &str, fire_at: Timestamp) -> Result<ExecutionId> {
    ExecutionId::new(format!("{schedule}:{}", fire_time_text(fire_at)))
}

/// A duration in milliseconds (saturating).
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
