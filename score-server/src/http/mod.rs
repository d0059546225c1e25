//! The HTTP interface: routes, middleware and the error fallbacks.

pub mod arrow;
pub mod body;
mod control;
mod embed;
pub mod held;
mod json_rows;
mod layers;
mod pipeline;
mod score;
pub mod stall;
mod v2;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::middleware::{self};
use axum::response::IntoResponse;
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
        // TEI endpoints take /embed's body at the root: huggingface_hub's
        // InferenceClient posts there when given a base URL.
        .route("/", post(embed::embed))
        .route("/v1/embeddings", post(embed::openai_embeddings))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/repository/index", post(v2::repository_index))
        .route("/v2/models/{name}", get(v2::model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(v2::model_metadata))
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/config", get(v2::model_config))
        .route("/v2/models/{name}/versions/{version}/config", get(v2::model_config))
        .route("/v2/models/{name}/infer", post(v2::infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(v2::infer))
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
                .layer(middleware::from_fn_with_state(state.clone(), layers::observe))
                .layer(middleware::from_fn_with_state(state.clone(), layers::authenticate))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("a request handler panicked".into()).into_response()
                }))
                .layer(TraceLayer::new_for_http()),
        )
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
