//! Stage 3: transports to the headset. QUIC (quinn) here; WebRTC comes next behind the same
//! pipeline (it consumes the same [`crate::pipeline::EncodedFrame`]s).

pub mod quic;
