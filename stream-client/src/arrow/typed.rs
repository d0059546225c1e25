//! Record batches for a model fed by name (several inputs, string
//! categories): the feature columns are sent as they are, an Arrow IPC
//! stream per request with one column per model input (the columns keep
//! their names, which must be the inputs'), never interleaved into floats.
//!
//! A row with a null in a feature column cannot be scored: it is reported
//! by index with the column's name, and the other rows are sent.

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Schema};
use bytes::Bytes;

use super::features::FeatureError;

/// The feature columns of batches of one schema, sent by name.
#[derive(Clone, Debug)]
pub struct TypedFeatures {
    indices: Vec<usize>,
    names: Vec<String>,
}

/// One batch's requests and the rows left out.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Request bodies (Arrow IPC streams) and their rows, in order.
    pub bodies: Vec<(usize, Bytes)>,
    /// Rows that cannot be scored: (row index in the batch, why).
    pub bad: Vec<(usize, String)>,
}

impl TypedFeatures {
    /// Whether the columns `names` (of `schema`) must be sent by name: one
    /// of them holds strings or booleans, which no float matrix carries.
    pub fn needed(schema: &Schema, names: Option<&[String]>) -> bool {
        let Some(names) = names else { return false };
        names.iter().filter_map(|n| schema.field_with_name(n).ok()).any(|f| {
            let leaf = match f.data_type() {
                DataType::List(item)
                | DataType::LargeList(item)
                | DataType::FixedSizeList(item, _) => item.data_type(),
                other => other,
            };
            matches!(
                leaf,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(..)
                    | DataType::Boolean
            )
        })
    }

    /// The columns `names` of `schema`.
    pub fn resolve(schema: &Schema, names: &[String]) -> Result<TypedFeatures, FeatureError> {
        let indices = names
            .iter()
            .map(|n| schema.index_of(n).map_err(|_| FeatureError::NoColumn(n.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TypedFeatures { indices, names: names.to_vec() })
    }

    /// The feature columns' count.
    pub fn width(&self) -> usize {
        self.indices.len()
    }

    /// The requests for `batch`: its good rows' feature columns, at most
    /// `max_rows` rows and about `max_bytes` bytes a request.
    pub fn encode(
        &self,
        batch: &RecordBatch,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Encoded, String> {
        let projected = batch.project(&self.indices).map_err(|e| e.to_string())?;
        let mut bad = Vec::new();
        let mut keep = vec![true; batch.num_rows()];
        for (column, name) in projected.columns().iter().zip(&self.names) {
            if column.logical_null_count() == 0 {
                continue;
            }
            let nulls = column.logical_nulls();
            for (row, kept) in keep.iter_mut().enumerate() {
                if *kept && nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    *kept = false;
                    bad.push((row, format!("column {name:?} is null")));
                }
            }
        }
        bad.sort_by_key(|(row, _)| *row);
        let good = if bad.is_empty() {
            projected
        } else {
            let mask = BooleanArray::from(keep);
            arrow_select::filter::filter_record_batch(&projected, &mask)
                .map_err(|e| e.to_string())?
        };
        let rows = good.num_rows();
        let row_bytes = good.get_array_memory_size() / rows.max(1);
        let per = max_rows.min(max_bytes / row_bytes.max(1)).max(1);
        let mut bodies = Vec::with_capacity(rows.div_ceil(per));
        for start in (0..rows).step_by(per) {
            let part = good.slice(start, per.min(rows - start));
            bodies.push((part.num_rows(), ipc(&part).map_err(|e| e.to_string())?));
        }
        Ok(Encoded { bodies, bad })
    }
}

/// `batch` as an Arrow IPC stream (uncompressed: the server refuses
/// compressed bodies).
fn ipc(batch: &RecordBatch) -> Result<Bytes, arrow_schema::ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(Bytes::from(writer.into_inner()?))
}
