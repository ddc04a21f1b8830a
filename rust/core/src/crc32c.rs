//! CRC-32C (Castagnoli, the checksum of Kafka record batch v2).
//!
//! The fast path is the `crc-fast` crate, which picks at runtime between
//! VPCLMULQDQ/AVX-512 folding fused with the SSE4.2 `crc32` instruction, an SSE
//! PCLMULQDQ variant, and the ARMv8 CRC instructions. Where none of those exist we use
//! our own slicing-by-8 table code, which is also exposed so tests can check the two
//! against each other.
//!
//! All functions continue from a previous result: `crc32c_append(crc32c(a), b) ==
//! crc32c(a ++ b)`, the same convention as the `crc32c` Python package.

/// Reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// Slicing-by-8 tables: `TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = make_tables();

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// CRC-32C of `data` continued from `crc` (0 to start), portable table code.
pub fn crc32c_software(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let lo = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ c;
        let hi = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        c = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xff) as usize]
            ^ TABLES[2][((hi >> 8) & 0xff) as usize]
            ^ TABLES[1][((hi >> 16) & 0xff) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ TABLES[0][((c ^ b as u32) & 0xff) as usize];
    }
    !c
}

/// Whether this CPU has instructions that `crc-fast` accelerates CRC-32C with.
#[inline(always)]
fn hardware_available() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("sse4.2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("crc")
            && std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// CRC-32C of `data` continued from `crc` (0 to start), fastest code for this CPU.
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    if hardware_available() {
        // crc-fast works on the internal (pre-inverted) register; its Digest finalises
        // by xor with 0xFFFFFFFF, so seeding with !crc continues a finished CRC.
        let mut digest = crc_fast::Digest::new_with_init_state(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            (!crc) as u64,
        );
        digest.update(data);
        digest.finalize() as u32
    } else {
        crc32c_software(crc, data)
    }
}

/// CRC-32C of `data`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// One line saying which code computes CRC-32C on this machine (for diagnostics).
pub fn implementation_detail() -> String {
    if !hardware_available() {
        return "software table (slicing-by-8)".to_string();
    }
    let target = crc_fast::get_calculator_target(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let feats = cpu_features();
    let kind = if feats.contains(&"vpclmulqdq") && feats.contains(&"avx512f") {
        "vpclmulqdq-avx512 folding fused with sse4.2 crc32"
    } else if feats.contains(&"pclmulqdq") {
        "pclmulqdq folding fused with sse4.2 crc32"
    } else {
        "armv8 crc32c fused with pmull"
    };
    format!("crc-fast {kind} ({target})")
}

/// CPU features relevant to CRC-32C that were detected at runtime.
pub fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("sse4.2") {
            out.push("sse4.2");
        }
        if has!("pclmulqdq") {
            out.push("pclmulqdq");
        }
        if has!("avx2") {
            out.push("avx2");
        }
        if has!("avx512f") {
            out.push("avx512f");
        }
        if has!("avx512vl") {
            out.push("avx512vl");
        }
        if has!("vpclmulqdq") {
            out.push("vpclmulqdq");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        if has!("crc") {
            out.push("crc");
        }
        if has!("aes") {
            out.push("pmull");
        }
        if has!("sha3") {
            out.push("sha3");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720 appendix B.4 vectors plus the CRC catalogue check value.
    fn vectors() -> Vec<(Vec<u8>, u32)> {
        vec![
            (vec![0u8; 32], 0x8A91_36AA),
            (vec![0xffu8; 32], 0x62A8_AB43),
            ((0u8..32).collect(), 0x46DD_794E),
            ((0u8..32).rev().collect(), 0x113F_DB5C),
            (b"123456789".to_vec(), 0xE306_9283),
            (Vec::new(), 0),
        ]
    }

    #[test]
    fn known_vectors_fast_and_software() {
        for (data, want) in vectors() {
            assert_eq!(crc32c(&data), want, "fast {data:?}");
            assert_eq!(crc32c_software(0, &data), want, "software {data:?}");
        }
    }

    #[test]
    fn continuation_equals_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let whole = crc32c(&data);
        for split in [0, 1, 7, 8, 255, 256, 257, 4096, 65_537, data.len()] {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_append(crc32c(a), b), whole, "split {split}");
            assert_eq!(
                crc32c_software(crc32c_software(0, a), b),
                whole,
                "software split {split}"
            );
        }
    }

    #[test]
    fn fast_matches_software_on_every_length_and_alignment() {
        let data: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in (0..1500).step_by(37) {
                let s = &data[start..start + len];
                assert_eq!(
                    crc32c_append(0x1234_5678, s),
                    crc32c_software(0x1234_5678, s)
                );
            }
        }
    }

    #[test]
    fn implementation_detail_is_not_empty() {
        assert!(!implementation_detail().is_empty());
    }
}
