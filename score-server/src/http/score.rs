//! `PUT /score` and `PUT /models/{name}/score`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::{self, Format};
use crate::error::ApiError;
use crate::pool::{ScoreJob, Scored};
use crate::state::AppState;

/// Response header: rows in the answer.
pub const ROWS_HEADER: &str = "x-score-rows";
/// Response header: floats per row in the answer.
pub const COLUMNS_HEADER: &str = "x-score-columns";
/// Response header: the model's content hash.
pub const VERSION_HEADER: &str = "x-model-version";
/// Response header: the output served.
pub const OUTPUT_HEADER: &str = "x-score-output";
/// Response header: longest queue wait of the request's chunks, ms.
pub const QUEUE_HEADER: &str = "x-score-queue-ms";
/// Response header: model time summed over the chunks, ms.
pub const COMPUTE_HEADER: &str = "x-score-compute-ms";

/// Query parameters of a scoring request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreParams {
    /// Output to return instead of the default one.
    pub output: Option<String>,
}

#[derive(Serialize)]
struct JsonAnswer<'a> {
    model: &'a str,
    version: &'a str,
    output: &'a str,
    rows: usize,
    columns: usize,
    outputs: Vec<&'a [f32]>,
}

/// Scores with the default model.
pub async fn score_default(
    State(state): State<Arc<AppState>>,
    params: Result<Query<ScoreParams>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    score(state, 0, params, request).await
}

/// Scores with the named model.
pub async fn score_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: Result<Query<ScoreParams>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let model = state.model_index(&name)?;
    score(state, model, params, request).await
}

async fn score(
    state: Arc<AppState>,
    model_ix: usize,
    params: Result<Query<ScoreParams>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    if state.is_draining() {
        state.metrics.reject("draining");
        return Err(ApiError::Draining);
    }
    let model = state.models[model_ix].clone();
    let Query(params) = params.map_err(|e| ApiError::BadParameter(e.body_text()))?;
    let output = match &params.output {
        None => model.default_output,
        Some(name) => model.output_index(name).ok_or_else(|| ApiError::UnknownOutput {
            model: model.name.clone(),
            output: name.clone(),
            available: model.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "),
        })?,
    };

    let (parts, mut request_body) = request.into_parts();
    let format = body::format(&parts.headers)?;
    let columns = model.input.columns;
    body::check_columns(&parts.headers, &model.name, columns)?;
    let deadline = body::deadline(&parts.headers, arrival)?;
    let declared = body::content_length(&parts.headers)?;
    let limit = state.config.body_limit;
    let timeout = state.config.body_timeout;
    if declared.is_some_and(|len| len > limit) {
        body::discard(&mut request_body, limit, timeout).await;
        return Err(ApiError::PayloadTooLarge { limit });
    }

    // Without a Content-Length the body may be as large as the limit: admit
    // that much, and give the rest back once it is read.
    let mut permit = match state.admission.try_admit(declared.unwrap_or(limit)) {
        Ok(permit) => permit,
        Err(_) => {
            state.metrics.reject("overloaded");
            let retry_after = state.retry_after();
            if !body::expects_continue(&parts.headers) {
                body::discard(&mut request_body, limit, timeout).await;
            }
            return Err(ApiError::Overloaded { retry_after });
        }
    };
    let bytes = match body::read(&mut request_body, declared.unwrap_or(0), limit, timeout).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if matches!(e, ApiError::PayloadTooLarge { .. }) {
                body::discard(&mut request_body, limit, timeout).await;
            }
            return Err(e);
        }
    };
    permit.shrink_to(bytes.len());

    let (input, rows) = match format {
        Format::Binary => {
            let rows = body::binary_rows(&bytes, columns)?;
            (bytes, rows)
        }
        Format::Json => body::json_rows(&bytes, columns)?,
    };
    let scored = if rows == 0 {
        Scored {
            data: Vec::new(),
            columns: model.outputs[output].columns,
            queue_time: Duration::ZERO,
            compute_time: Duration::ZERO,
        }
    } else {
        state
            .pool
            .score(ScoreJob { model: model_ix, output, rows, input, deadline })
            .await
            .inspect_err(|e| {
                if matches!(e, crate::pool::ComputeError::DeadlineExceeded) {
                    state.metrics.reject("deadline");
                }
            })?
    };
    let output_name = &model.outputs[output].name;
    let mut response = match format {
        Format::Binary => {
            let mut r = scored.data.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r
        }
        Format::Json => {
            let floats: Vec<f32> = scored
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Json(JsonAnswer {
                model: &model.name,
                version: &model.version,
                output: output_name,
                rows,
                columns: scored.columns,
                outputs: floats.chunks(scored.columns.max(1)).collect(),
            })
            .into_response()
        }
    };
    drop(permit);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(ROWS_HEADER, rows.to_string());
    set(COLUMNS_HEADER, scored.columns.to_string());
    set(VERSION_HEADER, model.version.clone());
    set(OUTPUT_HEADER, output_name.clone());
    set(QUEUE_HEADER, format!("{:.3}", scored.queue_time.as_secs_f64() * 1e3));
    set(COMPUTE_HEADER, format!("{:.3}", scored.compute_time.as_secs_f64() * 1e3));
    Ok(response)
}
