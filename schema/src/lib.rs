//! # binoc-schema
//!
//! Reading a YAML configuration the way binoc's users are told about problems: every problem
//! at once, each with its key and line, unknown keys with a did-you-mean, ranges declared once
//! and shared with the command line. Used by the streamer's configuration (`pi-streamer`'s
//! `config/`) and the headset app's (`config/quest-client.yaml`).
//!
//! * [`yaml`]: the YAML tree with a line on every node (serde-saphyr underneath), the
//!   [`yaml::Checker`] that collects problems, and [`yaml::MapReader`] for one mapping.
//! * [`limit`]: [`IntLimit`] and [`RealLimit`], the range of one setting and its flag.
//! * [`error`]: [`ConfigError`], every problem of one file, one per line.

pub mod error;
pub mod limit;
pub mod yaml;

pub use error::ConfigError;
pub use limit::{IntLimit, RealLimit};
