//! The WHEP offer path as a stranger reaches it: any bytes as an SDP offer into
//! `accept_offer` (str0m's SDP parser and negotiation). It must answer or refuse, never let a
//! panic out: a panic inside the SDP stack is contained there (the offer is refused, 400), so
//! libFuzzer's abort-on-any-panic hook is replaced by the default one and only a panic that
//! escapes `accept_offer` ends the run. Seeds: Chromium's real offer, and the offers with an
//! fmtp line moved to each other payload type (which reach str0m's "Pt locked" panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pi_streamer::output::webrtc::viewer::{accept_offer, MediaAddr};

fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // Contained panics print nothing (thousands of them would drown the log).
        std::panic::set_hook(Box::new(|_| {}));
    });
    let Ok(offer) = std::str::from_utf8(data) else { return };
    let media = MediaAddr { udp_ports: None, announce_ip: None };
    // Ok: a session with its UDP socket (dropped at once); Err: refused in binoc's words.
    let _ = accept_offer(offer, "127.0.0.1".parse().unwrap(), media, 2_000_000);
});
