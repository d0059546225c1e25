//! `score-client`: score a file through one or more score-servers, in order,
//! with bounded memory, retries and failover.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use clap::Parser;
use score_protocol::models::ModelDoc;
use stream_client::arrow::{ArrowOptions, Features, score_record_batches};
use stream_client::files::{FileError, Format, RowReader, RowWriter, Target};
use stream_client::parquet_io::{BatchWriter, ParquetBatches, parquet_files};
use stream_client::{Client, ClientConfig, Token, fetch_model};

/// The library's defaults: written once, in `ClientConfig::default`.
fn defaults() -> ClientConfig {
    ClientConfig::default()
}

/// Score a dataset of feature rows (or texts) with score-server.
///
/// The input is a Parquet file, a directory of Parquet files (a dataset as
/// Spark writes it), a pattern such as 'data/part-*.parquet' (quoted), a
/// `.npy` (float32, 2-D) or a `.f32` file (raw little-endian float32,
/// row-major; give --columns or let the server say). Parquet features are
/// several numeric columns or one list column (--features chooses); a
/// model with several typed inputs (a scikit-learn ColumnTransformer
/// export) or a text model takes one column per input, named after it.
/// The output follows its extension: Parquet gets the --keep columns and a
/// `score` column; `-` writes to stdout (Parquet for a Parquet input, raw
/// float32 otherwise). A file is written as OUTPUT.partial and renamed
/// only when every row is scored; on any error it is removed and the exit
/// code is non-zero. Every flag is also an environment variable
/// (SCORE_CLIENT_*; the token is SCORE_TOKEN, as for every client).
#[derive(Debug, Parser)]
#[command(name = "score-client", version, about)]
struct Args {
    /// Server base URL, e.g. http://127.0.0.1:8099. Repeat for several
    /// servers: batches go to the least busy, a failing one is put aside.
    #[arg(long = "url", env = "SCORE_CLIENT_URL", value_delimiter = ',', required = true)]
    urls: Vec<String>,
    /// Input: a .parquet file, a directory of them, a pattern such as
    /// 'data/part-*.parquet', a .npy or a .f32 file.
    #[arg(long, env = "SCORE_CLIENT_INPUT")]
    input: PathBuf,
    /// Output: a .parquet, .npy or .f32 file, or - for stdout.
    #[arg(long, env = "SCORE_CLIENT_OUTPUT")]
    output: PathBuf,
    /// Features per row, for .f32 input (default: ask the server).
    #[arg(long, env = "SCORE_CLIENT_COLUMNS")]
    columns: Option<usize>,
    /// Parquet feature columns, comma-separated: several numeric columns or
    /// one list column (default: the only list column, else every float
    /// column); for a model fed by name, its inputs' columns (default: the
    /// columns named after its inputs).
    #[arg(long, env = "SCORE_CLIENT_FEATURES", value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Parquet columns copied unchanged beside the score, comma-separated
    /// (e.g. --keep id): a Parquet output then has them first.
    #[arg(long, env = "SCORE_CLIENT_KEEP", value_delimiter = ',')]
    keep: Vec<String>,
    /// Bearer token for servers started with --auth-token-file. Prefer the
    /// environment variable: a command line is visible to other users.
    #[arg(long, env = "SCORE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Model name (default: the server's default model).
    #[arg(long, env = "SCORE_CLIENT_MODEL")]
    model: Option<String>,
    /// Model output to return (default: the first float output).
    #[arg(long = "output-name", env = "SCORE_CLIENT_OUTPUT_NAME")]
    output_name: Option<String>,
    /// For an embedding model: cut texts longer than its token limit
    /// instead of failing on the first one.
    #[arg(long, env = "SCORE_CLIENT_TRUNCATE")]
    truncate: bool,
    /// For an embedding model: embed texts longer than its token limit
    /// whole, in windows of the limit pooled into one vector.
    #[arg(long, env = "SCORE_CLIENT_CHUNK", conflicts_with = "truncate")]
    chunk: bool,
    /// With --chunk: tokens each window shares with the one before
    /// (default 0).
    #[arg(long, env = "SCORE_CLIENT_CHUNK_OVERLAP", value_name = "TOKENS", requires = "chunk")]
    chunk_overlap: Option<usize>,
    /// For an embedding model: the prompt put before every text, by name
    /// (`query`, `passage`; default: the model's default prompt).
    #[arg(long, env = "SCORE_CLIENT_PROMPT_NAME", value_name = "NAME")]
    prompt_name: Option<String>,
    /// Rows per request. Larger amortises per-request cost; keep rows ×
    /// columns × 4 under the server's body limit.
    #[arg(long, env = "SCORE_CLIENT_BATCH_ROWS", default_value_t = defaults().batch_rows)]
    batch_rows: usize,
    /// Most requests in flight. Each server's share adapts to its answers
    /// (a few more than it has workers, found as the job runs); this is the
    /// ceiling. Memory is about in-flight × batch.
    #[arg(long, env = "SCORE_CLIENT_IN_FLIGHT", default_value_t = defaults().in_flight)]
    in_flight: usize,
    /// Keep exactly --in-flight requests in flight instead of adapting.
    #[arg(long, env = "SCORE_CLIENT_FIXED_CONCURRENCY")]
    fixed_concurrency: bool,
    /// The model version to score with (as /models lists it). Without it,
    /// the first answer's version; either way every row is scored by that
    /// one version, and the job fails if no server serves it any more.
    #[arg(long, env = "SCORE_CLIENT_MODEL_VERSION")]
    model_version: Option<String>,
    /// Per-request timeout (e.g. 30s, 500ms; default 60s); a timed-out
    /// request is cancelled and retried.
    #[arg(long, env = "SCORE_CLIENT_TIMEOUT")]
    timeout: Option<String>,
    /// Any client setting by name, as NAME=VALUE (repeat the flag; in the
    /// environment variable, separate them with ';'), applied after the
    /// flags above: e.g. --set max_attempts=3 --set user_agent=nightly-churn.
    /// An unknown name is refused with the list of settings.
    #[arg(long = "set", env = "SCORE_CLIENT_SET", value_delimiter = ';', value_name = "NAME=VALUE",
          value_parser = name_value)]
    set: Vec<(String, String)>,
}

fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn main() {
    stream_client::log_to_stderr("RUST_LOG");
    if let Err(e) = run(Args::parse()) {
        eprintln!("score-client: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // The model's description, when the input does not carry its width:
    // it gives the input width, and the output width every answer must have.
    let token = args.token.clone().map(Token::new);
    let format = Format::of_input(&args.input)?;
    let doc = match args.columns {
        None if format != Format::Npy => {
            Some(fetch_model(&args.urls[0], args.model.as_deref(), token.as_ref())?)
        }
        _ => None,
    };
    // The flags are settings by another name: one parser and one set of
    // checks for all of them (`stream_client::settings`).
    let mut pairs = vec![
        ("urls", args.urls.join(",")),
        ("truncate", args.truncate.to_string()),
        ("chunk", args.chunk.to_string()),
        ("batch_rows", args.batch_rows.to_string()),
        ("in_flight", args.in_flight.to_string()),
        ("adaptive", (!args.fixed_concurrency).to_string()),
    ];
    for (name, value) in [
        ("model", &args.model),
        ("output", &args.output_name),
        ("token", &args.token),
        ("model_version", &args.model_version),
        ("timeout", &args.timeout),
        ("chunk_overlap", &args.chunk_overlap.map(|n| n.to_string())),
        ("prompt_name", &args.prompt_name),
    ] {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    let extra = args.set.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let mut config =
        ClientConfig::from_settings(pairs.iter().map(|(n, v)| (*n, v.as_str())).chain(extra))?;
    config.score_columns =
        doc.as_ref().and_then(|d| d.output(args.output_name.as_deref())).map(|o| o.columns);
    // Parquet goes through the record-batch job Spark's tasks run: the
    // same feature rules, pass-through columns and output column.
    if format == Format::Parquet {
        return score_parquet(&args, doc.as_ref(), config);
    }
    if let Some(doc) = doc.as_ref().filter(|d| !d.takes_matrix()) {
        bail!(
            "model {} is fed by name ({} inputs): the input must be Parquet, with one column \
             per input",
            doc.name,
            doc.inputs.len()
        );
    }
    if !args.keep.is_empty() {
        bail!("--keep copies Parquet columns: it needs a Parquet input");
    }
    if args.features.is_some() {
        bail!("--features picks Parquet columns: it needs a Parquet input");
    }
    let columns = args.columns.or(doc.as_ref().map(|d| d.input.columns));
    let reader = RowReader::open(&args.input, columns, args.batch_rows)?;
    let total = reader.rows();
    config.columns = reader.columns();
    let client = Client::new(config)?;
    // Listening before the file exists: once it does, a signal removes it.
    remove_on_signal(RowWriter::partial_path(&args.output));
    let mut writer = RowWriter::create(&args.output)?;

    // A read error ends the input; it is reported after the rows before it.
    let read_error = std::cell::RefCell::new(None);
    let blocks = reader.map_while(|block| match block {
        Ok(block) => Some(block),
        Err(e) => {
            *read_error.borrow_mut() = Some(e);
            None
        }
    });
    let started = Instant::now();
    let progress = Progress::new(total);
    let mut done = 0u64;
    let result = (|| -> anyhow::Result<()> {
        for batch in client.score_blocks(blocks) {
            let batch = batch?;
            writer.write(&batch.values, batch.columns)?;
            done += batch.rows as u64;
            progress.update(done, started, || client.stats());
        }
        if let Some(e) = read_error.borrow_mut().take() {
            return Err(e.into());
        }
        if done != total {
            bail!("scored {done} rows of {total}");
        }
        Ok(())
    })();
    progress.clear();
    finish(&args, writer, result, started, client.stats())
}

/// Scores a Parquet input (a file, a directory, a pattern) with the
/// record-batch job: the feature columns (named, or chosen by the same
/// rule as Spark's bindings; for a model fed by name or a text model, the
/// columns named after its inputs) and the --keep columns are read, a
/// batch at a time, file after file; the output is Parquet (the kept
/// columns, then `score`) or the scores alone as .npy or .f32.
fn score_parquet(args: &Args, doc: Option<&ModelDoc>, config: ClientConfig) -> anyhow::Result<()> {
    let files = parquet_files(&args.input)?;
    let by_name = doc.is_some_and(|d| !d.takes_matrix());
    let features: Vec<String> = match (&args.features, doc) {
        (Some(names), _) => names.clone(),
        (None, Some(doc)) if by_name => doc.inputs.iter().map(|i| i.name.clone()).collect(),
        (None, _) => {
            // The rule picks from the first file's columns.
            let (first, _) = ParquetBatches::open(files[..1].to_vec(), &[], 1)?;
            let width = args.columns.or(doc.map(|d| d.input.columns));
            Features::resolve(&first.schema(), None, width)
                .map_err(|error| FileError::Features { path: files[0].clone(), error })?
                .names()
                .to_vec()
        }
    };
    let mut read = features.clone();
    read.extend(args.keep.iter().filter(|k| !features.contains(k)).cloned());
    let (reader, total) = ParquetBatches::open(files, &read, args.batch_rows)?;
    let options = ArrowOptions {
        features: Some(features),
        by_name,
        keep: args.keep.clone(),
        score_col: "score".into(),
        error_col: None,
    };
    let scored = score_record_batches(config, options, reader)?;
    let stdout = args.output.as_os_str() == "-";
    let mut sink = if stdout || Format::of(&args.output)? == Format::Parquet {
        Sink::Batches(Box::new(BatchWriter::new(Target::of(&args.output))))
    } else if args.keep.is_empty() {
        Sink::Scores(RowWriter::create(&args.output)?)
    } else {
        bail!("--keep writes its columns beside the score: the output must be .parquet (or -)");
    };
    if !stdout {
        remove_on_signal(RowWriter::partial_path(&args.output));
    }
    let started = Instant::now();
    let progress = Progress::new(total);
    let mut done = 0u64;
    let mut schema = None;
    let result = (|| -> anyhow::Result<()> {
        for batch in scored {
            let batch = batch?;
            match &mut sink {
                Sink::Batches(w) => w.write(&batch)?,
                Sink::Scores(w) => {
                    let (values, columns) = score_values(batch.column(batch.num_columns() - 1))?;
                    w.write(values, columns)?;
                }
            }
            schema.get_or_insert_with(|| batch.schema());
            done += batch.num_rows() as u64;
            progress.update(done, started, Client::shared_stats);
        }
        if done != total {
            bail!("scored {done} rows of {total}");
        }
        Ok(())
    })();
    progress.clear();
    let stats = Client::shared_stats();
    match sink {
        Sink::Scores(writer) => finish(args, writer, result, started, stats),
        Sink::Batches(writer) => {
            if let Err(e) = result {
                writer.abandon();
                return Err(e).context(format!("{} left unwritten", args.output.display()));
            }
            // No rows: a file with the kept columns and a one-float score.
            let empty = schema.unwrap_or_else(|| {
                std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
                    "score",
                    DataType::Float32,
                    false,
                )]))
            });
            let rows = writer.finish(empty)?;
            report(rows, started, &stats, &args.output);
            Ok(())
        }
    }
}

/// Where a Parquet input's scores go.
enum Sink {
    /// Whole output batches, as Parquet (a file or stdout).
    Batches(Box<BatchWriter>),
    /// The scores alone (.npy, .f32).
    Scores(RowWriter),
}

/// A score column's floats, row-major, and how many a row.
fn score_values(column: &ArrayRef) -> anyhow::Result<(&[f32], usize)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    Ok(match column.data_type() {
        DataType::Float32 => (column.as_primitive::<Float32Type>().values(), 1),
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            let values = &list.values().as_primitive::<Float32Type>().values()[start..end];
            (values, (end - start) / list.len().max(1))
        }
        other => bail!("a score column of {other}"),
    })
}

/// Renames the output into place (or removes it after an error) and says
/// what was done.
fn finish(
    args: &Args,
    writer: RowWriter,
    result: anyhow::Result<()>,
    started: Instant,
    stats: stream_client::Stats,
) -> anyhow::Result<()> {
    if let Err(e) = result {
        writer.abandon();
        return Err(e).context(format!("{} left unwritten", args.output.display()));
    }
    let rows = writer.finish()?;
    report(rows, started, &stats, &args.output);
    Ok(())
}

/// The last line on stderr: what was done, and with which model version.
fn report(rows: u64, started: Instant, stats: &stream_client::Stats, output: &std::path::Path) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "score-client: {rows} rows scored in {secs:.2} s ({:.0} rows/s), {} requests, {} retries, \
         model version {} -> {}",
        rows as f64 / secs.max(1e-9),
        stats.requests,
        stats.total_retries(),
        stats.model_version.as_deref().unwrap_or("(none answered)"),
        output.display()
    );
}

/// On SIGINT or SIGTERM, removes the partial output and exits (130 or 143,
/// as a shell reports a process killed by the signal): an interrupted job
/// leaves nothing behind that looks like output.
fn remove_on_signal(partial: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let handle = stream_client::runtime_handle();
    // Registered here, synchronously (in the runtime's context), not in the
    // task: the handlers are in place when this returns.
    let _context = handle.enter();
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot listen for signals; an interrupted run leaves its .partial");
        return;
    };
    handle.spawn(async move {
        let code = tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        };
        let _ = std::fs::remove_file(&partial);
        eprintln!("\nscore-client: interrupted; {} removed", partial.display());
        std::process::exit(code);
    });
}

/// A one-line progress display on stderr when it is a terminal, at most
/// every 200 ms.
struct Progress {
    total: u64,
    tty: bool,
    last: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            total,
            tty: std::io::stderr().is_terminal(),
            last: std::cell::Cell::new(Instant::now()),
        }
    }

    /// Prints the line: rows, rate and each server's concurrency limit.
    fn update(&self, done: u64, started: Instant, stats: impl FnOnce() -> stream_client::Stats) {
        if !self.tty || self.last.get().elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last.set(Instant::now());
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let pct = 100.0 * done as f64 / self.total.max(1) as f64;
        let limits = stats().limits_line();
        eprint!("\r{done}/{} rows ({pct:.1}%), {rate:.0} rows/s, {limits}   ", self.total);
    }

    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}
