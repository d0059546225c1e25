//! Replays `models/ml-cases/` (one operator per model, every attribute
//! variant, onnxruntime's outputs as reference; `models/ml_cases.py`)
//! through the server's model loader and our operators.

use std::path::Path;

use serde_json::Value;
use tract_onnx::prelude::*;

use crate::input::Kind;
use crate::model::Model;
use crate::spec::ModelSource;
use crate::testing::fixture_path;

/// Largest absolute difference accepted on floats (the operators' target).
const TOLERANCE: f32 = 1e-5;

/// Loads `models/ml-cases/<name>.onnx`, runs the reference input and
/// compares every output with onnxruntime's; returns the mismatches.
pub(crate) fn check(name: &str) -> Vec<String> {
    let dir = fixture_path("ml-cases");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.reference.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
    .unwrap();
    let path = dir.join(format!("{name}.onnx"));
    let model = Model::from_bytes(
        name,
        ModelSource::Path(path.clone()),
        &std::fs::read(Path::new(&path)).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (inputs, rows) = reference_inputs(&reference, &model);
    let outs = model.plan.spawn().unwrap().run(inputs).unwrap();
    let mut wrong = vec![];
    for (info, out) in model.outputs.iter().zip(outs.iter()) {
        let expected = &reference["outputs"][&info.name];
        assert!(!expected.is_null(), "{name}: no reference for output {}", info.name);
        // String labels: we serve the class index, named in the metadata.
        let classes = info.classes.clone().unwrap_or_default();
        let expected_values =
            expected["values"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap());
        if out.datum_type() == DatumType::String {
            let got = out.to_plain_array_view::<String>().unwrap();
            for (i, (g, e)) in got.iter().zip(expected_values).enumerate() {
                if Some(g.as_str()) != e.as_str() {
                    wrong.push(format!("{name}: {}[{i}] = {g:?}, onnxruntime {e}", info.name));
                }
            }
            continue;
        }
        let expected: Vec<Option<f64>> = expected_values
            .map(|v| match v.as_str().and_then(|s| classes.iter().position(|c| c == s)) {
                Some(index) => Some(index as f64),
                None => json_float(v),
            })
            .collect();
        let got: Vec<f64> = if out.datum_type() == i64::datum_type() {
            out.to_plain_array_view::<i64>().unwrap().iter().map(|v| *v as f64).collect()
        } else {
            let floats = out.cast_to::<f32>().unwrap();
            floats.to_plain_array_view::<f32>().unwrap().iter().map(|v| *v as f64).collect()
        };
        assert_eq!(got.len(), expected.len(), "{name}: output {} length", info.name);
        let width = got.len() / rows;
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let ok = match e {
                None => g.is_nan(),
                Some(e) => *g == *e || (g - e).abs() <= TOLERANCE as f64,
            };
            if !ok {
                wrong.push(format!(
                    "{name}: {}[{}][{}] = {g}, onnxruntime {e:?}",
                    info.name,
                    i / width,
                    i % width
                ));
            }
        }
    }
    wrong
}

/// The model's inputs from a reference: `input` (float rows, NaN as null)
/// for a model fed a matrix, else `inputs` (per input: dtype, shape, flat
/// values); and the row count.
fn reference_inputs(reference: &Value, model: &Model) -> (TVec<TValue>, usize) {
    if let Some(rows) = reference["input"].as_array() {
        let columns = reference["columns"].as_u64().unwrap() as usize;
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|r| {
                r.as_array().unwrap().iter().map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            })
            .collect();
        let input = Tensor::from_shape(&[rows.len(), columns], &x).unwrap();
        return (tvec![input.into()], rows.len());
    }
    let mut rows = 0;
    let inputs = model
        .feeds
        .iter()
        .map(|feed| {
            let doc = &reference["inputs"][&feed.name];
            let shape: Vec<usize> = doc["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            rows = shape[0];
            let values = doc["values"].as_array().unwrap();
            let tensor = match feed.kind {
                Kind::Str => {
                    let v: Vec<String> =
                        values.iter().map(|v| v.as_str().unwrap().to_string()).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape, v).unwrap().into_tensor()
                }
                Kind::I64 => {
                    let v: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape, v).unwrap().into_tensor()
                }
                _ => {
                    let v: Vec<f32> =
                        values.iter().map(|v| json_float(v).unwrap_or(f64::NAN) as f32).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape, v)
                        .unwrap()
                        .into_tensor()
                        .cast_to_dt(feed.kind.datum())
                        .unwrap()
                        .into_owned()
                }
            };
            tensor.into()
        })
        .collect();
    (inputs, rows)
}

/// A reference value: a number, null for NaN, "inf" or "-inf".
fn json_float(v: &Value) -> Option<f64> {
    match v.as_str() {
        Some("inf") => Some(f64::INFINITY),
        Some("-inf") => Some(f64::NEG_INFINITY),
        _ => v.as_f64(),
    }
}

/// Every case whose file name starts with `prefix`.
pub(crate) fn check_all(prefix: &str) {
    let mut names: Vec<String> = std::fs::read_dir(fixture_path("ml-cases"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".onnx").filter(|n| n.starts_with(prefix)).map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no case named {prefix}*");
    let wrong: Vec<String> = names.iter().flat_map(|n| check(n)).collect();
    assert!(
        wrong.is_empty(),
        "{} mismatches against onnxruntime in {} cases:\n{}",
        wrong.len(),
        names.len(),
        wrong.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
}
