//! Fuzzing of everything that parses what a client or an operator hands the
//! server: the float32, JSON and Arrow IPC body decoders and the model
//! loader.
//! cargo-fuzz needs a nightly compiler, which these machines do not have,
//! so this is property-based fuzzing with proptest: random and mutated
//! inputs, the property being "an answer or an error, never a panic", plus
//! exact results where the input is valid. Bounded for CI: each property
//! runs `FUZZ_CASES` cases (default 256; `FUZZ_CASES=20000` for a longer
//! run). Failing inputs are kept in `tests/fuzz.proptest-regressions`
//! (committed: the corpus of past failures) and replayed first.
//!
//! Text bodies get their properties when they land.

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::Field;
use proptest::prelude::*;
use score_engine::testing::fixture_path;
use score_engine::{Model, ModelSource};
use score_server::http::arrow;
use score_server::http::body::{binary_rows, json_rows};

/// The zoo's mixed-input export (five inputs: floats, an int64, strings),
/// loaded once.
fn mixed_model() -> &'static Model {
    static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        Model::load(
            &score_engine::ModelSpec::parse(&format!(
                "m={}",
                fixture_path("zoo/mixed-logreg.onnx").display()
            ))
            .expect("spec"),
        )
        .expect("the mixed model loads")
    })
}

/// A valid body for the mixed model: `rows` rows, strings plain or as a
/// dictionary.
fn typed_stream(rows: usize, words: &[String], dictionary: bool) -> Vec<u8> {
    use arrow_array::{Int32Array, Int64Array, StringArray, types::Int32Type};
    let floats = |k: f32| -> ArrayRef {
        Arc::new(Float32Array::from_iter_values((0..rows).map(|i| i as f32 * k)))
    };
    let strings = |offset: usize| -> ArrayRef {
        let pick = |i: usize| words[(i + offset) % words.len()].as_str();
        if dictionary {
            let keys = Int32Array::from_iter_values(
                (0..rows).map(|i| ((i + offset) % words.len()) as i32),
            );
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(words.iter()));
            Arc::new(
                arrow_array::DictionaryArray::<Int32Type>::try_new(keys, values)
                    .expect("dictionary"),
            )
        } else {
            Arc::new(StringArray::from_iter_values((0..rows).map(pick)))
        }
    };
    let batch = RecordBatch::try_from_iter([
        ("age", floats(1.5)),
        ("income", floats(0.25)),
        ("visits", Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i as i64))) as ArrayRef),
        ("city", strings(0)),
        ("plan", strings(1)),
    ])
    .expect("batch");
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

/// A body for the mixed model of one-row-per-word batches whose `city`
/// dictionary grows by a word each batch: each dictionary sent whole, or
/// (with `deltas`) only its new words, as pyarrow's
/// `emit_dictionary_deltas` writes it.
fn growing_dictionary_stream(words: &[String], deltas: bool) -> Vec<u8> {
    use arrow_array::builder::StringDictionaryBuilder;
    use arrow_array::types::Int32Type;
    use arrow_array::{Int64Array, StringArray};
    use arrow_ipc::writer::{DictionaryHandling, IpcWriteOptions, StreamWriter};
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    let batches: Vec<RecordBatch> = words
        .iter()
        .map(|word| {
            builder.append_value(word);
            let city: ArrayRef = Arc::new(builder.finish_preserve_values());
            RecordBatch::try_from_iter([
                ("age", Arc::new(Float32Array::from(vec![1.0f32])) as ArrayRef),
                ("income", Arc::new(Float32Array::from(vec![2.0f32])) as ArrayRef),
                ("visits", Arc::new(Int64Array::from(vec![3i64])) as ArrayRef),
                ("city", city),
                ("plan", Arc::new(StringArray::from(vec!["pro"])) as ArrayRef),
            ])
            .expect("batch")
        })
        .collect();
    let handling = if deltas { DictionaryHandling::Delta } else { DictionaryHandling::Resend };
    let options = IpcWriteOptions::default().with_dictionary_handling(handling);
    let mut writer = StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), options)
        .expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    writer.into_inner().expect("bytes")
}

/// Decodes a body for `model`, then expands every row as a worker does.
fn expand(
    bytes: Vec<u8>,
    model: &Model,
) -> Result<Vec<score_engine::input::Values>, score_server::error::ApiError> {
    let typed = arrow::typed(bytes::Bytes::from(bytes), model)?;
    let n = typed.rows();
    let mut values = score_engine::input::Values::for_feeds(&model.feeds, n);
    typed.append(&model.feeds, 0, n, &mut values);
    Ok(values)
}

/// Flips bits at the chosen places, then cuts the stream short if asked.
fn mutate(
    bytes: &mut Vec<u8>,
    flips: &[(prop::sample::Index, u8)],
    cut: Option<prop::sample::Index>,
) {
    for (at, value) in flips {
        let i = at.index(bytes.len());
        bytes[i] ^= value;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len()));
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A JSON-ish text: mostly rows of numbers, with the ways clients get
/// them wrong mixed in.
fn json_like() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<f32>().prop_map(|f| format!("{f}")),
        any::<i64>().prop_map(|i| i.to_string()),
        Just("1e300".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        Just("NaN".to_string()),
        Just("\"1\"".to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
        "[0-9eE+.-]{1,8}",
    ];
    let row = proptest::collection::vec(number, 0..6).prop_map(|v| format!("[{}]", v.join(",")));
    let rows = proptest::collection::vec(row, 0..6).prop_map(|v| format!("[{}]", v.join(",")));
    (rows, "[ \\[\\],x{}\"]{0,3}", any::<bool>())
        .prop_map(|(rows, junk, append)| if append { format!("{rows}{junk}") } else { rows })
}

/// A valid Arrow IPC stream of `rows` (row-major, `columns` wide): one
/// list column, or one float64 column per feature; with the floats it
/// decodes to.
fn arrow_stream(rows: &[f32], columns: usize, as_list: bool) -> Vec<u8> {
    let batch = if as_list {
        let field = Arc::new(Field::new("item", arrow_schema::DataType::Float32, false));
        let lengths = std::iter::repeat_n(columns, rows.len() / columns);
        let values: ArrayRef = Arc::new(Float32Array::from(rows.to_vec()));
        let list = ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), values, None)
            .expect("list");
        RecordBatch::try_from_iter([("x", Arc::new(list) as ArrayRef)]).expect("batch")
    } else {
        RecordBatch::try_from_iter((0..columns).map(|c| {
            let column: Vec<f64> =
                rows.iter().skip(c).step_by(columns).map(|&v| f64::from(v)).collect();
            (format!("f{c}"), Arc::new(Float64Array::from(column)) as ArrayRef)
        }))
        .expect("batch")
    };
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).expect("writer");
    writer.write(&batch).expect("batch");
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arrow_streams_decode_exactly(
        values in proptest::collection::vec(-1e6f32..1e6, 0..24),
        columns in 1usize..4,
        as_list in any::<bool>(),
        named in any::<bool>(),
    ) {
        let rows = &values[..values.len() / columns * columns];
        let body = bytes::Bytes::from(arrow_stream(rows, columns, as_list));
        // A model naming its features f(n-1), ..., f0 takes the columns
        // f0..f(n-1) reversed; a list column has no names to match.
        let names: Vec<String> = (0..columns).rev().map(|c| format!("f{c}")).collect();
        let (floats, n) =
            arrow::rows(body, columns, named.then_some(&names[..])).expect("a valid stream");
        prop_assert_eq!(n, rows.len() / columns);
        let expected: Vec<f32> = if named && !as_list {
            rows.chunks(columns).flat_map(|row| row.iter().rev().copied()).collect()
        } else {
            rows.to_vec()
        };
        prop_assert_eq!(score_protocol::codec::decode(&floats).expect("whole"), expected);
    }

    #[test]
    fn mutated_arrow_streams_never_panic(
        values in proptest::collection::vec(any::<f32>(), 0..24),
        columns in 1usize..4,
        as_list in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        named in any::<bool>(),
    ) {
        let rows = &values[..values.len() / columns * columns];
        let mut bytes = arrow_stream(rows, columns, as_list);
        mutate(&mut bytes, &flips, truncate.then_some(cut));
        let names: Vec<String> = (0..columns).map(|c| format!("f{c}")).collect();
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            arrow::rows(bytes::Bytes::from(bytes), columns, named.then_some(&names[..]))
        }));
        prop_assert!(decoded.is_ok(), "the Arrow decoder panicked");
        if let Ok(Ok((floats, n))) = decoded {
            prop_assert_eq!(floats.len(), n * columns * 4);
        }
    }

    #[test]
    fn mutated_typed_streams_never_panic(
        rows in 0usize..12,
        words in proptest::collection::vec(".{0,6}", 1..4),
        dictionary in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let model = mixed_model();
        let mut bytes = typed_stream(rows, &words, dictionary);
        mutate(&mut bytes, &flips, truncate.then_some(cut));
        // Decoding, then what a worker does with the rows: both must
        // answer or refuse, never panic.
        let decoded = catch_unwind(AssertUnwindSafe(|| expand(bytes, model)));
        prop_assert!(decoded.is_ok(), "the typed decoder panicked");
    }

    #[test]
    fn dictionary_batches_and_deltas_decode_exactly(
        words in proptest::collection::vec(".{0,6}", 1..8),
        deltas in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let model = mixed_model();
        let mut bytes = growing_dictionary_stream(&words, deltas);
        let intact = flips.is_empty() && !truncate;
        mutate(&mut bytes, &flips, truncate.then_some(cut));
        let decoded = catch_unwind(AssertUnwindSafe(|| expand(bytes, model)));
        prop_assert!(decoded.is_ok(), "the typed decoder panicked");
        if let (true, Ok(result)) = (intact, decoded) {
            let values = result.map_err(|e| TestCaseError::fail(format!("deltas {deltas}: {e}")))?;
            // Each one-row batch's city is the word it added.
            let score_engine::input::Values::Str(cities) = &values[3] else {
                panic!("city is a string input");
            };
            prop_assert_eq!(cities, &words);
        }
    }

    #[test]
    fn random_bytes_are_not_arrow(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                  columns in 1usize..5) {
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            arrow::rows(bytes::Bytes::from(bytes), columns, None)
        }));
        prop_assert!(decoded.is_ok(), "the Arrow decoder panicked");
    }

    #[test]
    fn binary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                 columns in 0usize..20) {
        let body = bytes::Bytes::from(bytes);
        match binary_rows(&body, columns) {
            Ok(rows) => prop_assert_eq!(rows * columns * 4, body.len()),
            Err(_) => prop_assert!(columns == 0 || body.len() % (columns * 4) != 0),
        }
    }

    #[test]
    fn json_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256),
                               columns in 1usize..5) {
        let _ = json_rows(&bytes, columns);
    }

    #[test]
    fn json_rows_are_exact_or_refused(text in json_like(), columns in 1usize..5) {
        if let Ok((floats, rows)) = json_rows(text.as_bytes(), columns) {
            prop_assert_eq!(floats.len(), rows * columns * 4);
            let values: serde_json::Value =
                serde_json::from_str(&text).expect("accepted JSON is JSON");
            let expected: Vec<f32> = values
                .as_array()
                .expect("rows")
                .iter()
                .flat_map(|r| r.as_array().expect("row").iter().map(|v| {
                    v.as_f64().expect("number") as f32
                }))
                .collect();
            prop_assert_eq!(score_protocol::codec::decode(&floats).expect("whole"), expected);
        }
    }

    #[test]
    fn mutated_models_load_or_fail_but_never_panic(
        seed in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let file = ["logreg.onnx", "linreg.onnx", "forest.onnx"][seed];
        let mut bytes = std::fs::read(fixture_path(file)).expect("fixture");
        mutate(&mut bytes, &flips, truncate.then_some(cut));
        let source = ModelSource::Path(file.into());
        let loaded = catch_unwind(AssertUnwindSafe(|| Model::from_bytes("m", source, &bytes)));
        prop_assert!(loaded.is_ok(), "the loader panicked");
        if let Ok(Err(e)) = loaded {
            prop_assert!(e.to_string().starts_with("model m: "), "{e}");
        }
    }

    #[test]
    fn random_bytes_are_not_models(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let source = ModelSource::Path("random.onnx".into());
        let loaded = catch_unwind(AssertUnwindSafe(|| Model::from_bytes("m", source, &bytes)));
        prop_assert!(loaded.is_ok(), "the loader panicked");
    }
}
