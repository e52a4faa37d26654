//! Schedule expressions: AWS's rate, cron and at syntax.

use std::time::Duration;

use durafn_runtime::model::Timestamp;

use crate::template::ScheduleExpr;

fn valid(expr: &str) -> ScheduleExpr {
    match ScheduleExpr::parse(expr) {
        Ok(s) => s,
        Err(e) => panic!("{expr} should be valid: {e}"),
    }
}

fn invalid(expr: &str, reason_part: &str) {
    match ScheduleExpr::parse(expr) {
        Ok(s) => panic!("{expr} should be invalid, got {s:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.contains(&format!("{expr:?}")),
                "{s} should name the expression"
            );
            assert!(
                s.contains(reason_part),
                "{s:?} should contain {reason_part:?}"
            );
        }
    }
}

#[test]
fn rates() {
    // A rate anchored at 0 first fires one period later.
    let rate = |e: &str| {
        let first = valid(e).spec().next_after(Timestamp(0), Timestamp(0));
        Duration::from_millis(first.map_or(0, |t| t.0.unsigned_abs()))
    };
    assert_eq!(rate("rate(1 minute)"), Duration::from_secs(60));
    assert_eq!(rate("rate(5 minutes)"), Duration::from_secs(300));
    assert_eq!(rate("rate(1 hour)"), Duration::from_secs(3_600));
    assert_eq!(rate("rate(12 hours)"), Duration::from_secs(43_200));
    assert_eq!(rate("rate(1 day)"), Duration::from_secs(86_400));
    assert_eq!(rate("rate(7 days)"), Duration::from_secs(604_800));
    assert_eq!(valid("rate(90 minutes)").to_string(), "rate(90 minutes)");
    assert_eq!(valid("rate(2 days)").to_string(), "rate(2 days)");
}

#[test]
fn bad_rates() {
    invalid("rate(1 minutes)", "singular unit `minute`");
    invalid("rate(1 days)", "singular unit `day`");
    invalid("rate(5 minute)", "plural unit `minutes`");
    invalid("rate(2 hour)", "plural unit `hours`");
    invalid("rate(0 minutes)", "positive whole number");
    invalid("rate(-1 minutes)", "positive whole number");
    invalid("rate(1.5 hours)", "positive whole number");
    invalid("rate(5 seconds)", "not minute(s), hour(s) or day(s)");
    invalid("rate(5)", "expected `rate(<value> <unit>)`");
    invalid(
        "rate(5 minutes",
        "expected `rate(<value> <unit>)`, `cron(<6 fields>)`",
    );
    invalid(
        "every 5 minutes",
        "expected `rate(<value> <unit>)`, `cron(<6 fields>)`",
    );
}

#[test]
fn crons() {
    for e in [
        "cron(0 12 * * ? *)",
        "cron(15 10 ? * 6L 2019-2022)",
        "cron(0/15 * * * ? *)",
        "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 18 ? * MON,WED,FRI *)",
        "cron(0 10 * * ? *)",
        "cron(0 0 L * ? *)",
        "cron(0 0 LW * ? *)",
        "cron(0 0 15W * ? *)",
        "cron(0 0 ? * L *)",
        "cron(0 0 ? JAN-MAR,DEC SAT *)",
        "cron(0 22-2 ? * FRI-MON *)",
        "cron(*/10 * 1/2 * ? *)",
    ] {
        valid(e);
    }
    // Names in any case; the expression is kept as written.
    assert_eq!(
        valid("cron(0 8 ? jan mon-fri *)").to_string(),
        "cron(0 8 ? jan mon-fri *)"
    );
    assert_eq!(
        valid(" cron(0 12 * * ? *) ").to_string(),
        "cron(0 12 * * ? *)"
    );
}

#[test]
fn bad_crons_name_the_field() {
    invalid("cron(0 12 * * ?)", "6 fields");
    invalid("cron(0 12 * * ? * *)", "got 7");
    invalid(
        "cron(60 12 * * ? *)",
        "Minutes field \"60\": 60 is out of range (expected 0-59)",
    );
    invalid("cron(0 24 * * ? *)", "Hours field \"24\"");
    invalid("cron(0 12 0 * ? *)", "Day-of-month field \"0\"");
    invalid("cron(0 12 32 * ? *)", "Day-of-month field \"32\"");
    invalid("cron(0 12 * 13 ? *)", "Month field \"13\"");
    invalid(
        "cron(0 12 * FOO ? *)",
        "Month field \"FOO\": \"FOO\" is not a valid value (expected 1-12 or JAN-DEC)",
    );
    invalid("cron(0 12 ? * 8 *)", "Day-of-week field \"8\"");
    invalid("cron(0 12 ? * FUN *)", "Day-of-week field \"FUN\"");
    invalid("cron(0 12 * * ? 1969)", "Year field \"1969\"");
    invalid("cron(0 12 * * ? 2200)", "Year field \"2200\"");
    invalid("cron(0 12 * * ? 2030-2020)", "runs backwards");
    invalid(
        "cron(0 12 * * * *)",
        "one of Day-of-month (\"*\") and Day-of-week (\"*\") must be `?`",
    );
    invalid("cron(0 12 1 * MON *)", "must be `?`");
    invalid("cron(0 12 ? * ? *)", "cannot both be `?`");
    invalid(
        "cron(0? 12 * * ? *)",
        "Minutes field \"0?\": `?` is not allowed here",
    );
    invalid("cron(0 12 * * ? 2020/0)", "increment \"0\"");
    invalid("cron(0 12 ? * MON/2 *)", "`/` is not allowed here");
    invalid("cron(0 12 ? * 2#6 *)", "week number from 1 to 5");
    invalid("cron(0 12 1,L * ? *)", "must be used alone");
    invalid("cron(0 12 $ * ? *)", "`$` is not allowed here");
    invalid("cron(0 12 5L * ? *)", "Day-of-month field \"5L\"");
    invalid("cron(1,,2 12 * * ? *)", "empty list item");
}

#[test]
fn at_expressions() {
    assert!(valid("at(2030-01-31T09:30:00)").spec().is_one_shot());
    valid("at(2028-02-29T23:59:59)");
    invalid("at(2027-02-29T00:00:00)", "day 29 is out of range 01-28");
    invalid("at(2030-13-01T00:00:00)", "month 13");
    invalid("at(2030-01-01T24:00:00)", "not a valid time of day");
    invalid("at(2030-01-01 10:00:00)", "not a date and time");
    invalid("at(tomorrow)", "expected `at(yyyy-mm-ddThh:mm:ss)`");
    assert_eq!(
        valid("at(2030-01-31T09:30:00)").to_string(),
        "at(2030-01-31T09:30:00)"
    );
}
