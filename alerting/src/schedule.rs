//! When a rule runs next: `frequency` after its last run, or the next time its cron `schedule`
//! matches in its time zone (croner over chrono-tz, so wall-clock times stay right across
//! daylight-saving changes). A run that was due while the server was down happens at once, and
//! its window covers everything since the last one.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

use crate::rule::Rule;

/// Parses `schedule` and `timezone`; the error says which one is wrong and why.
pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<(croner::Cron, chrono_tz::Tz), String> {
    let cron = croner::Cron::from_str(schedule).map_err(|e| format!("schedule '{schedule}': {e}"))?;
    let tz = match timezone {
        None => chrono_tz::UTC,
        Some(name) => chrono_tz::Tz::from_str(name)
            .map_err(|_| format!("timezone '{name}' is not an IANA time zone name (like Europe/Berlin)"))?,
    };
    Ok((cron, tz))
}

/// The next run after `last_us` (µs since the epoch).
pub fn next_run(rule: &Rule, last_us: i64) -> i64 {
    let fallback = last_us + rule.frequency.as_micros() as i64;
    let Some(schedule) = &rule.schedule else { return fallback };
    let Ok((cron, tz)) = parse(schedule, rule.timezone.as_deref()) else { return fallback };
    let Some(last) = DateTime::<Utc>::from_timestamp_micros(last_us) else { return fallback };
    match cron.find_next_occurrence(&tz.from_utc_datetime(&last.naive_utc()), false) {
        Ok(t) => t.with_timezone(&Utc).timestamp_micros(),
        Err(e) => {
            tracing::error!(rule = %rule.name, error = %e, "no next time for the schedule; using the frequency");
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(schedule: Option<&str>, tz: Option<&str>) -> Rule {
        toml::from_str::<Rule>(&format!(
            "name = 'r'\nseverity = 1\nquery = 'Heartbeat'\nfrequency = '1m'\ncondition = {{ kind = 'per_row' }}\nactions = ['g']\n{}{}",
            schedule.map(|s| format!("schedule = '{s}'\n")).unwrap_or_default(),
            tz.map(|s| format!("timezone = '{s}'\n")).unwrap_or_default(),
        ))
        .unwrap()
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn show(us: i64) -> String {
        DateTime::<Utc>::from_timestamp_micros(us).unwrap().to_rfc3339()
    }

    #[test]
    fn frequency_counts_from_the_last_run() {
        assert_eq!(next_run(&rule(None, None), at("2026-03-01T00:00:00Z")), at("2026-03-01T00:01:00Z"));
    }

    #[test]
    fn a_daily_schedule_keeps_its_wall_clock_time_across_dst() {
        // 09:00 in Berlin is 08:00 UTC before the change of 2026-03-29 and 07:00 UTC after it.
        let r = rule(Some("0 9 * * *"), Some("Europe/Berlin"));
        let first = next_run(&r, at("2026-03-28T09:00:00Z"));
        assert_eq!(show(first), "2026-03-29T07:00:00+00:00");
        let before = next_run(&r, at("2026-03-27T12:00:00Z"));
        assert_eq!(show(before), "2026-03-28T08:00:00+00:00");
        // Back in October: 08:00 UTC again.
        assert_eq!(show(next_run(&r, at("2026-10-25T12:00:00Z"))), "2026-10-26T08:00:00+00:00");
    }

    #[test]
    fn a_time_skipped_by_dst_runs_once_that_day() {
        // 02:30 does not exist in Berlin on 2026-03-29; the run is not lost and happens once.
        let r = rule(Some("30 2 * * *"), Some("Europe/Berlin"));
        let a = next_run(&r, at("2026-03-28T02:00:00Z"));
        let b = next_run(&r, a);
        assert!(a > at("2026-03-28T12:00:00Z") && a < at("2026-03-29T12:00:00Z"), "{}", show(a));
        assert!(b > at("2026-03-30T00:00:00Z") && b < at("2026-03-30T12:00:00Z"), "{}", show(b));
    }

    #[test]
    fn bad_schedules_and_zones_are_named() {
        assert!(parse("61 * * * *", None).unwrap_err().contains("schedule '61 * * * *'"));
        assert!(parse("0 2 * * MON", Some("Mars/Olympus")).unwrap_err().contains("Mars/Olympus"));
        assert!(parse("0 2 * * MON", Some("America/New_York")).is_ok());
    }
}
