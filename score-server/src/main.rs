//! The `score-server` binary: flags → config → bind → serve.

use anyhow::Context;
use clap::Parser;
use score_server::{Args, LogFormat, load, server};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator. With glibc, each request's body
/// and input tensor (hundreds of kB) came from per-thread arenas that were
/// trimmed back to the OS and faulted in again on every request (page
/// faults and page clearing were ~11 % of the HTTP thread's time at
/// 1,000-row requests); mimalloc keeps them: 20–25 % less server CPU per
/// request (load-tests/RESULTS.md). Built with `no_thp`: with transparent
/// huge pages, its arenas cost +22 MiB at start and +45 MiB at peak.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // A start-up error is a sentence for the operator: printed as its chain
    // of causes, never as anyhow's Debug (a backtrace when RUST_BACKTRACE
    // is set).
    if let Err(e) = serve() {
        eprintln!("score-server: error: {e:#}");
        std::process::exit(1);
    }
}

fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => {
            logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init()
        }
        // Fields at the top level beside the message, as log shippers
        // (Loki, Elasticsearch, Cloud Logging) index them.
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    if args.health_check {
        return score_server::health::check(args.listen, score_server::health::TIMEOUT)
            .map_err(anyhow::Error::msg);
    }
    let config = args.into_config().map_err(anyhow::Error::msg)?;
    tracing::info!(config = %config, "starting");
    // As many async threads as workers: they parse, decode, encode and
    // answer every request. Capped at 2 (as they once were), they did that
    // for any number of workers, a ceiling on small requests whatever the
    // cores (10-row requests peaked at 96k/s with 4 workers on a 16-core
    // machine). Idle, they cost nothing: when the models are the work,
    // the cores go to the workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.max(1))
        .thread_name("score-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listen = config.listen;
        let state = load(config).await.context("cannot start")?;
        for model in state.models.list().iter() {
            tracing::info!(
                model = %model.name, version = %model.version, source = %model.source,
                inputs = %model.input_list(),
                outputs = %model.outputs.iter().map(|o| format!("{}[{}]:{}", o.name, o.columns, o.dtype)).collect::<Vec<_>>().join(", "),
                "model loaded"
            );
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        server::serve(state, listener, server::shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}
