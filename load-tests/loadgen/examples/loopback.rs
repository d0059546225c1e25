//! The ceiling for serving on this machine: the same request and answer
//! bytes moved over loopback TCP with no HTTP and no model. A server thread
//! per connection reads REQUEST bytes and writes ANSWER bytes back; each
//! client thread sends and reads in a loop for SECONDS.
//!
//! `cargo run --release -p loadgen --example loopback -- REQUEST_BYTES ANSWER_BYTES CONCURRENCY SECONDS`
//! prints one JSON object (requests/s).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let [request, answer, concurrency, seconds] = args[..] else {
        anyhow::bail!("usage: loopback REQUEST_BYTES ANSWER_BYTES CONCURRENCY SECONDS");
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, request, answer));
        }
    });
    let stop = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut stream = TcpStream::connect(address)?;
                stream.set_nodelay(true)?;
                let body = vec![7u8; request];
                let mut back = vec![0u8; answer];
                let mut done = 0;
                while Instant::now() < stop {
                    stream.write_all(&body)?;
                    stream.read_exact(&mut back)?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"requests_per_s": total as f64 / secs, "requests": total, "seconds": secs})
    );
    Ok(())
}

fn serve(mut stream: TcpStream, request: usize, answer: usize) {
    let _ = stream.set_nodelay(true);
    let mut body = vec![0u8; request];
    let back = vec![1u8; answer];
    while stream.read_exact(&mut body).is_ok() {
        if stream.write_all(&back).is_err() {
            return;
        }
    }
}
