//! What to load and how: a model's name and files ([`ModelSpec`]), the
//! engines' settings ([`EngineOptions`]), and the version a model's files
//! hash to.

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::embed::Pooling;
use crate::error::LoadError;
use crate::seam::EngineChoice;

/// The model the server serves when started with no `--model`: a binary
/// logistic regression over 100 features (see `models/generate.py`).
pub const DEMO_MODEL: &[u8] = include_bytes!("../../models/logreg.onnx");

/// Name under which the bundled demo model is served.
pub const DEMO_MODEL_NAME: &str = "demo";

/// Where a model's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A file on disk.
    Path(PathBuf),
    /// The demo model compiled into the binary.
    Bundled,
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Path(p) => write!(f, "{}", p.display()),
            ModelSource::Bundled => f.write_str("<bundled demo model>"),
        }
    }
}

/// A model to load: its serving name and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// Name used in `/models/{name}`.
    pub name: String,
    /// Where the ONNX bytes come from.
    pub source: ModelSource,
    /// Which engine runs it (`--engine`).
    pub engine: EngineChoice,
    /// An embedding model's pooling when its directory does not say
    /// (`--pooling`).
    pub pooling: Option<Pooling>,
}

/// What loading needs to know for engines other than tract.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// onnxruntime's shared library (`--onnxruntime`); else looked for.
    pub onnxruntime: Option<PathBuf>,
    /// Most rows in one model call (`--max-batch-rows`): the largest size
    /// `auto` times.
    pub max_batch_rows: usize,
    /// Most padded tokens in one encoder call of an embedding model
    /// (`--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Time `auto` may spend timing the two engines, per model.
    pub probe_budget: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            onnxruntime: None,
            max_batch_rows: 4096,
            max_batch_tokens: crate::embed::MAX_BATCH_TOKENS,
            probe_budget: std::time::Duration::from_millis(600),
        }
    }
}

impl EngineOptions {
    /// The batch sizes `auto` times: small merged requests (16 rows) and
    /// the chunk a large request is split into (1,024 rows, or less under
    /// a lower `--max-batch-rows`).
    pub fn probe_rows(&self) -> Vec<usize> {
        let big = 1024.min(self.max_batch_rows).max(1);
        let small = 16.min(big);
        if small == big { vec![big] } else { vec![small, big] }
    }
}

impl ModelSpec {
    /// Parses `NAME=PATH` or `PATH` (the name is then the file stem).
    pub fn parse(arg: &str) -> Result<Self, String> {
        let (name, path) = match arg.split_once('=') {
            Some((name, path)) => (name.to_string(), PathBuf::from(path)),
            None => {
                let path = PathBuf::from(arg);
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                (stem.to_string(), path)
            }
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "model name {name:?} must be non-empty and use only letters, digits, '-', '_' or '.'"
            ));
        }
        if path.as_os_str().is_empty() {
            return Err(format!("model {name}: empty path"));
        }
        Ok(ModelSpec {
            name,
            source: ModelSource::Path(path),
            engine: EngineChoice::Default,
            pooling: None,
        })
    }

    /// The bundled demo model.
    pub fn demo() -> Self {
        ModelSpec {
            name: DEMO_MODEL_NAME.to_string(),
            source: ModelSource::Bundled,
            engine: EngineChoice::Default,
            pooling: None,
        }
    }
}

fn hex_prefix(digest: &[u8], bytes: usize) -> String {
    digest.iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// A model's version: the first 16 hex digits of the SHA-256 of its files'
/// bytes, in order (the ONNX file; for an embedding model, then its
/// tokenizer).
pub(crate) fn content_version(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    hex_prefix(&digest.finalize(), 8)
}

/// The files a spec's version is hashed from, in order.
fn version_files(spec: &ModelSpec) -> Vec<PathBuf> {
    match &spec.source {
        ModelSource::Bundled => Vec::new(),
        ModelSource::Path(dir) if dir.is_dir() => {
            vec![dir.join("model.onnx"), dir.join("tokenizer.json")]
        }
        ModelSource::Path(path) => vec![path.clone()],
    }
}

impl ModelSpec {
    /// The version the files on disk would load as (what
    /// [`Model::version`] would be), without loading them: a reload skips a
    /// model whose files did not change.
    pub fn version_on_disk(&self) -> Result<String, LoadError> {
        if matches!(self.source, ModelSource::Bundled) {
            return Ok(content_version(&[DEMO_MODEL]));
        }
        let mut parts = Vec::new();
        for path in version_files(self) {
            let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
                name: self.name.clone(),
                path: path.clone(),
                source,
            })?;
            parts.push(bytes);
        }
        Ok(content_version(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }

    /// Size and modification time of each file the version is hashed
    /// from (`None` for one that cannot be read): cheap to poll, and it
    /// changes whenever a file is replaced or rewritten.
    pub fn fingerprint(&self) -> Vec<Option<(u64, std::time::SystemTime)>> {
        version_files(self)
            .iter()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.len(), m.modified().ok()?))))
            .collect()
    }
}
