//! Would plans specialised to a batch size beat the one symbolic plan the
//! server runs? For each model and size, times (one thread, alternating
//! calls, median) the server's plan (batch dimension symbolic) against a
//! plan optimised for exactly that many rows.
//!
//! `cargo run --release -p score-server --example buckets -- MODEL.onnx...`

use std::time::{Duration, Instant};

use score_engine::{Model, ModelSource};
use tract_onnx::prelude::*;

fn main() -> anyhow::Result<()> {
    println!(
        "| model | rows | symbolic plan rows/s | concrete plan rows/s | concrete / symbolic |"
    );
    println!("|---|---:|---:|---:|---:|");
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let model = Model::from_bytes("m", ModelSource::Path(path.clone().into()), &bytes)?;
        let columns = model.matrix().ok_or_else(|| anyhow::anyhow!("{path}: not one matrix"))?;
        for rows in [16usize, 256, 1024] {
            let mut onnx = tract_onnx::onnx();
            score_engine::ml::register(&mut onnx.op_register);
            let concrete = onnx
                .model_for_read(&mut &*bytes)?
                .with_input_fact(0, f32::fact([rows, columns]).into())?
                .into_optimized()?
                .into_runnable()?;
            let values: Vec<f32> =
                (0..rows * columns).map(|i| ((i * 31) % 97) as f32 / 48.0 - 1.0).collect();
            let input: TValue = Tensor::from_shape(&[rows, columns], &values)?.into();
            let mut a = model.plan.spawn()?;
            let mut b = concrete.spawn()?;
            let (mut ta, mut tb) = (Vec::new(), Vec::new());
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                let t = Instant::now();
                std::hint::black_box(a.run(tvec![input.clone()])?);
                ta.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(b.run(tvec![input.clone()])?);
                tb.push(t.elapsed());
            }
            let rate = |v: &mut Vec<Duration>| {
                v.sort();
                rows as f64 / v[v.len() / 2].as_secs_f64()
            };
            let (sa, sb) = (rate(&mut ta), rate(&mut tb));
            let name = std::path::Path::new(&path).file_stem().and_then(|s| s.to_str());
            println!("| {} | {rows} | {sa:.0} | {sb:.0} | {:.2}x |", name.unwrap_or("?"), sb / sa);
        }
    }
    Ok(())
}
