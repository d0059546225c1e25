//! `latency-proxy`: a TCP proxy that adds a fixed round-trip time between
//! its clients and one upstream, for benchmarks over a "network" on one
//! machine (the kernel's netem is not available here).
//!
//! Every chunk read from either side is written to the other side half the
//! round-trip time after it arrived, in order: a request and its answer
//! together take `--rtt` longer, whatever their size, and bytes keep
//! flowing meanwhile (a delay line, not a stall: throughput is not capped,
//! as on a long fat link). Connections are proxied one to one, so HTTP
//! keep-alive behaves as it would across a network.
//!
//! `latency-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:8099 --rtt 2ms`
//! prints `listening on ADDR` once ready, then runs until killed.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "TCP proxy adding a fixed round-trip time (a delay line each way).")]
struct Args {
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to forward.
    #[arg(long)]
    upstream: SocketAddr,
    /// Round-trip time added (e.g. 2ms, 10ms): half on each direction.
    #[arg(long, value_parser = humantime::parse_duration)]
    rtt: Duration,
}

/// Chunks in flight per direction before reading pauses: bounds memory to
/// this many reads (64 KiB each) per connection and direction.
const IN_FLIGHT_CHUNKS: usize = 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let one_way = args.rtt / 2;
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(upstream).await {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    delay_line(client_read, server_write, one_way),
                    delay_line(server_read, client_write, one_way),
                );
            }
        });
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; the end of
/// `from` (or an error) is passed on after the chunks before it.
async fn delay_line(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
