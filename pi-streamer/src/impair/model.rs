//! The impairment model, sans IO: each datagram that enters at time `now` (nanoseconds) leaves
//! at zero, one or two times. Deterministic for a seed, so a test or a user can replay the same
//! bad link.
//!
//! In the order a datagram meets them: a blackout window (everything lost), random or bursty
//! loss (Gilbert–Elliott: every datagram in the bad state is lost; the two transition
//! probabilities follow from the mean loss and the mean burst length), a bandwidth cap with a
//! bounded queue (the link serialises at the rate; a datagram that would wait longer than the
//! queue holds is dropped at its tail), then delay with jitter (order-keeping, as Wi-Fi's link
//! layer delivers, unless reordering is asked for), and duplication.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a link does to datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Mean share of datagrams lost, 0..1.
    pub loss: f64,
    /// Mean length of a loss burst, in datagrams: 1 = independent losses, more = Gilbert–Elliott.
    pub burst: f64,
    /// One-way delay, nanoseconds.
    pub delay_ns: u64,
    /// Each datagram's delay varies uniformly by ± this, nanoseconds.
    pub jitter_ns: u64,
    /// Let jitter reorder datagrams (default: order kept).
    pub reorder: bool,
    /// Share of datagrams delivered twice, 0..1.
    pub duplicate: f64,
    /// Link rate, bit/s (`None`: unlimited).
    pub rate_bps: Option<f64>,
    /// The most a datagram may wait in the rate limiter's queue, nanoseconds.
    pub queue_ns: u64,
    /// When the rate cap holds, nanoseconds after the first datagram: from `.0` until `.1`
    /// (`None`: for ever). Before and after, the link is unlimited (a link that degrades, or
    /// recovers).
    pub rate_window: (u64, Option<u64>),
    /// Everything is lost from `start` for `length` nanoseconds after the first datagram.
    pub blackout: Option<(u64, u64)>,
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            burst: 1.0,
            delay_ns: 0,
            jitter_ns: 0,
            reorder: false,
            duplicate: 0.0,
            rate_bps: None,
            queue_ns: 50_000_000,
            rate_window: (0, None),
            blackout: None,
            seed: 1,
        }
    }
}

impl Impairment {
    /// Whether the settings make sense: why not, if they do not.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("loss {} must be in 0..1", self.loss));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(format!("mean burst {} must be at least 1", self.burst));
        }
        if !(0.0..1.0).contains(&self.duplicate) {
            return Err(format!("duplicate {} must be in 0..1", self.duplicate));
        }
        if self.jitter_ns > self.delay_ns {
            return Err(
                "jitter must not exceed the delay (a datagram cannot leave before it came)".into(),
            );
        }
        if self.rate_bps.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("rate must be positive".into());
        }
        if let (from, Some(until)) = self.rate_window {
            if until <= from {
                return Err("the rate cap must end after it starts".into());
            }
        }
        Ok(())
    }
}

/// What became of the datagrams so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LinkCounters {
    pub entered: u64,
    pub delivered: u64,
    pub lost_random: u64,
    pub lost_blackout: u64,
    /// Dropped at the rate limiter's full queue.
    pub lost_queue: u64,
    pub duplicated: u64,
}

/// One direction of an impaired link.
pub struct Link {
    cfg: Impairment,
    rng: ChaCha8Rng,
    bad: bool,
    /// Good → bad and bad → good transition probabilities (Gilbert–Elliott).
    to_bad: f64,
    to_good: f64,
    start: Option<u64>,
    /// When the rate limiter finishes the datagrams it holds.
    busy_until: f64,
    last_delivery: u64,
    pub counters: LinkCounters,
}

impl Link {
    pub fn new(cfg: Impairment) -> Self {
        let to_good = 1.0 / cfg.burst;
        // The stationary share of the bad state is the mean loss.
        let to_bad = cfg.loss * to_good / (1.0 - cfg.loss);
        Link {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            bad: false,
            to_bad,
            to_good,
            start: None,
            busy_until: 0.0,
            last_delivery: 0,
            counters: LinkCounters::default(),
        }
    }

    /// A datagram of `len` bytes enters at `now`: the times it leaves (none if lost).
    pub fn enter(&mut self, now: u64, len: usize) -> Vec<u64> {
        self.counters.entered += 1;
        let start = *self.start.get_or_insert(now);
        if let Some((at, length)) = self.cfg.blackout {
            let t = now.saturating_sub(start);
            if t >= at && t < at + length {
                self.counters.lost_blackout += 1;
                return Vec::new();
            }
        }
        if self.cfg.loss > 0.0 {
            let flip = self.rng.random::<f64>();
            self.bad = if self.bad {
                flip >= self.to_good
            } else {
                flip < self.to_bad
            };
            if self.bad {
                self.counters.lost_random += 1;
                return Vec::new();
            }
        }
        let mut sent = now as f64;
        let t = now.saturating_sub(start);
        let (from, until) = self.cfg.rate_window;
        let capped = t >= from && until.is_none_or(|u| t < u);
        if let Some(rate) = self.cfg.rate_bps.filter(|_| capped) {
            let begin = self.busy_until.max(now as f64);
            if begin - now as f64 > self.cfg.queue_ns as f64 {
                self.counters.lost_queue += 1;
                return Vec::new();
            }
            self.busy_until = begin + len as f64 * 8.0 / rate * 1e9;
            sent = self.busy_until;
        }
        let jitter = if self.cfg.jitter_ns > 0 {
            self.rng
                .random_range(-(self.cfg.jitter_ns as i64)..=self.cfg.jitter_ns as i64)
        } else {
            0
        };
        let mut at = (sent as i64 + self.cfg.delay_ns as i64 + jitter).max(now as i64) as u64;
        if !self.cfg.reorder {
            at = at.max(self.last_delivery);
        }
        self.last_delivery = self.last_delivery.max(at);
        let mut out = vec![at];
        if self.cfg.duplicate > 0.0 && self.rng.random::<f64>() < self.cfg.duplicate {
            self.counters.duplicated += 1;
            out.push(at);
        }
        self.counters.delivered += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn run(cfg: Impairment, n: u64, gap_ns: u64, len: usize) -> (Link, Vec<Vec<u64>>) {
        let mut l = Link::new(cfg);
        let out = (0..n).map(|i| l.enter(1_000 + i * gap_ns, len)).collect();
        (l, out)
    }

    #[test]
    fn a_clean_link_delivers_everything_at_once() {
        let (l, out) = run(Impairment::default(), 100, MS, 1200);
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, o)| o == &[1_000 + i as u64 * MS]));
        assert_eq!(l.counters.delivered, 100);
    }

    #[test]
    fn random_loss_is_near_its_mean_and_the_same_for_the_same_seed() {
        let cfg = Impairment {
            loss: 0.02,
            ..Default::default()
        };
        let (l, out) = run(cfg.clone(), 100_000, 10_000, 1200);
        let lost = l.counters.lost_random as f64 / 1e5;
        assert!((0.017..0.023).contains(&lost), "{lost}");
        let (_, again) = run(cfg, 100_000, 10_000, 1200);
        assert_eq!(out, again, "deterministic for a seed");
    }

    #[test]
    fn bursty_loss_has_its_mean_burst_length() {
        let cfg = Impairment {
            loss: 0.02,
            burst: 5.0,
            ..Default::default()
        };
        let (l, out) = run(cfg, 200_000, 10_000, 1200);
        let lost = l.counters.lost_random as f64 / 2e5;
        assert!((0.015..0.025).contains(&lost), "{lost}");
        // Runs of consecutive losses.
        let mut bursts = Vec::new();
        let mut run_len = 0;
        for o in &out {
            if o.is_empty() {
                run_len += 1;
            } else if run_len > 0 {
                bursts.push(run_len);
                run_len = 0;
            }
        }
        let mean = bursts.iter().sum::<u32>() as f64 / bursts.len() as f64;
        assert!((4.0..6.0).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn jitter_keeps_order_unless_reordering_is_asked_for() {
        let cfg = Impairment {
            delay_ns: 20 * MS,
            jitter_ns: 5 * MS,
            ..Default::default()
        };
        let (_, out) = run(cfg.clone(), 2000, 100_000, 1200);
        let times: Vec<u64> = out.iter().map(|o| o[0]).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "order kept");
        assert!(times.iter().enumerate().all(|(i, &t)| {
            let sent = 1_000 + i as u64 * 100_000;
            t >= sent + 15 * MS && t <= sent + 25 * MS + 5 * MS
        }));
        let (_, out) = run(
            Impairment {
                reorder: true,
                ..cfg
            },
            2000,
            100_000,
            1200,
        );
        let times: Vec<u64> = out.iter().map(|o| o[0]).collect();
        assert!(times.windows(2).any(|w| w[0] > w[1]), "reordered");
    }

    #[test]
    fn a_rate_cap_limits_throughput_and_its_queue_is_bounded() {
        // 10 Mbit/s offered (1250 B every ms) into a 6 Mbit/s link with a 50 ms queue.
        let cfg = Impairment {
            rate_bps: Some(6e6),
            queue_ns: 50 * MS,
            ..Default::default()
        };
        let (l, out) = run(cfg, 5000, MS, 1250);
        let delivered: Vec<u64> = out.iter().filter_map(|o| o.first().copied()).collect();
        let span = (delivered.last().unwrap() - delivered[0]) as f64 / 1e9;
        let mbps = delivered.len() as f64 * 1250.0 * 8.0 / span / 1e6;
        assert!(
            (5.8..6.2).contains(&mbps),
            "{mbps} Mbit/s through a 6 Mbit/s cap"
        );
        assert!(l.counters.lost_queue > 1500, "{:?}", l.counters);
        // Nothing waits longer than the queue (plus its own serialisation).
        for (i, o) in out.iter().enumerate() {
            if let Some(&t) = o.first() {
                assert!(t - (1_000 + i as u64 * MS) <= 52 * MS);
            }
        }
    }

    #[test]
    fn a_rate_cap_can_hold_for_a_window_only() {
        // 10 Mbit/s offered; capped at 6 Mbit/s from 1 s to 2 s after the first datagram.
        let cfg = Impairment {
            rate_bps: Some(6e6),
            rate_window: (1_000 * MS, Some(2_000 * MS)),
            ..Default::default()
        };
        let (l, out) = run(cfg, 3000, MS, 1250);
        let on_time = |range: std::ops::Range<usize>| {
            range.clone().all(|i| out[i] == [1_000 + i as u64 * MS])
        };
        assert!(on_time(0..1000), "before the window: unlimited");
        assert!(
            on_time(2100..3000),
            "after the window (once its queue drained)"
        );
        let lost = (1000..2000).filter(|&i| out[i].is_empty()).count() as u64;
        assert_eq!(lost, l.counters.lost_queue);
        assert!(
            (300..500).contains(&lost),
            "{lost} of 1000 lost in the window"
        );
        assert!(Impairment {
            rate_window: (5, Some(5)),
            ..Default::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn a_blackout_loses_exactly_its_window_and_duplicates_come_twice() {
        let cfg = Impairment {
            blackout: Some((100 * MS, 500 * MS)),
            ..Default::default()
        };
        let (l, out) = run(cfg, 1000, MS, 100);
        assert_eq!(l.counters.lost_blackout, 500);
        assert!(
            out[99].len() == 1 && out[100].is_empty() && out[599].is_empty() && out[600].len() == 1
        );
        let (l, out) = run(
            Impairment {
                duplicate: 0.1,
                ..Default::default()
            },
            10_000,
            MS,
            100,
        );
        let twice = out.iter().filter(|o| o.len() == 2).count();
        assert_eq!(twice as u64, l.counters.duplicated);
        assert!((800..1200).contains(&twice), "{twice}");
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            Impairment {
                loss: 1.0,
                ..Default::default()
            },
            Impairment {
                burst: 0.5,
                ..Default::default()
            },
            Impairment {
                jitter_ns: 5,
                delay_ns: 1,
                ..Default::default()
            },
            Impairment {
                rate_bps: Some(0.0),
                ..Default::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(Impairment::default().check().is_ok());
    }
}
