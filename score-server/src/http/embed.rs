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
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use score_protocol::codec;
use score_protocol::media::BodyFormat;
use serde::Deserialize;
use serde_json::json;

use super::pipeline::{
    Encoding, Head, answer_bytes, charge, check_texts, dispatch, off_io, receive, refuse_truncated,
};
use crate::admission::Permit;
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::pool::{Input, ScoreJob};
use crate::state::AppState;
use score_engine::Model;
use score_engine::input::TypedRows;

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
        let (request, head, mut permit): (EmbedRequest, _, _) = json_body(&state, request).await?;
        if request.truncation_direction.as_deref().is_some_and(|d| !d.eq_ignore_ascii_case("right"))
        {
            return Err(ApiError::BadParameter(
                "truncation_direction: only \"Right\" is supported".into(),
            ));
        }
        let _ = request.prompt_name;
        let model = embedding_model(&state, None)?;
        let output = if request.normalize { "embedding" } else { "pooled" };
        let texts = request.inputs.into_vec();
        let embedded =
            run(&state, model, texts, output, request.truncate, &head, &mut permit).await?;
        let row: super::json_rows::WriteRow = |out, _, v| super::json_rows::floats(out, v);
        let answer =
            super::json_rows::answer(embedded.vectors, embedded.dim, "[".into(), row, "]".into());
        Ok(super::held::until_sent(answer, permit))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/embeddings`.
pub async fn openai_embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (request, head, mut permit): (OpenAiRequest, _, _) = json_body(&state, request).await?;
        if request.encoding_format.as_deref().is_some_and(|f| f != "float") {
            return Err(ApiError::BadParameter(
                "encoding_format: only \"float\" is supported".into(),
            ));
        }
        let model = embedding_model(&state, request.model.as_deref())?;
        // OpenAI's embeddings are normalised and long inputs are an error.
        let texts = request.input.into_vec();
        let embedded = run(&state, model, texts, "embedding", false, &head, &mut permit).await?;
        let tokens = embedded.tokens.iter().sum::<f32>() as u64;
        let row: super::json_rows::WriteRow = |out, index, v| {
            out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
            out.extend_from_slice(index.to_string().as_bytes());
            out.extend_from_slice(b",\"embedding\":");
            super::json_rows::floats(out, v);
            out.push(b'}');
        };
        let close = json!({"prompt_tokens": tokens, "total_tokens": tokens});
        let answer = super::json_rows::answer(
            embedded.vectors,
            embedded.dim,
            "{\"object\":\"list\",\"data\":[".into(),
            row,
            format!("],\"model\":{},\"usage\":{close}}}", json!(embedded.model.name)),
        );
        Ok(super::held::until_sent(answer, permit))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A JSON route's request, received as scoring bodies are (draining
/// refused, admission charged, deadline read) and parsed into `T`. Only
/// `Content-Type: application/json` is taken: a web page can send a
/// `text/plain` body to any address without asking, so accepting one
/// would let any page a user opens drive the server when auth is off.
async fn json_body<T: serde::de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    request: Request,
) -> Result<(T, Head, Permit), ApiError> {
    let arrival = Instant::now();
    if state.is_draining() {
        state.metrics.reject(Rejection::draining);
        return Err(ApiError::Draining);
    }
    let (parts, body) = request.into_parts();
    if super::body::format(&parts.headers).ok() != Some(BodyFormat::Json)
        || !parts.headers.contains_key(axum::http::header::CONTENT_TYPE)
    {
        let sent = parts.headers.get(axum::http::header::CONTENT_TYPE);
        return Err(ApiError::UnsupportedEncoding(format!(
            "this route takes a JSON body: send Content-Type: application/json (not {})",
            sent.and_then(|v| v.to_str().ok()).map_or("none".to_string(), |v| format!("{v:?}"))
        )));
    }
    let head = Head::json(&parts.headers, arrival)?;
    let (bytes, permit) = receive(state, &head, body).await?;
    let parsed = off_io(bytes.len(), move || {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
    })
    .await?;
    Ok((parsed, head, permit))
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

/// Embeds `texts` with `model` on the worker pool: `output`'s vectors and
/// the token counts, the answer (a JSON float a value) charged to `permit`
/// first. A text cut at the model's limit is a 413 naming it unless
/// `truncate`.
async fn run(
    state: &AppState,
    model: Arc<Model>,
    texts: Vec<String>,
    output: &str,
    truncate: bool,
    head: &Head,
    permit: &mut Permit,
) -> Result<Embedded, ApiError> {
    let index = |name: &str| {
        model.output_index(name).ok_or_else(|| ApiError::Internal(format!("no {name} output")))
    };
    let outputs = vec![index(output)?, index("tokens")?, index("truncated")?];
    super::body::check_version(head.pinned.as_deref(), &model)?;
    let rows = texts.len();
    let bytes: usize = texts.iter().map(String::len).sum();
    // The texts are copied into one Arrow array, then each worker expands
    // its share again: the copy is charged here, the body's JSON bound
    // covers the parsed strings.
    let decoded = bytes + rows * std::mem::size_of::<String>();
    let array: ArrayRef = Arc::new(StringArray::from(texts));
    let typed = TypedRows::new(vec![vec![array]], decoded);
    check_texts(state, &model, &typed, truncate)?;
    let answer = answer_bytes(&model, &outputs, &outputs[..1], Encoding::Streamed, rows);
    charge(state, permit, rows, decoded, answer)?;
    let scored = dispatch(
        state,
        ScoreJob {
            model: model.clone(),
            outputs,
            rows,
            input: Input::Typed { rows: Arc::new(typed), bytes },
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
