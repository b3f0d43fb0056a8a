//! The QUIC path's link estimate: what rate the headset's link carries, from the headset's
//! own reports, so that the encoders' bitrate follows the link (the WebRTC path has TWCC).
//!
//! Two signals, as in Google's congestion control for WebRTC, and the estimate is the lower:
//! * **Queueing delay** (per frame marker): the frame's first byte arrival minus its send time.
//!   The two clocks differ by an unknown offset, which cancels against the lowest such delay
//!   of the last [`BASE_WINDOW_NS`]; what remains is the time the frame waited in a queue on
//!   the way. The lowest value of each 100 ms window ignores a frame queued behind its own
//!   eye's neighbour. Above [`OVERUSE_NS`] for two windows running (one keyframe's burst drains
//!   within one) the link is over-used: the estimate drops to 85 % of the rate that actually
//!   arrived in the last 500 ms, but by at most 30 % at a time (what arrived undercounts a
//!   stream that is not using its estimate, and frames lost on the way) unless the queue is
//!   over twice the threshold (then straight to 85 % of what arrived); below
//!   [`UNDERUSE_NS`] (and not within half a second of a decrease) it grows 8 % per second; after
//!   [`FAST_AFTER_NS`] of growing without a queue, and once past 1.1 × the rate that arrived at
//!   the last cut (the link's last measured capacity: GCC's "link capacity"), 30 % per second
//!   (SCReAM's fast increase). So on a link that stays as it was, every probe of the capacity
//!   is gentle, while a link that has cleared (a cap lifted, the headset moved closer) is found
//!   again in seconds, not the ~14 s that 8 %/s takes from 5 to 16 Mbit/s.
//! * **Loss** (per receiver stats): Wi-Fi's random loss is forward error correction's to repair
//!   and does not move the estimate; loss above [`CONGESTION_LOSS`] is a queue overflowing:
//!   the estimate drops by half the loss rate.
//!
//! Time is passed in (the streamer's monotonic clock for `now` and send times; the headset's
//! clock for arrivals, used only in differences).

use std::collections::VecDeque;

use crate::Nanos;

/// How far back the lowest one-way delay is looked for.
pub const BASE_WINDOW_NS: u64 = 10_000_000_000;
/// Queueing delay above which the link is over-used (a probe past the capacity shows as this
/// much extra latency for two 100 ms windows; 25 ms let each probe lift p95 over 50 ms).
pub const OVERUSE_NS: i64 = 15_000_000;
/// Queueing delay below which the estimate may grow.
pub const UNDERUSE_NS: i64 = 10_000_000;
/// Datagram loss above which loss is read as congestion.
pub const CONGESTION_LOSS: f64 = 0.10;
const WINDOW_NS: u64 = 100_000_000;
const RATE_WINDOW_NS: u64 = 500_000_000;
const HOLD_NS: u64 = 500_000_000;
const GROWTH_PER_S: f64 = 0.08;
/// Growing without a queue this long, the estimate grows at [`FAST_GROWTH_PER_S`].
pub const FAST_AFTER_NS: u64 = 3_000_000_000;
const FAST_GROWTH_PER_S: f64 = 0.30;

/// One connection's link estimate.
#[derive(Debug, Clone)]
pub struct LinkEstimator {
    estimate: f64,
    min_bps: f64,
    max_bps: f64,
    /// (window end, lowest raw delay of the window), oldest first: the base is their minimum.
    windows: VecDeque<(Nanos, i64)>,
    window_start: Option<Nanos>,
    window_min: Option<i64>,
    /// (arrival as seen by the streamer, bytes) of the last [`RATE_WINDOW_NS`].
    arrivals: VecDeque<(Nanos, u64)>,
    hold_until: Nanos,
    last_grow: Option<Nanos>,
    /// Since when the estimate has grown without a queue.
    growing_since: Option<Nanos>,
    /// The rate that arrived at the last over-use or congestion verdict (whether or not it
    /// lowered the estimate): the link's last measured capacity.
    capacity_bps: Option<f64>,
    /// The last window's queueing delay, for reports.
    queue_ns: i64,
    /// Windows in a row above [`OVERUSE_NS`].
    overused: u32,
    last_decrease: Option<Nanos>,
    decreases: u64,
    /// The lowest the estimate has been.
    lowest: f64,
}

impl LinkEstimator {
    /// Starts at `initial_bps` (where the configured bitrate is the encoders' target), within
    /// `min_bps..=max_bps`.
    pub fn new(initial_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let (min, max) = (min_bps.min(max_bps) as f64, max_bps as f64);
        LinkEstimator {
            estimate: (initial_bps as f64).clamp(min, max),
            min_bps: min,
            max_bps: max,
            windows: VecDeque::new(),
            window_start: None,
            window_min: None,
            arrivals: VecDeque::new(),
            hold_until: 0,
            last_grow: None,
            growing_since: None,
            capacity_bps: None,
            queue_ns: 0,
            overused: 0,
            last_decrease: None,
            decreases: 0,
            lowest: (initial_bps as f64).clamp(min, max),
        }
    }

    /// The estimate, bit/s.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate as u64
    }

    /// The queueing delay of the last full window, nanoseconds.
    pub fn queue_ns(&self) -> i64 {
        self.queue_ns
    }

    /// Whether the link is congested now: a queue is building, or the estimate was cut in the
    /// last two seconds. Loss on a congested link is this rule's to answer, not parity's
    /// (parity would add to the queue).
    pub fn congested(&self, now: Nanos) -> bool {
        self.queue_ns > UNDERUSE_NS
            || self
                .last_decrease
                .is_some_and(|t| now.saturating_sub(t) < 2_000_000_000)
    }

    /// How often the estimate was cut (over-use or congestion loss).
    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// The lowest the estimate has been, bit/s: where a cut took it.
    pub fn lowest_bps(&self) -> u64 {
        self.lowest as u64
    }

    /// The rate that arrived at the last over-use or congestion verdict, bit/s: the link's last
    /// measured capacity (`None` before a verdict that knew it). The estimate itself probes above it again
    /// while no queue shows, and grows freely when the stream does not fill the link (an
    /// encoder that undershoots its target, or a source that drops frames).
    pub fn capacity_bps(&self) -> Option<u64> {
        self.capacity_bps.map(|c| c as u64)
    }

    /// The rate that arrived over the last half second, bit/s (`None` before half a second of
    /// arrivals).
    fn received_bps(&self, now: Nanos) -> Option<f64> {
        let first = self.arrivals.front()?.0;
        if now.saturating_sub(first) < RATE_WINDOW_NS / 2 {
            return None;
        }
        let bytes = self
            .arrivals
            .iter()
            .fold(0u64, |s, a| s.saturating_add(a.1));
        Some(bytes as f64 * 8.0 / (RATE_WINDOW_NS as f64 / 1e9))
    }

    fn decrease_to(&mut self, now: Nanos, target: f64) {
        if target < self.estimate {
            self.estimate = target.max(self.min_bps);
            self.lowest = self.lowest.min(self.estimate);
            self.decreases += 1;
            self.last_decrease = Some(now);
        }
        self.hold_until = now.saturating_add(HOLD_NS);
        self.last_grow = None;
        self.growing_since = None;
    }

    /// A frame marker arrived at `now`: the frame was sent at `send_ns` (streamer clock), its
    /// first byte arrived at `first_byte_client_ns` (headset clock), `bytes` on the wire.
    pub fn on_frame(
        &mut self,
        now: Nanos,
        send_ns: Nanos,
        first_byte_client_ns: Nanos,
        bytes: u64,
    ) {
        self.arrivals.push_back((now, bytes));
        while self
            .arrivals
            .front()
            .is_some_and(|a| now.saturating_sub(a.0) > RATE_WINDOW_NS)
        {
            self.arrivals.pop_front();
        }
        let raw = (first_byte_client_ns as i64).wrapping_sub(send_ns as i64);
        let start = *self.window_start.get_or_insert(now);
        self.window_min = Some(self.window_min.map_or(raw, |m| m.min(raw)));
        if now.saturating_sub(start) < WINDOW_NS {
            return;
        }
        let window_min = self.window_min.take().unwrap_or(raw);
        self.window_start = Some(now);
        self.windows.push_back((now, window_min));
        while self
            .windows
            .front()
            .is_some_and(|w| now.saturating_sub(w.0) > BASE_WINDOW_NS)
        {
            self.windows.pop_front();
        }
        let base = self.windows.iter().map(|w| w.1).min().unwrap_or(window_min);
        self.queue_ns = window_min.saturating_sub(base);
        if self.queue_ns > OVERUSE_NS {
            self.overused += 1;
            if self.overused >= 2 && now >= self.hold_until {
                let received = self.received_bps(now);
                if let Some(r) = received {
                    self.capacity_bps = Some(r);
                }
                let arrived = received.map_or(0.0, |r| 0.85 * r);
                // A queue of twice the threshold is no keyframe's burst: the link is that far
                // below the estimate, so go straight to what arrives.
                let floor = if self.queue_ns > 2 * OVERUSE_NS && arrived > 0.0 {
                    0.0
                } else {
                    0.7 * self.estimate
                };
                self.decrease_to(now, arrived.max(floor));
            }
            self.last_grow = None;
            self.growing_since = None;
            return;
        }
        self.overused = 0;
        if self.queue_ns < UNDERUSE_NS && now >= self.hold_until {
            let since = *self.growing_since.get_or_insert(now);
            if let Some(last) = self.last_grow {
                let dt = now.saturating_sub(last) as f64 / 1e9;
                let past_capacity = self.capacity_bps.is_none_or(|c| self.estimate > 1.1 * c);
                let growth = if past_capacity && now.saturating_sub(since) >= FAST_AFTER_NS {
                    FAST_GROWTH_PER_S
                } else {
                    GROWTH_PER_S
                };
                self.estimate = (self.estimate * (1.0 + growth * dt)).min(self.max_bps);
            }
            self.last_grow = Some(now);
        } else {
            self.last_grow = None;
            self.growing_since = None;
        }
    }

    /// The receiver's datagram counts over its last report interval, and the rate they
    /// arrived at (bit/s, both eyes) when the caller knows it. Under congestion loss the
    /// estimate drops by half the loss rate, and at least to 85 % of what arrived: with a queue
    /// overflowing, nearly every frame dies and no marker comes back, so this is the only
    /// signal, and the arrived rate is the link's.
    pub fn on_loss(&mut self, now: Nanos, expected: u64, received: u64, arrived_bps: Option<f64>) {
        if expected < 20 || received > expected {
            return;
        }
        let loss = 1.0 - received as f64 / expected as f64;
        if loss > CONGESTION_LOSS {
            let mut target = self.estimate * (1.0 - 0.5 * loss);
            if let Some(a) = arrived_bps.filter(|a| a.is_finite() && *a > 0.0) {
                target = target.min(0.85 * a);
                self.capacity_bps = Some(a);
            }
            self.decrease_to(now, target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A link of `capacity_bps` fed `send_bps` in frames every 16.7 ms for `secs`, from `t0`:
    /// a fluid queue model; the estimator sees each frame's first-byte delay. Returns the end.
    fn run(
        e: &mut LinkEstimator,
        t0: Nanos,
        secs: f64,
        capacity_bps: f64,
        send_bps: impl Fn(&LinkEstimator) -> f64,
        queue: &mut f64,
    ) -> Nanos {
        let frame = 16_666_667u64;
        let offset = 5_000_000_000i64; // the headset's clock is 5 s ahead
        let mut t = t0;
        while t < t0 + (secs * 1e9) as u64 {
            let bytes = send_bps(e) / 8.0 / 60.0;
            // The queue drains for one frame time, then the frame joins it.
            *queue = (*queue - capacity_bps / 8.0 / 60.0).max(0.0);
            let wait_ns = (*queue * 8.0 / capacity_bps * 1e9) as u64;
            *queue += bytes;
            let first = (t + 2 * MS + wait_ns) as i64 + offset;
            let arrival = t + 2 * MS + wait_ns + (bytes * 8.0 / capacity_bps * 1e9) as u64;
            e.on_frame(arrival, t, first as u64, bytes as u64);
            t += frame;
        }
        t
    }

    #[test]
    fn a_link_faster_than_the_stream_leaves_the_estimate_at_the_top() {
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        let mut q = 0.0;
        run(&mut e, 0, 10.0, 100e6, |_| 16e6, &mut q);
        assert_eq!(e.estimate_bps(), 20_000_000);
        assert_eq!(e.decreases(), 0);
        assert!(e.queue_ns() < UNDERUSE_NS);
    }

    #[test]
    fn a_slower_link_brings_the_estimate_under_its_capacity_and_the_queue_down() {
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        let mut q = 0.0;
        // The sender sends what the estimate says (as the encoders follow it).
        let t = run(&mut e, 0, 20.0, 6e6, |e| e.estimate_bps() as f64, &mut q);
        assert!(e.decreases() > 0);
        let est = e.estimate_bps() as f64;
        assert!((3e6..7e6).contains(&est), "estimate {est}");
        // And it stays there: the queue stays short over the next 10 s.
        let mut worst = 0i64;
        let mut t2 = t;
        for _ in 0..10 {
            t2 = run(&mut e, t2, 1.0, 6e6, |e| e.estimate_bps() as f64, &mut q);
            worst = worst.max(e.queue_ns());
        }
        assert!(worst < 3 * OVERUSE_NS, "queue {worst} ns");
        // What it measured at the cuts: the link's rate, not the stream's.
        let capacity = e.capacity_bps().expect("a cut measured the link") as f64;
        assert!((5e6..6.6e6).contains(&capacity), "capacity {capacity}");
        assert!(e.lowest_bps() <= e.estimate_bps() && e.lowest_bps() < 6_000_000);
    }

    #[test]
    fn a_sender_that_cannot_fill_its_estimate_lets_it_grow_but_keeps_the_measured_capacity() {
        // A slow link first (the estimate is cut to it), then a sender that sends only 40 % of
        // what the estimate allows (a CPU-bound encoder dropping frames): no queue builds, so
        // the estimate grows past the link while the measured capacity stays the link's.
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        let mut q = 0.0;
        let t = run(&mut e, 0, 10.0, 6e6, |e| e.estimate_bps() as f64, &mut q);
        let cut_to = e.lowest_bps();
        assert!(cut_to < 6_000_000, "{cut_to}");
        run(
            &mut e,
            t,
            10.0,
            6e6,
            |e| 0.4 * e.estimate_bps() as f64,
            &mut q,
        );
        assert!(e.estimate_bps() > 7_000_000, "{}", e.estimate_bps());
        assert!(e.queue_ns() < UNDERUSE_NS, "{}", e.queue_ns());
        assert_eq!(e.lowest_bps(), cut_to);
        let capacity = e.capacity_bps().expect("measured at the cuts") as f64;
        assert!((5e6..6.6e6).contains(&capacity), "capacity {capacity}");
    }

    #[test]
    fn the_estimate_grows_back_when_the_link_clears() {
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        let mut q = 0.0;
        let t = run(&mut e, 0, 10.0, 6e6, |e| e.estimate_bps() as f64, &mut q);
        let low = e.estimate_bps();
        // Back at the top within 10 s of the link clearing (8 %/s alone would take ~14 s).
        let mut t = t;
        let mut back_after = None;
        for tenth in 1..=200 {
            t = run(&mut e, t, 0.1, 100e6, |e| e.estimate_bps() as f64, &mut q);
            if back_after.is_none() && e.estimate_bps() == 20_000_000 {
                back_after = Some(tenth as f64 / 10.0);
            }
        }
        let back = back_after.unwrap_or_else(|| panic!("{low} never back to the top"));
        assert!(back <= 10.0, "{low} → top after {back} s");
        assert!(low < 7_000_000, "{low}");
    }

    #[test]
    fn on_a_steady_cap_the_fast_growth_never_starts() {
        // Each probe over the cap is cut within seconds, so growth stays gentle: the queue
        // stays short and the estimate under twice the link.
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        let mut q = 0.0;
        let mut t = run(&mut e, 0, 10.0, 6e6, |e| e.estimate_bps() as f64, &mut q);
        let (mut worst_queue, mut top) = (0i64, 0u64);
        for _ in 0..300 {
            t = run(&mut e, t, 0.1, 6e6, |e| e.estimate_bps() as f64, &mut q);
            worst_queue = worst_queue.max(e.queue_ns());
            top = top.max(e.estimate_bps());
        }
        assert!(worst_queue < 3 * OVERUSE_NS, "queue {worst_queue} ns");
        assert!(
            top < 8_000_000,
            "the estimate reached {top} on a 6 Mbit/s link"
        );
    }

    #[test]
    fn random_loss_leaves_the_estimate_congestion_loss_cuts_it() {
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        e.on_loss(0, 1000, 980, Some(1e6)); // 2 %: Wi-Fi, parity's job
        assert_eq!(e.estimate_bps(), 20_000_000);
        assert!(!e.congested(MS));
        e.on_loss(MS, 1000, 600, None); // 40 %: a queue overflowing
        assert_eq!(e.estimate_bps(), 16_000_000);
        assert!(e.congested(2 * MS) && !e.congested(3000 * MS));
        // With the arrived rate known, straight to 85 % of it.
        e.on_loss(2 * MS, 1000, 600, Some(6e6));
        assert_eq!(e.estimate_bps(), 5_100_000);
        // Never below the floor; lying counts change nothing.
        for i in 0..50 {
            e.on_loss(i * MS, 1000, 0, Some(f64::NAN));
        }
        assert_eq!(e.estimate_bps(), 2_000_000);
        e.on_loss(0, 10, 20, None);
        e.on_loss(0, u64::MAX, 0, None);
        assert_eq!(e.estimate_bps(), 2_000_000);
    }

    #[test]
    fn arbitrary_timestamps_never_panic() {
        let mut e = LinkEstimator::new(20_000_000, 2_000_000, 20_000_000);
        for (now, send, first) in [
            (0, u64::MAX, 0),
            (u64::MAX, 0, u64::MAX),
            (5, 5, 5),
            (200 * MS, 0, u64::MAX / 2),
            (400 * MS, u64::MAX, 1),
        ] {
            e.on_frame(now, send, first, u64::MAX / 4);
        }
        assert!(e.estimate_bps() >= 2_000_000);
    }
}
