//! Command-line flags (each also an environment variable) and the validated
//! configuration they produce.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use score_engine::EngineChoice;
use score_engine::embed::Pooling;
use score_engine::{EngineOptions, ModelSpec};

/// Serve ONNX models over HTTP: PUT float32 rows to /score, get scores back.
#[derive(Debug, Parser)]
#[command(name = "score-server", version, about)]
pub struct Args {
    /// Model to serve, as PATH or NAME=PATH (the name defaults to the file
    /// stem). Repeat for several models; the first is the default model of
    /// `/score`. With none, the bundled demo model is served as "demo".
    #[arg(value_name = "[NAME=]PATH", long = "model", env = "SCORE_MODEL", value_delimiter = ',')]
    pub models: Vec<String>,

    /// Engine that runs the models: ENGINE for all, or NAME=ENGINE for one
    /// (repeat, or separate with commas); ENGINE is `tract` (the default:
    /// pure Rust, nothing to install), `onnxruntime` (its shared library,
    /// see --onnxruntime) or `auto` (load in both, check that they agree on
    /// sample rows, time both at the batch sizes the server runs, keep the
    /// faster; tract alone where onnxruntime is not found).
    #[arg(
        value_name = "[NAME=]ENGINE",
        long = "engine",
        env = "SCORE_ENGINE",
        value_delimiter = ','
    )]
    pub engines: Vec<String>,

    /// Pooling of an embedding model whose directory has no
    /// 1_Pooling/config.json: POOLING for all, or NAME=POOLING for one;
    /// `mean` (the default), `cls` or `last-token`. A directory whose
    /// config says otherwise refuses to load rather than pick one.
    #[arg(
        value_name = "[NAME=]POOLING",
        long = "pooling",
        env = "SCORE_POOLING",
        value_delimiter = ','
    )]
    pub poolings: Vec<String>,

    /// onnxruntime's shared library (libonnxruntime.so, e.g. from the
    /// onnxruntime PyPI wheel). Default: ORT_DYLIB_PATH, else the active
    /// Python environment's onnxruntime package, else /usr/local/lib and
    /// /usr/lib. Opened only when a model's engine needs it.
    #[arg(value_name = "PATH", long, env = "SCORE_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,

    /// Address to listen on. Binding beyond loopback exposes the service to
    /// the network: put it behind your proxy or firewall.
    #[arg(value_name = "ADDR", long, env = "SCORE_LISTEN", default_value = "127.0.0.1:8099")]
    pub listen: SocketAddr,

    /// Model worker threads. 0 means one per available core: compute-bound
    /// models gain nothing from more, and fewer leave cores to the network.
    #[arg(value_name = "N", long, env = "SCORE_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Most rows in one model call. Large requests are split into chunks of
    /// at most this size (so idle workers share them) and small concurrent
    /// requests are merged up to it. Larger amortises call overhead; smaller
    /// bounds the memory of intermediate tensors per worker.
    #[arg(value_name = "N", long, env = "SCORE_MAX_BATCH_ROWS", default_value_t = 4096)]
    pub max_batch_rows: usize,

    /// Embedding models: most padded tokens (texts × longest text) in one
    /// encoder call. A model call's texts are sorted by length and cut into
    /// encoder calls under this budget, so a long text does not pad the
    /// short ones and the attention's memory stays bounded (onnxruntime's
    /// working memory grows with it: ~0.1 GB a worker at 2048 for
    /// MiniLM-L6, ~0.7 GB at 8192). A worker call (a chunk of a request)
    /// holds at most as many tokens, counting a text as at most its bytes
    /// + 2, so no call runs long whatever the texts (~0.5 s here).
    #[arg(value_name = "N", long, env = "SCORE_MAX_BATCH_TOKENS", default_value_t = score_engine::embed::MAX_BATCH_TOKENS)]
    pub max_batch_tokens: usize,

    /// Embedding models: most texts in one request (JSON routes and
    /// scoring bodies alike); more answers 413 naming the flag. Each text
    /// costs a vector in the answer and a tokenizer call whatever its
    /// length (60,000 empty strings make a 488 MB JSON answer), so this
    /// bounds what a small body can ask for. Batch clients send a few
    /// thousand a request.
    #[arg(value_name = "N", long, env = "SCORE_MAX_TEXTS", default_value_t = 16384)]
    pub max_texts: usize,

    /// Longest time an answer may wait for the client to read any of it
    /// (e.g. 30s); past it the connection is closed. A client that sends
    /// requests and never reads the answers would otherwise hold them, and
    /// their admission charge, for as long as it stays connected. Any
    /// progress restarts the clock, so slow links are not cut.
    #[arg(value_name = "DUR", long, env = "SCORE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Largest request body (bytes; K, M, G, KiB, MiB, GiB suffixes). Larger
    /// answers 413. Must cover the client's batch size: rows × columns × 4.
    #[arg(value_name = "SIZE", long, env = "SCORE_BODY_LIMIT", default_value = "64MiB", value_parser = parse_bytes)]
    pub body_limit: usize,

    /// Request bytes admitted at once (being read, queued or scored). Beyond
    /// it requests get 429 with Retry-After at once. This bounds memory:
    /// roughly this plus the outputs plus the workers' intermediate tensors.
    #[arg(value_name = "SIZE", long, env = "SCORE_MAX_INFLIGHT_BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    pub max_inflight_bytes: usize,

    /// Requests admitted at once, whatever their size; beyond it 429. Bounds
    /// the compute queue and the per-request overhead of many tiny requests.
    #[arg(value_name = "N", long, env = "SCORE_MAX_INFLIGHT_REQUESTS", default_value_t = 512)]
    pub max_inflight_requests: usize,

    /// Time allowed to receive a whole request body (e.g. 30s, 2m); answers
    /// 408 beyond. Bodies are charged to admission only for the bytes that
    /// have arrived, so a stalled sender holds no budget, only a connection.
    #[arg(value_name = "DUR", long, env = "SCORE_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Slowest average rate a request body may arrive at, counted after
    /// --body-grace (bytes per second; 0 turns it off). A sender that falls
    /// further behind is cut with 408: a stalled or trickling client holds a
    /// connection and memory, so this bounds how long. Batch clients send
    /// at network speed; lower it only for slow links.
    #[arg(value_name = "SIZE", long, env = "SCORE_MIN_BODY_RATE", default_value = "64KiB", value_parser = parse_bytes)]
    pub min_body_rate: usize,

    /// Time a body may take before --min-body-rate counts (e.g. 5s): covers
    /// connection warm-up and a client's pause between headers and body.
    #[arg(value_name = "DUR", long, env = "SCORE_BODY_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub body_grace: Duration,

    /// How long a request refused for overload (429) waits for its answer
    /// when its body (over 256 KiB, or chunked) has not been read (e.g.
    /// 500ms; 0s answers at once). A client that resends a refused body at
    /// once would otherwise have the server take in a body per refusal as
    /// fast as it can send them, on the cores the admitted requests need;
    /// held back, it costs a timer. Clients that honour Retry-After (at
    /// least 1 s) wait anyway; the refused work is never queued.
    #[arg(value_name = "DUR", long, env = "SCORE_REFUSAL_DELAY", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub refusal_delay: Duration,

    /// Most open client connections. At the cap the server stops accepting
    /// (new connections wait in the kernel's backlog) rather than run out of
    /// file descriptors: keep it under `ulimit -n`. Connections that idle or
    /// trickle are cut by --header-timeout and --min-body-rate, so they
    /// cannot hold the cap for long.
    #[arg(value_name = "N", long, env = "SCORE_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// Time allowed to receive a request's headers on a connection; also
    /// how long a keep-alive connection may idle between requests.
    #[arg(value_name = "DUR", long, env = "SCORE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// File of bearer tokens, one per line (blank lines and # comments
    /// ignored), re-read on SIGHUP. With it, scoring and model routes answer
    /// 401 without `Authorization: Bearer <token>`; /healthz and /readyz stay
    /// open. Without it anyone who can reach the port can score: bind to
    /// loopback or a private network then.
    #[arg(value_name = "PATH", long, env = "SCORE_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Require a token for /metrics too (with --auth-token-file). Off by
    /// default: scrapers rarely carry one, and metrics hold no data.
    #[arg(long, env = "SCORE_METRICS_AUTH")]
    pub metrics_auth: bool,

    /// Check the model files this often (e.g. 2s) and reload a model whose
    /// file changed, as SIGHUP does. Off by default: SIGHUP reloads
    /// anyway. A reloaded model is loaded and checked beside the old
    /// version, which serves until the swap; requests already started
    /// finish on it. Replace a file by renaming a complete one over it: a
    /// file caught half-written fails to load and the old version serves on.
    #[arg(value_name = "DUR", long, env = "SCORE_WATCH", value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,

    /// After SIGTERM, keep accepting (answering 503 and failing /readyz) for
    /// this long so load balancers notice, before closing the listener.
    #[arg(value_name = "DUR", long, env = "SCORE_DRAIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// After the listener closes, wait at most this long for in-flight
    /// requests before exiting anyway.
    #[arg(value_name = "DUR", long, env = "SCORE_DRAIN_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Do not serve: ask the server at --listen (on loopback when it
    /// listens on every interface) for /healthz, and exit 0 if it answers
    /// 200 within 2 s, else 1 with the reason. The container image's
    /// HEALTHCHECK, which has no curl.
    #[arg(long)]
    pub health_check: bool,

    /// Log lines on stderr: `text` for people, `json` for log shippers (one
    /// JSON object a line: timestamp, level, target, the message and its
    /// fields). Which lines: RUST_LOG, by default `info`.
    #[arg(value_name = "FORMAT", long, env = "SCORE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text an event, for people.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Models to serve; the first is the default.
    pub models: Vec<ModelSpec>,
    /// What loading needs for engines other than tract.
    pub engine_options: EngineOptions,
    /// Listen address (used by the binary; `run` takes a bound listener).
    pub listen: SocketAddr,
    /// Worker threads (resolved, ≥ 1).
    pub workers: usize,
    /// Most rows per model call.
    pub max_batch_rows: usize,
    /// Largest body in bytes.
    pub body_limit: usize,
    /// Admission budget in bytes.
    pub max_inflight_bytes: usize,
    /// Most texts in one embedding request.
    pub max_texts: usize,
    /// Longest wait for a client to read any of an answer.
    pub write_timeout: Duration,
    /// Admission budget in requests.
    pub max_inflight_requests: usize,
    /// Body receive timeout.
    pub body_timeout: Duration,
    /// Minimum body rate in bytes/s after `body_grace` (0: none).
    pub min_body_rate: usize,
    /// Grace period before the body rate counts.
    pub body_grace: Duration,
    /// Wait before a 429 whose large body was not read.
    pub refusal_delay: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Header receive timeout (and keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Bearer tokens file, if authentication is on.
    pub auth_token_file: Option<PathBuf>,
    /// Whether /metrics needs a token too.
    pub metrics_auth: bool,
    /// How often to poll the model files for a reload (`None`: SIGHUP only).
    pub watch: Option<Duration>,
    /// Delay between SIGTERM and closing the listener.
    pub drain_delay: Duration,
    /// Longest wait for in-flight requests at exit.
    pub drain_timeout: Duration,
}

impl std::fmt::Display for Config {
    /// The start-up log line: every setting in the words of its flag.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let models = self
            .models
            .iter()
            .map(|m| format!("{}={} (engine {})", m.name, m.source, m.engine))
            .collect::<Vec<_>>()
            .join(", ");
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        write!(
            f,
            "--listen {} --workers {} --model {models}; --max-batch-rows {} \
             --max-batch-tokens {} --max-texts {} --body-limit {} --max-inflight-bytes {} \
             --max-inflight-requests {} --max-connections {} --header-timeout {} \
             --body-timeout {} --min-body-rate {} --body-grace {} --write-timeout {} \
             --refusal-delay {} --drain-delay {} --drain-timeout {}",
            self.listen,
            self.workers,
            self.max_batch_rows,
            self.engine_options.max_batch_tokens,
            self.max_texts,
            size(self.body_limit),
            size(self.max_inflight_bytes),
            self.max_inflight_requests,
            self.max_connections,
            duration(self.header_timeout),
            duration(self.body_timeout),
            size(self.min_body_rate),
            duration(self.body_grace),
            duration(self.write_timeout),
            duration(self.refusal_delay),
            duration(self.drain_delay),
            duration(self.drain_timeout),
        )?;
        if let Some(path) = &self.engine_options.onnxruntime {
            write!(f, " --onnxruntime {}", path.display())?;
        }
        match &self.auth_token_file {
            Some(path) => write!(f, " --auth-token-file {}", path.display())?,
            None => f.write_str(" (no authentication)")?,
        }
        if self.metrics_auth {
            f.write_str(" --metrics-auth")?;
        }
        if let Some(every) = self.watch {
            write!(f, " --watch {}", duration(every))?;
        }
        Ok(())
    }
}

/// A byte count as `--body-limit` takes it: in KiB, MiB or GiB when whole.
fn size(bytes: usize) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

impl Default for Config {
    /// The configuration of a server started with no flags and no `SCORE_*`
    /// environment: the defaults written once, in [`Args`]' attributes. The
    /// environment is read only by the binary's own `Args::parse`.
    fn default() -> Self {
        let command = Args::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command.get_matches_from(["score-server"]);
        Args::from_arg_matches(&matches)
            .expect("the defaults parse; this is a bug")
            .into_config()
            .expect("the defaults are valid; this is a bug")
    }
}

/// Applies `[NAME=]VALUE` flags (`--engine`, `--pooling`) in order: a bare
/// value to every model, `NAME=VALUE` to the model of that name.
fn per_model<T: std::str::FromStr<Err = String>>(
    flag: &str,
    values: &[String],
    models: &mut [ModelSpec],
    set: impl Fn(&mut ModelSpec, T),
) -> Result<(), String> {
    for given in values {
        let wrong = |e: String| format!("{flag} {given}: {e}");
        match given.split_once('=') {
            None => {
                for m in models.iter_mut() {
                    set(m, given.parse().map_err(wrong)?);
                }
            }
            Some((name, value)) => {
                let model = models
                    .iter_mut()
                    .find(|m| m.name == name)
                    .ok_or_else(|| wrong(format!("no model is named {name:?}")))?;
                set(model, value.parse().map_err(wrong)?);
            }
        }
    }
    Ok(())
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> Result<Config, String> {
        let mut models = if self.models.is_empty() {
            vec![ModelSpec::demo()]
        } else {
            self.models.iter().map(|m| ModelSpec::parse(m)).collect::<Result<Vec<_>, _>>()?
        };
        for (i, m) in models.iter().enumerate() {
            if models[..i].iter().any(|o| o.name == m.name) {
                return Err(format!("two models are named {:?}; use NAME=PATH", m.name));
            }
        }
        per_model("--engine", &self.engines, &mut models, |m, c: EngineChoice| m.engine = c)?;
        per_model("--pooling", &self.poolings, &mut models, |m, p: Pooling| m.pooling = Some(p))?;
        let workers = match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if self.metrics_auth && self.auth_token_file.is_none() {
            return Err("--metrics-auth needs --auth-token-file".into());
        }
        if self.watch.is_some_and(|w| w.is_zero()) {
            return Err("--watch must be a positive interval, e.g. 2s".into());
        }
        if self.max_batch_rows == 0 || self.max_batch_tokens == 0 {
            return Err("--max-batch-rows and --max-batch-tokens must be at least 1".into());
        }
        if self.body_limit == 0
            || self.max_inflight_bytes == 0
            || self.max_inflight_requests == 0
            || self.max_connections == 0
            || self.max_texts == 0
            || self.write_timeout.is_zero()
        {
            return Err("--body-limit, --max-inflight-bytes, --max-inflight-requests, \
                        --max-connections, --max-texts and --write-timeout must be positive"
                .into());
        }
        let engine_options = EngineOptions {
            onnxruntime: self.onnxruntime.clone(),
            max_batch_rows: self.max_batch_rows,
            max_batch_tokens: self.max_batch_tokens,
            ..EngineOptions::default()
        };
        Ok(Config {
            models,
            engine_options,
            listen: self.listen,
            workers,
            max_batch_rows: self.max_batch_rows,
            body_limit: self.body_limit,
            max_inflight_bytes: self.max_inflight_bytes,
            max_texts: self.max_texts,
            write_timeout: self.write_timeout,
            max_inflight_requests: self.max_inflight_requests,
            body_timeout: self.body_timeout,
            min_body_rate: self.min_body_rate,
            body_grace: self.body_grace,
            refusal_delay: self.refusal_delay,
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            auth_token_file: self.auth_token_file,
            metrics_auth: self.metrics_auth,
            watch: self.watch,
            drain_delay: self.drain_delay,
            drain_timeout: self.drain_timeout,
        })
    }
}

/// Parses `65536`, `64K`, `64KiB`, `64M`, `64MiB`, `1G`, `1GiB` (binary
/// multiples either way: a body limit is a memory size).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("{s:?} is not a size like 64MiB"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2k"), Ok(2048));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn defaults_serve_the_demo_model_on_loopback() {
        let config = Config::default();
        assert_eq!(config.models, vec![ModelSpec::demo()]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8099");
        assert!(config.workers >= 1);
        assert_eq!(config.body_limit, 64 << 20);
    }

    #[test]
    fn defaults_ignore_the_environment() {
        temp_env("SCORE_MAX_BATCH_ROWS", "7", || {
            assert_eq!(Config::default().max_batch_rows, 4096);
            let from_env = Args::parse_from(["score-server"]).into_config().expect("valid");
            assert_eq!(from_env.max_batch_rows, 7);
        });
    }

    fn temp_env(key: &str, value: &str, f: impl FnOnce()) {
        // `set_var` is unsafe in edition 2024 (the crate forbids unsafe):
        // run the check in a child process that has the variable instead.
        if std::env::var(key).as_deref() == Ok(value) {
            f();
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let status = std::process::Command::new(exe)
            .args(["--exact", "config::tests::defaults_ignore_the_environment", "--nocapture"])
            .env(key, value)
            .status()
            .expect("run the test binary");
        assert!(status.success());
    }

    #[test]
    fn pooling_flags_go_to_every_model_or_the_named_one() {
        use score_engine::embed::Pooling;
        let args = Args::parse_from([
            "s",
            "--model",
            "a=x/a",
            "--model",
            "b=x/b",
            "--pooling",
            "cls",
            "--pooling",
            "b=last-token",
        ]);
        let config = args.into_config().expect("valid");
        assert_eq!(config.models[0].pooling, Some(Pooling::Cls));
        assert_eq!(config.models[1].pooling, Some(Pooling::LastToken));
        let unknown = Args::parse_from(["s", "--model", "a=x/a", "--pooling", "max"]);
        assert_eq!(
            unknown.into_config().expect_err("unknown pooling"),
            "--pooling max: unknown pooling \"max\": use mean, cls or last-token"
        );
        let nobody = Args::parse_from(["s", "--model", "a=x/a", "--pooling", "c=cls"]);
        assert_eq!(
            nobody.into_config().expect_err("no such model"),
            "--pooling c=cls: no model is named \"c\""
        );
    }

    /// The start-up line speaks the flags' language: no Rust Debug text.
    #[test]
    fn the_start_up_line_is_for_people() {
        let args = Args::parse_from(["s", "--model", "a=x/a.onnx", "--engine", "auto"]);
        let line = args.into_config().expect("valid").to_string();
        assert!(line.contains("--model a=x/a.onnx (engine auto)"), "{line}");
        assert!(line.contains("--body-limit 64MiB"), "{line}");
        assert!(line.contains("--drain-delay 0s"), "{line}");
        assert!(line.contains("--min-body-rate 64KiB"), "{line}");
        for debug in ["Some(", "None", "0ns", "{", "Config"] {
            assert!(!line.contains(debug), "{debug:?} in {line}");
        }
        assert_eq!(size(3), "3");
        assert_eq!(size(1536), "1536");
        assert_eq!(size(2 << 30), "2GiB");
    }

    #[test]
    fn named_models_and_duplicates() {
        let args = Args::parse_from(["s", "--model", "a=x/a.onnx", "--model", "models/b.onnx"]);
        let config = args.into_config().expect("valid");
        assert_eq!(config.models[0].name, "a");
        assert_eq!(config.models[1].name, "b");
        let dup = Args::parse_from(["s", "--model", "x/a.onnx", "--model", "y/a.onnx"]);
        assert!(dup.into_config().unwrap_err().contains("two models"));
    }

    /// The flags table of docs/server.md, from the flags themselves: one
    /// row a flag, its environment variable, default and help text.
    fn flags_markdown() -> String {
        let mut out = String::from("| flag | env | default | meaning |\n|---|---|---|---|\n");
        let command = Args::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let takes_value = arg.get_action().takes_values();
            let flag = match arg.get_value_names() {
                Some(names) if takes_value => format!("`--{long} {}`", names[0]),
                _ if takes_value => format!("`--{long} {}`", long.to_uppercase().replace('-', "_")),
                _ => format!("`--{long}`"),
            };
            let env =
                arg.get_env().map(|e| format!("`{}`", e.to_string_lossy())).unwrap_or_default();
            let default = arg
                .get_default_values()
                .iter()
                .map(|d| format!("`{}`", d.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(", ");
            let help =
                arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
            out.push_str(&format!("| {flag} | {env} | {default} | {help} |\n"));
        }
        out
    }

    /// docs/server.md lists every flag as `score-server --help` has it;
    /// `SCORE_WRITE_DOCS=1 cargo nextest run --workspace -E 'package(score-server)'
    /// and test(flags_table)` rewrites the table after a change.
    #[test]
    fn the_docs_flags_table_is_the_code_s() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/server.md");
        let doc = std::fs::read_to_string(path).expect("docs/server.md");
        let (start, end) = ("<!-- flags table: generated -->\n", "<!-- end of flags table -->");
        let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
            panic!("{path} lacks the flags table markers")
        };
        let table = flags_markdown();
        if std::env::var_os("SCORE_WRITE_DOCS").is_some() {
            let new = format!("{}{table}{}", &doc[..a + start.len()], &doc[b..]);
            std::fs::write(path, new).expect("write the docs");
            return;
        }
        assert_eq!(
            &doc[a + start.len()..b],
            table,
            "{path}'s flags table is out of date: SCORE_WRITE_DOCS=1 cargo nextest run \
             --workspace -E 'test(flags_table)'"
        );
    }
}
