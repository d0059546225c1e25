//! loadgen against the real score-server on 127.0.0.1:0: both modes, the
//! request budget, overload accounting. Short runs: these check the
//! generator's bookkeeping, not the server's speed.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use loadgen::{Args, Report, quantile, run};

struct Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn server(extra: &[&str]) -> Server {
    let model = |name: &str| {
        format!("{name}={}", score_engine::testing::fixture_path(&format!("{name}.onnx")).display())
    };
    let mut argv = vec!["score-server".to_string(), "--model".into(), model("logreg")];
    argv.extend(["--model".into(), model("mlp")]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    let config = score_server::Args::parse_from(argv).into_config().expect("flags");
    let state = score_server::AppState::new(config).expect("models load");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(score_server::server::serve(state, listener, std::future::pending()));
    Server { addr, runtime: Some(rt) }
}

fn load(server: &Server, flags: &[&str]) -> Report {
    let url = format!("http://{}/score", server.addr);
    let mut argv = vec!["loadgen", "--url", &url, "--warmup", "0s"];
    argv.extend(flags);
    let args = Args::parse_from(argv);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&args)).expect("run")
}

#[test]
fn closed_loop_counts_every_answer() {
    let server = server(&[]);
    let report = load(&server, &["--concurrency", "3", "--duration", "1500ms", "--rows", "500"]);
    println!("{report}");
    let ok = report.ok();
    assert!(ok > 0, "{report}");
    assert_eq!(report.statuses.keys().collect::<Vec<_>>(), [&200], "{report}");
    assert_eq!(report.transport_errors + report.wrong_answers + report.dropped, 0);
    assert_eq!(report.latencies_us.len() as u64, ok);
    assert!(report.latencies_us.windows(2).all(|w| w[0] <= w[1]), "latencies sorted");
    let rows_per_sec = report.rows_per_sec();
    let expected = ok as f64 * 500.0 / report.elapsed.as_secs_f64();
    assert!((rows_per_sec - expected).abs() < 1e-6 * expected);
    assert!(report.elapsed >= Duration::from_millis(1500), "{:?}", report.elapsed);
    let json = report.to_json();
    assert_eq!(json["ok"], ok);
    assert_eq!(json["statuses"]["200"], ok);
}

#[test]
fn the_request_budget_stops_the_run() {
    let server = server(&[]);
    let report = load(&server, &["--concurrency", "4", "--requests", "50", "--duration", "60s"]);
    assert_eq!(report.total(), 50, "{report}");
    assert_eq!(report.ok(), 50, "{report}");
    assert!(report.elapsed < Duration::from_secs(30), "stopped at the budget, not the duration");
}

#[test]
fn open_loop_keeps_its_schedule() {
    let server = server(&[]);
    let report = load(&server, &["--rate", "200", "--duration", "2s", "--rows", "100"]);
    println!("{report}");
    // 400 requests are scheduled in 2 s (one every 5 ms); each is sent and
    // answered, or dropped at the in-flight cap (1,024: never here).
    let counted = report.total() + report.dropped;
    assert!((399..=401).contains(&counted), "{report}");
    assert_eq!(report.dropped, 0, "{report}");
    assert_eq!(report.ok(), report.total(), "{report}");
}

#[test]
fn overload_is_reported_by_status_and_kept_out_of_latencies() {
    // One worker, one request admitted at a time, 16 callers of 4 MB each.
    let server = server(&["--workers", "1", "--max-inflight-requests", "1"]);
    let report = load(
        &server,
        &["--model", "mlp", "--rows", "10000", "--concurrency", "16", "--duration", "2s"],
    );
    println!("{report}");
    let refused = report.statuses.get(&429).copied().unwrap_or(0);
    assert!(refused > 0, "no 429 under overload: {report}");
    assert!(report.ok() > 0, "{report}");
    assert_eq!(report.latencies_us.len() as u64, report.ok(), "only ok answers have latencies");
    assert_eq!(report.total(), report.ok() + refused, "{report}");
}

#[test]
fn a_wrong_address_fails_at_once() {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("a").port();
    let args = Args::parse_from(["loadgen", "--url", &format!("http://127.0.0.1:{port}/score")]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let error = rt.block_on(run(&args)).expect_err("nothing listens there");
    assert!(error.to_string().contains("cannot connect"), "{error:#}");
}

#[test]
fn quantiles_use_nearest_rank() {
    let values: Vec<u64> = (1..=100).collect();
    assert_eq!(quantile(&values, 0.5), 50);
    assert_eq!(quantile(&values, 0.99), 99);
    assert_eq!(quantile(&values, 1.0), 100);
    assert_eq!(quantile(&values, 0.0), 1);
    assert_eq!(quantile(&[7], 0.9), 7);
    assert_eq!(quantile(&[], 0.5), 0);
}

#[test]
fn open_loop_drops_what_the_in_flight_cap_refuses() {
    let server = server(&["--workers", "1"]);
    // 4 MB MLP requests every 2 ms with at most 2 in flight: most cannot
    // start on time and are dropped, never queued in the generator.
    let flags = ["--model", "mlp", "--rows", "10000", "--rate", "500", "--max-in-flight", "2"];
    let report = load(&server, &[&flags[..], &["--duration", "1s"]].concat());
    println!("{report}");
    assert!(report.dropped > 0, "{report}");
    assert!((499..=501).contains(&(report.total() + report.dropped)), "{report}");
    assert_eq!(report.ok(), report.total(), "{report}");
}

/// `--format arrow-list` and `arrow-columns` carry the very rows of the
/// binary body (decoded by the server's own Arrow decoder), and the server
/// answers them all.
#[test]
fn arrow_formats_carry_the_binary_rows() {
    use loadgen::{BodyLayout, body_as};
    let binary = body_as(BodyLayout::Binary, 30, 100).expect("binary");
    for layout in [BodyLayout::ArrowList, BodyLayout::ArrowColumns] {
        let arrow = body_as(layout, 30, 100).expect("arrow");
        let (rows, n) = score_server::http::arrow::rows(arrow, 100, None).expect("valid Arrow");
        assert_eq!((rows, n), (binary.clone(), 30), "{layout:?}");
    }
    let server = server(&[]);
    for format in ["arrow-list", "arrow-columns"] {
        let report = load(&server, &["--requests", "20", "--rows", "300", "--format", format]);
        assert_eq!(report.statuses.keys().collect::<Vec<_>>(), [&200], "{format}: {report}");
        assert_eq!(report.ok(), 20, "{format}: {report}");
        assert_eq!(report.transport_errors + report.wrong_answers, 0, "{format}: {report}");
    }
}

/// latency-proxy adds its round-trip time to each request and passes
/// requests and answers through unchanged (loadgen over it and straight).
#[test]
fn the_latency_proxy_adds_its_round_trip_and_changes_nothing_else() {
    use std::io::{BufRead, BufReader};
    let server = server(&[]);
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_latency-proxy"))
        .args(["--upstream", &server.addr.to_string(), "--rtt", "20ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start latency-proxy");
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().expect("stdout")).read_line(&mut line).expect("line");
    let addr = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    let flags = ["--concurrency", "1", "--requests", "20", "--rows", "100"];
    let direct = load(&server, &flags);
    let url = format!("http://{addr}/score");
    let mut argv = vec!["loadgen", "--url", &url, "--warmup", "0s"];
    argv.extend(flags);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let proxied = rt.block_on(run(&Args::parse_from(argv))).expect("run");
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!((proxied.ok(), proxied.wrong_answers), (20, 0), "{proxied:?}");
    assert_eq!((direct.ok(), direct.wrong_answers), (20, 0), "{direct:?}");
    let (p50_direct, p50_proxied) = (direct.quantile(0.5), proxied.quantile(0.5));
    assert!(p50_proxied >= Duration::from_millis(20), "median {p50_proxied:?} through the proxy");
    assert!(
        p50_proxied < p50_direct + Duration::from_millis(40),
        "median {p50_proxied:?} through the proxy, {p50_direct:?} straight"
    );
}
