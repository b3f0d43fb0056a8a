//! The WebRTC path in a real browser: `pi-streamer --transport webrtc` serves its viewer page,
//! Debian's chromium (headless, driven by playwright-core through `tests/browser/view.mjs`)
//! opens it as two viewers at once, each decodes both tracks, and the pixel code read from
//! each `<video>` names the eye it is shown as. The streamer's report then has both viewers'
//! markers, with glass-to-glass, and no wrong-eye frame.
//!
//! Needs `chromium`, `node` and `tests/browser/node_modules`: `scripts/setup.sh --browser`
//! (which `scripts/test.sh` runs) installs them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn browser_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn check_prerequisites() {
    let modules = browser_dir().join("node_modules/playwright-core");
    assert!(
        modules.exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and {}: run scripts/setup.sh --browser",
        modules.display()
    );
}

/// Runs the streamer (640x360 at 30 fps) and `view.mjs URL view_args…` against it, stops the
/// streamer with SIGINT; returns what the page saw, the streamer's JSON report and its log.
fn run_with_browser(view_args: &[&str]) -> (Value, Value, String) {
    check_prerequisites();
    let mut streamer = Command::new(env!("CARGO_BIN_EXE_pi-streamer"))
        .args([
            "--transport",
            "webrtc",
            "--listen",
            "127.0.0.1:0",
            "--size",
            "640x360",
            "--fps",
            "30",
            "--bitrate-mbps",
            "2",
            // Correctness, on a machine that may be busy: late frames still count.
            "--max-latency-ms",
            "2000",
            "--report",
            "json",
        ])
        .env(
            "RUST_LOG",
            "info,str0m=warn,pi_streamer::output::webrtc::viewer=debug",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting pi-streamer");
    let stderr = streamer.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("serving https://") {
                let url = line[i + "serving ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(url);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the streamer says where it serves");
    let out = Command::new("node")
        .current_dir(browser_dir())
        .args(["view.mjs", &url])
        .args(view_args)
        .stderr(Stdio::inherit())
        .output()
        .expect("running node");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(streamer.id() as i32, libc::SIGINT) };
    let done = streamer.wait_with_output().expect("streamer exit");
    let log = log.join().unwrap();
    assert!(
        out.status.success(),
        "view.mjs failed; streamer log:\n{log}"
    );
    assert!(done.status.success(), "streamer failed:\n{log}");

    let seen: Value = serde_json::from_slice(&out.stdout).expect("view.mjs JSON");
    let report: Value = serde_json::from_slice(&done.stdout).expect("streamer JSON report");
    (seen, report, log)
}

#[test]
fn browser_decodes_both_tracks_on_the_right_eyes_for_two_viewers() {
    let (seen, report, log) = run_with_browser(&[
        "--viewers",
        "2",
        "--min-decoded",
        "100",
        "--timeout-s",
        "90",
    ]);
    let viewers = seen["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 2);
    for (i, v) in viewers.iter().enumerate() {
        assert!(v["error"].is_null(), "viewer {i}: {}", v["error"]);
        for eye in 0..2 {
            let decoded = v["decoded"][eye].as_u64().unwrap();
            assert!(
                decoded > 100,
                "viewer {i} eye {eye}: framesDecoded {decoded}"
            );
            assert!(
                v["codesRead"][eye].as_u64().unwrap() > 0,
                "viewer {i} eye {eye}: no pixel code read"
            );
            // The code names the eye: the left video shows the left stream, the right the right.
            assert_eq!(
                v["codes"][eye][0].as_u64(),
                Some(eye as u64),
                "viewer {i}: {}",
                v["codes"]
            );
        }
        assert!(v["markersSent"].as_u64().unwrap() > 100);
    }

    let reports = report["viewers"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{report}");
    for v in reports {
        assert!(
            v["ended"].as_str().unwrap().contains("DELETE"),
            "the page ends its session with a WHEP DELETE: {}",
            v["ended"]
        );
        let r = &v["report"];
        for eye in ["left", "right"] {
            let e = &r["eyes"][eye];
            assert!(
                e["decoded"].as_u64().unwrap() > 50,
                "{eye}: markers {}",
                e["decoded"]
            );
            assert_eq!(e["wrong_eye"].as_u64(), Some(0), "{eye}");
            // (A code read from the next frame, a browser race, counts as unreadable.)
            assert_eq!(e["code_mismatch"].as_u64(), Some(0), "{eye}; log:\n{log}");
            let unreadable = e["unreadable_code"].as_u64().unwrap();
            assert!(
                unreadable * 10 <= e["decoded"].as_u64().unwrap(),
                "{eye}: {unreadable} codes unreadable"
            );
        }
        assert!(r["clock"].is_object(), "clock sync over the data channel");
        let g2g = &r["glass_to_glass_ms"];
        assert!(
            g2g["count"].as_u64().unwrap() > 100,
            "glass-to-glass from the markers: {g2g}"
        );
        assert!(g2g["p50"].as_f64().unwrap() > 0.0);
        // Glass-to-glass ends after capture→decoded.
        assert!(g2g["p50"].as_f64().unwrap() >= r["latency_ms"]["p50"].as_f64().unwrap());
        assert_eq!(v["webrtc"]["malformed_messages"].as_u64(), Some(0));
    }
}

/// WebXR, with a stand-in XR device (`tests/browser/xr-mock.js`: headless Chromium has no XR
/// runtime) whose two views are the halves of the page's WebGL canvas: the page enters VR, and
/// the pixels read back from each half show that eye's camera, frame numbers only advancing.
#[test]
fn browser_webxr_shows_each_camera_to_its_own_eye_only() {
    let (seen, report, log) =
        run_with_browser(&["--xr", "--min-decoded", "60", "--timeout-s", "90"]);
    let v = &seen["viewers"][0];
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_eq!(
        v["inXR"],
        Value::Bool(true),
        "the page entered the immersive session"
    );
    let xr = &v["xr"];
    assert!(xr["error"].is_null(), "{}", xr["error"]);
    for eye in 0..2 {
        assert!(xr["codesRead"][eye].as_u64().unwrap() > 30, "{xr}");
        assert_eq!(
            xr["codes"][eye][0].as_u64(),
            Some(eye as u64),
            "view {eye} shows camera {}",
            xr["codes"][eye][0]
        );
        // Never an older frame after a newer one.
        let h: Vec<u64> = xr["history"][eye]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert!(
            h.windows(2).all(|w| w[0] < w[1]),
            "view {eye} went back: {h:?}"
        );
    }
    // Markers carry the XR frame's predicted display time: glass-to-glass per displayed frame.
    let r = &report["viewers"][0]["report"];
    let g2g = &r["glass_to_glass_ms"];
    assert!(g2g["count"].as_u64().unwrap() > 30, "{g2g}; log:\n{log}");
    for eye in ["left", "right"] {
        assert_eq!(r["eyes"][eye]["wrong_eye"].as_u64(), Some(0));
        assert_eq!(r["eyes"][eye]["code_mismatch"].as_u64(), Some(0));
    }
}
