//! Ordered, bounded scoring of a whole input: the blocking [`ScoreIter`] and
//! the async [`Client::score_stream`], both driven by one [`Window`].
//!
//! The window keeps at most `in_flight` batches in flight, each driven by a
//! task spawned on the process runtime, so requests progress whatever the
//! consumer's pace; the input is pulled only when a slot is free (the
//! backpressure), and results come out in input order. The output ends only
//! after the last result; after an error it yields that error and ends. A
//! bad input row ends the input: the rows before it are scored and yielded
//! first, then the error. Dropping the output aborts the requests in flight.
//!
//! The window is a state machine ([`Window::step`]) so that the blocking
//! and the async outputs differ only in how they pull input and wait. A
//! binding whose input lives on the other side of an FFI boundary (the JVM's
//! row iterator) drives it through [`Session`]: it asks what is needed,
//! feeds a block or takes a result, and never hands the client a callback.

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use tokio::task::JoinHandle;

use bytes::Bytes;
use score_protocol::media::BodyFormat;

use crate::batch::{Batch, Batcher};
use crate::client::{Client, Scored};
use crate::config::ClientConfig;
use crate::error::ScoreError;

/// An input item: row-major float32 rows, or a request body encoded
/// already (an Arrow IPC stream for a model fed by name).
#[derive(Debug)]
pub enum Input<'a> {
    /// Whole rows, row-major (or one row, for [`Client::score_rows`]).
    Floats(&'a [f32]),
    /// One request's body.
    Body {
        /// Rows it holds.
        rows: usize,
        /// The body.
        body: Bytes,
        /// Its format.
        format: BodyFormat,
    },
}

/// What [`Client::score_blocks`] takes: anything that is float rows, or
/// encoded bodies ([`Input::Body`]).
pub trait AsInput {
    /// This item as input.
    fn as_input(&self) -> Input<'_>;
}

impl<T: AsRef<[f32]> + ?Sized> AsInput for T {
    fn as_input(&self) -> Input<'_> {
        Input::Floats(self.as_ref())
    }
}

/// A place in the output: a request in flight, or an error known already
/// (a bad input row) that comes out after the rows before it.
enum Slot {
    Task(JoinHandle<Result<Scored, ScoreError>>),
    Failed(ScoreError),
}

/// What the window needs next.
enum Step {
    /// Input: call [`Window::feed`] with the next item (or `None` at the end).
    Pull,
    /// The oldest result: wait for it, then [`Window::settle`] it.
    Wait(Slot),
    /// The output is over.
    Done,
}

/// The batches waiting to be sent and the requests in flight. Dropping it
/// aborts those requests.
struct Window {
    client: Client,
    batcher: Batcher,
    /// Whether input items are single rows (else row-major blocks).
    rows: bool,
    ready: VecDeque<Batch>,
    pending: VecDeque<Slot>,
    deadline: Option<Instant>,
    input_error: Option<ScoreError>,
    exhausted: bool,
    finished: bool,
}

impl Window {
    fn new(client: &Client, rows: bool) -> Self {
        let c = &client.inner.config;
        Window {
            client: client.clone(),
            batcher: Batcher::new(c.columns, c.batch_rows, c.batch_bytes),
            rows,
            ready: VecDeque::new(),
            pending: VecDeque::new(),
            deadline: c.deadline.map(|d| Instant::now() + d),
            input_error: None,
            exhausted: false,
            finished: false,
        }
    }

    /// Sends what is ready while the window has room, then says what is
    /// needed: more input while there is room and nothing ready, else the
    /// oldest result.
    fn step(&mut self) -> Step {
        if self.finished {
            return Step::Done;
        }
        let window = self.client.inner.window();
        while self.pending.len() < window
            && let Some(batch) = self.ready.pop_front()
        {
            let inner = self.client.inner.clone();
            let deadline = self.deadline;
            let handle = crate::runtime::shared().handle;
            let task = handle.spawn(async move { inner.score(batch, deadline).await });
            self.pending.push_back(Slot::Task(task));
        }
        if self.pending.len() < window && self.ready.is_empty() {
            if !self.exhausted {
                return Step::Pull;
            }
            if let Some(e) = self.input_error.take() {
                self.pending.push_back(Slot::Failed(e));
            }
        }
        match self.pending.pop_front() {
            Some(slot) => Step::Wait(slot),
            None => {
                self.finished = true;
                log_end(&self.client);
                Step::Done
            }
        }
    }

    /// Takes the next input item (`None`: the input ended).
    fn feed(&mut self, item: Option<Input<'_>>) {
        let end = item.is_none();
        let pushed = match item {
            None => Ok(Vec::new()),
            Some(Input::Floats(row)) if self.rows => {
                self.batcher.push_row(row).map(|b| b.into_iter().collect())
            }
            Some(Input::Floats(block)) => self.batcher.push_block(block),
            Some(Input::Body { rows, body, format }) => {
                Ok(self.batcher.push_body(rows, body, format))
            }
        };
        match pushed {
            Ok(batches) => self.ready.extend(batches),
            Err(e) => self.input_error = Some(e),
        }
        if end || self.input_error.is_some() {
            self.exhausted = true;
            self.ready.extend(self.batcher.flush());
        }
    }

    /// Turns a finished slot into the next output item; an error ends the
    /// output (unless `keep_going` and it concerns one batch) and aborts the
    /// requests still in flight.
    fn settle(&mut self, joined: Joined) -> Result<Scored, ScoreError> {
        let result = match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ScoreError::Cancelled(e.to_string())),
        };
        match &result {
            Ok(scored) => self.client.inner.counters.delivered(scored.rows),
            Err(e) if self.client.inner.config.keep_going && e.batch().is_some() => {
                tracing::warn!(error = %e, "batch failed; going on");
            }
            Err(e) => {
                // The caller gets the error itself; this is for the log's
                // reader, who may not see the caller's output.
                tracing::debug!(error = %e, "scoring stopped");
                self.finished = true;
                abort_all(&mut self.pending);
                log_end(&self.client);
            }
        }
        result
    }
}

type Joined = Result<Result<Scored, ScoreError>, tokio::task::JoinError>;

impl Drop for Window {
    fn drop(&mut self) {
        abort_all(&mut self.pending);
    }
}

/// What a [`Session`] needs next.
#[derive(Debug)]
pub enum Turn {
    /// Input: call [`Session::feed`] with the next block (`None` at the end).
    Feed,
    /// The next result in input order (an error ends the output unless the
    /// client's `keep_going` is set and it concerns one batch).
    Result(Result<Scored, ScoreError>),
    /// Every result has been returned.
    Done,
}

/// The bounded window driven by its caller, for inputs that cannot be a Rust
/// iterator: ask [`Session::turn`], then feed a block or take the result.
/// Dropping it aborts the requests in flight.
pub struct Session {
    w: Window,
}

impl Session {
    /// What is needed next; waits (blocking the calling thread) for the
    /// oldest result when the window is full or the input has ended.
    pub fn turn(&mut self) -> Turn {
        match self.w.step() {
            Step::Pull => Turn::Feed,
            Step::Wait(Slot::Task(task)) => {
                let joined = crate::runtime::shared().handle.block_on(task);
                Turn::Result(self.w.settle(joined))
            }
            Step::Wait(Slot::Failed(e)) => Turn::Result(self.w.settle(Ok(Err(e)))),
            Step::Done => Turn::Done,
        }
    }

    /// Takes the next row-major block of whole rows (`None`: the input
    /// ended). The rows are copied into request bodies before it returns.
    pub fn feed(&mut self, block: Option<&[f32]>) {
        self.w.feed(block.map(Input::Floats));
    }

    /// Takes the next item, float rows or an encoded body (`None`: the
    /// input ended).
    pub fn feed_input(&mut self, item: Option<Input<'_>>) {
        self.w.feed(item);
    }

    /// The client's counters.
    pub fn stats(&self) -> crate::stats::Stats {
        self.w.client.stats()
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        self.w.client.config()
    }
}

/// Blocking iterator of scored batches, in input order.
pub struct ScoreIter<I> {
    s: Session,
    input: I,
}

impl Client {
    /// Scores rows pulled from `rows` on the calling thread.
    pub fn score_rows<I>(&self, rows: I) -> ScoreIter<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: AsRef<[f32]>,
    {
        ScoreIter { s: Session { w: Window::new(self, true) }, input: rows.into_iter() }
    }

    /// Scores row-major blocks of whole rows (e.g. Arrow record batches'
    /// float buffers), or encoded bodies, pulled from `blocks` on the
    /// calling thread.
    pub fn score_blocks<B>(&self, blocks: B) -> ScoreIter<B::IntoIter>
    where
        B: IntoIterator,
        B::Item: AsInput,
    {
        ScoreIter { s: self.session(), input: blocks.into_iter() }
    }

    /// A window over row-major blocks that the caller feeds; see [`Session`].
    pub fn session(&self) -> Session {
        Session { w: Window::new(self, false) }
    }

    /// Async version: scores row-major blocks from `blocks` (a block may hold
    /// one row), yielding scored batches in input order.
    pub fn score_stream<S>(
        &self,
        blocks: S,
    ) -> impl Stream<Item = Result<Scored, ScoreError>> + Send + 'static
    where
        S: Stream + Send + Unpin + 'static,
        S::Item: AsRef<[f32]> + Send,
    {
        let state = (Window::new(self, false), blocks);
        futures_util::stream::unfold(state, |(mut w, mut blocks)| async move {
            loop {
                match w.step() {
                    Step::Pull => {
                        let item = blocks.next().await;
                        w.feed(item.as_ref().map(|b| Input::Floats(b.as_ref())));
                    }
                    Step::Wait(Slot::Task(task)) => {
                        let item = w.settle(task.await);
                        return Some((item, (w, blocks)));
                    }
                    Step::Wait(Slot::Failed(e)) => {
                        let item = w.settle(Ok(Err(e)));
                        return Some((item, (w, blocks)));
                    }
                    Step::Done => return None,
                }
            }
        })
    }
}

impl<I> ScoreIter<I> {
    /// The client's counters.
    pub fn stats(&self) -> crate::stats::Stats {
        self.s.stats()
    }
}

impl<I> Iterator for ScoreIter<I>
where
    I: Iterator,
    I::Item: AsInput,
{
    type Item = Result<Scored, ScoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.s.turn() {
                Turn::Feed => {
                    let item = self.input.next();
                    self.s.feed_input(item.as_ref().map(AsInput::as_input));
                }
                Turn::Result(result) => return Some(result),
                Turn::Done => return None,
            }
        }
    }
}

fn abort_all(pending: &mut VecDeque<Slot>) {
    for slot in pending.drain(..) {
        if let Slot::Task(handle) = slot {
            handle.abort();
        }
    }
}

/// Logs the client's counters as a stream ends. A client is shared by the
/// streams of one process with the same settings, so these are that
/// process's totals so far: the last line of a process (`pid`) holds them.
fn log_end(client: &Client) {
    let s = client.stats();
    // "connect:3 timeout:1": the reasons behind the retries.
    let reasons: Vec<String> =
        s.retries.iter().filter(|(_, n)| *n > 0).map(|(l, n)| format!("{l}:{n}")).collect();
    tracing::info!(
        pid = std::process::id(),
        rows = s.rows_scored,
        requests = s.requests,
        retries = s.total_retries(),
        retry_reasons = reasons.join(" "),
        failed_batches = s.failed_batches,
        ejections = s.ejections,
        bytes_sent = s.bytes_sent,
        p50_ms = s.latency_p50.as_secs_f64() * 1e3,
        p99_ms = s.latency_p99.as_secs_f64() * 1e3,
        "scoring stream ended"
    );
}
