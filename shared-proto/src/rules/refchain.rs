//! The reference chain of one eye's H.264 stream, as a receiver (the headset's decoder, or a
//! WebRTC viewer's send policy) sees it. P-frames need every frame since the last keyframe:
//! after a sequence gap, a decoder restart or a frame that could not be used, nothing but a
//! keyframe is usable, and one is asked for — at most once per `retry_ns`, repeated while the
//! wait lasts (a request may be merged away at the encoder or lost with the connection).

use crate::wire::KeyframeReason;
use crate::Nanos;

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Frames missing before this one (a gap in the sequence).
    pub lost: u32,
    /// Whether the frame can be decoded (false: waiting for a keyframe; skip it).
    pub usable: bool,
    /// A keyframe request to send now.
    pub request: Option<KeyframeReason>,
}

#[derive(Debug, Clone)]
pub struct ReferenceChain {
    expected: Option<u32>,
    need_keyframe: bool,
    /// Whether a frame was ever decoded (before that, a request says `Start`).
    decoded_any: bool,
    last_request: Option<Nanos>,
    retry_ns: Nanos,
}

impl ReferenceChain {
    /// A chain that waits for its first keyframe; requests at most once per `retry_ns`.
    pub fn new(retry_ns: Nanos) -> Self {
        ReferenceChain {
            expected: None,
            need_keyframe: true,
            decoded_any: false,
            last_request: None,
            retry_ns,
        }
    }

    /// Whether only a keyframe is usable now.
    pub fn waiting(&self) -> bool {
        self.need_keyframe
    }

    /// A frame with sequence number `seq` arrived at `now`.
    pub fn on_frame(&mut self, seq: u32, keyframe: bool, now: Nanos) -> Verdict {
        let mut lost = 0;
        if let Some(e) = self.expected {
            let gap = seq.wrapping_sub(e);
            // A "gap" of more than half the sequence space is an old frame arriving late.
            if gap != 0 && gap < 1 << 31 {
                lost = gap;
                self.need_keyframe = true;
            }
        }
        self.expected = Some(seq.wrapping_add(1));
        if self.need_keyframe && !keyframe {
            let reason = if self.decoded_any {
                KeyframeReason::ReferenceLost
            } else {
                KeyframeReason::Start
            };
            return Verdict {
                lost,
                usable: false,
                request: self.request(reason, now),
            };
        }
        Verdict {
            lost,
            usable: true,
            request: None,
        }
    }

    /// The usable frame was decoded (or delivered): the chain is whole again.
    pub fn on_decoded(&mut self) {
        self.need_keyframe = false;
        self.decoded_any = true;
    }

    /// A usable frame could not be used after all (a decode error; a sender's deadline or
    /// budget dropped it): wait for a keyframe. The request to send, if any.
    pub fn on_unusable(&mut self, reason: KeyframeReason, now: Nanos) -> Option<KeyframeReason> {
        self.need_keyframe = true;
        self.request(reason, now)
    }

    /// A new decoder starts (the old one's references are gone): wait for a keyframe as at the
    /// start; the sequence continues.
    pub fn restart(&mut self) {
        self.need_keyframe = true;
        self.decoded_any = false;
    }

    fn request(&mut self, reason: KeyframeReason, now: Nanos) -> Option<KeyframeReason> {
        if self
            .last_request
            .is_some_and(|t| now.saturating_sub(t) < self.retry_ns)
        {
            return None;
        }
        self.last_request = Some(now);
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn waits_for_the_first_keyframe_and_asks_for_it_once_per_interval() {
        let mut c = ReferenceChain::new(100 * MS);
        let v = c.on_frame(0, false, 0);
        assert_eq!(
            v,
            Verdict {
                lost: 0,
                usable: false,
                request: Some(KeyframeReason::Start)
            }
        );
        assert_eq!(c.on_frame(1, false, 50 * MS).request, None, "rate-limited");
        assert_eq!(
            c.on_frame(2, false, 100 * MS).request,
            Some(KeyframeReason::Start),
            "asked again while the wait lasts"
        );
        let v = c.on_frame(3, true, 110 * MS);
        assert!(v.usable && v.request.is_none());
        c.on_decoded();
        assert!(c.on_frame(4, false, 120 * MS).usable);
    }

    #[test]
    fn a_gap_loses_the_reference_until_the_next_keyframe() {
        let mut c = ReferenceChain::new(100 * MS);
        assert!(c.on_frame(10, true, 0).usable);
        c.on_decoded();
        let v = c.on_frame(13, false, 5 * MS);
        assert_eq!(
            v,
            Verdict {
                lost: 2,
                usable: false,
                request: Some(KeyframeReason::ReferenceLost)
            }
        );
        assert!(!c.on_frame(14, false, 6 * MS).usable);
        assert!(c.on_frame(15, true, 7 * MS).usable);
    }

    #[test]
    fn a_late_old_frame_is_not_a_gap() {
        let mut c = ReferenceChain::new(100 * MS);
        c.on_frame(10, true, 0);
        c.on_decoded();
        assert_eq!(c.on_frame(5, false, 1).lost, 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut c = ReferenceChain::new(100 * MS);
        c.on_frame(u32::MAX, true, 0);
        c.on_decoded();
        let v = c.on_frame(0, false, 1);
        assert!(v.usable && v.lost == 0);
    }

    #[test]
    fn decode_errors_and_restarts_wait_for_a_keyframe() {
        let mut c = ReferenceChain::new(100 * MS);
        c.on_frame(0, true, 0);
        c.on_decoded();
        assert_eq!(
            c.on_unusable(KeyframeReason::DecodeError, MS),
            Some(KeyframeReason::DecodeError)
        );
        assert!(!c.on_frame(1, false, 2 * MS).usable);
        c.on_frame(2, true, 3 * MS);
        c.on_decoded();
        c.restart();
        let v = c.on_frame(3, false, 200 * MS);
        assert_eq!(
            (v.usable, v.request),
            (false, Some(KeyframeReason::Start)),
            "a new decoder starts like the first"
        );
    }
}
