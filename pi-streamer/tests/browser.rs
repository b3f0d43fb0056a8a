//! The WebRTC path in a real browser: `pi-streamer --transport webrtc` serves its viewer page,
//! Debian's chromium (headless, driven by playwright-core through `tests/browser/view.mjs`)
//! opens it as two viewers at once, each decodes both tracks, and the pixel code read from
//! each `<video>` names the eye it is shown as. The streamer's report then has both viewers'
//! markers, with glass-to-glass, and no wrong-eye frame. A page whose streamer is stopped
//! and started again on the same address reconnects by itself.
//!
//! Needs `chromium`, `node` and `tests/browser/node_modules`: `scripts/setup.sh --browser`
//! (which `scripts/test.sh` runs) installs them.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
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

/// The streamer (640x360 at 30 fps) serving browsers, its log read as it comes.
struct Streamer {
    child: Option<Child>,
    log: Option<JoinHandle<String>>,
    /// Where it serves the page: `https://…/`.
    url: String,
}

impl Streamer {
    /// Starts the streamer on `listen` and waits until it serves. It is started again (up to
    /// 10 times, 0.5 s apart) while it exits before serving: a fixed address may still be held
    /// by the streamer that had it.
    fn start(listen: &str) -> Streamer {
        for attempt in 1.. {
            let mut child = Command::new(env!("CARGO_BIN_EXE_pi-streamer"))
                .args([
                    "--transport",
                    "webrtc",
                    "--listen",
                    listen,
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
                // Its HTTPS identity in the test's own directory, not the user's state.
                .arg("--state-dir")
                .arg(std::env::temp_dir().join(format!("binoc-browser-{}", std::process::id())))
                .env(
                    "RUST_LOG",
                    "info,str0m=warn,pi_streamer::output::webrtc::viewer=debug",
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting pi-streamer");
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = mpsc::channel();
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
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(url) => {
                    return Streamer {
                        child: Some(child),
                        log: Some(log),
                        url,
                    }
                }
                // Its stderr closed: it exited.
                Err(RecvTimeoutError::Disconnected) if attempt < 10 => {
                    let _ = child.wait();
                    let log = log.join().unwrap();
                    eprintln!("the streamer exited before serving (attempt {attempt}):\n{log}");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = log.join().unwrap();
                    panic!("the streamer says where it serves ({e:?}); its log:\n{log}");
                }
            }
        }
        unreachable!()
    }

    /// Stops the streamer with SIGINT; returns its exit status, its stdout (the JSON report)
    /// and its log.
    fn stop(mut self) -> (ExitStatus, Vec<u8>, String) {
        let child = self.child.take().unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let done = child.wait_with_output().expect("streamer exit");
        let log = self.log.take().unwrap().join().unwrap();
        (done.status, done.stdout, log)
    }
}

impl Drop for Streamer {
    /// A failed test leaves no streamer running.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the streamer and `view.mjs URL view_args…` against it, stops the streamer with SIGINT;
/// returns what the page saw, the streamer's JSON report and its log.
fn run_with_browser(view_args: &[&str]) -> (Value, Value, String) {
    check_prerequisites();
    let streamer = Streamer::start("127.0.0.1:0");
    let out = Command::new("node")
        .current_dir(browser_dir())
        .args(["view.mjs", &streamer.url])
        .args(view_args)
        .stderr(Stdio::inherit())
        .output()
        .expect("running node");
    let (status, stdout, log) = streamer.stop();
    assert!(
        out.status.success(),
        "view.mjs failed; streamer log:\n{log}"
    );
    assert!(status.success(), "streamer failed:\n{log}");

    let seen: Value = serde_json::from_slice(&out.stdout).expect("view.mjs JSON");
    let report: Value = serde_json::from_slice(&stdout).expect("streamer JSON report");
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
        // Glass-to-glass ends after capture→decoded: frame by frame, the stages after decode
        // (the hand-over to the compositor, and the display) are never negative. (The medians
        // of the two series are not comparable: glass-to-glass counts the displayed frames.)
        let after = &r["glass_to_glass_stages_ms"];
        for stage in ["upload", "display"] {
            assert!(
                after[stage]["min"].as_f64().unwrap() >= 0.0,
                "{stage}: {after}"
            );
        }
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

/// A loopback address whose port was free a moment ago, for TCP and UDP both.
fn free_listen_addr() -> String {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1");
}

/// The lines a child prints, as they come (`Disconnected` once it closed its stdout).
fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Kills a hung or failed view.mjs and fails the test with what it printed.
fn give_up(view: &mut Child, lines: &Receiver<String>, why: String) -> ! {
    let _ = view.kill();
    let _ = view.wait();
    let rest: Vec<String> =
        std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(5)).ok()).collect();
    panic!("view.mjs: {why}; then:\n{}", rest.join("\n"));
}

/// The page reconnects by itself: the streamer it watches is stopped (SIGINT) and, once the
/// page says it is reconnecting, a new one is started on the same address; the page connects
/// to it with no help, decodes its frames on the new peer connection and shows them in the
/// same `<video>` elements, and sends markers the new streamer places.
#[test]
fn browser_page_reconnects_to_a_restarted_streamer() {
    check_prerequisites();
    let listen = free_listen_addr();
    let first = Streamer::start(&listen);
    let mut view = Command::new("node")
        .current_dir(browser_dir())
        .args(["view.mjs", &first.url, "--reconnect"])
        .args(["--min-decoded", "30", "--timeout-s", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running node");
    let lines = lines_of(view.stdout.take().unwrap());
    // view.mjs times each of its waits out after 60 s and then prints its JSON at once; 90 s
    // here only guards against a hung node.
    let guard = Duration::from_secs(90);
    let expect = |word: &str, view: &mut Child| match lines.recv_timeout(guard) {
        Ok(line) if line == word => {}
        other => give_up(view, &lines, format!("expected {word}, got {other:?}")),
    };

    // Both eyes decode; then the streamer goes away.
    expect("READY", &mut view);
    let (status, _, log) = first.stop();
    assert!(status.success(), "first streamer failed:\n{log}");
    // The page noticed and is trying again; a new streamer on the same address.
    expect("LOST", &mut view);
    let second = Streamer::start(&listen);

    let mut json = String::new();
    loop {
        match lines.recv_timeout(guard) {
            Ok(line) => {
                json.push_str(&line);
                json.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => give_up(
                &mut view,
                &lines,
                format!("no JSON within {guard:?}:\n{json}"),
            ),
        }
    }
    let done = view.wait().expect("view.mjs exit");
    let (status, stdout, log) = second.stop();
    assert!(done.success(), "view.mjs failed; streamer log:\n{log}");
    assert!(status.success(), "second streamer failed:\n{log}");
    let seen: Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("view.mjs JSON ({e}):\n{json}"));
    let report: Value = serde_json::from_slice(&stdout).expect("streamer JSON report");

    let v = &seen["viewers"][0];
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_eq!(
        seen["back"],
        Value::Bool(true),
        "the page came back by itself: {seen}"
    );
    assert!(v["connects"].as_u64().unwrap() >= 2, "{seen}");
    assert!(v["reconnectAttempts"].as_u64().unwrap() >= 1, "{seen}");
    let said = v["statusLog"].as_array().unwrap();
    assert!(
        said.iter()
            .any(|s| s[1].as_str().unwrap().contains("reconnecting")),
        "the page said it was reconnecting: {said:?}"
    );
    // framesDecoded counts per peer connection: the first and the last connection each
    // decoded both eyes.
    let connections = v["connections"].as_array().unwrap();
    let ready_id = &seen["ready"]["connection"];
    let before = connections
        .iter()
        .find(|c| &c["id"] == ready_id)
        .expect("the first connection is in the page's history");
    let after = connections.last().unwrap();
    assert!(
        after["id"].as_u64().unwrap() > ready_id.as_u64().unwrap(),
        "{connections:?}"
    );
    assert_eq!(after["connected"], Value::Bool(true), "{after}");
    for eye in 0..2 {
        for c in [before, after] {
            assert!(c["decoded"][eye].as_u64().unwrap() > 30, "eye {eye}: {c}");
        }
        // The new frames are the right eye's, in the same <video> elements.
        assert_eq!(
            v["codes"][eye][0].as_u64(),
            Some(eye as u64),
            "{}",
            v["codes"]
        );
    }
    // The old connection ended on the page's side with why.
    assert!(before["ended"].is_string(), "{before}");

    // The new streamer placed the new connection's markers, and the closed page DELETEd its
    // session (pagehide; no reconnect after it).
    let viewers = report["viewers"].as_array().unwrap();
    let v = viewers
        .iter()
        .find(|v| v["ended"].as_str().unwrap().contains("DELETE"))
        .unwrap_or_else(|| panic!("a session ended by DELETE: {report}"));
    for eye in ["left", "right"] {
        let decoded = v["report"]["eyes"][eye]["decoded"].as_u64().unwrap();
        assert!(decoded > 0, "{eye}: no marker placed; log:\n{log}");
        assert_eq!(v["report"]["eyes"][eye]["wrong_eye"].as_u64(), Some(0));
    }
}
