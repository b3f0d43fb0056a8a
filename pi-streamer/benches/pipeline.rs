//! The pipeline benchmark (a measurement, not a test): `cargo bench -p pi-streamer`.
//!
//! For each size it runs the full loopback path (both eyes, 60 fps, synthetic source, real
//! QUIC) and records capture→decoded latency, the per-stage breakdown, the overhead (total −
//! encode − decode per frame) and CPU time per frame; then it measures pure encode and pure
//! decode time per frame of the same frames on one otherwise idle thread (decode with every
//! software decoder the build has, alternated: a second table). It prints markdown tables (the
//! ones in docs/performance.md) and writes them to target/bench/pipeline.md.
//!
//! Environment: BINOC_BENCH_FRAMES (default 600 per eye), BINOC_BENCH_SIZES (default
//! "640x480,1280x720,1920x1080"), BINOC_BENCH_ENCODERS (default "auto"; e.g. "x264,openh264").

use std::fmt::Write as _;
use std::time::Instant;

use headset_core::decode;
use pi_streamer::config::{EncoderKind, Size, StreamerConfig};
use pi_streamer::encode;
use pi_streamer::source::test_pattern::TestPattern;
use pi_streamer::source::{EyeSource, EyeTransform};
use shared_proto::latency::Series;
use shared_proto::Eye;

struct Pure {
    encode: shared_proto::latency::Summary,
    /// With the default software decoder.
    decode: shared_proto::latency::Summary,
    /// Every software decoder this build has, on the same access units, in alternated passes.
    decode_by: Vec<(&'static str, shared_proto::latency::Summary)>,
    bytes_per_frame: f64,
}

/// Encode then decode `n` frames of the left eye's pattern, each step timed on its own.
fn pure_codec(cfg: &StreamerConfig, n: u64) -> Pure {
    let eye_cfg = cfg.eyes.get(Eye::Left);
    let mut enc = encode::open(&cfg.encoder, eye_cfg).unwrap();
    let (w, h) = (eye_cfg.size.width as usize, eye_cfg.size.height as usize);
    let mut src = TestPattern::new(Eye::Left, w, h);
    let t = EyeTransform::from_config(Eye::Left, eye_cfg);
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let mut f = src.next_frame(i).unwrap().unwrap();
            f.frame_no = i;
            t.apply(f).unwrap()
        })
        .collect();
    // Warm up the encoder (its first call initialises it).
    enc.encode(&frames[0], true).unwrap();
    let (mut es, mut aus, mut bytes) = (Series::default(), Vec::new(), 0usize);
    for (i, f) in frames.iter().enumerate() {
        let t0 = Instant::now();
        let pic = enc.encode(f, i == 0).unwrap();
        es.push(t0.elapsed().as_nanos() as i64);
        bytes += pic.data.len();
        aus.push(pic.data);
    }
    let kinds: Vec<decode::SoftwareDecoder> = decode::SoftwareDecoder::NAMES
        .iter()
        .map(|n| n.parse().unwrap())
        .filter(|k: &decode::SoftwareDecoder| k.check_available().is_ok())
        .collect();
    let mut series: Vec<Series> = kinds.iter().map(|_| Series::default()).collect();
    // Three passes, each decoder in turn (first, then last), so a slow moment of the machine
    // does not fall on one decoder only.
    for pass in 0..3 {
        for i in 0..kinds.len() {
            let k = if pass % 2 == 0 {
                i
            } else {
                kinds.len() - 1 - i
            };
            let mut dec = decode::open_software_kind(kinds[k]).unwrap();
            for au in &aus {
                let t0 = Instant::now();
                let got = dec.decode(au, &mut |_| {}).unwrap();
                series[k].push(t0.elapsed().as_nanos() as i64);
                assert!(got, "every access unit decodes to a picture");
            }
        }
    }
    let default = decode::SoftwareDecoder::default();
    let decode_by: Vec<_> = kinds
        .iter()
        .zip(&series)
        .map(|(k, s)| (k.name(), s.summary()))
        .collect();
    let ds = &series[kinds.iter().position(|k| *k == default).unwrap()];
    Pure {
        encode: es.summary(),
        decode: ds.summary(),
        decode_by,
        bytes_per_frame: bytes as f64 / n as f64,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let frames: u64 = std::env::var("BINOC_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let sizes =
        std::env::var("BINOC_BENCH_SIZES").unwrap_or_else(|_| "640x480,1280x720,1920x1080".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut table = String::new();
    writeln!(
        table,
        "| size | encoder | fps | frames/eye | decoded L/R | dropped L/R | latency p50 | p99 | overhead p50 | p99 | stage means: cap→enc / enc / queue / net / dec | CPU/frame | pure encode p50 | pure decode p50 | p50 − pure enc − pure dec | Mbit/s |"
    )
    .unwrap();
    writeln!(
        table,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .unwrap();
    // Pure decode per software decoder, same access units (the first table's pure decode is
    // the default decoder's).
    let mut decoders = String::from(
        "| size | encoder | decoder | pure decode p50 | p99 | mean |\n|---|---|---|---|---|---|\n",
    );
    let encoders = std::env::var("BINOC_BENCH_ENCODERS").unwrap_or_else(|_| "auto".into());
    for (size, encoder) in sizes
        .split(',')
        .flat_map(|s| encoders.split(',').map(move |e| (s, e)))
    {
        let size: Size = size.parse().unwrap();
        let mut cfg = StreamerConfig::embedded();
        cfg.encoder.kind = match encoder {
            "x264" => EncoderKind::X264,
            "openh264" => EncoderKind::Openh264,
            _ => EncoderKind::Auto,
        };
        let encoder = encode::kind_name(encode::resolve(&cfg.encoder).0);
        for eye in Eye::BOTH {
            let e = cfg.eyes.get_mut(eye);
            e.size = size;
            e.fps = 60.0;
        }
        eprintln!("== {size} {encoder}: loopback, {frames} frames per eye");
        let r = rt
            .block_on(pi_streamer::loopback::run(&cfg, frames))
            .unwrap()
            .report;
        eprintln!("{}", r.to_text());
        eprintln!("== {size}: pure encode/decode");
        let pure = pure_codec(&cfg, frames.min(300));
        let st = |k: &str| r.stages_ms[k].mean;
        writeln!(
            table,
            "| {size} | {encoder} | 60 | {frames} | {}/{} | {}/{} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} |",
            r.eyes.left.decoded,
            r.eyes.right.decoded,
            r.eyes.left.dropped,
            r.eyes.right.dropped,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.overhead_ms.p50,
            r.overhead_ms.p99,
            st("capture_to_encode"),
            st("encode"),
            st("send_queue"),
            st("network"),
            st("decode"),
            r.cpu_ms_per_frame,
            pure.encode.p50,
            pure.decode.p50,
            r.latency_ms.p50 - pure.encode.p50 - pure.decode.p50,
            r.bitrate_mbps,
        )
        .unwrap();
        eprintln!(
            "pure: encode p50 {:.2} ms p99 {:.2} ms, decode p50 {:.2} ms p99 {:.2} ms, {:.0} bytes/frame",
            pure.encode.p50, pure.encode.p99, pure.decode.p50, pure.decode.p99, pure.bytes_per_frame
        );
        for (name, d) in &pure.decode_by {
            eprintln!(
                "pure decode, {name}: p50 {:.2} ms p99 {:.2} ms",
                d.p50, d.p99
            );
            writeln!(
                decoders,
                "| {size} | {encoder} | {name} | {:.2} ms | {:.2} ms | {:.2} ms |",
                d.p50, d.p99, d.mean
            )
            .unwrap();
        }
    }
    writeln!(table, "\n{decoders}").unwrap();
    println!("{table}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pipeline.md"), &table).unwrap();
}
