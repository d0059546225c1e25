//! `--engine auto`: both engines on the same sample rows, checked against
//! each other, then timed at the batch sizes the server runs, one thread
//! each; the faster is kept.

use std::time::{Duration, Instant};

use score_protocol::models::OutputDoc;
use tract_onnx::prelude::*;

use crate::input::{Feed, Values};
use crate::seam::{EngineKind, Plan, State};

/// How far two engines' float outputs may differ: relative to the larger
/// magnitude, absolute below 1. Integer outputs (labels) must be equal.
pub const TOLERANCE: f64 = 1e-5;

/// onnxruntime is kept only when it is at least this much faster than
/// tract (geometric mean over the sizes timed): within noise, the engine
/// that needs nothing installed stays.
const MARGIN: f64 = 1.05;

/// The two engines' speed at one batch size, in rows/s.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Rows a model call.
    pub rows: usize,
    /// tract's rows/s (median call).
    pub tract: f64,
    /// onnxruntime's rows/s (median call).
    pub onnxruntime: f64,
}

/// What `auto` chose and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The engine kept.
    pub engine: EngineKind,
    /// onnxruntime's speed over tract's (geometric mean over the sizes).
    pub onnxruntime_over_tract: f64,
    /// Per batch size.
    pub timings: Vec<Timing>,
}

impl Choice {
    /// The choice in a sentence, for the log and `/models`.
    pub fn reason(&self) -> String {
        let sizes: Vec<String> = self
            .timings
            .iter()
            .map(|t| format!("{:.2}x at {} rows", t.onnxruntime / t.tract, t.rows))
            .collect();
        format!(
            "auto: onnxruntime/tract speed {} (one thread each; onnxruntime kept when >= \
             {MARGIN}x)",
            sizes.join(", ")
        )
    }
}

/// Whether two engines' outputs agree: `Err` names the first output, row
/// and values that do not.
pub type Agreement = Result<(), String>;

/// Compares the servable outputs (numeric ones) of two runs on the same
/// rows: shapes equal, integers equal, floats within [`TOLERANCE`].
pub fn compare(outputs: &[OutputDoc], tract: &[TValue], onnxruntime: &[TValue]) -> Agreement {
    for (ix, doc) in outputs.iter().enumerate() {
        if !crate::proto::is_servable_dtype(&doc.dtype) {
            continue;
        }
        let (Some(a), Some(b)) = (tract.get(ix), onnxruntime.get(ix)) else {
            return Err(format!("output {} is missing from one engine's answer", doc.name));
        };
        if a.shape() != b.shape() {
            return Err(format!(
                "output {}: tract gives shape {:?}, onnxruntime {:?}",
                doc.name,
                a.shape(),
                b.shape()
            ));
        }
        let as_f64 = |t: &Tensor| -> Result<Vec<f64>, String> {
            let t = if t.datum_type() == DatumType::TDim {
                t.cast_to::<i64>().map_err(|e| format!("{e:#}"))?.into_owned()
            } else {
                t.clone()
            };
            let t = t.cast_to::<f64>().map_err(|e| format!("{e:#}"))?;
            let plain = t.try_as_plain_ram().map_err(|e| format!("{e:#}"))?;
            Ok(plain.as_slice::<f64>().map_err(|e| format!("{e:#}"))?.to_vec())
        };
        let exact = !a.datum_type().is_float();
        let (a, b) = (as_f64(a)?, as_f64(b)?);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let close = if exact {
                x == y
            } else {
                (x.is_nan() && y.is_nan())
                    || (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1.0)
            };
            if !close {
                let row = i / doc.columns.max(1);
                return Err(format!(
                    "output {} differs at row {row}: tract {x}, onnxruntime {y} (difference {:.3e}; \
                     allowed {})",
                    doc.name,
                    (x - y).abs(),
                    if exact { "none".to_string() } else { format!("{TOLERANCE} relative") }
                ));
            }
        }
    }
    Ok(())
}

/// The sample inputs for `rows` rows.
fn sample_inputs(feeds: &[Feed], rows: usize, seed: u64) -> TractResult<TVec<TValue>> {
    Values::into_inputs(Values::samples(feeds, rows, seed), feeds, rows)
}

/// Checks that the two plans agree on sample rows, then times them at each
/// of `sizes` rows a call (alternating calls, median of each, within
/// `budget` in all) and chooses. `Err` says how they disagree or why one
/// could not run.
pub fn select(
    outputs: &[OutputDoc],
    feeds: &[Feed],
    tract: &Plan,
    onnxruntime: &Plan,
    sizes: &[usize],
    budget: Duration,
) -> Result<Choice, String> {
    let spawn = |plan: &Plan| plan.spawn().map_err(|e| format!("{} state: {e:#}", plan.kind()));
    let (mut a, mut b) = (spawn(tract)?, spawn(onnxruntime)?);
    let run = |state: &mut State, inputs: &TVec<TValue>, kind: &str| {
        state.run(inputs.clone()).map_err(|e| format!("{kind} failed on sample rows: {e:#}"))
    };
    for (rows, seed) in [(64, 1), (7, 2), (1, 3)] {
        let inputs = sample_inputs(feeds, rows, seed).map_err(|e| format!("{e:#}"))?;
        let x = run(&mut a, &inputs, "tract")?;
        let y = run(&mut b, &inputs, "onnxruntime")?;
        compare(outputs, &x, &y)?;
    }
    let per_size = budget / sizes.len().max(1) as u32;
    let mut timings = Vec::with_capacity(sizes.len());
    for (i, &rows) in sizes.iter().enumerate() {
        let inputs = sample_inputs(feeds, rows, 10 + i as u64).map_err(|e| format!("{e:#}"))?;
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        let started = Instant::now();
        // At least three calls each, alternating so that both see the same
        // machine; more while the budget lasts.
        while ta.len() < 3 || (started.elapsed() < per_size && ta.len() < 10_000) {
            let t = Instant::now();
            run(&mut a, &inputs, "tract")?;
            ta.push(t.elapsed());
            let t = Instant::now();
            run(&mut b, &inputs, "onnxruntime")?;
            tb.push(t.elapsed());
        }
        let rate = |times: &mut Vec<Duration>| {
            times.sort();
            rows as f64 / times[times.len() / 2].as_secs_f64().max(1e-9)
        };
        timings.push(Timing { rows, tract: rate(&mut ta), onnxruntime: rate(&mut tb) });
    }
    let ratio = (timings.iter().map(|t| (t.onnxruntime / t.tract).ln()).sum::<f64>()
        / timings.len().max(1) as f64)
        .exp();
    let engine = if ratio >= MARGIN { EngineKind::OnnxRuntime } else { EngineKind::Tract };
    Ok(Choice { engine, onnxruntime_over_tract: ratio, timings })
}
