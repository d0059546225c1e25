//! The record-batch job for a model fed by name (the zoo's mixed-input
//! ColumnTransformer export) against the real server: string, float and
//! int64 columns are sent as Arrow by name, scores equal onnxruntime's,
//! and a null names its row and column.

mod common;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, RecordBatch, StringArray};
use common::mixed_reference as reference;
use stream_client::ClientConfig;
use stream_client::arrow::{ArrowOptions, score_record_batches};

const INPUTS: [&str; 5] = ["age", "income", "visits", "city", "plan"];

fn options(error_col: Option<&str>) -> ArrowOptions {
    ArrowOptions {
        features: Some(INPUTS.iter().map(|s| s.to_string()).collect()),
        keep: vec!["id".into()],
        score_col: "score".into(),
        error_col: error_col.map(str::to_string),
        by_name: false,
    }
}

#[test]
fn string_columns_are_sent_by_name_and_score_like_onnxruntime() {
    let server = common::real_server("zoo/mixed-logreg", &[]);
    let (columns, expected) = reference();
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    // Three input batches, cut into requests of 3 rows.
    let input: Vec<Result<RecordBatch, String>> =
        vec![Ok(batch.slice(0, 5)), Ok(batch.slice(5, 7)), Ok(batch.slice(12, 4))];
    let mut config = ClientConfig::new([server.url()], 0);
    config.batch_rows = 3;
    config.output = Some("probabilities".into());
    let out: Vec<RecordBatch> = score_record_batches(config, options(None), input.into_iter())
        .expect("job")
        .collect::<Result<_, _>>()
        .expect("scored");
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 16);
    let mut got = Vec::new();
    for b in &out {
        let list = b.column_by_name("score").expect("score").as_list::<i32>();
        got.extend_from_slice(list.values().as_primitive::<Float32Type>().values());
    }
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() <= 1e-5, "probability {i}: {g} vs onnxruntime {e}");
    }
}

#[test]
fn a_null_category_names_its_row_and_column() {
    let server = common::real_server("zoo/mixed-logreg", &[]);
    let (mut columns, _) = reference();
    let mut cities: Vec<Option<&str>> = vec![Some("paris"); 16];
    cities[9] = None;
    columns.iter_mut().find(|(n, _)| n == "city").expect("city").1 =
        Arc::new(StringArray::from(cities));
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let mut config = ClientConfig::new([server.url()], 0);
    config.output = Some("probabilities".into());

    // With an error column: that row has the reason, the others scores.
    let input = vec![Ok::<_, String>(batch.clone())];
    let out: Vec<RecordBatch> =
        score_record_batches(config.clone(), options(Some("error")), input.into_iter())
            .expect("job")
            .collect::<Result<_, _>>()
            .expect("scored");
    let errors = out[0].column_by_name("error").expect("error column").as_string::<i32>();
    let scores = out[0].column_by_name("score").expect("score");
    for row in 0..16 {
        if row == 9 {
            assert!(errors.value(row).contains("column \"city\" is null"), "{}", errors.value(row));
            assert!(scores.is_null(row));
        } else {
            assert!(errors.is_null(row), "row {row}: {}", errors.value(row));
            assert!(!scores.is_null(row));
        }
    }

    // Without: the job fails naming the row.
    let input = vec![Ok::<_, String>(batch)];
    let failed = score_record_batches(config, options(None), input.into_iter())
        .expect("job")
        .find_map(Result::err)
        .expect("an error");
    assert_eq!(failed.to_string(), "row 9: column \"city\" is null");
}
