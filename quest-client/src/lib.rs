//! # quest-client
//!
//! The headset app: the Bevy/OpenXR shell ([`app`], cargo feature `app`) on top of the receive
//! core in the `headset-core` crate, which presents decoded pictures through
//! `headset_core::PictureSink`. Without the `app` feature this library is empty and the
//! binary is the headless client (`--headless`).

#[cfg(feature = "app")]
pub mod app;
