//! A receiver's own send budget: bytes handed to its transport drain at the receiver's
//! bandwidth estimate. A receiver whose link is slower than the stream would otherwise queue
//! without bound in its pacer; instead it loses whole frames (and then waits for a keyframe),
//! keeping its own latency bounded without slowing the others.

use crate::Nanos;

/// The most a receiver's queue may hold, in time at its estimated rate.
pub const BUDGET_QUEUE_NS: Nanos = 100_000_000;

#[derive(Debug, Clone)]
pub struct Budget {
    rate_bps: Option<u64>,
    debt_bytes: f64,
    last: Nanos,
}

impl Budget {
    pub fn new(now: Nanos) -> Self {
        Budget {
            rate_bps: None,
            debt_bytes: 0.0,
            last: now,
        }
    }

    /// A new estimate of the receiver's rate.
    pub fn set_rate(&mut self, now: Nanos, bps: u64) {
        self.drain(now);
        self.rate_bps = Some(bps);
    }

    fn drain(&mut self, now: Nanos) {
        if let Some(r) = self.rate_bps {
            let secs = now.saturating_sub(self.last) as f64 / 1e9;
            self.debt_bytes = (self.debt_bytes - secs * r as f64 / 8.0).max(0.0);
        }
        self.last = self.last.max(now);
    }

    /// Whether a frame of `bytes` may go now; if so it is charged. With no estimate yet,
    /// everything goes.
    pub fn admit(&mut self, now: Nanos, bytes: usize) -> bool {
        self.drain(now);
        if let Some(r) = self.rate_bps {
            if self.debt_bytes > r as f64 / 8.0 * (BUDGET_QUEUE_NS as f64 / 1e9) {
                return false;
            }
        }
        self.debt_bytes += bytes as f64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_drops_frames_only_when_the_receiver_is_behind() {
        let t0 = 5_000_000_000;
        let ms = |n: u64| t0 + n * 1_000_000;
        let mut b = Budget::new(t0);
        // No estimate yet: everything goes.
        assert!(b.admit(t0, 1_000_000));
        b.set_rate(t0, 8_000_000); // 1 MB/s: a 100 ms queue is 100 kB
                                   // The 1 MB above drains in 1 s; until it is down to 100 kB nothing goes.
        assert!(!b.admit(ms(800), 10));
        assert!(b.admit(ms(900), 50_000));
        // A stream at the link's rate (100 kB every 100 ms) always fits.
        for k in 0..50 {
            assert!(b.admit(ms(1000 + 100 * k), 100_000), "frame {k}");
        }
        // Twice the link's rate: about half the frames are refused.
        let mut sent = 0;
        for k in 0..100 {
            sent += u32::from(b.admit(ms(6000 + 50 * k), 100_000));
        }
        assert!((45..=55).contains(&sent), "{sent}");
    }

    #[test]
    fn time_going_backwards_charges_nothing_extra() {
        let mut b = Budget::new(1_000);
        b.set_rate(1_000, 8_000_000);
        assert!(b.admit(1_000, 200_000));
        // An earlier timestamp (another thread's clock read) neither drains nor panics.
        assert!(!b.admit(500, 1));
    }
}
