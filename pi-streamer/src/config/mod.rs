//! The streamer's YAML configuration: one *profile* (both eyes' cameras, the encoder, the
//! transports, the deadlines), as in `config/streamer.yaml`, or a file of named profiles, as in
//! `config/camera_profiles.yaml`.
//!
//! Every key has a default, so an empty file is valid. Loading walks the whole document and
//! reports every problem at once — unknown keys, wrong types, out-of-range values, crops
//! outside the frame — each with its key and line. Command-line overrides are re-checked by
//! the same checks ([`StreamerConfig::validate`]).
//!
//! - `model`: the configuration types and their defaults;
//! - [`limits`]: every range a value must lie in, declared once for the file and the command
//!   line;
//! - [`yaml`]: the YAML tree with lines, and the checker that collects problems;
//! - `schema`: the walk from that tree to the model, the checks across keys, `validate`;
//! - `files`: single-profile and profiles files, selecting a profile, the embedded default.

mod files;
pub mod limits;
mod model;
mod schema;
/// The YAML tree with lines and the checker (the `binoc-schema` crate, shared with the
/// headset app's configuration).
pub use binoc_schema::yaml;

pub use files::{ConfigFile, Profiles, EMBEDDED_DEFAULT, SHIPPED_PROFILES};
pub use model::{
    AwbMode, CameraSettings, CaptureFormat, Complexity, Crop, Deadlines, EncoderKind,
    EncoderSettings, EyeConfig, Eyes, Flip, Offset, RefreshMode, Size, SourceSpec, SpsPpsMode,
    StreamerConfig, TransportConfig, TransportKind, UdpPorts, WebrtcConfig,
};
pub use schema::ConfigError;

#[cfg(test)]
mod tests;
