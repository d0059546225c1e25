//! One job of generated rows through stream-client with adaptive or fixed
//! concurrency, for load-tests/adaptive/run.sh: prints one JSON line (rows/s,
//! requests, retries by reason, the final limits) and, with a samples file,
//! writes each endpoint's limit every 25 ms as JSON lines.
//!
//! `cargo run --release -p stream-client --example concurrency -- URLS ROWS BATCH_ROWS COLUMNS MODE [SAMPLES]`
//!
//! URLS: comma-separated base URLs. MODE: `adaptive:CEILING` or `fixed:N`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stream_client::{Client, ClientConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 6, "usage: URLS ROWS BATCH_ROWS COLUMNS MODE [SAMPLES]");
    let urls: Vec<String> = args[1].split(',').map(str::to_string).collect();
    let rows: u64 = args[2].parse()?;
    let batch_rows: usize = args[3].parse()?;
    let columns: usize = args[4].parse()?;
    let (mode, n) =
        args[5].split_once(':').ok_or_else(|| anyhow::anyhow!("MODE: adaptive:N or fixed:N"))?;
    let mut config = ClientConfig::new(urls, columns);
    config.batch_rows = batch_rows;
    config.in_flight = n.parse()?;
    config.adaptive = match mode {
        "adaptive" => true,
        "fixed" => false,
        other => anyhow::bail!("unknown mode {other:?}"),
    };
    let client = Client::new(config)?;

    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = args.get(6).map(|path| {
        let (client, done, path) = (client.clone(), done.clone(), path.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
            while !done.load(Ordering::Relaxed) {
                let stats = client.stats();
                let limits: Vec<usize> = stats.limits.iter().map(|(_, l)| *l).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "t": started.elapsed().as_secs_f64(),
                        "limits": limits,
                        "rows": stats.rows_scored,
                    })
                )?;
                std::thread::sleep(Duration::from_millis(25));
            }
            out.flush()
        })
    });

    let input = (0..rows).map(|i| {
        let base = (i % 1013) as f32 / 500.0 - 1.0;
        (0..columns).map(|j| base + j as f32 * 1e-3).collect::<Vec<f32>>()
    });
    let mut scored = 0u64;
    for batch in client.score_rows(input) {
        scored += batch?.rows as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        sampler.join().expect("sampler thread")?;
    }
    anyhow::ensure!(scored == rows, "scored {scored} of {rows}");
    let stats = client.stats();
    let retries: serde_json::Map<String, serde_json::Value> =
        stats.retries.iter().map(|(label, n)| (label.to_string(), (*n).into())).collect();
    println!(
        "{}",
        serde_json::json!({
            "mode": mode,
            "in_flight": config_in_flight(&client),
            "rows": rows,
            "secs": secs,
            "rows_per_s": rows as f64 / secs,
            "requests": stats.requests,
            "retries": retries,
            "limits": stats.limits.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        })
    );
    Ok(())
}

fn config_in_flight(client: &Client) -> usize {
    client.config().in_flight
}
