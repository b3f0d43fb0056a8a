//! Recovery by intra refresh, as a receiver sees it: after a loss, keep decoding (the decoder
//! conceals what it lacks: those pictures are damaged references, not pictures to show) and
//! show nothing until an intra-refresh sweep that started after the loss has reached its
//! recovery point; only if no sweep comes in time, ask for a keyframe. Pictures are counted as
//! they are decoded, so the rule needs no clock but for its patience.
//!
//! States: `Clean` (shown), `Dirty` (a loss; waiting for a sweep to start), `Recovering`
//! (a sweep started after the loss: `left` more pictures to its recovery point). An IDR is
//! clean at once; a loss in `Recovering` is `Dirty` again.

use crate::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Clean,
    Dirty { since: Nanos },
    Recovering { left: u16, since: Nanos },
}

#[derive(Debug, Clone)]
pub struct RefreshGate {
    state: RefreshState,
    /// Pictures begun, and the one the last sweep started at.
    pictures: u64,
    last_sweep: Option<u64>,
    /// Pictures between the last two sweep starts (the stream's refresh period).
    period: Option<u64>,
    frame_ns: Nanos,
}

impl RefreshGate {
    /// A gate for a stream of one picture every `frame_ns`.
    pub fn new(frame_ns: Nanos) -> Self {
        RefreshGate {
            state: RefreshState::Clean,
            pictures: 0,
            last_sweep: None,
            period: None,
            frame_ns: frame_ns.max(1),
        }
    }

    pub fn state(&self) -> RefreshState {
        self.state
    }

    /// The stream refreshes by periodic sweeps (two seen): a loss can wait for the next.
    pub fn periodic(&self) -> bool {
        self.period.is_some()
    }

    /// How long a loss may wait for a sweep before a keyframe is asked for: two periods (the
    /// sweep under way may have started before the loss) and the recovery, plus slack.
    pub fn patience_ns(&self) -> Option<Nanos> {
        self.period
            .map(|p| (3 * p + 6).saturating_mul(self.frame_ns))
    }

    /// A picture begins (its first slice is decoded): `keyframe` for an IDR, `recovery` > 0
    /// when it starts a sweep (its recovery point that many pictures on).
    pub fn on_picture(&mut self, keyframe: bool, recovery: u16) {
        self.pictures += 1;
        if recovery > 0 {
            if let Some(last) = self.last_sweep {
                self.period = Some(self.pictures - last);
            }
            self.last_sweep = Some(self.pictures);
        }
        if keyframe {
            self.state = RefreshState::Clean;
        } else if let (RefreshState::Dirty { since }, true) = (self.state, recovery > 0) {
            self.state = RefreshState::Recovering {
                left: recovery,
                since,
            };
        }
    }

    /// A picture came out of the decoder: whether it may be shown.
    pub fn on_decoded(&mut self) -> bool {
        match self.state {
            RefreshState::Clean => true,
            RefreshState::Dirty { .. } => false,
            RefreshState::Recovering { left: 0, .. } => {
                self.state = RefreshState::Clean;
                true
            }
            RefreshState::Recovering { left, since } => {
                self.state = RefreshState::Recovering {
                    left: left - 1,
                    since,
                };
                false
            }
        }
    }

    /// Something was lost (a gap, a picture that did not decode, a concealed picture): the
    /// pictures are damaged until a sweep that starts from now on completes.
    pub fn on_loss(&mut self, now: Nanos) {
        self.state = match self.state {
            RefreshState::Clean => RefreshState::Dirty { since: now },
            RefreshState::Dirty { since } | RefreshState::Recovering { since, .. } => {
                RefreshState::Dirty { since }
            }
        };
    }

    /// Whether the loss can still wait for a sweep at `now`; false means ask for a keyframe
    /// (the stream has no periodic sweeps, or none repaired the picture in time).
    pub fn can_wait(&self, now: Nanos) -> bool {
        let Some(patience) = self.patience_ns() else {
            return false;
        };
        match self.state {
            RefreshState::Clean => true,
            RefreshState::Dirty { since } | RefreshState::Recovering { since, .. } => {
                now.saturating_sub(since) <= patience
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    /// Pictures 1..=n with a sweep (recovery `r`) every `period` from picture `first`.
    fn feed(
        g: &mut RefreshGate,
        pictures: std::ops::Range<u64>,
        first: u64,
        period: u64,
        r: u16,
    ) -> Vec<bool> {
        pictures
            .map(|p| {
                let sweep = p >= first && (p - first) % period == 0;
                g.on_picture(false, if sweep { r } else { 0 });
                g.on_decoded()
            })
            .collect()
    }

    #[test]
    fn a_loss_hides_pictures_until_the_next_sweeps_recovery_point() {
        let mut g = RefreshGate::new(16 * MS);
        assert!(!g.periodic());
        g.on_picture(true, 0);
        assert!(g.on_decoded(), "the IDR is shown");
        // Sweeps at pictures 2, 12, 22, ... each exact 4 pictures later.
        assert!(feed(&mut g, 2..14, 2, 10, 4).iter().all(|&s| s));
        assert!(g.periodic());
        assert_eq!(g.patience_ns(), Some(36 * 16 * MS));
        // A loss at picture 14: nothing is shown until the sweep of 22 reaches 26.
        g.on_loss(1000 * MS);
        assert!(g.can_wait(1000 * MS));
        let shown = feed(&mut g, 14..30, 2, 10, 4);
        let first_shown = 14 + shown.iter().position(|&s| s).unwrap() as u64;
        assert_eq!(first_shown, 26);
        assert!(shown[(26 - 14) as usize..].iter().all(|&s| s));
        assert_eq!(g.state(), RefreshState::Clean);
    }

    #[test]
    fn a_loss_during_recovery_waits_for_the_following_sweep_and_an_idr_cleans_at_once() {
        let mut g = RefreshGate::new(16 * MS);
        g.on_picture(true, 0);
        g.on_decoded();
        feed(&mut g, 2..12, 2, 5, 3);
        g.on_loss(0);
        g.on_picture(false, 3); // picture 12: a sweep
        assert!(!g.on_decoded());
        g.on_loss(10 * MS); // lost during it
        assert!(
            matches!(g.state(), RefreshState::Dirty { since: 0 }),
            "keeps the first loss's time"
        );
        for _ in 0..4 {
            g.on_picture(false, 0);
            assert!(!g.on_decoded());
        }
        g.on_picture(true, 0);
        assert!(g.on_decoded(), "an IDR is clean at once");
    }

    #[test]
    fn without_periodic_sweeps_a_loss_asks_for_a_keyframe_and_patience_runs_out() {
        let mut g = RefreshGate::new(10 * MS);
        g.on_picture(true, 0);
        g.on_decoded();
        g.on_loss(0);
        assert!(!g.can_wait(0), "no sweeps seen: ask at once");
        let mut g = RefreshGate::new(10 * MS);
        feed(&mut g, 1..20, 1, 8, 7);
        g.on_loss(0);
        let patience = g.patience_ns().unwrap();
        assert!(g.can_wait(patience));
        assert!(!g.can_wait(patience + 1), "then a keyframe");
    }
}
