//! The Open Inference Protocol (KServe v2) over HTTP/REST, as Triton,
//! KServe and MLServer speak it, with Triton's binary tensor data
//! extension and model configuration route: clients written for those
//! servers (`tritonclient.http`, KServe's) work unchanged.
//!
//! - `GET /v2`: the server's name, version and extensions.
//! - `GET /v2/health/live`, `GET /v2/health/ready`.
//! - `GET /v2/models/{name}[/versions/{version}]`: inputs and outputs with
//!   `datatype` and `shape` (-1 for the batch); `.../ready`; `.../config`
//!   (Triton's `max_batch_size`, `input`, `output`).
//! - `POST /v2/models/{name}[/versions/{version}]/infer`.
//! - `POST /v2/repository/index`: the models served.
//!
//! The version is the one `/models` reports (a content hash); another is
//! the v1 routes' 409. An inference request goes through the request
//! pipeline the other routes share (admission, the workers, deadlines):
//! only the tensors' decoding ([`tensor`]) and the answer are this
//! protocol's. Errors are the server's JSON, whose `error` member is the
//! protocol's.

mod answer;
mod tensor;
mod values;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use score_engine::Model;
use score_protocol::headers::MAX_DEADLINE_MS;
use score_protocol::media::{self, BodyFormat};
use serde_json::{Value, json};

use super::pipeline::{
    Encoding, Head, LongTexts, Work, charge, off_io, open, output_indices, prompt, receive, run,
};
use crate::error::ApiError;
use crate::state::AppState;
use answer::Answered;
use tensor::{Datatype, HEADER_LENGTH};

/// The model a route names, and the version when it names one.
pub struct Target {
    name: String,
    version: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let params = super::pipeline::path_params(parts, state).await?;
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        Ok(Target { name: get("name").unwrap_or_default(), version: get("version") })
    }
}

impl Target {
    /// The model, at the version asked for (the `versions/{v}` of the path,
    /// else `X-Model-Version`): 404 for an unknown name, 409 for another
    /// version.
    fn model(&self, state: &AppState, headers: &HeaderMap) -> Result<Arc<Model>, ApiError> {
        let model = state.models.get(state.model_index(&self.name)?);
        let pinned = match &self.version {
            Some(v) => Some(v.clone()),
            None => super::body::pinned_version(headers)?,
        };
        super::body::check_version(pinned.as_deref(), &model)?;
        Ok(model)
    }
}

/// `GET /v2`.
pub async fn server_metadata() -> Response {
    Json(json!({
        "name": "score-server",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration"],
    }))
    .into_response()
}

/// `GET /v2/health/live`: the process answers (as `/healthz`).
pub async fn live() -> Response {
    Json(json!({ "live": true })).into_response()
}

/// `GET /v2/health/ready`: models loaded and not draining (as `/readyz`).
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Draining);
    }
    Ok(Json(json!({ "ready": true })).into_response())
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`.
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    target: Target,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let model = target.model(&state, &headers)?;
    if state.is_draining() {
        return Err(ApiError::Draining);
    }
    Ok(Json(json!({ "name": model.name, "ready": true })).into_response())
}

/// A tensor's description: name, datatype, shape with -1 for the batch.
fn describe(name: &str, datatype: Datatype, rank: usize, width: usize) -> Value {
    let shape: Vec<i64> = if rank <= 1 { vec![-1] } else { vec![-1, width as i64] };
    json!({ "name": name, "datatype": datatype.name(), "shape": shape })
}

/// The outputs a request may ask for: those the server can answer.
fn servable(model: &Model) -> Vec<usize> {
    (0..model.outputs.len())
        .filter(|&o| model.output_index(&model.outputs[o].name).is_some())
        .collect()
}

/// `GET /v2/models/{name}[/versions/{version}]`.
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    target: Target,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let model = target.model(&state, &headers)?;
    let inputs: Vec<Value> = model
        .feeds
        .iter()
        .map(|f| describe(&f.name, Datatype::of_kind(f.kind), f.rank, f.width))
        .collect();
    let outputs: Vec<Value> = servable(&model)
        .into_iter()
        .map(|o| {
            let out = &model.outputs[o];
            describe(&out.name, Datatype::of_output(out), out.shape.len(), out.columns)
        })
        .collect();
    Ok(Json(json!({
        "name": model.name,
        "versions": [model.version],
        "platform": "onnx",
        "inputs": inputs,
        "outputs": outputs,
    }))
    .into_response())
}

/// `GET /v2/models/{name}[/versions/{version}]/config`: Triton's model
/// configuration, for tools that read it. `max_batch_size` is the most
/// rows a request may carry: the texts per request of an embedding model
/// (`--max-texts`), else what fits the body limit. `dims` leave the batch
/// out; a tensor of one value a row is `[1]` reshaped to `[]`.
pub async fn model_config(
    State(state): State<Arc<AppState>>,
    target: Target,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let model = target.model(&state, &headers)?;
    let tensor = |name: &str, datatype: Datatype, rank: usize, width: usize| {
        let mut t = json!({ "name": name, "data_type": datatype.config_name(), "dims": [width] });
        if rank <= 1 {
            t["reshape"] = json!({ "shape": [] });
        }
        t
    };
    let row_bytes: usize = model.feeds.iter().map(|f| f.width * 4).sum();
    let max_batch_size = if model.is_embedding() {
        state.config.max_texts
    } else {
        state.config.body_limit / row_bytes.max(1)
    };
    Ok(Json(json!({
        "name": model.name,
        "platform": "onnxruntime_onnx",
        "backend": model.engine().name(),
        "version_policy": { "specific": { "versions": [model.version] } },
        "max_batch_size": max_batch_size.clamp(1, i32::MAX as usize),
        "input": model
            .feeds
            .iter()
            .map(|f| tensor(&f.name, Datatype::of_kind(f.kind), f.rank, f.width))
            .collect::<Vec<_>>(),
        "output": servable(&model)
            .into_iter()
            .map(|o| {
                let out = &model.outputs[o];
                tensor(&out.name, Datatype::of_output(out), out.shape.len(), out.columns)
            })
            .collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST /v2/repository/index`: every model served, ready.
pub async fn repository_index(State(state): State<Arc<AppState>>) -> Response {
    let models: Vec<Value> = state
        .models
        .list()
        .iter()
        .map(|m| json!({ "name": m.name, "version": m.version, "state": "READY" }))
        .collect();
    Json(models).into_response()
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`.
pub async fn infer(
    State(state): State<Arc<AppState>>,
    target: Target,
    request: Request,
) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    open(&state)?;
    let (parts, body) = request.into_parts();
    let model = target.model(&state, &parts.headers)?;
    // No Content-Type (tritonclient sends none), JSON, or JSON and bytes.
    // Not the media types a web page may send unasked (text/plain, forms).
    let format = super::body::format(&parts.headers)?;
    if format == BodyFormat::Arrow {
        return Err(ApiError::UnsupportedEncoding(format!(
            "the Open Inference Protocol's body is JSON (with binary tensors after it as \
             {HEADER_LENGTH} says), not {}; Arrow streams go to /models/{}/score",
            media::ARROW_STREAM,
            model.name
        )));
    }
    let header_length = match parts.headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
            ApiError::BadParameter(format!("header {HEADER_LENGTH} must be a byte count"))
        })?),
    };
    let head = Head::tensors(&parts.headers, arrival, header_length)?;
    let (bytes, permit) = receive(&state, &head, body).await?;

    // Parsing, the decoding charge and decoding, off the I/O threads when
    // the body is large, unless it is float32 rows in binary for a matrix
    // model: then decoding is a glance at a small JSON header, as the v1
    // route's binary body is a length check.
    let work = if as_it_came(&model, &bytes, header_length) { 0 } else { bytes.len() };
    let decoding = {
        let (state, model) = (state.clone(), model.clone());
        off_io(work, move || {
            let mut permit = permit;
            let (json, binary) = tensor::split(&bytes, header_length)?;
            let request = tensor::parse(&json)?;
            let checked = tensor::check(&request, &binary, &model)?;
            let rows = checked.rows;
            charge(&state, &mut permit, rows, checked.decode_bound(), 0)?;
            let input = checked.into_input(&model)?;
            let asked = asked_outputs(&model, &request)?;
            let timeout = request.parameters.timeout.map(|us| {
                arrival + Duration::from_micros(us).min(Duration::from_millis(MAX_DEADLINE_MS))
            });
            Ok(Decoded {
                id: request.id.clone(),
                input,
                rows,
                asked,
                long: LongTexts {
                    truncate: request.parameters.truncate == Some(true),
                    chunk: request.parameters.chunk == Some(true),
                    chunk_overlap: request.parameters.chunk_overlap,
                    keep_end: false,
                },
                prompt_name: request.parameters.prompt_name.clone(),
                timeout,
                permit,
            })
        })
        .await?
    };
    let Decoded { id, input, rows, asked, long, prompt_name, timeout, mut permit } = decoding;
    if long.truncate && !model.is_embedding() {
        return Err(ApiError::BadParameter(format!(
            "parameters.truncate is for embedding models (text in); {} is not one",
            model.name
        )));
    }
    let (truncate, mut options) = long.check(&model, "parameters.")?;
    options.prompt = prompt(&model, prompt_name.as_deref(), "parameters.")?;
    let answered: Vec<usize> = asked.iter().map(|&(o, _)| o).collect();
    let encoding =
        if asked.iter().all(|&(_, binary)| binary) { Encoding::Binary } else { Encoding::Json };
    let work = Work {
        model: model.clone(),
        input,
        rows,
        answered,
        truncate,
        encoding,
        deadline: head.deadline_or(timeout),
        options,
    };
    let scored = run(&state, &mut permit, work).await?;
    let outputs: Vec<Answered<'_>> = asked
        .iter()
        .zip(scored.outputs)
        .map(|(&(o, binary), out)| Answered { output: &model.outputs[o], data: out.data, binary })
        .collect();
    let (json, binary) = answer::answer(&model, id.as_deref(), rows, outputs)?;
    let mut response = if binary.is_empty() {
        let mut r = Response::new(Body::from(json));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media::JSON));
        r
    } else {
        let length = HeaderValue::from(json.len());
        let mut body = json;
        body.reserve(binary.iter().map(Vec::len).sum());
        binary.iter().for_each(|b| body.extend_from_slice(b));
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media::OCTET_STREAM));
        r.headers_mut().insert(HEADER_LENGTH, length);
        r
    };
    if let Ok(version) = HeaderValue::from_str(&model.version) {
        response.headers_mut().insert(score_protocol::headers::MODEL_VERSION, version);
    }
    Ok(super::held::until_sent(response, permit))
}

/// Whether a body is a matrix model's float32 rows in binary after a JSON
/// header of at most 64 KiB: the rows go to the workers as they came.
fn as_it_came(model: &Model, bytes: &bytes::Bytes, header_length: Option<usize>) -> bool {
    let Some(length) = header_length.filter(|&n| n <= 64 << 10) else { return false };
    model.matrix().is_some()
        && tensor::split(bytes, Some(length)).is_ok_and(|(json, _)| {
            tensor::parse(&json)
                .is_ok_and(|r| r.inputs.iter().all(|t| t.datatype == "FP32" && t.data.is_none()))
        })
}

/// A request, decoded and charged.
struct Decoded {
    id: Option<String>,
    input: crate::pool::Input,
    rows: usize,
    asked: Vec<(usize, bool)>,
    long: LongTexts,
    prompt_name: Option<String>,
    timeout: Option<Instant>,
    permit: crate::admission::Permit,
}

/// The outputs asked for, each with whether it goes in binary: those
/// named (binary as each says, else as `binary_data_output` says, else
/// JSON), or every output the server can answer (binary as
/// `binary_data_output` says).
fn asked_outputs(
    model: &Model,
    request: &tensor::InferRequest<'_>,
) -> Result<Vec<(usize, bool)>, ApiError> {
    let all_binary = request.parameters.binary_data_output == Some(true);
    let Some(asked) = &request.outputs else {
        return Ok(servable(model).into_iter().map(|o| (o, all_binary)).collect());
    };
    if asked.len() > model.outputs.len() {
        return Err(ApiError::BadParameter(format!(
            "the request asks for {} outputs; model {} has {}",
            asked.len(),
            model.name,
            model.outputs.len()
        )));
    }
    if let Some(o) = asked.iter().find(|o| o.parameters.classification.is_some()) {
        return Err(ApiError::BadParameter(format!(
            "output {:?} asks for classification, which this server does not do; ask for the \
             model's label or probability output",
            o.name
        )));
    }
    let names: Vec<String> = asked.iter().map(|o| o.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ApiError::BadParameter(format!("output {name:?} is asked for twice")));
        }
    }
    let indices = if names.is_empty() { servable(model) } else { output_indices(model, &names)? };
    Ok(indices
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let binary = asked.get(i).and_then(|a| a.parameters.binary_data).unwrap_or(all_binary);
            (o, binary)
        })
        .collect())
}
