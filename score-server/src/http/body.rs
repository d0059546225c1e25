//! Request bodies and the headers that describe them: content type, the
//! column check, the deadline, reading under a limit, a timeout and a
//! minimum rate, and decoding binary or JSON rows.
//!
//! These are functions rather than one `FromRequest` extractor because
//! admission is charged while the body is read: an overloaded server must
//! not buffer a 64 MiB body only to refuse it.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use score_protocol::media::BodyFormat as Format;
use score_protocol::{codec, headers};
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

use crate::admission::{Admission, BodyCharge};
use crate::error::ApiError;

/// The body's format from its Content-Type. A missing Content-Type is read
/// as binary, the protocol's native form.
pub fn format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let value = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
    Format::from_content_type(value).map_err(ApiError::UnsupportedMediaType)
}

/// Checks `X-Score-Columns` against the model's width.
pub fn check_columns(headers: &HeaderMap, model: &str, expected: usize) -> Result<(), ApiError> {
    let Some(sent) = parse_header::<usize>(headers, headers::COLUMNS)? else {
        return Ok(());
    };
    if sent != expected {
        return Err(ApiError::ColumnMismatch { model: model.to_string(), sent, expected });
    }
    Ok(())
}

/// The absolute deadline from `X-Score-Deadline-Ms`, counted from `arrival`.
pub fn deadline(headers: &HeaderMap, arrival: Instant) -> Result<Option<Instant>, ApiError> {
    Ok(parse_header::<u64>(headers, headers::DEADLINE_MS)?
        .map(|ms| arrival + Duration::from_millis(ms.min(headers::MAX_DEADLINE_MS))))
}

/// The model version a request is pinned to (`X-Model-Version`), if any.
pub fn pinned_version(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(headers::MODEL_VERSION) else { return Ok(None) };
    match value.to_str().map(str::trim) {
        Ok(v) if !v.is_empty() && v.len() <= 128 => Ok(Some(v.to_string())),
        _ => Err(ApiError::BadParameter(format!(
            "header {} must be a model version as /models lists it (e.g. 0123456789abcdef)",
            headers::MODEL_VERSION
        ))),
    }
}

/// Refuses (409) a request pinned to another version than `model`'s.
pub fn check_version(pinned: Option<&str>, model: &score_engine::Model) -> Result<(), ApiError> {
    match pinned {
        Some(asked) if asked != model.version => Err(ApiError::VersionMismatch {
            model: model.name.clone(),
            serving: model.version.clone(),
            asked: asked.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The declared Content-Length, if any.
pub fn content_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    parse_header::<usize>(headers, header::CONTENT_LENGTH.as_str())
}

fn parse_header<T: std::str::FromStr>(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<T>, ApiError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    value.to_str().ok().and_then(|s| s.trim().parse().ok()).map(Some).ok_or_else(|| {
        ApiError::BadParameter(format!("header {name} must be a non-negative integer"))
    })
}

/// The first buffer of a body without a Content-Length.
const CHUNKED_FIRST: usize = 64 << 10;

/// How a body must arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyRules {
    /// Most bytes.
    pub limit: usize,
    /// Longest time for the whole body.
    pub timeout: Duration,
    /// Slowest average rate accepted after `grace`, bytes per second (0:
    /// none). A sender may fall behind by `grace` at any point.
    pub min_rate: usize,
    /// Time allowed before the rate counts.
    pub grace: Duration,
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Over the limit.
    TooLarge,
    /// The admission budget is spent.
    Overloaded,
    /// The whole body did not arrive within the timeout.
    Timeout,
    /// The body arrived slower than the minimum rate.
    TooSlow,
    /// The connection broke or its framing is invalid.
    Transport(String),
}

/// Reads the whole body into one buffer, charging admission for the bytes
/// that arrive (never for what the headers promise), refusing more than
/// `rules.limit` bytes, and cutting a sender that stalls or trickles.
pub async fn read(
    body: &mut Body,
    declared: Option<usize>,
    admission: &Admission,
    charge: &mut BodyCharge,
    rules: &BodyRules,
) -> Result<Bytes, ReadError> {
    let started = tokio::time::Instant::now();
    let overall = started + rules.timeout;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The next frame is due when the average rate since the grace
        // period would fall under the minimum, and at the latest when the
        // whole body is due.
        let due = match rules.min_rate {
            0 => overall,
            rate => {
                let allowed = Duration::from_secs_f64(buf.len() as f64 / rate as f64);
                overall.min(started + rules.grace + allowed)
            }
        };
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Ok(Some(frame)) => frame.map_err(|e| ReadError::Transport(e.to_string()))?,
            Ok(None) => return Ok(Bytes::from(buf)),
            Err(_) if due >= overall => return Err(ReadError::Timeout),
            Err(_) => return Err(ReadError::TooSlow),
        };
        let Ok(data) = frame.into_data() else { continue };
        let received = buf.len() + data.len();
        if received > rules.limit {
            return Err(ReadError::TooLarge);
        }
        // Admission is charged for the bytes written (the kernel backs a
        // buffer page by page as it is written, so an allocation's unused
        // tail costs no memory), a little ahead to keep semaphore
        // operations few: the charge at most doubles, by at most 1 MiB, and
        // never past a declared length (so that a budget of n bodies admits
        // n bodies).
        let ahead = charge.held().clamp(crate::admission::FIRST_STEP, 1 << 20);
        let target = (received + ahead).min(declared.unwrap_or(usize::MAX).max(received));
        if received > buf.capacity() {
            // A declared length gets its buffer at once: no move ever. A
            // chunked body starts small (most are) and past that gets the
            // limit at once: one move of at most CHUNKED_FIRST bytes, where
            // doubling would move it again and again (and the allocator
            // keeps freed blocks a while: twice the body at the peak).
            // While it moves, the old copy is charged too.
            let capacity = match declared {
                Some(declared) => declared.min(rules.limit),
                None if buf.capacity() == 0 => CHUNKED_FIRST.min(rules.limit),
                None => rules.limit,
            }
            .max(received);
            charge.grow(admission, target + buf.len()).map_err(|_| ReadError::Overloaded)?;
            buf.reserve_exact(capacity - buf.len());
            charge.shrink_to(target);
        } else if received > charge.held() {
            charge.grow(admission, target).map_err(|_| ReadError::Overloaded)?;
        }
        buf.extend_from_slice(&data);
    }
}

/// Checks a binary body and returns its row count.
pub fn binary_rows(body: &Bytes, columns: usize) -> Result<usize, ApiError> {
    codec::rows_in(body.len(), columns).map_err(|e| {
        ApiError::BadShape(format!("body of {e}: the model takes {columns} float32 columns"))
    })
}

/// Parses `[[...], ...]` straight into float32 little-endian rows (no
/// intermediate `Vec<Vec<f64>>`) and returns them with the row count.
pub fn json_rows(body: &[u8], columns: usize) -> Result<(Bytes, usize), ApiError> {
    // Every number takes at least two bytes of JSON (a digit and a comma or
    // bracket), so the floats take at most twice the body: reserved once,
    // up front, never doubled past it (admission charges the same bound).
    let mut out = Vec::with_capacity(json_decoded_bound(body.len()));
    let mut de = serde_json::Deserializer::from_slice(body);
    let rows = RowsSeed { out: &mut out, columns }
        .deserialize(&mut de)
        .and_then(|rows| de.end().map(|()| rows))
        .map_err(|e| match e.classify() {
            // A wrong row is the caller's shape, said in our own words: the
            // parser's position adds nothing to "row 3 has 2 values".
            serde_json::error::Category::Data => ApiError::BadShape(without_position(&e)),
            _ => ApiError::MalformedJson(e.to_string()),
        })?;
    Ok((Bytes::from(out), rows))
}

/// Most bytes of float32 rows a JSON body of `len` bytes can decode to.
pub fn json_decoded_bound(len: usize) -> usize {
    len.saturating_mul(2).saturating_add(4)
}

/// serde_json's message without the " at line L column C" it appends.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).map_or(text.clone(), str::to_string)
}

struct RowsSeed<'a> {
    out: &'a mut Vec<u8>,
    columns: usize,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of rows, each an array of {} numbers", self.columns)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut rows = 0;
        while seq
            .next_element_seed(RowSeed { out: self.out, columns: self.columns, index: rows })?
            .is_some()
        {
            rows += 1;
        }
        Ok(rows)
    }
}

struct RowSeed<'a> {
    out: &'a mut Vec<u8>,
    columns: usize,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "row {} as an array of {} numbers", self.index, self.columns)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut count = 0;
        while let Some(v) = seq.next_element::<f64>()? {
            count += 1;
            if count > self.columns {
                return Err(A::Error::custom(format!(
                    "row {} has more than {} values, the model takes {}",
                    self.index, self.columns, self.columns
                )));
            }
            let f = v as f32;
            if f.is_infinite() {
                // 1e300 is a valid JSON number but not a float32: refused,
                // not turned into infinity.
                return Err(A::Error::custom(format!(
                    "row {} value {count} ({v:e}) is outside the float32 range (±3.4e38)",
                    self.index
                )));
            }
            self.out.extend_from_slice(&f.to_le_bytes());
        }
        if count != self.columns {
            return Err(A::Error::custom(format!(
                "row {} has {count} values, the model takes {}",
                self.index, self.columns
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_decode_to_le_floats() {
        let (bytes, rows) = json_rows(b"[[1, 2.5], [-3, 4e2]]", 2).expect("valid");
        assert_eq!(rows, 2);
        assert_eq!(codec::decode(&bytes).expect("floats"), vec![1.0, 2.5, -3.0, 400.0]);
    }

    #[test]
    fn json_shape_and_syntax_errors_differ() {
        let short = json_rows(b"[[1, 2], [3]]", 2).unwrap_err();
        assert!(
            matches!(short, ApiError::BadShape(ref m) if m == "row 1 has 1 values, the model takes 2"),
            "{short}"
        );
        let long = json_rows(b"[[1, 2, 3]]", 2).unwrap_err();
        assert!(matches!(long, ApiError::BadShape(_)), "{long}");
        let text = json_rows(b"[[\"a\", 2]]", 2).unwrap_err();
        assert!(matches!(text, ApiError::BadShape(_)), "{text}");
        let broken = json_rows(b"[[1, 2]", 2).unwrap_err();
        assert!(matches!(broken, ApiError::MalformedJson(_)), "{broken}");
        let huge = json_rows(b"[[1, 2], [1e300, 0]]", 2).unwrap_err();
        assert_eq!(
            huge.to_string(),
            "row 1 value 1 (1e300) is outside the float32 range (±3.4e38)"
        );
        let trailing = json_rows(b"[[1, 2]] x", 2).unwrap_err();
        assert!(matches!(trailing, ApiError::MalformedJson(_)), "{trailing}");
    }

    #[test]
    fn binary_rows_need_whole_rows() {
        assert_eq!(binary_rows(&Bytes::from(vec![0u8; 24]), 3).ok(), Some(2));
        assert!(binary_rows(&Bytes::from(vec![0u8; 20]), 3).is_err());
        assert_eq!(binary_rows(&Bytes::new(), 3).ok(), Some(0));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        // (The media types themselves are score-protocol's; this checks the
        // mapping of a refusal.)
        assert_eq!(format(&h).ok(), Some(Format::Binary));
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().expect("valid"));
        assert_eq!(format(&h).ok(), Some(Format::Json));
        h.insert(header::CONTENT_TYPE, "text/csv".parse().expect("valid"));
        assert!(matches!(format(&h), Err(ApiError::UnsupportedMediaType(_))));
    }
}
