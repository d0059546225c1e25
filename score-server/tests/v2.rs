//! The Open Inference Protocol (KServe v2) routes through the router:
//! JSON tensors and the binary tensor data extension give the v1 route's
//! scores bit for bit; a model fed by name takes one tensor per input;
//! metadata, readiness and Triton's config describe the models; mistakes
//! are sentences with the protocol's `error` member. The real clients
//! (`tritonclient`) are driven in stream-client-py/tests.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::router::{error_kind, f32_bytes, floats, reference, send, state};
use score_engine::testing::fixture_path;
use serde_json::{Value, json};

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// A request of `header` JSON followed by `binary`, as tritonclient sends
/// it (no Content-Type).
fn post_binary(uri: &str, header: &Value, binary: &[u8]) -> Request<Body> {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(binary);
    Request::post(uri)
        .header("Inference-Header-Content-Length", json.len())
        .body(Body::from(body))
        .expect("request")
}

/// An answer's JSON and, after it, its binary outputs by name.
fn split_answer(
    response: &axum::response::Response,
    body: &[u8],
) -> (Value, std::collections::HashMap<String, Vec<u8>>) {
    let length = response
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().expect("text").parse::<usize>().expect("length"));
    let json_len = length.unwrap_or(body.len());
    let doc: Value = serde_json::from_slice(&body[..json_len]).expect("JSON");
    let mut at = json_len;
    let mut binary = std::collections::HashMap::new();
    for out in doc["outputs"].as_array().expect("outputs") {
        if let Some(size) = out["parameters"]["binary_data_size"].as_u64() {
            let size = size as usize;
            binary.insert(
                out["name"].as_str().expect("name").to_string(),
                body[at..at + size].to_vec(),
            );
            at += size;
        }
    }
    assert_eq!(at, body.len(), "bytes after the outputs");
    (doc, binary)
}

/// The v1 route's float32 scores of `rows` for `output`.
async fn v1_scores(
    state: &std::sync::Arc<score_server::AppState>,
    input: &[f32],
    output: &str,
) -> Vec<f32> {
    let request = Request::put(format!("/models/logreg/score?output={output}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(f32_bytes(input)))
        .expect("request");
    let (status, _, bytes) = send(state, request).await;
    assert_eq!(status, StatusCode::OK);
    floats(&bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_json_tensors_score_as_the_v1_route_does() {
    let state = state(&["logreg"], &[]);
    let r = reference("logreg");
    let probabilities = v1_scores(&state, &r.input, "probabilities").await;
    let labels = v1_scores(&state, &r.input, "label").await;
    let shape = json!([r.rows, r.columns]);

    // Binary in, binary out for every output (none named).
    let header = json!({
        "id": "job-7",
        "inputs": [{"name": "X", "shape": shape, "datatype": "FP32",
                    "parameters": {"binary_data_size": r.input.len() * 4}}],
        "parameters": {"binary_data_output": true},
    });
    let (status, response, body) =
        send(&state, post_binary("/v2/models/logreg/infer", &header, &f32_bytes(&r.input))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (doc, binary) = split_answer(&response, &body);
    assert_eq!(doc["model_name"], "logreg");
    assert_eq!(doc["id"], "job-7");
    let outputs = doc["outputs"].as_array().expect("outputs");
    let names: Vec<&str> = outputs.iter().map(|o| o["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["label", "probabilities"]);
    assert_eq!(outputs[0]["datatype"], "INT64");
    assert_eq!(outputs[0]["shape"], json!([r.rows]));
    assert_eq!(outputs[1]["datatype"], "FP32");
    assert_eq!(outputs[1]["shape"], json!([r.rows, 2]));
    assert_eq!(floats(&binary["probabilities"]), probabilities, "bit for bit");
    let got_labels: Vec<f32> = binary["label"]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
        .collect();
    assert_eq!(got_labels, labels);

    // JSON in (nested rows), JSON out, one output named.
    let rows: Vec<Vec<f32>> = r.input.chunks(r.columns).map(<[f32]>::to_vec).collect();
    let request = json!({
        "inputs": [{"name": "X", "shape": shape, "datatype": "FP32", "data": rows}],
        "outputs": [{"name": "probabilities"}],
    });
    let (status, response, body) =
        send(&state, post_json("/v2/models/logreg/infer", &request)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    let data: Vec<f32> = serde_json::from_value(doc["outputs"][0]["data"].clone()).expect("floats");
    assert_eq!(data, probabilities, "JSON floats round-trip float32 exactly");

    // FP64 rows are narrowed as the Arrow route narrows them; one output in
    // binary, asked for by name.
    let wide: Vec<f64> = r.input.iter().map(|&x| f64::from(x)).collect();
    let bytes: Vec<u8> = wide.iter().flat_map(|x| x.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": "X", "shape": shape, "datatype": "FP64",
                    "parameters": {"binary_data_size": bytes.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}},
                    {"name": "label", "parameters": {"binary_data": false}}],
    });
    let (status, response, body) =
        send(&state, post_binary("/v2/models/logreg/infer", &header, &bytes)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (doc, binary) = split_answer(&response, &body);
    assert_eq!(floats(&binary["probabilities"]), probabilities);
    let json_labels: Vec<f32> = doc["outputs"][1]["data"]
        .as_array()
        .expect("labels in JSON")
        .iter()
        .map(|x| x.as_i64().expect("an integer label") as f32)
        .collect();
    assert_eq!(json_labels, labels);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_deadlines_and_mistakes_are_answered_in_the_protocols_terms() {
    let state = state(&["logreg"], &[]);
    let version = state.models.get(0).version.clone();
    let one_row = |shape: Value, data: Value| json!({"inputs": [{"name": "X", "shape": shape, "datatype": "FP32", "data": data}]});
    let ok = one_row(json!([1, 100]), json!(vec![0.5f32; 100]));

    // The version the server reports is served; another is the 409.
    let uri = format!("/v2/models/logreg/versions/{version}/infer");
    let (status, _, _) = send(&state, post_json(&uri, &ok)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) =
        send(&state, post_json("/v2/models/logreg/versions/0123/infer", &ok)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_kind(&body), "version_mismatch");

    let cases = [
        (
            one_row(json!([1, 99]), json!(vec![0.5f32; 99])),
            StatusCode::BAD_REQUEST,
            "input \"X\" has shape [1, 99]: 99 values a row; model logreg takes X (FP32 [-1, 100])",
        ),
        (
            one_row(json!([2, 100]), json!(vec![0.5f32; 100])),
            StatusCode::BAD_REQUEST,
            "input \"X\" has 100 values, but its shape [2, 100] takes 200",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 100], "datatype": "FP32", "data": vec![0.5f32; 100]}]}),
            StatusCode::BAD_REQUEST,
            "the request has no input \"X\"; model logreg takes X (FP32 [-1, 100])",
        ),
        (
            json!({"inputs": [{"name": "X", "shape": [1, 100], "datatype": "FP32", "data": vec![0.5f32; 100]}],
                "outputs": [{"name": "score"}]}),
            StatusCode::NOT_FOUND,
            "model logreg has no numeric output named \"score\"; outputs: label, probabilities",
        ),
        (
            json!({"inputs": [{"name": "X", "shape": [1, 100], "datatype": "FP32", "data": vec![0.5f32; 100]}],
                "outputs": [{"name": "label", "parameters": {"classification": 2}}]}),
            StatusCode::BAD_REQUEST,
            "output \"label\" asks for classification, which this server does not do; ask for the model's label or probability output",
        ),
        (
            one_row(json!([1, 100]), json!(vec!["a"; 100])),
            StatusCode::BAD_REQUEST,
            "input \"X\": a string where a number is expected",
        ),
    ];
    for (request, want, sentence) in cases {
        let (status, _, body) = send(&state, post_json("/v2/models/logreg/infer", &request)).await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(&body));
        let doc: Value = serde_json::from_slice(&body).expect("JSON");
        let error = doc["error"].as_str().expect("the protocol's error member");
        assert!(error.starts_with(sentence), "{error}\n  wanted: {sentence}");
    }
    // Many inputs or outputs are refused before any per-tensor work.
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("x{i}"), "shape": [1], "datatype": "FP32", "data": [1]}))
        .collect();
    let (status, _, body) =
        send(&state, post_json("/v2/models/logreg/infer", &json!({"inputs": many}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("the request sends 10000 inputs; model logreg takes 1")
    );
    let mut asks = ok.clone();
    asks["outputs"] = json!(vec![json!({"name": "label"}); 10_000]);
    let (status, _, body) = send(&state, post_json("/v2/models/logreg/infer", &asks)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("asks for 10000 outputs; model logreg has 2"));

    let (status, _, body) = send(&state, post_json("/v2/models/nope/infer", &ok)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_kind(&body), "unknown_model");

    // A header length past the body is the caller's mistake, not overload.
    let request = Request::post("/v2/models/logreg/infer")
        .header("Inference-Header-Content-Length", "999999999999")
        .body(Body::from(ok.to_string()))
        .expect("request");
    let (status, _, body) = send(&state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("inference-header-content-length is 999999999999")
    );

    // A form or text/plain body (what a web page may send unasked) is refused.
    let request = Request::post("/v2/models/logreg/infer")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(ok.to_string()))
        .expect("request");
    let (status, _, _) = send(&state, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A timeout of 0 µs has passed before any worker starts: 504.
    let mut late = ok.clone();
    late["parameters"] = json!({"timeout": 0});
    let (status, _, body) = send(&state, post_json("/v2/models/logreg/infer", &late)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{}", String::from_utf8_lossy(&body));

    // The route template is the metrics label.
    let (_, _, body) =
        send(&state, Request::get("/metrics").body(Body::empty()).expect("request")).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(r#"score_http_requests_total{route="/v2/models/{name}/versions/{version}/infer",method="POST",status="200"}"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_fed_by_name_takes_one_tensor_an_input() {
    let state = state(&["labels=zoo/mixed-string-labels"], &[]);
    let v: Value = serde_json::from_slice(
        &std::fs::read(fixture_path("zoo/mixed-string-labels.reference.json")).expect("reference"),
    )
    .expect("JSON");
    let datatype = |dtype: &str| match dtype {
        "float32" => "FP32",
        "int64" => "INT64",
        _ => "BYTES",
    };
    let rows = v["outputs"]["label"]["values"].as_array().expect("labels").len();
    let inputs: Vec<Value> = v["inputs"]
        .as_object()
        .expect("inputs")
        .iter()
        .map(|(name, input)| {
            json!({"name": name, "shape": [rows, 1], "datatype": datatype(input["dtype"].as_str().expect("dtype")),
                   "data": input["values"]})
        })
        .collect();
    let (status, _, body) =
        send(&state, post_json("/v2/models/labels/infer", &json!({"inputs": inputs}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    let label = &doc["outputs"][0];
    assert_eq!(label["name"], "label");
    assert_eq!(label["datatype"], "BYTES");
    let want: Vec<&str> = v["outputs"]["label"]["values"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("class"))
        .collect();
    let got: Vec<&str> =
        label["data"].as_array().expect("data").iter().map(|x| x.as_str().expect("name")).collect();
    assert_eq!(got, want);
    let probabilities: Vec<f32> =
        serde_json::from_value(doc["outputs"][1]["data"].clone()).expect("floats");
    let want: Vec<f32> = v["outputs"]["probabilities"]["values"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("f") as f32))
        .collect();
    for (g, w) in probabilities.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }

    // A category sent as a number is refused naming the input.
    let mut wrong = inputs.clone();
    for input in &mut wrong {
        if input["name"] == "city" {
            input["datatype"] = json!("INT64");
            input["data"] = json!(vec![1; rows]);
        }
    }
    let (status, _, body) =
        send(&state, post_json("/v2/models/labels/infer", &json!({"inputs": wrong}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = serde_json::from_slice::<Value>(&body).expect("JSON")["error"].to_string();
    assert!(error.contains("input city takes"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_readiness_and_config_describe_the_models() {
    let tokens = std::env::temp_dir().join(format!("v2-tokens-{}", std::process::id()));
    std::fs::write(&tokens, "s3cret\n").expect("write");
    let file = tokens.display().to_string();
    let state = state(&["logreg", "labels=zoo/mixed-string-labels"], &["--auth-token-file", &file]);
    std::fs::remove_file(&tokens).expect("clean");
    let get = |uri: &str, token: bool| {
        let mut r = Request::get(uri);
        if token {
            r = r.header(header::AUTHORIZATION, "Bearer s3cret");
        }
        r.body(Body::empty()).expect("request")
    };
    // Probes stay open; the rest needs the token.
    for uri in ["/v2/health/live", "/v2/health/ready"] {
        assert_eq!(send(&state, get(uri, false)).await.0, StatusCode::OK, "{uri}");
    }
    assert_eq!(send(&state, get("/v2/models/logreg", false)).await.0, StatusCode::UNAUTHORIZED);
    let request = Request::post("/v2/models/logreg/infer").body(Body::from("{}")).expect("request");
    assert_eq!(send(&state, request).await.0, StatusCode::UNAUTHORIZED);

    let (status, _, body) = send(&state, get("/v2", true)).await;
    assert_eq!(status, StatusCode::OK);
    let server: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(server["extensions"].as_array().expect("list").contains(&json!("binary_tensor_data")));

    let version = state.models.get(0).version.clone();
    let (status, _, body) =
        send(&state, get(&format!("/v2/models/logreg/versions/{version}"), true)).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(doc["versions"], json!([version]));
    assert_eq!(doc["inputs"], json!([{"name": "X", "datatype": "FP32", "shape": [-1, 100]}]));
    assert_eq!(doc["outputs"][0], json!({"name": "label", "datatype": "INT64", "shape": [-1]}));
    assert_eq!(
        doc["outputs"][1],
        json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]})
    );

    let (_, _, body) = send(&state, get("/v2/models/labels", true)).await;
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    let inputs: Vec<(&str, &str)> = doc["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| (i["name"].as_str().expect("n"), i["datatype"].as_str().expect("d")))
        .collect();
    assert_eq!(
        inputs,
        [
            ("age", "FP32"),
            ("income", "FP32"),
            ("visits", "INT64"),
            ("city", "BYTES"),
            ("plan", "BYTES")
        ]
    );
    assert_eq!(doc["outputs"][0]["datatype"], "BYTES");

    let (status, _, body) = send(&state, get("/v2/models/logreg/config", true)).await;
    assert_eq!(status, StatusCode::OK);
    let config: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(config["input"], json!([{"name": "X", "data_type": "TYPE_FP32", "dims": [100]}]));
    assert_eq!(
        config["output"][0],
        json!({"name": "label", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}})
    );
    assert!(config["max_batch_size"].as_u64().expect("rows") > 1000, "{config}");

    assert_eq!(send(&state, get("/v2/models/logreg/ready", true)).await.0, StatusCode::OK);
    assert_eq!(
        send(&state, get("/v2/models/logreg/versions/0123/ready", true)).await.0,
        StatusCode::CONFLICT
    );
    let (status, _, body) = send(&state, get("/v2/models/nope/ready", true)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_kind(&body), "unknown_model");
    state.start_draining();
    assert_eq!(
        send(&state, get("/v2/health/ready", false)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
