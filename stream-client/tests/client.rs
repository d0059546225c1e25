//! stream-client against a real score-server on 127.0.0.1:0 for the normal
//! path, and against scripted stub servers for the faults a real server
//! cannot produce on demand.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use common::{real_server, real_server_state, serve_at, stub};
use stream_client::retry::Retryable;
use stream_client::{Client, ClientConfig, ScoreError, Scored};

/// The stub "model": each row's first value, one column.
fn echo_first(body: &Bytes, columns: usize) -> Response {
    let out: Vec<u8> = body.chunks_exact(columns * 4).flat_map(|row| row[..4].to_vec()).collect();
    let rows = out.len() / 4;
    ([("x-score-columns", "1".to_string()), ("x-score-rows", rows.to_string())], out)
        .into_response()
}

fn rows(n: usize, columns: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| (0..columns).map(|j| (i * columns + j) as f32 * 0.001 - 1.0).collect()).collect()
}

fn collect(
    results: impl Iterator<Item = Result<Scored, ScoreError>>,
) -> Result<Vec<f32>, ScoreError> {
    let mut out = Vec::new();
    let mut next_row = 0;
    for batch in results {
        let batch = batch?;
        assert_eq!(batch.first_row, next_row, "batches out of order");
        next_row += batch.rows as u64;
        out.extend_from_slice(&batch.values);
    }
    Ok(out)
}

#[test]
fn scores_equal_one_direct_request_in_order() {
    let server = real_server("logreg", &[]);
    let input = rows(20_000, 100);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 777;
    config.in_flight = 3;
    let client = Client::new(config).expect("config");
    let streamed = collect(client.score_rows(input.iter())).expect("scored");

    let body: Vec<u8> = input.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    let direct = reqwest::blocking::Client::new()
        .put(format!("{}/score", server.url()))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .expect("direct request")
        .bytes()
        .expect("body");
    let direct: Vec<f32> =
        direct.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(streamed, direct);
    let stats = client.stats();
    assert_eq!(stats.rows_scored, 20_000);
    assert_eq!(stats.requests, 20_000u64.div_ceil(777));
    assert_eq!(stats.total_retries(), 0);
}

#[test]
fn order_is_kept_under_random_latencies() {
    let router = Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..25))).await;
            echo_first(&body, 3)
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 3);
    config.batch_rows = 10;
    config.in_flight = 8;
    let client = Client::new(config).expect("config");
    let input = rows(2_000, 3);
    let out = collect(client.score_rows(input.iter())).expect("scored");
    let expected: Vec<f32> = input.iter().map(|r| r[0]).collect();
    assert_eq!(out, expected);
}

/// Against a slow server, rows pulled but not yet yielded never exceed the
/// window: `in_flight` batches in flight plus one being assembled.
#[test]
fn memory_stays_within_the_window_against_a_slow_server() {
    let router = Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            echo_first(&body, 2)
        }),
    );
    let server = stub(router);
    let (batch_rows, in_flight) = (50, 4);
    let mut config = ClientConfig::new([server.url()], 2);
    config.batch_rows = batch_rows;
    config.in_flight = in_flight;
    let client = Client::new(config).expect("config");
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let input = (0..5_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        vec![i as f32, 0.0]
    });
    let window = ((in_flight + 1) * batch_rows) as u64;
    let (mut yielded, mut worst) = (0u64, 0u64);
    for batch in client.score_rows(input) {
        let batch = batch.expect("scored");
        worst = worst.max(pulled.load(Ordering::Relaxed) - yielded);
        yielded += batch.rows as u64;
        // A slow consumer: requests keep progressing meanwhile.
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("worst pulled - yielded: {worst} rows (window {window})");
    assert_eq!(yielded, 5_000);
    assert!(worst <= window, "{worst} rows held, window is {window}");
    assert!(worst > window / 2, "the window was never used: {worst}");
}

#[test]
fn retries_wait_for_retry_after_then_succeed() {
    let hits = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let seen = hits.clone();
    let router = Router::new().route(
        "/score",
        put(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut h = seen.lock().expect("lock");
                    h.push(Instant::now());
                    h.len()
                };
                if n == 1 {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "{\"error\":\"busy\",\"kind\":\"overloaded\"}",
                    )
                        .into_response();
                }
                echo_first(&body, 1)
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.batch_rows = 100;
    let client = Client::new(config).expect("config");
    let out = collect(client.score_rows(rows(100, 1).iter())).expect("scored after a retry");
    assert_eq!(out.len(), 100);
    let hits = hits.lock().expect("lock");
    assert_eq!(hits.len(), 2);
    let waited = hits[1] - hits[0];
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}, Retry-After said 1 s");
    assert_eq!(client.stats().retries_for(Retryable::TooManyRequests), 1);
}

#[test]
fn the_retry_budget_stops_a_retry_storm() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let router = Router::new().route(
        "/score",
        put(move || {
            seen.fetch_add(1, Ordering::Relaxed);
            async {
                (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"draining\",\"kind\":\"draining\"}")
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.max_attempts = 100;
    config.retry_ratio = 0.0;
    config.retry_min_per_sec = 0.0;
    config.backoff.base = Duration::from_millis(1);
    let client = Client::new(config).expect("config");
    let err = collect(client.score_rows(rows(10, 1).iter())).unwrap_err();
    assert!(
        matches!(&err, ScoreError::GaveUp { last, .. } if last.contains("retry budget")),
        "{err}"
    );
    // One first attempt and the single retry the empty budget starts with.
    assert_eq!(hits.load(Ordering::Relaxed), 2);
}

/// A setting given by name reaches the wire: the `User-Agent` the server
/// sees carries the job's `user_agent` after the library's own name. (The
/// stub only records the header; scoring is the echo's.)
#[test]
fn the_user_agent_setting_reaches_the_server() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let server = stub(Router::new().route(
        "/score",
        put(move |headers: axum::http::HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                let agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
                record.lock().expect("lock").push(agent.unwrap_or("(none)").to_string());
                echo_first(&body, 3)
            }
        }),
    ));
    let url = server.url();
    let ours = concat!("stream-client/", env!("CARGO_PKG_VERSION"));
    for (extra, expected) in
        [(None, ours.to_string()), (Some("nightly-churn 7"), format!("{ours} nightly-churn 7"))]
    {
        seen.lock().expect("lock").clear();
        let mut pairs = vec![("urls", url.as_str()), ("columns", "3"), ("batch_rows", "4")];
        pairs.extend(extra.map(|v| ("user_agent", v)));
        let client =
            Client::new(ClientConfig::from_settings(pairs).expect("valid")).expect("client");
        let scored = collect(client.score_rows(rows(10, 3).iter())).expect("scored");
        assert_eq!(scored.len(), 10);
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 3, "three requests of at most 4 rows");
        assert!(seen.iter().all(|a| *a == expected), "{seen:?}, expected {expected:?}");
    }
}

#[test]
fn a_client_error_fails_at_once_with_the_servers_message() {
    let server = real_server("logreg", &[]);
    let client = Client::new(ClientConfig::new([server.url()], 99)).expect("config");
    let err = collect(client.score_rows(rows(10, 99).iter())).unwrap_err();
    match &err {
        ScoreError::Rejected { status, message, first_row, .. } => {
            assert_eq!(*status, 400);
            assert!(message.contains("the rows have 99 values each"), "{message}");
            assert_eq!(*first_row, 0);
        }
        other => panic!("expected Rejected, got {other}"),
    }
    assert_eq!(client.stats().requests, 1, "a 400 must not be retried");
}

#[test]
fn keep_going_reports_a_refused_batch_and_scores_the_rest_in_order() {
    // Refuses any batch holding a negative first value, like a model
    // rejecting bad data; everything else is echoed.
    let server = stub(Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            let refused = body.chunks_exact(8).any(|row| row[..4] == (-1f32).to_le_bytes());
            if refused {
                return (StatusCode::BAD_REQUEST, r#"{"error":"negative input","kind":"x"}"#)
                    .into_response();
            }
            echo_first(&body, 2)
        }),
    ));
    let mut config = ClientConfig::new([server.url()], 2);
    config.batch_rows = 10;
    config.keep_going = true;
    let client = Client::new(config).expect("config");
    let input: Vec<[f32; 2]> =
        (0..50).map(|i| [if i == 13 || i == 41 { -1.0 } else { i as f32 }, 0.0]).collect();
    let mut next_row = 0u64;
    let mut failed = Vec::new();
    for item in client.score_rows(input.iter()) {
        match item {
            Ok(batch) => {
                assert_eq!(batch.first_row, next_row, "out of order");
                let want: Vec<f32> =
                    (0..batch.rows).map(|r| (next_row + r as u64) as f32).collect();
                assert_eq!(batch.values, want);
                next_row += batch.rows as u64;
            }
            Err(e) => {
                let (first, rows) = e.batch().expect("a per-batch error");
                assert_eq!(first, next_row, "out of order");
                assert!(e.to_string().contains("negative input"), "{e}");
                failed.push(first);
                next_row += rows as u64;
            }
        }
    }
    assert_eq!(next_row, 50, "every row accounted for");
    assert_eq!(failed, vec![10, 40]);
    assert_eq!(client.stats().requests, 5, "refusals are not retried");
}

#[test]
fn a_bad_input_row_is_reported_after_the_rows_before_it() {
    let server = real_server("logreg", &[]);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 10;
    let client = Client::new(config).expect("config");
    let mut input = rows(25, 100);
    input[23].pop();
    let results: Vec<_> = client.score_rows(input.iter()).collect();
    let scored: usize = results.iter().filter_map(|r| r.as_ref().ok()).map(|b| b.rows).sum();
    assert_eq!(scored, 23, "rows before the bad one are scored");
    assert!(
        matches!(results.last(), Some(Err(ScoreError::BadRow { row: 23, len: 99, .. }))),
        "{results:?}"
    );
}

#[test]
fn a_timed_out_attempt_is_cancelled_and_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let router = Router::new().route(
        "/score",
        put(move |body: Bytes| {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                echo_first(&body, 1)
            }
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.timeout = Duration::from_millis(300);
    let client = Client::new(config).expect("config");
    let started = Instant::now();
    let out = collect(client.score_rows(rows(5, 1).iter())).expect("scored on the retry");
    assert_eq!(out.len(), 5);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(client.stats().retries_for(Retryable::Timeout), 1);
}

/// Two real servers, one killed mid-run: the output equals a clean run.
#[test]
fn one_of_two_servers_killed_mid_run_loses_nothing() {
    let input = rows(60_000, 100);
    let clean_server = real_server("logreg", &["--workers", "1"]);
    let mut config = ClientConfig::new([clean_server.url()], 100);
    config.batch_rows = 500;
    let clean =
        collect(Client::new(config).expect("config").score_rows(input.iter())).expect("clean run");

    let a = real_server("logreg", &["--workers", "1"]);
    let mut b = real_server("logreg", &["--workers", "1"]);
    let mut config = ClientConfig::new([a.url(), b.url()], 100);
    config.batch_rows = 500;
    config.in_flight = 6;
    let client = Client::new(config).expect("config");
    let mut out = Vec::new();
    for (i, batch) in client.score_rows(input.iter()).enumerate() {
        if i == 20 {
            b.kill();
        }
        out.extend_from_slice(&batch.expect("no batch lost").values);
    }
    assert_eq!(out, clean);
    let stats = client.stats();
    println!("failover: {stats:?}");
    assert_eq!(stats.rows_scored, 60_000);
    assert!(
        stats.total_retries() >= 1 || stats.ejections >= 1,
        "the kill went unnoticed: {stats:?}"
    );
}

/// The job's only address stops answering for a while and comes back, as
/// a proxy does when restarted: the batches wait for it, spending no
/// attempt (two allowed here), and nothing is lost or repeated.
#[test]
fn the_only_server_gone_for_a_while_is_waited_for() {
    let input = rows(40_000, 100);
    let (mut server, state) = real_server_state("logreg", &["--workers", "1"]);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 500;
    config.in_flight = 4;
    config.max_attempts = 2;
    let clean = collect(Client::new(config.clone()).expect("config").score_rows(input.iter()))
        .expect("clean run");

    let client = Client::new(config).expect("config");
    let addr = server.addr();
    let mut back = None;
    let mut out = Vec::new();
    for (i, batch) in client.score_rows(input.iter()).enumerate() {
        if i == 10 {
            server.kill();
            let state = state.clone();
            back = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                serve_at(state, addr)
            }));
        }
        out.extend_from_slice(&batch.expect("no batch lost").values);
    }
    let _revived = back.expect("killed").join().expect("served again");
    assert_eq!(out, clean);
    let stats = client.stats();
    println!("only server restarted: {stats:?}");
    assert_eq!((stats.rows_scored, stats.failed_batches), (40_000, 0));
    assert!(stats.retries_for(Retryable::Connect) >= 1, "the outage went unnoticed: {stats:?}");
}

/// A raw TCP "server" that answers the request holding row 0 at once and
/// holds every other request open without answering, counting connections
/// still open: a request the client cancels shows up as a closed socket.
fn hanging_stub() -> (String, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let open = counter.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let (head_end, length) = loop {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = &buf[head_end..head_end + length];
                if body.get(..4) == Some(&0f32.to_le_bytes()[..]) {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nx-score-columns: 1\r\nx-score-rows: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        length / 4,
                        length
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                    return;
                }
                open.fetch_add(1, Ordering::SeqCst);
                while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open)
}

/// Dropping the output early cancels the requests in flight: the server
/// sees their connections close instead of waiting for answers.
#[test]
fn dropping_the_output_cancels_requests_in_flight() {
    let (url, open) = hanging_stub();
    let mut config = ClientConfig::new([url], 1);
    config.batch_rows = 10;
    config.in_flight = 4;
    // A fixed window: the stub never answers, so an adaptive limit would
    // stay at its first value of 1.
    config.adaptive = false;
    let client = Client::new(config).expect("config");
    let input = (0..1_000).map(|i| vec![i as f32]);
    let mut iter = client.score_rows(input);
    let first = iter.next().expect("a first batch").expect("row 0 is answered");
    assert_eq!(first.values[0], 0.0);
    let by = Instant::now() + Duration::from_secs(10);
    while open.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < by, "the other requests never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(iter);
    let by = Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < by,
            "{} requests still in flight after the drop",
            open.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The async API: blocks from a `Stream`, results in order.
#[test]
fn the_async_stream_scores_in_order() {
    use futures_util::StreamExt;
    let server = real_server("logreg", &[]);
    let input = rows(5_000, 100);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 300;
    let client = Client::new(config).expect("config");
    let expected = collect(client.score_rows(input.iter())).expect("blocking run");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let blocks: Vec<Vec<f32>> = input.chunks(77).map(|c| c.concat()).collect();
    let streamed = rt.block_on(async {
        let results = client.score_stream(futures_util::stream::iter(blocks));
        futures_util::pin_mut!(results);
        let mut out = Vec::new();
        let mut next_row = 0;
        while let Some(batch) = results.next().await {
            let batch = batch.expect("scored");
            assert_eq!(batch.first_row, next_row);
            next_row += batch.rows as u64;
            out.extend_from_slice(&batch.values);
        }
        out
    });
    assert_eq!(streamed, expected);
}

/// A bad block is treated by the async stream exactly as by the blocking
/// iterator (one window driver under both): the rows before it are scored
/// and yielded, then the error, then the end; never more than `in_flight`
/// requests at once on the way.
#[test]
fn the_async_stream_reports_a_bad_block_like_the_iterator() {
    use futures_util::StreamExt;
    let server = real_server("logreg", &[]);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 10;
    config.in_flight = 2;
    let client = Client::new(config).expect("config");
    let mut blocks: Vec<Vec<f32>> = rows(30, 100).chunks(5).map(|c| c.concat()).collect();
    blocks[4].pop(); // rows 20..25: not whole rows
    let blocking: Vec<_> = client.score_blocks(blocks.clone()).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let streamed: Vec<_> =
        rt.block_on(client.score_stream(futures_util::stream::iter(blocks)).collect());
    let shape = |results: &[Result<Scored, ScoreError>]| -> Vec<String> {
        results
            .iter()
            .map(|r| match r {
                Ok(s) => format!("rows {}+{}", s.first_row, s.rows),
                Err(e) => e.to_string(),
            })
            .collect()
    };
    assert_eq!(shape(&streamed), shape(&blocking));
    assert_eq!(
        shape(&blocking),
        [
            "rows 0+10".to_string(),
            "rows 10+10".to_string(),
            "input row 20 has 499 values, the model takes 100".to_string(),
        ]
    );
}

/// The overall deadline ends a stream that cannot finish in time, with an
/// error rather than a silent stop.
#[test]
fn the_overall_deadline_ends_the_stream_with_an_error() {
    let router = Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            echo_first(&body, 1)
        }),
    );
    let server = stub(router);
    let mut config = ClientConfig::new([server.url()], 1);
    config.batch_rows = 10;
    config.in_flight = 1;
    config.deadline = Some(Duration::from_millis(700));
    let client = Client::new(config).expect("config");
    let started = Instant::now();
    let results: Vec<_> = client.score_rows(rows(1_000, 1).iter()).collect();
    assert!(started.elapsed() < Duration::from_secs(5));
    let scored: usize = results.iter().filter_map(|r| r.as_ref().ok()).map(|b| b.rows).sum();
    assert!(scored > 0 && scored < 1_000, "{scored}");
    assert!(results.last().is_some_and(|r| r.is_err()), "the stream stopped without an error");
}

/// An answer whose shape does not match its request is an error, never
/// rows silently dropped or invented.
#[test]
fn an_answer_of_the_wrong_shape_is_an_error() {
    let router = Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            // One row short.
            let rows = body.len() / 4 - 1;
            (
                [("x-score-columns", "1".to_string()), ("x-score-rows", rows.to_string())],
                vec![0u8; rows * 4],
            )
                .into_response()
        }),
    );
    let server = stub(router);
    let client = Client::new(ClientConfig::new([server.url()], 1)).expect("config");
    let err = collect(client.score_rows(rows(10, 1).iter())).unwrap_err();
    assert!(
        matches!(&err, ScoreError::BadResponse { detail, .. } if detail.contains("X-Score-Rows is 9")),
        "{err}"
    );
}

/// Against a server that requires a token: the client sends it (and the
/// job completes); without it the job fails at once with the server's 401.
#[test]
fn a_token_is_sent_to_servers_that_require_one() {
    let path = std::env::temp_dir().join(format!("client-tokens-{}", std::process::id()));
    std::fs::write(&path, "job-token\n").expect("write");
    let server = real_server("logreg", &["--auth-token-file", path.to_str().expect("utf8")]);
    let _ = std::fs::remove_file(&path);
    let mut config = ClientConfig::new([server.url()], 100);
    config.batch_rows = 100;
    let refused = Client::new(config.clone()).expect("config");
    let err = collect(refused.score_rows(rows(300, 100).iter())).expect_err("no token");
    assert!(matches!(&err, ScoreError::Rejected { status: 401, .. }), "{err}");
    config.token = Some(stream_client::Token::new("job-token"));
    assert!(!format!("{config:?}").contains("job-token"), "a Debug of the config shows the token");
    let client = Client::new(config).expect("config");
    assert_eq!(collect(client.score_rows(rows(300, 100).iter())).expect("scored").len(), 300 * 2);
    let doc = stream_client::fetch_model(&server.url(), None, client.config().token.as_ref())
        .expect("/models with the token");
    assert_eq!(doc.input.columns, 100);
}

/// A folder of model files for one test, removed at the end.
struct ModelFolder(std::path::PathBuf);

impl ModelFolder {
    fn new(test: &str) -> ModelFolder {
        let dir = std::env::temp_dir().join(format!("pin-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        ModelFolder(dir)
    }

    /// Writes linreg with its intercept moved by `shift` as `name`, as an
    /// operator replaces a model: a complete file renamed over the old.
    fn linreg(&self, name: &str, shift: f32) -> String {
        let path = self.0.join(name);
        let partial = self.0.join(format!(".{name}"));
        std::fs::write(&partial, score_engine::testing::linreg_shifted(shift)).expect("write");
        std::fs::rename(&partial, &path).expect("rename");
        format!("m={}", path.display())
    }
}

impl Drop for ModelFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A replica reloaded to a new model mid-job: with another replica still on
/// the job's version the job finishes entirely on it (the reloaded one
/// answers 409 and is put aside); with none, the job fails loudly naming
/// both versions, and every row delivered before is of the old version.
#[test]
fn a_model_reloaded_mid_job_is_never_mixed_into_the_job() {
    use common::real_server_state;
    let folder = ModelFolder::new("mid-job");
    let (a, a_state) = real_server_state(&folder.linreg("a.onnx", 0.0), &["--workers", "1"]);
    let (b, _b_state) = real_server_state(&folder.linreg("b.onnx", 0.0), &["--workers", "1"]);
    let input = rows(60_000, 20);
    let config = |urls: Vec<String>| {
        let mut c = ClientConfig::new(urls, 20);
        c.batch_rows = 300;
        c.backoff = stream_client::retry::Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        };
        c
    };
    let reference: Vec<f32> = collect(
        Client::new(config(vec![a.url(), b.url()])).expect("config").score_rows(input.iter()),
    )
    .expect("clean run");
    let v1 = a_state.models.get(0).version.clone();

    // Two replicas; a is reloaded after 50 of the 200 batches.
    let client = Client::new(config(vec![a.url(), b.url()])).expect("config");
    let mut results = Vec::new();
    for (i, batch) in client.score_rows(input.iter()).enumerate() {
        results.extend(batch.expect("the job finishes on b").values);
        if i == 50 {
            folder.linreg("a.onnx", 10.0);
            let report = a_state.models.reload(&a_state.metrics);
            assert!(matches!(report[0], score_server::reload::Reloaded::Loaded { .. }));
        }
    }
    assert_eq!(results, reference, "every row scored by the job's version");
    let stats = client.stats();
    assert_eq!(stats.model_version.as_deref(), Some(v1.as_str()));
    assert!(stats.retries_for(Retryable::WrongVersion) > 0, "a answered 409: {stats:?}");

    // Only the reloaded replica: the job fails, naming both versions.
    let (c, c_state) = real_server_state(&folder.linreg("c.onnx", 0.0), &["--workers", "1"]);
    let client = Client::new(config(vec![c.url()])).expect("config");
    let mut delivered = Vec::new();
    let mut failure = None;
    for (i, batch) in client.score_rows(input.iter()).enumerate() {
        match batch {
            Ok(scored) => delivered.extend(scored.values),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if i == 20 {
            folder.linreg("c.onnx", 10.0);
            c_state.models.reload(&c_state.metrics);
        }
    }
    let v2 = c_state.models.get(0).version.clone();
    let failure = failure.expect("the job fails once no server serves its version");
    assert!(matches!(failure, ScoreError::WrongVersion { .. }), "{failure:?}");
    let sentence = failure.to_string();
    assert!(sentence.contains(&v1) && sentence.contains(&v2), "{sentence}");
    assert!(delivered.len() > 20 * 300, "the rows before the reload were delivered");
    assert_eq!(delivered[..], reference[..delivered.len()], "all of the old version");

    // Pinned up front to a version nobody serves: the first batch fails.
    let mut pinned = config(vec![c.url()]);
    pinned.model_version = Some(v1.clone());
    let first = Client::new(pinned).expect("config").score_rows(input.iter()).next();
    let error = first.expect("an item").expect_err("refused");
    assert!(error.to_string().contains("pinned"), "{error}");
}
