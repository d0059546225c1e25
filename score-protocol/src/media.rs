//! Media types of request and response bodies.

/// float32 little-endian, row-major: the protocol's native form.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// `[[...], ...]` rows in, `{"model", ..., "outputs"}` out: for people.
pub const JSON: &str = "application/json";
/// An Arrow IPC stream (record batches): typed columns as Spark holds them.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// `GET /metrics`: Prometheus in the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for `media` (by name, parameters
/// ignored; an item with `q=0` refuses it). `*/*` does not count: the
/// answer's form then follows the request's.
pub fn accepts(accept: Option<&str>, media: &str) -> bool {
    accept.unwrap_or_default().split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name_matches = parts.next().is_some_and(|m| m.eq_ignore_ascii_case(media));
        let refused = parts.any(|p| {
            p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        name_matches && !refused
    })
}

/// How a scoring request's rows are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// float32 little-endian, row-major ([`OCTET_STREAM`]).
    Binary,
    /// JSON rows ([`JSON`]).
    Json,
    /// An Arrow IPC stream ([`ARROW_STREAM`]): one list column of the
    /// model's width, or one numeric column per feature. Answered in
    /// binary.
    Arrow,
}

impl BodyFormat {
    /// The format of a body from its `Content-Type` (parameters such as
    /// `charset` ignored); `None` (no header) is binary. `Err` carries the
    /// media type the server does not take.
    pub fn from_content_type(value: Option<&str>) -> Result<BodyFormat, String> {
        let Some(text) = value else { return Ok(BodyFormat::Binary) };
        let mime = text.split(';').next().unwrap_or_default().trim();
        if mime.eq_ignore_ascii_case(OCTET_STREAM) {
            Ok(BodyFormat::Binary)
        } else if mime.eq_ignore_ascii_case(JSON) {
            Ok(BodyFormat::Json)
        } else if mime.eq_ignore_ascii_case(ARROW_STREAM) {
            Ok(BodyFormat::Arrow)
        } else {
            Err(text.to_string())
        }
    }

    /// The media type of this format.
    pub fn media_type(self) -> &'static str {
        match self {
            BodyFormat::Binary => OCTET_STREAM,
            BodyFormat::Json => JSON,
            BodyFormat::Arrow => ARROW_STREAM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(BodyFormat::from_content_type(None), Ok(BodyFormat::Binary));
        let json = BodyFormat::from_content_type(Some("Application/JSON; charset=utf-8"));
        assert_eq!(json, Ok(BodyFormat::Json));
        let arrow = BodyFormat::from_content_type(Some("application/vnd.apache.arrow.stream"));
        assert_eq!(arrow, Ok(BodyFormat::Arrow));
        assert_eq!(BodyFormat::from_content_type(Some("text/csv")), Err("text/csv".to_string()));
    }

    #[test]
    fn accept_headers() {
        assert!(accepts(Some(ARROW_STREAM), ARROW_STREAM));
        assert!(accepts(
            Some("application/json, application/vnd.apache.arrow.stream;q=0.9"),
            ARROW_STREAM
        ));
        assert!(!accepts(Some("application/vnd.apache.arrow.stream; q=0"), ARROW_STREAM));
        assert!(!accepts(Some("*/*"), ARROW_STREAM));
        assert!(!accepts(None, ARROW_STREAM));
    }
}
