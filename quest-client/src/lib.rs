//! # quest-client
//!
//! The headset side of binoc. This crate's library is the receive/decode core, free of Bevy so
//! it builds and tests fast: [`net`] (QUIC + TLS), [`core`] (sessions, reassembly, decoder
//! threads, markers), [`decode`] (decoders behind one trait). The headset app shells (XR,
//! desktop window) sit on top of it and present pictures through [`core::PictureSink`]; the Bevy/OpenXR shell is `app` (cargo
//! feature `app`).

#[cfg(feature = "app")]
pub mod app;
pub mod clock;
pub mod core;
pub mod decode;
pub mod net;
