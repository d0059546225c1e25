//! The client's configuration: every default written once
//! ([`ClientConfig::default`]), every check made once
//! ([`ClientConfig::validate`]). The CLI and the bindings set it by name
//! ([`crate::settings`]) and take their defaults from here.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::error::ScoreError;
use crate::retry::Backoff;

/// A bearer token for servers started with `--auth-token-file`. Its
/// `Debug` shows nothing of it, so a logged configuration leaks nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Wraps a token (surrounding blanks trimmed).
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into().trim().to_string())
    }

    /// The `Authorization` header value.
    pub(crate) fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Client configuration. `ClientConfig::new(urls, columns)` gives the
/// defaults for a job; every field is public to adjust.
///
/// Equal configurations hash equally, so a binding can keep one client (and
/// its endpoint health and retry budget) per configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URLs of the servers (`http://host:port`), or of an nginx in front.
    pub urls: Vec<String>,
    /// Input width n; sent as `X-Score-Columns` so a wrong schema fails at once.
    pub columns: usize,
    /// Scores per row of the chosen output, when known up front (from
    /// `/models`); otherwise learned from the first answer. Every answer
    /// must have this width.
    pub score_columns: Option<usize>,
    /// Bearer token, sent as `Authorization: Bearer …` to servers that
    /// require one.
    pub token: Option<Token>,
    /// Model name (`/models/NAME/score`); `None` for the server's default.
    pub model: Option<String>,
    /// Model output (`?output=NAME`); `None` for the default output.
    pub output: Option<String>,
    /// For an embedding model: cut texts longer than its token limit
    /// (`?truncate=true`) instead of failing their request with a 413
    /// naming the text.
    pub truncate: bool,
    /// For an embedding model: embed texts longer than its token limit
    /// whole, in windows pooled into one vector (`?chunk=true`).
    pub chunk: bool,
    /// Tokens each window shares with the one before
    /// (`?chunk_overlap=N`); `None`: the server's default, 0.
    pub chunk_overlap: Option<usize>,
    /// For an embedding model: the prompt put before every text
    /// (`?prompt_name=NAME`); `None`: the model's default prompt, if any.
    pub prompt_name: Option<String>,
    /// Most rows per request.
    pub batch_rows: usize,
    /// Most body bytes per request (keep under the server's body limit).
    pub batch_bytes: usize,
    /// Most requests in flight for one stream: the backpressure window.
    /// With `adaptive` it is the ceiling: each endpoint's limit is found
    /// from its answers and a stream keeps at most their sum in flight,
    /// and a few batches more ready ([`crate::adaptive::headroom`]).
    pub in_flight: usize,
    /// Adapt each endpoint's concurrency to what it answers
    /// ([`crate::adaptive`]); off, every stream keeps `in_flight` requests
    /// in flight whatever the servers.
    pub adaptive: bool,
    /// The model version to score with (`X-Model-Version`, as `/models`
    /// lists it); a server serving another answers 409 and the batch goes
    /// to another. `None`: the first answer's version, pinned for the
    /// rest of the job either way.
    pub model_version: Option<String>,
    /// Per-attempt timeout; the request is cancelled when it passes, and the
    /// server is told (`X-Score-Deadline-Ms`) not to start it later.
    pub timeout: Duration,
    /// Optional deadline for a whole stream; it bounds every wait, retries
    /// and `Retry-After` included.
    pub deadline: Option<Duration>,
    /// Most attempts per batch, the first included.
    pub max_attempts: u32,
    /// Backoff between attempts; `backoff.max` also caps a server's
    /// `Retry-After`.
    pub backoff: Backoff,
    /// Retries allowed as a fraction of requests (the retry budget).
    pub retry_ratio: f64,
    /// Retries always allowed per second, whatever the ratio.
    pub retry_min_per_sec: f64,
    /// Consecutive failures that put an endpoint aside.
    pub eject_after: u32,
    /// How long an endpoint stays aside.
    pub eject_for: Duration,
    /// After a batch fails for good (refused, retries given up, wrong
    /// answer), yield its error and go on with the next batches instead of
    /// ending the output. For callers that record errors per row.
    pub keep_going: bool,
    /// Added to the `User-Agent` header (`stream-client/VERSION TEXT`), so
    /// a fleet's access logs tell jobs apart.
    pub user_agent: Option<String>,
}

impl Default for ClientConfig {
    /// 4,096-row batches (at most 16 MiB), adaptive concurrency up to 32
    /// requests in flight, the first answer's model version, 60 s per attempt,
    /// 8 attempts, backoff from 50 ms to 10 s, retries capped at 20 % of
    /// requests plus 10 per second, an endpoint put aside for 10 s after 3
    /// failures in a row. No URLs and no width: set them.
    fn default() -> Self {
        ClientConfig {
            urls: Vec::new(),
            columns: 0,
            score_columns: None,
            token: None,
            model: None,
            output: None,
            truncate: false,
            chunk: false,
            chunk_overlap: None,
            prompt_name: None,
            batch_rows: 4096,
            batch_bytes: 16 << 20,
            in_flight: 32,
            adaptive: true,
            model_version: None,
            timeout: Duration::from_secs(60),
            deadline: None,
            max_attempts: 8,
            backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_secs(10) },
            retry_ratio: 0.2,
            retry_min_per_sec: 10.0,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            keep_going: false,
            user_agent: None,
        }
    }
}

impl ClientConfig {
    /// The defaults for `urls` and a model of `columns` inputs.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>, columns: usize) -> Self {
        ClientConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            columns,
            ..ClientConfig::default()
        }
    }

    /// Checks every setting; the error says which and why. `columns` may
    /// still be 0 here (a binding learns it from the first batch);
    /// [`Client::new`](crate::Client::new) needs it.
    pub fn validate(&self) -> Result<(), ScoreError> {
        let fail = |m: String| Err(ScoreError::Config(m));
        if self.urls.is_empty() {
            return fail("at least one server URL is needed".into());
        }
        if let Some(url) =
            self.urls.iter().find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return fail(format!("{url:?} is not an http:// URL"));
        }
        for (name, value) in [
            ("batch_rows", self.batch_rows),
            ("batch_bytes", self.batch_bytes),
            ("in_flight", self.in_flight),
            ("max_attempts", self.max_attempts as usize),
            ("score_columns", self.score_columns.unwrap_or(1)),
        ] {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if self.token.as_ref().is_some_and(|t| {
            t.0.is_empty() || t.0.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return fail("the token is empty or holds spaces or control characters".into());
        }
        if self.timeout.is_zero() || self.deadline.is_some_and(|d| d.is_zero()) {
            return fail("timeout and deadline must be positive".into());
        }
        if !(self.retry_ratio >= 0.0 && self.retry_min_per_sec >= 0.0) {
            return fail("retry_ratio and retry_min_per_sec must be zero or more".into());
        }
        if self.model_version.as_deref().is_some_and(|v| {
            v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return fail(format!(
                "model_version {:?} is not a version as /models lists it",
                self.model_version.as_deref().unwrap_or_default()
            ));
        }
        if self.user_agent.as_deref().is_some_and(|v| {
            v.is_empty() || v.len() > 200 || !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        }) {
            return fail(
                "user_agent must be 1 to 200 printable ASCII characters (no line breaks)".into(),
            );
        }
        for (what, name) in [("model", &self.model), ("output", &self.output)] {
            if let Some(n) =
                name.as_deref().filter(|n| n.is_empty() || n.contains(['/', '?', '&', '#']))
            {
                return fail(format!(
                    "{what} {n:?} is not a name a server gives (no '/', '?', '&' or '#'); \
                     GET /models lists them"
                ));
            }
        }
        Ok(())
    }

    /// The `User-Agent` header every request carries.
    pub(crate) fn user_agent_header(&self) -> String {
        let ours = concat!("stream-client/", env!("CARGO_PKG_VERSION"));
        match &self.user_agent {
            Some(extra) => format!("{ours} {extra}"),
            None => ours.to_string(),
        }
    }

    /// The scoring URL of the server at `base`.
    pub(crate) fn score_url(&self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        let mut url = match &self.model {
            Some(model) => format!("{base}/models/{model}/score"),
            None => format!("{base}/score"),
        };
        let mut query = Vec::new();
        if let Some(output) = &self.output {
            query.push(format!("output={output}"));
        }
        if self.truncate {
            query.push("truncate=true".to_string());
        }
        if self.chunk {
            query.push("chunk=true".to_string());
        }
        if let Some(overlap) = self.chunk_overlap {
            query.push(format!("chunk_overlap={overlap}"));
        }
        if let Some(prompt) = &self.prompt_name {
            query.push(format!("prompt_name={}", encode_query(prompt)));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// Every field, floats by their bits: the basis of `Eq` and `Hash`.
    #[allow(clippy::type_complexity)]
    fn key(
        &self,
    ) -> (
        (&[String], usize, Option<usize>, &Option<String>, &Option<String>, &Option<Token>),
        (usize, usize, usize, Duration, Option<Duration>, u32),
        (Duration, Duration, u64, u64, u32, Duration, bool, bool),
        (bool, &Option<String>, &Option<String>, bool, Option<usize>, &Option<String>),
    ) {
        (
            (&self.urls, self.columns, self.score_columns, &self.model, &self.output, &self.token),
            (
                self.batch_rows,
                self.batch_bytes,
                self.in_flight,
                self.timeout,
                self.deadline,
                self.max_attempts,
            ),
            (
                self.backoff.base,
                self.backoff.max,
                self.retry_ratio.to_bits(),
                self.retry_min_per_sec.to_bits(),
                self.eject_after,
                self.eject_for,
                self.keep_going,
                self.truncate,
            ),
            (
                self.adaptive,
                &self.model_version,
                &self.user_agent,
                self.chunk,
                self.chunk_overlap,
                &self.prompt_name,
            ),
        )
    }
}

impl PartialEq for ClientConfig {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ClientConfig {}

impl Hash for ClientConfig {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// `value` for a URL's query (form encoding: `&`, `=`, `#`, `%` and the
/// rest escaped).
fn encode_query(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting() {
        let ok = ClientConfig::new(["http://a:1"], 3);
        assert!(ok.validate().is_ok());
        assert!(ClientConfig::new(["http://a:1"], 0).validate().is_ok(), "width not known yet");
        let mut c = ok.clone();
        c.in_flight = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid configuration: in_flight must be at least 1"
        );
        let mut c = ok.clone();
        c.urls = vec!["a:1".into()];
        assert!(c.validate().unwrap_err().to_string().contains("not an http:// URL"));
        let mut c = ok.clone();
        c.model = Some("a/b".into());
        assert!(c.validate().is_err());
        let mut c = ok;
        c.retry_ratio = f64::NAN;
        assert!(c.validate().is_err());
    }

    #[test]
    fn equal_configs_hash_equal() {
        use std::collections::HashSet;
        let a = ClientConfig::new(["http://a:1"], 3);
        let mut b = a.clone();
        let set: HashSet<ClientConfig> = [a.clone(), b.clone()].into_iter().collect();
        assert_eq!(set.len(), 1);
        b.retry_ratio = 0.3;
        assert_ne!(a, b);
        let mut c = a.clone();
        c.truncate = true;
        assert_ne!(a, c);
    }

    #[test]
    fn score_url_carries_output_and_truncate() {
        let mut c = ClientConfig::new(["http://a:1/"], 3);
        assert_eq!(c.score_url("http://a:1/"), "http://a:1/score");
        c.model = Some("mini".into());
        c.truncate = true;
        assert_eq!(c.score_url("http://a:1"), "http://a:1/models/mini/score?truncate=true");
        c.output = Some("pooled".into());
        assert_eq!(
            c.score_url("http://a:1"),
            "http://a:1/models/mini/score?output=pooled&truncate=true"
        );
        c.truncate = false;
        let chunked = ClientConfig::from_settings([
            ("urls", "http://a:1"),
            ("chunk", "true"),
            ("chunk_overlap", "32"),
        ])
        .expect("chunk settings");
        (c.chunk, c.chunk_overlap) = (chunked.chunk, chunked.chunk_overlap);
        assert_eq!(
            c.score_url("http://a:1"),
            "http://a:1/models/mini/score?output=pooled&chunk=true&chunk_overlap=32"
        );
        (c.chunk, c.chunk_overlap, c.prompt_name) = (false, None, Some("query: en&ru".into()));
        assert_eq!(
            c.score_url("http://a:1"),
            "http://a:1/models/mini/score?output=pooled&prompt_name=query%3A+en%26ru"
        );
    }
}
