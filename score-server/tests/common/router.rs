//! Helpers for the tests that drive the router without a socket
//! (`router.rs`, `arrow.rs`): the real models and worker pool behind
//! `app(state)`, requests sent with `oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use clap::Parser;
use http_body_util::BodyExt;
use score_engine::testing::fixture_path;
use score_server::{AppState, Args, app};
use serde_json::Value;
use tower::ServiceExt;

pub fn state(models: &[&str], extra: &[&str]) -> Arc<AppState> {
    let mut argv = vec!["score-server".to_string()];
    for m in models {
        let (name, file) = m.split_once('=').unwrap_or((m, m));
        argv.push("--model".into());
        argv.push(format!("{name}={}", fixture_path(&format!("{file}.onnx")).display()));
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let config = Args::parse_from(argv).into_config().expect("valid flags");
    AppState::new(config).expect("models load")
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

pub async fn send(
    state: &Arc<AppState>,
    request: Request<Body>,
) -> (StatusCode, Response, Vec<u8>) {
    let response = app(state.clone()).oneshot(request).await.expect("infallible");
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (status, Response::from_parts(parts, Body::empty()), bytes)
}

pub fn put(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::put(uri).header(header::CONTENT_TYPE, content_type).body(body.into()).expect("request")
}

pub fn error_kind(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).expect("errors are JSON");
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "no error sentence: {v}");
    v["kind"].as_str().expect("kind").to_string()
}

/// A fixture's reference: its input rows and onnxruntime's outputs.
pub struct Reference {
    pub columns: usize,
    pub input: Vec<f32>,
    pub rows: usize,
    pub outputs: Vec<(String, String, Vec<f32>)>,
    /// String label outputs by name: the labels as onnxruntime gives them.
    pub strings: std::collections::HashMap<String, Vec<String>>,
}

pub fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture_path(&format!("{name}.reference.json")))
        .expect("reference file");
    let v: Value = serde_json::from_str(&text).expect("reference JSON");
    let flat = |rows: &Value| -> Vec<f32> {
        rows.as_array()
            .expect("rows")
            .iter()
            .flat_map(|r| {
                // null: a missing value (NaN), as the zoo's imputer inputs have.
                r.as_array().expect("row").iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
            })
            .collect()
    };
    let rows = v["input"].as_array().expect("input").len();
    let outputs = v["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(k, o)| {
            (k.clone(), o["dtype"].as_str().expect("dtype").to_string(), flat(&o["values"]))
        })
        .collect();
    let strings = v["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .filter(|(_, o)| o["dtype"] == "string")
        .map(|(k, o)| {
            let labels = o["values"]
                .as_array()
                .expect("rows")
                .iter()
                .flat_map(|r| r.as_array().expect("row").iter())
                .map(|x| x.as_str().expect("string label").to_string())
                .collect();
            (k.clone(), labels)
        })
        .collect();
    Reference {
        strings,
        columns: v["columns"].as_u64().expect("columns") as usize,
        input: flat(&v["input"]),
        rows,
        outputs,
    }
}

/// Whether the onnxruntime engine can run here: its library is named by
/// `ORT_DYLIB_PATH` (scripts/test.sh sets it from scripts/onnxruntime.sh).
/// Without it the onnxruntime tests say so and pass, unless
/// `SCORE_REQUIRE_ONNXRUNTIME` is set (as scripts/test.sh does): then
/// its absence fails them.
#[allow(dead_code)]
pub fn onnxruntime_available(test: &str) -> bool {
    let found =
        std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| std::path::Path::new(&p).is_file());
    if !found {
        assert!(
            std::env::var_os("SCORE_REQUIRE_ONNXRUNTIME").is_none(),
            "{test}: SCORE_REQUIRE_ONNXRUNTIME is set but ORT_DYLIB_PATH names no library"
        );
        eprintln!(
            "{test}: skipped, no onnxruntime library (set ORT_DYLIB_PATH=$(scripts/onnxruntime.sh))"
        );
    }
    found
}
