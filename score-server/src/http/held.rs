//! Bodies that carry an obligation past the handler.
//!
//! - [`until_sent`]: an answer keeps its request's admission charge until
//!   hyper has written it (or the connection is gone), not only until the
//!   handler returns: the answer is most of what a request holds once
//!   scored, and a client that reads slowly would otherwise hold it
//!   uncounted.
//! - [`Unread`]: a request body the handler did not read to its end (an
//!   early refusal: a 401, 404, 409, 413, 415 decided from the headers) is
//!   read and thrown away in the background, for a bounded time and size,
//!   and the answer says `Connection: close`: a client still sending then
//!   reads the refusal instead of a reset, and a keep-alive client does not
//!   send its next request down a connection the server is about to close.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::admission::Permit;
use crate::state::AppState;

/// `response`, whose body holds `permit` until it has been written.
pub fn until_sent(response: Response, permit: Permit) -> Response {
    response.map(|inner| Body::new(Held { inner, _permit: permit }))
}

struct Held {
    inner: Body,
    _permit: Permit,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Most bytes of an unread body thrown away, as a multiple of the body
/// limit; past it the connection is simply closed.
const DISCARD_FACTOR: usize = 4;

/// Longest time an unread body is read and thrown away after the answer.
const LINGER: Duration = Duration::from_secs(2);

/// A request body that knows whether it was read to its end.
pub struct Unread {
    inner: Body,
    finished: Arc<AtomicBool>,
    /// Most bytes thrown away if it is dropped unread.
    discard: usize,
}

impl HttpBody for Unread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) || self.inner.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut body = std::mem::replace(&mut self.inner, Body::empty());
        let cap = self.discard;
        // Holds no more than one frame at a time.
        runtime.spawn(async move {
            let drain = async {
                let mut seen = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    if seen > cap {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

/// Middleware: wraps the request body in [`Unread`]; an answer sent while
/// the body is unread says `Connection: close` (the connection cannot
/// carry another request: hyper closes it once the answer is out).
pub async fn close_unread(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let finished = Arc::new(AtomicBool::new(false));
    let discard = state.config.body_limit.saturating_mul(DISCARD_FACTOR);
    let request = request.map(|inner| {
        if inner.is_end_stream() {
            finished.store(true, Ordering::Release);
        }
        Body::new(Unread { inner, finished: finished.clone(), discard })
    });
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
