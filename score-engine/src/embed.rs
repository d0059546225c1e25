//! Sentence embeddings: a transformer encoder (inputs `input_ids`,
//! `attention_mask`, optionally `token_type_ids`) behind its Hugging Face
//! tokenizer and a pooling step, served as a model with one string input
//! (`text`) and float outputs. Loaded from a sentence-transformers export
//! directory ([`EmbeddingPlan::load`]).
//!
//! Everything runs on the worker that scores the call: tokenization,
//! padding, the encoder (an engine [`Plan`]), pooling and normalisation.
//! Inside a call the texts are sorted by token count and cut into
//! sub-batches of at most `--max-batch-tokens` padded tokens, so a long
//! text does not pad every short one; the results go back in input order.
//!
//! A text over the model's token limit is cut there, or, when the
//! request asks for chunks ([`RunOptions::chunk_overlap`]), embedded
//! whole: its tokens (special ones aside) are cut into windows of the
//! limit less the special tokens, each starting `window - overlap` tokens
//! after the one before, the last ending at the text's end (the windows
//! of Hugging Face tokenizers' truncation with a stride). Each window gets
//! the special tokens and is encoded like a text of its own; the text's
//! pooled vector is the mean of its windows' pooled vectors weighted by
//! their token counts, then normalised if the model normalises.

use std::path::Path;
use std::sync::Arc;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams};
use tract_onnx::prelude::*;

use crate::seam::{Engine, EngineKind, Plan, RunOptions, Runner, State, TextLimits};

/// An embedding model's outputs, in order (see [`EmbedState::run`]).
pub const OUTPUTS: [&str; 5] = ["embedding", "pooled", "tokens", "truncated", "chunks"];

/// An encoder call holds at least this many texts before padding waste
/// may end it (fewer would spend more on the call than padding costs).
pub const MIN_CALL_ROWS: usize = 16;

/// How many of the texts of `lengths` (token counts, longest first, the
/// first `longest`) go in one encoder call: at most `max_tokens` padded
/// tokens, and, once the call has [`MIN_CALL_ROWS`] texts, none padded by
/// more than a tenth of its length (a shorter text starts the next call).
fn call_rows(lengths: impl Iterator<Item = usize>, longest: usize, max_tokens: usize) -> usize {
    let cap = (max_tokens / longest).max(1);
    let mut rows = 0;
    for len in lengths {
        if rows == cap || (rows >= MIN_CALL_ROWS && len * 10 < longest * 9) {
            break;
        }
        rows += 1;
    }
    rows.max(1)
}

/// Most padded tokens in one encoder call (rows × longest row) unless
/// `--max-batch-tokens` says otherwise. onnxruntime's working memory grows
/// with it: MiniLM-L6 at 8,192 took about 0.7 GB a worker (512 texts of
/// 128 tokens: +1.5 GB with two workers, and a 500 under a 2 GiB address
/// space cap), at 2,048 about 0.1 GB in the same time; short texts still
/// fill calls of a hundred.
pub const MAX_BATCH_TOKENS: usize = 2048;

/// A worker call (a chunk of a request) holds at most this many times
/// `--max-batch-tokens`, counting a text as at most its bytes + 2 tokens
/// ([`token_bound`]). One: a call of 8,192 such tokens of long texts took
/// 2.2 s of MiniLM-L6 on a core here, and a small request waits for the
/// calls running; at 2,048 about half a second.
pub const CALL_BATCHES: usize = 1;

/// Most bytes of text one token of the model's limit allows, in the bound
/// on a text's length checked before tokenizing ([`max_text_bytes`]).
/// Words of any language take a few bytes a token (Cyrillic 2–6, CJK 3);
/// only long runs of spaces or of unknown characters take more. A text
/// past the bound is over the token limit in any real language.
pub const BYTES_PER_TOKEN: usize = 64;

/// Most bytes a text within a limit of `max_tokens` tokens may have: a
/// longer one is refused (413) before it is tokenized, or with `truncate`
/// cut there first, so that tokenizing costs at most this much whatever
/// the body holds.
pub fn max_text_bytes(max_tokens: usize) -> usize {
    max_tokens.saturating_mul(BYTES_PER_TOKEN)
}

/// Most windows a chunked text may take: a text that takes more is
/// embedded no further than this many and flagged `truncated`, and the
/// server refuses its request (413). So one text costs a bounded encoder
/// time (64 windows of a 128-token model: 8,064 tokens, a long document;
/// most reviews take one to three windows). A text longer than
/// [`max_chunked_text_bytes`] is refused before it is tokenized.
pub const MAX_CHUNKED_WINDOWS: usize = 64;

/// Most bytes a chunked text may have with a limit of `max_tokens`.
pub fn max_chunked_text_bytes(max_tokens: usize) -> usize {
    max_text_bytes(max_tokens).saturating_mul(MAX_CHUNKED_WINDOWS)
}

/// `text` cut to at most `bytes` bytes on a character boundary, and
/// whether it was cut.
fn cut_to(text: &str, bytes: usize) -> (&str, bool) {
    if text.len() <= bytes {
        return (text, false);
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// `text`'s last `bytes` bytes at most, from a character boundary, and
/// whether it was cut.
fn tail_of(text: &str, bytes: usize) -> (&str, bool) {
    if text.len() <= bytes {
        return (text, false);
    }
    let mut start = text.len() - bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (&text[start..], true)
}

/// Bytes a token of the limit the first try at a long text tokenizes
/// ([`encode_start`]): most texts of most languages take fewer.
const FIRST_TRY_BYTES_PER_TOKEN: usize = 8;

/// Tokenizes `text` as the model sees it, at most `max_tokens` tokens,
/// and says whether it was cut. A long text's start (its end with
/// `keep_end`, for a tokenizer truncating on the left) is tokenized, not
/// all of it: first `FIRST_TRY_BYTES_PER_TOKEN` bytes a token of the
/// limit, doubled until the tokens kept stay clear of a word the cut may
/// have split (a space lies between them and the cut), at most
/// [`max_text_bytes`]. The tokens are those of the whole text, for the
/// cost of its start; the overflowing tokens the tokenizer also makes are
/// dropped at once.
fn encode_start(
    tokenizer: &Tokenizer,
    text: &str,
    max_tokens: usize,
    keep_end: bool,
) -> TractResult<(tokenizers::Encoding, bool)> {
    let most = max_text_bytes(max_tokens);
    let mut bytes = max_tokens.saturating_mul(FIRST_TRY_BYTES_PER_TOKEN).min(most);
    loop {
        let (part, cut) = if keep_end { tail_of(text, bytes) } else { cut_to(text, bytes) };
        let mut encoding =
            tokenizer.encode(part, true).map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let overflowed = !encoding.take_overflowing().is_empty();
        if !cut {
            return Ok((encoding, overflowed));
        }
        let words = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .filter(|&(_, &special)| special == 0)
            .map(|(&offsets, _)| offsets);
        let settled = overflowed
            && if keep_end {
                // Where the kept tokens start in `part`: a space before it
                // means the word the cut may have split is not among them.
                let kept_start = words.map(|(start, _)| start).min().unwrap_or(part.len());
                part.get(..kept_start).is_some_and(|rest| rest.contains(char::is_whitespace))
            } else {
                let kept_end = words.map(|(_, end)| end).max().unwrap_or(0);
                part.get(kept_end..).is_some_and(|rest| rest.contains(char::is_whitespace))
            };
        if settled || bytes >= most {
            return Ok((encoding, true));
        }
        bytes = bytes.saturating_mul(2).min(most);
    }
}

/// An upper bound on the tokens `text_bytes` of text take with a limit of
/// `max_tokens`: a token covers at least one byte, and two are special.
/// What the pool charges a text when it cuts requests into calls.
pub fn token_bound(text_bytes: usize, max_tokens: usize) -> usize {
    text_bytes.saturating_add(2).min(max_tokens.max(1))
}

/// How token vectors become one vector per text (`--pooling`: `mean`,
/// `cls`, `last-token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of the text's token vectors (attention mask applied).
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
    /// The last real token's vector.
    LastToken,
}

impl std::str::FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "last-token" | "last" => Ok(Pooling::LastToken),
            other => Err(format!("unknown pooling {other:?}: use mean, cls or last-token")),
        }
    }
}

/// What an export directory says about the encoder around the ONNX file.
#[derive(Clone, Debug)]
pub struct EmbeddingConfig {
    /// Pooling (`1_Pooling/config.json`; mean without one).
    pub pooling: Pooling,
    /// L2-normalise the pooled vector (`modules.json` lists a Normalize).
    pub normalize: bool,
    /// Named prompts put before a text (`config_sentence_transformers.json`'s
    /// `prompts`, as sentence-transformers reads them), by name; a request
    /// names one by its index in this order ([`crate::seam::RunOptions`]).
    pub prompts: std::collections::BTreeMap<String, String>,
    /// The prompt used when a request names none (`default_prompt_name`).
    pub default_prompt: Option<String>,
    /// Whether the model was trained to be cut to fewer dimensions
    /// (Matryoshka): `config_sentence_transformers.json` says
    /// `"matryoshka": true`, or the model card (`README.md`) has a tag
    /// naming Matryoshka (sentence-transformers writes `loss:MatryoshkaLoss`).
    pub matryoshka: bool,
    /// Most tokens a text keeps (special tokens included): the tokenizer's
    /// truncation length, else `sentence_bert_config.json`'s
    /// `max_seq_length`, else 512.
    pub max_tokens: usize,
    /// Most tokens of one window of a chunked text: `max_tokens` less the
    /// special tokens the tokenizer adds (`[CLS]`, `[SEP]`). A chunk
    /// overlap must be less than half of it.
    pub window_tokens: usize,
}

/// The tokenizer, the encoder's plan and the pooling, shared by workers.
pub struct EmbeddingPlan {
    tokenizer: Arc<Tokenizer>,
    /// The same tokenizer truncating on the left (keeping a text's end).
    tokenizer_left: Arc<Tokenizer>,
    /// The same tokenizer not truncating: texts embedded in windows.
    tokenizer_whole: Arc<Tokenizer>,
    encoder: Plan,
    /// The encoder's input names in its order.
    inputs: Vec<String>,
    config: EmbeddingConfig,
    /// Most padded tokens in one encoder call.
    max_batch_tokens: usize,
    /// Floats a vector.
    pub dim: usize,
}

impl EmbeddingPlan {
    /// Reads `dir`'s tokenizer and configuration; `encoder` is the loaded
    /// `model.onnx` with its input names and hidden size; encoder calls
    /// take at most `max_batch_tokens` padded tokens.
    pub fn load(
        dir: &Path,
        encoder: Plan,
        inputs: Vec<String>,
        dim: usize,
        max_batch_tokens: usize,
        pooling: Option<Pooling>,
    ) -> Result<EmbeddingPlan, String> {
        for name in &inputs {
            if !matches!(name.as_str(), "input_ids" | "attention_mask" | "token_type_ids") {
                return Err(format!(
                    "the encoder has an input {name:?}; an embedding model takes input_ids, \
                     attention_mask and optionally token_type_ids"
                ));
            }
        }
        let path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config = read_config(dir, &tokenizer, pooling)?;
        tokenizer.with_padding(None);
        let mut tokenizer_whole = tokenizer.clone();
        tokenizer_whole.with_truncation(None).map_err(|e| format!("tokenizer truncation: {e}"))?;
        let added_tokens = tokenizer.get_post_processor().map_or(0, |p| {
            use tokenizers::PostProcessor as _;
            p.added_tokens(false)
        });
        if added_tokens >= config.max_tokens {
            return Err(format!(
                "the tokenizer adds {added_tokens} special tokens to a text of at most {} tokens",
                config.max_tokens
            ));
        }
        config.window_tokens = config.max_tokens - added_tokens;
        let truncating = |tokenizer: &mut Tokenizer, direction| {
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length: config.max_tokens,
                    direction,
                    ..TruncationParams::default()
                }))
                .map(|_| ())
                .map_err(|e| format!("tokenizer truncation: {e}"))
        };
        let mut tokenizer_left = tokenizer.clone();
        truncating(&mut tokenizer, TruncationDirection::Right)?;
        truncating(&mut tokenizer_left, TruncationDirection::Left)?;
        Ok(EmbeddingPlan {
            tokenizer: Arc::new(tokenizer),
            tokenizer_left: Arc::new(tokenizer_left),
            tokenizer_whole: Arc::new(tokenizer_whole),
            encoder,
            inputs,
            config,
            max_batch_tokens: max_batch_tokens.max(1),
            dim,
        })
    }

    /// The configuration read from the directory.
    pub fn config(&self) -> &EmbeddingConfig {
        &self.config
    }

    /// Most padded tokens in one encoder call (`--max-batch-tokens`).
    pub fn max_batch_tokens(&self) -> usize {
        self.max_batch_tokens
    }

    /// Which engine runs the encoder.
    pub fn encoder_kind(&self) -> EngineKind {
        self.encoder.kind()
    }

    /// A worker's state: its own encoder state.
    pub fn spawn(self: &Arc<Self>) -> TractResult<EmbedState> {
        Ok(EmbedState { plan: self.clone(), encoder: self.encoder.spawn()? })
    }
}

/// An [`EmbeddingPlan`] as an engine the pool runs: text in, vectors out.
pub struct TextEngine(pub Arc<EmbeddingPlan>);

impl Engine for TextEngine {
    fn kind(&self) -> EngineKind {
        self.0.encoder_kind()
    }

    fn spawn(&self) -> TractResult<State> {
        Ok(Box::new(self.0.spawn()?))
    }

    fn text(&self) -> Option<TextLimits> {
        Some(TextLimits {
            max_tokens: self.0.config.max_tokens,
            call_tokens: self.0.max_batch_tokens.saturating_mul(CALL_BATCHES),
        })
    }
}

impl Runner for EmbedState {
    fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        EmbedState::run(self, inputs, &RunOptions::default())
    }

    fn run_with(
        &mut self,
        inputs: TVec<TValue>,
        options: &RunOptions,
    ) -> TractResult<TVec<TValue>> {
        EmbedState::run(self, inputs, options)
    }
}

fn read_config(
    dir: &Path,
    tokenizer: &Tokenizer,
    flag: Option<Pooling>,
) -> Result<EmbeddingConfig, String> {
    let json = |name: &str| -> Result<Option<serde_json::Value>, String> {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is not JSON: {e}", path.display())),
            Err(_) => Ok(None),
        }
    };
    let pooling = match json("1_Pooling/config.json")? {
        None => flag.unwrap_or(Pooling::Mean),
        Some(p) => {
            let on = |key: &str| p.get(key).and_then(serde_json::Value::as_bool) == Some(true);
            // sentence-transformers 6 names the mode in one string; older
            // versions set one boolean a mode.
            let mode = p.get("pooling_mode").and_then(serde_json::Value::as_str);
            let read = if on("pooling_mode_mean_tokens") || mode == Some("mean") {
                Pooling::Mean
            } else if on("pooling_mode_cls_token") || mode == Some("cls") {
                Pooling::Cls
            } else if on("pooling_mode_lasttoken") || mode == Some("lasttoken") {
                Pooling::LastToken
            } else {
                return Err(format!(
                    "1_Pooling/config.json asks for a pooling the server does not do ({p}); \
                     mean, CLS and last token are supported"
                ));
            };
            if let Some(flag) = flag.filter(|&f| f != read) {
                return Err(format!(
                    "--pooling says {flag:?} but 1_Pooling/config.json says {read:?}; drop \
                     the flag (it is for directories without that file)"
                ));
            }
            read
        }
    };
    let normalize = json("modules.json")?.is_some_and(|m| {
        m.as_array().is_some_and(|modules| {
            modules.iter().any(|module| {
                module
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| t.ends_with(".Normalize"))
            })
        })
    });
    let max_tokens = match tokenizer.get_truncation() {
        Some(t) => t.max_length,
        None => json("sentence_bert_config.json")?
            .and_then(|c| c.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map_or(512, |n| n as usize),
    };
    let st = json("config_sentence_transformers.json")?;
    let prompts: std::collections::BTreeMap<String, String> = st
        .as_ref()
        .and_then(|c| c.get("prompts"))
        .and_then(serde_json::Value::as_object)
        .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let default_prompt = st
        .as_ref()
        .and_then(|c| c.get("default_prompt_name"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    if let Some(name) = default_prompt.as_ref().filter(|n| !prompts.contains_key(*n)) {
        return Err(format!(
            "config_sentence_transformers.json names {name:?} as the default prompt but defines \
             no prompt of that name"
        ));
    }
    let matryoshka =
        st.as_ref().and_then(|c| c.get("matryoshka")).and_then(serde_json::Value::as_bool)
            == Some(true)
            || card_tags(dir).iter().any(|t| t.to_ascii_lowercase().contains("matryoshka"));
    Ok(EmbeddingConfig {
        pooling,
        normalize,
        prompts,
        default_prompt,
        matryoshka,
        max_tokens,
        window_tokens: max_tokens,
    })
}

/// The `tags:` of a model card's YAML front matter (`README.md` as the
/// Hugging Face hub writes it: `---`, `tags:`, `- name` lines, `---`);
/// none without a card.
fn card_tags(dir: &Path) -> Vec<String> {
    let Ok(card) = std::fs::read_to_string(dir.join("README.md")) else { return Vec::new() };
    let mut lines = card.lines();
    if lines.next().map(str::trim) != Some("---") {
        return Vec::new();
    }
    let mut tags = Vec::new();
    let mut in_tags = false;
    for line in lines.take_while(|l| l.trim() != "---") {
        if let Some(item) = line.trim_start().strip_prefix("- ").filter(|_| in_tags) {
            tags.push(item.trim().trim_matches(['"', '\'']).to_string());
        } else {
            in_tags = line.trim_end() == "tags:";
        }
    }
    tags
}

/// Scales `v` to unit length (L2); a zero vector stays zero. What a
/// Normalize module does, and what the routes do to vectors they cut.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// One worker's tokenizer use and encoder state.
pub struct EmbedState {
    plan: Arc<EmbeddingPlan>,
    encoder: State,
}

impl EmbedState {
    /// Embeds a `[N]` string tensor. Outputs, in this order
    /// ([`OUTPUTS`]): `embedding` `[N, dim]` (pooled, then L2-normalised
    /// when the export says so), `pooled` `[N, dim]` (never normalised),
    /// `tokens` `[N]` (tokens the encoder saw, special ones included, all
    /// windows counted), `truncated` `[N]` (1 where the text was longer
    /// than the model's limit and cut there: its start kept, or its end
    /// with `options.keep_end`; chunked, where it took more than
    /// [`MAX_CHUNKED_WINDOWS`] windows) and `chunks` `[N]` (the windows a
    /// text took: 1 unless `options.chunk_overlap` and the text is over
    /// the limit).
    pub fn run(&mut self, inputs: TVec<TValue>, options: &RunOptions) -> TractResult<TVec<TValue>> {
        let texts = inputs.first().ok_or_else(|| anyhow::anyhow!("no text input"))?;
        let plain = texts.try_as_plain_ram()?;
        let texts: &[String] = plain.as_slice::<String>()?;
        let plan = self.plan.clone();
        // Every window the encoder runs, and the text it belongs to.
        let mut encodings = Vec::with_capacity(texts.len());
        let mut owner = Vec::with_capacity(texts.len());
        let mut truncated = Vec::with_capacity(texts.len());
        let mut chunks = vec![0f32; texts.len()];
        let tokenizer = if options.keep_end { &plan.tokenizer_left } else { &plan.tokenizer };
        let prompt = match options.prompt {
            Some(i) => Some(plan.config.prompts.values().nth(i).ok_or_else(|| {
                anyhow::anyhow!("prompt {i}: the model has {}", plan.config.prompts.len())
            })?),
            None => None,
        };
        let prompted: Vec<String>;
        let texts: &[String] = match prompt.filter(|p| !p.is_empty()) {
            Some(prompt) => {
                prompted = texts.iter().map(|t| format!("{prompt}{t}")).collect();
                &prompted
            }
            None => texts,
        };
        for (i, text) in texts.iter().enumerate() {
            let windows = match options.chunk_overlap {
                Some(overlap) => {
                    let mut windows = windows(&plan, text, overlap)?;
                    let over = windows.len() > MAX_CHUNKED_WINDOWS;
                    windows.truncate(MAX_CHUNKED_WINDOWS);
                    truncated.push(f32::from(u8::from(over)));
                    windows
                }
                None => {
                    let (encoding, cut) =
                        encode_start(tokenizer, text, plan.config.max_tokens, options.keep_end)?;
                    truncated.push(f32::from(u8::from(cut)));
                    vec![encoding]
                }
            };
            chunks[i] = windows.len() as f32;
            owner.extend(std::iter::repeat_n(i, windows.len()));
            encodings.extend(windows);
        }
        let dim = plan.dim;
        // Each window's pooled vector.
        let mut pooled_windows = vec![0f32; encodings.len() * dim];
        // Longest first; equal lengths keep their order.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut start = 0;
        while start < order.len() {
            let longest = encodings[order[start]].len().max(1);
            let lengths = order[start..].iter().map(|&i| encodings[i].len());
            let rows = call_rows(lengths, longest, plan.max_batch_tokens);
            let batch = &order[start..start + rows];
            let hidden = self.encode(batch, &encodings, longest)?;
            let hidden = hidden.try_as_plain_ram()?;
            let hidden: &[f32] = hidden.as_slice::<f32>()?;
            for (b, &w) in batch.iter().enumerate() {
                let row = &hidden[b * longest * dim..][..longest * dim];
                let raw = &mut pooled_windows[w * dim..][..dim];
                pool(plan.config.pooling, row, encodings[w].len(), dim, raw);
            }
            start += rows;
        }
        // Each text's vector: its one window's, or its windows' mean
        // weighted by their token counts.
        let n = texts.len();
        let mut pooled = vec![0f32; n * dim];
        let mut tokens = vec![0f32; n];
        let mut w = 0;
        while w < encodings.len() {
            let i = owner[w];
            let count = chunks[i] as usize;
            let v = &mut pooled[i * dim..][..dim];
            if count == 1 {
                v.copy_from_slice(&pooled_windows[w * dim..][..dim]);
                tokens[i] = encodings[w].len() as f32;
            } else {
                for k in w..w + count {
                    let weight = encodings[k].len() as f32;
                    tokens[i] += weight;
                    for (o, x) in v.iter_mut().zip(&pooled_windows[k * dim..][..dim]) {
                        *o += weight * x;
                    }
                }
                let total = tokens[i].max(1.0);
                v.iter_mut().for_each(|o| *o /= total);
            }
            w += count;
        }
        let mut out = pooled.clone();
        if plan.config.normalize {
            out.chunks_mut(dim.max(1)).for_each(l2_normalize);
        }
        Ok(tvec![
            tract_ndarray::Array2::from_shape_vec((n, dim), out)?.into_tensor().into(),
            tract_ndarray::Array2::from_shape_vec((n, dim), pooled)?.into_tensor().into(),
            tract_ndarray::Array1::from_vec(tokens).into_tensor().into(),
            tract_ndarray::Array1::from_vec(truncated).into_tensor().into(),
            tract_ndarray::Array1::from_vec(chunks).into_tensor().into(),
        ])
    }

    /// Runs the encoder on the texts `batch` (indices into `encodings`),
    /// padded to `longest` tokens; gives the hidden states `[b, longest, dim]`.
    fn encode(
        &mut self,
        batch: &[usize],
        encodings: &[tokenizers::Encoding],
        longest: usize,
    ) -> TractResult<TValue> {
        let b = batch.len();
        let mut ids = vec![0i64; b * longest];
        let mut mask = vec![0i64; b * longest];
        let mut types = vec![0i64; b * longest];
        for (r, &i) in batch.iter().enumerate() {
            let e = &encodings[i];
            for (t, ((&id, &m), &ty)) in
                e.get_ids().iter().zip(e.get_attention_mask()).zip(e.get_type_ids()).enumerate()
            {
                ids[r * longest + t] = i64::from(id);
                mask[r * longest + t] = i64::from(m);
                types[r * longest + t] = i64::from(ty);
            }
        }
        let tensor = |v: Vec<i64>| -> TractResult<TValue> {
            Ok(tract_ndarray::Array2::from_shape_vec((b, longest), v)?.into_tensor().into())
        };
        let (mut ids, mut mask, mut types) = (Some(ids), Some(mask), Some(types));
        let mut inputs = TVec::new();
        for name in &self.plan.inputs {
            let values = match name.as_str() {
                "input_ids" => ids.take(),
                "attention_mask" => mask.take(),
                _ => types.take(),
            };
            inputs.push(tensor(values.ok_or_else(|| anyhow::anyhow!("input {name} twice"))?)?);
        }
        let mut outputs = self.encoder.run(inputs)?;
        anyhow::ensure!(!outputs.is_empty(), "the encoder gave no output");
        let hidden = outputs.remove(0);
        anyhow::ensure!(
            hidden.shape() == [b, longest, self.plan.dim],
            "the encoder's first output has shape {:?}, expected [{b}, {longest}, {}]",
            hidden.shape(),
            self.plan.dim
        );
        Ok(hidden)
    }
}

/// `text`'s windows for chunked embedding: the whole text when it fits
/// the limit, else windows of [`EmbeddingConfig::window_tokens`] tokens
/// that overlap by `overlap`, each with the special tokens (see the
/// module's documentation).
fn windows(
    plan: &EmbeddingPlan,
    text: &str,
    overlap: usize,
) -> TractResult<Vec<tokenizers::Encoding>> {
    let window = plan.config.window_tokens;
    anyhow::ensure!(
        overlap.saturating_mul(2) < window,
        "a chunk overlap of {overlap} tokens: it must be less than half of a window ({window} \
         tokens)"
    );
    let tokenizer = &plan.tokenizer_whole;
    let mut encoding =
        tokenizer.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    if encoding.len() > window {
        encoding.truncate(window, overlap, TruncationDirection::Right);
    }
    let mut encoding = tokenizer
        .post_process(encoding, None, true)
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let rest = encoding.take_overflowing();
    let mut windows = Vec::with_capacity(1 + rest.len());
    windows.push(encoding);
    windows.extend(rest);
    Ok(windows)
}

/// Pools one text's token vectors (`row`: `longest × dim`, the first
/// `tokens` real) into `out`.
fn pool(pooling: Pooling, row: &[f32], tokens: usize, dim: usize, out: &mut [f32]) {
    match pooling {
        Pooling::Cls => out.copy_from_slice(&row[..dim]),
        Pooling::LastToken => {
            out.copy_from_slice(&row[tokens.saturating_sub(1) * dim..][..dim]);
        }
        Pooling::Mean => {
            out.fill(0.0);
            for t in 0..tokens {
                for (o, x) in out.iter_mut().zip(&row[t * dim..][..dim]) {
                    *o += x;
                }
            }
            let n = tokens.max(1) as f32;
            out.iter_mut().for_each(|o| *o /= n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_on_a_character_boundary() {
        assert_eq!(cut_to("short", 64), ("short", false));
        assert_eq!(cut_to("абв", 3), ("а", true), "a 2-byte character is not split");
        assert_eq!(max_text_bytes(128), 8192);
        assert_eq!(token_bound(0, 128), 2);
        assert_eq!(token_bound(10_000, 128), 128);
    }

    #[test]
    fn calls_end_at_the_token_budget_or_at_padding_waste() {
        // Equal lengths: the token budget alone ends a call.
        assert_eq!(call_rows(std::iter::repeat_n(64, 500), 64, 8192), 128);
        // A text far longer than the budget still goes, alone.
        assert_eq!(call_rows([10_000, 5].into_iter(), 10_000, 8192), 1);
        // 20 texts of 20 tokens, then shorter ones: the call ends at the
        // first text padded by more than a tenth, once it has 16 texts.
        let lengths: Vec<usize> = [vec![20; 20], vec![17; 30]].concat();
        assert_eq!(call_rows(lengths.iter().copied(), 20, 8192), 20);
        // Fewer than MIN_CALL_ROWS so far: shorter texts still join.
        let lengths: Vec<usize> = [vec![20; 4], vec![10; 30]].concat();
        assert_eq!(call_rows(lengths.iter().copied(), 20, 8192), 16);
        // The end of the input ends the call.
        assert_eq!(call_rows([20, 19, 18].into_iter(), 20, 8192), 3);
    }
}
