//! Pairing messages as a stranger sends them to a pairing headset: the framing
//! (`PairDecoder`, fed in chunks) and the headset's state machine on whatever parses. Beyond
//! "no panic": the decoder's buffer stays bounded, and no input pairs without the code (a
//! random 32-byte proof can never pass the HMAC check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_proto::rules::pairing::{Fingerprints, HeadsetPairing, PairDecoder, Step};

fuzz_target!(|data: &[u8]| {
    let Some((&c, rest)) = data.split_first() else { return };
    let chunk = usize::from(c).max(1);
    let fps = Fingerprints { streamer: "aa".repeat(32), headset: "bb".repeat(32) };
    let mut headset = HeadsetPairing::new("123456", fps);
    let mut d = PairDecoder::default();
    for piece in rest.chunks(chunk) {
        if d.push(piece).is_err() {
            return;
        }
        loop {
            match d.next_message() {
                Ok(Some(m)) => match headset.on_message(m) {
                    Ok(Step::Paired { .. }) => panic!("paired without the code"),
                    Ok(Step::Send(_)) => {}
                    Err(_) => return,
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
