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

    /// Charges a frame of `bytes` that goes whatever the budget says (a keyframe a receiver
    /// waits for, into an empty transport queue).
    pub fn charge(&mut self, now: Nanos, bytes: usize) {
        self.drain(now);
        self.debt_bytes += bytes as f64;
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

/// What the transport's own send queue holds (its pacer, e.g. str0m's): bytes queued, how long
/// the oldest has waited, and the rate it drains at (bit/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueState {
    pub bytes: u64,
    pub oldest_wait_ns: Nanos,
    pub drain_bps: u64,
}

/// Whether a frame captured `age_ns` ago may join the transport's queue: it must be able to
/// leave (behind what is queued, at the drain rate) before `deadline_ns` after capture, and the
/// queue's oldest packet must not already be that late. The budget ([`Budget`]) models the
/// queue from the estimate; this reads the real one, which matters when the estimate falls
/// (a blackout, a cap): what was queued at the old rate then drains at the new one, and
/// frames added behind it would be seconds late.
pub fn queue_admits(q: QueueState, age_ns: Nanos, deadline_ns: Nanos) -> bool {
    if q.oldest_wait_ns > deadline_ns {
        return false;
    }
    if q.bytes == 0 {
        return true;
    }
    if q.drain_bps == 0 {
        return false;
    }
    let drain_ns = (q.bytes as f64 * 8.0 / q.drain_bps as f64 * 1e9).min(u64::MAX as f64) as u64;
    age_ns.saturating_add(drain_ns) <= deadline_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_joins_the_transport_queue_only_if_it_can_leave_in_time() {
        const MS: u64 = 1_000_000;
        let q = |bytes: u64, oldest_ms: u64, mbps: u64| QueueState {
            bytes,
            oldest_wait_ns: oldest_ms * MS,
            drain_bps: mbps * 1_000_000,
        };
        // Empty queue: a fresh frame goes.
        assert!(queue_admits(q(0, 0, 10), 5 * MS, 50 * MS));
        // 25 kB at 10 Mbit/s drain in 20 ms: a 10 ms old frame leaves at 30 ms, in time.
        assert!(queue_admits(q(25_000, 5, 10), 10 * MS, 50 * MS));
        // The estimate fell to 1 Mbit/s: the same queue takes 200 ms.
        assert!(!queue_admits(q(25_000, 5, 1), 10 * MS, 50 * MS));
        // The oldest queued packet is already past the deadline.
        assert!(!queue_admits(q(100, 60, 100), 0, 50 * MS));
        // No drain rate with bytes queued; absurd numbers do not overflow.
        assert!(!queue_admits(q(1, 0, 0), 0, 50 * MS));
        assert!(!queue_admits(q(u64::MAX, 0, 1), u64::MAX, 50 * MS));
    }

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
    fn a_frame_charged_past_the_budget_holds_back_the_next() {
        let mut b = Budget::new(0);
        b.set_rate(0, 8_000_000); // 1 MB/s: the budget holds 100 kB
        b.charge(0, 300_000); // a keyframe that goes anyway
        assert!(!b.admit(100_000_000, 10), "200 kB still to drain");
        assert!(b.admit(250_000_000, 10), "down to 50 kB");
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
