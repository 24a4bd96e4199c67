//! Choosing a partition: explicit, by key hash (Java-compatible), or sticky
//! for records without a key.
//!
//! * A record with a partition goes there (checked against the partition
//!   count).
//! * A record with a key (an empty key included) goes to
//!   `(murmur2(key) & 0x7fffffff) % partitions`, the partition Java's default
//!   partitioner (`BuiltInPartitioner.partitionForKey`: `Utils.toPositive(
//!   Utils.murmur2(key)) % numPartitions`) and librdkafka's `murmur2_random`
//!   choose, so keyed records land where the other clients put them.
//! * A record without a key goes to the topic's *sticky* partition (KIP-480):
//!   records without keys stick to one partition while its batch is open, so
//!   they fill one batch instead of spreading one record over every partition;
//!   once that batch was sent (or filled), the next keyless record picks
//!   another partition at random. [`StickyPartitions`] keeps that state.

use std::collections::HashMap;

/// Seed of Kafka's murmur2.
const SEED: u32 = 0x9747_b28c;
/// Multiplier of MurmurHash2.
const M: u32 = 0x5bd1_e995;
/// Shift of MurmurHash2.
const R: u32 = 24;

/// MurmurHash2 (32 bit) as Kafka's Java client computes it
/// (`org.apache.kafka.common.utils.Utils.murmur2`): seed `0x9747b28c`, four
/// bytes at a time read little-endian, tail bytes folded in, final avalanche.
///
/// The result is the same bit pattern as Java's `int`; cast to `i32` to
/// compare with Java's signed values.
///
/// ```
/// use kafee_client::produce::murmur2;
/// assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
/// ```
pub fn murmur2(data: &[u8]) -> u32 {
    // Java takes the length as an int; keys are far below 2^32 bytes, and
    // wrapping reproduces Java's arithmetic anyway.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Java's default partitioner gives a record with this key:
/// `(murmur2(key) & 0x7fffffff) % partitions`. `partitions` must be positive;
/// `0` is returned for `partitions <= 0`.
///
/// ```
/// use kafee_client::produce::partition_for_key;
/// assert_eq!(partition_for_key(b"foobar", 7), 0);
/// ```
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// The sticky partition of each topic, for records without a key.
///
/// A topic's sticky partition is kept while the batch it was filling is
/// still open (`batch_seq` names that batch); the caller asks
/// [`StickyPartitions::partition`] with the accumulator's open batch of the
/// sticky partition and reports with [`StickyPartitions::record`] where the
/// record went.
#[derive(Debug, Clone)]
pub struct StickyPartitions {
    topics: HashMap<String, Sticky>,
    rng: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sticky {
    partition: i32,
    batch_seq: u64,
}

impl StickyPartitions {
    /// Empty state; `seed` drives the random choice of the next partition.
    pub fn new(seed: u64) -> Self {
        StickyPartitions {
            topics: HashMap::new(),
            rng: seed | 1,
        }
    }

    /// The partition for a keyless record of `topic` with `partitions`
    /// partitions. `open_batch` tells the sequence number of the open batch
    /// of a partition (`None` when it has none): the sticky partition is kept
    /// while the batch it was filling is still open.
    pub fn partition(
        &mut self,
        topic: &str,
        partitions: i32,
        open_batch: impl Fn(i32) -> Option<u64>,
    ) -> i32 {
        if partitions <= 1 {
            return 0;
        }
        let previous = self.topics.get(topic).copied();
        if let Some(s) = previous {
            if s.partition < partitions && open_batch(s.partition) == Some(s.batch_seq) {
                return s.partition;
            }
        }
        let mut choice = (self.next_random() % partitions as u64) as i32;
        if let Some(s) = previous {
            if choice == s.partition {
                choice = (choice + 1) % partitions;
            }
        }
        choice
    }

    /// Remembers that a keyless record of `topic` went into batch `batch_seq`
    /// of `partition`.
    pub fn record(&mut self, topic: &str, partition: i32, batch_seq: u64) {
        match self.topics.get_mut(topic) {
            Some(s) => {
                s.partition = partition;
                s.batch_seq = batch_seq;
            }
            None => {
                self.topics.insert(
                    topic.to_owned(),
                    Sticky {
                        partition,
                        batch_seq,
                    },
                );
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: spreads the choice; no dependency needed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values printed by `Utils.murmur2` and `Utils.toPositive(..) % 7` of
    /// Apache Kafka 4.4.0's `kafka-clients` jar (run through jshell), covering
    /// every tail length. The first six are also the vectors of Kafka's own
    /// `UtilsTest.testMurmur2`; "kafka" ... "" are librdkafka's `rdmurmur2.c`
    /// unit-test inputs.
    const JAVA: &[(&str, i32, i32)] = &[
        ("21", -973_932_308, 3),
        ("foobar", -790_332_482, 0),
        ("a-little-bit-long-string", -985_981_536, 1),
        ("a-little-bit-longer-string", -1_486_304_829, 0),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
            3,
        ),
        ("abc", 479_470_107, 4),
        ("kafka", -798_503_068, 3),
        ("giberish123456789", -1_890_243_828, 5),
        ("1234", -1_614_185_708, 0),
        ("234", -406_844_982, 4),
        ("34", -2_026_295_078, 6),
        ("4", 1_514_888_353, 6),
        ("", 275_646_681, 2),
        ("PreAmbleWillBeRemoved,ThePrePartThatIs", 2_017_611_548, 1),
        ("dlq-key-0", -1_153_134_709, 3),
        ("dlq-key-999", 576_221_654, 1),
    ];

    #[test]
    fn murmur2_matches_the_java_client() {
        for &(key, hash, p7) in JAVA {
            assert_eq!(murmur2(key.as_bytes()) as i32, hash, "murmur2({key:?})");
            assert_eq!(
                partition_for_key(key.as_bytes(), 7),
                p7,
                "partition of {key:?}"
            );
        }
    }

    #[test]
    fn murmur2_reads_bytes_unsigned() {
        // Java sign-extends bytes but masks them with 0xff: high bytes must hash
        // as their unsigned value (printed by the same jshell run).
        assert_eq!(
            murmur2(&[0xff, 0x80, 0x7f, 0x00, 0xfe]) as i32,
            -1_958_495_739
        );
    }

    #[test]
    fn sticky_partition_is_kept_while_its_batch_is_open_then_changes() {
        let mut sticky = StickyPartitions::new(42);
        let first = sticky.partition("t", 6, |_| None);
        assert!((0..6).contains(&first));
        sticky.record("t", first, 10);
        // Batch 10 still open on `first`: keep it.
        assert_eq!(
            sticky.partition("t", 6, |p| (p == first).then_some(10)),
            first
        );
        // Batch 10 was sent; the partition's open batch is now another one.
        for _ in 0..50 {
            let next = sticky.partition("t", 6, |p| (p == first).then_some(11));
            assert_ne!(next, first);
        }
        // One partition: always 0.
        assert_eq!(sticky.partition("one", 1, |_| None), 0);
    }

    proptest! {
        #[test]
        fn partition_for_key_is_in_range_and_stable(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            partitions in 1i32..10_000,
        ) {
            let p = partition_for_key(&key, partitions);
            prop_assert!((0..partitions).contains(&p));
            prop_assert_eq!(p, partition_for_key(&key, partitions));
        }

        #[test]
        fn sticky_choice_is_in_range(seed in any::<u64>(), partitions in 1i32..64) {
            let mut sticky = StickyPartitions::new(seed);
            for i in 0..20u64 {
                let p = sticky.partition("t", partitions, |_| None);
                prop_assert!((0..partitions).contains(&p));
                sticky.record("t", p, i);
            }
        }
    }
}
