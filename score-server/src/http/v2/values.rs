//! An input tensor's values in the request's JSON (`data`, flat or nested
//! in arrays, row-major) read straight into typed vectors or an Arrow
//! string column, never as `serde_json::Value`s; and a binary tensor's
//! little-endian bytes read into the same vectors.

use arrow_array::builder::StringBuilder;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};

/// A JSON value's values, flat or nested in arrays (row-major), into `V`;
/// the parser's sentence when one is not what `V` takes.
pub(super) fn json_values<V: Sink + Default>(raw: &str) -> Result<V, String> {
    let mut sink = V::default();
    let mut de = serde_json::Deserializer::from_str(raw);
    Flat(&mut sink).deserialize(&mut de).and_then(|()| de.end()).map_err(|e| e.to_string())?;
    Ok(sink)
}

/// Where JSON values go.
pub(super) trait Sink {
    /// A number.
    fn number(&mut self, n: Number) -> Result<(), String>;
    /// A boolean.
    fn boolean(&mut self, _: bool) -> Result<(), String> {
        Err("a boolean where a number is expected".into())
    }
    /// A string.
    fn text(&mut self, _: &str) -> Result<(), String> {
        Err("a string where a number is expected".into())
    }
    /// Values taken so far.
    fn count(&self) -> usize;
}

/// A JSON number as it was written.
#[derive(Clone, Copy)]
pub(super) enum Number {
    I(i64),
    U(u64),
    F(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::I(v) => v as f64,
            Number::U(v) => v as f64,
            Number::F(v) => v,
        }
    }

    fn as_i64(self) -> Result<i64, String> {
        match self {
            Number::I(v) => Ok(v),
            Number::U(v) => i64::try_from(v).map_err(|_| format!("{v} is past INT64's range")),
            Number::F(v) => Err(format!("{v} is not an integer")),
        }
    }
}

impl Sink for Vec<f32> {
    fn number(&mut self, n: Number) -> Result<(), String> {
        let v = n.as_f64();
        let f = v as f32;
        if f.is_infinite() && v.is_finite() {
            return Err(format!("{v:e} is outside the float32 range (±3.4e38)"));
        }
        self.push(f);
        Ok(())
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Sink for Vec<f64> {
    fn number(&mut self, n: Number) -> Result<(), String> {
        self.push(n.as_f64());
        Ok(())
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Sink for Vec<i64> {
    fn number(&mut self, n: Number) -> Result<(), String> {
        self.push(n.as_i64()?);
        Ok(())
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Sink for Vec<i32> {
    fn number(&mut self, n: Number) -> Result<(), String> {
        let v = n.as_i64()?;
        self.push(i32::try_from(v).map_err(|_| format!("{v} is past INT32's range"))?);
        Ok(())
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Sink for Vec<bool> {
    fn number(&mut self, _: Number) -> Result<(), String> {
        Err("a number where a boolean (true or false) is expected".into())
    }
    fn boolean(&mut self, b: bool) -> Result<(), String> {
        self.push(b);
        Ok(())
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// BYTES elements, written straight into an Arrow string column.
#[derive(Default)]
pub(super) struct Texts {
    pub(super) builder: StringBuilder,
    pub(super) count: usize,
}

impl Sink for Texts {
    fn number(&mut self, _: Number) -> Result<(), String> {
        Err("a number where a string is expected (BYTES)".into())
    }
    fn text(&mut self, s: &str) -> Result<(), String> {
        // Arrow's offsets are i32: a column holds at most 2 GiB of text,
        // more than any body the server takes.
        self.builder.append_value(s);
        self.count += 1;
        Ok(())
    }
    fn count(&self) -> usize {
        self.count
    }
}

/// Values from a binary tensor's little-endian bytes (whose length the
/// shape was checked against).
pub(super) trait FromLe {
    /// The values of `bytes`.
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! from_le {
    ($($t:ty),*) => {$(
        impl FromLe for Vec<$t> {
            fn from_le(bytes: &[u8]) -> Self {
                bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect()
            }
        }
    )*};
}
from_le!(f32, f64, i64, i32);

impl FromLe for Vec<bool> {
    fn from_le(bytes: &[u8]) -> Self {
        bytes.iter().map(|&b| b != 0).collect()
    }
}

/// Appends the values of a JSON value to a sink: a scalar, or arrays of
/// them nested to any depth (serde_json caps it at 128), row-major.
pub(super) struct Flat<'s, S>(pub(super) &'s mut S);

impl<'de, S: Sink> DeserializeSeed<'de> for Flat<'_, S> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for Flat<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a value or an array of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flat(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.0.number(Number::I(v)).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.0.number(Number::U(v)).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.0.number(Number::F(v)).map_err(E::custom)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.0.boolean(v).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.text(v).map_err(E::custom)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom("null: the model takes no missing values"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat<V: Sink + Default>(json: &str) -> Result<V, String> {
        let mut sink = V::default();
        let mut de = serde_json::Deserializer::from_str(json);
        Flat(&mut sink).deserialize(&mut de).map_err(|e| e.to_string())?;
        Ok(sink)
    }

    #[test]
    fn json_data_is_read_flat_or_nested() {
        assert_eq!(flat::<Vec<f32>>("[1, 2.5, -3]").expect("flat"), [1.0, 2.5, -3.0]);
        assert_eq!(flat::<Vec<f32>>("[[1, 2], [3, 4]]").expect("nested"), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(flat::<Vec<i64>>("[[7], [-8]]").expect("ints"), [7, -8]);
        assert_eq!(flat::<Vec<bool>>("[true, false]").expect("bools"), [true, false]);
        let texts = flat::<Texts>(r#"["a", ["b"]]"#).expect("texts");
        assert_eq!(texts.count, 2);
        let err = flat::<Vec<i64>>("[1.5]").expect_err("not an integer");
        assert!(err.starts_with("1.5 is not an integer"), "{err}");
        let err = flat::<Vec<f32>>("[1e300]").expect_err("out of range");
        assert!(err.contains("outside the float32 range"), "{err}");
        let err = flat::<Vec<f32>>("[null]").expect_err("null");
        assert!(err.contains("no missing values"), "{err}");
        let err = flat::<Vec<f32>>(r#"["x"]"#).expect_err("a string");
        assert!(err.contains("a string where a number is expected"), "{err}");
    }
}
