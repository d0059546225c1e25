//! The client against servers that lie or misbehave (a hostile-server
//! probe): impossible sizes, endless Retry-After, redirects, bodies cut
//! short. Each must end in a clear error or a bounded wait, never a wrong
//! result, a hang or a silently empty output.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::put;
use common::stub;
use score_protocol::{codec, headers};
use stream_client::{Client, ClientConfig, ScoreError, Scored};

fn rows(n: usize, columns: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| vec![i as f32; columns]).collect()
}

fn run(client: &Client, n: usize) -> Result<Vec<Scored>, ScoreError> {
    client.score_rows(rows(n, client.config().columns)).collect()
}

#[test]
fn an_impossible_width_is_an_error_not_an_empty_output() {
    let router = Router::new().route(
        "/score",
        put(|| async { [(headers::COLUMNS, "4611686018427387904"), (headers::ROWS, "10")] }),
    );
    let server = stub(router);
    let client = Client::new(ClientConfig::new([server.url()], 2)).expect("config");
    let err = run(&client, 10).expect_err("2^62 columns cannot be");
    assert!(
        matches!(&err, ScoreError::BadResponse { detail, .. }
            if detail.contains("4611686018427387904 cannot be the width of 10 rows")),
        "{err}"
    );
}

#[test]
fn an_answer_wider_than_the_model_is_an_error() {
    // The first answer is one column wide, the next two: the model changed.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/score",
        put(move |body: Bytes| {
            let k = 1 + seen.fetch_add(1, Ordering::SeqCst).min(1);
            async move {
                let rows = body.len() / 4;
                let columns = k.to_string();
                let headers = [(headers::COLUMNS, columns), (headers::ROWS, rows.to_string())];
                (headers, vec![0u8; rows * k * 4]).into_response()
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.batch_rows = 5;
    config.in_flight = 1;
    let client = Client::new(config.clone()).expect("config");
    let err = run(&client, 10).expect_err("the width changed");
    assert!(err.to_string().contains("2 scores per row, but the model's output has 1"), "{err}");

    // Known up front (from /models), a wrong first answer fails too.
    config.score_columns = Some(3);
    let client = Client::new(config).expect("config");
    let err = run(&client, 5).expect_err("3 was promised");
    assert!(err.to_string().contains("but the model's output has 3"), "{err}");
}

#[test]
fn a_huge_retry_after_is_capped_and_the_job_completes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/score",
        put(move |body: Bytes| {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "999999")], "busy")
                        .into_response();
                }
                let rows = body.len() / 4;
                ([(headers::COLUMNS, "1".to_string()), (headers::ROWS, rows.to_string())], body)
                    .into_response()
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.backoff.max = Duration::from_millis(200);
    // Obeyed as sent, the wait would pass this deadline and the batch would
    // be given up; capped at backoff.max, the retry happens and succeeds.
    config.deadline = Some(Duration::from_secs(60));
    let client = Client::new(config).expect("config");
    let scored = run(&client, 3).expect("the capped retry succeeds");
    assert_eq!(scored.iter().map(|s| s.rows).sum::<usize>(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_redirect_is_reported_and_not_followed() {
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = elsewhere_hits.clone();
    let elsewhere = stub(Router::new().route(
        "/score",
        put(move |_: Bytes| {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "stolen" }
        }),
    ));
    let target = format!("{}/score", elsewhere.url());
    let router = Router::new().route(
        "/score",
        put(move || {
            let target = target.clone();
            async move { (StatusCode::FOUND, [("location", target)]).into_response() }
        }),
    );
    let server = stub(router);
    let client = Client::new(ClientConfig::new([server.url()], 1)).expect("config");
    let err = run(&client, 3).expect_err("302 is not followed");
    assert!(
        matches!(&err, ScoreError::Rejected { status: 302, message, .. }
            if message.contains("redirected to") && message.contains("does not follow")),
        "{err}"
    );
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0, "the body went to another origin");
}

/// A raw TCP server that reads one request and answers `answer`, then
/// closes: for answers axum will not produce (a body shorter than its
/// Content-Length).
fn raw_server(answer: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let thread = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            // Read the request head and body (small) before answering.
            let mut buf = [0u8; 65536];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut seen = Vec::new();
            while let Ok(n) = stream.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
                if n == 0 || seen.windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                    break;
                }
            }
            let _ = stream.write_all(&answer);
        }
    });
    (url, thread)
}

#[test]
fn a_truncated_answer_names_the_endpoint_and_the_bytes() {
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\nX-Score-Columns: 1\r\n\
                       X-Score-Rows: 100\r\n\r\n"
        .to_vec();
    answer.extend_from_slice(&[0u8; 40]);
    let (url, thread) = raw_server(answer);
    let mut config = ClientConfig::new([url.clone()], 1);
    config.max_attempts = 1;
    let client = Client::new(config).expect("config");
    let err = run(&client, 100).expect_err("cut short");
    thread.join().expect("server thread");
    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("answer cut short: received 40 of 400 bytes"), "{text}");
}

#[test]
fn an_unreachable_server_is_reported_as_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("a");
    let mut config = ClientConfig::new([format!("http://{port}")], 1);
    config.max_attempts = 1;
    // Connecting again is part of an attempt, until its timeout.
    config.timeout = Duration::from_millis(300);
    let client = Client::new(config).expect("config");
    let text = run(&client, 1).expect_err("nothing listens").to_string();
    assert!(text.contains("cannot connect") && text.contains("refused"), "{text}");
    assert!(text.contains("(attempts exhausted; no connection for 0."), "{text}");
}

#[test]
fn the_deadline_header_carries_the_remaining_time() {
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = sent.clone();
    let router = Router::new().route(
        "/score",
        put(move |headers_in: HeaderMap, body: Bytes| {
            let ms = headers_in
                .get(headers::DEADLINE_MS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            record.lock().expect("lock").push(ms);
            async move {
                let rows = body.len() / 4;
                ([(headers::COLUMNS, "1".to_string()), (headers::ROWS, rows.to_string())], body)
                    .into_response()
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.timeout = Duration::from_secs(5);
    config.deadline = Some(Duration::from_secs(2));
    let client = Client::new(config).expect("config");
    let scored = run(&client, 4).expect("scored");
    assert_eq!(codec::encode(&scored[0].values), codec::encode(&[0.0, 1.0, 2.0, 3.0]));
    let sent = sent.lock().expect("lock").clone();
    assert!(!sent.is_empty());
    for ms in sent {
        let ms = ms.expect("X-Score-Deadline-Ms sent");
        assert!((1..=2000).contains(&ms), "{ms} ms is not what is left of a 2 s deadline");
    }
}

/// A `/models` answer is read up to a cap: whatever answers at the URL
/// (here 24 MiB of a JSON string that never ends) cannot take the
/// client's memory. It used to be read whole (an 8 GB answer took the
/// client to its 4 GiB limit).
#[test]
fn an_endless_model_list_is_refused_at_a_cap() {
    use axum::routing::get;
    let router = Router::new().route(
        "/models",
        get(|| async {
            let mut body = b"{\"models\": [\"".to_vec();
            body.resize(24 << 20, b'a');
            body
        }),
    );
    let server = stub(router);
    let err = stream_client::fetch_model(&server.url(), None, None).expect_err("not a model list");
    assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
}
