//! Client-side cost per row: encoding rows into request bodies, and the
//! whole client path (batching, HTTP, ordering, decoding) against a server
//! that answers instantly, so what is measured is the client.
//!
//! `cargo bench -p stream-client --bench client_cost`

use std::hint::black_box;

use axum::Router;
use axum::body::Bytes;
use axum::response::IntoResponse;
use axum::routing::put;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stream_client::{Batcher, Client, ClientConfig};

const COLUMNS: usize = 100;
const ROWS: usize = 65_536;

fn rows() -> Vec<Vec<f32>> {
    (0..ROWS).map(|i| (0..COLUMNS).map(|j| (i * COLUMNS + j) as f32 * 1e-4).collect()).collect()
}

fn encode(c: &mut Criterion) {
    let input = rows();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("batcher_100_columns", |b| {
        b.iter(|| {
            let mut batcher = Batcher::new(COLUMNS, 4096, 16 << 20);
            let mut bytes = 0;
            for row in &input {
                if let Some(batch) = batcher.push_row(row).expect("width") {
                    bytes += batch.body.len();
                }
            }
            black_box(bytes)
        })
    });
    group.finish();
}

/// A server that answers one float per row at once.
fn instant_server() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = Router::new().route(
        "/score",
        put(|body: Bytes| async move {
            let rows = body.len() / (COLUMNS * 4);
            (
                [("x-score-columns", "1".to_string()), ("x-score-rows", rows.to_string())],
                vec![0u8; rows * 4],
            )
                .into_response()
        }),
    );
    rt.spawn(async move { axum::serve(listener, router).await });
    (url, rt)
}

fn end_to_end(c: &mut Criterion) {
    let input = rows();
    let (url, _rt) = instant_server();
    let mut group = c.benchmark_group("client_path");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    for in_flight in [1, 4] {
        let mut config = ClientConfig::new([url.clone()], COLUMNS);
        config.in_flight = in_flight;
        let client = Client::new(config).expect("config");
        group.bench_function(format!("instant_server_in_flight_{in_flight}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for batch in client.score_rows(input.iter()) {
                    n += batch.expect("scored").rows;
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, end_to_end);
criterion_main!(benches);
