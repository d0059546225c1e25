//! Servers for the tests: the real score-server in-process and stubs.
#![allow(dead_code)]

use std::net::SocketAddr;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, StringArray};
use axum::Router;
use clap::Parser;
use serde_json::Value;
use tokio::runtime::Runtime;

/// A server running on its own runtime; `kill` drops every connection at
/// once, as a crashed process would.
pub struct Running {
    addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The real score-server with a fixture model.
pub fn real_server(model: &str, extra: &[&str]) -> Running {
    real_server_state(model, extra).0
}

/// The real score-server with a fixture model, and its state (to reload
/// its models as SIGHUP does).
pub fn real_server_state(model: &str, extra: &[&str]) -> (Running, Arc<score_server::AppState>) {
    // NAME=DIR (an embedding model's directory) is passed as it is.
    let spec = if model.contains('=') {
        model.to_string()
    } else {
        score_engine::testing::fixture_path(&format!("{model}.onnx")).display().to_string()
    };
    let mut argv = vec!["score-server".to_string(), "--model".into(), spec];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let config = score_server::Args::parse_from(argv).into_config().expect("flags");
    let state = score_server::AppState::new(config).expect("model loads");
    let running = serve_at(state.clone(), "127.0.0.1:0".parse().expect("address"));
    (running, state)
}

/// The real score-server with `state` at `addr` (port 0: a free one); the
/// address of one killed serves again.
pub fn serve_at(state: Arc<score_server::AppState>, addr: SocketAddr) -> Running {
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(score_server::server::serve(state, listener, std::future::pending()));
    Running { addr, runtime: Some(rt) }
}

/// A stub serving `router` at `/score`.
pub fn stub(router: Router) -> Running {
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, router).await });
    Running { addr, runtime: Some(rt) }
}

/// The zoo's mixed-input export's reference rows as columns (an `id`, then
/// the inputs in another order than the model's, as a DataFrame may hold
/// them) and onnxruntime's probabilities, row-major.
pub fn mixed_reference() -> (Vec<(String, ArrayRef)>, Vec<f32>) {
    let path = score_engine::testing::fixture_path("zoo/mixed-logreg.reference.json");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON");
    let values = |name: &str| v["inputs"][name]["values"].as_array().expect("values").clone();
    let floats = |name: &str| -> ArrayRef {
        Arc::new(Float32Array::from_iter_values(
            values(name).iter().map(|x| x.as_f64().expect("float") as f32),
        ))
    };
    let strings = |name: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            values(name).iter().map(|x| x.as_str().expect("string").to_string()),
        ))
    };
    let rows = values("age").len();
    let columns = vec![
        ("id".to_string(), Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef),
        ("plan".into(), strings("plan")),
        ("age".into(), floats("age")),
        ("city".into(), strings("city")),
        ("income".into(), floats("income")),
        (
            "visits".into(),
            Arc::new(Int64Array::from_iter_values(
                values("visits").iter().map(|x| x.as_i64().expect("int")),
            )),
        ),
    ];
    let expected = v["outputs"]["probabilities"]["values"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("p") as f32))
        .collect();
    (columns, expected)
}
