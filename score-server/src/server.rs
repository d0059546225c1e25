//! The accept loop: HTTP/1.1 connections with header timeouts, and the
//! graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::app;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` resolves, then drains:
/// readiness fails and new scoring requests get 503 for `drain_delay` while
/// the listener still accepts (so load balancers notice), then the listener
/// closes and in-flight requests get up to `drain_timeout` to finish.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(state.config.header_timeout).keep_alive(true);

    // Always listening: without a handler SIGHUP's default action would
    // kill the server, a surprise for an operator who sends it by habit.
    // Registered before "listening" is logged, so a signal sent as soon as
    // the server says it is up finds the handler in place.
    tokio::spawn(reload_on_sighup(state.clone(), hangup_signal()));
    if let Some(every) = state.config.watch {
        tokio::spawn(watch(state.clone(), every));
    }
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, workers = state.pool.workers(), "listening");
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut drain_delay: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // The connection cap: a permit per open connection. At the cap the
    // server stops accepting (new connections wait in the kernel's backlog)
    // instead of running out of file descriptors.
    let connections = Arc::new(Semaphore::new(state.config.max_connections));
    let mut accept_errors = AcceptErrors::default();
    loop {
        tokio::select! {
            accepted = accept(&listener, &connections) => {
                let (stream, peer, permit) = match accepted {
                    Ok(accepted) => {
                        accept_errors.reset();
                        accepted
                    }
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning,
                        // and say so without flooding the log.
                        let wait = accept_errors.failed(&e);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let stream = crate::http::stall::StallLimited::new(stream, state.config.write_timeout);
                let connection = http.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(router.clone()),
                );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown, if drain_delay.is_none() => {
                tracing::info!(delay = %humantime::format_duration(state.config.drain_delay), "shutdown requested: draining");
                state.start_draining();
                drain_delay = Some(Box::pin(tokio::time::sleep(state.config.drain_delay)));
            }
            () = async { drain_delay.as_mut().expect("guarded by the select condition").await },
                if drain_delay.is_some() => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(connections = open, "listener closed, waiting for in-flight requests");
    if tokio::time::timeout(state.config.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = %humantime::format_duration(state.config.drain_timeout), "drain timed out; exiting with requests in flight");
    } else {
        tracing::info!("drained");
    }
    Ok(())
}

/// The SIGHUP stream, registered now (`None`, logged, if it cannot be).
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot listen for SIGHUP; nothing will reload");
        })
        .ok()
}

/// Longest wait for the token file at SIGHUP.
const TOKEN_FILE_TIMEOUT: Duration = Duration::from_secs(5);

/// On every SIGHUP re-reads the token file and every model's files
/// ([`crate::reload`]); a file that cannot be used leaves what was in use.
async fn reload_on_sighup(state: Arc<AppState>, hup: Option<tokio::signal::unix::Signal>) {
    let Some(mut hup) = hup else { return };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        if state.auth.is_some() {
            // Off the I/O threads, and not waited on for long: the file is
            // the operator's, on whatever file system it lives.
            let reading = state.clone();
            let read =
                tokio::task::spawn_blocking(move || reading.auth.as_ref().map(|a| a.reload()));
            match tokio::time::timeout(TOKEN_FILE_TIMEOUT, read).await {
                Ok(Ok(Some(Ok(tokens)))) => tracing::info!(tokens, "auth tokens reloaded"),
                Ok(Ok(Some(Err(e)))) => {
                    tracing::error!(error = %e, "auth tokens not reloaded; the old ones stay")
                }
                Ok(_) => tracing::error!("auth token reload failed; the old ones stay"),
                Err(_) => {
                    tracing::error!(timeout = %humantime::format_duration(TOKEN_FILE_TIMEOUT),
                    "the auth token file did not read in time; the old tokens stay")
                }
            }
        }
        let state = state.clone();
        let reloaded = tokio::task::spawn_blocking(move || state.models.reload(&state.metrics));
        if let Err(e) = reloaded.await {
            tracing::error!(error = %e, "model reload failed");
        }
    }
}

/// Waits for a connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, OwnedSemaphorePermit)> {
    let permit = connections.clone().acquire_owned().await.expect("the semaphore is never closed");
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

/// Accept failures in a row: the backoff before the next try, and a log
/// line at most every [`AcceptErrors::LOG_EVERY`].
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    unlogged: u64,
    last_log: Option<std::time::Instant>,
}

impl AcceptErrors {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Self::LOG_EVERY) {
            tracing::warn!(error = %e, failures = self.unlogged,
                "accept failed (out of file descriptors? lower --max-connections or raise ulimit -n)");
            self.unlogged = 0;
            self.last_log = Some(std::time::Instant::now());
        }
        // 10 ms doubling to 1 s.
        Duration::from_millis(10u64 << self.in_a_row.min(7)).min(Duration::from_secs(1))
    }

    fn reset(&mut self) {
        self.in_a_row = 0;
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Reloads every time a model's files change, checking every `every`
/// (`--watch`). A file caught half-written fails to load and is retried at
/// the next change; the old version serves meanwhile.
pub async fn watch(state: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let state = state.clone();
        let changed = tokio::task::spawn_blocking(move || {
            state.models.files_changed() && {
                state.models.reload(&state.metrics);
                true
            }
        })
        .await;
        if let Err(e) = changed {
            tracing::error!(error = %e, "model watch failed");
        }
    }
}
