//! The 16-byte digest the offset map stores per key: BLAKE2b with a 16-byte output
//! (RFC 7693), equal to Python's `hashlib.blake2b(key, digest_size=16)`.
//!
//! Kafka's map stores an MD5 of each key; a distinct key that collides with another
//! would make the cleaner delete the wrong record, so the digest must resist crafted
//! collisions, and BLAKE2b does where MD5 no longer does. The `blake2` crate (RustCrypto)
//! computes it; the tests pin it to the RFC and `hashlib` vectors.

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};

/// Bytes of a key digest.
pub const HASH_BYTES: usize = 16;

/// The digest of a record key that the offset map stores.
pub fn key_hash(key: &[u8]) -> [u8; HASH_BYTES] {
    Blake2b::<U16>::digest(key).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use blake2::Blake2b512;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn blake2b_512_of_abc_is_the_rfc_7693_vector() {
        assert_eq!(
            hex(&Blake2b512::digest(b"abc")),
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
    fn keys_around_a_block_boundary_differ() {
        // BLAKE2b's block is 128 bytes: the last block carries the final flag.
        let a = [7u8; 128];
        let mut b = [7u8; 129];
        b[128] = 0;
        assert_ne!(key_hash(&a), key_hash(&b));
        assert_ne!(key_hash(&a), key_hash(&a[..127]));
    }
}
