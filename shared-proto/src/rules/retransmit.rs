//! Selective retransmission: what parity could not make up is asked for again, and sent again
//! only while the frame can still arrive in time.
//!
//! * Receiver ([`crate::fragment::Reassembler::nacks`]): a partial frame that has had no
//!   fragment for [`NACK_WAIT_NS`] (its burst is over) and still lacks more fragments than its
//!   parity can make up asks, once, for that many of its missing data fragments.
//! * Sender ([`SentFrames`]): keeps the datagrams of each eye's last frames (bounded by frames
//!   and bytes) and answers a request only if `now + rtt / 2` is still before the frame's
//!   deadline (capture + `max_latency`): a fragment that would arrive late is not worth its
//!   bytes (the receiver recovers with a keyframe instead).

use std::collections::VecDeque;

use crate::{Eye, Nanos};

/// How long a partial frame waits, after its last fragment, before it asks for the rest.
pub const NACK_WAIT_NS: Nanos = 5_000_000;
/// Frames kept per eye for retransmission.
pub const KEPT_FRAMES: usize = 8;
/// Bytes kept per eye for retransmission.
pub const KEPT_BYTES: usize = 2 * 1024 * 1024;

struct Kept<T> {
    seq: u32,
    capture_ns: Nanos,
    bytes: usize,
    data: Vec<T>,
}

/// Why a request was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The frame is no longer kept (or never was).
    Unknown,
    /// It could not arrive before its deadline.
    TooLate,
}

/// The sender's recent frames, per eye: their data fragment datagrams (`T`: the datagram, e.g.
/// a reference-counted buffer).
pub struct SentFrames<T> {
    eyes: [VecDeque<Kept<T>>; 2],
}

impl<T> Default for SentFrames<T> {
    fn default() -> Self {
        SentFrames {
            eyes: [VecDeque::new(), VecDeque::new()],
        }
    }
}

impl<T: Clone + AsRef<[u8]>> SentFrames<T> {
    /// Keeps frame `seq`'s data fragments (index order), dropping the oldest frames beyond
    /// [`KEPT_FRAMES`] or [`KEPT_BYTES`].
    pub fn keep(&mut self, eye: Eye, seq: u32, capture_ns: Nanos, data: Vec<T>) {
        let q = &mut self.eyes[eye.index()];
        let bytes = data.iter().map(|d| d.as_ref().len()).sum();
        q.push_back(Kept {
            seq,
            capture_ns,
            bytes,
            data,
        });
        while q.len() > KEPT_FRAMES
            || (q.len() > 1 && q.iter().map(|k| k.bytes).sum::<usize>() > KEPT_BYTES)
        {
            q.pop_front();
        }
    }

    /// The datagrams to send again for a request of `missing` fragments of frame `seq` at
    /// `now`, given the path's round-trip time and the frame deadline (after capture).
    pub fn resend(
        &self,
        eye: Eye,
        seq: u32,
        missing: &[u16],
        now: Nanos,
        rtt_ns: Nanos,
        deadline_ns: Nanos,
    ) -> Result<Vec<T>, Refused> {
        let k = self.eyes[eye.index()]
            .iter()
            .find(|k| k.seq == seq)
            .ok_or(Refused::Unknown)?;
        if now.saturating_add(rtt_ns / 2) > k.capture_ns.saturating_add(deadline_ns) {
            return Err(Refused::TooLate);
        }
        let mut out: Vec<T> = Vec::new();
        for &i in missing {
            if let Some(d) = k.data.get(usize::from(i)) {
                out.push(d.clone());
            }
        }
        if out.is_empty() {
            return Err(Refused::Unknown);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn frame(n: usize, size: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; size]).collect()
    }

    #[test]
    fn resends_what_was_asked_while_in_time() {
        let mut s = SentFrames::default();
        s.keep(Eye::Left, 7, 100 * MS, frame(5, 1000));
        let got = s.resend(Eye::Left, 7, &[1, 3, 9], 110 * MS, 4 * MS, 50 * MS);
        assert_eq!(got, Ok(vec![vec![1u8; 1000], vec![3u8; 1000]]));
        // Too late: it would arrive after capture + 50 ms.
        assert_eq!(
            s.resend(Eye::Left, 7, &[1], 149 * MS, 4 * MS, 50 * MS),
            Err(Refused::TooLate)
        );
        // The other eye, an unknown frame, nothing that exists.
        assert_eq!(
            s.resend(Eye::Right, 7, &[1], 110 * MS, 0, 50 * MS),
            Err(Refused::Unknown)
        );
        assert_eq!(
            s.resend(Eye::Left, 8, &[1], 110 * MS, 0, 50 * MS),
            Err(Refused::Unknown)
        );
        assert_eq!(
            s.resend(Eye::Left, 7, &[100], 110 * MS, 0, 50 * MS),
            Err(Refused::Unknown)
        );
    }

    #[test]
    fn keeps_a_bounded_number_of_frames_and_bytes() {
        let mut s = SentFrames::default();
        for seq in 0..20 {
            s.keep(Eye::Left, seq, 0, frame(3, 100));
        }
        assert_eq!(s.eyes[0].len(), KEPT_FRAMES);
        assert_eq!(s.eyes[0].front().map(|k| k.seq), Some(12));
        for seq in 0..4 {
            s.keep(Eye::Right, seq, 0, frame(1000, 1200)); // 1.2 MB each
        }
        assert_eq!(s.eyes[1].len(), 1, "only the newest fits in 2 MiB");
    }
}
