//! The control stream's framing, both directions, fed in chunks as a QUIC stream delivers
//! them: the first byte picks the chunk size. Beyond "no panic": a decoder never holds more
//! than one message's worth of bytes, and anything it yields re-encodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_proto::wire::{ControlDecoder, Message, ToHeadset, ToStreamer, MAX_CONTROL_LEN};

fn feed<M: Message + PartialEq + std::fmt::Debug>(chunk: usize, bytes: &[u8]) {
    let mut d = ControlDecoder::<M>::new();
    for piece in bytes.chunks(chunk) {
        d.push(piece);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let mut again = Vec::new();
                    m.encode_framed(&mut again);
                    let mut d2 = ControlDecoder::<M>::new();
                    d2.push(&again);
                    assert_eq!(d2.next_message().ok().flatten().as_ref(), Some(&m));
                }
                Ok(None) => break,
                Err(_) => return, // framing lost: the connection closes
            }
        }
        assert!(d.buffered() <= MAX_CONTROL_LEN as usize + 16 + piece.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, rest)) = data.split_first() else { return };
    let chunk = usize::from(c).max(1);
    feed::<ToHeadset>(chunk, rest);
    feed::<ToStreamer>(chunk, rest);
});
