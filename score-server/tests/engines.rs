//! The engine choice (`--engine`, `--onnxruntime`): each engine by name,
//! `auto` keeping one and saying why, a model one engine cannot load going
//! to the other, and the errors an operator can meet. The parity of every
//! fixture and zoo export under onnxruntime is in router.rs and typed.rs.

mod common;

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::router::{f32_bytes, onnxruntime_available, put, reference, send, state};
use score_engine::EngineKind;
use score_engine::select::compare;
use score_engine::testing::fixture_path;
use serde_json::Value;
use tract_onnx::prelude::*;

async fn doc(state: &std::sync::Arc<score_server::AppState>, name: &str) -> Value {
    let request = Request::get(format!("/models/{name}")).body(Body::empty()).expect("request");
    let (status, _, body) = send(state, request).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_model_runs_on_the_engine_it_is_given_and_says_so() {
    if !onnxruntime_available("engines by name") {
        return;
    }
    let state = state(&["logreg", "mlp"], &["--engine", "tract", "--engine", "mlp=onnxruntime"]);
    assert_eq!(state.models.get(0).engine(), EngineKind::Tract);
    assert_eq!(state.models.get(1).engine(), EngineKind::OnnxRuntime);
    let mlp = doc(&state, "mlp").await;
    assert_eq!(mlp["engine"], "onnxruntime", "{mlp}");
    assert_eq!(mlp["engine_reason"], "--engine onnxruntime", "{mlp}");
    assert_eq!(doc(&state, "logreg").await["engine"], "tract");

    // The metric labels each model with its engine.
    let request = Request::get("/metrics").body(Body::empty()).expect("request");
    let (_, _, body) = send(&state, request).await;
    let text = String::from_utf8(body).expect("text");
    assert!(
        text.lines().any(|l| l.starts_with("score_model_info{")
            && l.contains("model=\"mlp\"")
            && l.contains("engine=\"onnxruntime\"")),
        "{text}"
    );

    // Both answer the same rows the same way (the reference: onnxruntime
    // in Python).
    let r = reference("mlp");
    let (status, _, body) =
        send(&state, put("/models/mlp/score", "application/octet-stream", f32_bytes(&r.input)))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), r.rows * 10 * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_times_both_engines_and_keeps_one_with_its_reason() {
    if !onnxruntime_available("auto") {
        return;
    }
    let state = state(&["forest", "mlp"], &["--engine", "auto"]);
    for name in ["forest", "mlp"] {
        let d = doc(&state, name).await;
        let reason = d["engine_reason"].as_str().expect("reason");
        // Which one wins depends on the machine and the build; that it
        // was measured at the server's batch sizes does not.
        assert!(
            reason.starts_with("auto: onnxruntime/tract speed ")
                && reason.contains("x at 16 rows")
                && reason.contains("x at 1024 rows"),
            "{name}: {reason}"
        );
        assert!(d["engine"] == "tract" || d["engine"] == "onnxruntime", "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_tract_cannot_load_goes_to_onnxruntime_under_auto() {
    if !onnxruntime_available("auto fallback") {
        return;
    }
    // The fixture's TreeEnsemble node, made a real one of ai.onnx.ml
    // opset 5 (where the operator is defined): one tree, x0 <= 0.5 gives
    // 1.0, else 2.0. tract refuses the operator; onnxruntime runs it.
    use prost::Message;
    use tract_onnx::pb::{AttributeProto, TensorProto};
    let bytes =
        std::fs::read(fixture_path("ml-cases/unsupported-treeensemble.onnx")).expect("fixture");
    let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).expect("protobuf");
    for opset in &mut proto.opset_import {
        if opset.domain == "ai.onnx.ml" {
            opset.version = 5;
        }
    }
    proto.ir_version = proto.ir_version.max(10);
    let int = |name: &str, i: i64| AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    };
    let ints = |name: &str, ints: &[i64]| AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: ints.to_vec(),
        ..Default::default()
    };
    let floats = |name: &str, values: &[f32]| AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(TensorProto {
            dims: vec![values.len() as i64],
            data_type: 1,
            float_data: values.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = &mut proto.graph.as_mut().expect("graph").node[0];
    assert_eq!(node.op_type, "TreeEnsemble");
    node.attribute = vec![
        int("aggregate_function", 1),
        int("post_transform", 0),
        int("n_targets", 1),
        ints("tree_roots", &[0]),
        ints("nodes_featureids", &[0]),
        floats("nodes_splits", &[0.5]),
        AttributeProto {
            name: "nodes_modes".into(),
            r#type: 4,
            // uint8 BRANCH_LEQ
            t: Some(TensorProto {
                dims: vec![1],
                data_type: 2,
                int32_data: vec![0],
                ..Default::default()
            }),
            ..Default::default()
        },
        ints("nodes_truenodeids", &[0]),
        ints("nodes_trueleafs", &[1]),
        ints("nodes_falsenodeids", &[1]),
        ints("nodes_falseleafs", &[1]),
        ints("leaf_targetids", &[0, 0]),
        floats("leaf_weights", &[1.0, 2.0]),
    ];
    let path = std::env::temp_dir().join(format!("treeensemble5-{}.onnx", std::process::id()));
    std::fs::write(&path, proto.encode_to_vec()).expect("write");
    let spec = format!("tree={}", path.display());
    let state = state(&[], &["--model", &spec, "--engine", "auto"]);
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(state.models.get(0).engine(), EngineKind::OnnxRuntime);
    let d = doc(&state, "tree").await;
    let reason = d["engine_reason"].as_str().expect("reason");
    assert!(reason.contains("tract cannot load it") && reason.contains("TreeEnsemble"), "{reason}");
    let columns = d["input"]["columns"].as_u64().expect("columns") as usize;
    let x0 = [0.0f32, 0.5, 0.75, -3.0, 9.0];
    let rows: Vec<f32> = x0
        .iter()
        .flat_map(|&x| std::iter::once(x).chain(std::iter::repeat_n(7.0, columns - 1)))
        .collect();
    let (status, response, body) =
        send(&state, put("/score", "application/octet-stream", f32_bytes(&rows))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(response.headers()["x-score-rows"], "5");
    assert_eq!(common::router::floats(&body), [1.0, 1.0, 2.0, 1.0, 2.0]);
}

#[test]
fn a_missing_library_or_a_bad_engine_name_stops_startup_with_a_sentence() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_score-server"))
            .args(["--listen", "127.0.0.1:0", "--model"])
            .arg(fixture_path("logreg.onnx"))
            .args(args)
            .env_remove("ORT_DYLIB_PATH")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run");
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--engine", "onnxruntime", "--onnxruntime", "/nonexistent/libort.so"]);
    assert!(
        stderr.contains("--onnxruntime names /nonexistent/libort.so, which is not a file"),
        "{stderr}"
    );
    let stderr = run(&["--engine", "fastest"]);
    assert!(
        stderr.contains("unknown engine \"fastest\": use tract, onnxruntime or auto"),
        "{stderr}"
    );
    let stderr = run(&["--engine", "nope=tract"]);
    assert!(stderr.contains("no model is named \"nope\""), "{stderr}");
}

/// (The library is opened once per process: nextest runs each test in
/// its own, so this one never sees another test's library.)
#[test]
fn auto_without_a_library_serves_on_tract_and_says_why() {
    let state = state(&["logreg"], &["--engine", "auto", "--onnxruntime", "/nonexistent/x.so"]);
    assert_eq!(state.models.get(0).engine(), EngineKind::Tract);
    assert_eq!(state.models.get(0).engine_reason, "auto: onnxruntime is not available");
}

fn tensor(values: &[f32], rows: usize) -> TValue {
    Tensor::from_shape(&[rows, values.len() / rows], values).expect("tensor").into()
}

#[test]
fn engines_that_disagree_are_named_with_the_output_and_the_difference() {
    let model = score_engine::Model::from_bytes(
        "logreg",
        score_engine::ModelSource::Bundled,
        &std::fs::read(fixture_path("logreg.onnx")).expect("fixture"),
    )
    .expect("loads");
    let outputs = &model.outputs;
    let labels = |v: &[i64]| -> TValue { Tensor::from_shape(&[v.len()], v).expect("t").into() };
    let probabilities = [0.25f32, 0.75, 0.5, 0.5];
    let same = [labels(&[1, 0]), tensor(&probabilities, 2)];
    assert_eq!(compare(outputs, &same, &same), Ok(()));

    // Within 1e-5 relative: agreed.
    let near = [labels(&[1, 0]), tensor(&[0.25, 0.750_005, 0.5, 0.5], 2)];
    assert_eq!(compare(outputs, &same, &near), Ok(()));

    let far = [labels(&[1, 0]), tensor(&[0.25, 0.75, 0.5, 0.5001], 2)];
    let why = compare(outputs, &same, &far).expect_err("differs");
    assert!(
        why.starts_with("output probabilities differs at row 1: tract 0.5, onnxruntime 0.5001")
            && why.contains("allowed 0.00001 relative"),
        "{why}"
    );
    let other_label = [labels(&[1, 1]), tensor(&probabilities, 2)];
    let why = compare(outputs, &same, &other_label).expect_err("differs");
    assert!(why.starts_with("output label differs at row 1: tract 0, onnxruntime 1"), "{why}");
    assert!(why.contains("allowed none"), "{why}");
}

/// A large request under onnxruntime is split across the workers and
/// reassembled in order, and small concurrent ones are merged, as under
/// tract: the same rows give the same answers whatever the request size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onnxruntime_models_split_and_merge_like_tract_ones() {
    if !onnxruntime_available("split and merge under onnxruntime") {
        return;
    }
    let state =
        state(&["mlp"], &["--engine", "onnxruntime", "--workers", "2", "--max-batch-rows", "300"]);
    let r = reference("mlp");
    let one = |body: Vec<f32>| {
        let state = state.clone();
        async move {
            let (status, _, bytes) = send(
                &state,
                put("/score?output=probabilities", "application/octet-stream", f32_bytes(&body)),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
            common::router::floats(&bytes)
        }
    };
    // Per row, what the reference sample gives in one call.
    let expected = one(r.input.clone()).await;
    let per_row = expected.len() / r.rows;
    // 40 copies of the sample: 1,280 rows, split into 300-row chunks.
    let repeated: Vec<f32> = r.input.iter().copied().cycle().take(r.input.len() * 40).collect();
    let big = one(repeated).await;
    assert_eq!(big.len(), expected.len() * 40);
    // Within 1e-6: a GEMM's kernel may depend on the row count, so the
    // rounding may too; a misplaced row would be off by far more.
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6);
    for (i, chunk) in big.chunks(expected.len()).enumerate() {
        assert!(close(chunk, &expected), "copy {i} of the sample differs");
    }
    // Single rows at once (merged by the workers): each equals its row.
    let singles = (0..r.rows).map(|row| one(r.input[row * r.columns..][..r.columns].to_vec()));
    let answers = futures_util_join_all(singles.collect()).await;
    for (row, got) in answers.iter().enumerate() {
        assert_eq!(got.len(), per_row);
        assert!(close(got, &expected[row * per_row..][..per_row]), "row {row}");
    }
}

/// Runs the futures concurrently (tokio tasks), answers in order.
async fn futures_util_join_all<F>(futures: Vec<F>) -> Vec<Vec<f32>>
where
    F: std::future::Future<Output = Vec<f32>> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
