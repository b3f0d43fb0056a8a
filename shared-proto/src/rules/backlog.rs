//! What may wait for an eye's decoder. A unit dropped before decoding costs every picture until
//! the next IDR: a round trip, and the largest picture of the stream on a link already in
//! trouble. A receiver that falls behind for a moment (a scheduling stall, Wi-Fi delivering a
//! burst after power save or retries) therefore keeps its backlog and decodes it faster than
//! real time; the display shows the newest decoded picture (late while it catches up). Only a
//! backlog past its bounds is dropped (then the decoder waits for an IDR): half a second of
//! pictures, and a byte budget, so what a peer sends cannot grow the headset's memory without
//! bound.

use crate::Nanos;

/// The bounds of one eye's decode backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogLimits {
    /// Pictures begun (first slices) waiting.
    pub pictures: u32,
    /// Bytes waiting, each unit counted with [`UNIT_OVERHEAD`].
    pub bytes: u64,
}

/// Never fewer pictures than this (a stream announced at a very low rate).
pub const MIN_PICTURES: u32 = 4;
/// How much of the stream, in time, may wait.
pub const HORIZON_NS: Nanos = 500_000_000;
/// At most this many pictures, whatever the rate.
pub const MAX_PICTURES: u32 = 120;
/// The byte budget per eye.
pub const BYTES: u64 = 8 << 20;
/// What one queued unit costs besides its bitstream (its timing, the queue's slot).
pub const UNIT_OVERHEAD: u64 = 256;

impl BacklogLimits {
    /// The bounds for a stream of one picture every `frame_ns`.
    pub fn for_frame_interval(frame_ns: Nanos) -> Self {
        let frame_ns = frame_ns.max(1);
        let pictures = ((HORIZON_NS + frame_ns / 2) / frame_ns)
            .clamp(u64::from(MIN_PICTURES), u64::from(MAX_PICTURES));
        BacklogLimits {
            pictures: pictures as u32,
            bytes: BYTES,
        }
    }
}

/// What waits now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pictures: u32,
    pub bytes: u64,
}

impl Backlog {
    /// Whether a unit of `len` bytes may join: a picture's first unit needs room for a picture,
    /// every unit room in bytes. Admitted, it is counted.
    pub fn admit(&mut self, limits: BacklogLimits, len: usize, first: bool) -> bool {
        let bytes = self.bytes.saturating_add(len as u64 + UNIT_OVERHEAD);
        if bytes > limits.bytes || (first && self.pictures >= limits.pictures) {
            return false;
        }
        self.bytes = bytes;
        self.pictures += u32::from(first);
        true
    }

    /// An admitted unit was taken by the decoder.
    pub fn taken(&mut self, len: usize, first: bool) {
        debug_assert!(
            self.bytes >= len as u64 + UNIT_OVERHEAD && self.pictures >= u32::from(first),
            "a unit taken that was never admitted"
        );
        self.bytes = self.bytes.saturating_sub(len as u64 + UNIT_OVERHEAD);
        self.pictures = self.pictures.saturating_sub(u32::from(first));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn half_a_second_of_pictures_within_bounds() {
        assert_eq!(BacklogLimits::for_frame_interval(33_333_333).pictures, 15);
        assert_eq!(BacklogLimits::for_frame_interval(16_666_667).pictures, 30);
        assert_eq!(BacklogLimits::for_frame_interval(11_111_111).pictures, 45);
        assert_eq!(
            BacklogLimits::for_frame_interval(1000 * MS).pictures,
            MIN_PICTURES
        );
        assert_eq!(BacklogLimits::for_frame_interval(0).pictures, MAX_PICTURES);
    }

    #[test]
    fn a_stall_of_a_few_hundred_ms_is_kept_and_more_is_dropped() {
        // 300 ms behind at 60 fps, 30 KB pictures: all kept.
        let limits = BacklogLimits::for_frame_interval(16_666_667);
        let mut b = Backlog::default();
        assert!((0..18).all(|_| b.admit(limits, 30_000, true)));
        // Up to half a second of pictures; past it a new picture is refused, while a later
        // slice of a picture already in still joins (its picture is counted).
        assert!((18..30).all(|_| b.admit(limits, 30_000, true)));
        assert!(!b.admit(limits, 30_000, true));
        assert!(b.admit(limits, 30_000, false));
        // The decoder takes one: room for one more picture.
        b.taken(30_000, true);
        assert!(b.admit(limits, 30_000, true));
        assert!(!b.admit(limits, 30_000, true));
    }

    #[test]
    fn bytes_bound_the_backlog_whatever_the_pictures() {
        let limits = BacklogLimits::for_frame_interval(16_666_667);
        let mut b = Backlog::default();
        // 1 MiB pictures: seven fit; the eighth, with the units' overhead, passes 8 MiB...
        assert!((0..7).all(|_| b.admit(limits, 1 << 20, true)));
        assert!(!b.admit(limits, 1 << 20, true));
        // ...and a flood of tiny units stops at the byte budget too.
        let mut tiny = Backlog::default();
        let admitted = (0..1_000_000)
            .take_while(|_| tiny.admit(limits, 0, false))
            .count();
        assert_eq!(admitted as u64, BYTES / UNIT_OVERHEAD);
        // Everything taken: empty again.
        for _ in 0..admitted {
            tiny.taken(0, false);
        }
        assert_eq!(tiny, Backlog::default());
    }
}
