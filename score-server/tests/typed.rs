//! Models fed by name (several inputs, string categories, integers): the
//! zoo's mixed-input exports (`models/zoo.py`, `mixed-*`) through the
//! router with Arrow IPC bodies, against onnxruntime; split and merged by
//! the pool like any request; and every mistake a 400 that names the
//! column and what the input takes.

mod common;

use std::sync::Arc;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, LargeStringArray,
    RecordBatch, StringArray,
};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::router::{error_kind, send, state};
use score_engine::testing::fixture_path;
use score_server::AppState;
use serde_json::Value;

const ARROW: &str = "application/vnd.apache.arrow.stream";
const TOLERANCE: f32 = 1e-5;

/// A mixed export's reference: its inputs (name, dtype, flat values) and
/// onnxruntime's outputs (name, dtype, flat values).
struct Mixed {
    inputs: Vec<(String, String, Vec<Value>)>,
    rows: usize,
    outputs: Vec<(String, String, Vec<Value>)>,
}

fn mixed(name: &str) -> Mixed {
    let path = fixture_path(&format!("zoo/{name}.reference.json"));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("JSON");
    let inputs: Vec<(String, String, Vec<Value>)> = v["inputs"]
        .as_object()
        .expect("inputs")
        .iter()
        .map(|(k, i)| {
            let values = i["values"].as_array().expect("values").clone();
            (k.clone(), i["dtype"].as_str().expect("dtype").to_string(), values)
        })
        .collect();
    let rows = inputs[0].2.len();
    let outputs = v["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(k, o)| {
            let values = o["values"]
                .as_array()
                .expect("rows")
                .iter()
                .flat_map(|r| r.as_array().expect("row").clone())
                .collect();
            (k.clone(), o["dtype"].as_str().expect("dtype").to_string(), values)
        })
        .collect();
    Mixed { inputs, rows, outputs }
}

fn mixed_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_path("zoo"))
        .expect("zoo")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_suffix(".onnx").filter(|n| n.starts_with("mixed-")).map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// How a body types its columns: as the model's inputs, or in the other
/// types the server converts from.
#[derive(Clone, Copy, Debug)]
enum Typing {
    /// float32, int64, utf8.
    Native,
    /// float64, int32, large_utf8.
    Converted,
    /// As native, strings as dictionary<int32, utf8>.
    Dictionary,
}

fn column(dtype: &str, values: &[Value], typing: Typing) -> ArrayRef {
    let float = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    match (dtype, typing) {
        ("float32", Typing::Converted) => {
            Arc::new(Float64Array::from_iter_values(values.iter().map(float)))
        }
        ("float32", _) => {
            Arc::new(Float32Array::from_iter_values(values.iter().map(|v| float(v) as f32)))
        }
        ("int64", Typing::Converted) => Arc::new(Int32Array::from_iter_values(
            values.iter().map(|v| v.as_i64().expect("int") as i32),
        )),
        ("int64", _) => {
            Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.as_i64().expect("int"))))
        }
        ("string", typing) => {
            let words = values.iter().map(|v| v.as_str().expect("string"));
            match typing {
                Typing::Native => Arc::new(StringArray::from_iter_values(words)),
                Typing::Converted => Arc::new(LargeStringArray::from_iter_values(words)),
                Typing::Dictionary => {
                    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
                    words.for_each(|w| {
                        builder.append_value(w);
                    });
                    Arc::new(builder.finish())
                }
            }
        }
        other => panic!("no column for {other:?}"),
    }
}

/// The reference's inputs `repeat` times over, as an IPC stream of
/// `batches` record batches.
fn body(m: &Mixed, typing: Typing, repeat: usize, batches: usize) -> Vec<u8> {
    let columns: Vec<(String, ArrayRef)> = m
        .inputs
        .iter()
        .map(|(name, dtype, values)| {
            let values: Vec<Value> =
                values.iter().cycle().take(values.len() * repeat).cloned().collect();
            (name.clone(), column(dtype, &values, typing))
        })
        .collect();
    let whole = RecordBatch::try_from_iter(columns).expect("batch");
    let rows = whole.num_rows();
    let mut writer = StreamWriter::try_new(Vec::new(), &whole.schema()).expect("writer");
    let per = rows.div_ceil(batches);
    for start in (0..rows).step_by(per.max(1)) {
        writer.write(&whole.slice(start, per.min(rows - start))).expect("write");
    }
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

fn request(uri: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::put(uri)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, ARROW)
        .body(Body::from(body))
        .expect("request")
}

/// Scores an Arrow body for every output of `m` and checks each against
/// onnxruntime's (`repeat` copies of the reference rows).
async fn assert_parity(state: &Arc<AppState>, name: &str, m: &Mixed, body: Vec<u8>, repeat: usize) {
    let query: Vec<String> = m.outputs.iter().map(|(o, ..)| format!("output={o}")).collect();
    let uri = format!("/models/{name}/score?{}", query.join("&"));
    let (status, response, bytes) = send(state, request(&uri, ARROW, body)).await;
    assert_eq!(status, StatusCode::OK, "{name}: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(response.headers()[header::CONTENT_TYPE], ARROW);
    let batches: Vec<RecordBatch> = StreamReader::try_new(&bytes[..], None)
        .expect("an Arrow answer")
        .collect::<Result<_, _>>()
        .expect("batches");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, m.rows * repeat, "{name}");
    for (output, dtype, expected) in &m.outputs {
        let mut at = 0;
        for batch in &batches {
            let array = batch.column_by_name(output).unwrap_or_else(|| panic!("{name}: {output}"));
            let got: Vec<Value> = match array.data_type() {
                arrow_schema::DataType::Utf8 => array
                    .as_string::<i32>()
                    .iter()
                    .map(|s| Value::from(s.expect("label")))
                    .collect(),
                arrow_schema::DataType::Int64 => {
                    array.as_primitive::<Int64Type>().values().iter().map(|&v| v.into()).collect()
                }
                arrow_schema::DataType::FixedSizeList(..) => {
                    let list = array.as_fixed_size_list();
                    let values = list.values().as_primitive::<Float32Type>();
                    values.values().iter().map(|&v| Value::from(v)).collect()
                }
                other => panic!("{name}: {output} answered as {other}"),
            };
            let width = got.len() / batch.num_rows().max(1);
            for (i, g) in got.iter().enumerate() {
                let e = &expected[(at * width + i) % expected.len()];
                let ok = match dtype.as_str() {
                    "float32" => {
                        (g.as_f64().expect("float") - e.as_f64().expect("float")).abs()
                            <= f64::from(TOLERANCE)
                    }
                    _ => g == e,
                };
                assert!(ok, "{name}: {output}[{}] = {g}, onnxruntime {e}", at + i / width);
            }
            at += batch.num_rows();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mixed_input_zoo_exports_match_onnxruntime_through_arrow() {
    mixed_zoo_matches(&[]).await;
}

/// The same under the onnxruntime engine: string tensors in, string labels
/// served as class indices as tract gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mixed_input_zoo_exports_match_under_onnxruntime() {
    if common::router::onnxruntime_available("mixed zoo under onnxruntime") {
        mixed_zoo_matches(&["--engine", "onnxruntime"]).await;
    }
}

async fn mixed_zoo_matches(flags: &[&str]) {
    let names = mixed_names();
    assert_eq!(names.len(), 7, "{names:?}");
    let specs: Vec<String> = names.iter().map(|n| format!("{n}=zoo/{n}")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let state = state(&specs, flags);
    for name in &names {
        let m = mixed(name);
        assert_parity(&state, name, &m, body(&m, Typing::Native, 1, 1), 1).await;
        assert_parity(&state, name, &m, body(&m, Typing::Converted, 1, 3), 1).await;
        assert_parity(&state, name, &m, body(&m, Typing::Dictionary, 1, 2), 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_requests_are_split_and_merged_like_matrices() {
    let state =
        state(&["mixed-gb=zoo/mixed-gb", "labels=zoo/mixed-string-labels"], &["--workers", "2"]);
    let m = mixed("mixed-gb");
    // 1,024 rows in 5 batches: split across both workers, chunk edges
    // inside batches.
    assert_parity(&state, "mixed-gb", &m, body(&m, Typing::Native, 64, 5), 64).await;
    // Many small requests at once: the workers merge them into one call.
    let labels = Arc::new(mixed("mixed-string-labels"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (state, m) = (state.clone(), labels.clone());
        let typing = [Typing::Native, Typing::Converted, Typing::Dictionary][i % 3];
        tasks.spawn(async move {
            assert_parity(&state, "labels", &m, body(&m, typing, 1, 1 + i % 2), 1).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a request task");
    }
}

/// The 400 (or 415) sentence for `body`, after checking status and kind.
async fn refusal(
    state: &Arc<AppState>,
    content_type: &str,
    body: Vec<u8>,
    status: StatusCode,
    kind: &str,
) -> String {
    let (got, _, bytes) = send(state, request("/models/m/score", content_type, body)).await;
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(error_kind(&bytes), kind);
    let v: Value = serde_json::from_slice(&bytes).expect("JSON");
    v["error"].as_str().expect("sentence").to_string()
}

/// The reference inputs as columns, with `change` applied to the list.
fn stream_with(m: &Mixed, change: impl FnOnce(&mut Vec<(String, ArrayRef)>)) -> Vec<u8> {
    let mut columns: Vec<(String, ArrayRef)> = m
        .inputs
        .iter()
        .map(|(name, dtype, values)| (name.clone(), column(dtype, values, Typing::Native)))
        .collect();
    change(&mut columns);
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema()).expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

fn get(columns: &[(String, ArrayRef)], name: &str) -> ArrayRef {
    columns.iter().find(|(n, _)| n == name).expect("column").1.clone()
}

fn set(columns: &mut [(String, ArrayRef)], name: &str, array: ArrayRef) {
    columns.iter_mut().find(|(n, _)| n == name).expect("column").1 = array;
}

#[tokio::test]
async fn every_mistake_names_the_column_and_what_the_input_takes() {
    let state = state(&["m=zoo/mixed-logreg"], &[]);
    let m = mixed("mixed-logreg");
    let bad = StatusCode::BAD_REQUEST;
    let takes = "model m takes age (float32), income (float32), visits (int64), city (string), plan (string)";

    let missing = stream_with(&m, |c| c.retain(|(n, _)| n != "plan"));
    let text = refusal(&state, ARROW, missing, bad, "bad_shape").await;
    assert_eq!(text, format!("the Arrow body has no column named \"plan\"; {takes}"));

    let renamed = stream_with(&m, |c| {
        c.iter_mut().filter(|(n, _)| n == "plan").for_each(|c| c.0 = "Plan".into())
    });
    let text = refusal(&state, ARROW, renamed, bad, "bad_shape").await;
    assert_eq!(
        text,
        format!(
            "the Arrow body has no column named \"plan\" (column \"Plan\" differs in case); {takes}"
        )
    );

    let extra = stream_with(&m, |c| c.push(("segment".into(), get(c, "city"))));
    let text = refusal(&state, ARROW, extra, bad, "bad_shape").await;
    assert_eq!(text, format!("column \"segment\" is not an input of the model; {takes}"));

    let ints_as_city = stream_with(&m, |c| {
        let visits = get(c, "visits");
        set(c, "city", visits)
    });
    let text = refusal(&state, ARROW, ints_as_city, bad, "bad_shape").await;
    assert_eq!(
        text,
        "column \"city\" holds Int64 values; input city takes a column named \"city\" of utf8, \
         large_utf8 or dictionary<utf8>"
    );

    let floats_as_visits = stream_with(&m, |c| {
        set(c, "visits", Arc::new(Float64Array::from_iter_values((0..m.rows).map(|i| i as f64))))
    });
    let text = refusal(&state, ARROW, floats_as_visits, bad, "bad_shape").await;
    assert!(
        text.starts_with("column \"visits\" holds Float64 values; input visits takes"),
        "{text}"
    );

    let null_city = stream_with(&m, |c| {
        let mut words: Vec<Option<&str>> = vec![Some("paris"); m.rows];
        words[5] = None;
        set(c, "city", Arc::new(StringArray::from(words)));
    });
    let text = refusal(&state, ARROW, null_city, bad, "bad_shape").await;
    assert_eq!(text, "row 5 of column \"city\" is null; the model takes no missing values");

    let huge_age = stream_with(&m, |c| {
        let mut ages = vec![30.0f64; m.rows];
        ages[7] = 1e300;
        set(c, "age", Arc::new(Float64Array::from(ages)));
    });
    let text = refusal(&state, ARROW, huge_age, bad, "bad_shape").await;
    assert_eq!(text, "row 7 of column \"age\": 1e300 is outside the float32 range (±3.4e38)");

    // Binary and JSON bodies cannot carry strings: refused before the body
    // is read, saying what to send.
    let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let text = refusal(
        &state,
        "application/octet-stream",
        vec![0; 40],
        unsupported,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(
        text,
        format!(
            "model m is fed by name (age (float32), income (float32), visits (int64), city \
             (string), plan (string)): send an Arrow IPC stream ({ARROW}) with one column per input"
        )
    );
    refusal(
        &state,
        "application/json",
        b"[[1,2,3,4,5]]".to_vec(),
        unsupported,
        "unsupported_media_type",
    )
    .await;

    // A schema alone: zero rows, answered with zero rows.
    let empty = stream_with(&m, |c| c.iter_mut().for_each(|(_, a)| *a = a.slice(0, 0)));
    let (status, _, bytes) = send(&state, request("/models/m/score", ARROW, empty)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let answer: Vec<RecordBatch> = StreamReader::try_new(&bytes[..], None)
        .expect("answer")
        .collect::<Result<_, _>>()
        .expect("batches");
    assert_eq!(answer.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn models_list_every_input_and_the_arrow_column_it_takes() {
    let state = state(&["m=zoo/mixed-logreg"], &[]);
    let (status, _, bytes) =
        send(&state, Request::get("/models/m").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: score_protocol::models::ModelDoc = serde_json::from_slice(&bytes).expect("document");
    assert!(!doc.takes_matrix());
    let inputs: Vec<(&str, &str, usize)> =
        doc.inputs.iter().map(|i| (i.name.as_str(), i.dtype.as_str(), i.columns)).collect();
    assert_eq!(
        inputs,
        [
            ("age", "float32", 1),
            ("income", "float32", 1),
            ("visits", "int64", 1),
            ("city", "string", 1),
            ("plan", "string", 1)
        ]
    );
    assert_eq!(doc.inputs[3].shape, ["N", "1"]);
    assert_eq!(doc.inputs[2].arrow, ["a column named \"visits\" of int64, int32, int16 or int8"]);
    assert_eq!(doc.input, doc.inputs[0]);
}

/// A dictionary column whose second batch adds words (a dictionary delta,
/// as pyarrow writes with `emit_dictionary_deltas`; models/arrow_cases.py)
/// scores exactly as the same rows with plain strings.
#[tokio::test]
async fn dictionary_deltas_score_like_plain_strings() {
    let state = state(&["m=zoo/mixed-logreg"], &[]);
    let read =
        |file: &str| std::fs::read(fixture_path(&format!("arrow/{file}.arrows"))).expect("fixture");
    let uri = "/models/m/score?output=label&output=probabilities";
    let (status, _, deltas) = send(&state, request(uri, ARROW, read("dictionary-deltas"))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&deltas));
    let (status, _, plain) =
        send(&state, request(uri, ARROW, read("dictionary-deltas-plain"))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&plain));
    let rows = |bytes: &[u8]| -> usize {
        StreamReader::try_new(bytes, None)
            .expect("answer")
            .map(|b| b.expect("batch").num_rows())
            .sum()
    };
    assert_eq!(rows(&deltas), 7);
    assert_eq!(deltas, plain);
}
