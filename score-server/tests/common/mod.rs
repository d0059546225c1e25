//! Helpers shared by the tests that run the `score-server` binary
//! (`server.rs`, `hostile.rs`, `fleet.rs`, `docker.rs`), in [`jobs`] those
//! of the tests that run scoring jobs, and in [`router`] those of the tests
//! that drive the router without a socket.
#![allow(dead_code)]

pub mod jobs;
pub mod router;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use score_engine::testing::fixture_path;

/// Sends signal `name` (e.g. `TERM`) to `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.expect("run kill").success(), "kill -{name} {pid} failed");
}

/// A KiB field of `/proc/PID/status`, e.g. `VmHWM` (peak RSS) or `VmRSS`.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A running server process; killed on drop if still alive.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(models: &[&str], extra: &[&str]) -> Server {
        Self::start_with(models, extra, |cmd| cmd)
    }

    /// Starts the server through `wrap` (e.g. under a shell that lowers
    /// its limits).
    pub fn start_with(
        models: &[&str],
        extra: &[&str],
        wrap: impl FnOnce(Command) -> Command,
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_score-server"));
        cmd.args(["--listen", "127.0.0.1:0"]);
        for m in models {
            cmd.arg("--model").arg(format!("{m}={}", fixture_path(&format!("{m}.onnx")).display()));
        }
        cmd.args(extra);
        let mut cmd = wrap(cmd);
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn score-server");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) =
                    line.split("address=").nth(1).filter(|_| line.contains(" listening "))
                {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_string());
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("server did not start: {:?}", log.lock().expect("log lock"))
        });
        Server { child, base: format!("http://{addr}"), log }
    }

    /// Log lines containing `text` so far.
    pub fn log_lines(&self, text: &str) -> usize {
        self.log.lock().expect("log lock").iter().filter(|l| l.contains(text)).count()
    }

    /// Kills the process now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Peak and current resident memory in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.id();
        (proc_status_kib(pid, "VmHWM"), proc_status_kib(pid, "VmRSS"))
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
