//! Model metadata, health, readiness and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::model::{InputInfo, Model, OutputInfo};
use crate::state::AppState;

/// A model as `GET /models/{name}` describes it.
#[derive(Serialize)]
pub struct ModelDoc<'a> {
    /// Serving name.
    pub name: &'a str,
    /// Content hash.
    pub version: &'a str,
    /// Whether `/score` serves it.
    pub default: bool,
    /// Where it was loaded from.
    pub source: String,
    /// The input.
    pub input: &'a InputInfo,
    /// The outputs.
    pub outputs: &'a [OutputInfo],
    /// The output served when `?output=` is absent.
    pub default_output: &'a str,
    /// The scoring route.
    pub score_url: String,
}

fn doc(model: &Model, default: bool) -> ModelDoc<'_> {
    ModelDoc {
        name: &model.name,
        version: &model.version,
        default,
        source: model.source.to_string(),
        input: &model.input,
        outputs: &model.outputs,
        default_output: &model.outputs[model.default_output].name,
        score_url: format!("/models/{}/score", model.name),
    }
}

/// `GET /models`.
pub async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    let models: Vec<ModelDoc> =
        state.models.iter().enumerate().map(|(i, m)| doc(m, i == 0)).collect();
    Json(serde_json::json!({ "models": models })).into_response()
}

/// `GET /models/{name}`.
pub async fn model_info(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let ix = state.model_index(&name)?;
    Ok(Json(doc(&state.models[ix], ix == 0)).into_response())
}

/// `GET /healthz`: the process is alive. Constant time, touches no queue.
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: models loaded and not draining.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Draining);
    }
    Ok(Json(serde_json::json!({ "status": "ready", "models": state.models.len() })).into_response())
}

/// `GET /metrics`: Prometheus (OpenMetrics text).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.refresh_gauges();
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
