//! Splitting encoded frames into datagrams, and putting them back together.
//!
//! The [`Reassembler`] keeps, per eye, a few partially received frames. It delivers complete
//! frames in sequence order; a frame that cannot complete any more (a newer one completed first,
//! or it waited longer than its deadline) is reported lost. Its memory is bounded by a byte
//! budget and a cap on frames in flight, whatever a peer sends.

use crate::rules::fec::LossMeter;
use crate::wire::{
    parse_fragment, FragmentHeader, FrameTiming, Reader, ShardKind, WireError, FRAGMENT_HEADER_LEN,
    MAX_FRAGMENTS, MAX_PARITY,
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

/// How a frame went onto the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragmented {
    pub data: u16,
    pub parity: u16,
}

/// Cuts a frame into datagrams of at most `max_datagram` bytes each and calls `emit` for every
/// datagram in order. Returns the number of datagrams.
pub fn fragment_frame(
    frame: &OutgoingFrame<'_>,
    max_datagram: usize,
    emit: impl FnMut(Vec<u8>),
) -> Result<u16, WireError> {
    fragment_frame_with_parity(frame, max_datagram, |_| 0, emit).map(|f| f.data)
}

/// [`fragment_frame`] with forward error correction: `parity_for(data fragments)` says how
/// many Reed–Solomon parity fragments follow the data fragments (any `data` of the
/// `data + parity` rebuild the frame; at most `max(data, 4)`). Parity shards are a chunk long
/// rounded up to even; chunks are cut at most `max_datagram` rounded down to even, so no
/// datagram exceeds `max_datagram`.
pub fn fragment_frame_with_parity(
    frame: &OutgoingFrame<'_>,
    max_datagram: usize,
    parity_for: impl FnOnce(u16) -> u16,
    mut emit: impl FnMut(Vec<u8>),
) -> Result<Fragmented, WireError> {
    if max_datagram <= FRAGMENT_HEADER_LEN + 1 {
        return Err(WireError::Invalid {
            field: "max_datagram",
            why: "no room for payload",
        });
    }
    // One byte kept for a parity shard's padding to an even size.
    let max_chunk = (max_datagram - FRAGMENT_HEADER_LEN) & !1;
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
    let frame_len = u32::try_from(len).map_err(|_| WireError::Invalid {
        field: "frame",
        why: "too long",
    })?;
    let mut header = FragmentHeader::data(
        frame.eye,
        frame.keyframe,
        0,
        count as u16,
        frame.seq,
        frame_len,
    );
    // The wire's bound: never more parity than max(data, 4).
    header.parity = parity_for(count as u16)
        .min((count as u16).max(4))
        .min(MAX_PARITY);
    header.validate()?;
    let parity = if header.parity > 0 {
        match parity_shards(&header, &blob) {
            Some(p) => p,
            None => {
                header.parity = 0;
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    for index in 0..count as u16 {
        let h = FragmentHeader { index, ..header };
        let range = h.range();
        let mut d = Vec::with_capacity(FRAGMENT_HEADER_LEN + range.len());
        h.write(&mut d);
        d.extend_from_slice(&blob[range]);
        emit(d);
    }
    for (index, shard) in parity.iter().enumerate() {
        let h = FragmentHeader {
            kind: ShardKind::Parity,
            index: index as u16,
            ..header
        };
        let mut d = Vec::with_capacity(FRAGMENT_HEADER_LEN + shard.len());
        h.write(&mut d);
        d.extend_from_slice(shard);
        emit(d);
    }
    Ok(Fragmented {
        data: header.count,
        parity: header.parity,
    })
}

/// The frame's chunks, each zero-padded to the shard size.
fn padded_chunks(h: &FragmentHeader, blob: &[u8]) -> Vec<u8> {
    let (chunk, shard) = (h.chunk_len() as usize, h.shard_len());
    let mut padded = vec![0u8; shard * usize::from(h.count)];
    for i in 0..h.count {
        let r = FragmentHeader::chunk_range(chunk, blob.len(), i);
        let at = shard * usize::from(i);
        padded[at..at + r.len()].copy_from_slice(&blob[r]);
    }
    padded
}

/// Reed–Solomon parity over the frame's chunks (`None` if the code cannot take the counts).
fn parity_shards(h: &FragmentHeader, blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    let padded = padded_chunks(h, blob);
    reed_solomon_simd::encode(
        usize::from(h.count),
        usize::from(h.parity),
        padded.chunks(h.shard_len()),
    )
    .ok()
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
    /// Data fragments rebuilt from parity (0: every chunk arrived).
    pub repaired_fragments: u16,
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
    /// How long a complete slice waits for the units before it (reordered on the link, or
    /// still missing fragments) before those are declared lost and it is delivered. Units
    /// are delivered in sequence order; the slices of one picture leave within a millisecond
    /// of each other, so a link that reorders at all reorders them. One frame interval: what
    /// a whole-frame stream tolerates, where the next picture's completion declares the one
    /// before lost (whole pictures never wait).
    pub reorder_ns: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            // Units: four pictures of up to eight slices.
            max_partial_frames: 32,
            max_partial_bytes: 8 * 1024 * 1024,
            max_wait_ns: 100_000_000,
            reorder_ns: 16_666_667,
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
    /// Partial frames whose missing fragments were asked for again.
    pub nacks: u64,
    /// Frames completed by rebuilding missing chunks from parity, and the chunks rebuilt.
    pub repaired: u64,
    pub repaired_fragments: u64,
    /// Parity fragments that arrived after their frame was complete (or delivered without
    /// them): the overhead that was not needed.
    pub unused_parity: u64,
    /// The link's datagram loss as the headers announce it (see [`LossMeter`]).
    pub datagrams_expected: u64,
    pub datagrams_counted: u64,
}

/// What one inserted datagram led to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Insertion {
    /// Units delivered, in sequence order: this datagram's, if it completed one whose
    /// predecessors are all in (or given up), and any that waited for it.
    pub completed: Vec<CompletedFrame>,
    /// Sequence numbers declared lost as a result.
    pub lost: Vec<u32>,
}

/// What [`Reassembler::expire`] gave up on, and what it delivered as a result.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub lost: Vec<(Eye, u32)>,
    pub completed: Vec<CompletedFrame>,
}

struct Partial {
    header: FragmentHeader,
    blob: Vec<u8>,
    have: Vec<bool>,
    received: u16,
    /// Parity shards received (index, shard).
    parity: Vec<(u16, Vec<u8>)>,
    /// Whether the missing fragments have been asked for ([`Reassembler::nacks`]).
    nacked: bool,
    first_byte_ns: Nanos,
    last_byte_ns: Nanos,
}

impl Partial {
    /// Bytes this partial frame may come to hold (its blob and every parity shard).
    fn budget(h: &FragmentHeader) -> usize {
        h.frame_len as usize + usize::from(h.parity) * h.shard_len()
    }
}

/// `a` is newer than `b` in wrapping sequence-number space.
pub fn seq_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Rebuilds a partial frame's missing chunks from its parity shards (it holds at least
/// `count` shards in all). False if the code refuses them.
fn repair(p: &mut Partial) -> bool {
    let h = p.header;
    let (chunk, shard) = (h.chunk_len() as usize, h.shard_len());
    let padded = padded_chunks(&h, &p.blob);
    let originals = (0..h.count)
        .filter(|&i| p.have[usize::from(i)])
        .map(|i| (usize::from(i), &padded[shard * usize::from(i)..][..shard]));
    let recovery = p
        .parity
        .iter()
        .map(|(i, s)| (usize::from(*i), s.as_slice()));
    let Ok(restored) = reed_solomon_simd::decode(
        usize::from(h.count),
        usize::from(h.parity),
        originals,
        recovery,
    ) else {
        return false;
    };
    for (i, data) in restored {
        let Ok(i) = u16::try_from(i) else {
            return false;
        };
        let r = FragmentHeader::chunk_range(chunk, p.blob.len(), i);
        if i >= h.count || data.len() < r.len() {
            return false;
        }
        p.blob[r.clone()].copy_from_slice(&data[..r.len()]);
        p.have[usize::from(i)] = true;
    }
    p.have.iter().all(|&x| x)
}

#[derive(Default)]
struct EyeState {
    partials: Vec<Partial>,
    /// Complete units waiting for the units before them, with when they completed.
    held: Vec<(CompletedFrame, Nanos)>,
    meter: LossMeter,
    /// Highest sequence number delivered or declared lost: anything at or below is stale.
    floor: Option<u32>,
    stats: ReassemblyStats,
}

impl EyeState {
    fn partial_bytes(&self) -> usize {
        self.partials
            .iter()
            .map(|p| Partial::budget(&p.header))
            .sum()
    }

    fn held_bytes(&self) -> usize {
        self.held.iter().map(|(c, _)| c.bitstream.len()).sum()
    }

    fn is_stale(&self, seq: u32) -> bool {
        self.floor.is_some_and(|f| !seq_newer(seq, f))
    }

    fn raise_floor(&mut self, seq: u32) {
        if self.floor.is_none_or(|f| seq_newer(seq, f)) {
            self.floor = Some(seq);
        }
    }

    /// Delivers the held units whose turn it is at `now`, in sequence order: the next one in
    /// sequence at once (or the first ever, with nothing older partial), any other once it
    /// has waited `reorder_ns` — then whatever is older is lost.
    fn release(
        &mut self,
        now: Nanos,
        limits: &ReassemblyLimits,
        out: &mut Vec<CompletedFrame>,
        lost: &mut Vec<u32>,
    ) {
        loop {
            // Held units count against the same budget as partial ones: past it, the oldest
            // goes out without waiting.
            let over = self.held.len() > limits.max_partial_frames
                || self.held_bytes() + self.partial_bytes() > limits.max_partial_bytes;
            let Some(i) = (0..self.held.len()).min_by(|&a, &b| {
                if seq_newer(self.held[a].0.seq, self.held[b].0.seq) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            }) else {
                return;
            };
            let (seq, ready) = (self.held[i].0.seq, self.held[i].1);
            let next = match self.floor {
                Some(f) => f.wrapping_add(1) == seq,
                None => !self.partials.iter().any(|p| seq_newer(seq, p.header.seq)),
            };
            // Only a slice waits: a whole picture goes out at once, losing whatever older is
            // still partial (a whole-frame stream's rule since version 1: the next picture's
            // arrival is the verdict on the one before).
            let wait = if self.held[i].0.timing.slice.count > 1 {
                limits.reorder_ns
            } else {
                0
            };
            if !next {
                if !over && now.saturating_sub(ready) < wait {
                    return;
                }
                self.lose_older_than(seq, lost);
            }
            let (c, _) = self.held.swap_remove(i);
            self.raise_floor(seq);
            out.push(c);
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
        let st = &self.eyes[eye.index()];
        let (expected, counted) = st.meter.totals();
        ReassemblyStats {
            datagrams_expected: expected,
            datagrams_counted: counted,
            ..st.stats
        }
    }

    /// Datagrams that did not parse at all (so belong to no eye).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Bytes currently held in partial frames and in complete units waiting for their turn,
    /// over both eyes.
    pub fn buffered_bytes(&self) -> usize {
        self.eyes
            .iter()
            .map(|e| e.partial_bytes() + e.held_bytes())
            .sum()
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

    /// Inserts one already-parsed fragment (data or parity).
    pub fn insert(&mut self, h: FragmentHeader, payload: &[u8], now: Nanos) -> Insertion {
        let limits = self.limits;
        let st = &mut self.eyes[h.eye.index()];
        let mut out = Insertion::default();
        st.stats.datagrams += 1;
        st.stats.bytes += payload.len() as u64;
        let slot = match h.kind {
            ShardKind::Data => h.index,
            ShardKind::Parity => h.count + h.index,
        };
        if !h.retransmit {
            st.meter.on_datagram(h.seq, h.count + h.parity, slot);
        }
        if st.is_stale(h.seq) {
            if h.kind == ShardKind::Parity {
                st.stats.unused_parity += 1;
            } else {
                st.stats.stale += 1;
            }
            return out;
        }
        let pos = match st.partials.iter().position(|p| p.header.seq == h.seq) {
            Some(i) => {
                let p = &st.partials[i].header;
                if p.count != h.count
                    || p.parity != h.parity
                    || p.frame_len != h.frame_len
                    || p.keyframe != h.keyframe
                {
                    st.stats.inconsistent += 1;
                    return out;
                }
                i
            }
            None => {
                let budget = Partial::budget(&h);
                if budget > limits.max_partial_bytes {
                    st.stats.inconsistent += 1;
                    return out;
                }
                // Make room: by count, then by bytes, evicting the oldest partial frames.
                // Complete units waiting for their turn go out first if they are in the way.
                if st.held_bytes() + st.partial_bytes() + budget > limits.max_partial_bytes {
                    let mut forced = limits;
                    forced.max_partial_bytes = limits.max_partial_bytes.saturating_sub(budget);
                    st.release(now, &forced, &mut out.completed, &mut out.lost);
                }
                while st.partials.len() >= limits.max_partial_frames
                    || (!st.partials.is_empty()
                        && st.held_bytes() + st.partial_bytes() + budget > limits.max_partial_bytes)
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
                if st.is_stale(h.seq) {
                    st.stats.stale += 1;
                    return out;
                }
                st.partials.push(Partial {
                    header: FragmentHeader {
                        kind: ShardKind::Data,
                        index: 0,
                        ..h
                    },
                    blob: vec![0; h.frame_len as usize],
                    have: vec![false; h.count as usize],
                    received: 0,
                    parity: Vec::new(),
                    nacked: false,
                    first_byte_ns: now,
                    last_byte_ns: now,
                });
                st.partials.len() - 1
            }
        };
        let p = &mut st.partials[pos];
        match h.kind {
            ShardKind::Data => {
                let idx = h.index as usize;
                if p.have[idx] {
                    st.stats.duplicates += 1;
                    return out;
                }
                p.have[idx] = true;
                p.received += 1;
                p.blob[h.range()].copy_from_slice(payload);
            }
            ShardKind::Parity => {
                if p.parity.iter().any(|(i, _)| *i == h.index) {
                    st.stats.duplicates += 1;
                    return out;
                }
                p.parity.push((h.index, payload.to_vec()));
            }
        }
        p.last_byte_ns = now;
        let have = usize::from(p.received) + p.parity.len();
        if have < usize::from(p.header.count) {
            return out;
        }
        let mut p = st.partials.swap_remove(pos);
        let seq = p.header.seq;
        let missing = p.header.count - p.received;
        if missing > 0 {
            if !repair(&mut p) {
                st.stats.inconsistent += 1;
                st.stats.lost += 1;
                out.lost.push(seq);
                st.raise_floor(seq);
                st.release(now, &limits, &mut out.completed, &mut out.lost);
                return out;
            }
            st.stats.repaired += 1;
            st.stats.repaired_fragments += u64::from(missing);
        }
        // Parity that came but was not needed, and the shards still on their way (counted as
        // they arrive, stale).
        st.stats.unused_parity += p.parity.len().saturating_sub(usize::from(missing)) as u64;
        let mut r = Reader::new(&p.blob);
        let timing = match FrameTiming::parse(&mut r) {
            Ok(t) if t.encoded_len as usize == r.remaining() => t,
            _ => {
                st.stats.inconsistent += 1;
                st.stats.lost += 1;
                out.lost.push(seq);
                st.raise_floor(seq);
                st.release(now, &limits, &mut out.completed, &mut out.lost);
                return out;
            }
        };
        st.stats.completed += 1;
        let mut blob = p.blob;
        blob.drain(..FrameTiming::LEN);
        let unit = CompletedFrame {
            eye: h.eye,
            seq,
            keyframe: p.header.keyframe,
            timing,
            bitstream: blob,
            first_byte_ns: p.first_byte_ns,
            last_byte_ns: p.last_byte_ns,
            fragments: p.header.count,
            repaired_fragments: missing,
        };
        st.held.push((unit, now));
        st.release(now, &limits, &mut out.completed, &mut out.lost);
        out
    }

    /// The requests for missing fragments due at `now` ([`crate::rules::retransmit`]): for
    /// each partial frame without a fragment for `wait_ns` that lacks more than its parity can
    /// make up, once, that many of its missing data fragments.
    pub fn nacks(&mut self, now: Nanos, wait_ns: Nanos) -> Vec<(Eye, u32, Vec<u16>)> {
        let mut out = Vec::new();
        for eye in Eye::BOTH {
            let st = &mut self.eyes[eye.index()];
            for p in &mut st.partials {
                if p.nacked || now.saturating_sub(p.last_byte_ns) < wait_ns {
                    continue;
                }
                let have = usize::from(p.received) + p.parity.len();
                let need = usize::from(p.header.count).saturating_sub(have);
                if need == 0 {
                    continue;
                }
                let missing: Vec<u16> = (0..p.header.count)
                    .filter(|&i| !p.have[usize::from(i)])
                    .take(need.min(crate::wire::MAX_NACK))
                    .collect();
                p.nacked = true;
                st.stats.nacks += 1;
                out.push((eye, p.header.seq, missing));
            }
        }
        out
    }

    /// Declares lost every partial frame that has waited longer than the limit, and delivers
    /// the complete units that waited long enough for the ones before them. Call it
    /// periodically (e.g. every few milliseconds) with the receiver's clock.
    pub fn expire(&mut self, now: Nanos) -> Expired {
        let (max_wait, limits) = (self.limits.max_wait_ns, self.limits);
        let mut lost = Vec::new();
        let mut completed = Vec::new();
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
            let mut also = Vec::new();
            st.release(now, &limits, &mut completed, &mut also);
            lost.extend(also.into_iter().map(|s| (eye, s)));
        }
        Expired { lost, completed }
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
            slice: Default::default(),
        }
    }

    fn frags(eye: Eye, seq: u32, len: usize, mtu: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        frags_of(eye, seq, len, mtu, crate::wire::SliceOf::WHOLE)
    }

    /// Slice `seq % 4` of a picture of 4.
    fn slice_frags(eye: Eye, seq: u32, len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        frags_of(
            eye,
            seq,
            len,
            1200,
            crate::wire::SliceOf::of((seq % 4) as u8, 4),
        )
    }

    fn frags_of(
        eye: Eye,
        seq: u32,
        len: usize,
        mtu: usize,
        slice: crate::wire::SliceOf,
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let bitstream: Vec<u8> = (0..len).map(|i| (i * 7 + seq as usize) as u8).collect();
        let mut out = Vec::new();
        let f = OutgoingFrame {
            eye,
            seq,
            keyframe: seq == 0,
            timing: FrameTiming {
                slice,
                ..timing(seq as u64)
            },
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
                    assert!(ins.completed.is_empty());
                } else {
                    let c = ins.completed.into_iter().next().unwrap();
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

    fn frags_with_parity(seq: u32, len: usize, parity: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
        let bitstream: Vec<u8> = (0..len).map(|i| (i * 13 + seq as usize) as u8).collect();
        let mut out = Vec::new();
        let f = OutgoingFrame {
            eye: Eye::Left,
            seq,
            keyframe: false,
            timing: timing(seq as u64),
            bitstream: &bitstream,
        };
        let done = fragment_frame_with_parity(&f, 1200, |_| parity, |d| out.push(d)).unwrap();
        // The wire's bound: never more parity than max(data, 4).
        assert_eq!(done.parity, parity.min(done.data.max(4)));
        assert_eq!(out.len(), usize::from(done.data + done.parity));
        (bitstream, out)
    }

    #[test]
    fn any_count_of_data_and_parity_rebuilds_the_frame() {
        // 5 data fragments (the last short, odd-sized) + 3 parity: every way of losing 3.
        let len = 4 * 1180 + 333 - FrameTiming::LEN;
        let (bits, ds) = frags_with_parity(7, len, 3);
        assert_eq!(ds.len(), 8);
        assert!(ds.iter().all(|d| d.len() <= 1200));
        for lost in 0u32..256 {
            if lost.count_ones() > 3 {
                continue;
            }
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let mut done = None;
            for (i, d) in ds.iter().enumerate() {
                if lost >> i & 1 == 0 {
                    if let Some(c) = r.insert_datagram(d, i as u64).unwrap().completed.pop() {
                        assert!(done.is_none(), "delivered twice");
                        done = Some(c);
                    }
                }
            }
            let c = done.unwrap_or_else(|| panic!("lost {lost:08b}: not rebuilt"));
            assert_eq!(c.bitstream, bits, "lost {lost:08b}");
            let data_lost = (lost & 0b11111).count_ones() as u16;
            assert_eq!(c.repaired_fragments, data_lost);
            assert_eq!(r.stats(Eye::Left).repaired, u64::from(data_lost > 0));
        }
        // Four lost of eight: not enough left; the frame expires, nothing is delivered.
        let mut r = Reassembler::new(ReassemblyLimits::default());
        for d in &ds[4..] {
            assert!(r.insert_datagram(d, 0).unwrap().completed.is_empty());
        }
        assert_eq!(r.expire(u64::MAX).lost, vec![(Eye::Left, 7)]);
    }

    #[test]
    fn a_frame_short_of_its_parity_asks_once_for_what_is_missing() {
        let (bits, ds) = frags_with_parity(4, 5 * 1180 - FrameTiming::LEN, 1); // 5 data + 1
        let mut r = Reassembler::new(ReassemblyLimits::default());
        // Data 1 and 3 lost: one more than the parity makes up.
        for (i, d) in ds.iter().enumerate() {
            if i != 1 && i != 3 {
                assert!(r.insert_datagram(d, 10).unwrap().completed.is_empty());
            }
        }
        assert!(r.nacks(12, 5).is_empty(), "its burst may not be over");
        assert_eq!(r.nacks(15, 5), vec![(Eye::Left, 4, vec![1])]);
        assert!(r.nacks(30, 5).is_empty(), "asked once");
        // The one fragment sent again completes it (parity makes up the other).
        let c = r
            .insert_datagram(&ds[1], 20)
            .unwrap()
            .completed
            .pop()
            .unwrap();
        assert_eq!(c.bitstream, bits);
        assert_eq!(r.stats(Eye::Left).nacks, 1);
        // Its parity never came: the missing data is asked for (one fragment, as one is short).
        let (_, ds) = frags_with_parity(5, 3000, 1);
        r.insert_datagram(&ds[1], 40).unwrap();
        r.insert_datagram(&ds[2], 40).unwrap();
        assert_eq!(r.nacks(100, 5), vec![(Eye::Left, 5, vec![0])]);
    }

    #[test]
    fn parity_datagrams_are_never_longer_than_the_limit() {
        for len in [1usize, 2, 3, 1131, 1133, 5000, 70_001] {
            let (_, ds) = frags_with_parity(1, len, 1);
            assert!(ds.iter().all(|d| d.len() <= 1200), "{len}");
        }
    }

    #[test]
    fn the_meter_counts_what_arrived_of_what_was_announced() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        for seq in 0..40 {
            let (_, ds) = frags_with_parity(seq, 3000, 2); // 3 data + 2 parity
            for (i, d) in ds.iter().enumerate() {
                if i != 1 {
                    r.insert_datagram(d, u64::from(seq)).unwrap();
                }
            }
        }
        let s = r.stats(Eye::Left);
        assert_eq!(s.completed, 40);
        assert_eq!(s.repaired, 40);
        // The frames that left the meter's window: 5 announced, 4 arrived.
        assert!(s.datagrams_expected >= 5 * 30, "{s:?}");
        assert_eq!(s.datagrams_counted * 5, s.datagrams_expected * 4);
        // The second parity shard of each frame was not needed.
        assert_eq!(s.unused_parity, 40);
    }

    #[test]
    fn a_corrupted_parity_shard_never_yields_a_frame_that_does_not_parse() {
        let (_, mut ds) = frags_with_parity(3, 3000, 1);
        let last = ds.len() - 1;
        for b in &mut ds[last][FRAGMENT_HEADER_LEN..] {
            *b ^= 0x5a;
        }
        let mut r = Reassembler::new(ReassemblyLimits::default());
        // Chunk 0 (the timing block) lost, rebuilt from a garbage shard.
        for d in &ds[1..] {
            if let Some(c) = r.insert_datagram(d, 0).unwrap().completed.pop() {
                panic!("a garbage rebuild was delivered: {:?}", c.timing);
            }
        }
        assert_eq!(r.stats(Eye::Left).lost, 1);
    }

    #[test]
    fn newer_complete_frame_declares_older_partial_lost() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let (_, a) = frags(Eye::Left, 1, 3000, 1200);
        let (_, b) = frags(Eye::Left, 2, 100, 1200);
        r.insert_datagram(&a[0], 1).unwrap();
        let ins = r.insert_datagram(&b[0], 2).unwrap();
        assert_eq!(
            ins.completed.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(ins.lost, vec![1]);
        // A late fragment of frame 1 is stale now, and counted.
        let ins = r.insert_datagram(&a[1], 3).unwrap();
        assert_eq!(ins, Insertion::default());
        assert_eq!(r.stats(Eye::Left).stale, 1);
        assert_eq!(r.stats(Eye::Left).lost, 1);
    }

    #[test]
    fn a_newer_complete_slice_waits_its_reorder_time_then_declares_the_older_partial_lost() {
        let mut r = Reassembler::new(ReassemblyLimits {
            reorder_ns: 100,
            ..Default::default()
        });
        let (_, a) = slice_frags(Eye::Left, 1, 3000);
        let (_, b) = slice_frags(Eye::Left, 2, 100);
        r.insert_datagram(&a[0], 1).unwrap();
        let ins = r.insert_datagram(&b[0], 2).unwrap();
        assert!(ins.completed.is_empty(), "unit 1 may still come");
        assert!(r.expire(50).completed.is_empty());
        let e = r.expire(102);
        assert_eq!(
            e.completed.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(e.lost, vec![(Eye::Left, 1)]);
        // A late fragment of frame 1 is stale now, and counted.
        let ins = r.insert_datagram(&a[1], 103).unwrap();
        assert_eq!(ins, Insertion::default());
        assert_eq!(r.stats(Eye::Left).stale, 1);
        assert_eq!(r.stats(Eye::Left).lost, 1);
        // The other eye is independent.
        let (_, c) = frags(Eye::Right, 1, 10, 1200);
        assert_eq!(r.insert_datagram(&c[0], 104).unwrap().completed.len(), 1);
    }

    #[test]
    fn slices_completed_out_of_order_are_delivered_in_order() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let (_, a) = slice_frags(Eye::Left, 10, 100);
        let (_, b) = slice_frags(Eye::Left, 11, 3000);
        let (_, c) = slice_frags(Eye::Left, 12, 100);
        let (_, d) = slice_frags(Eye::Left, 13, 100);
        assert_eq!(r.insert_datagram(&a[0], 0).unwrap().completed.len(), 1);
        // 12 and 13 complete while 11 lacks a fragment, and 11's first fragment came late.
        assert!(r.insert_datagram(&c[0], 1).unwrap().completed.is_empty());
        let last = b.len() - 1;
        for f in &b[..last] {
            r.insert_datagram(f, 2).unwrap();
        }
        assert!(r.insert_datagram(&d[0], 3).unwrap().completed.is_empty());
        let ins = r.insert_datagram(&b[last], 4).unwrap();
        let seqs: Vec<u32> = ins.completed.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![11, 12, 13]);
        assert!(ins.lost.is_empty());
        // A unit that never shows: the next waits its reorder time, then goes on.
        let (_, f) = slice_frags(Eye::Left, 15, 100);
        assert!(r.insert_datagram(&f[0], 10).unwrap().completed.is_empty());
        let e = r.expire(10 + ReassemblyLimits::default().reorder_ns);
        assert_eq!(
            e.completed.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![15]
        );
        assert_eq!(
            r.stats(Eye::Left).lost,
            0,
            "14 was never seen: a gap, not a partial"
        );
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
        assert!(r.expire(40).lost.is_empty());
        assert_eq!(r.expire(51).lost, vec![(Eye::Left, 9)]);
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
        let h = FragmentHeader::data(Eye::Left, false, 0, 1, 0, 60);
        let mut d = Vec::new();
        h.write(&mut d);
        d.extend_from_slice(&[0xff; 60]);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let ins = r.insert_datagram(&d, 0).unwrap();
        assert!(ins.completed.is_empty());
        assert_eq!(ins.lost, vec![0]);
    }

    #[test]
    fn memory_stays_within_budget_under_hostile_headers() {
        let limits = ReassemblyLimits {
            max_partial_frames: 4,
            max_partial_bytes: 1 << 20,
            max_wait_ns: u64::MAX,
            reorder_ns: u64::MAX,
        };
        let mut r = Reassembler::new(limits);
        for seq in 0..1000u32 {
            // Claims of huge frames, one fragment each, never completed.
            let h = FragmentHeader::data(Eye::Left, false, 0, 1000, seq, 400_000);
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
        fn parity_rebuilds_whatever_is_lost_up_to_its_count(
            len in 1usize..20_000,
            parity in 0u16..6,
            drop_mask in any::<u32>(),
        ) {
            let (bits, ds) = frags_with_parity(1, len, parity);
            let parity = ds.iter().filter(|d| d[3] == crate::wire::TYPE_PARITY_FRAGMENT).count();
            let n = ds.len().min(32);
            let lost = (0..n).filter(|i| drop_mask >> i & 1 == 1).count();
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let mut got = None;
            for (i, d) in ds.iter().enumerate() {
                if i >= 32 || drop_mask >> i & 1 == 0 {
                    if let Some(c) = r.insert_datagram(d, 0).unwrap().completed.pop() {
                        got = Some(c);
                    }
                }
            }
            if lost <= parity {
                prop_assert_eq!(got.map(|c| c.bitstream), Some(bits));
            } else if let Some(c) = got {
                // Enough survived anyway (the lost ones were parity): still exact.
                prop_assert_eq!(c.bitstream, bits);
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
            let mut r = Reassembler::new(ReassemblyLimits { reorder_ns: 5, ..Default::default() });
            let mut last: Option<u32> = None;
            let mut delivered = Vec::new();
            for (i, d) in kept.iter().enumerate() {
                delivered.extend(r.insert_datagram(d, i as u64).unwrap().completed);
                delivered.extend(r.expire(i as u64).completed);
            }
            delivered.extend(r.expire(u64::MAX).completed);
            for c in delivered {
                prop_assert!(last.is_none_or(|l| seq_newer(c.seq, l)));
                prop_assert_eq!(c.timing.frame_no, c.seq as u64);
                last = Some(c.seq);
            }
        }
    }
}
