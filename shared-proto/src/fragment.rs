//! Splitting encoded frames into datagrams, and putting them back together.
//!
//! The [`Reassembler`] keeps, per eye, a few partially received frames. It delivers complete
//! frames in sequence order; a frame that cannot complete any more (a newer one completed first,
//! or it waited longer than its deadline) is reported lost. Its memory is bounded by a byte
//! budget and a cap on frames in flight, whatever a peer sends.

use crate::wire::{
    parse_fragment, FragmentHeader, FrameTiming, Reader, WireError, FRAGMENT_HEADER_LEN,
    MAX_FRAGMENTS,
};
use crate::{Eye, Nanos};

/// One encoded frame with its timing, as the streamer hands it to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFrame<'a> {
    pub eye: Eye,
    pub seq: u32,
    pub keyframe: bool,
    pub timing: FrameTiming,
    pub bitstream: &'a [u8],
}

/// Cuts a frame into datagrams of at most `max_datagram` bytes each and calls `emit` for every
/// datagram in order. Returns the number of datagrams.
pub fn fragment_frame(
    frame: &OutgoingFrame<'_>,
    max_datagram: usize,
    mut emit: impl FnMut(Vec<u8>),
) -> Result<u16, WireError> {
    if max_datagram <= FRAGMENT_HEADER_LEN {
        return Err(WireError::Invalid {
            field: "max_datagram",
            why: "no room for payload",
        });
    }
    let max_chunk = max_datagram - FRAGMENT_HEADER_LEN;
    let mut blob = Vec::with_capacity(FrameTiming::LEN + frame.bitstream.len());
    let mut timing = frame.timing;
    timing.encoded_len = frame.bitstream.len() as u32;
    timing.write(&mut blob);
    blob.extend_from_slice(frame.bitstream);
    let len = blob.len();
    let count = len.div_ceil(max_chunk);
    if count > MAX_FRAGMENTS as usize {
        return Err(WireError::TooLong {
            what: "fragments",
            len: count as u64,
            limit: MAX_FRAGMENTS.into(),
        });
    }
    let header = FragmentHeader {
        eye: frame.eye,
        keyframe: frame.keyframe,
        index: 0,
        count: count as u16,
        seq: frame.seq,
        frame_len: u32::try_from(len).map_err(|_| WireError::Invalid {
            field: "frame",
            why: "too long",
        })?,
    };
    header.validate()?;
    for index in 0..count as u16 {
        let h = FragmentHeader { index, ..header };
        let range = h.range();
        let mut d = Vec::with_capacity(FRAGMENT_HEADER_LEN + range.len());
        h.write(&mut d);
        d.extend_from_slice(&blob[range]);
        emit(d);
    }
    Ok(count as u16)
}

/// A frame put back together, with when its first and last bytes arrived (receiver clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedFrame {
    pub eye: Eye,
    pub seq: u32,
    pub keyframe: bool,
    pub timing: FrameTiming,
    pub bitstream: Vec<u8>,
    pub first_byte_ns: Nanos,
    pub last_byte_ns: Nanos,
    pub fragments: u16,
}

/// Limits of the reassembler (memory and waiting time).
#[derive(Debug, Clone, Copy)]
pub struct ReassemblyLimits {
    /// Partial frames kept per eye.
    pub max_partial_frames: usize,
    /// Bytes of partial frames kept per eye.
    pub max_partial_bytes: usize,
    /// A partial frame older than this (since its first fragment) is declared lost.
    pub max_wait_ns: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_partial_frames: 4,
            max_partial_bytes: 8 * 1024 * 1024,
            max_wait_ns: 100_000_000,
        }
    }
}

/// Counters of what the reassembler saw (per eye).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub datagrams: u64,
    pub bytes: u64,
    pub duplicates: u64,
    /// Fragments of frames already delivered or declared lost.
    pub stale: u64,
    /// Fragments that disagree with earlier fragments of the same frame, or frames whose blob
    /// does not parse.
    pub inconsistent: u64,
    pub completed: u64,
    pub lost: u64,
    /// Partial frames evicted to stay within the memory budget.
    pub evicted: u64,
}

/// What one inserted datagram led to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Insertion {
    pub completed: Option<CompletedFrame>,
    /// Sequence numbers declared lost as a result.
    pub lost: Vec<u32>,
}

struct Partial {
    header: FragmentHeader,
    blob: Vec<u8>,
    have: Vec<bool>,
    received: u16,
    first_byte_ns: Nanos,
    last_byte_ns: Nanos,
}

/// `a` is newer than `b` in wrapping sequence-number space.
pub fn seq_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

#[derive(Default)]
struct EyeState {
    partials: Vec<Partial>,
    /// Highest sequence number delivered or declared lost: anything at or below is stale.
    floor: Option<u32>,
    stats: ReassemblyStats,
}

impl EyeState {
    fn partial_bytes(&self) -> usize {
        self.partials.iter().map(|p| p.blob.len()).sum()
    }

    fn is_stale(&self, seq: u32) -> bool {
        self.floor.is_some_and(|f| !seq_newer(seq, f))
    }

    fn raise_floor(&mut self, seq: u32) {
        if self.floor.is_none_or(|f| seq_newer(seq, f)) {
            self.floor = Some(seq);
        }
    }

    /// Declares lost every partial frame older than `seq`.
    fn lose_older_than(&mut self, seq: u32, lost: &mut Vec<u32>) {
        let stats = &mut self.stats;
        self.partials.retain(|p| {
            if seq_newer(seq, p.header.seq) {
                stats.lost += 1;
                lost.push(p.header.seq);
                false
            } else {
                true
            }
        });
    }
}

/// Reassembles fragments of both eyes.
pub struct Reassembler {
    limits: ReassemblyLimits,
    eyes: [EyeState; 2],
    malformed: u64,
}

impl Reassembler {
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            eyes: Default::default(),
            malformed: 0,
        }
    }

    pub fn stats(&self, eye: Eye) -> ReassemblyStats {
        self.eyes[eye.index()].stats
    }

    /// Datagrams that did not parse at all (so belong to no eye).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Bytes currently held in partial frames, over both eyes.
    pub fn buffered_bytes(&self) -> usize {
        self.eyes.iter().map(EyeState::partial_bytes).sum()
    }

    /// Parses and inserts one datagram received at `now` (receiver clock).
    pub fn insert_datagram(&mut self, datagram: &[u8], now: Nanos) -> Result<Insertion, WireError> {
        match parse_fragment(datagram) {
            Ok((h, chunk)) => Ok(self.insert(h, chunk, now)),
            Err(e) => {
                self.malformed += 1;
                Err(e)
            }
        }
    }

    /// Inserts one already-parsed fragment.
    pub fn insert(&mut self, h: FragmentHeader, chunk: &[u8], now: Nanos) -> Insertion {
        let limits = self.limits;
        let st = &mut self.eyes[h.eye.index()];
        let mut out = Insertion::default();
        st.stats.datagrams += 1;
        st.stats.bytes += chunk.len() as u64;
        if st.is_stale(h.seq) {
            st.stats.stale += 1;
            return out;
        }
        let pos = match st.partials.iter().position(|p| p.header.seq == h.seq) {
            Some(i) => {
                let p = &st.partials[i].header;
                if p.count != h.count || p.frame_len != h.frame_len || p.keyframe != h.keyframe {
                    st.stats.inconsistent += 1;
                    return out;
                }
                i
            }
            None => {
                // Make room: by count, then by bytes, evicting the oldest partial frames.
                while st.partials.len() >= limits.max_partial_frames
                    || (!st.partials.is_empty()
                        && st.partial_bytes() + h.frame_len as usize > limits.max_partial_bytes)
                {
                    let oldest = (0..st.partials.len())
                        .min_by(|&a, &b| {
                            let (sa, sb) = (st.partials[a].header.seq, st.partials[b].header.seq);
                            if seq_newer(sa, sb) {
                                std::cmp::Ordering::Greater
                            } else {
                                std::cmp::Ordering::Less
                            }
                        })
                        .expect("non-empty");
                    let p = st.partials.swap_remove(oldest);
                    st.stats.evicted += 1;
                    st.stats.lost += 1;
                    out.lost.push(p.header.seq);
                    st.raise_floor(p.header.seq);
                }
                if h.frame_len as usize > limits.max_partial_bytes {
                    st.stats.inconsistent += 1;
                    return out;
                }
                if st.is_stale(h.seq) {
                    st.stats.stale += 1;
                    return out;
                }
                st.partials.push(Partial {
                    header: h,
                    blob: vec![0; h.frame_len as usize],
                    have: vec![false; h.count as usize],
                    received: 0,
                    first_byte_ns: now,
                    last_byte_ns: now,
                });
                st.partials.len() - 1
            }
        };
        let p = &mut st.partials[pos];
        let idx = h.index as usize;
        if p.have[idx] {
            st.stats.duplicates += 1;
            return out;
        }
        p.have[idx] = true;
        p.received += 1;
        p.blob[h.range()].copy_from_slice(chunk);
        p.last_byte_ns = now;
        if p.received < p.header.count {
            return out;
        }
        let p = st.partials.swap_remove(pos);
        let seq = p.header.seq;
        st.lose_older_than(seq, &mut out.lost);
        st.raise_floor(seq);
        let mut r = Reader::new(&p.blob);
        let timing = match FrameTiming::parse(&mut r) {
            Ok(t) if t.encoded_len as usize == r.remaining() => t,
            _ => {
                st.stats.inconsistent += 1;
                st.stats.lost += 1;
                out.lost.push(seq);
                return out;
            }
        };
        st.stats.completed += 1;
        let mut blob = p.blob;
        blob.drain(..FrameTiming::LEN);
        out.completed = Some(CompletedFrame {
            eye: h.eye,
            seq,
            keyframe: p.header.keyframe,
            timing,
            bitstream: blob,
            first_byte_ns: p.first_byte_ns,
            last_byte_ns: p.last_byte_ns,
            fragments: p.header.count,
        });
        out
    }

    /// Declares lost every partial frame that has waited longer than the limit. Call it
    /// periodically (e.g. every few milliseconds) with the receiver's clock.
    pub fn expire(&mut self, now: Nanos) -> Vec<(Eye, u32)> {
        let max_wait = self.limits.max_wait_ns;
        let mut lost = Vec::new();
        for eye in Eye::BOTH {
            let st = &mut self.eyes[eye.index()];
            let mut expired = Vec::new();
            st.partials.retain(|p| {
                if now.saturating_sub(p.first_byte_ns) > max_wait {
                    expired.push(p.header.seq);
                    false
                } else {
                    true
                }
            });
            for seq in expired {
                st.stats.lost += 1;
                st.raise_floor(seq);
                lost.push((eye, seq));
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn timing(n: u64) -> FrameTiming {
        FrameTiming {
            frame_no: n,
            capture_ns: 10,
            encode_start_ns: 20,
            encode_end_ns: 30,
            send_ns: 40,
            encoded_len: 0,
            reserved: 0,
        }
    }

    fn frags(eye: Eye, seq: u32, len: usize, mtu: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let bitstream: Vec<u8> = (0..len).map(|i| (i * 7 + seq as usize) as u8).collect();
        let mut out = Vec::new();
        let f = OutgoingFrame {
            eye,
            seq,
            keyframe: seq == 0,
            timing: timing(seq as u64),
            bitstream: &bitstream,
        };
        fragment_frame(&f, mtu, |d| out.push(d)).unwrap();
        (bitstream, out)
    }

    #[test]
    fn fragments_respect_mtu_and_reassemble_in_any_order() {
        for len in [0usize, 1, 100, 1151, 1152, 5000, 70_000] {
            let (bits, mut ds) = frags(Eye::Right, 5, len, 1200);
            assert!(ds.iter().all(|d| d.len() <= 1200));
            ds.reverse();
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let n = ds.len();
            for (i, d) in ds.iter().enumerate() {
                let ins = r.insert_datagram(d, 1000 + i as u64).unwrap();
                if i + 1 < n {
                    assert!(ins.completed.is_none());
                } else {
                    let c = ins.completed.unwrap();
                    assert_eq!(c.bitstream, bits);
                    assert_eq!(c.timing.frame_no, 5);
                    assert_eq!(c.timing.encoded_len as usize, len);
                    assert_eq!(
                        (c.first_byte_ns, c.last_byte_ns),
                        (1000, 1000 + n as u64 - 1)
                    );
                }
            }
        }
    }

    #[test]
    fn newer_complete_frame_declares_older_partial_lost() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let (_, a) = frags(Eye::Left, 1, 3000, 1200);
        let (_, b) = frags(Eye::Left, 2, 100, 1200);
        r.insert_datagram(&a[0], 1).unwrap();
        let ins = r.insert_datagram(&b[0], 2).unwrap();
        assert_eq!(ins.completed.unwrap().seq, 2);
        assert_eq!(ins.lost, vec![1]);
        // A late fragment of frame 1 is stale now, and counted.
        let ins = r.insert_datagram(&a[1], 3).unwrap();
        assert_eq!(ins, Insertion::default());
        assert_eq!(r.stats(Eye::Left).stale, 1);
        assert_eq!(r.stats(Eye::Left).lost, 1);
        // The other eye is independent.
        let (_, c) = frags(Eye::Right, 1, 10, 1200);
        assert!(r.insert_datagram(&c[0], 4).unwrap().completed.is_some());
    }

    #[test]
    fn duplicates_and_expiry() {
        let mut r = Reassembler::new(ReassemblyLimits {
            max_wait_ns: 50,
            ..Default::default()
        });
        let (_, a) = frags(Eye::Left, 9, 3000, 1200);
        r.insert_datagram(&a[0], 0).unwrap();
        r.insert_datagram(&a[0], 1).unwrap();
        assert_eq!(r.stats(Eye::Left).duplicates, 1);
        assert!(r.expire(40).is_empty());
        assert_eq!(r.expire(51), vec![(Eye::Left, 9)]);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn inconsistent_fragment_is_counted_not_merged() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let (_, a) = frags(Eye::Left, 3, 3000, 1200);
        let (_, b) = frags(Eye::Left, 3, 5000, 1200);
        r.insert_datagram(&a[0], 0).unwrap();
        r.insert_datagram(&b[1], 0).unwrap();
        assert_eq!(r.stats(Eye::Left).inconsistent, 1);
    }

    #[test]
    fn garbage_blob_timing_is_lost_not_delivered() {
        // A well-formed fragment whose blob has a bogus timing block.
        let h = FragmentHeader {
            eye: Eye::Left,
            keyframe: false,
            index: 0,
            count: 1,
            seq: 0,
            frame_len: 60,
        };
        let mut d = Vec::new();
        h.write(&mut d);
        d.extend_from_slice(&[0xff; 60]);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let ins = r.insert_datagram(&d, 0).unwrap();
        assert!(ins.completed.is_none());
        assert_eq!(ins.lost, vec![0]);
    }

    #[test]
    fn memory_stays_within_budget_under_hostile_headers() {
        let limits = ReassemblyLimits {
            max_partial_frames: 4,
            max_partial_bytes: 1 << 20,
            max_wait_ns: u64::MAX,
        };
        let mut r = Reassembler::new(limits);
        for seq in 0..1000u32 {
            // Claims of huge frames, one fragment each, never completed.
            let h = FragmentHeader {
                eye: Eye::Left,
                keyframe: false,
                index: 0,
                count: 1000,
                seq,
                frame_len: 400_000,
            };
            let mut d = Vec::new();
            h.write(&mut d);
            d.extend(std::iter::repeat_n(0u8, h.range().len()));
            let _ = r.insert_datagram(&d, seq as u64);
            assert!(r.buffered_bytes() <= limits.max_partial_bytes);
        }
        assert!(r.stats(Eye::Left).evicted > 900);
    }

    #[test]
    fn seq_wraps() {
        assert!(seq_newer(0, u32::MAX));
        assert!(!seq_newer(u32::MAX, 0));
        assert!(!seq_newer(5, 5));
    }

    proptest! {
        #[test]
        fn any_datagram_sequence_is_safe(ds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..50)) {
            let mut r = Reassembler::new(ReassemblyLimits { max_partial_bytes: 1 << 16, ..Default::default() });
            for (i, d) in ds.iter().enumerate() {
                let _ = r.insert_datagram(d, i as u64);
                prop_assert!(r.buffered_bytes() <= 1 << 16);
            }
        }

        #[test]
        fn lossy_reordered_delivery_never_delivers_out_of_order(
            lens in proptest::collection::vec(0usize..5000, 1..20),
            drop_mask in any::<u64>(),
            swap in any::<u64>(),
        ) {
            let mut all = Vec::new();
            for (seq, len) in lens.iter().enumerate() {
                let (_, ds) = frags(Eye::Left, seq as u32, *len, 600);
                all.extend(ds);
            }
            // Drop some datagrams and swap some neighbours.
            let mut kept: Vec<_> = all.into_iter().enumerate().filter(|(i, _)| drop_mask >> (i % 64) & 1 == 0 || i % 3 != 0).map(|(_, d)| d).collect();
            for i in 1..kept.len() {
                if swap >> (i % 64) & 1 == 1 { kept.swap(i - 1, i); }
            }
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let mut last: Option<u32> = None;
            for (i, d) in kept.iter().enumerate() {
                if let Some(c) = r.insert_datagram(d, i as u64).unwrap().completed {
                    prop_assert!(last.is_none_or(|l| seq_newer(c.seq, l)));
                    prop_assert_eq!(c.timing.frame_no, c.seq as u64);
                    last = Some(c.seq);
                }
            }
        }
    }
}
