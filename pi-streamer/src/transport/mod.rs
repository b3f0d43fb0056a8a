//! Stage 3: transports. Both consume the same [`crate::pipeline::EncodedFrame`]s (no re-encode).
//!
//! * [`quic`]: the native headset app (quinn; datagrams for video, a stream for control).
//! * [`webrtc`]: browsers and WebXR (str0m; WHEP over HTTPS, two H.264 tracks, DataChannel).

pub mod quic;
pub mod webrtc;
