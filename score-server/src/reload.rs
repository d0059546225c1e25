//! The models being served, and reloading them without a restart.
//!
//! The list of models is swapped whole ([`Models::reload`]): a request takes
//! its model's `Arc` once, when it starts, and is scored by that version to
//! the end, whatever is swapped in meanwhile. A reload re-reads every
//! model's files; one whose content hash changed is loaded beside the old
//! version (which goes on serving), checked by the loader's smoke test (and
//! by `--engine auto`'s agreement check), then swapped in. A file that does
//! not load leaves the old version serving; the failure is logged and
//! counted (`score_model_reloads_total{outcome="failed"}`).
//!
//! Reloads are asked for by SIGHUP and, with `--watch`, by a poll of the
//! files' size and modification time.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::error::ApiError;
use crate::metrics::{Metrics, ModelInfoLabels, ReloadLabels, ReloadOutcome};
use score_engine::{EngineOptions, Model, ModelSpec};

/// The served models; index 0 is the default.
pub struct Models {
    current: ArcSwap<Vec<Arc<Model>>>,
    specs: Vec<ModelSpec>,
    options: EngineOptions,
    /// One reload at a time; holds each model's files' fingerprint as of
    /// the last reload (what `--watch` compares against).
    reloading: Mutex<Vec<Fingerprint>>,
}

type Fingerprint = Vec<Option<(u64, SystemTime)>>;

/// What a reload did to one model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// Its files hash to the version served: nothing was loaded.
    Unchanged,
    /// A new version is served.
    Loaded {
        /// The version it replaced.
        from: String,
        /// The version now served.
        to: String,
    },
    /// The new files could not be read or loaded; the old version serves on.
    Failed(String),
}

impl Models {
    /// Loads every model of `specs`. Blocking.
    pub fn load(
        specs: Vec<ModelSpec>,
        options: EngineOptions,
    ) -> Result<Models, score_engine::LoadError> {
        let fingerprints = specs.iter().map(ModelSpec::fingerprint).collect();
        let models = specs
            .iter()
            .map(|spec| Model::load_with(spec, &options).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Models {
            current: ArcSwap::from_pointee(models),
            specs,
            options,
            reloading: Mutex::new(fingerprints),
        })
    }

    /// The models served now.
    pub fn list(&self) -> Arc<Vec<Arc<Model>>> {
        self.current.load_full()
    }

    /// The version of the model at `ix` served now.
    pub fn get(&self, ix: usize) -> Arc<Model> {
        self.current.load()[ix].clone()
    }

    /// The index of the model called `name` (names never change on reload).
    pub fn index(&self, name: &str) -> Result<usize, ApiError> {
        self.specs.iter().position(|m| m.name == name).ok_or_else(|| ApiError::UnknownModel {
            name: name.to_string(),
            available: self.specs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// How many models are served.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether no model is served (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Re-reads every model's files and swaps in each that changed and
    /// loads. Blocking: loading takes from milliseconds to seconds. Returns
    /// what happened to each model, in order.
    pub fn reload(&self, metrics: &Metrics) -> Vec<Reloaded> {
        let mut fingerprints = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = Vec::with_capacity(self.specs.len());
        for (ix, spec) in self.specs.iter().enumerate() {
            fingerprints[ix] = spec.fingerprint();
            let old = self.get(ix);
            let outcome = match spec.version_on_disk() {
                Err(e) => Reloaded::Failed(e.to_string()),
                Ok(version) if version == old.version => Reloaded::Unchanged,
                Ok(_) => match Model::load_with(spec, &self.options) {
                    Err(e) => Reloaded::Failed(e.to_string()),
                    Ok(new) => {
                        let new = Arc::new(new);
                        let mut list = (*self.list()).clone();
                        list[ix] = new.clone();
                        self.current.store(Arc::new(list));
                        metrics.model_info.remove(&info_labels(&old));
                        metrics.model_info.get_or_create(&info_labels(&new)).set(1);
                        Reloaded::Loaded { from: old.version.clone(), to: new.version.clone() }
                    }
                },
            };
            let labels = |outcome| ReloadLabels { model: spec.name.clone(), outcome };
            match &outcome {
                Reloaded::Unchanged => {
                    metrics.reloads.get_or_create(&labels(ReloadOutcome::unchanged)).inc();
                    tracing::info!(model = %spec.name, version = %old.version, "model unchanged");
                }
                Reloaded::Loaded { from, to } => {
                    metrics.reloads.get_or_create(&labels(ReloadOutcome::loaded)).inc();
                    tracing::info!(model = %spec.name, %from, %to,
                        "model reloaded; requests already started finish on the old version");
                }
                Reloaded::Failed(why) => {
                    metrics.reloads.get_or_create(&labels(ReloadOutcome::failed)).inc();
                    tracing::error!(model = %spec.name, version = %old.version, error = %why,
                        "model not reloaded; the old version serves on");
                }
            }
            report.push(outcome);
        }
        report
    }

    /// Whether any model's files changed (size or modification time) since
    /// the last load or reload.
    pub fn files_changed(&self) -> bool {
        let fingerprints = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.specs.iter().zip(fingerprints.iter()).any(|(spec, seen)| spec.fingerprint() != *seen)
    }
}

/// The `model_info` labels of a loaded version.
pub fn info_labels(model: &Model) -> ModelInfoLabels {
    ModelInfoLabels {
        model: model.name.clone(),
        version: model.version.clone(),
        engine: model.engine().to_string(),
    }
}
