//! Compression codecs of Kafka record batches, with a cap on decompressed size.
//!
//! Only the records after `recordsCount` are compressed, as one blob. The framings are
//! the ones the Java client writes: gzip container, xerial-framed snappy (we also read
//! raw snappy, which some clients send), the LZ4 frame format, and a zstd frame.
//! Decompression streams into a buffer and stops with [`DecompressError::TooLarge`] as
//! soon as the output would pass the cap, so a small hostile blob cannot make us
//! allocate gigabytes.

use std::io::{Read, Write};

/// Compression codec, numbered as in bits 0-2 of the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    /// Codec for the attribute bits 0-2, `None` for the unassigned values 5-7.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Codec for its lower-case name ("none", "gzip", "snappy", "lz4", "zstd").
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "none" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Lower-case name, as used in configuration and by the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Why a blob could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// The output would be larger than the cap (bytes).
    TooLarge { cap: usize },
    /// The blob is not valid for the codec.
    Invalid(String),
}

/// Why data could not be compressed (only an out-of-range level in practice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressError(pub String);

/// xerial snappy-java stream header: magic, then version 1 and minimum compatible 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block; snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Default gzip level (zlib's default).
pub const GZIP_DEFAULT_LEVEL: i32 = 6;
/// Default zstd level (the zstd library's default).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// Compresses `data` with `codec`. `level` applies to gzip (0-9) and zstd (1-22, and
/// negative fast levels); snappy and lz4 have no levels here and ignore it.
pub fn compress(codec: Codec, data: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let level = level.unwrap_or(GZIP_DEFAULT_LEVEL);
            if !(0..=9).contains(&level) {
                return Err(CompressError(format!("gzip level {level} is not in 0..=9")));
            }
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::new(level as u32),
            );
            enc.write_all(data)
                .and_then(|_| enc.finish())
                .map_err(|e| CompressError(format!("gzip: {e}")))
        }
        Codec::Snappy => snappy_xerial_encode(data),
        Codec::Lz4 => {
            let mut enc =
                lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2 + 64));
            enc.write_all(data)
                .map_err(|e| CompressError(format!("lz4: {e}")))?;
            enc.finish().map_err(|e| CompressError(format!("lz4: {e}")))
        }
        Codec::Zstd => {
            let level = level.unwrap_or(ZSTD_DEFAULT_LEVEL);
            let range = zstd::compression_level_range();
            if !range.contains(&level) {
                return Err(CompressError(format!(
                    "zstd level {level} is not in {}..={}",
                    range.start(),
                    range.end()
                )));
            }
            zstd::bulk::compress(data, level).map_err(|e| CompressError(format!("zstd: {e}")))
        }
    }
}

/// Decompresses `data` with `codec`, failing once the output would pass `cap` bytes.
///
/// An empty blob is invalid for every codec (a batch with records always has some).
pub fn decompress(codec: Codec, data: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    if data.is_empty() && codec != Codec::None {
        return Err(DecompressError::Invalid(format!(
            "{}: empty compressed records",
            codec.name()
        )));
    }
    match codec {
        Codec::None => {
            if data.len() > cap {
                Err(DecompressError::TooLarge { cap })
            } else {
                Ok(data.to_vec())
            }
        }
        // Java's GZIPInputStream reads concatenated members; do the same.
        Codec::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(data),
            cap,
            "gzip",
            data.len(),
        ),
        Codec::Snappy => {
            if data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC) {
                snappy_xerial_decode(data, cap)
            } else {
                snappy_raw_decode(data, cap)
            }
        }
        Codec::Lz4 => lz4_frames_decode(data, cap),
        Codec::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| DecompressError::Invalid(format!("zstd: {e}")))?;
            read_capped(dec, cap, "zstd", data.len())
        }
    }
}

/// Reads `reader` to the end into a buffer, never holding more than `cap + 1` bytes.
fn read_capped<R: Read>(
    reader: R,
    cap: usize,
    codec: &str,
    input_len: usize,
) -> Result<Vec<u8>, DecompressError> {
    // Start from a guess (record data compresses a few times) but never beyond the cap.
    let guess = input_len
        .saturating_mul(4)
        .clamp(64, 1 << 20)
        .min(cap.saturating_add(1));
    let mut out = Vec::with_capacity(guess);
    let limit = (cap as u64).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Invalid(format!("{codec}: {e}")))?;
    if out.len() > cap {
        return Err(DecompressError::TooLarge { cap });
    }
    Ok(out)
}

const LZ4_MAGIC: u32 = 0x184D_2204;
/// Skippable frames use magics 0x184D2A50..=0x184D2A5F.
const LZ4_SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const LZ4_SKIPPABLE: u32 = 0x184D_2A50;
/// Linked blocks may refer back this far into earlier output.
const LZ4_WINDOW: usize = 64 * 1024;

fn lz4_err(msg: String) -> DecompressError {
    DecompressError::Invalid(format!("lz4: {msg}"))
}

fn take<'a>(
    data: &'a [u8],
    pos: &mut usize,
    n: usize,
    what: &str,
) -> Result<&'a [u8], DecompressError> {
    if data.len() - *pos < n {
        return Err(lz4_err(format!(
            "{what} truncated at byte {} of the compressed data",
            *pos
        )));
    }
    let s = &data[*pos..*pos + n];
    *pos += n;
    Ok(s)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// One or more concatenated LZ4 frames (skippable frames allowed), parsed here
/// rather than with lz4_flex's reader because that reader treats a stream cut at a
/// block boundary as complete and stops at the first frame. Header, block and content
/// checksums are verified when the frame declares them; linked blocks are supported.
fn lz4_frames_decode(data: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let magic = le_u32(take(data, &mut pos, 4, "frame magic")?);
        if magic & LZ4_SKIPPABLE_MASK == LZ4_SKIPPABLE {
            let n = le_u32(take(data, &mut pos, 4, "skippable frame size")?) as usize;
            take(data, &mut pos, n, "skippable frame")?;
            continue;
        }
        if magic != LZ4_MAGIC {
            return Err(lz4_err(format!(
                "bad frame magic 0x{magic:08x} at byte {}",
                pos - 4
            )));
        }
        let desc_at = pos;
        let flg = take(data, &mut pos, 2, "frame descriptor")?;
        let (flg, bd) = (flg[0], flg[1]);
        if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8F != 0 {
            return Err(lz4_err(format!("bad frame descriptor at byte {desc_at}")));
        }
        let independent = flg & 0x20 != 0;
        let block_checksum = flg & 0x10 != 0;
        let has_size = flg & 0x08 != 0;
        let content_checksum = flg & 0x04 != 0;
        let has_dict = flg & 0x01 != 0;
        let block_max = match (bd >> 4) & 0x07 {
            4 => 64 * 1024,
            5 => 256 * 1024,
            6 => 1024 * 1024,
            7 => 4 * 1024 * 1024,
            other => {
                return Err(lz4_err(format!(
                    "bad block size id {other} at byte {}",
                    desc_at + 1
                )))
            }
        };
        let mut declared = None;
        if has_size {
            let b = take(data, &mut pos, 8, "content size")?;
            declared = Some(u64::from_le_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ]));
        }
        if has_dict {
            return Err(lz4_err(format!(
                "dictionary frames are not supported (byte {desc_at})"
            )));
        }
        let hc = take(data, &mut pos, 1, "header checksum")?[0];
        let want = (twox_hash::XxHash32::oneshot(0, &data[desc_at..pos - 1]) >> 8) as u8;
        if hc != want {
            return Err(lz4_err(format!("bad header checksum at byte {}", pos - 1)));
        }
        if let Some(n) = declared {
            if n > (cap - out.len()) as u64 {
                return Err(DecompressError::TooLarge { cap });
            }
        }
        let frame_start = out.len();
        loop {
            let block_at = pos;
            let word = le_u32(take(data, &mut pos, 4, "block size")?);
            if word == 0 {
                break;
            }
            let stored = word & 0x8000_0000 != 0;
            let size = (word & 0x7FFF_FFFF) as usize;
            if size > block_max {
                return Err(lz4_err(format!(
                    "block of {size} bytes at byte {block_at} exceeds the frame's maximum"
                )));
            }
            let block = take(data, &mut pos, size, "block")?;
            if block_checksum {
                let sum = le_u32(take(data, &mut pos, 4, "block checksum")?);
                if sum != twox_hash::XxHash32::oneshot(0, block) {
                    return Err(lz4_err(format!(
                        "bad block checksum for the block at byte {block_at}"
                    )));
                }
            }
            let start = out.len();
            if stored {
                if size > cap - start {
                    return Err(DecompressError::TooLarge { cap });
                }
                out.extend_from_slice(block);
                continue;
            }
            // Room for a whole block, but never past the cap (+1 to tell "too large").
            let room = block_max.min((cap - start).saturating_add(1));
            out.resize(start + room, 0);
            let (before, after) = out.split_at_mut(start);
            let result = if independent {
                lz4_flex::block::decompress_into(block, after)
            } else {
                let dict_from = start.saturating_sub(LZ4_WINDOW).max(frame_start);
                lz4_flex::block::decompress_into_with_dict(block, after, &before[dict_from..])
            };
            match result {
                Ok(n) => {
                    out.truncate(start + n);
                    if out.len() > cap {
                        return Err(DecompressError::TooLarge { cap });
                    }
                }
                Err(_) if room < block_max => return Err(DecompressError::TooLarge { cap }),
                Err(e) => return Err(lz4_err(format!("bad block at byte {block_at}: {e}"))),
            }
        }
        if let Some(n) = declared {
            if n != (out.len() - frame_start) as u64 {
                return Err(lz4_err(format!(
                    "frame declares {n} bytes but holds {}",
                    out.len() - frame_start
                )));
            }
        }
        if content_checksum {
            let sum = le_u32(take(data, &mut pos, 4, "content checksum")?);
            if sum != twox_hash::XxHash32::oneshot(0, &out[frame_start..]) {
                return Err(lz4_err(format!("bad content checksum at byte {}", pos - 4)));
            }
        }
    }
    Ok(out)
}

/// Snappy with the xerial framing Java writes: header, then blocks of at most 32 KiB
/// input, each as a big-endian i32 compressed length and a raw snappy block.
pub fn snappy_xerial_encode(data: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut out = Vec::with_capacity(
        XERIAL_HEADER_LEN + data.len() + data.len() / 6 + 4 * (data.len() / XERIAL_BLOCK + 1) + 32,
    );
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK) {
        let start = out.len();
        out.resize(start + 4 + snap::raw::max_compress_len(block.len()), 0);
        let n = enc
            .compress(block, &mut out[start + 4..])
            .map_err(|e| CompressError(format!("snappy: {e}")))?;
        out[start..start + 4].copy_from_slice(&(n as i32).to_be_bytes());
        out.truncate(start + 4 + n);
    }
    Ok(out)
}

fn snappy_raw_decode(data: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let len = snap::raw::decompress_len(data)
        .map_err(|e| DecompressError::Invalid(format!("snappy: {e}")))?;
    if len > cap {
        return Err(DecompressError::TooLarge { cap });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| DecompressError::Invalid(format!("snappy: {e}")))
}

fn snappy_xerial_decode(data: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let mut pos = XERIAL_HEADER_LEN;
    let mut out = Vec::new();
    let mut dec = snap::raw::Decoder::new();
    while pos < data.len() {
        if data.len() - pos < 4 {
            return Err(DecompressError::Invalid(format!(
                "snappy: xerial block length truncated at byte {pos} of the compressed data"
            )));
        }
        let n = i32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        pos += 4;
        if n < 0 || n as usize > data.len() - pos {
            return Err(DecompressError::Invalid(format!(
                "snappy: xerial block of {n} bytes at byte {} runs past the compressed data",
                pos - 4
            )));
        }
        let block = &data[pos..pos + n as usize];
        let len = snap::raw::decompress_len(block)
            .map_err(|e| DecompressError::Invalid(format!("snappy: {e}")))?;
        if len > cap - out.len() {
            return Err(DecompressError::TooLarge { cap });
        }
        let start = out.len();
        out.resize(start + len, 0);
        dec.decompress(block, &mut out[start..])
            .map_err(|e| DecompressError::Invalid(format!("snappy: {e}")))?;
        pos += n as usize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for n in [
                0usize,
                1,
                100,
                XERIAL_BLOCK - 1,
                XERIAL_BLOCK,
                XERIAL_BLOCK + 1,
                300_000,
            ] {
                let data = sample(n);
                let packed = compress(codec, &data, None).unwrap();
                let back = decompress(codec, &packed, usize::MAX).unwrap();
                assert_eq!(back, data, "{} {n}", codec.name());
            }
        }
    }

    #[test]
    fn names_and_ids_round_trip() {
        for codec in ALL {
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
            assert_eq!(Codec::from_id(codec as u8), Some(codec));
        }
        assert_eq!(Codec::from_id(5), None);
        assert_eq!(Codec::from_name("brotli"), None);
    }

    #[test]
    fn xerial_header_and_blocks_are_java_shaped() {
        let data = sample(XERIAL_BLOCK * 2 + 10);
        let packed = snappy_xerial_encode(&data).unwrap();
        assert_eq!(
            &packed[..16],
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
        );
        let first = i32::from_be_bytes(packed[16..20].try_into().unwrap()) as usize;
        let block = &packed[20..20 + first];
        assert_eq!(snap::raw::decompress_len(block).unwrap(), XERIAL_BLOCK);
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let data = sample(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Codec::Snappy, &raw, usize::MAX).unwrap(), data);
    }

    #[test]
    fn cap_is_enforced_for_every_codec() {
        let data = vec![0u8; 200_000];
        for codec in ALL {
            let packed = compress(codec, &data, None).unwrap();
            assert_eq!(
                decompress(codec, &packed, 100_000),
                Err(DecompressError::TooLarge { cap: 100_000 }),
                "{}",
                codec.name()
            );
            assert_eq!(decompress(codec, &packed, 200_000).unwrap().len(), 200_000);
        }
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Codec::Snappy, &raw, 10),
            Err(DecompressError::TooLarge { cap: 10 })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let junk: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff; 3],
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x10\x00ab".to_vec(),
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff".to_vec(),
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            b"\x04\x22\x4d\x18garbage".to_vec(),
            b"\x28\xb5\x2f\xfdgarbage".to_vec(),
            sample(100),
        ];
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            for j in &junk {
                if let Ok(out) = decompress(codec, j, 1 << 20) {
                    // Some tiny inputs are valid (an empty gzip/lz4 stream); they must
                    // still respect the cap.
                    assert!(out.len() <= 1 << 20);
                }
            }
        }
    }

    #[test]
    fn concatenated_frames_and_members_are_read_whole() {
        let a = sample(1000);
        let b = sample(3000);
        for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd] {
            let mut both = compress(codec, &a, None).unwrap();
            both.extend_from_slice(&compress(codec, &b, None).unwrap());
            let mut want = a.clone();
            want.extend_from_slice(&b);
            assert_eq!(
                decompress(codec, &both, 1 << 20).unwrap(),
                want,
                "{}",
                codec.name()
            );
        }
    }

    #[test]
    fn truncated_and_trailing_garbage_are_errors() {
        let data = sample(5000);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, &data, None).unwrap();
            for cut in [1, 5, packed.len() / 2, packed.len() - 1] {
                assert!(
                    decompress(codec, &packed[..cut], 1 << 20).is_err(),
                    "{} cut {cut}",
                    codec.name()
                );
            }
            let mut extra = packed.clone();
            extra.push(0x55);
            assert!(
                decompress(codec, &extra, 1 << 20).is_err(),
                "{} trailing",
                codec.name()
            );
            assert!(
                decompress(codec, &[], 1 << 20).is_err(),
                "{} empty",
                codec.name()
            );
        }
    }

    #[test]
    fn bad_levels_are_errors() {
        assert!(compress(Codec::Gzip, b"x", Some(10)).is_err());
        assert!(compress(Codec::Zstd, b"x", Some(1000)).is_err());
        assert!(compress(Codec::Gzip, b"x", Some(9)).is_ok());
    }
}
