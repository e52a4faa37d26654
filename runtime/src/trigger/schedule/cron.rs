//! AWS's six-field cron: `Minutes Hours Day-of-month Month Day-of-week Year`.
//!
//! Values, lists (`,`), ranges (`-`, wrapping around when the start is past
//! the end: `FRI-MON`, `22-2`), steps (`/`), `*`, `?`; in Day-of-month `L`
//! (last day), `LW` (last weekday), `15W` (the weekday nearest the 15th); in
//! Day-of-week `L` (Saturday, the last day of the week), `5L` (the last
//! Thursday of the month) and `3#2` (the second Tuesday). Week days run
//! `1` = `SUN` to `7` = `SAT`, as in AWS.

use jiff::civil::{Date, Weekday};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEK_DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The first and last year AWS accepts.
pub(super) const MIN_YEAR: i16 = 1970;
/// The last year AWS accepts.
pub(super) const MAX_YEAR: i16 = 2199;

/// A set of small numbers (0..=63) as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Bits(u64);

impl Bits {
    fn set(&mut self, v: u32) {
        if v < 64 {
            self.0 |= 1 << v;
        }
    }

    pub(super) fn has(self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }

    /// The values in ascending order.
    pub(super) fn values(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |v| self.has(*v))
    }
}

/// What the Day-of-month field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`: Day-of-week decides.
    NoSpec,
    /// Values (`*` is every day).
    Days(Bits),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday–Friday) of the month.
    LastWeekday,
    /// `15W`: the weekday nearest that day, within the month.
    NearestWeekday(u32),
}

/// What the Day-of-week field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`: Day-of-month decides.
    NoSpec,
    /// Values `1` (SUN) to `7` (SAT).
    Days(Bits),
    /// `5L`: the last such week day of the month.
    Last(u32),
    /// `3#2`: the n-th such week day of the month.
    Nth(u32, u32),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cron {
    pub(super) minutes: Bits,
    pub(super) hours: Bits,
    dom: DayOfMonth,
    months: Bits,
    dow: DayOfWeek,
    /// Years as offsets from [`MIN_YEAR`] (0..=229), in four masks.
    years: [Bits; 4],
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The special characters allowed besides digits and names.
    specials: &'static str,
}

const F_MIN: Field = Field {
    name: "Minutes",
    min: 0,
    max: 59,
    names: &[],
    specials: ",-*/",
};
const F_HOUR: Field = Field {
    name: "Hours",
    min: 0,
    max: 23,
    names: &[],
    specials: ",-*/",
};
const F_DOM: Field = Field {
    name: "Day-of-month",
    min: 1,
    max: 31,
    names: &[],
    specials: ",-*/?LW",
};
const F_MONTH: Field = Field {
    name: "Month",
    min: 1,
    max: 12,
    names: &MONTHS,
    specials: ",-*/",
};
const F_DOW: Field = Field {
    name: "Day-of-week",
    min: 1,
    max: 7,
    names: &WEEK_DAYS,
    specials: ",-*?L#",
};
// Years are handled as offsets from MIN_YEAR so they fit the masks.
const F_YEAR: Field = Field {
    name: "Year",
    min: MIN_YEAR as u32,
    max: MAX_YEAR as u32,
    names: &[],
    specials: ",-*/",
};

impl Cron {
    /// Parses the six fields (the text inside `cron(...)`).
    pub(super) fn parse(inner: &str) -> Result<Cron, String> {
        let fields: Vec<String> = inner
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let [mi, ho, dm, mo, dw, ye] = fields.as_slice() else {
            return Err(format!(
                "a cron expression has 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), got {}",
                fields.len()
            ));
        };
        let minutes = field(&F_MIN, mi, plain)?;
        let hours = field(&F_HOUR, ho, plain)?;
        let dom = field(&F_DOM, dm, day_of_month)?;
        let months = field(&F_MONTH, mo, plain)?;
        let dow = field(&F_DOW, dw, day_of_week)?;
        let mut years = [Bits::default(); 4];
        for y in field(&F_YEAR, ye, values)? {
            let off = y - F_YEAR.min;
            if let Some(mask) = years.get_mut((off / 64) as usize) {
                mask.set(off % 64);
            }
        }
        match (&dom, &dow) {
            (DayOfMonth::NoSpec, DayOfWeek::NoSpec) => {
                return Err(
                    "Day-of-month and Day-of-week cannot both be `?`; give one of them a value"
                        .into(),
                );
            }
            (DayOfMonth::NoSpec, _) | (_, DayOfWeek::NoSpec) => {}
            _ => {
                return Err(format!(
                    "one of Day-of-month ({dm:?}) and Day-of-week ({dw:?}) must be `?`"
                ));
            }
        }
        Ok(Cron {
            minutes,
            hours,
            dom,
            months,
            dow,
            years,
        })
    }

    pub(super) fn year_matches(&self, year: i16) -> bool {
        let Ok(off) = u32::try_from(i32::from(year) - i32::from(MIN_YEAR)) else {
            return false;
        };
        self.years
            .get((off / 64) as usize)
            .is_some_and(|m| m.has(off % 64))
    }

    pub(super) fn month_matches(&self, month: i8) -> bool {
        u32::try_from(month).is_ok_and(|m| self.months.has(m))
    }

    /// Whether the day fields accept `date` (year and month checked apart).
    pub(super) fn day_matches(&self, date: Date) -> bool {
        let day = u32::try_from(date.day()).unwrap_or(0);
        let last = u32::try_from(date.days_in_month()).unwrap_or(31);
        match &self.dom {
            DayOfMonth::NoSpec => {}
            DayOfMonth::Days(bits) => return bits.has(day),
            DayOfMonth::Last => return day == last,
            DayOfMonth::LastWeekday => {
                let wd = weekday_of(date.last_of_month());
                let lw = match wd {
                    7 => last - 1,
                    1 => last - 2,
                    _ => last,
                };
                return day == lw;
            }
            DayOfMonth::NearestWeekday(n) => return day == nearest_weekday(date, *n, last),
        }
        let wd = weekday_of(date);
        match &self.dow {
            DayOfWeek::NoSpec => false,
            DayOfWeek::Days(bits) => bits.has(wd),
            DayOfWeek::Last(d) => wd == *d && day + 7 > last,
            DayOfWeek::Nth(d, n) => wd == *d && (day - 1) / 7 + 1 == *n,
        }
    }
}

/// 1 = Sunday .. 7 = Saturday.
fn weekday_of(date: Date) -> u32 {
    match date.weekday() {
        Weekday::Sunday => 1,
        Weekday::Monday => 2,
        Weekday::Tuesday => 3,
        Weekday::Wednesday => 4,
        Weekday::Thursday => 5,
        Weekday::Friday => 6,
        Weekday::Saturday => 7,
    }
}

/// The day of `date`'s month that `nW` stands for: `n` itself on a weekday;
/// a Saturday moves to the Friday before (or the Monday after, on the 1st),
/// a Sunday to the Monday after (or the Friday before, on the last day).
fn nearest_weekday(date: Date, n: u32, last: u32) -> u32 {
    let n = n.min(last);
    let Ok(target) = date.with().day(i8::try_from(n).unwrap_or(1)).build() else {
        return 0;
    };
    match weekday_of(target) {
        7 if n == 1 => 3,
        7 => n - 1,
        1 if n == last => n - 2,
        1 => n + 1,
        _ => n,
    }
}

/// Parses one field with `parse` after checking its characters and list
/// items; errors name the field: `Minutes field "60": ...`.
fn field<T>(
    f: &Field,
    text: &str,
    parse: impl Fn(&Field, &str) -> Result<T, String>,
) -> Result<T, String> {
    check_items(f, text)
        .and_then(|()| parse(f, text))
        .map_err(|why| format!("{} field {text:?}: {why}", f.name))
}

/// The characters and list shape a field allows: digits, the field's names
/// and its special characters; `?`, `L`, `W` and `#` items stand alone.
fn check_items(f: &Field, text: &str) -> Result<(), String> {
    if let Some(c) = text
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !f.specials.contains(*c))
    {
        return Err(format!(
            "`{c}` is not allowed here (allowed: digits{}{})",
            if f.names.is_empty() { "" } else { ", names" },
            f.specials
                .chars()
                .map(|c| format!(" {c}"))
                .collect::<String>()
        ));
    }
    let items: Vec<&str> = text.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err("empty list item".into());
    }
    // A name such as `WED` or `JUL` holds letters that are special elsewhere.
    let is_name = |i: &str| i.split(['-', '/']).all(|part| f.names.contains(&part));
    let special = |i: &&str| i.contains(['?', 'L', 'W', '#']) && !is_name(i);
    if items.len() > 1 && items.iter().any(special) {
        return Err("`?`, `L`, `W` and `#` must be used alone, not in a list".into());
    }
    Ok(())
}

fn plain(f: &Field, text: &str) -> Result<Bits, String> {
    let mut bits = Bits::default();
    for v in values(f, text)? {
        bits.set(v);
    }
    Ok(bits)
}

fn day_of_month(f: &Field, text: &str) -> Result<DayOfMonth, String> {
    Ok(match text {
        "?" => DayOfMonth::NoSpec,
        "L" => DayOfMonth::Last,
        "LW" => DayOfMonth::LastWeekday,
        t if t.ends_with('W') => DayOfMonth::NearestWeekday(value(f, &t[..t.len() - 1])?),
        t => DayOfMonth::Days(plain(f, t)?),
    })
}

fn day_of_week(f: &Field, text: &str) -> Result<DayOfWeek, String> {
    Ok(match text {
        "?" => DayOfWeek::NoSpec,
        "L" => DayOfWeek::Days(plain(f, "7")?),
        t if t.len() > 1 && t.ends_with('L') && !f.names.contains(&t) => {
            DayOfWeek::Last(value(f, &t[..t.len() - 1])?)
        }
        t if t.contains('#') => {
            let (d, nth) = t.split_once('#').unwrap_or((t, ""));
            let day = value(f, d)?;
            match nth.parse::<u32>() {
                Ok(n @ 1..=5) if nth.bytes().all(|b| b.is_ascii_digit()) => DayOfWeek::Nth(day, n),
                _ => {
                    return Err(format!(
                        "`#{nth}` must be a week number from 1 to 5, as in `3#2`"
                    ));
                }
            }
        }
        t => DayOfWeek::Days(plain(f, t)?),
    })
}

/// Every value a plain field (lists, ranges, steps, `*`) stands for.
fn values(f: &Field, text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let step = s
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=f.max).contains(n) && s.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("the increment {s:?} must be a number from 1 to {}", f.max)
                    })?;
                (b, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if base == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = base.split_once('-') {
            (value(f, a)?, value(f, b)?)
        } else {
            let v = value(f, base)?;
            // `5/15` runs from 5 to the end of the range.
            (v, if step.is_some() { f.max } else { v })
        };
        let size = f.max - f.min + 1;
        let span = if end >= start {
            end - start
        } else if f.name == "Year" {
            return Err(format!("the range {base} runs backwards"));
        } else {
            // Wrap-around: FRI-MON, 22-2.
            end + size - start
        };
        let step = step.unwrap_or(1);
        let mut k = 0;
        while k <= span {
            out.push(f.min + (start - f.min + k) % size);
            k += step;
        }
    }
    Ok(out)
}

/// A single value of the field: a number in range or one of its names.
fn value(f: &Field, text: &str) -> Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| *n == text) {
        return Ok(f.min + u32::try_from(i).unwrap_or(0));
    }
    let expected = match (f.names.first(), f.names.last()) {
        (Some(first), Some(last)) => format!("{}-{} or {first}-{last}", f.min, f.max),
        _ => format!("{}-{}", f.min, f.max),
    };
    match text.parse::<u32>() {
        Ok(v) if text.bytes().all(|b| b.is_ascii_digit()) => {
            if (f.min..=f.max).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{v} is out of range (expected {expected})"))
            }
        }
        _ => Err(format!(
            "{text:?} is not a valid value (expected {expected})"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges_wrap_around_and_step() {
        assert_eq!(values(&F_DOW, "FRI-MON").unwrap(), vec![6, 7, 1, 2]);
        assert_eq!(values(&F_HOUR, "22-2").unwrap(), vec![22, 23, 0, 1, 2]);
        assert_eq!(values(&F_MIN, "0/15").unwrap(), vec![0, 15, 30, 45]);
        assert_eq!(values(&F_MIN, "50-10/10").unwrap(), vec![50, 0, 10]);
        assert_eq!(values(&F_MONTH, "JAN,MAR").unwrap(), vec![1, 3]);
        assert!(values(&F_YEAR, "2030-2020").is_err());
        assert!(Cron::parse("0 0 * * * *").is_err());
        assert!(Cron::parse("0 0 ? * ? *").is_err());
        assert!(Cron::parse("0 0 * *").is_err());
    }

    #[test]
    fn special_days() {
        let d = |y, m, d| jiff::civil::date(y, m, d);
        let c = Cron::parse("0 0 L * ? *").unwrap();
        assert!(c.day_matches(d(2024, 2, 29)) && !c.day_matches(d(2024, 2, 28)));
        // Last weekday of August 2025: the 31st is a Sunday, so Friday the 29th.
        let c = Cron::parse("0 0 LW * ? *").unwrap();
        assert!(c.day_matches(d(2025, 8, 29)) && !c.day_matches(d(2025, 8, 31)));
        // 1W in March 2025: the 1st is a Saturday, so Monday the 3rd.
        let c = Cron::parse("0 0 1W * ? *").unwrap();
        assert!(c.day_matches(d(2025, 3, 3)) && !c.day_matches(d(2025, 3, 1)));
        // 15W in June 2025: the 15th is a Sunday, so Monday the 16th.
        let c = Cron::parse("0 0 15W * ? *").unwrap();
        assert!(c.day_matches(d(2025, 6, 16)));
        // 3#2: the second Tuesday; 6L: the last Friday.
        let c = Cron::parse("0 0 ? * 3#2 *").unwrap();
        assert!(c.day_matches(d(2025, 6, 10)) && !c.day_matches(d(2025, 6, 3)));
        let c = Cron::parse("0 0 ? * 6L *").unwrap();
        assert!(c.day_matches(d(2025, 6, 27)) && !c.day_matches(d(2025, 6, 20)));
        let c = Cron::parse("0 0 ? * FRI-MON *").unwrap();
        assert!(c.day_matches(d(2025, 6, 16)) && !c.day_matches(d(2025, 6, 17)));
    }
}
