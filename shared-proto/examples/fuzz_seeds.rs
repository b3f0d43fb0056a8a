//! Writes the fuzz targets' seed corpora (`shared-proto/fuzz/seeds/<target>/`): every message
//! kind as it is really sent, so the fuzzers start from valid input and mutate from there.
//!
//! `cargo run -p shared-proto --example fuzz_seeds -- shared-proto/fuzz/seeds`

use shared_proto::rules::handshake;
use shared_proto::rules::pairing::{Fingerprints, PairMsg, StreamerPairing};
use shared_proto::wire::{
    FrameMarker, KeyframeReason, LinkStatus, Message, StreamInfo, ToHeadset, ToStreamer,
};
use shared_proto::Eye;

fn framed<M: Message>(msgs: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode_framed(&mut out);
    }
    out
}

fn main() -> std::io::Result<()> {
    let root = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "shared-proto/fuzz/seeds".into()),
    );
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };
    let stream = |eye| StreamInfo {
        eye,
        width: 1280,
        height: 720,
        fps_milli: 60_000,
        pixel_code: true,
    };
    let to_headset = [
        handshake::hello(vec![stream(Eye::Left), stream(Eye::Right)]),
        ToHeadset::Ping { id: 7, t0: 1_000 },
        ToHeadset::ClockEstimate(Default::default()),
        ToHeadset::LinkStatus(LinkStatus::default()),
        ToHeadset::Bye {
            reason: "done".into(),
        },
    ];
    let marker = FrameMarker {
        eye: Eye::Right,
        seq: 9,
        frame_no: 9,
        pixel_code: Some((Eye::Right, 9)),
        first_byte_ns: 10,
        last_byte_ns: 20,
        decoded_ns: 30,
        presented_ns: Some(40),
        display_ns: Some(50),
    };
    let to_streamer = [
        ToStreamer::HelloAck { version: 4 },
        ToStreamer::Reject {
            reason: "no".into(),
        },
        ToStreamer::KeyframeRequest {
            eye: Eye::Left,
            reason: KeyframeReason::ReferenceLost,
        },
        ToStreamer::Pong {
            id: 7,
            t0: 1_000,
            t1: 2_000,
            t2: 2_100,
        },
        ToStreamer::Marker(marker),
        ToStreamer::Stats {
            eye: Eye::Left,
            stats: Default::default(),
        },
        ToStreamer::Nack {
            eye: Eye::Left,
            seq: 3,
            missing: vec![1, 4, 9],
        },
        ToStreamer::Bye {
            reason: "bye".into(),
        },
    ];
    // The first byte of a control seed is the chunk size the stream delivers.
    for chunk in [1u8, 7, 255] {
        let mut s = vec![chunk];
        s.extend(framed(&to_headset));
        write("control", &format!("to-headset-{chunk}"), &s)?;
        let mut s = vec![chunk];
        s.extend(framed(&to_streamer));
        write("control", &format!("to-streamer-{chunk}"), &s)?;
    }
    let fps = Fingerprints {
        streamer: "aa".repeat(32),
        headset: "bb".repeat(32),
    };
    let (_, first) = StreamerPairing::start("123456", fps);
    let mut s = vec![16u8];
    first.encode(&mut s);
    PairMsg::Confirm(vec![0; 32]).encode(&mut s);
    write("pairing", "spake-then-confirm", &s)?;
    let mut s = vec![255u8];
    PairMsg::Refused("wrong pairing code".into()).encode(&mut s);
    write("pairing", "refused", &s)?;
    for (name, json) in [
        (
            "pong",
            r#"{"t":"pong","id":3,"t0":1000,"t1":12.5,"t2":12.75}"#,
        ),
        (
            "marker",
            r#"{"t":"m","eye":1,"rtp":90000,"code":[1,42],"recv":100.5,"pres":101.0,"disp":111.1}"#,
        ),
        (
            "marker-headless",
            r#"{"t":"m","eye":0,"rtp":1,"code":null,"recv":1.0,"pres":2.0}"#,
        ),
    ] {
        let mut s = vec![1u8];
        s.extend_from_slice(json.as_bytes());
        write("browser", name, &s)?;
    }
    Ok(())
}
