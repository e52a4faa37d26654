#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A UTC instant written as RFC 3339.
fn t(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn spec(e: &str, tz: Option<&str>) -> ScheduleSpec {
    ScheduleSpec::parse(e, tz).unwrap()
}

/// The first `n` fires after `from`.
fn fires(s: &ScheduleSpec, from: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = t(from);
    for _ in 0..n {
        match s.next_after(at, t(from)) {
            Some(next) => {
                out.push(fire_time_rfc3339(next));
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn cron_in_utc_by_default() {
    let s = spec("cron(0 3 * * ? *)", None);
    assert_eq!(
        fires(&s, "2025-01-01T02:59:59Z", 2),
        ["2025-01-01T03:00:00Z", "2025-01-02T03:00:00Z"]
    );
    // Strictly after: a fire time itself gives the next one.
    assert_eq!(
        s.next_after(t("2025-01-01T03:00:00Z"), Timestamp(0)),
        Some(t("2025-01-02T03:00:00Z"))
    );
}

#[test]
fn spring_forward_skips_the_missing_local_time() {
    // Europe/Paris, 2025-03-30: 02:00 CET jumps to 03:00 CEST; 02:30 never happens.
    let s = spec("cron(30 2 * * ? *)", Some("Europe/Paris"));
    assert_eq!(
        fires(&s, "2025-03-28T12:00:00Z", 3),
        [
            "2025-03-29T01:30:00Z", // 02:30 CET
            "2025-03-31T00:30:00Z", // 02:30 CEST; the 30th is skipped
            "2025-04-01T00:30:00Z",
        ]
    );
    // A time after the gap keeps its local time: 03:00 CET, then 03:00 CEST.
    let s = spec("cron(0 3 * * ? *)", Some("Europe/Paris"));
    assert_eq!(
        fires(&s, "2025-03-29T00:00:00Z", 2),
        ["2025-03-29T02:00:00Z", "2025-03-30T01:00:00Z"]
    );
}

#[test]
fn fall_back_fires_a_repeated_local_time_once() {
    // Europe/Paris, 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    let s = spec("cron(30 2 * * ? *)", Some("Europe/Paris"));
    assert_eq!(
        fires(&s, "2025-10-25T12:00:00Z", 2),
        [
            "2025-10-26T00:30:00Z", // 02:30 CEST, the first one
            "2025-10-27T01:30:00Z", // the next day, 02:30 CET
        ]
    );
    // Hourly in New York, 2025-11-02: 01:00 EDT then 01:00 EST; fires once.
    let s = spec("cron(0 * * * ? *)", Some("America/New_York"));
    assert_eq!(
        fires(&s, "2025-11-02T04:30:00Z", 3),
        [
            "2025-11-02T05:00:00Z", // 01:00 EDT
            "2025-11-02T07:00:00Z", // 02:00 EST (01:00 EST is the same local time)
            "2025-11-02T08:00:00Z",
        ]
    );
    // Starting inside the repeated hour (its second pass) moves on.
    assert_eq!(
        fires(&s, "2025-11-02T06:10:00Z", 1),
        ["2025-11-02T07:00:00Z"]
    );
}

#[test]
fn special_days_and_wrap_around_ranges() {
    // Last day of the month, in a leap year.
    let s = spec("cron(0 12 L * ? *)", None);
    assert_eq!(
        fires(&s, "2024-02-01T00:00:00Z", 2),
        ["2024-02-29T12:00:00Z", "2024-03-31T12:00:00Z"]
    );
    // Weekday nearest the 1st: 2025-03-01 is a Saturday → Monday the 3rd.
    let s = spec("cron(0 9 1W * ? *)", None);
    assert_eq!(
        fires(&s, "2025-02-15T00:00:00Z", 1),
        ["2025-03-03T09:00:00Z"]
    );
    // Last weekday: August 2025 ends on a Sunday → Friday the 29th.
    let s = spec("cron(0 9 LW 8 ? 2025)", None);
    assert_eq!(
        fires(&s, "2025-08-01T00:00:00Z", 2),
        ["2025-08-29T09:00:00Z"]
    );
    // Second Tuesday (3#2) and last Friday (6L).
    let s = spec("cron(0 9 ? * 3#2 *)", None);
    assert_eq!(
        fires(&s, "2025-06-01T00:00:00Z", 2),
        ["2025-06-10T09:00:00Z", "2025-07-08T09:00:00Z"]
    );
    let s = spec("cron(0 9 ? * 6L *)", None);
    assert_eq!(
        fires(&s, "2025-06-01T00:00:00Z", 1),
        ["2025-06-27T09:00:00Z"]
    );
    // FRI-MON wraps around the week: Fri, Sat, Sun, Mon, then Fri again.
    let s = spec("cron(0 6 ? * FRI-MON *)", None);
    assert_eq!(
        fires(&s, "2025-06-12T00:00:00Z", 5), // a Thursday
        [
            "2025-06-13T06:00:00Z",
            "2025-06-14T06:00:00Z",
            "2025-06-15T06:00:00Z",
            "2025-06-16T06:00:00Z",
            "2025-06-20T06:00:00Z",
        ]
    );
    // 22-2 wraps around midnight; steps.
    let s = spec("cron(0/30 22-1 * * ? *)", None);
    assert_eq!(
        fires(&s, "2025-01-01T21:59:00Z", 7),
        [
            "2025-01-01T22:00:00Z",
            "2025-01-01T22:30:00Z",
            "2025-01-01T23:00:00Z",
            "2025-01-01T23:30:00Z",
            "2025-01-02T00:00:00Z",
            "2025-01-02T00:30:00Z",
            "2025-01-02T01:00:00Z",
        ]
    );
    // Day-of-week 1 is Sunday, as in AWS.
    let s = spec("cron(0 0 ? * 1 *)", None);
    assert_eq!(
        fires(&s, "2025-06-12T00:00:00Z", 1),
        ["2025-06-15T00:00:00Z"]
    );
}

#[test]
fn years_end_and_impossible_dates_never_fire() {
    let s = spec("cron(0 0 1 1 ? 2030)", None);
    assert_eq!(
        fires(&s, "2025-01-01T00:00:00Z", 3),
        ["2030-01-01T00:00:00Z"]
    );
    let s = spec("cron(0 0 31 2 ? *)", None);
    assert!(fires(&s, "2025-01-01T00:00:00Z", 1).is_empty());
}

#[test]
fn rate_counts_from_its_anchor() {
    let s = spec("rate(5 minutes)", Some("Europe/Paris"));
    let anchor = t("2025-01-01T00:00:00Z");
    assert_eq!(
        s.next_after(anchor, anchor),
        Some(t("2025-01-01T00:05:00Z"))
    );
    assert_eq!(
        s.next_after(t("2025-01-01T00:12:00Z"), anchor),
        Some(t("2025-01-01T00:15:00Z"))
    );
    assert_eq!(
        s.fires_between(anchor, t("2025-01-01T00:20:00Z"), anchor, 100),
        vec![
            t("2025-01-01T00:05:00Z"),
            t("2025-01-01T00:10:00Z"),
            t("2025-01-01T00:15:00Z"),
            t("2025-01-01T00:20:00Z")
        ]
    );
    let s = spec("rate(1 day)", None);
    assert_eq!(
        s.next_after(anchor, anchor),
        Some(t("2025-01-02T00:00:00Z"))
    );
}

#[test]
fn at_fires_once_in_its_time_zone() {
    let s = spec("at(2030-07-01T09:30:00)", Some("Europe/Paris"));
    assert!(s.is_one_shot());
    let at = t("2030-07-01T07:30:00Z");
    assert_eq!(
        s.next_after(t("2030-01-01T00:00:00Z"), Timestamp(0)),
        Some(at)
    );
    assert_eq!(s.next_after(at, Timestamp(0)), None);
    // A local time in a spring-forward gap is shifted, not lost.
    let s = spec("at(2025-03-30T02:30:00)", Some("Europe/Paris"));
    assert_eq!(
        s.next_after(t("2025-01-01T00:00:00Z"), Timestamp(0)),
        Some(t("2025-03-30T01:30:00Z"))
    );
}

#[test]
fn bad_expressions_and_zones_are_rejected() {
    for bad in [
        "cron(0 3 * * * *)",
        "cron(0 3 * *)",
        "cron(61 3 * * ? *)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "at(2030-02-30T00:00:00)",
        "every day",
    ] {
        let err = ScheduleSpec::parse(bad, None).unwrap_err().to_string();
        assert!(err.contains(bad), "{bad}: {err}");
    }
    let err = ScheduleSpec::parse("cron(0 3 * * ? *)", Some("Mars/Olympus"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Mars/Olympus"), "{err}");
}

#[test]
fn fire_ids_name_the_schedule_and_the_utc_time() {
    let id = fire_id("backup-verify-nightly", t("2025-03-30T01:00:00Z")).unwrap();
    assert_eq!(id.as_str(), "backup-verify-nightly:20250330T010000Z");
    assert!(validate_name("a b").is_err());
    assert!(validate_name(&"x".repeat(65)).is_err());
}

/// What AWS refuses is refused here too, with a message naming the part
/// that is wrong and what is expected.
#[test]
fn parse_errors_say_what_is_wrong_and_what_is_expected() {
    let why = |e: &str| ScheduleSpec::parse(e, None).unwrap_err().to_string();
    // AWS: a value of 1 takes the singular unit, larger values the plural.
    assert!(why("rate(1 minutes)").contains("singular unit `minute`"));
    assert!(why("rate(5 hour)").contains("plural unit `hours`"));
    assert!(why("rate(+5 minutes)").contains("positive whole number"));
    // `at` takes exactly `yyyy-mm-ddThh:mm:ss`.
    for e in [
        "at(2030-01-01T09:00)",
        "at(2030-01-01 09:00:00)",
        "at(2030-01-01)",
    ] {
        assert!(why(e).contains("expected `at(yyyy-mm-ddThh:mm:ss)`"), "{e}");
    }
    assert!(why("at(2027-02-29T00:00:00)").contains("day 29 is out of range 01-28"));
    // `/` is not a Day-of-week wildcard in AWS.
    assert!(why("cron(0 12 ? * MON/2 *)").contains("`/` is not allowed here"));
    assert!(why("cron(0 12 1,L * ? *)").contains("must be used alone"));
    assert!(why("cron(0/90 * * * ? *)").contains("increment \"90\" must be a number from 1 to 59"));
    assert!(
        why("cron(0 12 * FOO ? *)").contains(
            "Month field \"FOO\": \"FOO\" is not a valid value (expected 1-12 or JAN-DEC)"
        )
    );
    assert!(
        why("cron(60 12 * * ? *)")
            .contains("Minutes field \"60\": 60 is out of range (expected 0-59)")
    );
    assert!(ScheduleSpec::parse("rate(1 minute)", None).is_ok());
    assert!(ScheduleSpec::parse("at(2028-02-29T23:59:59)", None).is_ok());
}
