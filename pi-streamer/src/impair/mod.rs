//! `pi-streamer impair`: a bad network on a desk. The kernel here has no netem qdisc, so the
//! impairment is done in user space: a UDP relay between streamer and headset ([`relay`])
//! applying a deterministic, seeded model of the link ([`model`]: random and bursty loss,
//! delay, jitter with or without reordering, duplication, a blackout, a bandwidth cap with a
//! bounded queue). Tests and users reproducing a bad link use the same code.

pub mod model;
pub mod relay;

pub use model::{Impairment, Link, LinkCounters};
pub use relay::Relay;
