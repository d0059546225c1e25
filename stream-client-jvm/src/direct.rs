//! Reading a direct `java.nio.ByteBuffer` (float32 rows, or texts in
//! Arrow's utf8 layout) without a copy. The only `unsafe` code of the
//! binding is here.
#![allow(unsafe_code)]

use jni::Env;
use jni::objects::JByteBuffer;

/// A direct buffer's start address and capacity in bytes; `what` names
/// the block in the error.
fn region(env: &Env<'_>, buffer: &JByteBuffer<'_>, what: &str) -> Result<(*mut u8, usize), String> {
    let not_direct = |e| format!("the {what} block is not a direct ByteBuffer: {e}");
    let address = env.get_direct_buffer_address(buffer).map_err(not_direct)?;
    let capacity = env.get_direct_buffer_capacity(buffer).map_err(not_direct)?;
    Ok((address, capacity))
}

/// The first `floats` float32 values of a direct buffer, in the platform's
/// byte order (the Java side writes them with `ByteOrder.nativeOrder()`),
/// borrowed for as long as the local reference `buffer` lives.
pub fn floats<'b>(
    env: &Env<'_>,
    buffer: &'b JByteBuffer<'_>,
    floats: usize,
) -> Result<&'b [f32], String> {
    let (address, capacity) = region(env, buffer, "row")?;
    let bytes = floats
        .checked_mul(size_of::<f32>())
        .ok_or_else(|| format!("{floats} floats do not fit in memory"))?;
    if bytes > capacity {
        return Err(format!("the row block holds {capacity} bytes, {bytes} were announced"));
    }
    if address.is_null() || !(address as usize).is_multiple_of(align_of::<f32>()) {
        return Err("the row block's memory is not aligned for float32".into());
    }
    // SAFETY: `address` is the start of the direct buffer's memory, non-null
    // and aligned for f32 (checked above), and holds `capacity >= bytes`
    // initialised bytes (a direct buffer is zeroed at allocation, and any
    // bit pattern is a valid f32). The memory is freed only after the
    // ByteBuffer object is collected, which cannot happen while the local
    // reference `buffer` is alive, and the returned slice borrows `buffer`.
    // The Java side (`score.client.Scoring`) does not write the buffer
    // while a native call that reads it runs: the session's calls are made
    // by one thread, one at a time.
    Ok(unsafe { std::slice::from_raw_parts(address.cast::<f32>(), floats) })
}

/// Texts in Arrow's utf8 layout at the start of a direct buffer: `rows + 1`
/// int32 offsets in the platform's byte order, then `bytes` bytes of UTF-8
/// (what `score.client.Scoring` writes), borrowed like [`floats`]. The
/// offsets and the bytes are only read here; their consistency is checked
/// by the caller.
pub fn texts<'b>(
    env: &Env<'_>,
    buffer: &'b JByteBuffer<'_>,
    rows: usize,
    bytes: usize,
) -> Result<(&'b [i32], &'b [u8]), String> {
    let (address, capacity) = region(env, buffer, "text")?;
    let head = rows
        .checked_add(1)
        .and_then(|n| n.checked_mul(size_of::<i32>()))
        .ok_or_else(|| format!("{rows} texts do not fit in memory"))?;
    let total = head.checked_add(bytes).ok_or_else(|| format!("{bytes} bytes of texts"))?;
    if total > capacity {
        return Err(format!("the text block holds {capacity} bytes, {total} were announced"));
    }
    if address.is_null() || !(address as usize).is_multiple_of(align_of::<i32>()) {
        return Err("the text block's memory is not aligned for int32".into());
    }
    // SAFETY: as in `floats`: `address` is the non-null start of the direct
    // buffer's memory, aligned for i32 (checked above), with `capacity >=
    // total` initialised bytes (zeroed at allocation; any bit pattern is a
    // valid i32 or u8), so both slices lie inside it and do not overlap.
    // The memory lives while the local reference `buffer` does, which the
    // returned slices borrow, and the Java side does not write the buffer
    // while this native call runs (one thread, one call at a time).
    let offsets = unsafe { std::slice::from_raw_parts(address.cast::<i32>(), rows + 1) };
    // SAFETY: see above; `head + bytes <= capacity`.
    let values = unsafe { std::slice::from_raw_parts(address.add(head), bytes) };
    Ok((offsets, values))
}
