//! Embedding answers as streamed JSON: the vectors are written a few
//! hundred rows at a time as hyper asks for them, so the answer's text
//! (about four times the floats) is never whole in memory. What is held is
//! the floats themselves, which admission has charged.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Frame;

/// Rows written per frame: with 384 floats a row, about 128 KiB of text.
const ROWS_A_FRAME: usize = 32;

/// Writes one row (its index, its floats) into the answer.
pub type WriteRow = fn(&mut Vec<u8>, usize, &[f32]);

/// A 200 whose JSON body is `open`, then every row of `vectors` (`dim`
/// floats each) written by `row` and separated by commas, then `close`.
pub fn answer(
    vectors: Vec<f32>,
    dim: usize,
    open: String,
    row: WriteRow,
    close: String,
) -> Response {
    let body =
        JsonRows { vectors, dim: dim.max(1), next: 0, open: Some(open), close: Some(close), row };
    let mut response = Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Writes `floats` as a JSON array.
pub fn floats(out: &mut Vec<u8>, floats: &[f32]) {
    // Writing into a Vec cannot fail, and f32s always serialize.
    let _ = serde_json::to_writer(out, floats);
}

struct JsonRows {
    vectors: Vec<f32>,
    dim: usize,
    next: usize,
    open: Option<String>,
    close: Option<String>,
    row: WriteRow,
}

impl JsonRows {
    fn rows(&self) -> usize {
        self.vectors.len() / self.dim
    }
}

impl HttpBody for JsonRows {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        if let Some(open) = this.open.take() {
            out.extend_from_slice(open.as_bytes());
        }
        let end = (this.next + ROWS_A_FRAME).min(this.rows());
        for i in this.next..end {
            if i > 0 {
                out.push(b',');
            }
            (this.row)(&mut out, i, &this.vectors[i * this.dim..][..this.dim]);
        }
        this.next = end;
        if this.next == this.rows()
            && let Some(close) = this.close.take()
        {
            out.extend_from_slice(close.as_bytes());
        }
        if out.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.open.is_none() && self.close.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn rows_stream_as_one_json_document() {
        let row: WriteRow = |out, i, v| {
            out.extend_from_slice(format!("{{\"i\":{i},\"v\":").as_bytes());
            floats(out, v);
            out.push(b'}');
        };
        let vectors: Vec<f32> = (0..100 * 3).map(|x| x as f32 * 0.5).collect();
        let response = answer(vectors, 3, "[".into(), row, "]".into());
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("one JSON document");
        assert_eq!(doc.as_array().map(Vec::len), Some(100));
        assert_eq!(doc[99], serde_json::json!({"i": 99, "v": [148.5, 149.0, 149.5]}));
        let empty = answer(Vec::new(), 3, "[".into(), row, "]".into());
        let bytes = empty.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"[]");
    }
}
