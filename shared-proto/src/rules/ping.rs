//! The clock-sync ping schedule (quickly at first, so an estimate exists before the first
//! frames, then slowly), and pongs matched to the pings actually sent: a pong for an id never
//! sent, answered twice, or echoing another `t0` is refused, so a peer cannot feed the clock
//! estimator samples of its own making.

use crate::clock::ClockSample;
use crate::Nanos;

/// Pings sent quickly at the start.
pub const FAST_PINGS: u32 = 25;
pub const FAST_GAP_NS: Nanos = 20_000_000;
pub const SLOW_GAP_NS: Nanos = 200_000_000;
/// Pings remembered while awaiting their pong (older ones count as lost).
const OUTSTANDING: usize = 64;

#[derive(Debug, Clone)]
pub struct PingSchedule {
    next_id: u32,
    next_at: Option<Nanos>,
    /// (id, t0) of the pings awaiting a pong, oldest first.
    outstanding: std::collections::VecDeque<(u32, Nanos)>,
}

impl Default for PingSchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl PingSchedule {
    pub fn new() -> Self {
        PingSchedule {
            next_id: 0,
            next_at: None,
            outstanding: Default::default(),
        }
    }

    /// When the next ping is due (`None`: at once).
    pub fn next_at(&self) -> Option<Nanos> {
        self.next_at
    }

    /// The ping to send at `now`, if one is due: `(id, t0)`.
    pub fn poll(&mut self, now: Nanos) -> Option<(u32, Nanos)> {
        if self.next_at.is_some_and(|t| now < t) {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let gap = if id < FAST_PINGS {
            FAST_GAP_NS
        } else {
            SLOW_GAP_NS
        };
        self.next_at = Some(now + gap);
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((id, now));
        Some((id, now))
    }

    /// Puts the next ping off until `at` (the channel it goes on is not open yet).
    pub fn defer(&mut self, at: Nanos) {
        self.next_at = Some(at);
    }

    /// A pong for ping `id` gave `sample`: the sample, if it answers a ping this schedule
    /// sent (same id, same `t0`) that was not answered yet.
    pub fn on_pong(&mut self, id: u32, sample: ClockSample) -> Option<ClockSample> {
        let i = self
            .outstanding
            .iter()
            .position(|&(i, t)| i == id && t == sample.t0)?;
        self.outstanding.remove(i);
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_pings_then_slow_ones() {
        let mut s = PingSchedule::new();
        let mut now = 1_000;
        let mut gaps = Vec::new();
        let mut last = None;
        while gaps.len() < 30 {
            if let Some((_, t0)) = s.poll(now) {
                if let Some(l) = last {
                    gaps.push(t0 - l);
                }
                last = Some(t0);
            }
            assert!(s.poll(now).is_none(), "one ping per due time");
            now = s.next_at().unwrap();
        }
        assert!(gaps[..FAST_PINGS as usize - 1]
            .iter()
            .all(|&g| g == FAST_GAP_NS));
        assert!(gaps[FAST_PINGS as usize..]
            .iter()
            .all(|&g| g == SLOW_GAP_NS));
    }

    #[test]
    fn only_pongs_of_pings_sent_count_and_each_once() {
        let mut s = PingSchedule::new();
        let (id, t0) = s.poll(100).unwrap();
        let pong = |t0| ClockSample {
            t0,
            t1: 150,
            t2: 160,
            t3: 200,
        };
        assert!(s.on_pong(id + 1, pong(t0)).is_none(), "never sent");
        assert!(s.on_pong(id, pong(t0 + 1)).is_none(), "another t0");
        let sample = s.on_pong(id, pong(t0)).unwrap();
        assert_eq!((sample.t0, sample.t3), (100, 200));
        assert!(s.on_pong(id, pong(t0)).is_none(), "answered twice");
    }

    #[test]
    fn deferred_ping_waits() {
        let mut s = PingSchedule::new();
        s.defer(500);
        assert!(s.poll(499).is_none());
        assert!(s.poll(500).is_some());
    }

    #[test]
    fn outstanding_pings_are_bounded() {
        let mut s = PingSchedule::new();
        let mut now = 0;
        for _ in 0..1000 {
            s.poll(now);
            now = s.next_at().unwrap();
        }
        assert!(s.outstanding.len() <= OUTSTANDING);
    }
}
