//! The browser's DataChannel messages (JSON: pongs and markers): any bytes parse to a message
//! or an error, never a panic, and a parsed message carries only times the streamer can use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_proto::browser::{parse, BrowserMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&r, rest)) = data.split_first() else { return };
    let received = u64::from(r) << 40;
    match parse(rest, received) {
        Ok(BrowserMessage::Pong { sample, .. }) => assert!(sample.t2 >= sample.t1),
        Ok(BrowserMessage::Marker(m)) => {
            let _ = m.to_frame_marker(1, 1);
        }
        Err(_) => {}
    }
});
