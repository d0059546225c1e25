//! The real `score-server` binary on 127.0.0.1 with an ephemeral port:
//! every status code over a socket, overload with bounded memory, the
//! SIGTERM drain, start-up failures.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

use reqwest::StatusCode;
use score_engine::testing::fixture_path;
use serde_json::Value;

fn zeros_rows(rows: usize, columns: usize) -> Vec<u8> {
    // Not all zeros: vary the rows so outputs are not trivially equal.
    (0..rows * columns)
        .flat_map(|i| (((i * 7919) % 1000) as f32 / 250.0 - 2.0).to_le_bytes())
        .collect()
}

async fn put(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    client
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("request sent")
}

async fn kind(response: reqwest::Response) -> String {
    let v: Value = response.json().await.expect("JSON error body");
    v["kind"].as_str().expect("kind").to_string()
}

#[tokio::test]
async fn status_codes_over_a_socket() {
    let server = Server::start(&["logreg", "faulty"], &["--body-limit", "1MiB"]);
    let client = reqwest::Client::new();

    let ok = put(&client, &server.url("/score"), zeros_rows(5, 100)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-score-rows"], "5");
    assert_eq!(ok.headers()["x-score-columns"], "2");
    assert_eq!(ok.bytes().await.expect("body").len(), 5 * 2 * 4);

    let bad = put(&client, &server.url("/score"), vec![0; 399]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(kind(bad).await, "bad_shape");

    let mismatch = client
        .put(server.url("/score"))
        .header("x-score-columns", "10")
        .body(zeros_rows(1, 100))
        .send()
        .await
        .expect("sent");
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    assert_eq!(kind(mismatch).await, "column_mismatch");

    let unknown = put(&client, &server.url("/models/nope/score"), zeros_rows(1, 100)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Over the limit, with a declared length: answered 413, and the body is
    // drained so the client reads the answer rather than a reset.
    let big = put(&client, &server.url("/score"), zeros_rows(3000, 100)).await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(kind(big).await, "payload_too_large");

    let csv = client
        .put(server.url("/score"))
        .header("content-type", "text/csv")
        .body("1,2")
        .send()
        .await
        .expect("sent");
    assert_eq!(csv.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let late = client
        .put(server.url("/score"))
        .header("x-score-deadline-ms", "0")
        .body(zeros_rows(5, 100))
        .send()
        .await
        .expect("sent");
    assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);

    let fails = client
        .put(server.url("/models/faulty/score"))
        .header("content-type", "application/json")
        .body("[[7, 0]]")
        .send()
        .await
        .expect("sent");
    assert_eq!(fails.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kind(fails).await, "internal");

    let json = client
        .post(server.url("/score"))
        .header("content-type", "application/json")
        .body("[[0.5, 1.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]")
        .send()
        .await
        .expect("sent");
    assert_eq!(json.status(), StatusCode::OK);
    let v: Value = json.json().await.expect("json");
    assert_eq!(v["rows"], 1);

    let health = client.get(server.url("/healthz")).send().await.expect("sent");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_flags_serve_the_bundled_demo_model() {
    let server = Server::start(&[], &[]);
    let models: Value =
        reqwest::get(server.url("/models")).await.expect("sent").json().await.expect("json");
    assert_eq!(models["models"][0]["name"], "demo");
    assert_eq!(models["models"][0]["input"]["columns"], 100);
    let client = reqwest::Client::new();
    let ok = put(&client, &server.url("/models/demo/score"), zeros_rows(2, 100)).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[test]
fn an_unsupported_operator_stops_startup_and_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_score-server"))
        .args(["--listen", "127.0.0.1:0", "--model"])
        .arg(fixture_path("ml-cases/unsupported-treeensemble.onnx"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported ONNX operator(s): ai.onnx.ml.TreeEnsemble"), "{stderr}");
}

#[test]
fn a_corrupt_model_file_is_named_without_a_backtrace() {
    let path = std::env::temp_dir().join(format!("corrupt-{}.onnx", std::process::id()));
    std::fs::write(&path, b"this is not protobuf at all \xff\xff\xff").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_score-server"))
        .args(["--listen", "127.0.0.1:0", "--model"])
        .arg(&path)
        // A user debugging may have this set: start-up errors stay sentences.
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{} is not an ONNX file", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert_eq!(stderr.matches("is not an ONNX file").count(), 1, "{stderr}");
}

/// Far more concurrent large requests than the budget admits: the excess gets
/// 429 with Retry-After (after --refusal-delay, their bodies being large),
/// the admitted ones are scored correctly, and the server's peak memory
/// stays near its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_and_memory_stays_bounded() {
    const CLIENTS: usize = 48;
    const ROWS: usize = 10_000; // 4 MB per request
    let server = Server::start(&["mlp"], &["--workers", "1", "--max-inflight-bytes", "8MiB"]);
    let client = reqwest::Client::new();
    let body = zeros_rows(ROWS, 100);

    // Warm up: one request through, then take the baseline.
    let warm = put(&client, &server.url("/score"), body.clone()).await;
    assert_eq!(warm.status(), StatusCode::OK);
    let (baseline, _) = server.memory_kib();

    let url = server.url("/score");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let r = put(&client, &url, body).await;
                let status = r.status();
                let retry_after =
                    r.headers().get("retry-after").map(|v| v.to_str().map(str::to_owned));
                let rows = r.headers().get("x-score-rows").map(|v| v.to_str().map(str::to_owned));
                let len = r.bytes().await.expect("body").len();
                (status, retry_after, rows, len)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (status, retry_after, rows, len) = task.await.expect("task");
        match status {
            StatusCode::OK => {
                ok += 1;
                assert_eq!(rows.expect("rows header").expect("ascii"), ROWS.to_string());
                assert_eq!(len, ROWS * 10 * 4);
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let secs: u64 =
                    retry_after.expect("Retry-After").expect("ascii").parse().expect("seconds");
                assert!((1..=30).contains(&secs));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let (peak, rss) = server.memory_kib();
    println!(
        "overload: {ok} scored, {refused} refused (429); peak RSS {} MiB (baseline {} MiB, now {} MiB)",
        peak / 1024,
        baseline / 1024,
        rss / 1024
    );
    assert!(ok >= 1 && refused >= 1, "{ok} scored, {refused} refused");
    // Unbounded, 48 bodies of 4 MB would add ~190 MiB before any scoring.
    let growth_mib = (peak.saturating_sub(baseline)) / 1024;
    assert!(growth_mib < 80, "peak grew by {growth_mib} MiB over the baseline");
    let metrics =
        reqwest::get(server.url("/metrics")).await.expect("sent").text().await.expect("text");
    assert!(
        metrics.contains(&format!(r#"score_rejected_total{{reason="overloaded"}} {refused}"#)),
        "{metrics}"
    );
}

/// SIGTERM during a long request: readiness fails and new scoring requests
/// get 503 during the drain delay, then new connections are refused, the long
/// request completes, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    const ROWS: usize = 150_000; // ~2 s of MLP on one worker
    let mut server = Server::start(&["mlp"], &["--workers", "1", "--drain-delay", "2s"]);
    let client = reqwest::Client::new();
    let long = {
        let (client, url) = (client.clone(), server.url("/score"));
        tokio::spawn(async move {
            let r = put(&client, &url, zeros_rows(ROWS, 100)).await;
            (r.status(), r.bytes().await.expect("body").len())
        })
    };
    // Wait until the long request is admitted.
    let started = Instant::now();
    loop {
        let text = client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        if text.contains("score_inflight_requests 1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "long request never admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ready = client.get(server.url("/readyz")).send().await.expect("still accepting");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused = put(&client, &server.url("/score"), zeros_rows(1, 100)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(kind(refused).await, "draining");

    // After the delay the listener closes: a new connection is refused.
    let addr = server.base.trim_start_matches("http://").to_string();
    let closed_by = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < closed_by, "listener still open after the drain delay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, len) = long.await.expect("task");
    assert_eq!(status, StatusCode::OK, "the in-flight request was not completed");
    assert_eq!(len, ROWS * 10 * 4);

    let exit_by = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < exit_by, "server did not exit after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}: {:?}", server.log.lock().expect("log"));
}

/// A client that never finishes its headers is cut off after
/// `--header-timeout` instead of holding a connection forever.
#[test]
fn a_stalled_header_is_cut_off() {
    use std::io::{Read, Write};
    let server = Server::start(&["logreg"], &["--header-timeout", "500ms"]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream.write_all(b"PUT /score HTTP/1.1\r\nHost: test\r\n").expect("partial headers");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let held = started.elapsed();
    assert!(held < Duration::from_secs(5), "a stalled client held the connection for {held:?}");
    assert!(held >= Duration::from_millis(400), "cut off before the timeout: {held:?}");
}

/// SIGHUP re-reads the token file: the old token stops working, the new
/// one works, and no token ever reaches the log.
#[test]
fn tokens_reload_on_sighup_and_stay_out_of_the_log() {
    let path = std::env::temp_dir().join(format!("server-tokens-{}", std::process::id()));
    std::fs::write(&path, "old-token-123\n").expect("write");
    let server = Server::start(&[], &["--auth-token-file", path.to_str().expect("utf8")]);
    let client = reqwest::blocking::Client::new();
    let status = |token: &str| {
        client.get(server.url("/models")).bearer_auth(token).send().expect("request").status()
    };
    assert_eq!(status("old-token-123"), StatusCode::OK);
    std::fs::write(&path, "new-token-456\n").expect("write");
    server.signal("HUP");
    let started = Instant::now();
    while status("new-token-456") != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(30), "tokens not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status("old-token-123"), StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_file(&path);
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("auth tokens reloaded"), "{log}");
    assert!(!log.contains("token-123") && !log.contains("token-456"), "{log}");
}

/// SIGHUP with no file changed reloads nothing and is not fatal (its
/// default action would kill the process).
#[test]
fn sighup_without_anything_to_reload_keeps_serving() {
    let server = Server::start(&[], &[]);
    server.signal("HUP");
    let started = Instant::now();
    while server.log_lines("model unchanged") == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "SIGHUP not handled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = reqwest::blocking::get(server.url("/healthz")).expect("still serving").status();
    assert_eq!(status, StatusCode::OK);
}
