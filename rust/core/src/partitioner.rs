//! Key-to-partition hashing as the Java client's default partitioner does it.
//!
//! `(murmur2(key) & 0x7fffffff) % partitions`: the formula of Kafka's
//! `BuiltInPartitioner.partitionForKey`. Every client that uses it puts a key on the
//! same partition, which is what lets streamcore and Java producers share keyed topics.

/// Multiplier of MurmurHash2 (32-bit).
const M: u32 = 0x5bd1_e995;
/// The seed Kafka's `Utils.murmur2` starts from.
const SEED: u32 = 0x9747_b28c;

/// MurmurHash2 of `data` as Kafka's `Utils.murmur2` computes it (a Java `int`).
pub fn murmur2(data: &[u8]) -> i32 {
    // Kafka hashes the length as an int; keys are far below 2 GiB.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through from 3 to 1, so the tail bytes are xored in together.
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Partition (`0..partitions`) the Java client picks for a non-null `key`; `None` when
/// `partitions` is zero.
#[inline]
pub fn default_partition(key: &[u8], partitions: u32) -> Option<u32> {
    if partitions == 0 {
        return None;
    }
    Some(((murmur2(key) as u32) & 0x7fff_ffff) % partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_utils_test_vectors() {
        // Kafka's UtilsTest.testMurmur2 inputs and their Java results.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{:?}", std::str::from_utf8(key));
        }
    }

    #[test]
    fn every_tail_length_and_the_empty_key() {
        // Tails of 0..=3 bytes after whole words take different branches; the values
        // are kafka-python's murmur2 (a port of the Java one) read as signed ints.
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(murmur2(b"abcde"), 461_995_741);
        assert_eq!(murmur2(b"abcdef"), 1_870_650_108);
        assert_eq!(murmur2(b"abcdefg"), 3_948_500_121_u32 as i32);
    }

    #[test]
    fn partition_in_range_and_zero_refused() {
        for n in 1..50u32 {
            for key in [&b"k"[..], b"key-1", b"\xff\xff\xff\xff\xff"] {
                let p = default_partition(key, n).unwrap();
                assert!(p < n);
                assert_eq!(p, ((murmur2(key) & 0x7fff_ffff) as u32) % n);
            }
        }
        assert_eq!(default_partition(b"k", 0), None);
    }
}
