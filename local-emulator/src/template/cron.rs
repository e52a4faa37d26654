//! AWS's six-field cron expressions: `cron(Minutes Hours Day-of-month Month
//! Day-of-week Year)`, checked field by field.

use super::ScheduleExpr;

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
    FieldSpec {
        name: "Minutes",
        min: 0,
        max: 59,
        names: &[],
        specials: ",-*/",
    },
    FieldSpec {
        name: "Hours",
        min: 0,
        max: 23,
        names: &[],
        specials: ",-*/",
    },
    FieldSpec {
        name: "Day-of-month",
        min: 1,
        max: 31,
        names: &[],
        specials: ",-*/?LW",
    },
    FieldSpec {
        name: "Month",
        min: 1,
        max: 12,
        names: MONTHS,
        specials: ",-*/",
    },
    FieldSpec {
        name: "Day-of-week",
        min: 1,
        max: 7,
        names: WEEK_DAYS,
        specials: ",-*?L#",
    },
    FieldSpec {
        name: "Year",
        min: 1970,
        max: 2199,
        names: &[],
        specials: ",-*/",
    },
];
const DOM: usize = 2;
const DOW: usize = 4;

pub(super) fn parse_cron(inner: &str) -> Result<ScheduleExpr, String> {
    let parts: Vec<String> = inner
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
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
        (true, true) => Err(
            "Day-of-month and Day-of-week cannot both be `?`; give one of them a value".to_owned(),
        ),
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
        return Err(format!(
            "`{c}` is not allowed here (allowed: digits{}{})",
            if spec.names.is_empty() { "" } else { ", names" },
            spec.specials
                .chars()
                .map(|c| format!(" {c}"))
                .collect::<String>()
        ));
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
    item.split(['-', '/'])
        .all(|part| spec.names.contains(&part))
}

fn check_item(spec: &FieldSpec, item: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err("empty list item".to_owned());
    }
    if item == "*" || item == "?" {
        return Ok(());
    }
    let in_dom = spec.specials.contains('W');
    let in_dow = spec.specials.contains('#');
    if (in_dom || in_dow) && !is_name(spec, item) {
        // `L`: the last day of the month / week; `LW`: the last weekday of
        // the month; `15W`: the weekday nearest the 15th; `5L`: the last
        // Thursday of the month.
        if item == "L" || (in_dom && item == "LW") {
            return Ok(());
        }
        let day = if in_dom {
            item.strip_suffix('W')
        } else {
            item.strip_suffix('L')
        };
        if let Some(day) = day {
            return value(spec, day).map(|_| ());
        }
    }
    if let Some((day, nth)) = item.split_once('#') {
        value(spec, day)?;
        return match nth.parse::<u32>() {
            Ok(1..=5) => Ok(()),
            _ => Err(format!(
                "`#{nth}` must be a week number from 1 to 5, as in `3#2`"
            )),
        };
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(s) if s >= 1 && s <= spec.max && step.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => {
                return Err(format!(
                    "the increment {step:?} must be a number from 1 to {}",
                    spec.max
                ));
            }
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
    value(spec, base).map(|_| ())
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
        _ => Err(format!(
            "{text:?} is not a valid value (expected {expected})"
        )),
    }
}
