//! Bodies of float32 values, little-endian, row-major: `rows × columns × 4`
//! bytes. Both directions of the protocol use this codec, and so do the
//! `.f32` files of the CLI.
//!
//! The loops write into a buffer sized up front (no capacity check per
//! value) and compile to vector moves; on little-endian machines the
//! conversion itself is a no-op. Benchmark: `cargo bench -p score-protocol`.

use std::fmt;

/// Bytes per value.
pub const F32_BYTES: usize = 4;

/// A body whose length does not fit the shape it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Bytes received.
    pub len: usize,
    /// Floats per row.
    pub columns: usize,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns == 0 {
            write!(f, "{} bytes cannot be rows of zero columns", self.len)
        } else {
            write!(
                f,
                "{} bytes is not a whole number of rows of {} float32 ({} bytes per row)",
                self.len,
                self.columns,
                self.columns * F32_BYTES
            )
        }
    }
}

impl std::error::Error for ShapeError {}

/// Bytes of a body of `rows × columns` floats, or `None` when that
/// overflows: sizes taken from the other side of a connection must never
/// wrap around.
pub fn body_len(rows: usize, columns: usize) -> Option<usize> {
    rows.checked_mul(columns)?.checked_mul(F32_BYTES)
}

/// Rows in a body of `len` bytes of `columns`-wide rows.
pub fn rows_in(len: usize, columns: usize) -> Result<usize, ShapeError> {
    let row_bytes = columns.checked_mul(F32_BYTES).filter(|b| *b > 0);
    match row_bytes {
        Some(row_bytes) if len.is_multiple_of(row_bytes) => Ok(len / row_bytes),
        _ => Err(ShapeError { len, columns }),
    }
}

/// Appends `values` to `out` as little-endian bytes.
pub fn encode_into(values: &[f32], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + values.len() * F32_BYTES, 0);
    for (dst, v) in out[start..].chunks_exact_mut(F32_BYTES).zip(values) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// `values` as little-endian bytes.
pub fn encode(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(values, &mut out);
    out
}

/// Appends the floats of `bytes` to `out`. `bytes` may start at any
/// alignment (a body slice). Fails when its length is not a multiple of 4.
pub fn decode_into(bytes: &[u8], out: &mut Vec<f32>) -> Result<(), ShapeError> {
    if !bytes.len().is_multiple_of(F32_BYTES) {
        return Err(ShapeError { len: bytes.len(), columns: 1 });
    }
    let start = out.len();
    out.resize(start + bytes.len() / F32_BYTES, 0.0);
    for (dst, b) in out[start..].iter_mut().zip(bytes.chunks_exact(F32_BYTES)) {
        *dst = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// The floats of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Vec<f32>, ShapeError> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip_is_bit_exact(values in proptest::collection::vec(any::<u32>(), 0..300),
                                   skew in 0usize..4) {
            let values: Vec<f32> = values.into_iter().map(f32::from_bits).collect();
            // Decode from an unaligned slice, as bodies come.
            let mut bytes = vec![0u8; skew];
            encode_into(&values, &mut bytes);
            let back = decode(&bytes[skew..]).expect("whole floats");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&values));
        }
    }

    #[test]
    fn little_endian_on_the_wire() {
        assert_eq!(encode(&[1.0]), vec![0x00, 0x00, 0x80, 0x3f]);
        assert!(decode(&[0u8; 5]).is_err());
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(body_len(3, 2), Some(24));
        assert_eq!(body_len(10_000, 1 << 62), None);
        assert_eq!(rows_in(24, 3), Ok(2));
        assert_eq!(rows_in(0, 3), Ok(0));
        assert!(rows_in(20, 3).is_err());
        assert!(rows_in(20, 0).is_err());
        assert!(rows_in(8, usize::MAX).is_err());
        let e = rows_in(20, 3).unwrap_err().to_string();
        assert_eq!(e, "20 bytes is not a whole number of rows of 3 float32 (12 bytes per row)");
    }
}
