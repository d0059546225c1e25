//! Our ai.onnx.ml operators (tree ensembles, linear models) inside
//! score-server's model plan against onnxruntime in-process, same model,
//! one thread each, 1,024 rows per call.
//!
//! Needs the benchmark models (`models/bench_models.py`) in `BENCH_MODELS`
//! and onnxruntime's shared library in `ORT_DYLIB_PATH`;
//! `load-tests/ml-ops/run.sh` provides both, runs this and prints the ratios.
//! Without them the onnxruntime side (or the whole bench) is skipped.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ort::session::Session;
use ort::value::Tensor as OrtTensor;
use score_engine::{Model, ModelSource};
use tract_onnx::prelude::*;

const ROWS: usize = 1024;

/// Deterministic standard-normal-ish features (sum of uniforms).
fn features(columns: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..ROWS * columns)
        .map(|_| {
            let mut s = 0.0f32;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s += (state >> 40) as f32 / (1u64 << 24) as f32;
            }
            (s - 2.0) * 1.7
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("BENCH_MODELS").map(PathBuf::from) else {
        eprintln!("BENCH_MODELS is not set: run load-tests/ml-ops/run.sh");
        return;
    };
    let ort_ok = std::env::var_os("ORT_DYLIB_PATH").is_some();
    for name in ["rf", "xgb", "lgbm", "rf-reg", "logreg", "linreg"] {
        let path = dir.join(format!("{name}.onnx"));
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("{} is missing: skipped", path.display());
            continue;
        };
        let model = Model::from_bytes(name, ModelSource::Path(path.clone()), &bytes)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let columns = model.matrix().expect("a float32 matrix model");
        let x = features(columns);
        let mut group = c.benchmark_group(format!("ml_ops/{name}"));
        group.throughput(Throughput::Elements(ROWS as u64));
        let input: TValue = tract_onnx::prelude::Tensor::from_shape(&[ROWS, columns], &x)
            .expect("bench setup")
            .into();
        let mut state = model.plan.spawn().expect("bench setup");
        group.bench_function("score-server", |b| {
            b.iter(|| black_box(state.run(tvec![input.clone()]).expect("bench setup")))
        });
        if ort_ok {
            let mut session = Session::builder()
                .and_then(|b| b.with_intra_threads(1))
                .and_then(|b| b.with_inter_threads(1))
                .and_then(|b| b.commit_from_file(&path))
                .unwrap_or_else(|e| panic!("onnxruntime {name}: {e}"));
            let input_name = session.inputs[0].name.clone();
            group.bench_function("onnxruntime", |b| {
                b.iter(|| {
                    let t =
                        OrtTensor::from_array(([ROWS, columns], x.clone())).expect("bench setup");
                    let out =
                        session.run(ort::inputs![input_name.as_str() => t]).expect("bench setup");
                    black_box(out.len())
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
