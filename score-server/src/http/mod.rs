//! The HTTP interface: routes, middleware and the error fallbacks.

pub mod arrow;
pub mod body;
mod control;
mod embed;
pub mod held;
mod json_rows;
mod score;
pub mod stall;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use score::ScoreParams;

use crate::error::ApiError;
use crate::state::AppState;

/// The router, with its middleware. Public so tests can drive it without a
/// socket (`tower::ServiceExt::oneshot`).
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/score", put(score::score_default).post(score::score_default))
        .route("/models/{name}/score", put(score::score_named).post(score::score_named))
        .route("/embed", post(embed::embed))
        .route("/v1/embeddings", post(embed::openai_embeddings))
        .route("/models", get(control::list_models))
        .route("/models/{name}", get(control::model_info))
        .route("/healthz", get(control::healthz))
        .route("/readyz", get(control::readyz))
        .route("/metrics", get(control::metrics))
        .route("/openapi.json", get(control::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outermost first: an answer sent before its request body was read
        // (any refusal, the 401s included) closes the connection and the
        // body is thrown away in the background; metrics see every answer,
        // including the 401s and the 500 the panic catcher makes; the
        // trace span covers the handler.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(state.clone(), held::close_unread))
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                .layer(middleware::from_fn_with_state(state.clone(), authenticate))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("a request handler panicked".into()).into_response()
                }))
                .layer(TraceLayer::new_for_http()),
        )
        .with_state(state)
}

/// The `{name}` of a model route. axum's own rejection is plain text; a
/// name that is not UTF-8 (`%ff%fe`) gets the protocol's JSON 400 instead.
pub struct ModelName(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ModelName {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(name)) => Ok(ModelName(name)),
            Err(e) => Err(ApiError::BadParameter(format!(
                "the model name in {} is not valid: {}",
                parts.uri.path(),
                e.body_text()
            ))),
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Refuses requests without an accepted bearer token, when authentication
/// is on. Probes stay open; /metrics unless --metrics-auth.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(auth) = &state.auth {
        let open = match request.uri().path() {
            "/healthz" | "/readyz" | "/openapi.json" => true,
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
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
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
