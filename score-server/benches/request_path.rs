//! Contention on the per-request path: what one scoring request
//! touches that every other request touches too, driven from N threads at
//! once without sockets, so that serialisation shows even on a 2-core
//! machine.
//!
//! Four parts, each timed alone and then together:
//!
//! - `metrics`: what the server records for one 10-row request
//!   (`observe_http` and `observe_batch`);
//! - `admission`: a 4 KiB body charged, completed and released;
//! - `queue`: a 10-row job through the worker pool (queue, worker hand-off,
//!   model call, reply) with N workers, one caller per worker;
//! - `router`: the whole request through `app(state)` (routing, middleware,
//!   headers, admission, decode, pool, metrics, answer), on a tokio runtime
//!   of N threads with 4·N requests in flight.
//!
//! For each N it prints operations per second and the time one operation
//! costs a thread (N / rate): flat as N grows means no serialisation up to
//! the cores the machine has; above the cores it measures what a
//! preempted lock holder costs the rest. Each point runs for `BENCH_SECONDS`
//! (default 1) and is the best of `REPEAT` (default 3).
//!
//!   cargo bench -p score-server --bench request_path [-- THREADS...]
//!
//! (default threads: 1 2 4 8). `load-tests/contention/run.sh` runs it and
//! keeps its output in `load-tests/contention/results/`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt;
use score_engine::testing::fixture_path;
use score_server::pool::{Input, ScoreJob};
use score_server::{AppState, Args, app};
use tower::ServiceExt;

const ROWS: usize = 10;

fn main() {
    let threads: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let threads = if threads.is_empty() { vec![1, 2, 4, 8] } else { threads };
    let seconds: f64 = env("BENCH_SECONDS", 1.0);
    let repeat: usize = env("REPEAT", 3.0) as usize;
    println!(
        "{} cores; {ROWS}-row requests of the linreg fixture; best of {repeat} x {seconds} s",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<10} {:>3} {:>14} {:>16}", "part", "N", "ops/s", "ns/op/thread");
    for part in ["metrics", "admission", "queue", "router"] {
        for &n in &threads {
            let rate = (0..repeat)
                .map(|_| run(part, n, Duration::from_secs_f64(seconds)))
                .fold(0.0, f64::max);
            println!("{part:<10} {n:>3} {rate:>14.0} {:>16.0}", n as f64 / rate * 1e9);
        }
    }
}

fn env(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A server state serving the linreg fixture with `workers` workers.
fn state(workers: usize) -> Arc<AppState> {
    let model = format!("linreg={}", fixture_path("linreg.onnx").display());
    let workers = workers.to_string();
    let argv = ["score-server", "--model", &model, "--workers", &workers];
    AppState::new(Args::parse_from(argv).into_config().expect("valid flags")).expect("loads")
}

/// Operations per second of `part` from `n` threads for `time`.
fn run(part: &str, n: usize, time: Duration) -> f64 {
    let state = state(n);
    let columns = state.models.get(0).matrix().expect("a matrix model");
    let body = Bytes::from(vec![0u8; ROWS * columns * 4]);
    if part == "router" {
        return router(state, n, body, time);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (state, stop, done, body) =
                (state.clone(), stop.clone(), done.clone(), body.clone());
            let part = part.to_string();
            std::thread::spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..16 {
                        one(&part, &state, &body, &runtime);
                    }
                    ops += 16;
                }
                done.fetch_add(ops, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("bench thread");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn one(part: &str, state: &Arc<AppState>, body: &Bytes, runtime: &tokio::runtime::Runtime) {
    match part {
        "metrics" => {
            let m = &state.metrics;
            m.observe_http("/models/{name}/score", "PUT", 200, Duration::from_micros(80));
            m.observe_batch("linreg", ROWS, 1, Duration::from_micros(20));
        }
        "admission" => {
            let mut charge = state.admission.start_body();
            charge.grow(&state.admission, body.len()).expect("room");
            let permit = charge.complete(&state.admission, body.len(), 0).expect("room");
            black_box(&permit);
        }
        "queue" => {
            let job = ScoreJob {
                model: state.models.get(0),
                outputs: vec![0],
                rows: ROWS,
                input: Input::Matrix(body.clone()),
                deadline: None,
                options: Default::default(),
            };
            black_box(runtime.block_on(state.pool.score(job)).expect("scored"));
        }
        other => unreachable!("{other}"),
    }
}

/// The whole request through the router: `4 n` requests in flight on a
/// runtime of `n` threads.
fn router(state: Arc<AppState>, n: usize, body: Bytes, time: Duration) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let deadline = Instant::now() + time;
        let started = Instant::now();
        let tasks: Vec<_> = (0..4 * n)
            .map(|_| {
                let (state, body) = (state.clone(), body.clone());
                tokio::spawn(async move {
                    let mut ops = 0u64;
                    while Instant::now() < deadline {
                        let request = Request::put("/models/linreg/score")
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .body(Body::from(body.clone()))
                            .expect("request");
                        let response =
                            app(state.clone()).oneshot(request).await.expect("infallible");
                        assert!(response.status().is_success(), "{}", response.status());
                        black_box(response.into_body().collect().await.expect("body").to_bytes());
                        ops += 1;
                    }
                    ops
                })
            })
            .collect();
        let mut ops = 0;
        for t in tasks {
            ops += t.await.expect("task");
        }
        ops as f64 / started.elapsed().as_secs_f64()
    })
}
