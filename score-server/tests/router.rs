//! Router tests: the real models and worker pool behind `app(state)`, driven
//! with `oneshot`, no socket.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::router::{
    Reference, error_kind, f32_bytes, floats, onnxruntime_available, put, reference, send, state,
};
use score_engine::testing::fixture_path;
use score_server::AppState;
use serde_json::Value;

/// Every fixture model, every output, against onnxruntime's outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_with_onnxruntime_for_every_fixture() {
    fixtures_match(&[]).await;
}

/// The same under the onnxruntime engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_with_onnxruntime_for_every_fixture_under_onnxruntime() {
    if onnxruntime_available("fixtures under onnxruntime") {
        fixtures_match(&["--engine", "onnxruntime"]).await;
    }
}

async fn fixtures_match(flags: &[&str]) {
    let names = ["logreg", "forest", "linreg", "mlp"];
    let state = state(&names, flags);
    for name in names {
        assert_parity(&state, name, &reference(name)).await;
    }
}

/// Every models/zoo export fed one float32 matrix (docs/models.md): every
/// output against onnxruntime. Covers our ai.onnx.ml operators in the
/// pipelines and ensembles that use them. (The `mixed-*` exports, fed by
/// name, are tests/typed.rs's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_with_onnxruntime_for_the_zoo_exports() {
    zoo_matches(&[]).await;
}

/// The same under the onnxruntime engine (docs/models.md's engine column).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_with_onnxruntime_for_the_zoo_exports_under_onnxruntime() {
    if onnxruntime_available("zoo under onnxruntime") {
        zoo_matches(&["--engine", "onnxruntime"]).await;
    }
}

async fn zoo_matches(flags: &[&str]) {
    let mut zoo: Vec<String> = std::fs::read_dir(fixture_path("zoo"))
        .expect("models/zoo")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("UTF-8 name");
            name.strip_suffix(".onnx").filter(|n| !n.starts_with("mixed-")).map(str::to_string)
        })
        .collect();
    zoo.sort();
    assert_eq!(zoo.len(), 35, "{zoo:?}");
    let specs: Vec<String> =
        zoo.iter().enumerate().map(|(i, file)| format!("m{i}=zoo/{file}")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let state = state(&specs, flags);
    for (i, file) in zoo.iter().enumerate() {
        assert_parity(&state, &format!("m{i}"), &reference(&format!("zoo/{file}"))).await;
    }
}

async fn assert_parity(state: &Arc<AppState>, name: &str, r: &Reference) {
    {
        assert_eq!(r.input.len(), r.rows * r.columns);
        for (output, dtype, expected) in &r.outputs {
            let uri = format!("/models/{name}/score?output={output}");
            let (status, response, body) =
                send(state, put(&uri, "application/octet-stream", f32_bytes(&r.input))).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{name}/{output}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(response.headers()["x-score-rows"], r.rows.to_string().as_str());
            let got = floats(&body);
            assert_eq!(got.len(), expected.len(), "{name}/{output}: length");
            if dtype == "string" {
                // Served as the class index; the names are in the metadata.
                let meta = send(
                    state,
                    Request::get(format!("/models/{name}")).body(Body::empty()).expect("request"),
                )
                .await;
                let meta: Value = serde_json::from_slice(&meta.2).expect("metadata JSON");
                let info = meta["outputs"]
                    .as_array()
                    .expect("outputs")
                    .iter()
                    .find(|o| o["name"] == output.as_str())
                    .expect("output in metadata");
                let classes: Vec<&str> = info["classes"]
                    .as_array()
                    .expect("classes listed")
                    .iter()
                    .map(|c| c.as_str().expect("class name"))
                    .collect();
                let want: Vec<f32> = r.strings[output]
                    .iter()
                    .map(|l| {
                        classes.iter().position(|c| c == l).expect("label among classes") as f32
                    })
                    .collect();
                println!("parity {name}/{output} (string labels as class index)");
                assert_eq!(got, want, "{name}/{output}: labels differ");
                continue;
            }
            // Absolute on probabilities; relative to the value beyond 1
            // (a regression's 228.21 has a float32 ulp of 1.5e-5, and
            // summation order differs from onnxruntime's GEMM).
            let max_diff = got
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0.0f32, f32::max);
            println!("parity {name}/{output} ({dtype}): max diff {max_diff:e}");
            if dtype.starts_with("int") {
                assert_eq!(&got, expected, "{name}/{output}: labels differ");
            } else {
                assert!(max_diff <= 1e-5, "{name}/{output}: max diff {max_diff}");
            }
        }
    }
}

/// The default output is the first float output: a classifier's probabilities.
#[tokio::test]
async fn default_output_and_json_agree_with_binary() {
    let state = state(&["logreg"], &[]);
    let r = reference("logreg");
    let rows: Vec<Vec<f32>> = r.input.chunks(r.columns).take(3).map(<[f32]>::to_vec).collect();
    let json = serde_json::to_vec(&rows).expect("json");
    let (status, response, body) = send(&state, put("/score", "application/json", json)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["output"], "probabilities");
    assert_eq!(v["columns"], 2);
    let from_json: Vec<f32> = v["outputs"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("num") as f32))
        .collect();

    let binary = f32_bytes(&r.input[..3 * r.columns]);
    let (status, response, body) =
        send(&state, put("/score", "application/octet-stream", binary)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()["x-score-columns"], "2");
    assert_eq!(response.headers()["x-score-output"], "probabilities");
    assert_eq!(from_json, floats(&body));
}

#[tokio::test]
async fn client_errors_are_json_with_the_right_status() {
    let state = state(&["logreg", "linreg"], &["--body-limit", "4KiB"]);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            put("/score", "application/octet-stream", vec![0u8; 401]),
            StatusCode::BAD_REQUEST,
            "bad_shape",
        ),
        (
            Request::put("/score")
                .header("x-score-columns", "99")
                .body(Body::from(vec![0u8; 400]))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "column_mismatch",
        ),
        (
            Request::put("/score")
                .header("x-score-deadline-ms", "soon")
                .body(Body::empty())
                .expect("r"),
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (put("/score", "application/json", "[[1,2"), StatusCode::BAD_REQUEST, "malformed_json"),
        (put("/score", "application/json", "[[1,2]]"), StatusCode::BAD_REQUEST, "bad_shape"),
        (
            put("/score?outptu=x", "application/json", "[]"),
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            put("/models/nope/score", "application/json", "[]"),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
        (
            put("/score?output=nope", "application/json", "[]"),
            StatusCode::NOT_FOUND,
            "unknown_output",
        ),
        (
            Request::get("/models/nope").body(Body::empty()).expect("r"),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
        (Request::get("/nope").body(Body::empty()).expect("r"), StatusCode::NOT_FOUND, "not_found"),
        (
            Request::delete("/score").body(Body::empty()).expect("r"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            put("/score", "application/octet-stream", vec![0u8; 8000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            put("/score", "text/csv", "1,2"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (request, status, kind) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, _, body) = send(&state, request).await;
        assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(error_kind(&body), kind, "{what}");
    }
}

#[tokio::test]
async fn empty_body_scores_zero_rows() {
    let state = state(&["logreg"], &[]);
    let (status, response, body) =
        send(&state, put("/score", "application/octet-stream", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()["x-score-rows"], "0");
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_passed_deadline_answers_504_and_skips_the_work() {
    let state = state(&["logreg"], &[]);
    let request = Request::put("/score")
        .header("x-score-deadline-ms", "0")
        .body(Body::from(vec![0u8; 400 * 10]))
        .expect("request");
    let (status, _, body) = send(&state, request).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_kind(&body), "deadline_exceeded");
    assert!(state.metrics.encode().contains("score_jobs_deadline_exceeded_total 1"));
}

#[tokio::test]
async fn a_model_failure_answers_a_generic_500() {
    let state = state(&["faulty"], &[]);
    let (status, _, body) = send(&state, put("/score", "application/json", "[[1, 0]]")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(&state, put("/score", "application/json", "[[7, 0]]")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_kind(&body), "internal");
    assert!(!String::from_utf8_lossy(&body).contains("gather"), "detail leaked");
    // The worker survives the failure.
    let (status, _, _) = send(&state, put("/score", "application/json", "[[2, 0]]")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn health_readiness_metadata_and_metrics() {
    let state = state(&["logreg", "forest"], &[]);
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, _, _) = send(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = send(&state, get("/models")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["models"][0]["name"], "logreg");
    assert_eq!(v["models"][0]["default"], true);
    let (_, _, body) = send(&state, get("/models/forest")).await;
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["input"]["columns"], 10);
    assert_eq!(v["outputs"][0]["name"], "label");
    assert_eq!(v["outputs"][0]["dtype"], "int64");
    assert_eq!(v["outputs"][1]["columns"], 3);
    assert_eq!(v["default_output"], "probabilities");
    assert_eq!(v["version"].as_str().map(str::len), Some(16));

    send(&state, put("/score", "application/octet-stream", vec![0u8; 800])).await;
    let (status, response, body) = send(&state, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE].to_str().expect("ascii").contains("openmetrics")
    );
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.contains(r#"score_rows_total{model="logreg"} 2"#), "{text}");
    assert!(text.contains(r#"route="/score""#), "{text}");
    assert!(text.contains(r#"score_model_info{model="forest""#), "{text}");

    state.start_draining();
    let (status, response, body) = send(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(error_kind(&body), "draining");
    let (status, _, _) =
        send(&state, put("/score", "application/octet-stream", vec![0u8; 400])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = send(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "alive while draining");
}

/// A request of 120,000 rows split over two workers equals the same rows
/// scored in one model call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_request_split_across_workers_equals_one_chunk() {
    const ROWS: usize = 120_000;
    let columns = 100;
    // Deterministic pseudo-random features in [-3, 3).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let input: Vec<f32> = (0..ROWS * columns)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 3.0
        })
        .collect();
    let body = f32_bytes(&input);

    let split = state(&["logreg"], &["--workers", "2", "--max-batch-rows", "4096"]);
    let whole = state(&["logreg"], &["--workers", "1", "--max-batch-rows", "200000"]);
    let (s1, _, split_out) =
        send(&split, put("/score", "application/octet-stream", body.clone())).await;
    let (s2, _, whole_out) = send(&whole, put("/score", "application/octet-stream", body)).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(split_out.len(), ROWS * 2 * 4);
    assert_eq!(floats(&split_out), floats(&whole_out));

    let calls = |state: &AppState| {
        let text = state.metrics.encode();
        text.lines()
            .find(|l| l.starts_with(r#"score_model_calls_total{model="logreg"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect("model_calls metric")
    };
    assert!(calls(&split) >= (ROWS / 4096) as u64, "split into {} calls", calls(&split));
    assert_eq!(calls(&whole), 1);
}

/// Many small concurrent requests on one worker get merged into fewer model
/// calls, and every request still gets exactly its own rows back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_small_requests_each_get_their_own_rows() {
    const REQUESTS: usize = 200;
    const ROWS: usize = 10;
    let merged = state(&["mlp"], &["--workers", "1"]);
    let single = state(&["mlp"], &["--workers", "1", "--max-batch-rows", "1"]);
    let bodies: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|r| {
            f32_bytes(
                &(0..ROWS * 100)
                    .map(|i| ((r * 131 + i * 17) % 89) as f32 / 30.0 - 1.5)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let tasks: Vec<_> = bodies
        .iter()
        .map(|body| {
            let (state, body) = (merged.clone(), body.clone());
            tokio::spawn(async move {
                send(&state, put("/score", "application/octet-stream", body)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let (status, _, body) = task.await.expect("task");
        assert_eq!(status, StatusCode::OK);
        answers.push(body);
    }
    for (body, answer) in bodies.into_iter().zip(answers) {
        let (status, _, alone) =
            send(&single, put("/score", "application/octet-stream", body)).await;
        assert_eq!(status, StatusCode::OK);
        let (a, b) = (floats(&alone), floats(&answer));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(a.len() == b.len() && diff <= 1e-6, "merged answer differs by {diff}");
    }
    let text = merged.metrics.encode();
    let calls: u64 = text
        .lines()
        .find(|l| l.starts_with(r#"score_model_calls_total{model="mlp"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("model_calls metric");
    println!("{REQUESTS} requests in {calls} model calls");
    assert!(calls < REQUESTS as u64, "no request was merged: {calls} calls");
}

/// The sentences of 400s say what to fix, in our words: no parser
/// positions, no framework's generic text.
#[tokio::test]
async fn error_sentences_say_what_to_fix() {
    let state = state(&["logreg"], &[]);
    let sentence = |body: &[u8]| {
        let v: Value = serde_json::from_slice(body).expect("JSON");
        v["error"].as_str().expect("error").to_string()
    };
    let (_, _, body) = send(&state, put("/score", "application/json", "[[1,2]]")).await;
    assert_eq!(sentence(&body), "row 0 has 2 values, the model takes 100");
    let (_, _, body) = send(&state, put("/score?outptu=label", "application/json", "[]")).await;
    assert_eq!(
        sentence(&body),
        "unknown query parameter \"outptu\"; the scoring routes take only ?output=NAME and, for an embedding model, ?truncate=true or ?chunk=true&chunk_overlap=N, and ?prompt_name=NAME"
    );
    // ?truncate means something only for text: elsewhere it is a mistake.
    let (status, _, body) =
        send(&state, put("/score?truncate=true", "application/json", "[]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(sentence(&body).starts_with("?truncate is for embedding models"), "{body:?}");
}

/// Found by the hostile-input probe: a model name that is not UTF-8 got a
/// plain-text 400, and a JSON number beyond float32 became infinity.
#[tokio::test]
async fn hostile_names_and_numbers_get_json_errors() {
    let state = state(&["logreg"], &[]);
    for request in [
        Request::get("/models/%ff%fe").body(Body::empty()).expect("r"),
        put("/models/%ff%fe/score", "application/octet-stream", vec![0u8; 400]),
    ] {
        let (status, _, body) = send(&state, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_kind(&body), "bad_parameter");
    }
    let mut row = vec!["0".to_string(); 100];
    row[7] = "1e300".into();
    let json = format!("[[{}]]", row.join(","));
    let (status, _, body) = send(&state, put("/score", "application/json", json)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["error"], "row 0 value 8 (1e300) is outside the float32 range (±3.4e38)");
}

/// With --auth-token-file, scoring and model routes need the token; probes
/// and (by default) metrics stay open; the 401 says how to authenticate.
#[tokio::test]
async fn a_token_is_required_where_it_should_be() {
    let path = std::env::temp_dir().join(format!("router-tokens-{}", std::process::id()));
    std::fs::write(&path, "team-a-token\n").expect("write");
    let file = path.display().to_string();
    let open = state(&["logreg"], &["--auth-token-file", &file]);
    let strict = state(&["logreg"], &["--auth-token-file", &file, "--metrics-auth"]);
    std::fs::remove_file(&path).expect("clean");
    let with = |token: &str, request: Request<Body>| {
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().expect("v"));
        Request::from_parts(parts, body)
    };
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("r");
    let score = || put("/score", "application/octet-stream", vec![0u8; 400]);

    let (status, response, body) = send(&open, score()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_kind(&body), "unauthorized");
    assert!(
        response.headers()[header::WWW_AUTHENTICATE].to_str().expect("a").starts_with("Bearer")
    );
    assert_eq!(send(&open, with("wrong", score())).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&open, get("/models")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&open, with("team-a-token", score())).await.0, StatusCode::OK);
    assert_eq!(send(&open, with("team-a-token", get("/models"))).await.0, StatusCode::OK);
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(send(&open, get(probe)).await.0, StatusCode::OK, "{probe}");
    }
    assert_eq!(send(&strict, get("/metrics")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&strict, with("team-a-token", get("/metrics"))).await.0, StatusCode::OK);
    assert_eq!(send(&strict, get("/healthz")).await.0, StatusCode::OK);
}

/// `GET /openapi.json` serves docs/openapi.yaml, and the description names
/// every route the router serves and exactly the protocol's error kinds.
#[tokio::test]
async fn the_openapi_description_matches_the_code() {
    let state = state(&["logreg"], &[]);
    let (status, _, body) =
        send(&state, Request::get("/openapi.json").body(Body::empty()).expect("r")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> =
        doc["paths"].as_object().expect("paths").keys().map(|k| k.as_str()).collect();
    for route in [
        "/score",
        "/models/{name}/score",
        "/models",
        "/models/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains(&route), "{route} is not described");
    }
    let kinds: Vec<&str> = doc["components"]["schemas"]["ErrorKind"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .map(|k| k.as_str().expect("kind"))
        .collect();
    let code: Vec<&str> = score_protocol::ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, code);
}
