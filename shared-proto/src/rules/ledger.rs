//! The marker ledger of one eye: frames sent and awaiting their marker. Each is booked before
//! its first byte leaves (so a fast marker can never overtake its own booking) under the key
//! its marker will come back with; a marker is matched once, and a marker for a frame the
//! ledger does not hold (too old, answered twice, or made up) is refused. Bounded: the oldest
//! booking goes when it is full (its marker never came).

use std::collections::VecDeque;

use crate::pixel_code::FRAME_MASK;
use crate::wire::FrameTiming;
use crate::Eye;

/// The key a marker names its frame by, typed so that the two kinds never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKey {
    /// The per-eye sequence number of the encoded frame (the QUIC wire format).
    Seq(u32),
    /// The frame's 90 kHz RTP timestamp (WebRTC: what a browser's marker knows).
    Rtp(u32),
}

/// Frames awaiting a marker, per eye.
pub const BOOK_LEN: usize = 1024;
/// How many frames sent before a frame count as its neighbours (a browser still showing an
/// earlier frame); every frame sent after it counts (a busy browser's frame callback ran late:
/// seen up to 9 frames, 300 ms, on a loaded machine).
pub const NEIGHBOURS: usize = 2;
/// Frames remembered in sending order (for [`Ledger::neighbours`]), markers or not.
const RECENT_LEN: usize = 64;

/// Why a marker was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// No frame booked under that key (too old, already answered, or never sent).
    Unknown,
    /// A frame is booked under the key, but with another frame number.
    WrongFrame,
}

#[derive(Debug, Default, Clone)]
pub struct Ledger {
    book: VecDeque<(FrameKey, FrameTiming)>,
    recent: VecDeque<(FrameKey, u64)>,
}

impl Ledger {
    /// Books a frame about to go on the wire.
    pub fn book(&mut self, key: FrameKey, timing: FrameTiming) {
        if self.book.len() == BOOK_LEN {
            self.book.pop_front();
        }
        self.book.push_back((key, timing));
        if self.recent.len() == RECENT_LEN {
            self.recent.pop_front();
        }
        self.recent.push_back((key, timing.frame_no));
    }

    /// The sender gave up on a booked frame: no marker will come for it.
    pub fn unbook(&mut self, key: FrameKey) {
        self.book.retain(|(k, _)| *k != key);
    }

    /// Matches a marker: the booked frame's timing (removed from the ledger). `frame_no`, when
    /// the marker carries one, must be the booked frame's.
    pub fn take(&mut self, key: FrameKey, frame_no: Option<u64>) -> Result<FrameTiming, Unmatched> {
        let i = self
            .book
            .iter()
            .position(|(k, _)| *k == key)
            .ok_or(Unmatched::Unknown)?;
        let (_, timing) = self.book.remove(i).ok_or(Unmatched::Unknown)?;
        if frame_no.is_some_and(|n| n != timing.frame_no) {
            return Err(Unmatched::WrongFrame);
        }
        Ok(timing)
    }

    /// The frame number of the newest frame booked under `key`.
    pub fn frame_no(&self, key: FrameKey) -> Option<u64> {
        self.book
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t.frame_no)
    }

    /// Frame numbers of the [`NEIGHBOURS`] frames booked just before `key` and of every frame
    /// booked after it that is still remembered (in the order sent; with frames dropped before
    /// sending they are more than one apart).
    pub fn neighbours(&self, key: FrameKey) -> Vec<u64> {
        let Some(i) = self.recent.iter().rposition(|(k, _)| *k == key) else {
            return Vec::new();
        };
        let lo = i.saturating_sub(NEIGHBOURS);
        (lo..self.recent.len())
            .filter(|&j| j != i)
            .map(|j| self.recent[j].1)
            .collect()
    }

    /// Frames booked whose marker has not arrived.
    pub fn awaiting(&self) -> usize {
        self.book.len()
    }
}

/// What a marker's pixel code says about its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodeCheck {
    pub unreadable: bool,
    /// The code names the other eye.
    pub wrong_eye: bool,
    /// The code names another frame.
    pub mismatch: bool,
}

/// Checks the code read from `eye`'s picture of frame `frame_no`.
pub fn check_code(eye: Eye, code: Option<(Eye, u32)>, frame_no: u64) -> CodeCheck {
    match code {
        None => CodeCheck {
            unreadable: true,
            ..Default::default()
        },
        Some((code_eye, n)) => CodeCheck {
            unreadable: false,
            wrong_eye: code_eye != eye,
            mismatch: n != frame_no as u32 & FRAME_MASK,
        },
    }
}

/// A browser reads the code with `drawImage` inside `requestVideoFrameCallback`, where Chrome
/// may already hold a later frame sent (the callback ran late), or still an earlier one: a
/// code of the right eye naming a neighbour (see [`Ledger::neighbours`]) belongs to no marker
/// — a read race, to be counted as unreadable, not as a mismatch. An older frame beyond the
/// two before, or the other eye, is a real mismatch.
pub fn is_read_race(eye: Eye, code: Option<(Eye, u32)>, neighbours: &[u64]) -> bool {
    match code {
        Some((code_eye, n)) => {
            code_eye == eye && neighbours.iter().any(|&f| f as u32 & FRAME_MASK == n)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(frame_no: u64) -> FrameTiming {
        FrameTiming {
            frame_no,
            ..Default::default()
        }
    }

    #[test]
    fn a_marker_matches_its_frame_once() {
        let mut l = Ledger::default();
        l.book(FrameKey::Seq(3), t(7));
        assert_eq!(
            l.take(FrameKey::Seq(3), Some(8)),
            Err(Unmatched::WrongFrame)
        );
        l.book(FrameKey::Seq(3), t(7));
        assert_eq!(l.take(FrameKey::Seq(3), Some(7)).map(|t| t.frame_no), Ok(7));
        assert_eq!(l.take(FrameKey::Seq(3), Some(7)), Err(Unmatched::Unknown));
        assert_eq!(l.awaiting(), 0);
    }

    #[test]
    fn keys_of_two_kinds_never_match() {
        let mut l = Ledger::default();
        l.book(FrameKey::Rtp(3), t(7));
        assert_eq!(l.take(FrameKey::Seq(3), None), Err(Unmatched::Unknown));
        assert_eq!(l.frame_no(FrameKey::Rtp(3)), Some(7));
    }

    #[test]
    fn neighbours_are_the_frames_sent_before_and_after_even_after_their_markers() {
        let mut l = Ledger::default();
        // Frame 11 was dropped before sending: the neighbours skip it.
        for (seq, f) in [(100, 9), (200, 10), (300, 12), (400, 13)] {
            l.book(FrameKey::Seq(seq), t(f));
        }
        l.unbook(FrameKey::Seq(200));
        assert_eq!(l.neighbours(FrameKey::Seq(300)), [9, 10, 13]);
        assert_eq!(
            l.neighbours(FrameKey::Seq(100)),
            [10, 12, 13],
            "every later frame"
        );
        assert_eq!(l.neighbours(FrameKey::Seq(400)), [10, 12]);
        assert!(l.neighbours(FrameKey::Seq(999)).is_empty());
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut l = Ledger::default();
        for s in 0..(BOOK_LEN as u32 + 10) {
            l.book(FrameKey::Seq(s), t(s.into()));
        }
        assert_eq!(l.awaiting(), BOOK_LEN);
        assert_eq!(
            l.take(FrameKey::Seq(0), None),
            Err(Unmatched::Unknown),
            "the oldest went"
        );
    }

    #[test]
    fn codes_are_checked_for_eye_and_frame() {
        assert_eq!(
            check_code(Eye::Left, Some((Eye::Right, 7)), 7),
            CodeCheck {
                wrong_eye: true,
                ..Default::default()
            }
        );
        assert!(check_code(Eye::Left, Some((Eye::Left, 8)), 7).mismatch);
        assert!(check_code(Eye::Left, None, 7).unreadable);
        // 24-bit codes wrap.
        assert_eq!(
            check_code(Eye::Left, Some((Eye::Left, 5)), (1 << 24) + 5),
            CodeCheck::default()
        );
    }

    #[test]
    fn a_neighbours_code_is_a_read_race_not_a_mismatch() {
        let n = [8, 9, 11, 12];
        assert!(is_read_race(Eye::Left, Some((Eye::Left, 11)), &n));
        assert!(
            is_read_race(Eye::Left, Some((Eye::Left, 8)), &n),
            "two frames late"
        );
        assert!(
            !is_read_race(Eye::Left, Some((Eye::Right, 11)), &n),
            "wrong eye is real"
        );
        assert!(!is_read_race(Eye::Left, Some((Eye::Left, 13)), &n));
        assert!(!is_read_race(Eye::Left, None, &n));
    }
}
