//! Ordered, bounded scoring of a whole input: the blocking [`ScoreIter`] and
//! the async [`Client::score_stream`].
//!
//! Both keep at most `in_flight` batches in flight, each driven by a task
//! spawned on the process runtime, so requests progress whatever the
//! consumer's pace; the input is pulled only when a slot is free (the
//! backpressure), and results come out in input order. The output ends only
//! after the last result; after an error it yields that error and ends.
//! Dropping the output aborts the requests in flight.

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use tokio::task::JoinHandle;

use crate::batch::{Batch, Batcher};
use crate::client::{Client, Scored};
use crate::error::ScoreError;

type Pending = VecDeque<JoinHandle<Result<Scored, ScoreError>>>;

/// What the iterator pulls: rows one by one, or row-major blocks.
enum Input<I, B> {
    Rows(I),
    Blocks(B),
}

/// What both outputs share: the batches waiting to be sent and the window of
/// requests in flight. Dropping it aborts those requests.
struct Window {
    client: Client,
    batcher: Batcher,
    ready: VecDeque<Batch>,
    pending: Pending,
    deadline: Option<Instant>,
    exhausted: bool,
    finished: bool,
}

impl Window {
    fn new(client: &Client) -> Self {
        let c = &client.inner.config;
        Window {
            client: client.clone(),
            batcher: Batcher::new(c.columns, c.batch_rows, c.batch_bytes),
            ready: VecDeque::new(),
            pending: VecDeque::new(),
            deadline: c.deadline.map(|d| Instant::now() + d),
            exhausted: false,
            finished: false,
        }
    }
}

impl Window {
    /// Turns a finished request task into the next output item; an error
    /// ends the output and aborts the requests still in flight.
    fn settle(&mut self, joined: Joined) -> Result<Scored, ScoreError> {
        let result = match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ScoreError::Config(format!("request task cancelled: {e}"))),
        };
        match &result {
            Ok(scored) => self.client.inner.counters.delivered(scored.rows),
            Err(e) if self.client.inner.config.keep_going && e.batch().is_some() => {
                tracing::warn!(error = %e, "batch failed; going on");
            }
            Err(e) => {
                tracing::error!(error = %e, "scoring stopped");
                self.finished = true;
                abort_all(&mut self.pending);
                log_end(&self.client);
            }
        }
        result
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        abort_all(&mut self.pending);
    }
}

/// Blocking iterator of scored batches, in input order.
pub struct ScoreIter<I, B> {
    w: Window,
    input: Input<I, B>,
    input_error: Option<ScoreError>,
}

impl Client {
    /// Scores rows pulled from `rows` on the calling thread.
    pub fn score_rows<I>(&self, rows: I) -> ScoreIter<I::IntoIter, std::iter::Empty<Vec<f32>>>
    where
        I: IntoIterator,
        I::Item: AsRef<[f32]>,
    {
        self.iter(Input::Rows(rows.into_iter()))
    }

    /// Scores row-major blocks of whole rows (e.g. Arrow record batches'
    /// float buffers) pulled from `blocks` on the calling thread.
    pub fn score_blocks<B>(&self, blocks: B) -> ScoreIter<std::iter::Empty<Vec<f32>>, B::IntoIter>
    where
        B: IntoIterator,
        B::Item: AsRef<[f32]>,
    {
        self.iter(Input::Blocks(blocks.into_iter()))
    }

    fn iter<I, B>(&self, input: Input<I, B>) -> ScoreIter<I, B> {
        ScoreIter { w: Window::new(self), input, input_error: None }
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
        let state = StreamState { w: Window::new(self), blocks };
        futures_util::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        })
    }

    fn spawn(&self, pending: &mut Pending, batch: Batch, deadline: Option<Instant>) {
        let inner = self.inner.clone();
        let handle = crate::runtime::shared().handle;
        pending.push_back(handle.spawn(async move { inner.score(batch, deadline).await }));
    }

    fn spawn_error(&self, pending: &mut Pending, error: ScoreError) {
        let handle = crate::runtime::shared().handle;
        pending.push_back(handle.spawn(async move { Err(error) }));
    }
}

impl<I, B> ScoreIter<I, B>
where
    I: Iterator,
    I::Item: AsRef<[f32]>,
    B: Iterator,
    B::Item: AsRef<[f32]>,
{
    /// Pulls input until a batch is ready or the input ends.
    fn pull(&mut self) {
        while self.w.ready.is_empty() && !self.w.exhausted {
            let pushed = match &mut self.input {
                Input::Rows(rows) => match rows.next() {
                    Some(row) => {
                        self.w.batcher.push_row(row.as_ref()).map(|b| b.into_iter().collect())
                    }
                    None => Ok(Vec::new()).inspect(|_| self.w.exhausted = true),
                },
                Input::Blocks(blocks) => match blocks.next() {
                    Some(block) => self.w.batcher.push_block(block.as_ref()),
                    None => Ok(Vec::new()).inspect(|_| self.w.exhausted = true),
                },
            };
            match pushed {
                Ok(batches) => self.w.ready.extend(batches),
                Err(e) => {
                    // Score the rows before the bad one, then report it.
                    self.input_error = Some(e);
                    self.w.exhausted = true;
                }
            }
            if self.w.exhausted {
                self.w.ready.extend(self.w.batcher.flush());
            }
        }
    }

    /// The client's counters.
    pub fn stats(&self) -> crate::Stats {
        self.w.client.stats()
    }
}

impl<I, B> Iterator for ScoreIter<I, B>
where
    I: Iterator,
    I::Item: AsRef<[f32]>,
    B: Iterator,
    B::Item: AsRef<[f32]>,
{
    type Item = Result<Scored, ScoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.w.finished {
            return None;
        }
        let window = self.w.client.inner.config.in_flight;
        while self.w.pending.len() < window {
            self.pull();
            let Some(batch) = self.w.ready.pop_front() else { break };
            self.w.client.spawn(&mut self.w.pending, batch, self.w.deadline);
        }
        if self.w.pending.len() < window
            && self.w.ready.is_empty()
            && let Some(e) = self.input_error.take()
        {
            self.w.client.spawn_error(&mut self.w.pending, e);
        }
        let Some(head) = self.w.pending.pop_front() else {
            self.w.finished = true;
            log_end(&self.w.client);
            return None;
        };
        let result = crate::runtime::shared().handle.block_on(head);
        Some(self.w.settle(result))
    }
}

type Joined = Result<Result<Scored, ScoreError>, tokio::task::JoinError>;

struct StreamState<S> {
    w: Window,
    blocks: S,
}

impl<S> StreamState<S>
where
    S: Stream + Unpin,
    S::Item: AsRef<[f32]>,
{
    async fn next(&mut self) -> Option<Result<Scored, ScoreError>> {
        if self.w.finished {
            return None;
        }
        let window = self.w.client.inner.config.in_flight;
        while self.w.pending.len() < window && !(self.w.exhausted && self.w.ready.is_empty()) {
            if let Some(batch) = self.w.ready.pop_front() {
                self.w.client.spawn(&mut self.w.pending, batch, self.w.deadline);
                continue;
            }
            match self.blocks.next().await {
                Some(block) => match self.w.batcher.push_block(block.as_ref()) {
                    Ok(batches) => self.w.ready.extend(batches),
                    Err(e) => {
                        self.w.exhausted = true;
                        self.w.ready.extend(self.w.batcher.flush());
                        let batches: Vec<Batch> = self.w.ready.drain(..).collect();
                        for batch in batches {
                            self.w.client.spawn(&mut self.w.pending, batch, self.w.deadline);
                        }
                        self.w.client.spawn_error(&mut self.w.pending, e);
                    }
                },
                None => {
                    self.w.exhausted = true;
                    self.w.ready.extend(self.w.batcher.flush());
                }
            }
        }
        let Some(head) = self.w.pending.pop_front() else {
            self.w.finished = true;
            log_end(&self.w.client);
            return None;
        };
        let joined = head.await;
        let result = self.w.settle(joined);
        Some(result)
    }
}

fn abort_all(pending: &mut Pending) {
    for handle in pending.drain(..) {
        handle.abort();
    }
}

fn log_end(client: &Client) {
    let s = client.stats();
    tracing::info!(
        rows = s.rows_scored,
        requests = s.requests,
        retries = s.total_retries(),
        failed_batches = s.failed_batches,
        bytes_sent = s.bytes_sent,
        p50_ms = s.latency_p50.as_secs_f64() * 1e3,
        p99_ms = s.latency_p99.as_secs_f64() * 1e3,
        "scoring stream ended"
    );
}
