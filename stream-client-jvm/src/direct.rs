//! Reading a direct `java.nio.ByteBuffer` of float32 without a copy. The
//! only `unsafe` code of the binding is here.
#![allow(unsafe_code)]

use jni::Env;
use jni::objects::JByteBuffer;

/// The first `floats` float32 values of a direct buffer, in the platform's
/// byte order (the Java side writes them with `ByteOrder.nativeOrder()`),
/// borrowed for as long as the local reference `buffer` lives.
pub fn floats<'b>(
    env: &Env<'_>,
    buffer: &'b JByteBuffer<'_>,
    floats: usize,
) -> Result<&'b [f32], String> {
    let address = env
        .get_direct_buffer_address(buffer)
        .map_err(|e| format!("the row block is not a direct ByteBuffer: {e}"))?;
    let capacity = env
        .get_direct_buffer_capacity(buffer)
        .map_err(|e| format!("the row block is not a direct ByteBuffer: {e}"))?;
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
