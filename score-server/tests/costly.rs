//! Small bodies that cost much after arrival (the second hostile-input
//! probe): Arrow dictionary deltas, one long word for every row, a shared
//! dictionary behind thousands of batches, one long text, many empty
//! texts, clients that never read their answers, one large embedding
//! request beside small ones, refusals on keep-alive connections, a FIFO
//! in the token file's place. The real binary on 127.0.0.1; memory is the
//! server's peak RSS growth (`VmHWM`) against a bound, as `hostile.rs`
//! measures it. The embedding cases need MiniLM (`scripts/test.sh` fetches
//! it) and skip without it unless `SCORE_REQUIRE_ONNXRUNTIME` is set.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float32Array, Int32Array, Int64Array, RecordBatch};
use arrow_array::{StringArray, builder::StringDictionaryBuilder};
use arrow_ipc::writer::{DictionaryHandling, IpcWriteOptions, StreamWriter};
use common::Server;
use serde_json::{Value, json};

const ARROW: &str = "application/vnd.apache.arrow.stream";

/// Peak RSS growth of `server` in MiB since `baseline` (KiB).
fn growth_mib(server: &Server, baseline: u64) -> u64 {
    server.memory_kib().0.saturating_sub(baseline) / 1024
}

/// The server's peak RSS in KiB once start-up is over (the baseline):
/// workers make their model states after the server listens, so the
/// peak is read until it holds still for a second.
fn warmed(server: &Server) -> u64 {
    assert_eq!(health(server).0, 200);
    let started = Instant::now();
    let mut peak = server.memory_kib().0;
    while started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        let now = server.memory_kib().0;
        if now == peak {
            break;
        }
        peak = now;
    }
    peak
}

/// `GET /healthz`: status and how long it took.
fn health(server: &Server) -> (u16, Duration) {
    let started = Instant::now();
    let status = reqwest::blocking::Client::new()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(60))
        .send()
        .map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

/// POSTs `body` as `content_type` to `path`: status and the JSON answer
/// (`Null` when not JSON).
fn post(server: &Server, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(server.url(path))
        .header("content-type", content_type)
        .timeout(Duration::from_secs(300))
        .body(body)
        .send()
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn stream(batches: &[RecordBatch], options: IpcWriteOptions) -> Vec<u8> {
    let mut writer = StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), options)
        .expect("writer");
    for batch in batches {
        writer.write(batch).expect("batch");
    }
    writer.into_inner().expect("stream")
}

/// The mixed-input model's five columns for `rows` rows, `city` as given.
fn mixed_batch(city: ArrayRef) -> RecordBatch {
    let rows = city.len();
    let floats = || -> ArrayRef { Arc::new(Float32Array::from(vec![1.5f32; rows])) };
    let plan: ArrayRef = Arc::new(StringArray::from(vec!["pro"; rows]));
    RecordBatch::try_from_iter([
        ("age", floats()),
        ("income", floats()),
        ("visits", Arc::new(Int64Array::from(vec![3i64; rows])) as ArrayRef),
        ("city", city),
        ("plan", plan),
    ])
    .expect("batch")
}

/// `rows` rows of `city` all pointing at one dictionary word.
fn one_word(word: &str, rows: usize) -> ArrayRef {
    let keys = Int32Array::from(vec![0; rows]);
    let values: ArrayRef = Arc::new(StringArray::from(vec![word]));
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).expect("dictionary"))
}

fn mixed_server(extra: &[&str]) -> Server {
    Server::start(&[], &[&["--model", &mixed_spec()], extra].concat())
}

fn mixed_spec() -> String {
    let path = score_engine::testing::fixture_path("zoo/mixed-logreg.onnx");
    format!("mixed={}", path.display())
}

/// Dictionary deltas make the decoder concatenate the whole dictionary
/// again for each delta, and every batch keeps its copy: a 1.25 MB body
/// raised the peak by 524 MiB, a 3 MB one aborted the server. What the
/// copies will take is now added up from the stream's framing and charged
/// before anything is decoded: here 1.5 GB, refused (413), for a model fed
/// by name and for a matrix model alike; a few deltas are decoded.
#[test]
fn dictionary_deltas_are_charged_before_they_grow() {
    let server = Server::start(&["logreg"], &["--model", &mixed_spec()]);
    let baseline = warmed(&server);
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    let mut batches = Vec::new();
    builder.append_value("x".repeat(1 << 20));
    batches.push(mixed_batch(Arc::new(builder.finish_preserve_values())));
    for i in 0..1_500 {
        builder.append_value(format!("w{i}"));
        batches.push(mixed_batch(Arc::new(builder.finish_preserve_values())));
    }
    let body = stream(
        &batches,
        IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta),
    );
    println!("delta stream: {} bytes", body.len());
    for path in ["/models/mixed/score", "/models/logreg/score"] {
        let (status, answer) = post(&server, path, ARROW, body.clone());
        assert_eq!(status, 413, "{path}: {answer}");
        let sentence = answer["error"].as_str().unwrap_or_default();
        assert!(sentence.contains("each dictionary delta copies"), "{sentence}");
    }
    let growth = growth_mib(&server, baseline);
    println!("dictionary deltas: peak RSS grew by {growth} MiB");
    assert!(growth < 48, "peak RSS grew by {growth} MiB");
    // The same rows with each dictionary sent whole are scored, and so
    // are 50 deltas (50 MiB of copies).
    let whole = stream(&batches[..50], IpcWriteOptions::default());
    let (status, answer) = post(&server, "/models/mixed/score", ARROW, whole);
    assert_eq!(status, 200, "{answer}");
    let deltas = stream(
        &batches[..50],
        IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta),
    );
    let (status, answer) = post(&server, "/models/mixed/score", ARROW, deltas);
    assert_eq!(status, 200, "{answer}");
}

/// A dictionary column of a few bytes a row may point every row at one
/// long word, which the workers copy once a row into the model's string
/// tensor: 8,192 rows at a 64 KiB word (a 0.2 MB body) peaked at 535 MiB.
/// The expanded size is charged before any work and refused (413, naming
/// the budget) when it cannot fit; a short word for every row is scored.
#[test]
fn one_word_for_every_row_is_charged_as_expanded() {
    let server = mixed_server(&[]);
    let baseline = warmed(&server);
    let word = "w".repeat(64 << 10);
    let body = stream(&[mixed_batch(one_word(&word, 8192))], IpcWriteOptions::default());
    assert!(body.len() < 300_000, "{} bytes", body.len());
    let (status, answer) = post(&server, "/models/mixed/score", ARROW, body);
    assert_eq!(status, 413, "{answer}");
    let sentence = answer["error"].as_str().unwrap_or_default();
    assert!(sentence.contains("--max-inflight-bytes"), "{sentence}");
    assert!(sentence.contains("send at most about"), "{sentence}");
    let growth = growth_mib(&server, baseline);
    println!("one 64 KiB word for 8,192 rows: peak RSS grew by {growth} MiB");
    assert!(growth < 64, "peak RSS grew by {growth} MiB");

    let body = stream(&[mixed_batch(one_word("Москва", 8192))], IpcWriteOptions::default());
    let (status, answer) = post(&server, "/models/mixed/score", ARROW, body);
    assert_eq!(status, 200, "{answer}");
}

/// One dictionary of 100,000 words shared by 40,000 one-row batches (a 17
/// MB body): every batch's rows used to copy the whole dictionary, which
/// kept both workers busy for 33 s while small requests waited. Now only
/// the words rows point at are read, and a small request beside it is
/// answered at once.
#[test]
fn a_shared_dictionary_is_read_where_rows_point() {
    let server = mixed_server(&["--workers", "2"]);
    let words: ArrayRef =
        Arc::new(StringArray::from_iter_values((0..100_000).map(|i| format!("city{i}"))));
    let batches: Vec<RecordBatch> = (0..40_000)
        .map(|i| {
            let keys = Int32Array::from(vec![(i * 7) % 100_000]);
            let city = DictionaryArray::<Int32Type>::try_new(keys, words.clone()).expect("dict");
            mixed_batch(Arc::new(city))
        })
        .collect();
    let body = stream(&batches, IpcWriteOptions::default());
    println!("shared dictionary: {} bytes", body.len());
    let small = stream(&[mixed_batch(one_word("lyon", 10))], IpcWriteOptions::default());
    let worst = std::thread::scope(|s| {
        let big = s.spawn(|| post(&server, "/models/mixed/score", ARROW, body));
        let mut worst = Duration::ZERO;
        while !big.is_finished() {
            let started = Instant::now();
            let (status, answer) = post(&server, "/models/mixed/score", ARROW, small.clone());
            assert_eq!(status, 200, "{answer}");
            worst = worst.max(started.elapsed());
        }
        let (status, answer) = big.join().expect("big request");
        assert_eq!(status, 200, "{answer}");
        worst
    });
    println!("shared dictionary: a 10-row request beside it waited at most {worst:?}");
    assert!(worst < Duration::from_secs(5), "a 10-row request waited {worst:?}");
}

/// Two columns of one name were accepted (the first one won); they are
/// refused with a sentence. An error naming columns lists a few, not
/// 100,000, and a name of a megabyte is not echoed whole.
#[test]
fn column_names_are_checked_and_quoted_briefly() {
    let server = mixed_server(&[]);
    let a = mixed_batch(one_word("lyon", 2));
    let mut columns: Vec<(String, ArrayRef)> =
        a.schema().fields().iter().map(|f| f.name().clone()).zip(a.columns().to_vec()).collect();
    columns.push(("age".into(), a.column(0).clone()));
    let twice = RecordBatch::try_from_iter(columns).expect("batch");
    let (status, answer) =
        post(&server, "/models/mixed/score", ARROW, stream(&[twice], IpcWriteOptions::default()));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "the Arrow body has two columns named \"age\"; name each column once"
    );

    let logreg = Server::start(&["logreg"], &[]);
    let many: Vec<(String, ArrayRef)> = (0..20_000)
        .map(|i| (format!("column_{i}"), Arc::new(Float32Array::from(vec![1.0f32])) as ArrayRef))
        .collect();
    let body =
        stream(&[RecordBatch::try_from_iter(many).expect("batch")], IpcWriteOptions::default());
    let (status, answer) = post(&logreg, "/score", ARROW, body);
    assert_eq!(status, 400, "{answer}");
    let sentence = answer["error"].as_str().unwrap_or_default();
    assert!(sentence.contains("\"column_4\", ... and 19995 more"), "{sentence}");
    assert!(sentence.len() < 1200, "{} bytes", sentence.len());

    let long = "n".repeat(1 << 20);
    let column: ArrayRef = Arc::new(Float32Array::from(vec![1.0f32]));
    let body = stream(
        &[RecordBatch::try_from_iter([(long.as_str(), column)]).expect("batch")],
        IpcWriteOptions::default(),
    );
    let (status, answer) = post(&logreg, "/score", ARROW, body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().len() < 1200, "{answer}");
}

/// A dictionary key that points at a null word is refused in one plain
/// sentence (it used to carry a run of spaces from a line break).
#[test]
fn a_key_to_a_null_word_is_refused_in_a_plain_sentence() {
    let server = mixed_server(&[]);
    let words: ArrayRef = Arc::new(StringArray::from(vec![Some("lyon"), None]));
    let keys = Int32Array::from(vec![0, 1]);
    let city = DictionaryArray::<Int32Type>::try_new(keys, words).expect("dictionary");
    let body = stream(&[mixed_batch(Arc::new(city))], IpcWriteOptions::default());
    let (status, answer) = post(&server, "/models/mixed/score", ARROW, body);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "row 1 of column \"city\": dictionary key 1 is a null (the dictionary holds 2 values)"
    );
}

/// A refusal decided from the headers (here a 409 for another model
/// version) used to close the connection without saying so and without
/// reading the body: a keep-alive client got EPIPE on its next request,
/// and an 8 MB sender failed before it could read the 409. Now the answer
/// says `Connection: close` and the body is read and thrown away, so the
/// sender finishes and reads it.
#[test]
fn an_early_refusal_says_close_and_lets_the_sender_finish() {
    let server = Server::start(&["logreg"], &[]);
    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    let len = 8_000_000;
    let head = format!(
        "PUT /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         X-Model-Version: 0000000000000000\r\nContent-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&vec![0u8; len]));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 409"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    sender.join().expect("sender").expect("the whole body was taken in");
    // The same for an unknown route and a missing model.
    for path in ["/models/nope/score", "/nowhere"] {
        let mut stream = TcpStream::connect(address).expect("connect");
        let head = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("head");
        stream.write_all(&vec![0u8; 100_000]).expect("body");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 404"), "{path}: {answer}");
        assert!(answer.contains("connection: close"), "{path}: {answer}");
    }
}

/// Reading the token file at SIGHUP on an I/O thread let a FIFO put in its
/// place hang the server, `/healthz` included. Now it is checked to be a
/// regular file and read off the I/O threads: the old tokens stay, and
/// the server answers throughout.
#[test]
fn a_fifo_in_the_token_files_place_does_not_hang_the_server() {
    let dir = std::env::temp_dir().join(format!("score-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "secret\n").expect("tokens");
    let server = Server::start(
        &["logreg"],
        &["--workers", "1", "--auth-token-file", tokens.to_str().expect("utf-8")],
    );
    std::fs::remove_file(&tokens).expect("remove");
    let made = std::process::Command::new("mkfifo").arg(&tokens).status().expect("mkfifo");
    assert!(made.success());
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = health(&server);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(5), "/healthz took {took:?}");
    let models = reqwest::blocking::Client::new()
        .get(server.url("/models"))
        .header("authorization", "Bearer secret")
        .timeout(Duration::from_secs(10))
        .send()
        .expect("request");
    assert_eq!(models.status().as_u16(), 200, "the old token still works");
    assert!(server.log_lines("auth tokens not reloaded") >= 1, "{:?}", server.log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/embed` and `/v1/embeddings` took any Content-Type: a web page can
/// send `text/plain` anywhere without asking, so any page could drive
/// them when auth is off. They take only `application/json`.
#[test]
fn the_json_routes_take_only_json() {
    let server = Server::start(&["logreg"], &[]);
    for path in ["/embed", "/v1/embeddings"] {
        let body = br#"{"inputs": "hello", "input": "hello"}"#.to_vec();
        let (status, answer) = post(&server, path, "text/plain", body);
        assert_eq!(status, 415, "{path}: {answer}");
        // /v1/embeddings answers in OpenAI's shape, error.message.
        let sentence =
            answer["error"].as_str().or(answer["error"]["message"].as_str()).unwrap_or_default();
        assert!(sentence.contains("Content-Type: application/json"), "{sentence}");
    }
}

/// The MiniLM export directory, or `None` (the test then says why and
/// passes, unless `SCORE_REQUIRE_ONNXRUNTIME` is set).
fn minilm(test: &str) -> Option<String> {
    let found = std::env::var("SCORE_EMBED_DIR").ok().filter(|_| {
        std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| std::path::Path::new(&p).is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SCORE_REQUIRE_ONNXRUNTIME").is_none(),
            "{test}: needs SCORE_EMBED_DIR and ORT_DYLIB_PATH (eval \"$(scripts/embedding-reference.sh)\")"
        );
        eprintln!("{test}: skipped: no MiniLM (eval \"$(scripts/embedding-reference.sh)\")");
    }
    found
}

fn minilm_server(dir: &str, extra: &[&str]) -> Server {
    Server::start(&[], &[&["--model", &format!("mini={dir}")], extra].concat())
}

/// One long text used to be tokenized whole before it was refused: 5 MB
/// of `!` took the server to 2.4 GB, 10 MB aborted it. A text longer in
/// bytes than any text within the token limit can be is now refused
/// before tokenizing (413 naming its bytes), or with `truncate` cut at
/// that many bytes first; the cut text's vector is the one of its start.
#[test]
fn a_long_text_is_refused_or_cut_before_it_is_tokenized() {
    let Some(dir) = minilm("a_long_text_is_refused_or_cut_before_it_is_tokenized") else {
        return;
    };
    let server = minilm_server(&dir, &[]);
    let baseline = warmed(&server);
    let bang = "!".repeat(5 << 20);
    let body = serde_json::to_vec(&json!({"inputs": [&bang]})).expect("json");
    let (status, answer) = post(&server, "/embed", "application/json", body);
    assert_eq!(status, 413, "{answer}");
    let sentence = answer["error"].as_str().unwrap_or_default();
    assert!(sentence.starts_with("text 0 is 5242880 bytes, more than the"), "{sentence}");
    let body = serde_json::to_vec(&json!({"inputs": [&bang], "truncate": true})).expect("json");
    let (status, cut) = post(&server, "/embed", "application/json", body);
    assert_eq!(status, 200, "{cut}");
    let start = "!".repeat(20_000);
    let body = serde_json::to_vec(&json!({"inputs": [&start], "truncate": true})).expect("json");
    let (_, reference) = post(&server, "/embed", "application/json", body);
    assert_eq!(cut, reference, "a cut text embeds as its start");
    let growth = growth_mib(&server, baseline);
    println!("a 5 MB text: peak RSS grew by {growth} MiB");
    assert!(growth < 160, "peak RSS grew by {growth} MiB");
}

/// 60,000 empty strings (a 240 KB body) made a 488 MB answer and took
/// the server to 4 GB; 100,000 aborted it. Texts per request are capped
/// (`--max-texts`), and past the cap the answer's size is charged before
/// any work: 413 saying how many would fit.
#[test]
fn many_texts_are_refused_by_count_and_by_answer_size() {
    let Some(dir) = minilm("many_texts_are_refused_by_count_and_by_answer_size") else {
        return;
    };
    let texts = vec![""; 100_000];
    let body = serde_json::to_vec(&json!({"input": texts})).expect("json");
    let server = minilm_server(&dir, &[]);
    let baseline = warmed(&server);
    let (status, answer) = post(&server, "/v1/embeddings", "application/json", body.clone());
    assert_eq!(status, 413, "{answer}");
    let sentence = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(sentence.contains("at most 16384 (--max-texts)"), "{sentence}");
    assert!(growth_mib(&server, baseline) < 64);
    drop(server);

    let server = minilm_server(&dir, &["--max-texts", "200000"]);
    let baseline = warmed(&server);
    let (status, answer) = post(&server, "/v1/embeddings", "application/json", body);
    assert_eq!(status, 413, "{answer}");
    let sentence = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(sentence.contains("send at most about"), "{sentence}");
    let growth = growth_mib(&server, baseline);
    println!("100,000 empty texts: peak RSS grew by {growth} MiB");
    assert!(growth < 64, "peak RSS grew by {growth} MiB");
}

/// The admission charge was given back before the answer was written, and
/// nothing cut a client that never read it: ten such clients held +320 MiB
/// uncounted for as long as they stayed. Now an answer holds its charge
/// until written (`inflight_bytes` shows it), and `--write-timeout` closes
/// the connection of a client that reads nothing, which gives it back.
#[test]
fn answers_hold_their_charge_until_read_and_are_cut_if_never_read() {
    let Some(dir) = minilm("answers_hold_their_charge_until_read_and_are_cut_if_never_read") else {
        return;
    };
    let server = minilm_server(&dir, &["--write-timeout", "3s"]);
    let address = server.base.trim_start_matches("http://").to_string();
    // 6,000 empty texts: a JSON answer of about 24 MB, more than the
    // socket buffers on both sides take (10 MB at most here).
    let body = serde_json::to_vec(&json!({"inputs": vec![""; 6000]})).expect("json");
    let head = format!(
        "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&address).expect("connect");
            s.write_all(head.as_bytes()).expect("head");
            s.write_all(&body).expect("body");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let held = inflight_bytes(&server);
    assert!(held > 8 << 20, "the unread answers hold {held} bytes of the budget");
    let started = Instant::now();
    while inflight_bytes(&server) > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "never given back");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(silent);
}

/// The server's `inflight_bytes` gauge.
fn inflight_bytes(server: &Server) -> u64 {
    let text = reqwest::blocking::get(server.url("/metrics")).expect("metrics").text().expect("t");
    text.lines()
        .find(|l| l.starts_with("score_inflight_bytes ") || l.starts_with("inflight_bytes "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or_else(|| panic!("no inflight_bytes gauge in {text}"), |v| v as u64)
}

/// One embedding request of 4,096 texts was one worker call of 15–27 s,
/// and 4-row requests to another model waited 5–20 s behind it. Calls are
/// now cut by an upper bound on their tokens, and small requests have
/// their own lane: a 10-row request beside the large one is answered
/// while it runs.
#[test]
fn a_large_embedding_request_does_not_hold_up_small_ones() {
    let Some(dir) = minilm("a_large_embedding_request_does_not_hold_up_small_ones") else {
        return;
    };
    let server = Server::start(
        &["logreg"],
        &["--model", &format!("mini={dir}"), "--workers", "2", "--max-inflight-bytes", "1GiB"],
    );
    let review = "The delivery was late by two days, but the courier was polite and the \
                  package arrived intact; the blender itself works well and is quiet.";
    let texts = vec![review; 4096];
    let body = serde_json::to_vec(&json!({"inputs": texts, "truncate": true})).expect("json");
    let rows: Vec<u8> = (0..10 * 100).flat_map(|i| (i as f32 * 1e-3).to_le_bytes()).collect();
    let (worst, big) = std::thread::scope(|s| {
        let big = s.spawn(|| {
            let started = Instant::now();
            let (status, answer) = post(&server, "/embed", "application/json", body);
            assert_eq!(status, 200, "{answer}");
            started.elapsed()
        });
        let client = reqwest::blocking::Client::new();
        let mut worst = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(300));
        while !big.is_finished() {
            let started = Instant::now();
            let response = client
                .put(server.url("/models/logreg/score"))
                .header("content-type", "application/octet-stream")
                .body(rows.clone())
                .send()
                .expect("request");
            assert_eq!(response.status().as_u16(), 200);
            worst = worst.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        (worst, big.join().expect("big"))
    });
    println!("4,096 reviews took {big:?}; a 10-row request beside them waited at most {worst:?}");
    assert!(worst < Duration::from_secs(3), "a 10-row request waited {worst:?}");
}
