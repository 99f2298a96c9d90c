//! The time range every page shows: `?range=24h|7d|30d` (default 24h), or `?range=custom`
//! with `from` and `to` (UTC, `YYYY-MM-DDTHH:MM`, as a `datetime-local` input sends). It is
//! part of every link, so a page can be shared as it is.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeParams {
    #[serde(default)]
    pub range: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeRange {
    /// `24h`, `7d`, `30d` or `custom`.
    pub name: String,
    pub start_us: i64,
    pub end_us: i64,
}

pub const PRESETS: &[(&str, &str, i64)] =
    &[("24h", "Last 24 hours", 24), ("7d", "Last 7 days", 7 * 24), ("30d", "Last 30 days", 30 * 24)];

const HOUR_US: i64 = 3_600_000_000;

fn parse_local(text: &str) -> Option<i64> {
    let t = text.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .map(|n| n.and_utc().timestamp_micros())
}

impl TimeRange {
    /// The range of `params` at `now_us`; an unknown name or an unreadable custom range is an
    /// error naming what is wrong.
    pub fn from_params(params: &RangeParams, now_us: i64) -> Result<TimeRange, String> {
        let name = params.range.as_deref().unwrap_or("24h");
        if let Some((_, _, hours)) = PRESETS.iter().find(|(n, _, _)| *n == name) {
            return Ok(TimeRange { name: name.into(), start_us: now_us - hours * HOUR_US, end_us: now_us });
        }
        if name != "custom" {
            return Err(format!("time range '{name}' is not one of 24h, 7d, 30d, custom"));
        }
        let read = |field: &Option<String>, what: &str| {
            field
                .as_deref()
                .and_then(parse_local)
                .ok_or_else(|| format!("the custom range needs '{what}' as YYYY-MM-DDTHH:MM (UTC)"))
        };
        let (start_us, end_us) = (read(&params.from, "from")?, read(&params.to, "to")?);
        if start_us >= end_us {
            return Err("the custom range's 'from' must be before its 'to'".into());
        }
        Ok(TimeRange { name: "custom".into(), start_us, end_us })
    }

    /// The range as query-string parameters, for links.
    pub fn query(&self) -> String {
        if self.name == "custom" {
            format!("range=custom&from={}&to={}", local(self.start_us), local(self.end_us))
        } else {
            format!("range={}", self.name)
        }
    }

    pub fn label(&self) -> String {
        match PRESETS.iter().find(|(n, _, _)| *n == self.name) {
            Some((_, label, _)) => label.to_string(),
            None => format!("{} to {} UTC", local(self.start_us), local(self.end_us)),
        }
    }

    pub fn hours(&self) -> i64 {
        ((self.end_us - self.start_us) / HOUR_US).max(1)
    }
}

/// `YYYY-MM-DDTHH:MM` in UTC (a `datetime-local` input's value).
pub fn local(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).map(|t| t.format("%Y-%m-%dT%H:%M").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(range: &str, from: Option<&str>, to: Option<&str>) -> RangeParams {
        RangeParams { range: Some(range.into()), from: from.map(Into::into), to: to.map(Into::into) }
    }

    #[test]
    fn presets_custom_and_errors() {
        let now = 1_700_000_000_000_000;
        let r = TimeRange::from_params(&RangeParams::default(), now).unwrap();
        assert_eq!((r.name.as_str(), r.end_us - r.start_us), ("24h", 24 * HOUR_US));
        assert_eq!(TimeRange::from_params(&params("7d", None, None), now).unwrap().hours(), 168);
        let c = TimeRange::from_params(&params("custom", Some("2026-01-01T00:00"), Some("2026-01-02")), now).unwrap();
        assert_eq!(c.hours(), 24);
        assert_eq!(c.query(), "range=custom&from=2026-01-01T00:00&to=2026-01-02T00:00");
        assert!(TimeRange::from_params(&params("1y", None, None), now).unwrap_err().contains("not one of"));
        assert!(TimeRange::from_params(&params("custom", Some("x"), None), now).unwrap_err().contains("'from'"));
        let backwards = params("custom", Some("2026-01-02T00:00"), Some("2026-01-01T00:00"));
        assert!(TimeRange::from_params(&backwards, now).unwrap_err().contains("before"));
    }
}
