//! JSON routes for embedding models, for people and for clients written
//! against other servers: `POST /embed` and `POST /` (Hugging Face
//! text-embeddings-inference: `{"inputs": str | [str], "normalize",
//! "truncate", "prompt_name"}` → `[[f32]]`, and our `"chunk"`,
//! `"chunk_overlap"`) and `POST /v1/embeddings`
//! (OpenAI: `{"input": str | [str], "model", "encoding_format",
//! "dimensions"}` → `{"data": [{"embedding", "index"}], ...}`). They serve
//! the default model when it is an embedding model, else the first
//! embedding model (OpenAI's `model` names one). The texts go through the
//! request pipeline as scoring requests do; for throughput use the scoring
//! routes with an Arrow body of one utf8 column, `text`.
//!
//! Vectors are L2-normalised unless asked not to (TEI's default, and
//! OpenAI's vectors are unit length), whatever the directory's modules
//! say: the workers' `pooled` output is normalised here, so one rule holds
//! for every model.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, StringArray};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use score_protocol::codec;
use score_protocol::media::BodyFormat;
use serde::Deserialize;
use serde_json::json;

use super::pipeline::{Encoding, Head, LongTexts, Work, off_io, open, prompt, receive, run};
use crate::admission::Permit;
use crate::error::ApiError;
use crate::pool::Input;
use crate::state::AppState;
use score_engine::Model;
use score_engine::embed::l2_normalize;
use score_engine::input::TypedRows;
use score_engine::seam::RunOptions;

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
    /// Which end of a text over the limit is kept: `Right` cuts the end
    /// (the default), `Left` the start.
    #[serde(default)]
    truncation_direction: Option<String>,
    /// A prompt of the directory's `config_sentence_transformers.json`.
    #[serde(default)]
    prompt_name: Option<String>,
    /// A text over the limit is embedded whole, in windows pooled into
    /// one vector (this server's addition; the answer's `X-Score-Chunks`
    /// header lists the windows each text took).
    #[serde(default)]
    chunk: bool,
    /// Tokens each window shares with the one before (with `chunk`).
    #[serde(default)]
    chunk_overlap: Option<usize>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/embeddings`'s body (OpenAI).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiRequest {
    input: Texts,
    #[serde(default)]
    model: Option<String>,
    /// `float` (the default) or `base64`: little-endian float32, as the
    /// OpenAI SDK asks unless told otherwise and decodes.
    #[serde(default)]
    encoding_format: Option<String>,
    /// Fewer dimensions than the model's, for a Matryoshka model: the
    /// vector's start, normalised again.
    #[serde(default)]
    dimensions: Option<usize>,
    /// The caller's end user, for abuse tracking at OpenAI: accepted and
    /// not used.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

/// What embedding a request gave: per text its vector and token count.
struct Embedded {
    vectors: Vec<f32>,
    dim: usize,
    tokens: Vec<f32>,
    /// Windows each text took (1 unless chunked).
    chunks: Vec<f32>,
    model: Arc<Model>,
}

impl Embedded {
    /// Each vector cut to its first `dim` values, if that is fewer.
    fn cut(&mut self, dim: usize) {
        if dim >= self.dim {
            return;
        }
        let mut cut = Vec::with_capacity(self.vectors.len() / self.dim.max(1) * dim);
        for v in self.vectors.chunks(self.dim.max(1)) {
            cut.extend_from_slice(&v[..dim]);
        }
        (self.vectors, self.dim) = (cut, dim);
    }

    /// Each vector scaled to unit length.
    fn normalize(&mut self) {
        self.vectors.chunks_mut(self.dim.max(1)).for_each(l2_normalize);
    }
}

/// `POST /embed` and `POST /`.
pub async fn embed(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (request, head, mut permit): (EmbedRequest, _, _) = json_body(&state, request).await?;
        let keep_end = match request.truncation_direction.as_deref() {
            None => false,
            Some(d) if d.eq_ignore_ascii_case("right") => false,
            Some(d) if d.eq_ignore_ascii_case("left") => true,
            Some(d) => {
                return Err(ApiError::BadParameter(format!(
                    "truncation_direction {d:?}: give \"Right\" (a text over the limit keeps \
                     its start) or \"Left\" (it keeps its end)"
                )));
            }
        };
        let model = embedding_model(&state, None)?;
        let long = LongTexts {
            truncate: request.truncate,
            chunk: request.chunk,
            chunk_overlap: request.chunk_overlap,
            keep_end,
        };
        let (truncate, mut options) = long.check(&model, "")?;
        options.prompt = prompt(&model, request.prompt_name.as_deref(), "")?;
        let texts = request.inputs.into_vec();
        let mut embedded =
            embed_texts(&state, model, texts, truncate, options, &head, &mut permit).await?;
        if request.normalize {
            embedded.normalize();
        }
        let chunks = request.chunk.then(|| {
            let counts: Vec<String> =
                embedded.chunks.iter().map(|&c| (c as u64).to_string()).collect();
            counts.join(",")
        });
        let row: super::json_rows::WriteRow = |out, _, v| super::json_rows::floats(out, v);
        let mut answer =
            super::json_rows::answer(embedded.vectors, embedded.dim, "[".into(), row, "]".into());
        if let Some(value) = chunks.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
            answer.headers_mut().insert(score_protocol::headers::CHUNKS, value);
        }
        Ok(super::held::until_sent(answer, permit))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/embeddings`. Errors are in OpenAI's shape
/// ([`ApiError::into_openai_response`]).
pub async fn openai_embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (request, head, mut permit): (OpenAiRequest, _, _) = json_body(&state, request).await?;
        let base64 = match request.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::BadParameter(format!(
                    "encoding_format {other:?}: give \"float\" or \"base64\""
                )));
            }
        };
        let model = embedding_model(&state, request.model.as_deref())?;
        let dim = model.outputs[model.default_output].columns;
        if let Some(asked) = request.dimensions {
            let matryoshka = model.text.as_ref().is_some_and(|c| c.matryoshka);
            if asked != dim && !matryoshka {
                return Err(ApiError::BadParameter(format!(
                    "dimensions {asked}: model {} gives {dim} and was not trained to be cut \
                     (Matryoshka); leave dimensions out",
                    model.name
                )));
            }
            if asked == 0 || asked > dim {
                return Err(ApiError::BadParameter(format!(
                    "dimensions {asked}: model {} gives {dim}; ask for 1 to {dim}",
                    model.name
                )));
            }
        }
        // OpenAI's embeddings are unit length and long inputs are an error.
        let options = RunOptions { prompt: prompt(&model, None, "")?, ..RunOptions::default() };
        let texts = request.input.into_vec();
        let mut embedded =
            embed_texts(&state, model, texts, false, options, &head, &mut permit).await?;
        embedded.cut(request.dimensions.unwrap_or(dim));
        embedded.normalize();
        let tokens = embedded.tokens.iter().sum::<f32>() as u64;
        let row: super::json_rows::WriteRow = if base64 {
            |out, index, v| {
                openai_row(out, index);
                out.push(b'"');
                let bytes = codec::encode(v);
                let at = out.len();
                out.resize(at + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
                let written = base64::engine::general_purpose::STANDARD
                    .encode_slice(&bytes, &mut out[at..])
                    .unwrap_or(0);
                out.truncate(at + written);
                out.extend_from_slice(b"\"}");
            }
        } else {
            |out, index, v| {
                openai_row(out, index);
                super::json_rows::floats(out, v);
                out.push(b'}');
            }
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
    result.unwrap_or_else(ApiError::into_openai_response)
}

/// The start of an OpenAI `data` item, up to its `embedding` value.
fn openai_row(out: &mut Vec<u8>, index: usize) {
    out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
    out.extend_from_slice(index.to_string().as_bytes());
    out.extend_from_slice(b",\"embedding\":");
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
    open(state)?;
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

/// Embeds `texts` with `model` through the request pipeline: the pooled
/// vectors (not normalised) and the token counts. A text over the
/// model's limit is a 413 naming it unless `truncate`.
async fn embed_texts(
    state: &AppState,
    model: Arc<Model>,
    texts: Vec<String>,
    truncate: bool,
    options: RunOptions,
    head: &Head,
    permit: &mut Permit,
) -> Result<Embedded, ApiError> {
    let index = |name: &str| {
        model.output_index(name).ok_or_else(|| ApiError::Internal(format!("no {name} output")))
    };
    let answered = vec![index("pooled")?, index("tokens")?, index("chunks")?];
    super::body::check_version(head.pinned.as_deref(), &model)?;
    let rows = texts.len();
    let bytes: usize = texts.iter().map(String::len).sum();
    // The texts are copied into one Arrow array, then each worker expands
    // its share again: the copy is charged here, the body's JSON bound
    // covers the parsed strings.
    let decoded = bytes + rows * std::mem::size_of::<String>();
    let array: ArrayRef = Arc::new(StringArray::from(texts));
    let typed = TypedRows::new(vec![vec![array]], decoded);
    let work = Work {
        model: model.clone(),
        input: Input::Typed { rows: Arc::new(typed), bytes },
        rows,
        answered: answered.clone(),
        truncate,
        encoding: Encoding::Streamed,
        deadline: head.deadline(),
        options,
    };
    let scored = run(state, permit, work).await?;
    let floats = |i: usize| codec::decode(&scored.outputs[i].data).unwrap_or_default();
    let (vectors, tokens, chunks) = (floats(0), floats(1), floats(2));
    let dim = model.outputs[answered[0]].columns;
    Ok(Embedded { vectors, dim, tokens, chunks, model })
}
