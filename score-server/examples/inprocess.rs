//! In-process throughput of a model: the ceiling the server is measured
//! against. Each thread owns a tract state of the same optimized plan (as the
//! server's workers do) and scores fixed batches in a tight loop.
//!
//! `cargo run --release -p score-server --example inprocess -- MODEL.onnx ROWS THREADS SECONDS`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use score_engine::{Model, ModelSource};
use tract_onnx::prelude::*;

/// The server's allocator, so the comparison is of serving, not of malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("models/logreg.onnx", String::as_str);
    let rows: usize = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let threads: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let seconds: f64 = args.get(4).map_or(Ok(10.0), |s| s.parse())?;
    let model = Arc::new(Model::from_bytes(
        "bench",
        ModelSource::Path(path.into()),
        &std::fs::read(path)?,
    )?);
    let columns =
        model.matrix().ok_or_else(|| anyhow::anyhow!("the model is not fed one float32 matrix"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (model, stop, done) = (model.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || -> TractResult<()> {
                let values: Vec<f32> =
                    (0..rows * columns).map(|i| ((i * 31 + t) % 97) as f32 / 48.0 - 1.0).collect();
                let input = Tensor::from_shape(&[rows, columns], &values)?;
                let mut state = model.plan.spawn()?;
                while !stop.load(Ordering::Relaxed) {
                    let out = state.run(tvec![input.clone().into()])?;
                    std::hint::black_box(out);
                    done.fetch_add(rows as u64, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed) as f64;
    println!(
        "in-process {path}: {threads} threads, {rows} rows/call: {:.0} rows/s, {:.0} calls/s",
        total / elapsed,
        total / elapsed / rows as f64
    );
    Ok(())
}
