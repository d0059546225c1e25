//! Helpers shared by the tests that run the `score-server` binary
//! (`server.rs`, `fleet.rs`).

use std::process::Command;

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
