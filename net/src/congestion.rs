//! How much QUIC lets the streamer have in flight. quinn's controllers (Cubic, NewReno, BBR)
//! are made for bulk transfer: they treat loss, and the loss a reordering link makes them see,
//! as congestion and shrink the window, and the video datagrams then wait behind it until their
//! frames die at the deadline. [`MediaWindow`] keeps a fixed window instead: the send rate is
//! binoc's to set (the pacer, and the encoders' bitrate), not QUIC's.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use quinn::congestion::{Controller, ControllerFactory};

/// Which controller limits what QUIC has in flight (`transport.congestion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// [`MediaWindow`]: loss and reordering do not shrink the window (the default).
    #[default]
    Media,
    /// quinn's Cubic (1 MiB initial window): backs off on loss, as bulk transfer wants.
    Cubic,
    /// quinn's BBR (1 MiB initial window).
    Bbr,
}

impl Congestion {
    pub const ALL: [(&'static str, Congestion); 3] = [
        ("media", Congestion::Media),
        ("cubic", Congestion::Cubic),
        ("bbr", Congestion::Bbr),
    ];

    /// The controller factory for a transport config.
    pub fn factory(self) -> Arc<dyn ControllerFactory + Send + Sync> {
        match self {
            Congestion::Media => Arc::new(MediaWindowConfig::default()),
            Congestion::Cubic => {
                let mut cc = quinn::congestion::CubicConfig::default();
                cc.initial_window(1024 * 1024);
                Arc::new(cc)
            }
            Congestion::Bbr => {
                let mut cc = quinn::congestion::BbrConfig::default();
                cc.initial_window(1024 * 1024);
                Arc::new(cc)
            }
        }
    }
}

/// Bytes in flight QUIC allows with [`MediaWindow`]: ~0.3 s of 2 × 50 Mbit/s.
pub const MEDIA_WINDOW: u64 = 4 * 1024 * 1024;

/// A window that loss does not shrink.
#[derive(Debug, Clone)]
pub struct MediaWindow {
    window: u64,
}

impl Controller for MediaWindow {
    fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool, _: u64) {}

    fn on_mtu_update(&mut self, _: u16) {}

    fn window(&self) -> u64 {
        self.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        self.window
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Makes [`MediaWindow`]s for a transport config.
#[derive(Debug, Clone)]
pub struct MediaWindowConfig {
    pub window: u64,
}

impl Default for MediaWindowConfig {
    fn default() -> Self {
        MediaWindowConfig {
            window: MEDIA_WINDOW,
        }
    }
}

impl ControllerFactory for MediaWindowConfig {
    fn build(self: Arc<Self>, _: Instant, _: u16) -> Box<dyn Controller> {
        Box::new(MediaWindow {
            window: self.window,
        })
    }
}
