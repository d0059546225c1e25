//! A minimal HTTP/1.1 client for sending one fixed request over and over,
//! as wrk does: the request (head and body) is encoded once, each exchange
//! is one `write` of those bytes and the reads of the answer, parsed with
//! `httparse` in the connection's own task.
//!
//! Why not hyper's client: its connection runs in a task of its own and
//! talks to the caller through channels, so every exchange wakes two tasks;
//! on a 2-core machine that loadgen shares with the server under test, that
//! overhead was ~0.7 of a core at 50k requests/s, CPU taken from the server
//! being measured. The answer's body is read and dropped, never kept.
//!
//! Bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or the
//! end of the connection are understood; an answer that announces
//! `Connection: close` (or is HTTP/1.0 without keep-alive) ends the
//! connection after it.

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed per answer (more is an error).
const MAX_HEADERS: usize = 64;
/// Read size.
const READ: usize = 64 * 1024;

/// What loadgen needs from an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `X-Score-Rows`, if the answer had it.
    pub rows: Option<usize>,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// Encodes `PUT path` with the given headers and body as one buffer.
pub fn encode_put(path: &str, host: &str, headers: &[(&str, String)], body: &[u8]) -> Bytes {
    encode("PUT", path, host, headers, body)
}

/// Encodes `METHOD path` with the given headers and body as one buffer.
pub fn encode(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Bytes {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    request.into()
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
}

/// How an answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    /// Connects with `TCP_NODELAY`.
    pub async fn connect(address: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: BytesMut::with_capacity(READ) })
    }

    /// Sends `request` (a whole encoded request) and reads the answer to its
    /// end.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await.context("cannot send the request")?;
        loop {
            let (head_len, status, rows, framing, keep_alive) = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                let head_len = match response.parse(&self.buf).context("bad answer head")? {
                    httparse::Status::Complete(n) => n,
                    httparse::Status::Partial => {
                        if self.buf.len() > MAX_HEAD {
                            bail!("answer head longer than {MAX_HEAD} bytes");
                        }
                        if self.fill().await? == 0 {
                            bail!("connection closed before the answer");
                        }
                        continue;
                    }
                };
                let status = response.code.context("answer without a status")?;
                let mut keep_alive = response.version == Some(1);
                let mut framing = None;
                let mut rows = None;
                for header in response.headers.iter() {
                    let value = std::str::from_utf8(header.value).unwrap_or_default().trim();
                    if header.name.eq_ignore_ascii_case("content-length") {
                        framing = Some(Framing::Length(
                            value
                                .parse()
                                .with_context(|| format!("bad content-length {value:?}"))?,
                        ));
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        if value.to_ascii_lowercase().ends_with("chunked") {
                            framing = Some(Framing::Chunked);
                        }
                    } else if header.name.eq_ignore_ascii_case("connection") {
                        let value = value.to_ascii_lowercase();
                        if value.contains("close") {
                            keep_alive = false;
                        } else if value.contains("keep-alive") {
                            keep_alive = true;
                        }
                    } else if header.name.eq_ignore_ascii_case(score_protocol::headers::ROWS) {
                        rows = value.parse().ok();
                    }
                }
                // 1xx, 204 and 304 answers have no body.
                let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
                    Framing::Length(0)
                } else {
                    framing.unwrap_or(Framing::UntilClose)
                };
                (head_len, status, rows, framing, keep_alive)
            };
            self.buf.advance(head_len);
            if (100..200).contains(&status) {
                // An interim answer (100 Continue): the real one follows.
                continue;
            }
            let keep_alive = match framing {
                Framing::Length(n) => {
                    self.skip(n).await?;
                    keep_alive
                }
                Framing::Chunked => {
                    self.skip_chunked().await?;
                    keep_alive
                }
                Framing::UntilClose => {
                    while self.fill().await? > 0 {
                        self.buf.clear();
                    }
                    false
                }
            };
            return Ok(Answer { status, rows, keep_alive });
        }
    }

    /// Reads more bytes into the buffer; 0 at the end of the connection.
    async fn fill(&mut self) -> anyhow::Result<usize> {
        self.buf.reserve(READ);
        self.stream.read_buf(&mut self.buf).await.context("cannot read the answer")
    }

    /// Consumes `n` bytes of body.
    async fn skip(&mut self, mut n: usize) -> anyhow::Result<()> {
        loop {
            if self.buf.len() >= n {
                self.buf.advance(n);
                return Ok(());
            }
            n -= self.buf.len();
            self.buf.clear();
            if self.fill().await? == 0 {
                bail!("connection closed in the middle of the answer");
            }
        }
    }

    /// Consumes a chunked body and its trailers.
    async fn skip_chunked(&mut self) -> anyhow::Result<()> {
        loop {
            match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.buf.advance(used);
                    return self.skip_trailers().await;
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    self.buf.advance(used);
                    let size = usize::try_from(size).context("chunk too large")?;
                    // The chunk and the CRLF after it.
                    self.skip(size + 2).await?;
                }
                Ok(httparse::Status::Partial) => {
                    if self.fill().await? == 0 {
                        bail!("connection closed in the middle of a chunked answer");
                    }
                }
                Err(_) => bail!("bad chunk size in the answer"),
            }
        }
    }

    /// Consumes trailer lines up to the empty line that ends the answer.
    async fn skip_trailers(&mut self) -> anyhow::Result<()> {
        loop {
            match self.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.advance(2);
                    return Ok(());
                }
                Some(end) => self.buf.advance(end + 2),
                None => {
                    if self.buf.len() > MAX_HEAD {
                        bail!("answer trailers longer than {MAX_HEAD} bytes");
                    }
                    if self.fill().await? == 0 {
                        bail!("connection closed in the answer's trailers");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Answer framings score-server never produces (chunked, close-delimited,
    //! interim 100, early close), from a scripted stub on 127.0.0.1:0.

    use super::*;
    use tokio::net::TcpListener;

    /// Serves one connection: for each answer, reads one whole `request`,
    /// then writes the answer in pieces of at most 7 bytes (so every parse
    /// meets partial input). Ends the connection after the last one.
    async fn stub(request_len: usize, answers: Vec<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            socket.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; request_len];
            for answer in answers {
                socket.read_exact(&mut buf).await.expect("request");
                for piece in answer.as_bytes().chunks(7) {
                    socket.write_all(piece).await.expect("answer");
                    socket.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
            }
        });
        address
    }

    fn request() -> Bytes {
        encode_put("/score", "x", &[("x-score-columns", "2".into())], &[0u8; 8])
    }

    #[tokio::test]
    async fn keep_alive_answers_of_every_framing_in_a_row() {
        let request = request();
        let address = stub(
            request.len(),
            vec![
                "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Score-Rows: 1\r\n\r\n01234567",
                "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-score-rows: 3\r\n\r\n\
                 5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n",
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
            ],
        )
        .await;
        let mut connection = Connection::connect(&address).await.expect("connect");
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(connection.exchange(&request).await.expect("answer"));
        }
        let answer = |status, rows, keep_alive| Answer { status, rows, keep_alive };
        assert_eq!(
            answers,
            [
                answer(200, Some(1), true),
                answer(429, None, true),
                answer(200, Some(3), true),
                answer(204, None, true),
                answer(503, None, false),
            ]
        );
        assert!(connection.buf.is_empty(), "every answer consumed to its end");
    }

    #[tokio::test]
    async fn a_body_delimited_by_the_end_of_the_connection() {
        let request = request();
        let address =
            stub(request.len(), vec!["HTTP/1.0 200 OK\r\nX-Score-Rows: 2\r\n\r\nabcdefgh"]).await;
        let mut connection = Connection::connect(&address).await.expect("connect");
        let answer = connection.exchange(&request).await.expect("answer");
        assert_eq!(answer, Answer { status: 200, rows: Some(2), keep_alive: false });
    }

    #[tokio::test]
    async fn cut_answers_are_errors() {
        let request = request();
        for (answer, expected) in [
            ("", "closed before the answer"),
            ("HTTP/1.1 200 OK\r\nContent-Len", "closed before the answer"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "middle of the answer"),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "middle of the answer",
            ),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
            ("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad content-length"),
            ("SMTP ready\r\n\r\n", "bad answer head"),
        ] {
            let address = stub(request.len(), vec![answer]).await;
            let mut connection = Connection::connect(&address).await.expect("connect");
            let error = connection.exchange(&request).await.expect_err(answer);
            assert!(format!("{error:#}").contains(expected), "{answer:?}: {error:#}");
        }
    }
}
