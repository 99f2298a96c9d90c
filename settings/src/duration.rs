//! Durations: humantime text (`"500ms"`, `"10s"`, `"15m"`, `"1h 30m"`, `"7d"`) or a whole
//! number of seconds. Use as `#[serde(with = "fimlake_settings::duration")]`, or
//! `fimlake_settings::duration::option` for an optional one; written back as humantime text.

use std::time::Duration;

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses humantime text or a number of seconds. The error says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration '{text}': {e} (expected a number of seconds or a duration such as 500ms, 10s, 15m, 1h 30m, 7d)")
    })
}

/// Humantime text: `5m`, `1h 30m`, `500ms`.
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Raw::Text(text) => parse(&text).map_err(D::Error::custom),
    }
}

/// A number of seconds or a text, as the file has it.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a duration: a number of seconds or a text such as 10s, 15m, 1h")]
enum Raw {
    Seconds(u64),
    Text(String),
}

/// The same grammar for an `Option<Duration>` (absent or null is `None`).
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match duration {
            Some(d) => super::serialize(d, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
    struct Settings {
        #[serde(with = "super")]
        every: Duration,
        #[serde(default, with = "super::option")]
        delay: Option<Duration>,
    }

    fn read(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_are_seconds_and_text_is_humantime() {
        assert_eq!(read("every = 300").unwrap().every, Duration::from_secs(300));
        assert_eq!(read("every = \"300\"").unwrap().every, Duration::from_secs(300));
        assert_eq!(read("every = \"1h 30m\"").unwrap().every, Duration::from_secs(5400));
        assert_eq!(read("every = \"500ms\"").unwrap().every, Duration::from_millis(500));
        assert_eq!(read("every = \"7d\"\ndelay = \"2m\"").unwrap().delay, Some(Duration::from_secs(120)));
        assert_eq!(read("every = 1").unwrap().delay, None);
    }

    #[test]
    fn a_bad_duration_says_what_was_expected() {
        let e = read("every = \"5 parsecs\"").unwrap_err();
        assert!(e.contains("invalid duration '5 parsecs'") && e.contains("15m"), "{e}");
        assert!(read("every = -5").is_err());
        assert!(read("every = true").unwrap_err().contains("a number of seconds or a text"));
    }

    #[test]
    fn written_back_as_text_that_reads_the_same() {
        let settings = Settings { every: Duration::from_secs(5400), delay: Some(Duration::from_millis(1500)) };
        let text = toml::to_string(&settings).unwrap();
        assert_eq!(read(&text).unwrap(), settings);
        assert!(text.contains("every = \"1h 30m\""), "{text}");
    }
}
