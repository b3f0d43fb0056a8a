//! The headset app's real render path, offscreen (Mesa's lavapipe in CI): the synthetic stereo
//! source streams over real QUIC into the Bevy app, each eye's picture is drawn on its own eye
//! layer, both eye views are rendered into images and read back, and the pixels decide: the
//! left view shows the left stream's code, the right view the right's, frame numbers advance,
//! and each view has its camera's tint (the GPU's YUV → RGB conversion kept U and V apart).
//! The markers the app completes after display give the streamer glass-to-glass figures whose
//! stage breakdown adds up. Needs the app: `cargo test -p quest-client --features app` (scripts/test.sh).

use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use binoc_net::Identity;
use pi_streamer::source::test_pattern::TINT;
use quest_client::app::{self, AppOptions, ClientConfig, Mode};
use shared_proto::{pixel_code, Eye};

const FRAMES: u64 = 300;

#[test]
fn each_eye_view_shows_its_own_stream_with_advancing_frames() {
    let identity = Identity::generate().unwrap();
    let mut cfg = pi_streamer::config::StreamerConfig::small(2.0);
    cfg.transport.peer_fingerprint = Some(identity.fingerprint());
    let dump = std::env::temp_dir().join(format!("binoc-eye-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dump).unwrap();

    let (addr_tx, addr_rx) = mpsc::channel();
    let app_dump = dump.clone();
    let app = std::thread::spawn(move || {
        app::run(AppOptions {
            mode: Mode::Offscreen {
                dump: Some(app_dump),
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            identity,
            access: Default::default(),
            config: ClientConfig::default(),
            frames: None,
            sessions: Some(1),
            duration: Some(300.0),
            // Twice the stream's 320x240: the picture fills each view, scaled; the eye
            // textures start at the view's size and are replaced for the stream's (a stream of
            // another size than the view once showed black).
            view_size: (640, 480),
            screenshot: None,
            render_diagnostics: false,
            on_listening: Some(Box::new(move |a| addr_tx.send(a).unwrap())),
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the app listens");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt
        .block_on(pi_streamer::session::stream_to(
            &cfg,
            addr,
            Some(FRAMES),
            Arc::new(AtomicBool::new(false)),
        ))
        .expect("streaming to the app");
    assert!(
        outcome.connection_lost.is_none(),
        "{:?}",
        outcome.connection_lost
    );
    let app = app.join().expect("the app thread").expect("the app ran");
    let report = outcome.report;

    // The pixels of the rendered eye views.
    let log = app.views.expect("offscreen views").log();
    for eye in Eye::BOTH {
        let codes = &log.codes[eye.index()];
        let shown: Vec<(Eye, u32)> = codes.iter().flatten().copied().collect();
        assert!(
            shown.len() >= 30,
            "{eye} view: only {} of {} read-backs show a readable picture",
            shown.len(),
            codes.len()
        );
        let wrong = shown.iter().filter(|(e, _)| *e != eye).count();
        assert_eq!(
            wrong, 0,
            "{eye} view shows the other eye's stream {wrong} times"
        );
        // Never an older frame after a newer one (24-bit wrapping), and the picture moves on.
        for w in shown.windows(2) {
            let step = w[1].1.wrapping_sub(w[0].1) & pixel_code::FRAME_MASK;
            assert!(
                step < pixel_code::FRAME_MASK / 2,
                "{eye} view went back from frame {} to {}",
                w[0].1,
                w[1].1
            );
        }
        let (first, last) = (shown[0].1, shown[shown.len() - 1].1);
        assert!(
            last >= first + 30,
            "{eye} view: frames only advanced from {first} to {last}"
        );
        // The colour survived: the view's median chroma is this eye's tint (within 4 code
        // values: the GPU's float arithmetic and the sRGB round trip differ from integer
        // BT.601 by a little).
        let (u, v) = log.chroma[eye.index()].expect("a view with a readable picture");
        let (tu, tv) = TINT[eye.index()];
        assert!(
            u.abs_diff(tu) <= 4 && v.abs_diff(tv) <= 4,
            "{eye} view's chroma (U {u}, V {v}) is not its camera's tint (U {tu}, V {tv})"
        );
        let png = dump.join(format!("{}.png", eye.name()));
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 100),
            "{} written",
            png.display()
        );
    }

    // The markers: decoded, uploaded and displayed frames reach the streamer; glass-to-glass
    // is measured, and its stages add up to it.
    for (name, e) in [("left", &report.eyes.left), ("right", &report.eyes.right)] {
        assert_eq!(e.wrong_eye, 0, "{name}");
        assert_eq!(e.code_mismatch, 0, "{name}");
        assert!(
            e.decoded * 10 >= e.sent * 9,
            "{name}: {} of {} decoded",
            e.decoded,
            e.sent
        );
    }
    let g2g = report
        .glass_to_glass_ms
        .expect("glass-to-glass from display markers");
    let stages = report.glass_to_glass_stages_ms.expect("its breakdown");
    assert!(g2g.count >= 60, "{} displayed frames", g2g.count);
    assert_eq!(stages.len(), 7);
    let sum: f64 = stages.values().map(|s| s.mean).sum();
    assert!(
        (sum - g2g.mean).abs() < 1e-6,
        "stages {sum} ms vs glass-to-glass {} ms",
        g2g.mean
    );
    for (stage, s) in &stages {
        assert_eq!(
            s.count, g2g.count,
            "{stage}: over the same displayed frames"
        );
    }
    assert!(stages["display"].mean > 0.0 && stages["upload"].mean >= 0.0);
    // The client's own view agrees: every displayed picture counted, none shown twice.
    let client = &app.report.eyes;
    assert!(client.left.counts.shown > 0 && client.right.counts.shown > 0);
    let _ = std::fs::remove_dir_all(&dump);
}
