//! Arrow IPC stream bodies through the router (no socket): every layout a
//! Spark partition can arrive in scores exactly like the binary matrix,
//! and every mistake is a 400 that names the column and what was expected.

mod common;

use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, LargeListArray,
    ListArray, RecordBatch,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema};
use axum::http::{StatusCode, header};
use common::router::{error_kind, f32_bytes, put, reference, send, state};
use serde_json::Value;

const ARROW: &str = "application/vnd.apache.arrow.stream";

/// The IPC stream of `batches` (a schema message, then each batch).
fn ipc(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Vec<u8> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema).expect("writer");
    for batch in batches {
        writer.write(batch).expect("batch");
    }
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn f64s(values: &[f32]) -> ArrayRef {
    Arc::new(Float64Array::from(values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
}

fn f32s(values: &[f32]) -> ArrayRef {
    Arc::new(Float32Array::from(values.to_vec()))
}

fn list(values: ArrayRef, width: usize) -> ArrayRef {
    let rows = values.len() / width;
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, rows));
    Arc::new(ListArray::try_new(field, offsets, values, None).expect("list"))
}

fn large_list(values: ArrayRef, width: usize) -> ArrayRef {
    let rows = values.len() / width;
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, rows));
    Arc::new(LargeListArray::try_new(field, offsets, values, None).expect("large list"))
}

fn fixed(values: ArrayRef, width: usize) -> ArrayRef {
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    Arc::new(FixedSizeListArray::try_new(field, width as i32, values, None).expect("fixed list"))
}

/// One column per feature, `f0`, `f1`, …, from row-major `rows`.
fn feature_columns(rows: &[f32], width: usize, as_f64: bool) -> RecordBatch {
    batch(
        (0..width)
            .map(|c| {
                let column: Vec<f32> = rows.iter().skip(c).step_by(width).copied().collect();
                let name: &'static str = Box::leak(format!("f{c}").into_boxed_str());
                (name, if as_f64 { f64s(&column) } else { f32s(&column) })
            })
            .collect(),
    )
}

async fn score(state: &Arc<score_server::AppState>, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let (status, response, bytes) = send(state, put("/score", ARROW, body)).await;
    if status == StatusCode::OK {
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/octet-stream");
    }
    (status, bytes)
}

/// The sentence of a 400, after checking its kind.
async fn refusal(state: &Arc<score_server::AppState>, body: Vec<u8>, kind: &str) -> String {
    let (status, bytes) = score(state, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(error_kind(&bytes), kind);
    let v: Value = serde_json::from_slice(&bytes).expect("JSON");
    v["error"].as_str().expect("sentence").to_string()
}

#[tokio::test]
async fn every_arrow_layout_scores_like_the_binary_matrix() {
    let state = state(&["logreg"], &[]);
    let r = reference("logreg");
    let (n, rows) = (r.columns, r.rows.min(7));
    let input = &r.input[..rows * n];
    let (status, _, expected) =
        send(&state, put("/score", "application/octet-stream", f32_bytes(input))).await;
    assert_eq!(status, StatusCode::OK);

    let one = |name: &str, column: ArrayRef| {
        let b = batch(vec![(name, column)]);
        ipc(&b.schema(), &[b])
    };
    let split = |b: RecordBatch| {
        let (head, tail) = (b.slice(0, 3), b.slice(3, b.num_rows() - 3));
        ipc(&b.schema(), &[head, tail])
    };
    let layouts: Vec<(&str, Vec<u8>)> = vec![
        ("list<float32>", one("features", list(f32s(input), n))),
        ("list<float64>", one("features", list(f64s(input), n))),
        ("large_list<float32>", one("features", large_list(f32s(input), n))),
        ("fixed_size_list<float32>", one("features", fixed(f32s(input), n))),
        ("fixed_size_list<float64>", one("features", fixed(f64s(input), n))),
        ("float32 columns", {
            let b = feature_columns(input, n, false);
            ipc(&b.schema(), &[b])
        }),
        ("float64 columns in two batches", split(feature_columns(input, n, true))),
        ("a list column in two batches", split(batch(vec![("x", list(f32s(input), n))]))),
        // Sliced arrays: the list's offsets do not start at 0.
        ("a sliced list", {
            let padded: Vec<f32> = [vec![9.0; n], input.to_vec()].concat();
            let b = batch(vec![("x", list(f32s(&padded), n).slice(1, rows))]);
            ipc(&b.schema(), &[b])
        }),
    ];
    for (layout, body) in layouts {
        let (status, got) = score(&state, body).await;
        assert_eq!(status, StatusCode::OK, "{layout}: {}", String::from_utf8_lossy(&got));
        assert_eq!(got, expected, "{layout}");
    }
}

#[tokio::test]
async fn the_model_document_lists_the_arrow_layouts() {
    let state = state(&["logreg"], &[]);
    let request = axum::http::Request::get("/models/logreg").body(axum::body::Body::empty());
    let (status, _, bytes) = send(&state, request.expect("request")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    let layouts = doc["input"]["arrow"].as_array().expect("arrow layouts");
    assert_eq!(layouts.len(), 2, "{doc}");
    assert!(layouts.iter().all(|l| l.as_str().is_some_and(|l| l.contains("100"))), "{doc}");
}

#[tokio::test]
async fn a_schema_alone_is_zero_rows() {
    let state = state(&["logreg"], &[]);
    let n = reference("logreg").columns;
    let schema = feature_columns(&vec![0.0; n], n, true).schema();
    let (status, got) = score(&state, ipc(&schema, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(got.is_empty());
}

#[tokio::test]
async fn arrow_mistakes_name_the_column_and_what_was_expected() {
    let state = state(&["logreg"], &[]);
    let r = reference("logreg");
    let n = r.columns;
    let input = &r.input[..3 * n];
    let one = |name: &str, column: ArrayRef| {
        let b = batch(vec![(name, column)]);
        ipc(&b.schema(), &[b])
    };

    let narrow = &r.input[..3 * (n - 1)];
    let text = refusal(&state, one("features", fixed(f32s(narrow), n - 1)), "bad_shape").await;
    assert!(text.contains("\"features\"") && text.contains(&format!("{} values", n - 1)), "{text}");

    let mut ragged: Vec<f32> = input.to_vec();
    ragged.pop();
    let lengths = [n, n, n - 1];
    let field = Arc::new(Field::new("item", DataType::Float32, false));
    let ragged_list: ArrayRef = Arc::new(
        ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), f32s(&ragged), None)
            .expect("list"),
    );
    let text = refusal(&state, one("x", ragged_list), "bad_shape").await;
    assert_eq!(text, format!("row 2 of column \"x\" has {} values; the model takes {n}", n - 1));

    let ints: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let mut columns: Vec<(&str, ArrayRef)> = vec![("age", ints)];
    let rest = feature_columns(&r.input[..3 * (n - 1)], n - 1, true);
    columns.extend(rest.schema().fields().iter().zip(rest.columns()).map(|(f, c)| {
        let name: &'static str = Box::leak(f.name().clone().into_boxed_str());
        (name, c.clone())
    }));
    let b = batch(columns);
    let text = refusal(&state, ipc(&b.schema(), &[b]), "bad_shape").await;
    assert!(text.contains("\"age\"") && text.contains("Int64"), "{text}");

    let b = batch(vec![("a", f32s(&[1.0])), ("b", f32s(&[2.0])), ("c", f32s(&[3.0]))]);
    let text = refusal(&state, ipc(&b.schema(), &[b]), "bad_shape").await;
    assert!(
        text.contains("3 columns (\"a\", \"b\", \"c\")") && text.contains(&format!("{n}")),
        "{text}"
    );

    let b = feature_columns(input, n, true);
    let with_null: ArrayRef = Arc::new(Float64Array::new(
        vec![1.0, 2.0, 3.0].into(),
        Some(NullBuffer::from(vec![true, false, true])),
    ));
    let mut columns = b.columns().to_vec();
    columns[7] = with_null;
    let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    let b = RecordBatch::try_from_iter(names.into_iter().zip(columns)).expect("batch");
    let text = refusal(&state, ipc(&b.schema(), &[b]), "bad_shape").await;
    assert_eq!(text, "row 1 of column \"f7\" is null; the model takes no missing values");

    let mut huge: Vec<f64> = input.iter().map(|&v| f64::from(v)).collect();
    huge[n + 4] = 1e300;
    let text =
        refusal(&state, one("x", list(Arc::new(Float64Array::from(huge)), n)), "bad_shape").await;
    assert!(
        text.starts_with("row 1 of column \"x\": 1e300 is outside the float32 range"),
        "{text}"
    );

    let valid = one("x", list(f32s(input), n));
    let text = refusal(&state, valid[..valid.len() - 40].to_vec(), "bad_shape").await;
    assert!(text.contains("Arrow"), "{text}");
    for garbage in [&b"not arrow at all, just text"[..], b""] {
        let text = refusal(&state, garbage.to_vec(), "bad_shape").await;
        assert!(text.contains("not an Arrow IPC stream"), "{text}");
    }
}

/// Compressed streams (written by pyarrow: models/arrow_cases.py) are
/// refused with 415 and a sentence saying to send them uncompressed.
#[tokio::test]
async fn a_compressed_stream_is_refused_with_415() {
    let state = state(&["logreg"], &[]);
    for codec in ["lz4", "zstd"] {
        let path = score_engine::testing::fixture_path(&format!("arrow/compressed-{codec}.arrows"));
        let body = std::fs::read(&path).expect("fixture");
        let (status, bytes) = score(&state, body).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{codec}");
        assert_eq!(error_kind(&bytes), "unsupported_media_type");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("uncompressed"), "{codec}: {text}");
    }
}

/// The one column of an Arrow IPC answer, after checking its name.
fn answer_column(bytes: &[u8], name: &str) -> ArrayRef {
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .expect("an Arrow IPC answer");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    assert_eq!(batches.len(), 1);
    let schema = batches[0].schema();
    assert_eq!(schema.fields().len(), 1);
    assert_eq!(schema.field(0).name(), name);
    batches[0].column(0).clone()
}

async fn arrow_answer(
    state: &Arc<score_server::AppState>,
    uri: &str,
    rows: &[f32],
) -> (StatusCode, Vec<u8>) {
    let mut request = put(uri, "application/octet-stream", f32_bytes(rows));
    request.headers_mut().insert(header::ACCEPT, ARROW.parse().expect("header"));
    let (status, response, bytes) = send(state, request).await;
    if status == StatusCode::OK {
        assert_eq!(response.headers()[header::CONTENT_TYPE], ARROW);
    }
    (status, bytes)
}

/// `Accept: application/vnd.apache.arrow.stream`: one column named after
/// the output: probabilities as fixed_size_list<float32>, labels as int64,
/// string class labels as utf8, each equal to onnxruntime's.
#[tokio::test]
async fn arrow_answers_name_their_column_and_keep_the_types() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int64Type};

    let state = state(&["logreg", "labels=zoo/logreg-string-labels"], &[]);
    let r = reference("logreg");
    let input = &r.input[..r.rows * r.columns];
    let (_, _, binary) =
        send(&state, put("/score", "application/octet-stream", f32_bytes(input))).await;
    let (status, bytes) = arrow_answer(&state, "/score", input).await;
    assert_eq!(status, StatusCode::OK);
    let column = answer_column(&bytes, "probabilities");
    let list = column.as_fixed_size_list();
    assert_eq!((list.len(), list.value_length()), (r.rows, 2));
    let values = list.values().as_primitive::<Float32Type>().values().to_vec();
    assert_eq!(f32_bytes(&values), binary);

    let (status, bytes) = arrow_answer(&state, "/score?output=label", input).await;
    assert_eq!(status, StatusCode::OK);
    let labels = answer_column(&bytes, "label");
    let expected = &r.outputs.iter().find(|(name, _, _)| name == "label").expect("labels").2;
    let got: Vec<f32> =
        labels.as_primitive::<Int64Type>().values().iter().map(|&l| l as f32).collect();
    assert_eq!(&got, expected);

    let z = reference("zoo/logreg-string-labels");
    let input = &z.input[..z.rows * z.columns];
    let (status, bytes) =
        arrow_answer(&state, "/models/labels/score?output=output_label", input).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let names = answer_column(&bytes, "output_label");
    let got: Vec<&str> = names.as_string::<i32>().iter().map(|s| s.expect("no nulls")).collect();
    assert_eq!(got, z.strings["output_label"]);
}

/// `?output=` repeated: an Arrow answer has one column per output, in the
/// order asked; a binary or JSON answer cannot carry several (400 saying
/// what to send); an output named twice is a 400 too.
#[tokio::test]
async fn several_outputs_come_as_several_arrow_columns() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int64Type};

    let state = state(&["logreg"], &[]);
    let r = reference("logreg");
    let input = &r.input[..r.rows * r.columns];
    let (status, bytes) =
        arrow_answer(&state, "/score?output=label&output=probabilities", input).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC answer");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let batch = &batches[0];
    let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["label", "probabilities"]);
    let expected = |name: &str| &r.outputs.iter().find(|(n, _, _)| n == name).expect(name).2;
    let labels: Vec<f32> =
        batch.column(0).as_primitive::<Int64Type>().values().iter().map(|&l| l as f32).collect();
    assert_eq!(&labels, expected("label"));
    let probabilities = batch.column(1).as_fixed_size_list();
    assert_eq!(probabilities.len(), r.rows);
    let values = probabilities.values().as_primitive::<Float32Type>().values();
    for (got, want) in values.iter().zip(expected("probabilities")) {
        assert!((got - want).abs() <= 1e-5, "{got} vs onnxruntime {want}");
    }

    let (status, _, bytes) = send(
        &state,
        put(
            "/score?output=label&output=probabilities",
            "application/octet-stream",
            f32_bytes(input),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&bytes).contains(ARROW), "{}", String::from_utf8_lossy(&bytes));
    let (status, _, bytes) =
        send(&state, put("/score?output=label&output=label", "application/octet-stream", vec![]))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_kind(&bytes), "bad_parameter");
}

/// logreg.onnx with the metadata entry `feature_names` set to `value`, as
/// ONNX bytes (the exporter's `metadata_props`).
fn logreg_with_feature_names(value: &str) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb::{ModelProto, StringStringEntryProto};
    let bytes = std::fs::read(score_engine::testing::fixture_path("logreg.onnx")).expect("fixture");
    let mut proto = ModelProto::decode(&bytes[..]).expect("ONNX protobuf");
    proto
        .metadata_props
        .push(StringStringEntryProto { key: "feature_names".into(), value: value.into() });
    proto.encode_to_vec()
}

/// A server whose model `named` is logreg naming its features `names`
/// (written to a file of this test's own).
fn named_state(names: &[String]) -> Arc<score_server::AppState> {
    let path = std::env::temp_dir().join(format!(
        "score-feature-names-{}-{}.onnx",
        std::process::id(),
        names.len()
    ));
    std::fs::write(&path, logreg_with_feature_names(&names.join(","))).expect("write model");
    let state = state(&[], &["--model", &format!("named={}", path.display())]);
    std::fs::remove_file(&path).expect("remove model");
    state
}

#[tokio::test]
async fn features_named_by_the_model_are_matched_by_name_in_any_order() {
    let r = reference("logreg");
    let n = r.columns;
    let names: Vec<String> = (0..n).map(|c| format!("x{c}")).collect();
    let state = named_state(&names);
    let rows = 5;
    let input = &r.input[..rows * n];
    let (status, _, expected) =
        send(&state, put("/score", "application/octet-stream", f32_bytes(input))).await;
    assert_eq!(status, StatusCode::OK);

    // The columns in reverse order, every other one float64: each feature
    // still lands in its place.
    let columns: Vec<(&str, ArrayRef)> = (0..n)
        .rev()
        .map(|c| {
            let values: Vec<f32> = input.iter().skip(c).step_by(n).copied().collect();
            let array = if c % 2 == 0 { f64s(&values) } else { f32s(&values) };
            (names[c].as_str(), array)
        })
        .collect();
    let b = batch(columns);
    let (status, got) = score(&state, ipc(&b.schema(), &[b])).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&got));
    assert_eq!(got, expected);

    // One list column needs no names.
    let b = batch(vec![("features", fixed(f32s(input), n))]);
    let (status, got) = score(&state, ipc(&b.schema(), &[b])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, expected);

    // /models/{name} lists the names and says how they are matched.
    let request = axum::http::Request::get("/models/named").body(axum::body::Body::empty());
    let (_, _, doc) = send(&state, request.expect("request")).await;
    let doc: Value = serde_json::from_slice(&doc).expect("JSON");
    assert_eq!(doc["input"]["feature_names"][3], "x3", "{doc}");
    assert!(doc["input"]["arrow"][1].as_str().is_some_and(|l| l.contains("any order")), "{doc}");

    // Position no longer counts: f0..f99 name no feature.
    let text = refusal(
        &state,
        {
            let b = feature_columns(input, n, false);
            ipc(&b.schema(), &[b])
        },
        "bad_shape",
    )
    .await;
    assert!(text.contains("no column named \"x0\"") && text.contains("x0, x1, x2"), "{text}");

    // A column in the wrong case is pointed out; an extra one is refused.
    let mut columns: Vec<(&str, ArrayRef)> = (0..n)
        .map(|c| {
            let values: Vec<f32> = input.iter().skip(c).step_by(n).copied().collect();
            (names[c].as_str(), f32s(&values))
        })
        .collect();
    columns[4].0 = "X4";
    let b = batch(columns.clone());
    let text = refusal(&state, ipc(&b.schema(), &[b]), "bad_shape").await;
    assert!(text.contains("column \"X4\" differs in case"), "{text}");
    columns[4].0 = "x4";
    columns.push(("label", f32s(&[0.0; 5])));
    let b = batch(columns);
    let text = refusal(&state, ipc(&b.schema(), &[b]), "bad_shape").await;
    assert!(text.contains("column \"label\" is not one of the model's features"), "{text}");
}

#[test]
fn feature_names_that_do_not_fit_the_input_refuse_the_model() {
    use score_engine::{Model, ModelSource};
    for (value, says) in [("a,b,c", "it names 3 features; input"), ("a,,c", "name 2 of 3 is empty")]
    {
        let bytes = logreg_with_feature_names(value);
        let err = Model::from_bytes("named", ModelSource::Bundled, &bytes).expect_err(value);
        let text = err.to_string();
        assert!(
            text.contains("metadata \"feature_names\" cannot be used") && text.contains(says),
            "{value}: {text}"
        );
    }
}
