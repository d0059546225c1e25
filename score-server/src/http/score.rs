//! `PUT /score` and `PUT /models/{name}/score` (the v1 protocol):
//! [`ScoreParams::parse`] the query, then the request pipeline
//! ([`super::pipeline`]: headers, body, rows, workers), then [`answer`] in
//! the encoding asked for.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use score_protocol::media::BodyFormat;
use score_protocol::models::JsonScores;
use score_protocol::{codec, headers, media};

use super::pipeline::{
    Encoding, Head, LongTexts, ModelName, Work, decode, open, output_indices, prompt, receive, run,
};
use crate::error::ApiError;
use crate::pool::Scored;
use crate::state::AppState;
use score_engine::Model;

/// Query parameters of a scoring request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScoreParams {
    /// Outputs to return instead of the default one, in order (several
    /// only for an Arrow answer).
    pub outputs: Vec<String>,
    /// `?truncate=true|false`, for an embedding model: cut a text longer
    /// than the model's limit there (true), or refuse the request with a
    /// 413 naming it (false, the default, as `POST /embed`).
    pub truncate: Option<bool>,
    /// `?chunk=true`, for an embedding model: embed a text longer than the
    /// model's limit whole, in windows pooled into one vector.
    pub chunk: Option<bool>,
    /// `?chunk_overlap=N`: tokens each window shares with the one before.
    pub chunk_overlap: Option<usize>,
    /// `?prompt_name=NAME`, for an embedding model: the prompt put before
    /// every text (default: the directory's `default_prompt_name`).
    pub prompt_name: Option<String>,
}

impl ScoreParams {
    /// Parses the query string. Only `output` (repeatable) and `truncate`
    /// are known: anything else is a mistake worth a clear 400 rather than
    /// being ignored.
    pub fn parse(query: Option<&str>) -> Result<ScoreParams, ApiError> {
        let mut params = ScoreParams::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "output" if params.outputs.iter().any(|o| *o == value) => {
                    return Err(ApiError::BadParameter(format!(
                        "output {value:?} is named twice in the query"
                    )));
                }
                "output" => params.outputs.push(value.into_owned()),
                "truncate" => params.truncate = Some(boolean("truncate", &value)?),
                "chunk" => params.chunk = Some(boolean("chunk", &value)?),
                "prompt_name" => params.prompt_name = Some(value.into_owned()),
                "chunk_overlap" => {
                    params.chunk_overlap = Some(value.parse().map_err(|_| {
                        ApiError::BadParameter(format!(
                            "chunk_overlap={value:?}: give a number of tokens"
                        ))
                    })?)
                }
                other => {
                    return Err(ApiError::BadParameter(format!(
                        "unknown query parameter {other:?}; the scoring routes take only \
                         ?output=NAME and, for an embedding model, ?truncate=true or \
                         ?chunk=true&chunk_overlap=N, and ?prompt_name=NAME"
                    )));
                }
            }
        }
        Ok(params)
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::BadParameter(format!("{key}={value:?}: give true or false"))),
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
    ModelName(name): ModelName,
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
    open(&state)?;
    let model = state.models.get(model_ix);
    let params = ScoreParams::parse(query.as_deref())?;
    let outputs = output_indices(&model, &params.outputs)?;
    if !model.is_embedding() && params.truncate.is_some() {
        return Err(ApiError::BadParameter(format!(
            "?truncate is for embedding models (text in); {} is not one",
            model.name
        )));
    }
    let long = LongTexts {
        truncate: params.truncate == Some(true),
        chunk: params.chunk == Some(true),
        chunk_overlap: params.chunk_overlap,
        keep_end: false,
    };
    let (truncate, mut options) = long.check(&model, "?")?;
    options.prompt = prompt(&model, params.prompt_name.as_deref(), "?")?;
    let (parts, request_body) = request.into_parts();
    let head = Head::parse(&parts.headers, &model, arrival)?;
    if outputs.len() > 1 && !head.arrow_answer {
        return Err(ApiError::BadParameter(format!(
            "{} outputs are asked for, but a binary or JSON answer carries one: send Accept: {} \
             for several",
            outputs.len(),
            media::ARROW_STREAM
        )));
    }
    let (bytes, mut permit) = receive(&state, &head, request_body).await?;
    let (input, rows) = decode(&state, &mut permit, head.format, bytes, &model).await?;
    let encoding = match head.format {
        _ if head.arrow_answer => Encoding::Arrow,
        BodyFormat::Json => Encoding::Json,
        BodyFormat::Binary | BodyFormat::Arrow => Encoding::Binary,
    };
    let work = Work {
        model: model.clone(),
        input,
        rows,
        answered: outputs.clone(),
        truncate,
        encoding,
        deadline: head.deadline(),
        options,
    };
    let scored = run(&state, &mut permit, work).await?;
    let response = answer(&model, &outputs, &head, rows, scored)?;
    Ok(super::held::until_sent(response, permit))
}

/// The answer in the form the request asks for, with the protocol's
/// headers. Binary and JSON answers carry one output (the caller checked);
/// an Arrow answer one column per output. With several outputs,
/// `X-Score-Output` and `X-Score-Columns` list them comma-separated.
fn answer(
    model: &Model,
    outputs: &[usize],
    head: &Head,
    rows: usize,
    mut scored: Scored,
) -> Result<Response, ApiError> {
    let names: Vec<&str> = outputs.iter().map(|&o| model.outputs[o].name.as_str()).collect();
    let columns: Vec<String> = scored.outputs.iter().map(|o| o.columns.to_string()).collect();
    let mut response = match head.format {
        _ if head.arrow_answer => {
            let parts: Vec<_> = outputs
                .iter()
                .zip(&scored.outputs)
                .map(|(&o, out)| (&model.outputs[o], out.data.as_slice()))
                .collect();
            let bytes = super::arrow::answer(&parts, rows)?;
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media::ARROW_STREAM));
            r
        }
        BodyFormat::Binary | BodyFormat::Arrow => {
            let mut r = std::mem::take(&mut scored.outputs[0].data).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media::OCTET_STREAM));
            r
        }
        BodyFormat::Json => {
            let out = &scored.outputs[0];
            // The workers' output is whole floats by construction.
            let floats = codec::decode(&out.data).unwrap_or_default();
            Json(JsonScores {
                model: &model.name,
                version: &model.version,
                output: names[0],
                rows,
                columns: out.columns,
                outputs: floats.chunks(out.columns.max(1)).collect(),
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
    set(headers::COLUMNS, columns.join(","));
    set(headers::MODEL_VERSION, model.version.clone());
    set(headers::OUTPUT, names.join(","));
    set(headers::QUEUE_MS, format!("{:.3}", scored.queue_time.as_secs_f64() * 1e3));
    set(headers::COMPUTE_MS, format!("{:.3}", scored.compute_time.as_secs_f64() * 1e3));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(ScoreParams::parse(None).ok(), Some(ScoreParams::default()));
        let p = ScoreParams::parse(Some("output=output%5Fprobability")).expect("valid");
        assert_eq!(p.outputs, ["output_probability"]);
        let typo = ScoreParams::parse(Some("outptu=label")).expect_err("unknown");
        assert_eq!(
            typo.to_string(),
            "unknown query parameter \"outptu\"; the scoring routes take only ?output=NAME and, for an embedding model, ?truncate=true or ?chunk=true&chunk_overlap=N, and ?prompt_name=NAME"
        );
        let two = ScoreParams::parse(Some("output=a&output=b")).expect("several outputs");
        assert_eq!(two.outputs, ["a", "b"]);
        let cut = ScoreParams::parse(Some("truncate=true&output=embedding")).expect("truncate");
        assert_eq!(cut.truncate, Some(true));
        assert_eq!(ScoreParams::parse(Some("truncate=0")).expect("0").truncate, Some(false));
        let bad = ScoreParams::parse(Some("truncate=yes")).expect_err("not a boolean");
        assert_eq!(bad.to_string(), "truncate=\"yes\": give true or false");
        let chunked = ScoreParams::parse(Some("chunk=true&chunk_overlap=16")).expect("chunk");
        assert_eq!((chunked.chunk, chunked.chunk_overlap), (Some(true), Some(16)));
        let bad = ScoreParams::parse(Some("chunk_overlap=-1")).expect_err("not a count");
        assert_eq!(bad.to_string(), "chunk_overlap=\"-1\": give a number of tokens");
        let twice = ScoreParams::parse(Some("output=a&output=a")).expect_err("named twice");
        assert_eq!(twice.to_string(), "output \"a\" is named twice in the query");
    }
}
