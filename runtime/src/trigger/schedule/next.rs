//! The next fire time of an expression, in its time zone.
//!
//! Daylight saving time follows EventBridge Scheduler: a local time that does
//! not exist (the hour skipped when clocks spring forward) does not fire, and
//! a local time that happens twice (when clocks fall back) fires once, at its
//! first occurrence.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::cron::{Cron, MAX_YEAR};

/// The instant of local time `dt` in `tz`: `None` in a gap, the first
/// occurrence in a fold.
pub(super) fn resolve(tz: &TimeZone, dt: DateTime) -> Option<jiff::Timestamp> {
    let amb = tz.to_ambiguous_timestamp(dt);
    match amb.offset() {
        AmbiguousOffset::Gap { .. } => None,
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => amb.earlier().ok(),
    }
}

/// The instant of a one-shot local time: in a gap, the instant the clocks
/// jumped to (a one-shot is shifted, never lost); in a fold, the first one.
pub(super) fn resolve_once(tz: &TimeZone, dt: DateTime) -> Option<jiff::Timestamp> {
    let amb = tz.to_ambiguous_timestamp(dt);
    match amb.offset() {
        AmbiguousOffset::Gap { .. } => amb.later().ok(),
        _ => amb.earlier().ok(),
    }
}

fn next_month(date: Date) -> Option<Date> {
    date.first_of_month()
        .checked_add(jiff::Span::new().months(1))
        .ok()
}

/// The first fire of `cron` in `tz` strictly after `after`.
pub(super) fn next_cron(
    cron: &Cron,
    tz: &TimeZone,
    after: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let start = tz.to_datetime(after);
    let (start_hour, start_minute) = (
        u32::try_from(start.hour()).unwrap_or(0),
        u32::try_from(start.minute()).unwrap_or(0),
    );
    let mut date = start.date();
    let mut first_day = true;
    // Local times map to instants in order (first occurrences in folds), so
    // nothing before `start`'s local minute can be after `after`.
    loop {
        if date.year() > MAX_YEAR {
            return None;
        }
        if !cron.year_matches(date.year()) {
            date = jiff::civil::date(date.year().checked_add(1)?, 1, 1);
            first_day = false;
            continue;
        }
        if !cron.month_matches(date.month()) {
            date = next_month(date)?;
            first_day = false;
            continue;
        }
        if cron.day_matches(date) {
            for h in cron.hours.values() {
                if first_day && h < start_hour {
                    continue;
                }
                for m in cron.minutes.values() {
                    if first_day && h == start_hour && m < start_minute {
                        continue;
                    }
                    let (Ok(h8), Ok(m8)) = (i8::try_from(h), i8::try_from(m)) else {
                        continue;
                    };
                    let dt = date.at(h8, m8, 0, 0);
                    if let Some(t) = resolve(tz, dt).filter(|t| *t > after) {
                        return Some(t);
                    }
                }
            }
        }
        date = date.tomorrow().ok()?;
        first_day = false;
    }
}
