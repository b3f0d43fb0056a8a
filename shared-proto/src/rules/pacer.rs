//! Datagram pacing: a token bucket at a fixed rate with a small burst allowance, so a frame's
//! datagrams leave spread over time instead of as one burst that overflows a Wi-Fi queue.

use crate::Nanos;

/// A token bucket at `rate` bits/s; [`Pacer::delay`] says how long to wait before a datagram.
#[derive(Debug, Clone)]
pub struct Pacer {
    ns_per_byte: f64,
    burst_ns: f64,
    next_ns: f64,
}

impl Pacer {
    pub fn new(rate_mbps: f64, burst_bytes: usize) -> Self {
        let ns_per_byte = 8e3 / rate_mbps;
        Pacer {
            ns_per_byte,
            burst_ns: burst_bytes as f64 * ns_per_byte,
            next_ns: 0.0,
        }
    }

    /// How long to wait before sending `len` bytes at `now`; charges the bytes.
    pub fn delay(&mut self, now: Nanos, len: usize) -> Nanos {
        let now = now as f64;
        // Unused credit accumulates only up to the burst allowance.
        let start = self.next_ns.max(now - self.burst_ns);
        self.next_ns = start + len as f64 * self.ns_per_byte;
        (start - now).max(0.0) as Nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spreads_bytes_at_the_rate_after_the_burst() {
        // 8 Mbit/s = 1 byte per µs; 1000-byte burst allowance on top of the datagram at hand.
        let mut p = Pacer::new(8.0, 1000);
        let t0 = 1_000_000_000;
        assert_eq!(p.delay(t0, 1000), 0, "the burst goes at once");
        assert_eq!(p.delay(t0, 1000), 0, "...within the allowance");
        assert_eq!(
            p.delay(t0, 1000),
            1_000_000,
            "then one byte per microsecond"
        );
        assert_eq!(p.delay(t0, 1000), 2_000_000);
        // Idle time refills the allowance, but only up to the burst.
        let later = t0 + 1_000_000_000;
        for _ in 0..3 {
            assert_eq!(p.delay(later, 500), 0);
        }
        assert_eq!(p.delay(later, 500), 500_000);
    }
}
