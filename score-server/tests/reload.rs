//! Hot reload against the real binary: SIGHUP and `--watch` swap a changed
//! model in, a broken file leaves the old version serving, a request pinned
//! to another version gets 409, and reloads under load lose no request and
//! never mix versions within an answer.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use score_engine::testing::linreg_shifted;
use score_protocol::codec;
use score_protocol::headers::MODEL_VERSION;

/// A folder for one test's model file, removed at the end.
struct Folder(PathBuf);

impl Folder {
    fn new(test: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("reload-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Folder(dir)
    }

    /// Writes `bytes` to `name` as an operator should: a complete file
    /// renamed over the old one.
    fn replace(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        let partial = self.0.join(format!(".{name}.partial"));
        std::fs::write(&partial, bytes).expect("write model");
        std::fs::rename(&partial, &path).expect("rename model");
        path
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(path: &Path, extra: &[&str]) -> Server {
    let model = format!("m={}", path.display());
    let mut args = vec!["--model", &model, "--workers", "2"];
    args.extend_from_slice(extra);
    Server::start(&[], &args)
}

/// One row of linreg's 20 features.
fn row() -> Vec<u8> {
    codec::encode(&(0..20).map(|i| i as f32 / 10.0).collect::<Vec<_>>())
}

/// Scores `row()`: status, the version header and the score.
fn score(http: &Client, server: &Server, pinned: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = http
        .put(server.url("/models/m/score"))
        .header("content-type", "application/octet-stream")
        .body(row());
    if let Some(v) = pinned {
        request = request.header(MODEL_VERSION, v);
    }
    let response = request.send().expect("request");
    let status = response.status();
    let version = response
        .headers()
        .get(MODEL_VERSION)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    (status, version, response.bytes().expect("body").to_vec())
}

fn score_value(body: &[u8]) -> f32 {
    codec::decode(body).expect("floats")[0]
}

/// `/models/m`'s version and load time.
fn listed(http: &Client, server: &Server) -> (String, String) {
    let doc: serde_json::Value =
        http.get(server.url("/models/m")).send().expect("models").json().expect("JSON");
    (
        doc["version"].as_str().expect("version").to_string(),
        doc["loaded_at"].as_str().expect("loaded_at").to_string(),
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_swaps_a_changed_model_in_and_a_broken_one_leaves_the_old_serving() {
    let folder = Folder::new("sighup");
    let path = folder.replace("m.onnx", &linreg_shifted(0.0));
    let server = start(&path, &[]);
    let http = Client::new();

    let (status, v1, body) = score(&http, &server, None);
    assert_eq!(status, StatusCode::OK);
    let y1 = score_value(&body);
    let (listed_v1, loaded_v1) = listed(&http, &server);
    assert_eq!(listed_v1, v1);
    assert!(loaded_v1.ends_with('Z'), "RFC 3339 UTC: {loaded_v1}");

    // Unchanged files: nothing is loaded.
    server.signal("HUP");
    wait_for("the unchanged reload", || server.log_lines("model unchanged") == 1);
    assert_eq!(listed(&http, &server).0, v1);

    // A new version, swapped in by SIGHUP.
    folder.replace("m.onnx", &linreg_shifted(10.0));
    server.signal("HUP");
    wait_for("the new version", || listed(&http, &server).0 != v1);
    let (status, v2, body) = score(&http, &server, None);
    assert_eq!(status, StatusCode::OK);
    assert_ne!(v2, v1);
    let y2 = score_value(&body);
    assert!((y2 - y1 - 10.0).abs() < 1e-3, "{y1} then {y2}: not the shifted model");

    // Pinned to the old version: refused before scoring, with both named.
    let (status, _, body) = score(&http, &server, Some(&v1));
    assert_eq!(status, StatusCode::CONFLICT);
    let error: serde_json::Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["kind"], "version_mismatch");
    let sentence = error["error"].as_str().expect("sentence");
    assert!(sentence.contains(&v1) && sentence.contains(&v2), "{sentence}");
    assert_eq!(score(&http, &server, Some(&v2)).0, StatusCode::OK, "pinned to the served one");

    // A broken file: logged, counted, and v2 serves on.
    folder.replace("m.onnx", b"not an onnx model");
    server.signal("HUP");
    wait_for("the failed reload", || server.log_lines("model not reloaded") == 1);
    let (status, version, body) = score(&http, &server, None);
    assert_eq!((status, version.as_str()), (StatusCode::OK, v2.as_str()));
    assert_eq!(score_value(&body), y2);
    let metrics = http.get(server.url("/metrics")).send().expect("metrics").text().expect("text");
    for (outcome, n) in [("loaded", 1), ("unchanged", 1), ("failed", 1)] {
        let line = format!("score_model_reloads_total{{model=\"m\",outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
    assert!(metrics.contains(&format!("version=\"{v2}\"")), "model_info shows {v2}");
    assert!(!metrics.contains(&format!("version=\"{v1}\"")), "model_info still shows {v1}");
}

/// `--watch` reloads as files change while four clients score without a
/// pause: every request answers 200, and each answer's score is the one of
/// the version its header names (a request finishes on the version it
/// started with).
#[test]
fn reloads_under_load_lose_no_request_and_never_mix_versions() {
    let folder = Folder::new("watch");
    let path = folder.replace("m.onnx", &linreg_shifted(0.0));
    let server = Arc::new(start(&path, &["--watch", "50ms"]));
    let http = Client::new();
    let (_, v_a, body) = score(&http, &server, None);
    let y_a = score_value(&body);

    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = Client::new();
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, version, body) = score(&http, &server, None);
                    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
                    answers.push((version, score_value(&body)));
                }
                answers
            })
        })
        .collect();

    let mut v_b = String::new();
    for flip in 0..6 {
        let (shift, expect_old) =
            if flip % 2 == 0 { (10.0, v_a.clone()) } else { (0.0, v_b.clone()) };
        folder.replace("m.onnx", &linreg_shifted(shift));
        wait_for("the watched reload", || listed(&http, &server).0 != expect_old);
        if flip == 0 {
            v_b = listed(&http, &server).0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(String, f32)> =
        loaders.into_iter().flat_map(|t| t.join().expect("a client thread failed")).collect();
    let mut seen = [0usize; 2];
    for (version, y) in &answers {
        if *version == v_a {
            assert_eq!(*y, y_a, "an answer of {v_a} with another version's score");
            seen[0] += 1;
        } else {
            assert_eq!(version, &v_b, "an unknown version");
            assert!((y - y_a - 10.0).abs() < 1e-3, "an answer of {v_b} with score {y}");
            seen[1] += 1;
        }
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both versions served: {seen:?}");
    assert_eq!(server.log_lines("model reloaded"), 6, "one reload per change");
}
