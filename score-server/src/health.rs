//! `score-server --health-check`: the container HEALTHCHECK's probe, with
//! nothing but the standard library (the runtime image has no curl).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long the probe waits in all: connect, send, and the answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Where to reach a server listening on `listen`: the address itself, or
/// loopback when it listens on every interface (0.0.0.0 or [::]).
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` on the server listening at `listen`: `Ok` when it answers
/// 200 within `timeout`, else why not. A server that accepts the connection
/// but does not answer (hung, or stopped) fails by the timeout.
pub fn check(listen: SocketAddr, timeout: Duration) -> Result<(), String> {
    let addr = probe_address(listen);
    let start = Instant::now();
    let left = || timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    // The status line is all that matters; a hung server sends nothing.
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') {
        stream.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("no answer from {addr} within {timeout:?}"));
            }
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
        if start.elapsed() >= timeout {
            return Err(format!("no answer from {addr} within {timeout:?}"));
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let status = line.lines().next().unwrap_or("").trim();
    if status.split(' ').nth(1) == Some("200") {
        Ok(())
    } else if status.is_empty() {
        Err(format!("{addr} closed the connection without answering"))
    } else {
        Err(format!("{addr} answered {status:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn every_interface_is_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8099".parse().expect("addr");
        assert_eq!(probe_address(any), "127.0.0.1:8099".parse().expect("addr"));
        let any6: SocketAddr = "[::]:8099".parse().expect("addr");
        assert_eq!(probe_address(any6), "[::1]:8099".parse().expect("addr"));
        let one: SocketAddr = "10.1.2.3:80".parse().expect("addr");
        assert_eq!(probe_address(one), one);
    }

    #[test]
    fn a_listener_that_never_answers_fails_by_the_timeout() {
        // Accepted by the kernel's backlog, never read: a hung server.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let start = Instant::now();
        let err = check(addr, Duration::from_millis(300)).expect_err("no answer");
        assert!(err.contains("no answer"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn a_closed_port_fails_at_once() {
        let addr = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let err = check(addr, TIMEOUT).expect_err("closed");
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[test]
    fn only_200_is_healthy() {
        for (answer, healthy) in
            [("HTTP/1.1 200 OK\r\n\r\n", true), ("HTTP/1.1 503 Service Unavailable\r\n\r\n", false)]
        {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                conn.write_all(answer.as_bytes()).expect("write");
            });
            assert_eq!(check(addr, TIMEOUT).is_ok(), healthy, "{answer:?}");
            server.join().expect("server thread");
        }
    }
}
