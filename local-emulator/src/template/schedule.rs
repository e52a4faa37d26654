//! Schedule expressions in AWS's syntax (EventBridge rules and EventBridge
//! Scheduler): `rate(5 minutes)`, `cron(0 12 * * ? *)`, `at(2030-01-01T09:00:00)`.
//!
//! This module validates an expression and keeps its parsed form; computing
//! fire times is the scheduler's job.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
        _ => return Err(format!("the value {value:?} is not a positive whole number; {expected}")),
    };
    let (singular, unit_secs) = match *unit {
        "minute" | "minutes" => ("minute", 60),
        "hour" | "hours" => ("hour", 3_600),
        "day" | "days" => ("day", 86_400),
        _ => return Err(format!("the unit {unit:?} is not minute(s), hour(s) or day(s)")),
    };
    let is_singular = *unit == singular;
    if n == 1 && !is_singular {
        return Err(format!("a value of 1 takes the singular unit `{singular}`, not `{unit}`"));
    }
    if n > 1 && is_singular {
        return Err(format!("a value of {n} takes the plural unit `{singular}s`, not `{unit}`"));
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

/// What one cron field accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values `min..`, in order (months, week days).
    names: &'static [&'static str],
    /// The special characters allowed besides digits and names.
    specials: &'static str,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEK_DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 6] = [
    FieldSpec { name: "Minutes", min: 0, max: 59, names: &[], specials: ",-*/" },
    FieldSpec { name: "Hours", min: 0, max: 23, names: &[], specials: ",-*/" },
    FieldSpec { name: "Day-of-month", min: 1, max: 31, names: &[], specials: ",-*/?LW" },
    FieldSpec { name: "Month", min: 1, max: 12, names: MONTHS, specials: ",-*/" },
    FieldSpec { name: "Day-of-week", min: 1, max: 7, names: WEEK_DAYS, specials: ",-*?L#" },
    FieldSpec { name: "Year", min: 1970, max: 2199, names: &[], specials: ",-*/" },
];
const DOM: usize = 2;
const DOW: usize = 4;

fn parse_cron(inner: &str) -> Result<ScheduleExpr, String> {
    let parts: Vec<String> = inner.split_whitespace().map(str::to_ascii_uppercase).collect();
    let Ok(fields) = <[String; 6]>::try_from(parts) else {
        let n = inner.split_whitespace().count();
        return Err(format!(
            "a cron expression has 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), got {n}"
        ));
    };
    for (spec, field) in FIELDS.iter().zip(&fields) {
        check_field(spec, field).map_err(|why| format!("{} field {field:?}: {why}", spec.name))?;
    }
    match (fields[DOM] == "?", fields[DOW] == "?") {
        (true, true) => Err("Day-of-month and Day-of-week cannot both be `?`; give one of them a value".to_owned()),
        (false, false) => Err(format!(
            "one of Day-of-month ({:?}) and Day-of-week ({:?}) must be `?`",
            fields[DOM], fields[DOW]
        )),
        _ => Ok(ScheduleExpr::Cron { fields }),
    }
}

fn check_field(spec: &FieldSpec, field: &str) -> Result<(), String> {
    if let Some(c) = field
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !spec.specials.contains(*c))
    {
        return Err(format!("`{c}` is not allowed here (allowed: digits{}{})",
            if spec.names.is_empty() { "" } else { ", names" },
            spec.specials.chars().map(|c| format!(" {c}")).collect::<String>()));
    }
    let items: Vec<&str> = field.split(',').collect();
    let special = |i: &&str| i.contains(['?', 'L', 'W', '#']) && !is_name(spec, i);
    if items.len() > 1 && items.iter().any(special) {
        return Err("`?`, `L`, `W` and `#` must be used alone, not in a list".to_owned());
    }
    items.iter().try_for_each(|item| check_item(spec, item))
}

/// Whether `item` is one of the field's names (a name like `WED` contains
/// letters that are special characters elsewhere).
fn is_name(spec: &FieldSpec, item: &str) -> bool {
    item.split(['-', '/']).all(|part| spec.names.contains(&part))
}

fn check_item(spec: &FieldSpec, item: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err("empty list item".to_owned());
    }
    if item == "*" || item == "?" {
        return Ok(());
    }
    if spec.specials.contains('L') && !is_name(spec, item) {
        if item == "L" || (spec.specials.contains('W') && item == "LW") {
            return Ok(());
        }
        if let Some(day) = item.strip_suffix('W').filter(|_| spec.specials.contains('W')) {
            return value(spec, day).map(drop);
        }
        if let Some(day) = item.strip_suffix('L') {
            return value(spec, day).map(drop);
        }
    }
    if let Some((day, nth)) = item.split_once('#') {
        value(spec, day)?;
        return match nth.parse::<u32>() {
            Ok(1..=5) => Ok(()),
            _ => Err(format!("`#{nth}` must be a week number from 1 to 5, as in `3#2`")),
        };
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(s) if s >= 1 && s <= spec.max && step.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("the increment {step:?} must be a number from 1 to {}", spec.max)),
        }
    }
    if base == "*" {
        return Ok(());
    }
    if let Some((start, end)) = base.split_once('-') {
        let (a, b) = (value(spec, start)?, value(spec, end)?);
        if a > b && spec.name == "Year" {
            return Err(format!("the range {start}-{end} runs backwards"));
        }
        return Ok(());
    }
    value(spec, base).map(drop)
}

/// A single value of the field: a number in range or one of its names.
fn value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| *n == text) {
        return Ok(spec.min + u32::try_from(i).unwrap_or(0));
    }
    let expected = if spec.names.is_empty() {
        format!("{}-{}", spec.min, spec.max)
    } else {
        format!(
            "{}-{} or {}-{}",
            spec.min,
            spec.max,
            spec.names.first().copied().unwrap_or_default(),
            spec.names.last().copied().unwrap_or_default()
        )
    };
    match text.parse::<u32>() {
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => {
            if (spec.min..=spec.max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is out of range (expected {expected})"))
            }
        }
        _ => Err(format!("{text:?} is not a valid value (expected {expected})")),
    }
}
