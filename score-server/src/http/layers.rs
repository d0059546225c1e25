//! The middleware every route runs through (see the order in
//! [`super::app`]): bearer authentication and the per-route metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Refuses requests without an accepted bearer token, when authentication
/// is on. Probes stay open; /metrics unless --metrics-auth.
pub(super) async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(auth) = &state.auth {
        let open = match request.uri().path() {
            "/healthz" | "/readyz" | "/openapi.json" | "/v2/health/live" | "/v2/health/ready" => {
                true
            }
            "/metrics" => !state.config.metrics_auth,
            _ => false,
        };
        let token = request.headers().get(axum::http::header::AUTHORIZATION);
        if !open && !auth.allows(token.map(|v| v.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Counts requests and latency by route template.
pub(super) async fn observe(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    // Extension methods are caller-chosen strings: fold them into one label.
    let method = match *request.method() {
        Method::GET
        | Method::PUT
        | Method::POST
        | Method::HEAD
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str().to_string(),
        _ => "other".to_string(),
    };
    let response = next.run(request).await;
    state.metrics.observe_http(&route, &method, response.status().as_u16(), started.elapsed());
    response
}
