//! Zigzag varints (Kafka record fields) and their encoded sizes.
//!
//! Kafka records use protobuf-style zigzag varints: `varint` for i32 fields and
//! `varlong` for i64 fields. Readers return the value and the number of bytes used,
//! or `None` when the input ends inside the varint or the varint is too long, so the
//! caller can report the byte position.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended before the last byte of the varint (high bit still set).
    PastEnd,
    /// More continuation bytes than the target width allows (5 for i32, 10 for i64).
    TooLong,
}

/// Zigzag-encodes a signed 64-bit integer.
#[inline(always)]
pub fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag64`].
#[inline(always)]
pub fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes needed to write `v` as an unsigned varint (1..=10).
#[inline(always)]
pub fn uvarint_size(v: u64) -> usize {
    // Each byte carries 7 bits; `| 1` makes zero take one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes needed to write `v` as a zigzag varint/varlong.
#[inline(always)]
pub fn varint_size(v: i64) -> usize {
    uvarint_size(zigzag64(v))
}

/// Writes `v` as an unsigned varint at the start of `out`, returning the bytes written.
///
/// `out` must have room for [`uvarint_size`]`(v)` bytes (callers size buffers up front).
#[inline(always)]
pub fn write_uvarint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Writes `v` zigzag-encoded at the start of `out`, returning the bytes written.
#[inline(always)]
pub fn write_varint(out: &mut [u8], v: i64) -> usize {
    write_uvarint(out, zigzag64(v))
}

/// Appends `v` zigzag-encoded to `out`.
pub fn push_varint(out: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 10];
    let n = write_varint(&mut tmp, v);
    out.extend_from_slice(&tmp[..n]);
}

/// Reads an unsigned varint of at most `max_bytes` bytes from the start of `buf`.
#[inline(always)]
fn read_uvarint(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), VarintError> {
    // One-byte values dominate (small lengths, deltas): keep that path short.
    match buf.first() {
        None => return Err(VarintError::PastEnd),
        Some(&b) if b < 0x80 => return Ok((b as u64, 1)),
        _ => {}
    }
    let mut result: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i >= max_bytes {
            return Err(VarintError::TooLong);
        }
        result |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return Ok((result, i + 1));
        }
    }
    if buf.len() >= max_bytes {
        Err(VarintError::TooLong)
    } else {
        Err(VarintError::PastEnd)
    }
}

/// Reads a zigzag varint (Kafka `varint`, i32) from the start of `buf`.
///
/// Returns the value and the number of bytes consumed. Values that do not fit in
/// an i32 after zigzag decoding are reported as [`VarintError::TooLong`].
#[inline(always)]
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, n) = read_uvarint(buf, 5)?;
    if raw > u32::MAX as u64 {
        return Err(VarintError::TooLong);
    }
    Ok((unzigzag64(raw) as i32, n))
}

/// Reads a zigzag varlong (Kafka `varlong`, i64) from the start of `buf`.
#[inline(always)]
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, n) = read_uvarint(buf, 10)?;
    Ok((unzigzag64(raw), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        push_varint(&mut out, v);
        out
    }

    #[test]
    fn zigzag_known_values() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(-1), [0x01]);
        assert_eq!(enc(1), [0x02]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(300), [0xd8, 0x04]);
        assert_eq!(enc(i64::MIN).len(), 10);
    }

    #[test]
    fn round_trips_and_sizes_agree() {
        let samples = [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            8192,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
            1 << 35,
            -(1 << 49),
        ];
        for &v in &samples {
            let bytes = enc(v);
            assert_eq!(bytes.len(), varint_size(v), "size of {v}");
            assert_eq!(read_varlong(&bytes), Ok((v, bytes.len())));
            if let Ok(v32) = i32::try_from(v) {
                assert_eq!(read_varint(&bytes), Ok((v32, bytes.len())));
            }
        }
    }

    #[test]
    fn truncated_varint_is_past_end() {
        assert_eq!(read_varint(&[]), Err(VarintError::PastEnd));
        assert_eq!(read_varint(&[0x80]), Err(VarintError::PastEnd));
        assert_eq!(read_varlong(&[0xff, 0xff, 0xff]), Err(VarintError::PastEnd));
    }

    #[test]
    fn overlong_varint_is_too_long() {
        assert_eq!(read_varint(&[0xff; 6]), Err(VarintError::TooLong));
        assert_eq!(read_varlong(&[0xff; 11]), Err(VarintError::TooLong));
        // Five bytes decoding to more than 32 bits do not fit a Kafka varint.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(VarintError::TooLong)
        );
    }
}
