//! Exponential backoff with jitter, as the Java client does it
//! (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`, ±20 % jitter).
//!
//! Sans-IO: [`Backoff`] only computes delays; the caller sleeps.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Share of jitter applied to each delay: the delay is drawn from
/// `[d * (1 - JITTER), d * (1 + JITTER)]`, then capped at the maximum.
pub const JITTER: f64 = 0.2;

/// Delays for successive attempts: `initial * 2^attempt`, capped at `max`,
/// with ±[`JITTER`] so that many clients do not retry in lock step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self::with_seed(initial, max, seed)
    }

    /// As [`Backoff::new`] with a fixed jitter seed (deterministic tests).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The number of delays handed out since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: enough to spread clients apart, no dependency needed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let factor = 1.0 - JITTER + 2.0 * JITTER * unit;
        base.mul_f64(factor).min(self.max)
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before jitter for a given attempt.
    fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(1), 7);
        let d: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(80) && d[0] <= Duration::from_millis(120));
        assert!(d[1] >= Duration::from_millis(160) && d[1] <= Duration::from_millis(240));
        assert!(d[7] >= Duration::from_millis(800) && d[7] <= Duration::from_secs(1));
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay() <= Duration::from_millis(120));
    }

    proptest! {
        #[test]
        fn delay_stays_within_jitter_of_the_base_and_below_the_cap(
            initial_ms in 1u64..5_000,
            extra_ms in 0u64..60_000,
            attempts in 1usize..80,
            seed in any::<u64>(),
        ) {
            let initial = Duration::from_millis(initial_ms);
            let max = Duration::from_millis(initial_ms + extra_ms);
            let mut b = Backoff::with_seed(initial, max, seed);
            for i in 0..attempts {
                let base = b.base_delay(i as u32);
                let d = b.next_delay();
                prop_assert!(d <= max);
                prop_assert!(d >= base.mul_f64(1.0 - JITTER - 1e-9));
                prop_assert!(d <= base.mul_f64(1.0 + JITTER + 1e-9));
            }
        }
    }
}
