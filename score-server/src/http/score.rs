//! `PUT /score` and `PUT /models/{name}/score`, one function per step:
//! [`ScoreParams::parse`] the query, [`Head::parse`] the headers,
//! [`admit_and_read`] the body under admission, [`decode`] the rows,
//! [`dispatch`] them to the workers, [`answer`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use score_protocol::media::BodyFormat;
use score_protocol::models::JsonScores;
use score_protocol::{codec, headers, media};

use super::body;
use crate::admission::Permit;
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::model::Model;
use crate::pool::{ComputeError, ScoreJob, Scored};
use crate::state::AppState;

/// Query parameters of a scoring request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScoreParams {
    /// Output to return instead of the default one.
    pub output: Option<String>,
}

impl ScoreParams {
    /// Parses the query string. Only `output` is known: anything else is a
    /// mistake worth a clear 400 rather than being ignored.
    pub fn parse(query: Option<&str>) -> Result<ScoreParams, ApiError> {
        let mut params = ScoreParams::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "output" if params.output.is_none() => params.output = Some(value.into_owned()),
                "output" => {
                    return Err(ApiError::BadParameter(
                        "query parameter \"output\" is given twice; name one output".into(),
                    ));
                }
                other => {
                    return Err(ApiError::BadParameter(format!(
                        "unknown query parameter {other:?}; the scoring routes take only \
                         ?output=NAME"
                    )));
                }
            }
        }
        Ok(params)
    }
}

/// Scores with the default model.
pub async fn score_default(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    score(state, 0, query, request).await
}

/// Scores with the named model.
pub async fn score_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let model = state.model_index(&name)?;
    score(state, model, query, request).await
}

async fn score(
    state: Arc<AppState>,
    model_ix: usize,
    query: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    if state.is_draining() {
        state.metrics.reject(Rejection::draining);
        return Err(ApiError::Draining);
    }
    let model = state.models[model_ix].clone();
    let params = ScoreParams::parse(query.as_deref())?;
    let output = output_index(&model, params.output.as_deref())?;
    let (parts, mut request_body) = request.into_parts();
    let head = Head::parse(&parts.headers, &model, arrival)?;
    let (bytes, permit) = admit_and_read(&state, &head, &mut request_body).await?;
    let (input, rows) = decode(head.format, bytes, model.input.columns)?;
    let scored = dispatch(
        &state,
        ScoreJob { model: model_ix, output, rows, input, deadline: head.deadline },
    )
    .await?;
    let response = answer(&model, output, head.format, rows, scored);
    drop(permit);
    Ok(response)
}

/// What the headers say about the body.
struct Head {
    format: BodyFormat,
    deadline: Option<Instant>,
    declared: Option<usize>,
    expects_continue: bool,
}

impl Head {
    fn parse(headers: &HeaderMap, model: &Model, arrival: Instant) -> Result<Head, ApiError> {
        let format = body::format(headers)?;
        body::check_columns(headers, &model.name, model.input.columns)?;
        Ok(Head {
            format,
            deadline: body::deadline(headers, arrival)?,
            declared: body::content_length(headers)?,
            expects_continue: body::expects_continue(headers),
        })
    }
}

/// The output `?output=` names, or the model's default.
fn output_index(model: &Model, name: Option<&str>) -> Result<usize, ApiError> {
    match name {
        None => Ok(model.default_output),
        Some(name) => model.output_index(name).ok_or_else(|| ApiError::UnknownOutput {
            model: model.name.clone(),
            output: name.to_string(),
            available: model.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Admits the request (429 at once when the budget is spent) and reads its
/// body under the limit and the timeout. A refused body is read and thrown
/// away (in constant memory) so the client reads the answer, not a reset.
async fn admit_and_read(
    state: &AppState,
    head: &Head,
    request_body: &mut Body,
) -> Result<(Bytes, Permit), ApiError> {
    let limit = state.config.body_limit;
    let timeout = state.config.body_timeout;
    if head.declared.is_some_and(|len| len > limit) {
        body::discard(request_body, limit, timeout).await;
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Without a Content-Length the body may be as large as the limit: admit
    // that much, and give the rest back once it is read.
    let mut permit = match state.admission.try_admit(head.declared.unwrap_or(limit)) {
        Ok(permit) => permit,
        Err(_) => {
            state.metrics.reject(Rejection::overloaded);
            let retry_after = state.retry_after();
            if !head.expects_continue {
                body::discard(request_body, limit, timeout).await;
            }
            return Err(ApiError::Overloaded { retry_after });
        }
    };
    let bytes = match body::read(request_body, head.declared.unwrap_or(0), limit, timeout).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if matches!(e, ApiError::PayloadTooLarge { .. }) {
                body::discard(request_body, limit, timeout).await;
            }
            return Err(e);
        }
    };
    permit.shrink_to(bytes.len());
    Ok((bytes, permit))
}

/// The rows of a body, as float32 little-endian bytes, and their count.
fn decode(format: BodyFormat, bytes: Bytes, columns: usize) -> Result<(Bytes, usize), ApiError> {
    match format {
        BodyFormat::Binary => {
            let rows = body::binary_rows(&bytes, columns)?;
            Ok((bytes, rows))
        }
        BodyFormat::Json => body::json_rows(&bytes, columns),
    }
}

/// Scores the rows on the worker pool (nothing for no rows).
async fn dispatch(state: &AppState, job: ScoreJob) -> Result<Scored, ApiError> {
    if job.rows == 0 {
        let columns = state.models[job.model].outputs[job.output].columns;
        return Ok(Scored {
            data: Vec::new(),
            columns,
            queue_time: Duration::ZERO,
            compute_time: Duration::ZERO,
        });
    }
    let scored = state.pool.score(job).await;
    if matches!(scored, Err(ComputeError::DeadlineExceeded)) {
        state.metrics.reject(Rejection::deadline);
    }
    Ok(scored?)
}

/// The answer in the request's format, with the protocol's headers.
fn answer(
    model: &Model,
    output: usize,
    format: BodyFormat,
    rows: usize,
    scored: Scored,
) -> Response {
    let output_name = &model.outputs[output].name;
    let mut response = match format {
        BodyFormat::Binary => {
            let mut r = scored.data.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media::OCTET_STREAM));
            r
        }
        BodyFormat::Json => {
            // The workers' output is whole floats by construction.
            let floats = codec::decode(&scored.data).unwrap_or_default();
            Json(JsonScores {
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
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(headers::ROWS, rows.to_string());
    set(headers::COLUMNS, scored.columns.to_string());
    set(headers::MODEL_VERSION, model.version.clone());
    set(headers::OUTPUT, output_name.clone());
    set(headers::QUEUE_MS, format!("{:.3}", scored.queue_time.as_secs_f64() * 1e3));
    set(headers::COMPUTE_MS, format!("{:.3}", scored.compute_time.as_secs_f64() * 1e3));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(ScoreParams::parse(None).ok(), Some(ScoreParams::default()));
        let p = ScoreParams::parse(Some("output=output%5Fprobability")).expect("valid");
        assert_eq!(p.output.as_deref(), Some("output_probability"));
        let typo = ScoreParams::parse(Some("outptu=label")).expect_err("unknown");
        assert_eq!(
            typo.to_string(),
            "unknown query parameter \"outptu\"; the scoring routes take only ?output=NAME"
        );
        assert!(ScoreParams::parse(Some("output=a&output=b")).is_err());
    }
}
