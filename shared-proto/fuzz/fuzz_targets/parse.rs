//! Every parser of untrusted input in shared-proto, driven by one input:
//! - the first byte picks the consumer;
//! - the rest is a datagram (or a series of them), a control byte stream, or pixels.
//!
//! Invariants checked beyond "no panic": the reassembler's memory stays within its budget, and
//! anything that parses re-encodes to something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_proto::fragment::{Reassembler, ReassemblyLimits};
use shared_proto::wire::{parse_fragment, ControlDecoder, Message, ToHeadset, ToStreamer};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Ok((h, chunk)) = parse_fragment(rest) {
                assert_eq!(chunk.len(), h.range().len());
            }
        }
        1 => {
            // A series of datagrams, each prefixed by a one-byte length.
            let limits = ReassemblyLimits { max_partial_bytes: 1 << 20, ..Default::default() };
            let mut r = Reassembler::new(limits);
            let mut i = 0;
            let mut now = 0;
            while i < rest.len() {
                let n = rest[i] as usize;
                let d = &rest[i + 1..(i + 1 + n).min(rest.len())];
                i += 1 + n;
                now += 1_000_000;
                let _ = r.insert_datagram(d, now);
                assert!(r.buffered_bytes() <= 2 << 20);
                if now % 7 == 0 {
                    r.expire(now);
                }
            }
        }
        2 => {
            // Both directions of the control stream, from the same bytes.
            control::<ToHeadset>(rest);
            control::<ToStreamer>(rest);
        }
        _ => {
            if rest.len() >= 2 {
                let w = (rest[0] as usize) * 2 + 2;
                let h = (rest[1] as usize) + 1;
                let _ = shared_proto::pixel_code::read(&rest[2..], w, w, h);
            }
        }
    }
});

/// Feeds a control byte stream in 7-byte reads; whatever decodes must re-encode to itself.
fn control<M: Message + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let mut d = ControlDecoder::<M>::new();
    for chunk in bytes.chunks(7) {
        d.push(chunk);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let mut buf = Vec::new();
                    m.encode_body(&mut buf);
                    assert_eq!(M::decode_body(&buf).as_ref(), Ok(&m));
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}
