//! The first look at an Arrow IPC body: its framing walked and its schema
//! read before anything is decoded ([`Scanned`]), what decoding it will
//! cost, and how its errors read.

use arrow_ipc::MessageHeader;
use arrow_schema::{ArrowError, Schema};
use bytes::Bytes;

use crate::error::ApiError;

/// Most bytes of float32 rows (and of buffers decoding may have to copy to
/// align them) an Arrow body of `len` bytes can need beyond itself: the
/// rows are at most as large as the values they come from, and an
/// unaligned buffer is copied once. Dictionary deltas, the one encoding
/// whose decoding grows with the square of the body, are refused
/// ([`scan`]); what string columns cost once expanded is counted on top
/// ([`TypedRows::decoded_bytes`]).
pub fn decoded_bound(len: usize) -> usize {
    len.saturating_mul(2)
}

/// What one record batch costs to hold beyond its buffers (its arrays'
/// descriptions): charged per batch, so that a body of many tiny batches
/// is charged for them.
pub const BATCH_OVERHEAD: usize = 1 << 10;

/// A body whose framing [`scan`] has checked, and what decoding it will
/// cost: the HTTP layer charges [`Scanned::expansion`] before decoding.
pub struct Scanned {
    pub(super) body: Bytes,
    pub(super) scan: Scan,
}

impl Scanned {
    /// Checks `body`'s framing and schema (linear in the body, nothing
    /// decoded).
    pub fn new(body: Bytes) -> Result<Scanned, ApiError> {
        let scan = guarded(|| scan(&body))?;
        Ok(Scanned { body, scan })
    }

    /// The body's length.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty (never: a scanned body has a schema).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Bytes decoding will allocate beyond the body and
    /// [`decoded_bound`]: the copies dictionary deltas make (each delta
    /// copies its whole dictionary again, and every batch keeps its copy)
    /// and each record batch's [`BATCH_OVERHEAD`].
    pub fn expansion(&self) -> usize {
        self.scan.delta_copies.saturating_add(self.scan.batches.saturating_mul(BATCH_OVERHEAD))
    }
}

/// Runs a decoding step, turning a panic into a 400: arrow-rs trusts a
/// few more of a message's numbers than [`scan`] checks
/// (tests/fuzz.rs found the buffer ranges); a decoder panic is a refusal
/// like any other, never a 500.
pub(super) fn guarded<T>(decode: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        Err(ApiError::BadShape(format!(
            "the body is not a valid Arrow IPC stream: {}",
            score_engine::error::panic_message(&*panic)
        )))
    })
}

/// What [`scan`] learns of a stream before any of it is decoded.
pub(super) struct Scan {
    /// The schema (the stream's first message).
    pub(super) schema: Schema,
    /// Record batches.
    batches: usize,
    /// Bytes the dictionary deltas' concatenations copy, in all.
    delta_copies: usize,
}

/// Walks the stream's messages (framing and metadata only, linear in the
/// body): reads the schema, so that the columns are checked before any
/// batch is decoded; checks that every buffer of every batch lies inside
/// its message's body (arrow-rs slices them unchecked, and panics on a
/// garbled offset); adds up what dictionary deltas will copy (the decoder
/// concatenates the whole dictionary again for each delta, so a few
/// megabytes of deltas made gigabytes: that is charged, or refused, before
/// decoding); refuses two columns of one name; counts the batches.
fn scan(bytes: &[u8]) -> Result<Scan, ApiError> {
    let invalid =
        |e: String| ApiError::BadShape(format!("the body is not a valid Arrow IPC stream: {e}"));
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
    };
    let mut at = 0usize;
    let mut schema = None;
    let mut batches = 0usize;
    let mut delta_copies = 0usize;
    // Per dictionary id, the bytes of its values so far.
    let mut dictionaries: Vec<(i64, usize)> = Vec::new();
    // A stream cut short is left for the decoder to name.
    while let Some(mut len) = word(at) {
        at += 4;
        if len == u32::MAX {
            let Some(next) = word(at) else { break };
            (len, at) = (next, at + 4);
        }
        if len == 0 {
            break;
        }
        let Some(meta) = bytes.get(at..at.saturating_add(len as usize)) else { break };
        at += len as usize;
        let message = arrow_ipc::root_as_message(meta).map_err(|e| invalid(e.to_string()))?;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| invalid(format!("a message body of {} bytes", message.bodyLength())))?;
        let batch = match message.header_type() {
            MessageHeader::Schema if schema.is_none() => {
                let fb = message.header_as_schema().ok_or_else(|| invalid("no schema".into()))?;
                schema = Some(
                    arrow_ipc::convert::try_fb_to_schema(fb).map_err(|e| invalid(e.to_string()))?,
                );
                None
            }
            _ if schema.is_none() => break,
            MessageHeader::RecordBatch => {
                batches += 1;
                message.header_as_record_batch()
            }
            MessageHeader::DictionaryBatch => {
                let dictionary = message.header_as_dictionary_batch();
                if let Some(d) = dictionary {
                    let at = match dictionaries.iter().position(|&(id, _)| id == d.id()) {
                        Some(at) => at,
                        None => {
                            dictionaries.push((d.id(), 0));
                            dictionaries.len() - 1
                        }
                    };
                    let size = &mut dictionaries[at].1;
                    if d.isDelta() {
                        *size = size.saturating_add(body);
                        delta_copies = delta_copies.saturating_add(*size);
                    } else {
                        *size = body;
                    }
                }
                dictionary.and_then(|d| d.data())
            }
            _ => None,
        };
        for buffer in batch.and_then(|b| b.buffers()).iter().flatten() {
            let (offset, length) = (buffer.offset(), buffer.length());
            let end = offset.checked_add(length).and_then(|end| usize::try_from(end).ok());
            if offset < 0 || length < 0 || end.is_none_or(|end| end > body) {
                return Err(invalid(format!(
                    "a buffer at {offset} of {length} bytes in a message body of {body} bytes"
                )));
            }
        }
        at = at.saturating_add(body);
    }
    let Some(schema) = schema else {
        // A stream written since Arrow 0.15 starts with the continuation
        // marker; anything else without a schema is not a stream at all.
        return Err(if bytes.len() >= 8 && word(0) == Some(u32::MAX) {
            ApiError::BadShape("the Arrow stream is cut short inside a message".into())
        } else {
            ApiError::BadShape(
                "the body is not an Arrow IPC stream: it does not start with a schema message"
                    .into(),
            )
        });
    };
    let fields = schema.fields();
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].iter().any(|f| f.name() == field.name()) {
            return Err(ApiError::BadShape(format!(
                "the Arrow body has two columns named {}; name each column once",
                quoted(field.name())
            )));
        }
    }
    Ok(Scan { schema, batches, delta_copies })
}

/// A column name as an error sentence quotes it: at most 64 characters
/// (a name is the caller's, of any length).
pub(super) fn quoted(name: &str) -> String {
    const MOST: usize = 64;
    match name.char_indices().nth(MOST) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &name[..cut], name.len()),
    }
}

/// Up to a few of `names`, quoted, and how many there are in all: what an
/// error sentence lists (a stream may have 100,000 columns).
pub(super) fn some_names<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    const FIRST: usize = 5;
    let count = names.len();
    let listed: Vec<String> = names.take(FIRST).map(quoted).collect();
    match count {
        n if n <= FIRST => listed.join(", "),
        n => format!("{}, ... and {} more", listed.join(", "), n - FIRST),
    }
}

pub(super) fn stream_error(e: ArrowError) -> ApiError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("compress") || lower.contains("lz4") || lower.contains("zstd") {
        ApiError::UnsupportedEncoding(format!(
            "a compressed Arrow IPC stream ({text}); send it uncompressed"
        ))
    } else {
        ApiError::BadShape(format!("the body is not a valid Arrow IPC stream: {text}"))
    }
}
