//! One async runtime and one HTTP connection pool per process, shared by
//! every thread and every client, created lazily and again after `fork`
//! (a forked child inherits neither the runtime's threads nor usable pooled
//! connections: Python's multiprocessing and Spark's worker daemon fork).

use std::sync::{Arc, Mutex};

use tokio::runtime::{Handle, Runtime};

/// The process's runtime handle and HTTP client.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Where requests run.
    pub handle: Handle,
    /// The keep-alive connection pool.
    pub http: reqwest::Client,
}

struct Process {
    pid: u32,
    shared: Shared,
    // Kept alive for the life of the process.
    _runtime: Arc<Runtime>,
}

static PROCESS: Mutex<Option<Process>> = Mutex::new(None);

/// Async threads: they only move bytes, two are plenty for a task slot's
/// worth of requests and leave the cores to the job.
const THREADS: usize = 2;

/// The runtime and pool of this process.
pub fn shared() -> Shared {
    let pid = std::process::id();
    let mut guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref().filter(|p| p.pid == pid) {
        return p.shared.clone();
    }
    if let Some(stale) = guard.take() {
        // Inherited through fork: its threads do not exist here, so it must
        // not be shut down (that would wait for them). Leak it.
        std::mem::forget(stale);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name("stream-client")
        .enable_all()
        .build()
        .expect("cannot start the stream-client runtime: out of threads or memory");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        // A redirect would send the whole body again, to another origin;
        // the client reports it instead (see `client.rs`).
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("the HTTP client has a static configuration; this is a bug");
    let shared = Shared { handle: runtime.handle().clone(), http };
    *guard = Some(Process { pid, shared: shared.clone(), _runtime: Arc::new(runtime) });
    shared
}
