//! Model metadata, health, readiness and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use score_protocol::models::{ModelDoc, ModelList};

use super::pipeline::ModelName;
use crate::error::ApiError;
use crate::state::AppState;
use score_engine::Model;

fn doc(model: &Model, default: bool) -> ModelDoc {
    ModelDoc {
        name: model.name.clone(),
        version: model.version.clone(),
        default,
        source: model.source.to_string(),
        input: model.inputs[0].clone(),
        inputs: model.inputs.clone(),
        outputs: model.outputs.clone(),
        default_output: model.outputs[model.default_output].name.clone(),
        score_url: format!("/models/{}/score", model.name),
        engine: Some(model.engine().to_string()),
        engine_reason: Some(model.engine_reason.clone()),
        loaded_at: Some(humantime::format_rfc3339_seconds(model.loaded_at).to_string()),
    }
}

/// `GET /models`.
pub async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    let models = state.models.list().iter().enumerate().map(|(i, m)| doc(m, i == 0)).collect();
    Json(ModelList { models }).into_response()
}

/// `GET /models/{name}`.
pub async fn model_info(
    State(state): State<Arc<AppState>>,
    ModelName(name): ModelName,
) -> Result<Response, ApiError> {
    let ix = state.model_index(&name)?;
    Ok(Json(doc(&state.models.get(ix), ix == 0)).into_response())
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
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(score_protocol::media::OPENMETRICS));
    response
}

/// The protocol's OpenAPI description (`docs/openapi.yaml`, as JSON).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(score_protocol::media::JSON));
    response
}
