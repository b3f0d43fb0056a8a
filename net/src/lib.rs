//! # binoc-net
//!
//! The network plumbing both ends share, and nothing of either end: QUIC endpoints tuned for
//! video datagrams ([`endpoint`]), TLS identities, certificate pinning and pairing ([`identity`],
//! [`pinning`], [`trust`], [`pairing`]), the framed control stream ([`control`]), the one place
//! binoc reads the OS clocks ([`os_clock`]), and the network runtime with the scheduling hint of
//! its latency-critical threads ([`sched`]). The streamer (`pi-streamer`) and the headset's
//! receive core (`headset-core`) depend on it; it depends on neither (ALVR's `sockets` split).

pub mod congestion;
pub mod control;
pub mod endpoint;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod os_clock;
pub mod pairing;
pub mod pinning;
pub mod sched;
pub mod trust;

pub use control::{ControlReader, ControlWriter};
pub use endpoint::{
    alpn, client_endpoint, closed_by_peer, peer_fingerprint, server_endpoint, ALPN, PAIR_ALPN,
    SERVER_NAME,
};
pub use identity::{fingerprint, Identity};
pub use pinning::pinned_tls_client;
pub use trust::{HeadsetTrust, PairedPeers, StreamerAccess};
