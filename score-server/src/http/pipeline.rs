//! The one request pipeline every scoring route runs, one function per
//! step: [`open`] (not while draining), [`Head::parse`] the headers,
//! [`receive`] the body under admission, [`decode`] the rows, then [`run`]
//! them: texts checked, the decoded rows and the answer charged
//! ([`charge`]), the work [`dispatch`]ed to the workers, cut texts
//! refused. The routes (`score.rs` for the v1 protocol, `embed.rs` for
//! TEI's and OpenAI's bodies, `v2.rs` for the Open Inference Protocol)
//! parse their own query and body shape and write their own answer around
//! these steps; a new protocol is a new caller, not a copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use score_engine::Model;
use score_engine::input::TypedRows;
use score_engine::seam::RunOptions;
use score_protocol::codec;
use score_protocol::media::{self, BodyFormat};

use super::body::{self, ReadError};
use crate::admission::{BodyCharge, Permit};
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::pool::{ComputeError, Input, ScoreJob, Scored, ScoredOutput};
use crate::state::AppState;

/// The `{name}` of a model route. axum's own rejection is plain text; a
/// name that is not UTF-8 (`%ff%fe`) gets the protocol's JSON 400 instead.
pub struct ModelName(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ModelName {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(ModelName(params.into_iter().next().map(|(_, v)| v).unwrap_or_default()))
    }
}

/// A route's path parameters, by name, in order; one that is not UTF-8
/// (`%ff%fe`) is the protocol's JSON 400, not axum's plain-text one.
pub(super) async fn path_params<S: Send + Sync>(
    parts: &mut axum::http::request::Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    use axum::extract::FromRequestParts;
    match axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
        Ok(axum::extract::Path(params)) => Ok(params),
        Err(e) => Err(ApiError::BadParameter(format!(
            "the model name in {} is not valid: {}",
            parts.uri.path(),
            e.body_text()
        ))),
    }
}

/// How an answer is encoded, for what it costs ([`answer_bytes`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum Encoding {
    /// float32 rows, moved from the workers' output: nothing more.
    Binary,
    /// An Arrow stream: a copy of every output.
    Arrow,
    /// JSON numbers: at most [`JSON_FLOAT`] bytes a float of every
    /// answered output, and the floats decoded once more for the
    /// serializer.
    Json,
    /// JSON written a few rows at a time (the embedding routes): the
    /// floats decoded once more; the text is never whole.
    Streamed,
}

/// Most bytes a float32 takes in a JSON answer: `-1.1754944e-38,`.
pub(super) const JSON_FLOAT: usize = 16;

/// Bytes a request's answer takes before it is written, known before any
/// work: the workers' float32 output of every `computed` output (as the
/// pool assembles it), plus the encoded `answered` outputs (a class name
/// counted as a `String` and 32 bytes).
pub(super) fn answer_bytes(
    model: &Model,
    computed: &[usize],
    answered: &[usize],
    encoding: Encoding,
    rows: usize,
) -> usize {
    let floats = |outputs: &[usize]| -> usize {
        outputs.iter().map(|&o| model.outputs[o].columns.max(1)).sum()
    };
    let encoded = match encoding {
        Encoding::Binary => 0,
        Encoding::Json => floats(answered) * (JSON_FLOAT + 4),
        Encoding::Streamed => floats(&answered[..1.min(answered.len())]) * 4,
        Encoding::Arrow => answered
            .iter()
            .map(|&o| {
                let output = &model.outputs[o];
                let each = if output.classes.is_some() { 56 } else { 8 };
                output.columns.max(1) * each
            })
            .sum(),
    };
    rows.saturating_mul(floats(computed) * 4 + encoded)
}

/// Charges `permit` for what decoding expanded beyond the body (`decoded`)
/// and for the `answer`, before any work is queued: 413 when that cannot
/// fit in the whole budget (naming about how many rows would), 429 when it
/// does not fit now.
pub(super) fn charge(
    state: &AppState,
    permit: &mut Permit,
    rows: usize,
    decoded: usize,
    answer: usize,
) -> Result<(), ApiError> {
    let more = decoded.saturating_add(answer);
    if state.admission.could_ever_hold(permit.held(), more) {
        return permit.grow(more).map_err(|_| overloaded(state));
    }
    let budget = state.admission.max_bytes();
    let per_row = (permit.held().saturating_add(more) / rows.max(1)).max(1);
    Err(ApiError::TooCostly(format!(
        "{rows} rows would take {} MiB once decoded and answered ({} MiB of it the answer), more \
         than the server's whole budget of {} MiB (--max-inflight-bytes); send at most about {} \
         rows a request",
        mib(permit.held().saturating_add(more)),
        mib(answer),
        mib(budget),
        budget / per_row
    )))
}

/// Bytes in MiB, rounded up, for sentences.
fn mib(bytes: usize) -> usize {
    bytes.div_ceil(1 << 20)
}

/// What the headers say about the body and the answer.
pub(super) struct Head {
    /// How the body is encoded.
    pub(super) format: BodyFormat,
    /// `Accept` asks for an Arrow IPC answer.
    pub(super) arrow_answer: bool,
    deadline: Option<Instant>,
    declared: Option<usize>,
    /// The model version the request is pinned to (`X-Model-Version`).
    pub(super) pinned: Option<String>,
    /// Bytes of JSON at the start of a binary body (the Open Inference
    /// Protocol's `Inference-Header-Content-Length`), charged as JSON.
    json_prefix: Option<usize>,
}

impl Head {
    /// The request's deadline, if it sent one.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A JSON body of some other route (`/embed`), answered in JSON.
    pub(super) fn json(headers: &HeaderMap, arrival: Instant) -> Result<Head, ApiError> {
        Head::tensors(headers, arrival, None)
    }

    /// A body of JSON, or (`json_prefix`: its length) of JSON and then
    /// binary data: the Open Inference Protocol's.
    pub(super) fn tensors(
        headers: &HeaderMap,
        arrival: Instant,
        json_prefix: Option<usize>,
    ) -> Result<Head, ApiError> {
        Ok(Head {
            format: if json_prefix.is_some() { BodyFormat::Binary } else { BodyFormat::Json },
            arrow_answer: false,
            deadline: body::deadline(headers, arrival)?,
            declared: body::content_length(headers)?,
            pinned: body::pinned_version(headers)?,
            json_prefix,
        })
    }

    /// The earlier of the request's deadline and `other`.
    pub(super) fn deadline_or(&self, other: Option<Instant>) -> Option<Instant> {
        match (self.deadline, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The headers of a scoring request for `model`.
    pub(super) fn parse(
        headers: &HeaderMap,
        model: &Model,
        arrival: Instant,
    ) -> Result<Head, ApiError> {
        let pinned = body::pinned_version(headers)?;
        // Before the body is read: a replica serving another version does
        // no work for the request.
        body::check_version(pinned.as_deref(), model)?;
        let format = body::format(headers)?;
        match model.matrix() {
            Some(columns) => body::check_columns(headers, &model.name, columns)?,
            // Refused before the body is read: it cannot be used.
            None if format != BodyFormat::Arrow => {
                return Err(ApiError::UnsupportedEncoding(format!(
                    "model {} is fed by name ({}): send an Arrow IPC stream ({}) with one \
                     column per input",
                    model.name,
                    model.input_list(),
                    media::ARROW_STREAM
                )));
            }
            None => {}
        }
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        Ok(Head {
            format,
            arrow_answer: media::accepts(accept, media::ARROW_STREAM),
            deadline: body::deadline(headers, arrival)?,
            declared: body::content_length(headers)?,
            pinned,
            json_prefix: None,
        })
    }
}

/// A refused body larger than this (or of unknown length) is answered only
/// after `--refusal-delay`: its sender is likely still writing it (it has
/// more than a socket buffer or two to send), and the server would have to
/// take it all in before the sender reads the answer. A smaller one is
/// through already and costs nothing more.
const DELAY_ABOVE: usize = 256 << 10;

/// Reads the body, charging admission for its bytes as they arrive, then
/// admits the complete request (429 when a budget is spent). A declared
/// length over the limit is answered 413 from the headers alone: a client
/// that sent `Expect: 100-continue` never sends its body. A refused body's
/// remainder is thrown away in the background when it is dropped
/// ([`super::held::Unread`]), and the answer waits `--refusal-delay` when
/// it was refused for overload and is large: a
/// client that resends at once is held back instead of having the server
/// take in a body per refusal on the admitted requests' cores.
pub(super) async fn receive(
    state: &AppState,
    head: &Head,
    mut request_body: Body,
) -> Result<(Bytes, Permit), ApiError> {
    let config = &state.config;
    let rules = body::BodyRules {
        limit: config.body_limit,
        timeout: config.body_timeout,
        min_rate: config.min_body_rate,
        grace: config.body_grace,
    };
    let (bytes, charge) = match read_charged(state, head, &mut request_body, &rules).await {
        Ok(read) => read,
        // The connection is broken: there is nothing left to read.
        Err(e @ ApiError::BodyRead(_)) => return Err(e),
        Err(e) => {
            // (The charge is given back already: a delayed refusal holds
            // no budget, only its connection.)
            if matches!(e, ApiError::Overloaded { .. })
                && head.declared.is_none_or(|len| len > DELAY_ABOVE)
            {
                tokio::time::sleep(config.refusal_delay).await;
            }
            return Err(e);
        }
    };
    let decoded = match head.format {
        BodyFormat::Binary => {
            head.json_prefix.map_or(0, |n| body::json_decoded_bound(n.min(bytes.len())))
        }
        BodyFormat::Json => body::json_decoded_bound(bytes.len()),
        BodyFormat::Arrow => super::arrow::decoded_bound(bytes.len()),
    };
    let permit =
        charge.complete(&state.admission, bytes.len(), decoded).map_err(|_| overloaded(state))?;
    Ok((bytes, permit))
}

/// Reads the whole body under `rules`, charged to admission as it arrives.
async fn read_charged(
    state: &AppState,
    head: &Head,
    request_body: &mut Body,
    rules: &body::BodyRules,
) -> Result<(Bytes, BodyCharge), ApiError> {
    if head.declared.is_some_and(|len| len > rules.limit) {
        return Err(ApiError::PayloadTooLarge { limit: rules.limit });
    }
    // A declared body that cannot fit now is refused before any of it is
    // read. (Nothing is reserved here: a client that declares much and
    // sends nothing still holds nothing.)
    if head.declared.is_some_and(|len| !state.admission.has_room_for(len)) {
        return Err(overloaded(state));
    }
    let mut charge = state.admission.start_body();
    match body::read(request_body, head.declared, &state.admission, &mut charge, rules).await {
        Ok(bytes) => Ok((bytes, charge)),
        Err(ReadError::TooLarge) => Err(ApiError::PayloadTooLarge { limit: rules.limit }),
        Err(ReadError::Overloaded) => Err(overloaded(state)),
        Err(ReadError::Timeout) => Err(ApiError::BodyTimeout(rules.timeout)),
        Err(ReadError::TooSlow) => {
            Err(ApiError::BodyTooSlow { min_rate: rules.min_rate, grace: rules.grace })
        }
        Err(ReadError::Transport(detail)) => Err(ApiError::BodyRead(detail)),
    }
}

/// Refuses (503) a request that arrives while the server drains: the
/// first step of every route that scores.
pub(super) fn open(state: &AppState) -> Result<(), ApiError> {
    if state.is_draining() {
        state.metrics.reject(Rejection::draining);
        return Err(ApiError::Draining);
    }
    Ok(())
}

/// A 429, counted.
fn overloaded(state: &AppState) -> ApiError {
    state.metrics.reject(Rejection::overloaded);
    ApiError::Overloaded { retry_after: state.retry_after() }
}

/// Bodies up to this size are decoded on the I/O thread that received
/// them: tens of microseconds, less than handing them to another thread.
/// Larger ones are decoded on the blocking pool, so that no body, however
/// costly, holds an I/O thread (and `/healthz` with it).
const DECODE_INLINE: usize = 64 << 10;

/// The rows of a body, as the model is fed them, and their count (see
/// [`decode_now`]), decoded off the I/O threads unless small. An Arrow
/// body's framing is scanned first, and what decoding will allocate beyond
/// the body is charged to `permit` before it is decoded.
pub(super) async fn decode(
    state: &AppState,
    permit: &mut Permit,
    format: BodyFormat,
    bytes: Bytes,
    model: &Arc<Model>,
) -> Result<(Input, usize), ApiError> {
    let (body, expansion) = match format {
        BodyFormat::Arrow => {
            let scanned = off_io(bytes.len(), move || super::arrow::Scanned::new(bytes)).await?;
            let expansion = scanned.expansion();
            charge_decoding(state, permit, expansion)?;
            (Received::Arrow(scanned), expansion)
        }
        _ => (Received::Other(bytes), 0),
    };
    // A binary body's decoding is a length check: never worth a hop.
    let work = match format {
        BodyFormat::Binary => 0,
        _ => body.len().saturating_add(expansion),
    };
    let model = model.clone();
    off_io(work, move || decode_now(format, body, &model)).await
}

/// Runs `work` on the blocking pool when `size` is over
/// [`DECODE_INLINE`], else here.
pub(super) async fn off_io<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if size <= DECODE_INLINE {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("decoding failed: {e}"))))
}

/// A body on its way to being decoded.
enum Received {
    /// An Arrow stream, scanned.
    Arrow(super::arrow::Scanned),
    /// Binary or JSON bytes.
    Other(Bytes),
}

impl Received {
    fn len(&self) -> usize {
        match self {
            Received::Arrow(scanned) => scanned.len(),
            Received::Other(bytes) => bytes.len(),
        }
    }
}

/// Charges what decoding an Arrow stream will allocate beyond its body
/// (dictionary deltas' copies above all), before decoding: 413 when it can
/// never fit the budget, 429 when it does not fit now.
fn charge_decoding(state: &AppState, permit: &mut Permit, bytes: usize) -> Result<(), ApiError> {
    if state.admission.could_ever_hold(permit.held(), bytes) {
        return permit.grow(bytes).map_err(|_| overloaded(state));
    }
    Err(ApiError::TooCostly(format!(
        "the Arrow stream would take {} MiB to decode (each dictionary delta copies its whole \
         dictionary again), more than the server's whole budget of {} MiB \
         (--max-inflight-bytes); write each dictionary whole (pyarrow's default) or send fewer \
         batches a request",
        mib(bytes),
        mib(state.admission.max_bytes())
    )))
}

/// The rows of a body, as the model is fed them, and their count: float32
/// little-endian bytes for a model fed one matrix, checked Arrow columns
/// for a model fed by name (which takes only Arrow: [`Head::parse`]).
fn decode_now(
    format: BodyFormat,
    body: Received,
    model: &Model,
) -> Result<(Input, usize), ApiError> {
    let (bytes, scanned) = match body {
        Received::Arrow(scanned) => (Bytes::new(), Some(scanned)),
        Received::Other(bytes) => (bytes, None),
    };
    let Some(columns) = model.matrix() else {
        let Some(scanned) = scanned else {
            return Err(ApiError::Internal("a model fed by name got a non-Arrow body".into()));
        };
        let len = scanned.len();
        let typed = super::arrow::typed_of(scanned, model)?;
        let rows = typed.rows();
        return Ok((Input::Typed { rows: Arc::new(typed), bytes: len }, rows));
    };
    let (bytes, rows) = match (format, scanned) {
        (_, Some(scanned)) => super::arrow::rows_of(scanned, columns, model.feature_names())?,
        (BodyFormat::Json, None) => body::json_rows(&bytes, columns)?,
        (_, None) => {
            let rows = body::binary_rows(&bytes, columns)?;
            (bytes, rows)
        }
    };
    Ok((Input::Matrix(bytes), rows))
}

/// The outputs `names` names (`?output=`, a v2 request's `outputs`), or
/// the model's default when it names none.
pub(super) fn output_indices(model: &Model, names: &[String]) -> Result<Vec<usize>, ApiError> {
    if names.is_empty() {
        return Ok(vec![model.default_output]);
    }
    names
        .iter()
        .map(|name| {
            model.output_index(name).ok_or_else(|| ApiError::UnknownOutput {
                model: model.name.clone(),
                output: name.to_string(),
                available: model
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// What a route asks of the workers once its rows are decoded.
pub(super) struct Work {
    /// The model version to score with.
    pub(super) model: Arc<Model>,
    /// The rows.
    pub(super) input: Input,
    /// Row count.
    pub(super) rows: usize,
    /// The outputs the answer carries, in its order.
    pub(super) answered: Vec<usize>,
    /// For an embedding model: cut a text over the model's limit there
    /// (true), or refuse the request with a 413 naming it (false).
    pub(super) truncate: bool,
    /// How the answer is encoded, for what it costs.
    pub(super) encoding: Encoding,
    /// Work not started by then is dropped (504).
    pub(super) deadline: Option<Instant>,
    /// How the rows are run (which end of a cut text is kept).
    pub(super) options: RunOptions,
}

/// What a request asks to become of a text over an embedding model's
/// token limit: refused with a 413 (the default), cut there (`truncate`,
/// its start kept, or its end with `keep_end`), or embedded whole in
/// windows (`chunk`, overlapping by `chunk_overlap` tokens, default 0).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LongTexts {
    pub(super) truncate: bool,
    pub(super) chunk: bool,
    pub(super) chunk_overlap: Option<usize>,
    pub(super) keep_end: bool,
}

impl LongTexts {
    /// Checks the choice against `model` (`prefix`: how the route's
    /// parameters are written, `?` or `parameters.`); gives [`Work`]'s
    /// `truncate` (true when no text is refused for its length) and
    /// options.
    pub(super) fn check(self, model: &Model, prefix: &str) -> Result<(bool, RunOptions), ApiError> {
        let bad = |why: String| Err(ApiError::BadParameter(why));
        if self.chunk_overlap.is_some() && !self.chunk {
            return bad(format!(
                "{prefix}chunk_overlap is for chunked texts: add {prefix}chunk=true"
            ));
        }
        if !self.chunk {
            let options = RunOptions { keep_end: self.keep_end, ..RunOptions::default() };
            return Ok((self.truncate, options));
        }
        let Some(config) = model.text.as_ref() else {
            return bad(format!(
                "{prefix}chunk is for embedding models (text in); {} is not one",
                model.name
            ));
        };
        if self.truncate {
            return bad(format!(
                "{prefix}truncate and {prefix}chunk are both asked: a text over the limit is \
                 either cut or embedded in chunks; ask for one"
            ));
        }
        let overlap = self.chunk_overlap.unwrap_or(0);
        let window = config.window_tokens;
        if overlap.saturating_mul(2) >= window {
            return bad(format!(
                "{prefix}chunk_overlap {overlap}: model {} embeds windows of {window} tokens; \
                 the overlap must be less than half of that (at most {})",
                model.name,
                window.saturating_sub(1) / 2
            ));
        }
        Ok((true, RunOptions { chunk_overlap: Some(overlap), ..RunOptions::default() }))
    }
}

/// The prompt a request gets, as an index into `model`'s prompts: the
/// one it names (`prompt_name`, written `{prefix}prompt_name`), else the
/// directory's `default_prompt_name`, else none; a 400 listing the
/// prompts when it names one the model lacks, or names one for a model
/// that is not an embedding model.
pub(super) fn prompt(
    model: &Model,
    name: Option<&str>,
    prefix: &str,
) -> Result<Option<usize>, ApiError> {
    let Some(config) = &model.text else {
        return match name {
            Some(_) => Err(ApiError::BadParameter(format!(
                "{prefix}prompt_name is for embedding models (text in); {} is not one",
                model.name
            ))),
            None => Ok(None),
        };
    };
    let Some(name) = name.or(config.default_prompt.as_deref()) else { return Ok(None) };
    if let Some(i) = config.prompts.keys().position(|k| k == name) {
        return Ok(Some(i));
    }
    let names: Vec<String> = config.prompts.keys().map(|k| format!("{k:?}")).collect();
    Err(ApiError::BadParameter(if names.is_empty() {
        format!(
            "{prefix}prompt_name {name:?}: model {} defines no prompts \
             (config_sentence_transformers.json)",
            model.name
        )
    } else {
        format!(
            "{prefix}prompt_name {name:?}: model {} defines the prompts {}",
            model.name,
            names.join(", ")
        )
    }))
}

/// Runs decoded rows: an embedding model's texts checked ([`check_texts`]),
/// the decoded rows and the answer charged to `permit` ([`charge`]), the
/// rows scored ([`dispatch`]) and, unless `truncate`, a text the model
/// cut refused ([`refuse_truncated`]). The outputs are `answered`'s, in
/// order.
pub(super) async fn run(
    state: &AppState,
    permit: &mut Permit,
    work: Work,
) -> Result<Scored, ApiError> {
    let Work { model, input, rows, answered, truncate, encoding, deadline, options } = work;
    let mut outputs = answered.clone();
    let chunk = options.chunk_overlap.is_some();
    // An embedding model also reports which texts it cut, unless asked to
    // (or, chunking, which took too many windows).
    let truncated = match model.output_index("truncated") {
        Some(t) if model.is_embedding() && (!truncate || chunk) => {
            Some(outputs.iter().position(|&o| o == t).unwrap_or_else(|| {
                outputs.push(t);
                outputs.len() - 1
            }))
        }
        _ => None,
    };
    if let Input::Typed { rows: typed, .. } = &input
        && model.is_embedding()
    {
        check_texts(state, &model, typed, truncate, chunk)?;
    }
    let answer = answer_bytes(&model, &outputs, &answered, encoding, rows);
    charge(state, permit, rows, input.decoded_bytes(), answer)?;
    let mut scored =
        dispatch(state, ScoreJob { model: model.clone(), outputs, rows, input, deadline, options })
            .await?;
    if let Some(t) = truncated {
        refuse_truncated(&model, &scored.outputs[t], chunk)?;
        scored.outputs.truncate(answered.len());
    }
    Ok(scored)
}

/// Scores the rows on the worker pool (nothing for no rows).
async fn dispatch(state: &AppState, job: ScoreJob) -> Result<Scored, ApiError> {
    if job.rows == 0 {
        let model = &job.model;
        return Ok(Scored {
            outputs: job
                .outputs
                .iter()
                .map(|&o| ScoredOutput { data: Vec::new(), columns: model.outputs[o].columns })
                .collect(),
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

/// Refuses, before any text is tokenized, a request with more texts than
/// `--max-texts`, and (unless `truncate`) a text longer in bytes than any
/// text within the model's token limit can be
/// ([`score_engine::embed::max_text_bytes`]; with `truncate` the worker
/// cuts it there before tokenizing). A `chunk`ed text may be
/// [`score_engine::embed::MAX_CHUNKED_WINDOWS`] times as long.
fn check_texts(
    state: &AppState,
    model: &Model,
    texts: &TypedRows,
    truncate: bool,
    chunk: bool,
) -> Result<(), ApiError> {
    let most = state.config.max_texts;
    if texts.rows() > most {
        return Err(ApiError::TooCostly(format!(
            "{} texts in one request; the server takes at most {most} (--max-texts): send \
             fewer a request",
            texts.rows()
        )));
    }
    let Some(limit) = model.max_tokens() else { return Ok(()) };
    if chunk {
        let most = score_engine::embed::max_chunked_text_bytes(limit);
        return match texts.first_longer_than(0, most) {
            Some((row, bytes)) => Err(ApiError::TooCostly(format!(
                "text {row} is {bytes} bytes; a chunked text may have at most {most} bytes \
                 ({} windows of the model's {limit} tokens): split it before sending",
                score_engine::embed::MAX_CHUNKED_WINDOWS
            ))),
            None => Ok(()),
        };
    }
    let most = score_engine::embed::max_text_bytes(limit);
    match texts.first_longer_than(0, most) {
        Some((row, bytes)) if !truncate => {
            Err(ApiError::TextTooManyBytes { row, bytes, most, limit })
        }
        _ => Ok(()),
    }
}

/// A 413 naming the first text the model cut at its limit (`chunk`: the
/// first that took more windows than a text may), given its `truncated`
/// output (1 for a cut text).
fn refuse_truncated(model: &Model, truncated: &ScoredOutput, chunk: bool) -> Result<(), ApiError> {
    let flags = codec::decode(&truncated.data).unwrap_or_default();
    let Some(row) = flags.iter().position(|&t| t != 0.0) else { return Ok(()) };
    let limit = model.max_tokens().unwrap_or_default();
    if chunk {
        let window = model.text.as_ref().map_or(limit, |c| c.window_tokens);
        let most = score_engine::embed::MAX_CHUNKED_WINDOWS;
        return Err(ApiError::TooCostly(format!(
            "text {row} takes more than {most} windows of {window} tokens ({} tokens): a \
             chunked text may take at most that many; split it before sending",
            most * window
        )));
    }
    Err(ApiError::TextTooLong { row, limit })
}
