//! The 16-byte digest the offset map stores per key: BLAKE2b with a 16-byte output
//! (RFC 7693), equal to Python's `hashlib.blake2b(key, digest_size=16)`.
//!
//! Kafka's map stores an MD5 of each key; a distinct key that collides with another
//! would make the cleaner delete the wrong record, so the digest must resist crafted
//! collisions, and BLAKE2b does where MD5 no longer does. Written here from the RFC
//! because the core crate has no digest dependency yet; the tests pin it to RFC and
//! `hashlib` vectors, and swapping in the `blake2` crate changes no output.

/// Bytes of a key digest.
pub const HASH_BYTES: usize = 16;

const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK: usize = 128;

#[inline(always)]
fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

fn compress(h: &mut [u64; 8], block: &[u8; BLOCK], counter: u128, last: bool) {
    let mut m = [0u64; 16];
    for (i, w) in m.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&block[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= counter as u64;
    v[13] ^= (counter >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for round in 0..12 {
        let s = &SIGMA[round % 10];
        g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// Unkeyed BLAKE2b of `data` with an `out_len`-byte digest (1..=64) into `out`.
fn blake2b(data: &[u8], out: &mut [u8]) {
    let out_len = out.len();
    debug_assert!((1..=64).contains(&out_len));
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ out_len as u64;
    let mut block = [0u8; BLOCK];
    let mut done = 0usize;
    // Every full block but the last is compressed as it comes; the last block (full
    // or not, and the one zero block of an empty input) carries the final flag.
    while data.len() - done > BLOCK {
        block.copy_from_slice(&data[done..done + BLOCK]);
        done += BLOCK;
        compress(&mut h, &block, done as u128, false);
    }
    let rest = &data[done..];
    block = [0u8; BLOCK];
    block[..rest.len()].copy_from_slice(rest);
    compress(&mut h, &block, data.len() as u128, true);
    let mut full = [0u8; 64];
    for (i, w) in h.iter().enumerate() {
        full[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    out.copy_from_slice(&full[..out_len]);
}

/// The digest of a record key that the offset map stores.
pub fn key_hash(key: &[u8]) -> [u8; HASH_BYTES] {
    let mut out = [0u8; HASH_BYTES];
    blake2b(key, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn blake2b_512_of_abc_is_the_rfc_7693_vector() {
        let mut out = [0u8; 64];
        blake2b(b"abc", &mut out);
        assert_eq!(
            hex(&out),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
    }

    #[test]
    fn key_hash_equals_hashlib_blake2b_digest_size_16() {
        // hashlib.blake2b(m, digest_size=16).hexdigest()
        assert_eq!(hex(&key_hash(b"")), "cae66941d9efbd404e4d88758ea67670");
        assert_eq!(hex(&key_hash(b"abc")), "cf4ab791c62b8d2b2109c90275287816");
        let long: Vec<u8> = (0u8..200).collect();
        assert_eq!(hex(&key_hash(&long)), "61479efa6267fea757b3f881e2979bbc");
    }

    #[test]
    fn a_key_of_exactly_one_block_is_one_final_block() {
        let a = [7u8; BLOCK];
        let mut b = [7u8; BLOCK + 1];
        b[BLOCK] = 0;
        assert_ne!(key_hash(&a), key_hash(&b));
        assert_ne!(key_hash(&a), key_hash(&a[..BLOCK - 1]));
    }
}
