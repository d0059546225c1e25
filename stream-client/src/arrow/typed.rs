//! Record batches for a model fed by name (several inputs, string
//! categories): the feature columns are sent as they are, an Arrow IPC
//! stream per request with one column per model input (the columns keep
//! their names, which must be the inputs'), never interleaved into floats.
//!
//! A row with a null in a feature column cannot be scored: it is reported
//! by index with the column's name, and the other rows are sent.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Schema};
use bytes::Bytes;

use score_protocol::features::FeatureRuleError;

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
            .map(|n| {
                schema
                    .index_of(n)
                    .map_err(|_| FeatureError::from(FeatureRuleError::NoColumn(n.clone())))
            })
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

/// Request bodies for one text column given in Arrow's utf8 layout, as a
/// binding without Arrow of its own hands it over: `offsets` (texts + 1,
/// from 0, never decreasing) into the UTF-8 `values`. The column is named
/// `column` (the model's input). At most `max_rows` texts and about
/// `max_bytes` bytes a body. Offsets out of order or bytes that are not
/// UTF-8 are refused with a sentence.
pub fn text_bodies(
    column: &str,
    offsets: &[i32],
    values: &[u8],
    max_rows: usize,
    max_bytes: usize,
) -> Result<Vec<(usize, Bytes)>, String> {
    let ordered = offsets.first() == Some(&0) && offsets.windows(2).all(|w| w[0] <= w[1]);
    let end = offsets.last().copied().unwrap_or_default();
    if !ordered || usize::try_from(end).map_or(true, |e| e > values.len()) {
        return Err(format!(
            "text offsets must start at 0, never decrease and end within the {} bytes given",
            values.len()
        ));
    }
    let array = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec())),
        Buffer::from(values.to_vec()),
        None,
    )
    .map_err(|e| format!("the texts are not UTF-8: {e}"))?;
    let batch = RecordBatch::try_from_iter([(column, Arc::new(array) as ArrayRef)])
        .map_err(|e| e.to_string())?;
    let typed = TypedFeatures { indices: vec![0], names: vec![column.to_string()] };
    Ok(typed.encode(&batch, max_rows, max_bytes)?.bodies)
}

/// `batch` as an Arrow IPC stream (uncompressed: the server refuses
/// compressed bodies).
fn ipc(batch: &RecordBatch) -> Result<Bytes, arrow_schema::ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(Bytes::from(writer.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;

    fn texts_of(body: &Bytes) -> Vec<String> {
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body.to_vec()), None)
                .expect("IPC");
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            assert_eq!(batch.schema().field(0).name(), "text");
            out.extend(
                batch.column(0).as_string::<i32>().iter().map(|s| s.expect("no null").into()),
            );
        }
        out
    }

    #[test]
    fn text_bodies_carry_the_texts_in_order_split_by_rows() {
        let texts = ["Отличный товар", "", "great 👍", "x"];
        let mut offsets = vec![0i32];
        let mut values = Vec::new();
        for t in texts {
            values.extend_from_slice(t.as_bytes());
            offsets.push(values.len() as i32);
        }
        let bodies = text_bodies("text", &offsets, &values, 3, 1 << 20).expect("bodies");
        assert_eq!(bodies.iter().map(|(rows, _)| *rows).collect::<Vec<_>>(), [3, 1]);
        let got: Vec<String> = bodies.iter().flat_map(|(_, b)| texts_of(b)).collect();
        assert_eq!(got, texts);
    }

    #[test]
    fn text_bodies_refuse_bad_offsets_and_bytes() {
        let e = text_bodies("text", &[0, 3, 2], b"abc", 10, 1 << 20).expect_err("decreasing");
        assert!(e.starts_with("text offsets must start at 0"), "{e}");
        let e = text_bodies("text", &[0, 4], b"abc", 10, 1 << 20).expect_err("past the end");
        assert!(e.starts_with("text offsets must start at 0"), "{e}");
        let e = text_bodies("text", &[0, 2], &[0xc3, 0x28], 10, 1 << 20).expect_err("not UTF-8");
        assert!(e.starts_with("the texts are not UTF-8"), "{e}");
    }
}
