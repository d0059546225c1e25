//! `loadgen` command line: see the library docs and `loadgen --help`.

use clap::Parser;
use loadgen::{Args, run};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two threads: enough to saturate a server on loopback from a small
    // machine without taking its cores from the server under test.
    let threads = std::env::var("LOADGEN_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let report = runtime.block_on(run(&args))?;
    if args.json {
        let mut json = report.to_json();
        for (key, value) in &args.tags {
            json[key] = value.clone().into();
        }
        println!("{json}");
    } else {
        println!("{report}");
    }
    Ok(())
}
