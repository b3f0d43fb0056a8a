//! Whole pictures again, for outputs that take whole pictures only (WebRTC: one RTP frame per
//! picture). The encoder hands slices over as they are written; [`SliceJoiner`] puts each
//! eye's picture back together and drops a picture one of whose slices never came (the encoder
//! failed partway through it, and has asked itself for an IDR).

use shared_proto::wire::SliceOf;

use crate::pipeline::EncodedFrame;

#[derive(Default)]
struct Partial {
    frame: Option<EncodedFrame>,
    /// The next slice index this picture needs.
    next: u8,
    /// The picture whose first slice never came, already given its (missing) number.
    headless: Option<u64>,
}

/// Joins both eyes' slices into whole pictures, numbered per eye in their own sequence. Every
/// picture takes a number, whole or not, so a dropped picture is a gap its receivers see.
#[derive(Default)]
pub struct SliceJoiner {
    eyes: [Partial; 2],
    seq: [u32; 2],
}

impl SliceJoiner {
    /// Takes one slice; the whole picture once its last slice is in. A whole picture (slice 0
    /// of 1) passes through with its own sequence number.
    pub fn push(&mut self, f: &EncodedFrame) -> Option<EncodedFrame> {
        let i = f.eye.index();
        let p = &mut self.eyes[i];
        let s = f.timing.slice;
        if s.is_first() {
            let mut timing = f.timing;
            timing.slice = SliceOf {
                recovery: s.recovery,
                ..SliceOf::WHOLE
            };
            let seq = self.seq[i];
            self.seq[i] = seq.wrapping_add(1);
            p.frame = Some(EncodedFrame {
                eye: f.eye,
                seq,
                keyframe: f.keyframe,
                timing,
                data: f.data.clone(),
            });
            p.next = 1;
        } else {
            let same = p
                .frame
                .as_ref()
                .is_some_and(|w| w.timing.frame_no == f.timing.frame_no && p.next == s.index);
            if !same {
                // A slice of a picture whose start we do not have: it cannot be whole.
                let started = p.frame.take().map(|w| w.timing.frame_no);
                if started != Some(f.timing.frame_no) && p.headless != Some(f.timing.frame_no) {
                    self.seq[i] = self.seq[i].wrapping_add(1);
                    p.headless = Some(f.timing.frame_no);
                }
                return None;
            }
            let w = p.frame.as_mut()?;
            w.data.extend_from_slice(&f.data);
            w.timing.encode_end_ns = f.timing.encode_end_ns;
            w.timing.send_ns = f.timing.send_ns;
            p.next += 1;
        }
        if !s.is_last() {
            return None;
        }
        let mut whole = p.frame.take()?;
        whole.timing.encoded_len = whole.data.len() as u32;
        Some(whole)
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::wire::FrameTiming;
    use shared_proto::Eye;

    use super::*;

    fn slice(frame_no: u64, seq: u32, index: u8, count: u8) -> EncodedFrame {
        EncodedFrame {
            eye: Eye::Right,
            seq,
            keyframe: frame_no == 0,
            timing: FrameTiming {
                frame_no,
                encode_end_ns: u64::from(index) + 10,
                send_ns: u64::from(index) + 10,
                slice: SliceOf::of(index, count),
                ..Default::default()
            },
            data: vec![index; 3],
        }
    }

    #[test]
    fn slices_join_in_order_and_a_picture_missing_one_is_dropped() {
        let mut j = SliceJoiner::default();
        assert!(j.push(&slice(0, 0, 0, 3)).is_none());
        assert!(j.push(&slice(0, 1, 1, 3)).is_none());
        let w = j.push(&slice(0, 2, 2, 3)).expect("whole");
        assert_eq!(w.data, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
        assert_eq!((w.seq, w.keyframe, w.timing.encoded_len), (0, true, 9));
        assert_eq!(w.timing.slice, SliceOf::WHOLE);
        assert_eq!(w.timing.encode_end_ns, 12, "the last slice's end");
        // Picture 1 loses its middle slice: nothing comes out of it.
        assert!(j.push(&slice(1, 3, 0, 3)).is_none());
        assert!(j.push(&slice(1, 5, 2, 3)).is_none());
        // Picture 2 loses its first slice: nothing either.
        assert!(j.push(&slice(2, 7, 1, 3)).is_none());
        assert!(j.push(&slice(2, 8, 2, 3)).is_none());
        // Picture 3 arrives whole, numbered after both lost pictures: receivers see the gap.
        for i in 0..3 {
            let out = j.push(&slice(3, 9 + u32::from(i), i, 3));
            assert_eq!(out.is_some(), i == 2);
            if let Some(w) = out {
                assert_eq!(w.seq, 3);
            }
        }
        // Whole pictures pass straight through.
        let w = j.push(&slice(4, 12, 0, 1)).expect("whole");
        assert_eq!((w.seq, w.data.len()), (4, 3));
    }
}
