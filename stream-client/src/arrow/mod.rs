//! Arrow in and out, for every binding and the CLI (feature `arrow`):
//! [`features`] takes feature rows out of record batches, [`output`] builds
//! the score column and lines results up with input batches, and [`job`]
//! drives a whole stream of record batches through a client.

pub mod features;
pub mod job;
pub mod output;
pub mod typed;

pub use features::{FeatureBlock, FeatureError, Features};
pub use job::{ArrowOptions, JobError, ScoreBatches, score_record_batches};
pub use output::{score_column, score_type};
