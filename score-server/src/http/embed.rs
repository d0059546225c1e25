//! JSON routes for embedding models, for people and for clients written
//! against other servers: `POST /embed` (Hugging Face
//! text-embeddings-inference: `{"inputs": str | [str], "normalize",
//! "truncate"}` → `[[f32]]`) and `POST /v1/embeddings` (OpenAI:
//! `{"input": str | [str], "model"}` → `{"data": [{"embedding", "index"}],
//! ...}`). They serve the default model when it is an embedding model,
//! else the first embedding model (OpenAI's `model` names one). The texts
//! go through the same admission, worker pool and deadlines as scoring
//! requests; for throughput use the scoring routes with an Arrow body of
//! one utf8 column, `text`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, StringArray};
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use score_protocol::codec;
use serde::Deserialize;
use serde_json::json;

use super::score::{Head, closing, dispatch, receive};
use crate::admission::Permit;
use crate::error::ApiError;
use crate::input::TypedRows;
use crate::metrics::Rejection;
use crate::model::Model;
use crate::pool::{Input, ScoreJob, ScoredOutput};
use crate::state::AppState;

/// One text or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    fn into_vec(self) -> Vec<String> {
        match self {
            Texts::One(text) => vec![text],
            Texts::Many(texts) => texts,
        }
    }
}

/// `POST /embed`'s body (text-embeddings-inference).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    inputs: Texts,
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default)]
    truncate: bool,
    /// Accepted for compatibility; only `Right` is done.
    #[serde(default)]
    truncation_direction: Option<String>,
    /// Accepted for compatibility; the model's own prompt handling only.
    #[serde(default)]
    prompt_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/embeddings`'s body (OpenAI).
#[derive(Deserialize)]
struct OpenAiRequest {
    input: Texts,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// What embedding a request gave: per text its vector and token count.
struct Embedded {
    vectors: Vec<f32>,
    dim: usize,
    tokens: Vec<f32>,
    model: Arc<Model>,
}

/// `POST /embed`.
pub async fn embed(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (request, head, permit): (EmbedRequest, _, _) = match json_body(&state, request).await?
        {
            Ok(received) => received,
            Err(closing) => return Ok(closing),
        };
        if request.truncation_direction.as_deref().is_some_and(|d| !d.eq_ignore_ascii_case("right"))
        {
            return Err(ApiError::BadParameter(
                "truncation_direction: only \"Right\" is supported".into(),
            ));
        }
        let _ = request.prompt_name;
        let model = embedding_model(&state, None)?;
        let output = if request.normalize { "embedding" } else { "pooled" };
        let embedded =
            run(&state, model, request.inputs.into_vec(), output, request.truncate, &head).await?;
        drop(permit);
        let rows: Vec<&[f32]> = embedded.vectors.chunks(embedded.dim.max(1)).collect();
        Ok(Json(rows).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/embeddings`.
pub async fn openai_embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (request, head, permit): (OpenAiRequest, _, _) =
            match json_body(&state, request).await? {
                Ok(received) => received,
                Err(closing) => return Ok(closing),
            };
        if request.encoding_format.as_deref().is_some_and(|f| f != "float") {
            return Err(ApiError::BadParameter(
                "encoding_format: only \"float\" is supported".into(),
            ));
        }
        let model = embedding_model(&state, request.model.as_deref())?;
        // OpenAI's embeddings are normalised and long inputs are an error.
        let embedded =
            run(&state, model, request.input.into_vec(), "embedding", false, &head).await?;
        drop(permit);
        let tokens: f32 = embedded.tokens.iter().sum();
        let data: Vec<_> = embedded
            .vectors
            .chunks(embedded.dim.max(1))
            .enumerate()
            .map(|(index, v)| json!({"object": "embedding", "index": index, "embedding": v}))
            .collect();
        Ok(Json(json!({
            "object": "list",
            "data": data,
            "model": embedded.model.name,
            "usage": {"prompt_tokens": tokens as u64, "total_tokens": tokens as u64},
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A JSON route's request, received as scoring bodies are (draining
/// refused, admission charged, deadline read) and parsed into `T`. The
/// inner `Err` is an answer to send as it is: the body was not all read,
/// so the connection closes after it.
async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<Result<(T, Head, Permit), Response>, ApiError> {
    let arrival = Instant::now();
    if state.is_draining() {
        state.metrics.reject(Rejection::draining);
        return Err(ApiError::Draining);
    }
    let (parts, body) = request.into_parts();
    let head = Head::json(&parts.headers, arrival)?;
    let (bytes, permit) = match receive(state, &head, body).await {
        Ok(received) => received,
        Err(e) => return Ok(Err(closing(e))),
    };
    let parsed =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(Ok((parsed, head, permit)))
}

/// The embedding model `name` names, else the default model if it is one,
/// else the first one loaded.
fn embedding_model(state: &AppState, name: Option<&str>) -> Result<Arc<Model>, ApiError> {
    if let Some(name) = name {
        let model = state.models.get(state.model_index(name)?);
        if !model.is_embedding() {
            return Err(ApiError::BadParameter(format!(
                "model {name} is not an embedding model (it takes {})",
                model.input_list()
            )));
        }
        return Ok(model);
    }
    state.models.list().iter().find(|m| m.is_embedding()).cloned().ok_or_else(|| {
        ApiError::NotFound(
            "an embedding model: this server serves none (load a sentence-transformers export \
             directory with --model NAME=DIR)"
                .into(),
        )
    })
}

/// A 413 naming the first text the model cut at its limit, given its
/// `truncated` output (1 for a cut text).
pub(super) fn refuse_truncated(model: &Model, truncated: &ScoredOutput) -> Result<(), ApiError> {
    let flags = codec::decode(&truncated.data).unwrap_or_default();
    match flags.iter().position(|&t| t != 0.0) {
        Some(row) => {
            Err(ApiError::TextTooLong { row, limit: model.max_tokens().unwrap_or_default() })
        }
        None => Ok(()),
    }
}

/// Embeds `texts` with `model` on the worker pool: `output`'s vectors and
/// the token counts. A text cut at the model's limit is a 413 naming it
/// unless `truncate`.
async fn run(
    state: &AppState,
    model: Arc<Model>,
    texts: Vec<String>,
    output: &str,
    truncate: bool,
    head: &Head,
) -> Result<Embedded, ApiError> {
    let index = |name: &str| {
        model.output_index(name).ok_or_else(|| ApiError::Internal(format!("no {name} output")))
    };
    let outputs = vec![index(output)?, index("tokens")?, index("truncated")?];
    let rows = texts.len();
    let bytes: usize = texts.iter().map(String::len).sum();
    let array: ArrayRef = Arc::new(StringArray::from(texts));
    super::body::check_version(head.pinned.as_deref(), &model)?;
    let scored = dispatch(
        state,
        ScoreJob {
            model: model.clone(),
            outputs,
            rows,
            input: Input::Typed { rows: Arc::new(TypedRows::new(vec![vec![array]])), bytes },
            deadline: head.deadline(),
        },
    )
    .await?;
    if !truncate {
        refuse_truncated(&model, &scored.outputs[2])?;
    }
    let floats = |i: usize| codec::decode(&scored.outputs[i].data).unwrap_or_default();
    let (vectors, tokens) = (floats(0), floats(1));
    let dim = model.outputs[model.output_index(output).unwrap_or_default()].columns;
    Ok(Embedded { vectors, dim, tokens, model })
}
