//! Retry delays: exponential backoff with full jitter (AWS architecture blog's "full
//! jitter"): attempt `n` (1-based, the attempt that just failed) waits a uniformly
//! random time in `[0, min(cap, base * 2^(n-1))]`. Full jitter spreads a burst of
//! failures over the whole window instead of re-synchronising them.

use std::time::Duration;

/// The upper bound of the wait after attempt `n` failed.
pub(crate) fn ceiling(n: u32, base: Duration, cap: Duration) -> Duration {
    let shift = n.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << shift).min(cap)
}

/// The wait after attempt `n` failed: uniform in `[0, ceiling]` with jitter, else the
/// ceiling itself.
pub(crate) fn delay(
    n: u32,
    base: Duration,
    cap: Duration,
    jitter: bool,
    rng: &mut fastrand::Rng,
) -> Duration {
    let c = ceiling(n, base, cap);
    if !jitter || c.is_zero() {
        return c;
    }
    let ms = c.as_millis() as u64;
    Duration::from_millis(rng.u64(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let (b, c) = (Duration::from_millis(100), Duration::from_millis(1000));
        let got: Vec<u128> = (1..=6).map(|n| ceiling(n, b, c).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(ceiling(u32::MAX, b, c), c);
    }

    #[test]
    fn jittered_delays_stay_in_the_window_and_vary() {
        let (b, c) = (Duration::from_millis(100), Duration::from_secs(10));
        let mut rng = fastrand::Rng::with_seed(7);
        let ds: Vec<Duration> = (0..200).map(|_| delay(4, b, c, true, &mut rng)).collect();
        assert!(ds.iter().all(|d| *d <= Duration::from_millis(800)));
        assert!(ds.iter().any(|d| *d < Duration::from_millis(400)));
        assert!(ds.iter().any(|d| *d > Duration::from_millis(400)));
        assert_eq!(delay(4, b, c, false, &mut rng), Duration::from_millis(800));
    }
}
