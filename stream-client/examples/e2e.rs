//! End-to-end client throughput and memory: generates ROWS synthetic rows
//! on the fly (no file, so the client's own memory is what is measured),
//! streams them through a server and reports rows/s and the process's peak
//! RSS.
//!
//! `cargo run --release -p stream-client --example e2e -- URL ROWS IN_FLIGHT [BATCH_ROWS] [COLUMNS]`

use std::time::Instant;

use stream_client::{Client, ClientConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8099".into());
    let rows: u64 = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
    let in_flight: usize = args.get(3).map_or(Ok(4), |s| s.parse())?;
    let batch_rows: usize = args.get(4).map_or(Ok(4096), |s| s.parse())?;
    let columns: usize = args.get(5).map_or(Ok(100), |s| s.parse())?;
    let mut config = ClientConfig::new([url], columns);
    config.in_flight = in_flight;
    config.batch_rows = batch_rows;
    let client = Client::new(config)?;
    let input = (0..rows).map(|i| {
        let base = (i % 1013) as f32 / 500.0 - 1.0;
        (0..columns).map(move |j| base + j as f32 * 1e-3)
    });
    // One reusable row buffer: the generator allocates nothing per row.
    let mut row = vec![0f32; columns];
    let rows_iter = input.map(move |values| {
        for (slot, v) in row.iter_mut().zip(values) {
            *slot = v;
        }
        row.clone()
    });
    let started = Instant::now();
    let mut scored = 0u64;
    let mut checksum = 0f64;
    for batch in client.score_rows(rows_iter) {
        let batch = batch?;
        scored += batch.rows as u64;
        checksum += batch.values.iter().map(|v| *v as f64).sum::<f64>();
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_default();
    anyhow::ensure!(scored == rows, "scored {scored} of {rows}");
    println!(
        "e2e rows={rows} in_flight={in_flight} batch_rows={batch_rows}: {:.0} rows/s, {:.2} s, peak RSS {} MiB, checksum {checksum:.3}",
        rows as f64 / secs,
        secs,
        peak.parse::<u64>().unwrap_or(0) / 1024
    );
    Ok(())
}
