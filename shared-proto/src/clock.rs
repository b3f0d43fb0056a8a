//! NTP-style clock-offset estimation between the streamer's clock and the client's.
//!
//! The streamer sends `Ping{t0}`; the client stamps arrival `t1` and departure `t2` on its own
//! clock; the streamer stamps the pong's arrival `t3`. For each exchange
//!
//! ```text
//! rtt    = (t3 - t0) - (t2 - t1)
//! offset = ((t1 - t0) + (t2 - t3)) / 2        (client clock - streamer clock)
//! ```
//!
//! and the true offset lies within `offset ± rtt/2`. Queueing only ever adds delay, so the
//! samples with the lowest RTT are the most trustworthy. The estimator keeps a window of recent
//! samples, keeps those whose RTT is close to the window's minimum, rejects residual outliers,
//! and fits `offset(t) = a + b·t` by least squares so that drift between the two crystals (tens
//! of ppm is typical) is tracked rather than smeared into the offset.

use crate::Nanos;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSample {
    pub t0: Nanos,
    pub t1: Nanos,
    pub t2: Nanos,
    pub t3: Nanos,
}

impl ClockSample {
    /// Round-trip time minus the client's turnaround; `None` if the stamps are inconsistent.
    pub fn rtt(&self) -> Option<i64> {
        let out = self.t3.checked_sub(self.t0)? as i128;
        let turn = self.t2.checked_sub(self.t1)? as i128;
        let rtt = out - turn;
        (0..=i64::MAX as i128).contains(&rtt).then_some(rtt as i64)
    }

    pub fn offset(&self) -> i64 {
        let a = self.t1 as i128 - self.t0 as i128;
        let b = self.t2 as i128 - self.t3 as i128;
        ((a + b) / 2) as i64
    }
}

/// The estimator's tuning.
#[derive(Debug, Clone, Copy)]
pub struct ClockSyncConfig {
    /// Samples kept.
    pub window: usize,
    /// Samples older than this (streamer clock) are forgotten.
    pub max_age_ns: u64,
    /// A sample is "good" if its RTT is within `min_rtt * rtt_factor + rtt_slack_ns`.
    pub rtt_factor: f64,
    pub rtt_slack_ns: f64,
    /// Drift is fitted only over at least this span of good samples.
    pub min_drift_span_ns: u64,
    /// Fitted drift is clamped to ± this (parts per million); crystals are within ±100 ppm.
    pub max_skew_ppm: f64,
}

impl Default for ClockSyncConfig {
    fn default() -> Self {
        ClockSyncConfig {
            window: 256,
            max_age_ns: 120_000_000_000,
            rtt_factor: 1.5,
            rtt_slack_ns: 100_000.0,
            min_drift_span_ns: 5_000_000_000,
            max_skew_ppm: 500.0,
        }
    }
}

/// A [`ClockEstimate`] as it travels to the headset (`ToHeadset::ClockEstimate`).
/// `offset_ns` = client clock − streamer clock at `at_streamer_ns`; `skew_ppb` its drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnouncedClock {
    pub offset_ns: i64,
    pub skew_ppb: i64,
    pub at_streamer_ns: Nanos,
    pub rtt_ns: u64,
}

/// A fitted mapping between the clocks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockEstimate {
    /// Offset (client − streamer) at `reference_ns` on the streamer clock.
    pub offset_ns: f64,
    /// Drift of the offset, nanoseconds per nanosecond (1e-6 = 1 ppm).
    pub skew: f64,
    pub reference_ns: Nanos,
    /// Lowest RTT in the window: the offset is known within ± half of it.
    pub min_rtt_ns: u64,
    /// Samples the fit used.
    pub samples_used: usize,
    /// Samples in the window (used or filtered out).
    pub samples_seen: usize,
}

impl ClockEstimate {
    /// Offset (client − streamer) at streamer time `t`.
    pub fn offset_at(&self, streamer_ns: Nanos) -> f64 {
        self.offset_ns + self.skew * (streamer_ns as f64 - self.reference_ns as f64)
    }

    /// Maps a client timestamp onto the streamer's clock.
    pub fn client_to_streamer(&self, client_ns: Nanos) -> Nanos {
        // Solve s + offset(s) = c; one fixed-point step is exact to well below 1 ns for any
        // realistic skew.
        let c = client_ns as f64;
        let s0 = c - self.offset_at(client_ns);
        let s = c - self.offset_at(s0.max(0.0) as Nanos);
        s.max(0.0).round() as Nanos
    }

    /// Maps a streamer timestamp onto the client's clock.
    pub fn streamer_to_client(&self, streamer_ns: Nanos) -> Nanos {
        (streamer_ns as f64 + self.offset_at(streamer_ns))
            .max(0.0)
            .round() as Nanos
    }

    /// Half the lowest RTT: the bound on the offset's error from path asymmetry.
    pub fn uncertainty_ns(&self) -> u64 {
        self.min_rtt_ns / 2
    }

    /// An estimate from an announced offset/skew (what the client receives in
    /// `ToHeadset::ClockEstimate`).
    /// The estimate as the streamer announces it to the headset (integers on the wire).
    pub fn announce(&self) -> AnnouncedClock {
        AnnouncedClock {
            offset_ns: self.offset_ns.round() as i64,
            skew_ppb: (self.skew * 1e9).round() as i64,
            at_streamer_ns: self.reference_ns,
            rtt_ns: self.min_rtt_ns,
        }
    }

    /// An estimate the streamer announced (the headset computes latency on its own with it).
    pub fn from_announced(a: AnnouncedClock) -> Self {
        ClockEstimate {
            offset_ns: a.offset_ns as f64,
            skew: a.skew_ppb as f64 * 1e-9,
            reference_ns: a.at_streamer_ns,
            min_rtt_ns: a.rtt_ns,
            samples_used: 0,
            samples_seen: 0,
        }
    }

    /// Identity mapping (for peers known to share one clock, and for tests).
    pub fn identity() -> Self {
        ClockEstimate {
            offset_ns: 0.0,
            skew: 0.0,
            reference_ns: 0,
            min_rtt_ns: 0,
            samples_used: 0,
            samples_seen: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockSyncStats {
    pub accepted: u64,
    pub rejected_inconsistent: u64,
}

/// Collects ping/pong samples and produces [`ClockEstimate`]s.
#[derive(Debug, Clone)]
pub struct ClockSync {
    config: ClockSyncConfig,
    samples: std::collections::VecDeque<(ClockSample, i64)>,
    estimate: Option<ClockEstimate>,
    stats: ClockSyncStats,
}

impl ClockSync {
    pub fn new(config: ClockSyncConfig) -> Self {
        ClockSync {
            config,
            samples: Default::default(),
            estimate: None,
            stats: Default::default(),
        }
    }

    pub fn stats(&self) -> ClockSyncStats {
        self.stats
    }

    /// The current estimate, once at least one good sample arrived.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.estimate
    }

    /// Adds one completed exchange and refits. Returns false (and keeps nothing) if the stamps
    /// are inconsistent (negative RTT, time going backwards).
    pub fn add(&mut self, s: ClockSample) -> bool {
        let Some(rtt) = s.rtt() else {
            self.stats.rejected_inconsistent += 1;
            return false;
        };
        self.stats.accepted += 1;
        self.samples.push_back((s, rtt));
        while self.samples.len() > self.config.window {
            self.samples.pop_front();
        }
        let newest = s.t3;
        while self
            .samples
            .front()
            .is_some_and(|(x, _)| newest.saturating_sub(x.t3) > self.config.max_age_ns)
        {
            self.samples.pop_front();
        }
        self.refit();
        true
    }

    fn refit(&mut self) {
        let Some(min_rtt) = self.samples.iter().map(|&(_, r)| r).min() else {
            return;
        };
        let limit = min_rtt as f64 * self.config.rtt_factor + self.config.rtt_slack_ns;
        // (time on streamer clock at the sample's midpoint, offset, weight)
        let mut good: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|&&(_, r)| (r as f64) <= limit)
            .map(|(s, _)| (s.t0 as f64 + (s.t3 - s.t0) as f64 / 2.0, s.offset() as f64))
            .collect();
        let reference = self.samples.back().map(|(s, _)| s.t3).unwrap_or(0);
        let fit = |pts: &[(f64, f64)], cfg: &ClockSyncConfig| -> (f64, f64) {
            let n = pts.len() as f64;
            let t_min = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let t_max = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            let mean_t = pts.iter().map(|p| p.0).sum::<f64>() / n;
            let mean_o = pts.iter().map(|p| p.1).sum::<f64>() / n;
            if pts.len() < 4 || t_max - t_min < cfg.min_drift_span_ns as f64 {
                // Too short a span to see drift: the median offset of the good samples.
                let mut o: Vec<f64> = pts.iter().map(|p| p.1).collect();
                o.sort_by(f64::total_cmp);
                return (o[o.len() / 2], 0.0);
            }
            let sxx: f64 = pts.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
            let sxy: f64 = pts.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_o)).sum();
            let max = cfg.max_skew_ppm * 1e-6;
            let skew = (sxy / sxx).clamp(-max, max);
            (mean_o + skew * (reference as f64 - mean_t), skew)
        };
        let (mut offset, mut skew) = fit(&good, &self.config);
        // Reject residual outliers (beyond 3 median absolute deviations, and beyond half the
        // minimum RTT, the physical bound), then refit once.
        if good.len() >= 4 {
            let resid = |p: &(f64, f64)| (p.1 - (offset + skew * (p.0 - reference as f64))).abs();
            let mut r: Vec<f64> = good.iter().map(resid).collect();
            r.sort_by(f64::total_cmp);
            let mad = r[r.len() / 2];
            let cut = (3.0 * mad).max(min_rtt as f64 / 2.0).max(1.0);
            let before = good.len();
            good.retain(|p| resid(p) <= cut);
            if good.len() < before && !good.is_empty() {
                (offset, skew) = fit(&good, &self.config);
            }
        }
        self.estimate = Some(ClockEstimate {
            offset_ns: offset,
            skew,
            reference_ns: reference,
            min_rtt_ns: min_rtt as u64,
            samples_used: good.len(),
            samples_seen: self.samples.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator so the tests need no dependency and no seed file.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Simulates exchanges between a streamer clock and a client clock running at
    /// `client = offset + (1 + skew) * streamer`, with one-way delays of `base` plus random
    /// queueing (sometimes huge), asymmetric on purpose.
    fn simulate(offset: f64, skew: f64, n: usize, seed: u64) -> (ClockSync, impl Fn(f64) -> f64) {
        let mut rng = Lcg(seed);
        let mut sync = ClockSync::new(ClockSyncConfig::default());
        let client = move |s: f64| offset + (1.0 + skew) * s;
        let mut t = 1e9;
        for _ in 0..n {
            let up = 200_000.0
                + if rng.next() < 0.3 {
                    rng.next() * 20e6
                } else {
                    rng.next() * 300_000.0
                };
            let down = 200_000.0
                + if rng.next() < 0.3 {
                    rng.next() * 20e6
                } else {
                    rng.next() * 300_000.0
                };
            let turn = 50_000.0;
            let t0 = t;
            let t1 = client(t0 + up);
            let t2 = t1 + turn * (1.0 + skew);
            let t3 = t0 + up + turn + down;
            sync.add(ClockSample {
                t0: t0 as u64,
                t1: t1 as u64,
                t2: t2 as u64,
                t3: t3 as u64,
            });
            t += 100e6; // a ping every 100 ms
        }
        (sync, client)
    }

    #[test]
    fn recovers_offset_and_drift_despite_queueing_spikes() {
        for (offset, skew_ppm, seed) in [(5e9, 40.0, 1), (-3e9, -80.0, 2), (123_456.0, 0.0, 3)] {
            let (sync, client) = simulate(offset, skew_ppm * 1e-6, 300, seed);
            let est = sync.estimate().unwrap();
            // 30 s later: the mapped time must match the truth within the RTT-derived bound.
            let s = 30e9;
            let c = client(s);
            let mapped = est.client_to_streamer(c as u64) as f64;
            let err = (mapped - s).abs();
            assert!(
                err < 150_000.0,
                "offset {offset} skew {skew_ppm}ppm: error {err} ns"
            );
            assert!(
                (est.skew * 1e6 - skew_ppm).abs() < 5.0,
                "skew {} ppm vs {skew_ppm}",
                est.skew * 1e6
            );
            assert!(est.min_rtt_ns >= 400_000);
        }
    }

    #[test]
    fn single_sample_gives_midpoint_offset() {
        let mut sync = ClockSync::new(ClockSyncConfig::default());
        assert!(sync.estimate().is_none());
        // Client 1000 ns ahead, 100 ns each way, 10 ns turnaround.
        assert!(sync.add(ClockSample {
            t0: 0,
            t1: 1100,
            t2: 1110,
            t3: 210
        }));
        let e = sync.estimate().unwrap();
        assert_eq!(e.offset_ns, 1000.0);
        assert_eq!(e.min_rtt_ns, 200);
        assert_eq!(e.client_to_streamer(2000), 1000);
        assert_eq!(e.streamer_to_client(1000), 2000);
    }

    #[test]
    fn inconsistent_samples_are_rejected() {
        let mut sync = ClockSync::new(ClockSyncConfig::default());
        // Turnaround longer than the round trip.
        assert!(!sync.add(ClockSample {
            t0: 0,
            t1: 0,
            t2: 1000,
            t3: 10
        }));
        // t3 before t0.
        assert!(!sync.add(ClockSample {
            t0: 10,
            t1: 0,
            t2: 0,
            t3: 5
        }));
        assert_eq!(sync.stats().rejected_inconsistent, 2);
        assert!(sync.estimate().is_none());
    }

    #[test]
    fn window_is_bounded() {
        let (sync, _) = simulate(0.0, 0.0, 5000, 9);
        assert!(sync.samples.len() <= ClockSyncConfig::default().window);
    }

    #[test]
    fn announced_estimate_roundtrips() {
        let e = ClockEstimate::from_announced(AnnouncedClock {
            offset_ns: -2_000,
            skew_ppb: 1_000,
            at_streamer_ns: 10_000,
            rtt_ns: 50,
        });
        assert_eq!(
            e.announce(),
            AnnouncedClock {
                offset_ns: -2_000,
                skew_ppb: 1_000,
                at_streamer_ns: 10_000,
                rtt_ns: 50
            }
        );
        let s = 1_000_000_000u64;
        let c = e.streamer_to_client(s);
        assert_eq!(e.client_to_streamer(c), s);
        assert_eq!(e.uncertainty_ns(), 25);
    }
}
