//! The compute pool: OS threads that run the models, fed by one bounded queue.
//!
//! Model compute never runs on tokio threads: a scoring call takes from
//! microseconds to seconds and would stall every connection sharing the
//! runtime. Each worker owns one tract state per model, spawned from the
//! model's shared optimized plan.
//!
//! A request is cut into chunks ([`Pool::score`]) so that idle workers score a
//! large request in parallel, and so that no worker call runs long: by rows
//! (`--max-batch-rows`), and for an embedding model by an upper bound on its
//! tokens (`--max-batch-tokens`: a text of n bytes is at most n + 2
//! tokens, and at most the model's limit), so a call of 4,096 long texts
//! cannot take a worker for half a minute. A request keeps at most `workers + 1`
//! chunks in the queue at a time, so one huge request cannot fill it.
//!
//! The queue has two lanes. Requests small enough to be one chunk of under
//! [`MIN_CHUNK_ROWS`] rows go in the small lane, which workers serve first
//! (but for one pick in [`SMALL_STREAK`] + 1 while both lanes hold work, so
//! a flood of small requests slows a large one without starving it);
//! chunks of larger requests go in the other. A small request thus waits
//! for about the chunks already running, not behind the queued chunks of a
//! large one. A worker that pops a small job also takes the small jobs
//! queued right behind it for the same model (until the call has that many
//! rows, or for an embedding model that token budget) and scores them in
//! one model call: dynamic batching with no added wait. Chunks of a split
//! request are never merged: that would undo the split and leave the other
//! workers idle.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;
use tract_onnx::prelude::*;

use crate::metrics::Metrics;
use score_engine::Model;
use score_engine::State;
use score_engine::error::panic_message;
use score_engine::input::{SharedRows, Values};
use score_engine::seam::RunOptions;

/// Requests smaller than this many rows per worker are not split: below it the
/// per-call overhead outweighs the parallelism. Jobs smaller than it are the
/// ones merged.
pub const MIN_CHUNK_ROWS: usize = 256;

/// Small-lane jobs a worker takes in a row while chunks of large requests
/// wait, before it takes one of those.
const SMALL_STREAK: usize = 4;

/// Why scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The queue is full. Admission control makes this unreachable in
    /// practice; it is reported as overload rather than waited on.
    #[error("the compute queue is full")]
    QueueFull,
    /// The request's deadline passed before its work started.
    #[error("the deadline passed before the work started")]
    DeadlineExceeded,
    /// The model failed; the detail is for the log.
    #[error("model {model} failed: {failure}")]
    Model {
        /// Model name.
        model: String,
        /// How.
        failure: ModelFailure,
    },
    /// The pool shut down while the request was queued.
    #[error("the worker pool stopped")]
    Stopped,
}

/// How a model call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ModelFailure {
    /// tract returned an error.
    #[error("{0}")]
    Engine(String),
    /// The model call panicked; the worker's state for the model is
    /// replaced, since it may be half-updated.
    #[error("panic in model call: {0}")]
    Panic(String),
    /// The worker has no state for the model (spawning it failed).
    #[error("no model state on this worker: {0}")]
    NoState(String),
    /// An output could not be served as float32 rows.
    #[error("output {output}: {detail}")]
    Output {
        /// Output name.
        output: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Pool sizing.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Worker threads.
    pub workers: usize,
    /// Most rows in one model call (splitting and merging both respect it).
    pub max_batch_rows: usize,
    /// Most requests admitted at once; sizes the queue.
    pub max_requests: usize,
}

/// What a request feeds its model.
#[derive(Debug)]
pub enum Input {
    /// The model's one float32 matrix: `rows * columns * 4` bytes of float32
    /// little-endian.
    Matrix(Bytes),
    /// One checked Arrow column per model input (a model fed by name), and
    /// the body's size (for the cost estimate).
    Typed {
        /// The rows.
        rows: SharedRows,
        /// Bytes of the body they came from.
        bytes: usize,
    },
}

impl Input {
    /// Bytes the input takes beyond its body once expanded for the model
    /// (strings of a model fed by name; nothing for float32 rows).
    pub fn decoded_bytes(&self) -> usize {
        match self {
            Input::Matrix(_) => 0,
            Input::Typed { rows, .. } => rows.decoded_bytes(),
        }
    }
}

/// One chunk's input: a slice of a request's.
#[derive(Debug)]
enum ChunkInput {
    Matrix(Bytes),
    Typed { rows: SharedRows, start: usize, bytes: usize },
}

impl ChunkInput {
    fn bytes(&self) -> usize {
        match self {
            ChunkInput::Matrix(b) => b.len(),
            ChunkInput::Typed { bytes, .. } => *bytes,
        }
    }
}

/// One request to score.
#[derive(Debug)]
pub struct ScoreJob {
    /// The model version to score with: the one the request started with,
    /// whatever a reload swaps in meanwhile.
    pub model: Arc<Model>,
    /// Indices of the outputs to return, in the answer's order (at least
    /// one).
    pub outputs: Vec<usize>,
    /// Input rows.
    pub rows: usize,
    /// The rows.
    pub input: Input,
    /// Work not started by then is dropped.
    pub deadline: Option<Instant>,
    /// How the rows are run (a text's cut end, for an embedding model).
    pub options: RunOptions,
}

/// One output of a scored request.
#[derive(Debug, Default)]
pub struct ScoredOutput {
    /// `rows * columns * 4` bytes of float32 little-endian.
    pub data: Vec<u8>,
    /// Floats per row.
    pub columns: usize,
}

/// A scored request.
#[derive(Debug)]
pub struct Scored {
    /// The requested outputs, in the job's order.
    pub outputs: Vec<ScoredOutput>,
    /// Longest time a chunk of this request waited in the queue.
    pub queue_time: Duration,
    /// Model time summed over the chunks (exceeds wall time when parallel).
    pub compute_time: Duration,
}

struct Job {
    model: Arc<Model>,
    outputs: Arc<[usize]>,
    rows: usize,
    /// For an embedding model, the upper bound on the chunk's tokens.
    tokens: usize,
    input: ChunkInput,
    deadline: Option<Instant>,
    options: RunOptions,
    enqueued: Instant,
    reply: oneshot::Sender<Result<ChunkOut, ComputeError>>,
    span: tracing::Span,
}

struct ChunkOut {
    outputs: Vec<ScoredOutput>,
    queue_time: Duration,
    compute_time: Duration,
}

/// The worker threads and the sending end of their queue.
pub struct Pool {
    /// The small lane, then chunks of split requests.
    sender: Option<(Sender<Job>, Sender<Job>)>,
    threads: Vec<JoinHandle<()>>,
    config: PoolConfig,
    /// Exponentially weighted compute cost in nanoseconds per input byte
    /// (f64 bits), for Retry-After estimates.
    ns_per_byte: Arc<AtomicU64>,
}

impl Pool {
    /// Starts `config.workers` threads, each with a state for every model
    /// of `models` (a model version loaded later gets its state on a
    /// worker's first job for it).
    pub fn start(
        models: &[Arc<Model>],
        config: PoolConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Pool> {
        // Each admitted request has at most `window` chunks queued, so this
        // bound is never reached while admission holds; it is a backstop.
        let capacity = config.max_requests.saturating_mul(window(&config)).max(1);
        let (small, small_receiver) = crossbeam_channel::bounded(capacity);
        let (large, large_receiver) = crossbeam_channel::bounded(capacity);
        let ns_per_byte = Arc::new(AtomicU64::new(1.0f64.to_bits()));
        let mut threads = Vec::with_capacity(config.workers);
        for ix in 0..config.workers {
            let worker = Worker {
                small: small_receiver.clone(),
                large: large_receiver.clone(),
                initial: models.to_vec(),
                max_batch_rows: config.max_batch_rows,
                metrics: metrics.clone(),
                ns_per_byte: ns_per_byte.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("score-worker-{ix}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(Pool { sender: Some((small, large)), threads, config, ns_per_byte })
    }

    /// Scores a request: splits it into chunks, lets idle workers take them,
    /// and reassembles the outputs in order. Dropping the future abandons the
    /// chunks not yet started (workers skip them).
    pub async fn score(&self, job: ScoreJob) -> Result<Scored, ComputeError> {
        let model = &job.model;
        let (ends, tokens) = chunk_ends(&job, &self.config);
        let lane = usize::from(ends.len() > 1 || job.rows >= MIN_CHUNK_ROWS);
        let span = tracing::Span::current();
        let mut pending = VecDeque::new();
        let mut next_row = 0;
        let mut chunks = ends.iter().zip(&tokens);
        let outputs: Arc<[usize]> = job.outputs.into();
        let mut scored = Scored {
            outputs: outputs
                .iter()
                .map(|&o| {
                    let columns = model.outputs[o].columns;
                    ScoredOutput { data: Vec::with_capacity(job.rows * columns * 4), columns }
                })
                .collect(),
            queue_time: Duration::ZERO,
            compute_time: Duration::ZERO,
        };
        loop {
            while pending.len() < window(&self.config) && next_row < job.rows {
                let Some((&end, &tokens)) = chunks.next() else { break };
                let rows = end - next_row;
                let (reply, receiver) = oneshot::channel();
                let input = match &job.input {
                    Input::Matrix(bytes) => {
                        let row_bytes = bytes.len() / job.rows;
                        ChunkInput::Matrix(
                            bytes.slice(next_row * row_bytes..(next_row + rows) * row_bytes),
                        )
                    }
                    Input::Typed { rows: typed, bytes } => ChunkInput::Typed {
                        rows: typed.clone(),
                        start: next_row,
                        bytes: bytes * rows / job.rows,
                    },
                };
                self.submit(
                    lane,
                    Job {
                        model: job.model.clone(),
                        outputs: outputs.clone(),
                        rows,
                        tokens,
                        input,
                        deadline: job.deadline,
                        options: job.options,
                        enqueued: Instant::now(),
                        reply,
                        span: span.clone(),
                    },
                )?;
                pending.push_back(receiver);
                next_row += rows;
            }
            let Some(receiver) = pending.pop_front() else { break };
            let out = receiver.await.map_err(|_| ComputeError::Stopped)??;
            for (whole, part) in scored.outputs.iter_mut().zip(out.outputs) {
                whole.columns = part.columns;
                whole.data.extend_from_slice(&part.data);
            }
            scored.queue_time = scored.queue_time.max(out.queue_time);
            scored.compute_time += out.compute_time;
        }
        Ok(scored)
    }

    /// Queues `job` in `lane` (0: small, 1: chunks of split requests).
    fn submit(&self, lane: usize, job: Job) -> Result<(), ComputeError> {
        let (small, large) = self.sender.as_ref().ok_or(ComputeError::Stopped)?;
        let sender = if lane == 0 { small } else { large };
        sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => ComputeError::QueueFull,
            TrySendError::Disconnected(_) => ComputeError::Stopped,
        })
    }

    /// Jobs waiting in the queue (not counting those being scored).
    pub fn queued(&self) -> usize {
        self.sender.as_ref().map_or(0, |(small, large)| small.len() + large.len())
    }

    /// How long the workers need to score `bytes` of input, from recent
    /// throughput.
    pub fn estimate(&self, bytes: usize) -> Duration {
        let ns_per_byte = f64::from_bits(self.ns_per_byte.load(Ordering::Relaxed));
        Duration::from_secs_f64(bytes as f64 * ns_per_byte / 1e9 / self.config.workers as f64)
    }

    /// Worker thread count.
    pub fn workers(&self) -> usize {
        self.config.workers
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the channel lets each worker finish its job and exit.
        self.sender.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a score worker panicked outside a model call; this is a bug");
            }
        }
    }
}

/// Chunks of one request in the queue at once: one per worker, plus one so a
/// worker finishing a chunk finds the next already queued.
fn window(config: &PoolConfig) -> usize {
    config.workers + 1
}

/// Rows per chunk: an equal share per worker, but neither so small that
/// per-call overhead dominates nor above the per-call cap.
fn chunk_rows(rows: usize, config: &PoolConfig) -> usize {
    rows.div_ceil(config.workers).max(MIN_CHUNK_ROWS).min(config.max_batch_rows).max(1)
}

/// Where a request's chunks end (row indices, the last `job.rows`), and
/// each chunk's token bound (0 but for an embedding model). An embedding
/// model's texts are cut by their token bound
/// ([`score_engine::embed::token_bound`]) under the model's budget, and
/// by the row cap; other models' rows by [`chunk_rows`].
fn chunk_ends(job: &ScoreJob, config: &PoolConfig) -> (Vec<usize>, Vec<usize>) {
    let (Input::Typed { rows: typed, .. }, Some((limit, budget))) =
        (&job.input, job.model.token_budget())
    else {
        let chunk = chunk_rows(job.rows, config);
        let ends: Vec<usize> =
            (1..=job.rows.div_ceil(chunk)).map(|i| (i * chunk).min(job.rows)).collect();
        let tokens = vec![0; ends.len()];
        return (ends, tokens);
    };
    let (mut ends, mut tokens) = (Vec::new(), Vec::new());
    let (mut sum, mut start) = (0usize, 0usize);
    // A chunked text takes all its tokens, not the limit's.
    let limit = if job.options.chunk_overlap.is_some() { usize::MAX } else { limit };
    for (row, len) in typed.text_lengths(0).into_iter().enumerate() {
        let bound = score_engine::embed::token_bound(len, limit);
        if row > start && (sum + bound > budget || row - start == config.max_batch_rows) {
            ends.push(row);
            tokens.push(sum);
            (sum, start) = (0, row);
        }
        sum += bound;
    }
    ends.push(job.rows);
    tokens.push(sum);
    (ends, tokens)
}

struct Worker {
    /// Small requests, served first.
    small: Receiver<Job>,
    /// Chunks of split requests.
    large: Receiver<Job>,
    /// The models served at start: their states are made before the first
    /// request.
    initial: Vec<Arc<Model>>,
    max_batch_rows: usize,
    metrics: Arc<Metrics>,
    ns_per_byte: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self) {
        let mut states = States::default();
        for model in std::mem::take(&mut self.initial) {
            states.get(&model);
        }
        // A job popped while gathering a batch that belongs to another model.
        let mut carry: Option<Job> = None;
        let mut streak = 0;
        loop {
            let first = match carry.take().or_else(|| self.next(&mut streak)) {
                Some(job) => job,
                None => return,
            };
            let Some(first) = self.admit(first) else { continue };
            let model = first.model.clone();
            let budget = model.token_budget().map_or(usize::MAX, |(_, budget)| budget);
            let (mut rows, mut tokens) = (first.rows, first.tokens);
            let mut batch = vec![first];
            while rows < MIN_CHUNK_ROWS && rows < self.max_batch_rows {
                let Ok(job) = self.small.try_recv() else { break };
                if !Arc::ptr_eq(&job.model, &model)
                    || job.options != batch[0].options
                    || rows + job.rows > self.max_batch_rows
                    || tokens + job.tokens > budget
                {
                    carry = Some(job);
                    break;
                }
                if let Some(job) = self.admit(job) {
                    rows += job.rows;
                    tokens += job.tokens;
                    batch.push(job);
                }
            }
            self.score_batch(states.get(&model), batch, rows);
        }
    }

    /// The next job, from the small lane first but for every
    /// [`SMALL_STREAK`]th pick while chunks wait (so a flood of small
    /// requests slows a large one rather than starving it); `None` once
    /// the pool is closed and both lanes are empty.
    fn next(&self, streak: &mut usize) -> Option<Job> {
        if *streak >= SMALL_STREAK
            && let Ok(job) = self.large.try_recv()
        {
            *streak = 0;
            return Some(job);
        }
        if let Ok(job) = self.small.try_recv() {
            *streak += 1;
            return Some(job);
        }
        *streak = 0;
        crossbeam_channel::select_biased! {
            recv(self.small) -> job => job.ok().or_else(|| self.large.recv().ok()),
            recv(self.large) -> job => job.ok().or_else(|| self.small.recv().ok()),
        }
    }

    /// Drops a job whose caller has gone or whose deadline has passed.
    fn admit(&self, job: Job) -> Option<Job> {
        if job.reply.is_closed() {
            self.metrics.jobs_abandoned.inc();
            return None;
        }
        if job.deadline.is_some_and(|d| Instant::now() > d) {
            self.metrics.jobs_deadline_exceeded.inc();
            let _ = job.reply.send(Err(ComputeError::DeadlineExceeded));
            return None;
        }
        Some(job)
    }

    fn score_batch(&self, state: &mut Result<State, String>, batch: Vec<Job>, rows: usize) {
        let model = &batch[0].model.clone();
        let started = Instant::now();
        let result = match state.as_mut() {
            Ok(state) => {
                let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    state.run_with(build_inputs(model, &batch, rows)?, &batch[0].options)
                }));
                match run {
                    Ok(result) => result.map_err(|e| ModelFailure::Engine(format!("{e:#}"))),
                    Err(panic) => Err(ModelFailure::Panic(panic_message(&*panic))),
                }
            }
            Err(e) => Err(ModelFailure::NoState(e.clone())),
        };
        let compute_time = started.elapsed();
        self.metrics.observe_batch(&model.name, rows, batch.len(), compute_time);
        let input_bytes: usize = batch.iter().map(|j| j.input.bytes()).sum();
        self.update_cost(compute_time, input_bytes);

        let outputs = match result {
            Ok(outputs) => outputs,
            Err(failure) => {
                if matches!(failure, ModelFailure::Panic(_)) {
                    // The state may be half-updated: start from a fresh one.
                    *state = model.plan.spawn().map_err(|e| format!("{e:#}"));
                }
                for job in batch {
                    let _ = job.reply.send(Err(ComputeError::Model {
                        model: model.name.clone(),
                        failure: failure.clone(),
                    }));
                }
                return;
            }
        };
        // Convert each requested output once, then hand every job its rows.
        let mut converted: Vec<Option<Result<FloatOutput, String>>> = vec![None; outputs.len()];
        let failed = |output: usize, detail: String| ComputeError::Model {
            model: model.name.clone(),
            failure: ModelFailure::Output { output: model.outputs[output].name.clone(), detail },
        };
        let mut offset = 0;
        for job in batch {
            let _enter = job.span.enter();
            let mut parts = Vec::with_capacity(job.outputs.len());
            let mut failure = None;
            for &output in job.outputs.iter() {
                let out = converted[output]
                    .get_or_insert_with(|| output_as_f32(&outputs[output], rows))
                    .as_ref()
                    .map_err(|detail| failed(output, detail.clone()))
                    .and_then(|(floats, columns)| {
                        let values = floats
                            .try_as_plain_ram()
                            .and_then(|v| v.as_slice::<f32>())
                            .map_err(|e| failed(output, format!("{e:#}")))?;
                        let slice = &values[offset * columns..(offset + job.rows) * columns];
                        let data = score_protocol::codec::encode(slice);
                        Ok(ScoredOutput { data, columns: *columns })
                    });
                match out {
                    Ok(part) => parts.push(part),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            offset += job.rows;
            let reply = match failure {
                Some(e) => Err(e),
                None => {
                    let queue_time = started.saturating_duration_since(job.enqueued);
                    self.metrics.observe_queue_wait(queue_time);
                    // A merged call's time is shared in proportion to rows.
                    let share = compute_time.mul_f64(job.rows as f64 / rows as f64);
                    Ok(ChunkOut { outputs: parts, queue_time, compute_time: share })
                }
            };
            // A receiver dropped meanwhile is a caller that went away: fine.
            let _ = job.reply.send(reply);
        }
    }

    fn update_cost(&self, elapsed: Duration, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let sample = elapsed.as_nanos() as f64 / bytes as f64;
        let old = f64::from_bits(self.ns_per_byte.load(Ordering::Relaxed));
        // Racy read-modify-write between workers is fine for an estimate.
        self.ns_per_byte.store((0.8 * old + 0.2 * sample).to_bits(), Ordering::Relaxed);
    }
}

/// A worker's model states, one per model version in use. A version is
/// held by reference only from here: its state is dropped once the
/// registry has swapped it out and no job of it is left.
#[derive(Default)]
struct States {
    states: Vec<(std::sync::Weak<Model>, Result<State, String>)>,
}

impl States {
    /// The state for `model`, made on first use.
    fn get(&mut self, model: &Arc<Model>) -> &mut Result<State, String> {
        self.states.retain(|(m, _)| m.strong_count() > 0);
        let ix = match self.states.iter().position(|(m, _)| std::ptr::eq(m.as_ptr(), &**model)) {
            Some(ix) => ix,
            None => {
                let state = model.plan.spawn().map_err(|e| format!("{e:#}"));
                if let Err(e) = &state {
                    tracing::error!(model = %model.name, version = %model.version, error = %e,
                        "cannot create model state");
                }
                self.states.push((Arc::downgrade(model), state));
                self.states.len() - 1
            }
        };
        &mut self.states[ix].1
    }
}

/// The model's inputs for the jobs' rows, concatenated: one `[rows,
/// columns]` float32 tensor (decoding little-endian explicitly: the body's
/// alignment is arbitrary), or for a model fed by name one tensor per input.
fn build_inputs(model: &Model, batch: &[Job], rows: usize) -> TractResult<TVec<TValue>> {
    if let Some(columns) = model.matrix() {
        let mut values = Vec::with_capacity(rows * columns);
        for job in batch {
            if let ChunkInput::Matrix(bytes) = &job.input {
                // Whole rows: the handler checked the length.
                score_protocol::codec::decode_into(bytes, &mut values)?;
            }
        }
        anyhow::ensure!(values.len() == rows * columns, "a typed job for a matrix model");
        // Moves the vector into the tensor: no second copy of the input.
        let tensor = tract_ndarray::Array2::from_shape_vec((rows, columns), values)?.into_tensor();
        return Ok(tvec![tensor.into()]);
    }
    let mut values = Values::for_feeds(&model.feeds, rows);
    for job in batch {
        match &job.input {
            ChunkInput::Typed { rows: typed, start, .. } => {
                typed.append(&model.feeds, *start, job.rows, &mut values)
            }
            ChunkInput::Matrix(_) => anyhow::bail!("a matrix job for a model fed by name"),
        }
    }
    Values::into_inputs(values, &model.feeds, rows)
}

/// An output as float32 (borrowed when the model already gives float32) and
/// its floats per row.
type FloatOutput<'a> = (std::borrow::Cow<'a, Tensor>, usize);

/// Converts one model output to float32, checking that its first dimension is
/// the batch.
fn output_as_f32(value: &TValue, rows: usize) -> Result<FloatOutput<'_>, String> {
    let tensor: &Tensor = value;
    if tensor.shape().first() != Some(&rows) {
        return Err(format!(
            "output has shape {:?}, expected {rows} rows in its first dimension",
            tensor.shape()
        ));
    }
    let err = |e: TractError| format!("{e:#}");
    let floats = if tensor.datum_type() == DatumType::TDim {
        let as_i64 = tensor.cast_to::<i64>().map_err(err)?;
        std::borrow::Cow::Owned(as_i64.cast_to::<f32>().map_err(err)?.into_owned())
    } else {
        tensor.cast_to::<f32>().map_err(err)?
    };
    let columns = floats.len().checked_div(rows).unwrap_or(1);
    Ok((floats, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panics_message_reaches_the_log_text() {
        let index = std::hint::black_box(7);
        let payload = std::panic::catch_unwind(|| [1, 2, 3][index]).expect_err("panics");
        let failure = ModelFailure::Panic(panic_message(&*payload));
        let text = failure.to_string();
        assert!(text.starts_with("panic in model call: index out of bounds"), "{text}");
        let payload = std::panic::catch_unwind(|| panic!("plain")).expect_err("panics");
        assert_eq!(panic_message(&*payload), "plain");
    }
}
