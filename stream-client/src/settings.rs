//! The client's settings by name: the one list of names, units and parsers
//! that the CLI (`--set NAME=VALUE`), Python (`Scorer(..., NAME=value)`)
//! and the JVM (`Scorer.builder(...).set(NAME, value)`) all feed. A binding
//! hands over names and values as text; the core owns the names, the
//! defaults ([`ClientConfig::default`]), the units and the checks
//! ([`ClientConfig::validate`]). A new setting is a field, its default and
//! one line in [`SETTINGS`]: no binding changes.
//!
//! ```
//! use stream_client::ClientConfig;
//!
//! let config = ClientConfig::from_settings([
//!     ("urls", "http://127.0.0.1:8099,http://127.0.0.1:8100"),
//!     ("batch_rows", "1024"),
//!     ("timeout", "500ms"),
//!     ("user_agent", "churn-scoring"),
//! ])?;
//! assert_eq!(config.batch_rows, 1024);
//! assert_eq!(config.setting("timeout").as_deref(), Some("0.5s"));
//! # Ok::<(), stream_client::ScoreError>(())
//! ```

use std::time::Duration;

use crate::config::{ClientConfig, Token};
use crate::error::ScoreError;

/// One setting: its name, the kind of value it takes, what it does, how a
/// value is applied and how the current one reads back.
pub struct Setting {
    /// The name every binding uses (snake_case).
    pub name: &'static str,
    /// What the value is, in words: `count`, `seconds`, `text`...
    pub unit: &'static str,
    /// What it does, in a sentence.
    pub doc: &'static str,
    apply: fn(&mut ClientConfig, &str) -> Result<(), String>,
    show: fn(&ClientConfig) -> Option<String>,
}

macro_rules! setting {
    ($name:literal, $unit:literal, $doc:literal, |$c:ident, $v:ident| $apply:expr, |$s:ident| $show:expr $(,)?) => {
        Setting {
            name: $name,
            unit: $unit,
            doc: $doc,
            apply: |$c: &mut ClientConfig, $v: &str| -> Result<(), String> {
                $apply;
                Ok(())
            },
            show: |$s: &ClientConfig| -> Option<String> { $show },
        }
    };
}

/// Every setting, in the order `--help` and the docs list them.
pub const SETTINGS: &[Setting] = &[
    setting!(
        "urls",
        "comma-separated URLs",
        "the servers' base URLs (or an nginx in front)",
        |c, v| c.urls =
            v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect(),
        |c| Some(c.urls.join(","))
    ),
    setting!(
        "columns",
        "count",
        "input width; 0: learned from the first batch",
        |c, v| c.columns = number(v)?,
        |c| Some(c.columns.to_string())
    ),
    setting!(
        "score_columns",
        "count",
        "scores per row every answer must have; empty: the first answer's",
        |c, v| c.score_columns = optional(v).map(number).transpose()?,
        |c| c.score_columns.map(|n| n.to_string())
    ),
    setting!(
        "token",
        "text",
        "bearer token for servers started with --auth-token-file",
        |c, v| c.token = optional(v).map(Token::new),
        |c| c.token.as_ref().map(|_| "***".to_string())
    ),
    setting!(
        "model",
        "name",
        "the model (/models/NAME/score); empty: the server's default",
        |c, v| c.model = optional(v).map(String::from),
        |c| c.model.clone()
    ),
    setting!(
        "output",
        "name",
        "the model output (?output=NAME); empty: the default one",
        |c, v| c.output = optional(v).map(String::from),
        |c| c.output.clone()
    ),
    setting!(
        "truncate",
        "true or false",
        "cut texts longer than an embedding model's limit",
        |c, v| c.truncate = boolean(v)?,
        |c| Some(c.truncate.to_string())
    ),
    setting!(
        "chunk",
        "true or false",
        "embed texts longer than an embedding model's limit whole, in windows",
        |c, v| c.chunk = boolean(v)?,
        |c| Some(c.chunk.to_string())
    ),
    setting!(
        "chunk_overlap",
        "count",
        "tokens each window shares with the one before; empty: 0",
        |c, v| c.chunk_overlap = optional(v).map(number).transpose()?,
        |c| c.chunk_overlap.map(|n| n.to_string())
    ),
    setting!(
        "prompt_name",
        "name",
        "an embedding model's prompt put before every text; empty: the model's default",
        |c, v| c.prompt_name = optional(v).map(String::from),
        |c| c.prompt_name.clone()
    ),
    setting!(
        "batch_rows",
        "count",
        "most rows per request",
        |c, v| c.batch_rows = number(v)?,
        |c| Some(c.batch_rows.to_string())
    ),
    setting!(
        "batch_bytes",
        "bytes",
        "most body bytes per request",
        |c, v| c.batch_bytes = number(v)?,
        |c| Some(c.batch_bytes.to_string())
    ),
    setting!(
        "in_flight",
        "count",
        "most requests in flight per stream (the ceiling when adaptive)",
        |c, v| c.in_flight = number(v)?,
        |c| Some(c.in_flight.to_string())
    ),
    setting!(
        "adaptive",
        "true or false",
        "adapt each server's concurrency to its answers",
        |c, v| c.adaptive = boolean(v)?,
        |c| Some(c.adaptive.to_string())
    ),
    setting!(
        "model_version",
        "version",
        "the model version to score with; empty: the first answer's",
        |c, v| c.model_version = optional(v).map(String::from),
        |c| c.model_version.clone()
    ),
    setting!(
        "timeout",
        "seconds",
        "per-attempt timeout, connecting again included (30, 2.5, 500ms, 1m)",
        |c, v| c.timeout = seconds(v)?,
        |c| Some(show_seconds(c.timeout))
    ),
    setting!(
        "deadline",
        "seconds",
        "a whole stream's deadline; empty: none",
        |c, v| c.deadline = optional(v).map(seconds).transpose()?,
        |c| c.deadline.map(show_seconds)
    ),
    setting!(
        "max_attempts",
        "count",
        "most attempts per batch, the first included",
        |c, v| c.max_attempts = number(v)?,
        |c| Some(c.max_attempts.to_string())
    ),
    setting!(
        "backoff_base",
        "seconds",
        "ceiling of the first retry's jittered wait",
        |c, v| c.backoff.base = seconds(v)?,
        |c| Some(show_seconds(c.backoff.base))
    ),
    setting!(
        "backoff_max",
        "seconds",
        "ceiling of any retry's wait, Retry-After included",
        |c, v| c.backoff.max = seconds(v)?,
        |c| Some(show_seconds(c.backoff.max))
    ),
    setting!(
        "retry_ratio",
        "fraction",
        "retries allowed as a fraction of requests",
        |c, v| c.retry_ratio = number(v)?,
        |c| Some(c.retry_ratio.to_string())
    ),
    setting!(
        "retry_min_per_sec",
        "per second",
        "retries always allowed per second",
        |c, v| c.retry_min_per_sec = number(v)?,
        |c| Some(c.retry_min_per_sec.to_string())
    ),
    setting!(
        "eject_after",
        "count",
        "consecutive failures that put an endpoint aside",
        |c, v| c.eject_after = number(v)?,
        |c| Some(c.eject_after.to_string())
    ),
    setting!(
        "eject_for",
        "seconds",
        "how long an endpoint stays aside",
        |c, v| c.eject_for = seconds(v)?,
        |c| Some(show_seconds(c.eject_for))
    ),
    setting!(
        "keep_going",
        "true or false",
        "after a batch fails for good, yield its error and go on",
        |c, v| c.keep_going = boolean(v)?,
        |c| Some(c.keep_going.to_string())
    ),
    setting!(
        "user_agent",
        "text",
        "added to the User-Agent header, to tell jobs apart in access logs",
        |c, v| c.user_agent = optional(v).map(String::from),
        |c| c.user_agent.clone()
    ),
];

impl ClientConfig {
    /// The defaults with `pairs` applied in order, then checked: the one
    /// way the bindings and the CLI build a configuration.
    pub fn from_settings<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ClientConfig, ScoreError> {
        let mut config = ClientConfig::default();
        for (name, value) in pairs {
            config.set(name, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one setting by name from its text (an empty value unsets an
    /// optional one). Checks the value's form; [`ClientConfig::validate`]
    /// checks the whole.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ScoreError> {
        let setting = find(name)?;
        (setting.apply)(self, value.trim())
            .map_err(|why| ScoreError::Config(format!("{name} {value:?} is not valid: {why}")))
    }

    /// The current value of a setting, as text (`None` when unset; a token
    /// reads `***`).
    pub fn setting(&self, name: &str) -> Option<String> {
        find(name).ok().and_then(|s| (s.show)(self))
    }
}

/// The settings as a Markdown table (name, value, default, what it does):
/// `docs/client-settings.md` is this, checked by a test.
pub fn markdown() -> String {
    let defaults = ClientConfig::default();
    let mut out = String::from("| Setting | Value | Default | What it does |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = (s.show)(&defaults).filter(|d| !d.is_empty());
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.name,
            s.unit,
            default.map_or("(none)".to_string(), |d| format!("`{d}`")),
            s.doc
        ));
    }
    out
}

fn find(name: &str) -> Result<&'static Setting, ScoreError> {
    SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        ScoreError::Config(format!(
            "unknown setting {name:?}; the settings are {}",
            names.join(", ")
        ))
    })
}

fn optional(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "not a number of the right kind".to_string())
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("say true or false".into()),
    }
}

/// A positive duration: seconds (`2.5`) or a number with a unit (`500ms`,
/// `30s`, `1m`).
pub(crate) fn seconds(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number.parse().map_err(|_| "not a duration like 30, 2.5s or 500ms".to_string())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        other => return Err(format!("unknown unit {other:?}; use ms, s or m")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be a positive number of seconds".to_string())
}

fn show_seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_reads_back_what_it_was_set_to() {
        let mut c = ClientConfig::new(["http://a:1"], 3);
        for s in SETTINGS {
            let before = (s.show)(&c);
            if let Some(value) = &before {
                c.set(s.name, value.replace("***", "secret").as_str()).expect(s.name);
                assert_eq!((s.show)(&c), before, "{}", s.name);
            }
        }
        assert_eq!(
            SETTINGS.iter().map(|s| s.name).collect::<std::collections::HashSet<_>>().len(),
            SETTINGS.len(),
            "names are unique"
        );
    }

    /// The docs list every setting with its default as the code has it;
    /// `SCORE_WRITE_DOCS=1 cargo test -p stream-client settings` rewrites
    /// the table after a change.
    #[test]
    fn the_docs_table_is_the_code_s() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/client-settings.md");
        let doc = std::fs::read_to_string(path).expect("docs/client-settings.md");
        let (start, end) = ("<!-- settings table -->\n", "<!-- end of settings table -->");
        let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
            panic!("{path} lacks the table markers")
        };
        let table = markdown();
        if std::env::var_os("SCORE_WRITE_DOCS").is_some() {
            let new = format!("{}{table}{}", &doc[..a + start.len()], &doc[b..]);
            std::fs::write(path, new).expect("write the docs");
            return;
        }
        assert_eq!(
            &doc[a + start.len()..b],
            table,
            "{path} is out of date: SCORE_WRITE_DOCS=1 cargo test -p stream-client settings"
        );
    }

    #[test]
    fn values_parse_in_their_units() {
        let c = ClientConfig::from_settings([
            ("urls", "http://a:1, http://b:2"),
            ("timeout", "250ms"),
            ("deadline", "1m"),
            ("adaptive", "false"),
            ("score_columns", "2"),
            ("retry_ratio", "0.5"),
            ("user_agent", "job-7"),
        ])
        .expect("valid");
        assert_eq!(c.urls, ["http://a:1", "http://b:2"]);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.deadline, Some(Duration::from_secs(60)));
        assert!(!c.adaptive);
        assert_eq!(c.score_columns, Some(2));
        assert_eq!(c.retry_ratio, 0.5);
        assert_eq!(c.user_agent.as_deref(), Some("job-7"));
        assert_eq!(c.setting("token"), None);
    }

    #[test]
    fn bad_names_and_values_are_refused_in_a_sentence() {
        let err = |pairs: &[(&str, &str)]| {
            ClientConfig::from_settings(pairs.iter().copied()).expect_err("refused").to_string()
        };
        let unknown = err(&[("urls", "http://a:1"), ("batchrows", "3")]);
        assert!(
            unknown.contains("unknown setting \"batchrows\"") && unknown.contains("batch_rows"),
            "{unknown}"
        );
        let e = err(&[("urls", "http://a:1"), ("timeout", "0")]);
        assert!(
            e.contains("timeout \"0\" is not valid: must be a positive number of seconds"),
            "{e}"
        );
        let e = err(&[("urls", "http://a:1"), ("in_flight", "0")]);
        assert!(e.contains("in_flight must be at least 1"), "{e}");
        let e = err(&[("urls", "http://a:1"), ("adaptive", "maybe")]);
        assert!(e.contains("say true or false"), "{e}");
        let e = err(&[("urls", "http://a:1"), ("user_agent", "a\nb")]);
        assert!(e.contains("user_agent"), "{e}");
        assert!(err(&[]).contains("at least one server URL"));
    }
}
