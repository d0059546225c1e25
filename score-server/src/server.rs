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

    let mut shutdown = std::pin::pin!(shutdown);
    let mut drain_delay: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = http.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(router.clone()),
                );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown, if drain_delay.is_none() => {
                tracing::info!(delay = ?state.config.drain_delay, "shutdown requested: draining");
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
        tracing::warn!(timeout = ?state.config.drain_timeout, "drain timed out; exiting with requests in flight");
    } else {
        tracing::info!("drained");
    }
    Ok(())
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
