//! Forward error correction: how many parity fragments a frame gets, from the loss the
//! receiver measures.
//!
//! * [`LossMeter`] (receiver): per frame, the fragments its headers announce (data + parity)
//!   and the distinct ones that arrived. Frames are counted once they leave a short window
//!   (late and reordered fragments still count), so the ratio is the link's datagram loss, not
//!   an artefact of timing. Frames of which nothing arrived are not counted (a blackout is not
//!   something parity can repair).
//! * [`FecPolicy`] (sender): the receiver's counts (`ClientStats`) → a loss estimate (quick to
//!   rise, slow to fall) → for a frame of `k` data fragments, the fewest parity fragments `m`
//!   such that losing more than `m` of the `k + m` is rarer than [`TARGET_FRAME_LOSS`] at that
//!   loss rate. A clean link gets none (nothing is sent before the first report). Frames that still die after repair (bursty loss that
//!   a binomial model under-counts) raise a safety margin on the estimate. A window with more
//!   loss than [`crate::rules::rate::CONGESTION_LOSS`] is a queue overflowing, which parity
//!   would feed: it is left to the link estimate and does not move this one.

use std::collections::VecDeque;
use std::fmt;

use crate::wire::ClientStats;

/// Frames the sender aims to lose after repair (0.2 %: one frame in ~8 s at 60 fps).
pub const TARGET_FRAME_LOSS: f64 = 0.002;
/// Below this measured datagram loss no parity is sent (a clean link pays nothing).
pub const MIN_LOSS: f64 = 0.001;
/// The loss assumed until the receiver's first report: none. (2 % was tried: a lossy link was
/// protected from its first frame, but on a clean reordering link that parity completed frames
/// before their last data fragment, and each rebuild's ~270 µs — far more on a slow or
/// emulated CPU — cost more than it saved; retransmission covers the first half-second on a
/// short link.)
pub const INITIAL_LOSS: f64 = 0.0;
/// The most parity the adaptive mode adds, in percent of a frame's data fragments.
pub const MAX_ADAPTIVE_OVERHEAD_PERCENT: u32 = 50;
/// Datagrams a measurement window needs before it moves the estimate.
const MIN_WINDOW: u64 = 50;

/// `transport.fec`: the forward error correction mode of the QUIC video datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FecMode {
    /// No parity fragments.
    Off,
    /// Parity sized to the measured loss, at most [`MAX_ADAPTIVE_OVERHEAD_PERCENT`] of a
    /// frame's fragments (but at least one when any is needed).
    #[default]
    Adaptive,
    /// A fixed share of every frame's fragments (rounded up), whatever the loss.
    Fixed { percent: u8 },
}

impl FecMode {
    /// Parses `adaptive`, `off`, or a fixed percentage `1..=100` (`25` or `25%`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "adaptive" => Ok(FecMode::Adaptive),
            "off" => Ok(FecMode::Off),
            other => {
                let n = other.strip_suffix('%').unwrap_or(other).trim();
                match n.parse::<u8>() {
                    Ok(p @ 1..=100) => Ok(FecMode::Fixed { percent: p }),
                    _ => Err(format!(
                        "`{s}` is not a forward error correction mode (expected adaptive, off, \
                         or a fixed overhead 1..=100 percent)"
                    )),
                }
            }
        }
    }
}

impl std::str::FromStr for FecMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FecMode::parse(s)
    }
}

impl serde::Serialize for FecMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for FecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FecMode::Off => f.write_str("off"),
            FecMode::Adaptive => f.write_str("adaptive"),
            FecMode::Fixed { percent } => write!(f, "{percent}%"),
        }
    }
}

/// Probability that more than `m` of `n` independent datagrams are lost at loss rate `p`.
fn tail_above(n: u32, m: u32, p: f64) -> f64 {
    if m >= n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // P(X <= m), the terms computed in log space (n can be in the thousands for an IDR).
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_term = f64::from(n) * lq; // i = 0
    let mut at_most = log_term.exp();
    for i in 0..m {
        log_term += (f64::from(n - i) / f64::from(i + 1)).ln() + lp - lq;
        at_most += log_term.exp();
    }
    (1.0 - at_most).max(0.0)
}

/// The sender's forward error correction rule for one eye of one receiver.
#[derive(Debug, Clone)]
pub struct FecPolicy {
    mode: FecMode,
    /// Estimated datagram loss (0..1); [`INITIAL_LOSS`] until the first measured window.
    loss: f64,
    measured: bool,
    /// Multiplier on the estimate (≥ 1.5), raised while repaired frames still die.
    margin: f64,
    /// The receiver's last cumulative counts, and what has accumulated since the last window.
    last: Option<ClientStats>,
    window_expected: u64,
    window_received: u64,
    window_frames: u64,
    window_lost: u64,
}

impl Default for FecPolicy {
    fn default() -> Self {
        FecPolicy::new(FecMode::default())
    }
}

impl FecPolicy {
    pub fn new(mode: FecMode) -> Self {
        FecPolicy {
            mode,
            loss: INITIAL_LOSS,
            measured: false,
            margin: 1.5,
            last: None,
            window_expected: 0,
            window_received: 0,
            window_frames: 0,
            window_lost: 0,
        }
    }

    pub fn mode(&self) -> FecMode {
        self.mode
    }

    /// The estimated datagram loss rate (0..1).
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// The receiver's cumulative counts for this eye (sent every half second). Counts that go
    /// backwards (a restarted or lying receiver) start a new baseline and change nothing.
    /// `congested`: the link estimate says a queue is the cause of any loss now
    /// ([`crate::rules::rate::LinkEstimator::congested`]); such a window does not move the
    /// estimate.
    pub fn on_receiver_stats(&mut self, s: &ClientStats, congested: bool) {
        let Some(last) = self.last.replace(*s) else {
            return;
        };
        let (Some(expected), Some(received), Some(frames), Some(lost)) = (
            s.datagrams_expected.checked_sub(last.datagrams_expected),
            s.datagrams_received.checked_sub(last.datagrams_received),
            s.received.checked_sub(last.received),
            s.lost.checked_sub(last.lost),
        ) else {
            return;
        };
        if received > expected {
            return; // not a count a real receiver sends
        }
        self.window_expected = self.window_expected.saturating_add(expected);
        self.window_received = self.window_received.saturating_add(received);
        self.window_frames = self
            .window_frames
            .saturating_add(frames.saturating_add(lost));
        self.window_lost = self.window_lost.saturating_add(lost);
        if self.window_expected < MIN_WINDOW {
            return;
        }
        let sample = 1.0 - self.window_received as f64 / self.window_expected as f64;
        if congested || sample > crate::rules::rate::CONGESTION_LOSS {
            // A queue overflowing, not Wi-Fi: the link estimate lowers the rate
            // (`rules::rate`); parity would only add to the queue.
            self.clear_window();
            return;
        }
        // The first measurement replaces the assumption; then quick to rise (the next frames
        // need the parity now), slow to fall (Wi-Fi loss comes and goes; ~15 s from 2 % to off
        // once the link is clean).
        let weight = if !self.measured {
            1.0
        } else if sample > self.loss {
            0.5
        } else {
            0.1
        };
        self.measured = true;
        self.loss += weight * (sample - self.loss);
        if self.loss < MIN_LOSS / 10.0 {
            self.loss = 0.0;
        }
        // Frames lost although parity was sent: the model under-counts this link's loss.
        let residual = if self.window_frames > 0 {
            self.window_lost as f64 / self.window_frames as f64
        } else {
            0.0
        };
        if residual > 2.0 * TARGET_FRAME_LOSS && self.loss >= MIN_LOSS {
            self.margin = (self.margin * 1.25).min(4.0);
        } else {
            self.margin = (self.margin * 0.97).max(1.5);
        }
        self.clear_window();
    }

    fn clear_window(&mut self) {
        self.window_expected = 0;
        self.window_received = 0;
        self.window_frames = 0;
        self.window_lost = 0;
    }

    /// Parity fragments for a frame of `data` data fragments.
    pub fn parity_for(&self, data: u16) -> u16 {
        let k = u32::from(data.max(1));
        let m = match self.mode {
            FecMode::Off => 0,
            FecMode::Fixed { percent } => (k * u32::from(percent)).div_ceil(100),
            FecMode::Adaptive => {
                if self.loss < MIN_LOSS {
                    0
                } else {
                    let cap = (k * MAX_ADAPTIVE_OVERHEAD_PERCENT).div_ceil(100).max(1);
                    let p = (self.loss * self.margin).min(0.45);
                    (1..=cap)
                        .find(|&m| tail_above(k + m, m, p) <= TARGET_FRAME_LOSS)
                        .unwrap_or(cap)
                }
            }
        };
        // The wire's bound: never more parity than max(data, 4).
        m.min(k.max(4)).min(u32::from(crate::wire::MAX_PARITY)) as u16
    }
}

/// Frames a [`LossMeter`] keeps open per eye before counting them.
const METER_WINDOW: usize = 8;

struct Open {
    seq: u32,
    total: u16,
    seen: Vec<u64>,
    received: u16,
}

/// The receiver's datagram loss count for one eye (see the module doc).
#[derive(Default)]
pub struct LossMeter {
    open: VecDeque<Open>,
    /// The newest frame counted already: fragments of it or older change nothing.
    closed: Option<u32>,
    expected: u64,
    received: u64,
}

impl LossMeter {
    /// One fragment datagram: of frame `seq`, `total` = data + parity fragments, `slot` its
    /// place among them (data index, or `count + parity index`). Duplicates count once.
    pub fn on_datagram(&mut self, seq: u32, total: u16, slot: u16) {
        if slot >= total {
            return;
        }
        let pos = match self.open.iter().position(|o| o.seq == seq) {
            Some(i) => i,
            None => {
                // A fragment of a frame already counted (more than the window late) changes
                // nothing.
                if self
                    .closed
                    .is_some_and(|c| !crate::fragment::seq_newer(seq, c))
                {
                    return;
                }
                if self.open.len() >= METER_WINDOW {
                    self.close_oldest();
                }
                self.open.push_back(Open {
                    seq,
                    total,
                    seen: vec![0; usize::from(total).div_ceil(64)],
                    received: 0,
                });
                self.open.len() - 1
            }
        };
        let o = &mut self.open[pos];
        if o.total != total {
            return; // inconsistent headers: the reassembler counts those
        }
        let (w, b) = (usize::from(slot) / 64, slot % 64);
        if o.seen[w] >> b & 1 == 0 {
            o.seen[w] |= 1 << b;
            o.received += 1;
        }
    }

    fn close_oldest(&mut self) {
        let oldest = (0..self.open.len()).min_by(|&a, &b| {
            if crate::fragment::seq_newer(self.open[a].seq, self.open[b].seq) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        });
        if let Some(o) = oldest.and_then(|i| self.open.remove(i)) {
            if self
                .closed
                .is_none_or(|c| crate::fragment::seq_newer(o.seq, c))
            {
                self.closed = Some(o.seq);
            }
            self.expected += u64::from(o.total);
            self.received += u64::from(o.received);
        }
    }

    /// Fragments announced and received, over the frames counted so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.expected, self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(expected: u64, received: u64, frames: u64, lost: u64) -> ClientStats {
        ClientStats {
            received: frames,
            lost,
            datagrams_expected: expected,
            datagrams_received: received,
            ..Default::default()
        }
    }

    /// Feeds windows of `n` datagrams at loss `p` (and frame loss `frame_loss`).
    fn feed(policy: &mut FecPolicy, windows: u64, p: f64, frame_loss: f64) {
        let mut s = policy.last.unwrap_or_default();
        if policy.last.is_none() {
            policy.on_receiver_stats(&s, false);
        }
        for _ in 0..windows {
            s.datagrams_expected += 1000;
            s.datagrams_received += (1000.0 * (1.0 - p)) as u64;
            s.received += 60;
            s.lost += (60.0 * frame_loss) as u64;
            policy.on_receiver_stats(&s, false);
        }
    }

    #[test]
    fn binomial_tail() {
        assert_eq!(tail_above(10, 10, 0.5), 0.0);
        assert!((tail_above(1, 0, 0.02) - 0.02).abs() < 1e-12);
        // P(more than 1 of 2 lost) = p².
        assert!((tail_above(2, 1, 0.1) - 0.01).abs() < 1e-12);
        // Thousands of datagrams do not underflow.
        let t = tail_above(3000, 120, 0.03);
        assert!(t > 0.0 && t < 0.01, "{t}");
    }

    #[test]
    fn a_clean_link_pays_nothing() {
        let mut p = FecPolicy::new(FecMode::default());
        assert_eq!(p.parity_for(14), 0, "nothing before the first report");
        feed(&mut p, 1, 0.0, 0.0);
        assert_eq!(p.parity_for(14), 0);
        feed(&mut p, 10, 0.0, 0.0);
        assert_eq!(p.parity_for(14), 0);
        assert_eq!(p.parity_for(400), 0);
    }

    #[test]
    fn parity_follows_the_measured_loss() {
        let mut p = FecPolicy::new(FecMode::default());
        feed(&mut p, 4, 0.02, 0.0);
        assert!((p.loss() - 0.02).abs() < 0.003, "{}", p.loss());
        // 14 fragments at 2 % (×1.5 margin): 3 parity keep frame loss under 0.2 %.
        let m = p.parity_for(14);
        assert_eq!(m, 3);
        assert!(tail_above(14 + 3, 3, 0.03) <= TARGET_FRAME_LOSS);
        assert!(tail_above(14 + 2, 2, 0.03) > TARGET_FRAME_LOSS);
        // More loss, more parity; a one-fragment frame gets one.
        let low = p.parity_for(100);
        feed(&mut p, 4, 0.10, 0.0);
        assert!(p.parity_for(100) > low);
        assert_eq!(p.parity_for(1), 1);
        // Capped at half the data fragments.
        let mut fixed_high = FecPolicy::new(FecMode::Adaptive);
        fixed_high.loss = 0.3;
        assert_eq!(fixed_high.parity_for(100), 50);
    }

    #[test]
    fn the_estimate_falls_slowly_and_turns_off() {
        let mut p = FecPolicy::new(FecMode::default());
        feed(&mut p, 4, 0.05, 0.0);
        feed(&mut p, 3, 0.0, 0.0);
        assert!(p.parity_for(14) > 0, "a few clean windows keep some parity");
        feed(&mut p, 60, 0.0, 0.0);
        assert_eq!(p.parity_for(14), 0);
    }

    #[test]
    fn frames_that_still_die_raise_the_margin() {
        let mut calm = FecPolicy::new(FecMode::default());
        feed(&mut calm, 6, 0.02, 0.0);
        let mut bursty = FecPolicy::new(FecMode::default());
        feed(&mut bursty, 6, 0.02, 0.05);
        assert!(bursty.parity_for(14) > calm.parity_for(14));
    }

    #[test]
    fn congestion_loss_is_left_to_the_link_estimate() {
        let mut p = FecPolicy::new(FecMode::Adaptive);
        feed(&mut p, 1, 0.0, 0.0);
        feed(&mut p, 10, 0.4, 0.5);
        assert_eq!(p.parity_for(14), 0, "a queue overflowing gets no parity");
        feed(&mut p, 4, 0.02, 0.0);
        assert!(p.parity_for(14) > 0, "Wi-Fi loss after it still does");
    }

    #[test]
    fn loss_on_a_congested_link_is_not_parity_s_to_answer() {
        let mut p = FecPolicy::new(FecMode::Adaptive);
        let mut s = ClientStats::default();
        p.on_receiver_stats(&s, false);
        s.datagrams_expected += 1000;
        s.datagrams_received += 1000;
        p.on_receiver_stats(&s, false);
        for _ in 0..6 {
            s.datagrams_expected += 1000;
            s.datagrams_received += 970;
            p.on_receiver_stats(&s, true);
        }
        assert_eq!(p.parity_for(14), 0);
    }

    #[test]
    fn fixed_and_off() {
        let fixed = FecPolicy::new(FecMode::Fixed { percent: 25 });
        assert_eq!(fixed.parity_for(14), 4);
        assert_eq!(fixed.parity_for(1), 1);
        let mut off = FecPolicy::new(FecMode::Off);
        feed(&mut off, 4, 0.3, 0.5);
        assert_eq!(off.parity_for(14), 0);
    }

    #[test]
    fn lying_counts_change_nothing() {
        let mut p = FecPolicy::new(FecMode::default());
        p.on_receiver_stats(&stats(1000, 1000, 60, 0), false);
        p.on_receiver_stats(&stats(500, 400, 30, 0), false); // backwards: a new baseline
        p.on_receiver_stats(&stats(600, 900, 40, 0), false); // more received than expected
        p.on_receiver_stats(&stats(u64::MAX, 0, u64::MAX, u64::MAX), false);
        assert_eq!(p.loss(), INITIAL_LOSS, "nothing measured");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(FecMode::parse("adaptive"), Ok(FecMode::Adaptive));
        assert_eq!(FecMode::parse("off"), Ok(FecMode::Off));
        assert_eq!(FecMode::parse("25%"), Ok(FecMode::Fixed { percent: 25 }));
        assert_eq!(FecMode::parse("10"), Ok(FecMode::Fixed { percent: 10 }));
        for bad in ["0", "101", "lots", "-5", ""] {
            assert!(FecMode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FecMode::Fixed { percent: 25 }.to_string(), "25%");
    }

    #[test]
    fn meter_counts_distinct_fragments_of_frames_that_left_the_window() {
        let mut m = LossMeter::default();
        for seq in 0..20u32 {
            for slot in 0..10u16 {
                if (seq + u32::from(slot)) % 5 != 0 {
                    m.on_datagram(seq, 10, slot);
                    m.on_datagram(seq, 10, slot); // duplicated: counts once
                }
            }
        }
        let (expected, received) = m.totals();
        assert_eq!(expected, 10 * (20 - METER_WINDOW as u64));
        assert_eq!(received, expected * 8 / 10);
        // A late fragment of a counted frame changes nothing; an out-of-range slot neither.
        m.on_datagram(0, 10, 0);
        m.on_datagram(19, 10, 10);
        assert_eq!(m.totals(), (expected, received));
    }
}
