//! Servers for the tests: the real score-server in-process and stubs.
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use clap::Parser;
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
    let path = score_server::model::fixture_path(&format!("{model}.onnx"));
    let mut argv = vec!["score-server".to_string(), "--model".into(), path.display().to_string()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let config = score_server::Args::parse_from(argv).into_config().expect("flags");
    let state = score_server::AppState::new(config).expect("model loads");
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
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
