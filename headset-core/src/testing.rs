//! Test support: the units the tests hand to the decode queue and the decoder thread.

use shared_proto::fragment::CompletedFrame;
use shared_proto::wire::FrameTiming;
use shared_proto::Eye;

/// A whole picture of the left eye, sequence number and frame number `seq`, all times 0.
pub(crate) fn unit(seq: u32, bitstream: Vec<u8>, keyframe: bool) -> CompletedFrame {
    CompletedFrame {
        eye: Eye::Left,
        seq,
        keyframe,
        timing: FrameTiming {
            frame_no: u64::from(seq),
            capture_ns: 0,
            encode_start_ns: 0,
            encode_end_ns: 0,
            send_ns: 0,
            encoded_len: bitstream.len() as u32,
            slice: Default::default(),
        },
        bitstream,
        first_byte_ns: 0,
        last_byte_ns: 0,
        repaired_fragments: 0,
        fragments: 1,
    }
}
