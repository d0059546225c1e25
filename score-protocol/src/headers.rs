//! Header names of the protocol, lower-case as HTTP/1.1 sends them.

/// Request: the client's idea of the input width; a mismatch is a 400.
/// Response: floats per row in the answer.
pub const COLUMNS: &str = "x-score-columns";
/// Request: relative deadline in milliseconds; work not started within it is
/// dropped with 504.
pub const DEADLINE_MS: &str = "x-score-deadline-ms";
/// Response: rows in the answer.
pub const ROWS: &str = "x-score-rows";
/// Response: the content hash of the model version that scored the request.
/// Request (optional): the version the client is pinned to; a server
/// serving another version answers 409 `version_mismatch` without scoring.
pub const MODEL_VERSION: &str = "x-model-version";
/// Response: the output served.
pub const OUTPUT: &str = "x-score-output";
/// Response: longest queue wait of the request's chunks, milliseconds.
pub const QUEUE_MS: &str = "x-score-queue-ms";
/// Response: model time summed over the request's chunks, milliseconds.
pub const COMPUTE_MS: &str = "x-score-compute-ms";
/// Response of `POST /embed` with `"chunk": true`: the windows each text
/// took, comma-separated in input order (1 for a text within the limit).
pub const CHUNKS: &str = "x-score-chunks";
/// Longest `X-Score-Deadline-Ms` the server honours (a day); longer is
/// clamped to it.
pub const MAX_DEADLINE_MS: u64 = 86_400_000;
