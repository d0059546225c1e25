//! What every request handler shares: the models, the pool, the admission
//! budget, the metrics and the draining flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::admission::Admission;
use crate::auth::{Auth, AuthError};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig};
use crate::reload::Models;
use score_engine::LoadError;

/// Longest Retry-After we suggest: past it the estimate is too unreliable to
/// be worth making the client wait for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Shared server state.
pub struct AppState {
    /// The served models (index 0 is the default), reloadable.
    pub models: Models,
    /// The compute pool.
    pub pool: Pool,
    /// The admission budget.
    pub admission: Admission,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The configuration the server runs with.
    pub config: Config,
    /// The accepted bearer tokens, when authentication is on.
    pub auth: Option<Auth>,
    draining: AtomicBool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A model failed to load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The token file could not be used.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Worker threads could not be spawned.
    #[error("cannot start worker threads: {0}")]
    Threads(#[from] std::io::Error),
}

impl AppState {
    /// Loads every model and starts the worker pool. Blocking: model
    /// optimisation takes from milliseconds to seconds.
    pub fn new(config: Config) -> Result<Arc<AppState>, StartError> {
        let auth = config.auth_token_file.as_deref().map(Auth::load).transpose()?;
        if let Some(auth) = &auth {
            tracing::info!(tokens = auth.len(), "authentication on");
        }
        let models = Models::load(config.models.clone(), config.engine_options.clone())?;
        let metrics = Arc::new(Metrics::new());
        for model in models.list().iter() {
            metrics.model_info.get_or_create(&crate::reload::info_labels(model)).set(1);
        }
        metrics.workers.set(config.workers as i64);
        let pool = Pool::start(
            &models.list(),
            PoolConfig {
                workers: config.workers,
                max_batch_rows: config.max_batch_rows,
                max_requests: config.max_inflight_requests,
            },
            metrics.clone(),
        )?;
        let admission = Admission::new(config.max_inflight_bytes, config.max_inflight_requests);
        Ok(Arc::new(AppState {
            models,
            pool,
            admission,
            metrics,
            config,
            auth,
            draining: AtomicBool::new(false),
        }))
    }

    /// The index of the model called `name`.
    pub fn model_index(&self, name: &str) -> Result<usize, ApiError> {
        self.models.index(name)
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining: `/readyz` and new scoring requests answer 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.draining.set(1);
    }

    /// Retry-After for a refused request: the time the workers need to clear
    /// the admitted backlog, between 1 s and [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Duration {
        let estimate = self.pool.estimate(self.admission.inflight_bytes());
        Duration::from_secs(estimate.as_secs_f64().ceil() as u64)
            .clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
    }

    /// Refreshes the gauges that are cheaper to read on scrape than to keep
    /// up to date on every request.
    pub fn refresh_gauges(&self) {
        self.metrics.inflight_bytes.set(self.admission.inflight_bytes() as i64);
        self.metrics.inflight_requests.set(self.admission.inflight_requests() as i64);
        self.metrics.queued_jobs.set(self.pool.queued() as i64);
    }
}
