//! binoc's protocol rules as pure state machines: time is passed in (nanoseconds on the
//! caller's monotonic clock), nothing here reads a clock, touches a socket or spawns a thread.
//! The IO layers (pi-streamer's outputs, the headset's session and decoder threads) drive them.
//!
//! * [`handshake`]: `Hello` → `HelloAck` | `Reject`, both sides.
//! * [`ping`]: the clock-sync ping schedule, and pongs matched to the pings sent.
//! * [`pacer`]: datagram pacing (token bucket).
//! * [`budget`]: a receiver's send budget at its estimated rate (whole frames dropped, never
//!   queued without bound).
//! * [`bitrate`]: many receivers' bandwidth wishes → one encoder bitrate per eye.
//! * [`refchain`]: the reference chain of one eye's stream: a sequence gap or an unusable frame
//!   → wait for a keyframe, ask for one (rate-limited).
//! * [`backlog`]: what may wait for an eye's decoder (half a second of pictures, a byte
//!   budget): a receiver that falls behind decodes its backlog instead of waiting for an IDR.
//! * [`slices`]: pictures sent as slices (one transport unit each): the pictures a gap in the
//!   units cost, each counted once.
//! * [`refresh`]: recovery by intra refresh: after a loss, decode on but show nothing until
//!   a sweep that began after it reaches its recovery point; a keyframe only if none comes in
//!   time.
//! * [`keyframe`]: the encoder side: keyframe requests merged within a minimum interval.
//! * [`fec`]: forward error correction: the receiver's datagram loss count, and the sender's
//!   parity per frame sized to it.
//! * [`retransmit`]: selective retransmission: what to ask for again, and what to send again
//!   while it can still be in time.
//! * [`rate`]: the QUIC path's link estimate from queueing delay and congestion loss.
//! * [`pairing`]: pairing by a short code (SPAKE2 + key confirmation over both certificates),
//!   the code's attempt limit, and which streamer may take a headset in use.
//! * [`ledger`]: frames sent and awaiting their marker, keyed by [`ledger::FrameKey`]; the
//!   pixel-code check of a marker.

pub mod backlog;
pub mod bitrate;
pub mod budget;
pub mod fec;
pub mod handshake;
pub mod keyframe;
pub mod ledger;
pub mod pacer;
pub mod pairing;
pub mod ping;
pub mod rate;
pub mod refchain;
pub mod refresh;
pub mod retransmit;
pub mod slices;
