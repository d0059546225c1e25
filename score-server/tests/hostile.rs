//! The real binary against clients that misbehave on purpose (the
//! hostile-input probe): idle and trickling senders, bodies declared larger
//! than the limit, idle keep-alive connections, hundreds of slow
//! connections beside a working job. Raw TCP on 127.0.0.1 where a polite
//! HTTP client cannot misbehave on demand.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

/// A connection that has sent `head` (request line and headers) and then
/// stays silent.
fn open(server: &Server, head: &str) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(head.as_bytes()).expect("send head");
    stream
}

fn put_head(length: &str, extra: &str) -> String {
    format!(
        "PUT /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
}

/// Reads what the server sends until it closes or `within` passes.
fn read_answer(stream: &mut TcpStream, within: Duration) -> String {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn score_once(server: &Server) -> reqwest::StatusCode {
    let body: Vec<u8> = (0..400).flat_map(|i| (i as f32 * 1e-3).to_le_bytes()).collect();
    reqwest::blocking::Client::new()
        .put(server.url("/score"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .expect("request")
        .status()
}

/// Headers declaring the whole body limit, then nothing: they used to take
/// the whole byte budget (charged at the headers) and the request slots,
/// and every real request got 429 until the body timeout.
#[test]
fn idle_senders_do_not_block_scoring() {
    let server = Server::start(
        &[],
        &[
            "--max-inflight-bytes",
            "64MiB",
            "--max-inflight-requests",
            "8",
            "--body-limit",
            "64MiB",
            "--body-timeout",
            "60s",
        ],
    );
    let mut idle: Vec<TcpStream> =
        (0..4).map(|_| open(&server, &put_head("67108864", ""))).collect();
    idle.extend((0..16).map(|_| open(&server, &put_head("1", ""))));
    idle.extend((0..4).map(|_| {
        open(&server, "PUT /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    }));
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        assert_eq!(score_once(&server), reqwest::StatusCode::OK);
    }
    drop(idle);
}

/// A declared length over the limit is answered 413 from the headers: at
/// once, without `100 Continue`, and without waiting for the body.
#[test]
fn an_oversized_declared_body_is_refused_from_the_headers() {
    let server = Server::start(
        &[],
        &["--body-limit", "1MiB", "--body-timeout", "120s", "--body-grace", "60s"],
    );
    for extra in ["Expect: 100-continue\r\n", ""] {
        let started = Instant::now();
        let mut stream = open(&server, &put_head("104857600", extra));
        let answer = read_answer(&mut stream, Duration::from_secs(30));
        assert!(answer.starts_with("HTTP/1.1 413"), "{extra:?}: {answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
        // Far below the 120 s body timeout it used to wait for.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// Sends a whole request (head and `len` zero bytes of body, from another
/// thread, as a client that writes before it reads) and returns the answer
/// with the time it took to come.
fn send_whole(server: &Server, len: usize) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = open(server, &put_head(&len.to_string(), ""));
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&vec![0u8; len]);
    });
    let answer = read_answer(&mut stream, Duration::from_secs(30));
    let took = started.elapsed();
    drop(stream);
    sender.join().expect("sender");
    (answer, took)
}

/// Under overload, a large body refused before it was read is answered
/// after --refusal-delay: a client that resends at once would otherwise
/// have the server take in a body per refusal as fast as it can send them,
/// on the admitted requests' cores (load-tests/overload/run.sh). It used to be
/// answered at once. A small refused body is answered at once.
#[test]
fn a_large_refused_body_is_answered_after_the_refusal_delay() {
    const DELAY: Duration = Duration::from_secs(3);
    let server = Server::start(
        &[],
        &["--max-inflight-bytes", "1MiB", "--refusal-delay", "3s", "--body-timeout", "120s"],
    );
    // A sender that has sent 700 KB of a 4 MB body and waits: it holds the
    // receiving share of the budget (768 KiB), so every other body is
    // refused from its headers.
    let mut hog = open(&server, &put_head("4000000", ""));
    hog.write_all(&vec![0u8; 700_000]).expect("part of the body");
    std::thread::sleep(Duration::from_millis(500));

    let (answer, took) = send_whole(&server, 1_600_000);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
    assert!(took >= DELAY, "a large refused body was answered after {took:?}");

    let (answer, took) = send_whole(&server, 100_000);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(took < DELAY, "a small refused body waited {took:?}");
    drop(hog);
}

/// A sender that trickles its body is cut once it falls behind the
/// minimum rate, with a 408 that says why.
#[test]
fn a_trickling_sender_is_cut() {
    let server = Server::start(
        &[],
        &["--min-body-rate", "1KiB", "--body-grace", "1s", "--body-timeout", "120s"],
    );
    let mut stream = open(&server, &put_head("400000", ""));
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let started = Instant::now();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(60) {
        if stream.write_all(&[0u8; 8]).is_err() {
            break;
        }
        if let Ok(n) = stream.read(&mut buf)
            && n > 0
        {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    answer.push_str(&read_answer(&mut stream, Duration::from_secs(2)));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("slower than 1024 bytes/s"), "{answer}");
}

/// A keep-alive connection that idles past --header-timeout is closed.
#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::start(&[], &["--header-timeout", "1s"]);
    let mut stream = open(&server, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = read_answer(&mut stream, Duration::from_secs(5));
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).expect("the server closes, it does not hang");
    assert_eq!(n, 0, "closed without another answer");
}

/// Hundreds of connections that trickle or idle, beside a client scoring
/// on its own connection: every real request is scored, and the slow ones
/// neither take the connection cap nor the admission budget for long.
#[test]
fn hundreds_of_slow_connections_do_not_starve_a_job() {
    let server = Server::start(
        &[],
        &[
            "--max-connections",
            "400",
            "--max-inflight-bytes",
            "16MiB",
            "--min-body-rate",
            "4KiB",
            "--body-grace",
            "2s",
            "--header-timeout",
            "3s",
        ],
    );
    let mut slow: Vec<TcpStream> =
        (0..150).map(|_| open(&server, &put_head("1000000", ""))).collect();
    // Headers that never end.
    slow.extend((0..150).map(|_| open(&server, "PUT /score HTTP/1.1\r\nHost: x\r\n")));
    let client = reqwest::blocking::Client::new();
    let body: Vec<u8> = (0..400 * 100).flat_map(|i| (i as f32 * 1e-5).to_le_bytes()).collect();
    let started = Instant::now();
    let mut scored = 0;
    while started.elapsed() < Duration::from_secs(8) {
        for s in slow.iter_mut().take(150) {
            let _ = s.write_all(&[0u8; 16]);
        }
        let response = client
            .put(server.url("/score"))
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.bytes().expect("body").len(), 400 * 2 * 4);
        scored += 1;
    }
    assert!(scored > 0);
    // A fresh connection is still accepted: the slow ones were cut.
    assert_eq!(score_once(&server), reqwest::StatusCode::OK);
    drop(slow);
}

/// Out of file descriptors: accept failures back off and are logged a few
/// times, not every 50 ms, and once the connections go, the server answers
/// again.
#[test]
fn running_out_of_descriptors_is_survived_quietly() {
    // The server gets 64 descriptors and a cap above them, so accept fails.
    let mut server =
        Server::start_with(&[], &["--max-connections", "1000", "--header-timeout", "60s"], |cmd| {
            let program = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            let mut shell = std::process::Command::new("sh");
            shell.arg("-c").arg("ulimit -n 64 && exec \"$0\" \"$@\"").arg(program).args(args);
            shell
        });
    let address = server.base.trim_start_matches("http://").to_string();
    let held: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(&address).ok()).collect();
    std::thread::sleep(Duration::from_secs(3));
    let failures = server.log_lines("accept failed");
    assert!((1..=2).contains(&failures), "{failures} accept-failure lines in 3 s");
    drop(held);
    let started = Instant::now();
    loop {
        match reqwest::blocking::Client::new()
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
        {
            Ok(r) if r.status().is_success() => break,
            _ => assert!(started.elapsed() < Duration::from_secs(30), "never answered again"),
        }
    }
    server.stop();
}

/// Sends `len` bytes of zeros as a chunked body (64 KiB chunks) and
/// returns the status line of the answer.
fn send_chunked(server: &Server, content_type: &str, body: &[u8]) -> String {
    let head = format!(
        "PUT /score HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let mut stream = open(server, &head);
    let mut writer = stream.try_clone().expect("clone");
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        for chunk in body.chunks(64 << 10) {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            if writer.write_all(&framed).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let answer = read_answer(&mut stream, Duration::from_secs(120));
    sender.join().expect("sender");
    answer.lines().next().unwrap_or_default().to_string()
}

/// The probe's memory finding: four chunked bodies as large as the body
/// limit, whose sum is the whole budget, peaked at twice the budget (each
/// body grew by doubling, the old copy alive while it moved); JSON bodies
/// decoded to more than they were charged. Now a body moves at most once
/// and is charged for its move, and decoded JSON for its bound: the peak
/// stays near the budget. (Measured in a test build: the server before
/// the fix, 7c643cd, grew by 163 MiB here; now 91–102 MiB.)
#[test]
fn chunked_and_json_bodies_stay_near_the_budget() {
    const BUDGET_MIB: u64 = 96;
    let server = Server::start(
        &[],
        &["--workers", "1", "--body-limit", "24MiB", "--max-inflight-bytes", "96MiB"],
    );
    assert_eq!(score_once(&server), reqwest::StatusCode::OK);
    let (baseline, _) = server.memory_kib();
    let binary = vec![0u8; 60_000 * 400]; // 24 MB, whole rows of 100 float32
    let row = format!("[{}]", vec!["0.125"; 100].join(","));
    let rows = vec![row.as_str(); (11 << 20) / (row.len() + 1)];
    let json = format!("[{}]", rows.join(",")).into_bytes();
    for (content_type, body) in [("application/octet-stream", &binary), ("application/json", &json)]
    {
        let answers: Vec<String> = std::thread::scope(|s| {
            let senders: Vec<_> =
                (0..4).map(|_| s.spawn(|| send_chunked(&server, content_type, body))).collect();
            senders.into_iter().map(|t| t.join().expect("sender")).collect()
        });
        println!("{content_type}: {answers:?}");
        assert!(
            answers.iter().all(|a| a.starts_with("HTTP/1.1 200") || a.starts_with("HTTP/1.1 429")),
            "{content_type}: {answers:?}"
        );
        assert!(answers.iter().any(|a| a.starts_with("HTTP/1.1 200")), "{answers:?}");
    }
    let (peak, _) = server.memory_kib();
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    println!("chunked bodies: peak RSS grew by {growth_mib} MiB (budget {BUDGET_MIB} MiB)");
    assert!(
        growth_mib < BUDGET_MIB * 5 / 4,
        "peak RSS grew by {growth_mib} MiB, over 1.25 x the {BUDGET_MIB} MiB budget"
    );
}
