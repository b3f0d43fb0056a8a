//! The WebRTC output end to end, with str0m as the viewer (a sans-IO WebRTC stack we can
//! steer: lose packets on purpose, send a PLI, stop reading): the real server
//! (`session::serve`: HTTPS, WHEP, the pipeline with x264) on 127.0.0.1; and one streamer
//! serving the headset (QUIC) and a viewer (WebRTC) at once from the same encoders.
//!
//! These run everywhere the crate runs, including aarch64 under qemu; the browser test
//! (tests/browser.rs) covers Chromium itself. They assert what happened, never how fast.

mod common;
use common::{command, rss_kib};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pi_streamer::config::{StreamerConfig, TransportKind};
use pi_streamer::output::quic::QuicOutput;
use pi_streamer::output::webrtc::WebrtcOutput;
use pi_streamer::output::webrtc::{ServeReport, ViewerReport};
use pi_streamer::output::{Output as StreamOutput, OutputReport};
use pi_streamer::session;
use pi_streamer::session::serve;
use shared_proto::{pixel_code, Eye};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

fn config() -> StreamerConfig {
    let mut cfg = StreamerConfig::small(1.0);
    cfg.transport.webrtc.min_bitrate_mbps = 0.2;
    cfg.transport.kinds = vec![TransportKind::Webrtc];
    cfg.transport.webrtc.listen = "127.0.0.1:0".into();
    cfg
}

/// The streamer, serving in the background until `stop`.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ServeReport>,
}

impl Server {
    fn start(cfg: StreamerConfig) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(&cfg, None, s, move |a| tx.send(a).unwrap()))
                .expect("serve")
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).expect("listening");
        Server { addr, stop, thread }
    }

    fn finish(self) -> ServeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("serve thread")
    }
}

/// One HTTPS request, HTTP/1.1 by hand: (status, raw headers, body).
fn https(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    https_pinned(addr, None, method, path, body)
}

/// [`https`] with `Authorization: Bearer token`.
fn https_auth(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: &str,
) -> (u16, String, String) {
    request_from(None, addr, None, method, path, body, Some(token))
}

/// [`https`] to a server whose certificate must have the SHA-256 fingerprint `pin`.
fn https_pinned(
    addr: SocketAddr,
    pin: Option<String>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    request_from(None, addr, pin, method, path, body, None)
}

/// A TLS connection to the server (from the local address `from`, if given), its certificate
/// accepted without a pin, as a browser told to would, or pinned to `pin`.
fn tls_to(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    pin: Option<String>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let trust = pin.map_or(binoc_net::HeadsetTrust::Any, |p| {
        binoc_net::HeadsetTrust::Pinned(vec![p])
    });
    let config = binoc_net::pinned_tls_client(trust, None).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = match from {
        Some(ip) => connect_from(ip, addr),
        None => TcpStream::connect(addr).unwrap(),
    };
    rustls::StreamOwned::new(conn, tcp)
}

/// A TCP connection to `addr` from the local address `from` (another loopback address: another
/// client, as far as the server can tell).
fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

fn request_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    pin: Option<String>,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut tls = tls_to(from, addr, pin);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sdp\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out); // the server may close without close_notify
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// What a peer saw, per eye.
#[derive(Default, Debug)]
struct Seen {
    frames: [u64; 2],
    keyframes: [u64; 2],
    /// Whether each eye's first frame was a keyframe.
    first_keyframe: [Option<bool>; 2],
    /// Frames that arrived with a gap before them (loss that retransmission did not repair).
    gaps: [u64; 2],
    plis: [u64; 2],
    /// The encoders' target bitrate per eye (Mbit/s) from the streamer's stats messages.
    targets: Vec<[f64; 2]>,
    /// The link estimate the streamer reported (Mbit/s).
    estimates: Vec<f64>,
    /// With decoding on: pictures decoded, and the (eye, frame number) pixel codes they show.
    decoded: [u64; 2],
    codes: [Vec<(Eye, u32)>; 2],
    /// Markers the streamer says it has matched per eye (its once-a-second HUD message): what
    /// the streamer's report can count at most, whatever is still in flight.
    acknowledged: [u64; 2],
}

/// Steering for a peer.
#[derive(Default)]
struct Control {
    /// Drop every Nth incoming media datagram (0 = none).
    drop_every: AtomicUsize,
    dropped: AtomicU64,
    /// Stop reading the socket.
    stall: AtomicBool,
    /// Send a PLI for this eye (index + 1; 0 = none).
    pli: AtomicUsize,
    /// Send this many malformed data channel messages.
    garbage: AtomicUsize,
    quit: AtomicBool,
    /// Decode every frame (openh264, as the desktop client does) and put its pixel code in
    /// the marker.
    decode: AtomicBool,
}

struct Peer {
    seen: Arc<Mutex<Seen>>,
    control: Arc<Control>,
    resource: String,
    thread: std::thread::JoinHandle<()>,
}

impl Peer {
    /// Offers two recvonly video m-lines and the `binoc` data channel, as the viewer page does.
    fn connect(server: SocketAddr) -> Peer {
        Self::connect_with(server, false)
    }

    /// As [`Peer::connect`]; with `decode`, each frame is decoded and its pixel code read.
    fn connect_with(server: SocketAddr, decode: bool) -> Peer {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mids = [
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None),
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None),
        ];
        change.add_channel("binoc".into());
        let (offer, pending): (_, SdpPendingOffer) = change.apply().unwrap();
        let (status, head, body) = https(server, "POST", "/whep", &offer.to_sdp_string());
        assert_eq!(status, 201, "{head}\n{body}");
        let resource = head
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .expect("Location")
            .to_string();
        let answer = SdpAnswer::from_sdp_string(&body).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let control = Arc::new(Control::default());
        control.decode.store(decode, Ordering::Relaxed);
        let (s, c) = (seen.clone(), control.clone());
        let thread = std::thread::spawn(move || drive(rtc, socket, mids, s, c));
        Peer {
            seen,
            control,
            resource,
            thread,
        }
    }

    fn frames(&self) -> [u64; 2] {
        self.seen.lock().unwrap().frames
    }

    fn wait_for(&self, what: &str, mut f: impl FnMut(&Seen) -> bool) {
        let t0 = Instant::now();
        while !f(&self.seen.lock().unwrap()) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "waited 60 s for {what}: {:?}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn leave(self, server: SocketAddr) -> Seen {
        let (status, head, _) = https(server, "DELETE", &self.resource, "");
        assert_eq!(status, 200, "{head}");
        self.control.quit.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

fn browser_ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3 + 1.0
}

fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    mids: [Mid; 2],
    seen: Arc<Mutex<Seen>>,
    control: Arc<Control>,
) {
    let t0 = Instant::now();
    let local = socket.local_addr().unwrap();
    let mut channel: Option<ChannelId> = None;
    let mut media_datagrams = 0usize;
    let mut buf = vec![0u8; 2048];
    let mut decoders: Vec<_> = if control.decode.load(Ordering::Relaxed) {
        (0..2)
            .map(|_| headset_core::decode::open_software().unwrap())
            .collect()
    } else {
        Vec::new()
    };
    while !control.quit.load(Ordering::Relaxed) {
        let timeout = loop {
            match rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::ChannelOpen(id, _)) => channel = Some(id),
                Output::Event(Event::ChannelData(d)) => {
                    // Answer the clock-sync pings as the page does.
                    let t1 = browser_ms(t0);
                    let v: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
                    if v["t"] == "stats" {
                        let mut s = seen.lock().unwrap();
                        let t = |e: usize| v["eyes"][e]["target_mbps"].as_f64().unwrap_or(0.0);
                        s.targets.push([t(0), t(1)]);
                        if let Some(e) = v["estimate_mbps"].as_f64() {
                            s.estimates.push(e);
                        }
                        for e in 0..2 {
                            s.acknowledged[e] = v["eyes"][e]["decoded"].as_u64().unwrap_or(0);
                        }
                    }
                    if v["t"] == "ping" {
                        let pong = serde_json::json!({"t": "pong", "id": v["id"], "t0": v["t0"],
                            "t1": t1, "t2": browser_ms(t0)});
                        if let Some(mut ch) = rtc.channel(d.id) {
                            let _ = ch.write(false, pong.to_string().as_bytes());
                        }
                    }
                }
                Output::Event(Event::MediaData(m)) => {
                    let Some(eye) = mids.iter().position(|&x| x == m.mid) else {
                        continue;
                    };
                    {
                        let mut s = seen.lock().unwrap();
                        s.frames[eye] += 1;
                        s.keyframes[eye] += u64::from(m.is_keyframe());
                        s.first_keyframe[eye].get_or_insert(m.is_keyframe());
                        if !m.contiguous {
                            s.gaps[eye] += 1;
                        }
                    }
                    if !m.contiguous {
                        // As browsers do: a broken reference chain asks for a keyframe.
                        if let Some(rx) = rtc.direct_api().stream_rx_by_mid(m.mid, None) {
                            rx.request_keyframe(KeyframeRequestKind::Pli);
                        }
                    }
                    let mut code = serde_json::Value::Null;
                    if let Some(dec) = decoders.get_mut(eye) {
                        let mut read = None;
                        let got = dec.decode(&m.data, &mut |p| {
                            read = pixel_code::read(p.y, p.y_stride, p.width, p.height);
                        });
                        let mut s = seen.lock().unwrap();
                        if got.unwrap_or(false) {
                            s.decoded[eye] += 1;
                        }
                        if let Some((e, n)) = read {
                            s.codes[eye].push((e, n));
                            code = serde_json::json!([e as u8, n]);
                        }
                    }
                    let now = browser_ms(t0);
                    let marker = serde_json::json!({"t": "m", "eye": eye,
                        "rtp": m.time.numer() as u32, "code": code, "recv": now, "pres": now,
                        "disp": null});
                    if let Some(mut ch) = channel.and_then(|id| rtc.channel(id)) {
                        let _ = ch.write(false, marker.to_string().as_bytes());
                    }
                }
                Output::Event(_) => {}
            }
        };
        if let Some(mut ch) = channel.and_then(|id| rtc.channel(id)) {
            let garbage = control.garbage.swap(0, Ordering::Relaxed);
            let bad: [&[u8]; 4] = [
                b"not json",
                br#"{"t":"m","eye":7,"rtp":1,"code":null,"recv":1,"pres":1,"disp":null}"#,
                br#"{"t":"pong","id":1,"t0":1,"t1":1e300,"t2":1e300}"#,
                &[b'x'; 5000],
            ];
            for i in 0..garbage {
                let _ = ch.write(i % 2 == 0, bad[i % bad.len()]);
            }
        }
        let pli = control.pli.swap(0, Ordering::Relaxed);
        if pli > 0 {
            if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mids[pli - 1], None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                seen.lock().unwrap().plis[pli - 1] += 1;
            }
        }
        if control.stall.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                // Media datagrams are the big ones; lose some on purpose.
                let every = control.drop_every.load(Ordering::Relaxed);
                if n > 300 && every > 0 {
                    media_datagrams += 1;
                    if media_datagrams % every == 0 {
                        control.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                if let Ok(contents) = buf[..n].try_into() {
                    rtc.handle_input(Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: local,
                            contents,
                        },
                    ))
                    .expect("handle_input");
                }
            }
            Err(_) => {
                let now = Instant::now();
                if now >= timeout {
                    rtc.handle_input(Input::Timeout(now)).expect("timeout");
                }
            }
        }
    }
}

fn viewer(r: &ServeReport, index: usize) -> &ViewerReport {
    let mut v: Vec<_> = r.viewers.iter().collect();
    v.sort_by_key(|v| v.viewer.split('-').next().unwrap().parse::<u64>().unwrap());
    v[index]
}

/// The self-signed HTTPS certificate is made once and kept in the state directory, so a
/// browser that trusted it is not asked again after a restart; plain `http://` to the same
/// port is redirected to `https://`.
#[test]
fn the_https_certificate_survives_a_restart_and_plain_http_is_redirected() {
    let dir = std::env::temp_dir().join(format!("binoc-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config();
    cfg.state_dir = Some(dir.clone());
    let kept = dir.join(pi_streamer::output::webrtc::IDENTITY_FILE);
    let mut fingerprints = Vec::new();
    for run in 0..2 {
        let server = Server::start(cfg.clone());
        let fp = binoc_net::Identity::load_or_create(&kept)
            .unwrap()
            .fingerprint();
        // The server presents the kept certificate: a client pinning it gets the page.
        let (status, head, _) = https_pinned(server.addr, Some(fp.clone()), "GET", "/", "");
        assert_eq!(status, 200, "run {run}: {head}");
        fingerprints.push(fp);
        if run == 0 {
            let mut tcp = TcpStream::connect(server.addr).unwrap();
            write!(
                tcp,
                "GET /?token=t HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            )
            .unwrap();
            let mut answer = String::new();
            let _ = tcp.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
            let location = format!("location: https://{}/?token=t", server.addr);
            assert!(answer.to_lowercase().contains(&location), "{answer}");
        }
        server.finish();
    }
    assert_eq!(
        fingerprints[0], fingerprints[1],
        "the same certificate after a restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TLS connection to the server with a request head written and nothing more.
fn half_request(
    addr: SocketAddr,
    head: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut tls = tls_to(None, addr, None);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    tls
}

fn status_of(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// What a stranger on the network can make the HTTPS server hold: an unauthorized POST is
/// answered before its body is read; an authorized body that never comes is cut at its
/// deadline (408); connections beyond the per-address cap are closed at once and do not stop
/// the next legitimate request once they are gone; a refused offer's error names nothing
/// internal; hundreds of sessions created and deleted leave threads and reports bounded.
#[test]
fn the_https_server_holds_nothing_for_a_stranger_and_stays_bounded() {
    let _alone = apart_from_the_drip();
    let mut cfg = config();
    cfg.transport.webrtc.token = Some("secret".into());
    cfg.transport.webrtc.max_viewers = 4;
    let server = Server::start(cfg);
    let head = |auth: &str| {
        format!(
            "POST /whep HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sdp\r\n{auth}Content-Length: 5000\r\n\r\n"
        )
    };
    // No token: 401 at once, the promised 5000 bytes never sent.
    let mut c = half_request(server.addr, &head(""));
    assert!(status_of(&mut c).contains("401"));
    // The right token and a body that never comes: cut at the body deadline.
    let t0 = Instant::now();
    let mut c = half_request(server.addr, &head("Authorization: Bearer secret\r\n"));
    assert!(status_of(&mut c).contains("408"));
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "held {:?}",
        t0.elapsed()
    );
    // Connections up to the per-address cap, held open: the next one is closed at once.
    let cap = pi_streamer::output::webrtc::https::MAX_CONNECTIONS_PER_SOURCE;
    let held: Vec<TcpStream> = (0..cap)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Closed at once: long before the 10 s a silent admitted connection is given (the read's
    // own limit is generous, as under qemu the server's accept loop can take seconds).
    let t0 = Instant::now();
    let mut extra = TcpStream::connect(server.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 1];
    let read = extra.read(&mut b);
    assert!(
        matches!(read, Ok(0)) && t0.elapsed() < Duration::from_secs(9),
        "the connection over the cap is closed at once: {read:?} after {:?}",
        t0.elapsed()
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, _) = https(server.addr, "GET", "/", "");
    assert_eq!(status, 200, "served again once the squatters left");
    // A malformed offer: 400, in our words.
    let (status, _, body) = https_auth(server.addr, "POST", "/whep", "v=0\r\nnonsense", "secret");
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("0x"), "no internal detail: {body}");
    // One address holds at most MAX_VIEWERS_PER_ADDRESS of the 4 slots: a squatter there does
    // not block a viewer from elsewhere.
    let offer = include_str!("data/chromium-offer.sdp");
    let per_address = pi_streamer::output::webrtc::hub::MAX_VIEWERS_PER_ADDRESS;
    let squatted: Vec<String> = (0..per_address)
        .map(|_| {
            let (status, head, _) = https_auth(server.addr, "POST", "/whep", offer, "secret");
            assert_eq!(status, 201, "{head}");
            head.lines()
                .find_map(|l| l.strip_prefix("location: "))
                .unwrap()
                .to_string()
        })
        .collect();
    let (status, _, _) = https_auth(server.addr, "POST", "/whep", offer, "secret");
    assert_eq!(status, 503, "the squatter's address is full");
    let elsewhere: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let (status, head, _) = request_from(
        Some(elsewhere),
        server.addr,
        None,
        "POST",
        "/whep",
        offer,
        Some("secret"),
    );
    assert_eq!(status, 201, "a viewer from another address gets in: {head}");
    let other = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .to_string();
    for l in squatted.iter().chain([&other]) {
        let (status, _, _) = https_auth(server.addr, "DELETE", l, "", "secret");
        assert_eq!(status, 200);
    }
    // Create and delete many sessions: threads and reports stay bounded.
    let threads = || std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let before = threads();
    // Past the cap of kept reports; fewer under emulation (the aarch64 leg), where each session
    // costs a hundred times more.
    // BINOC_WHEP_CYCLES=1000 for issue 15's full figure (CI keeps to 300).
    let cycles = match std::env::var("BINOC_WHEP_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if cfg!(target_arch = "aarch64") => 40,
        None => 300,
    };
    for _ in 0..cycles {
        // A deleted viewer leaves its slot as its thread ends: a moment, then 201.
        let mut tries = 0;
        let (status, head) = loop {
            let (status, head, _) = https_auth(server.addr, "POST", "/whep", offer, "secret");
            tries += 1;
            if status != 503 || tries > 100 {
                break (status, head);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status, 201, "{head}");
        let location = head
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .expect("Location")
            .to_string();
        let (status, _, _) = https_auth(server.addr, "DELETE", &location, "", "secret");
        assert_eq!(status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = threads();
    assert!(
        after <= before + 8,
        "threads {before} → {after} after {cycles} sessions"
    );
    let report = server.finish();
    eprintln!(
        "{cycles} WHEP create/delete cycles: threads {before} → {after}, {} reports kept",
        report.viewers.len()
    );
    assert!(
        report.viewers.len() <= pi_streamer::output::webrtc::hub::MAX_FINISHED_REPORTS,
        "{} reports kept",
        report.viewers.len()
    );
}

/// With no viewer the encoders idle (no CPU for frames nobody sees); the first viewer's first
/// frame of each eye is a keyframe, and they idle again once it has left.
#[test]
fn encoders_idle_until_a_viewer_comes_and_start_it_with_a_keyframe() {
    let server = Server::start(config());
    // Frames are captured meanwhile (the camera keeps running), none is encoded.
    std::thread::sleep(Duration::from_millis(700));
    let peer = Peer::connect(server.addr);
    peer.wait_for("frames on both eyes", |s| s.frames.iter().all(|&f| f >= 10));
    let seen = peer.leave(server.addr);
    assert_eq!(seen.first_keyframe, [Some(true); 2], "{seen:?}");
    std::thread::sleep(Duration::from_millis(700));
    let report = server.finish();
    // The encoders started for the viewer with an IDR: it never waited for one.
    let v = viewer(&report, 0);
    assert_eq!(v.webrtc.skipped_waiting_idr, [0, 0], "{:?}", v.webrtc);
    for e in [&v.report.eyes.left, &v.report.eyes.right] {
        let causes: u64 = e.causes().iter().map(|(n, _)| n).sum();
        assert_eq!(e.dropped, causes, "{}", e.drop_causes());
    }
    for e in 0..2 {
        assert!(report.idle[e] > 0, "{report:?}");
        assert_eq!(
            report.encoded[e] + report.idle[e] + report.dropped_source[e],
            report.captured[e],
            "eye {e}: every frame captured was encoded, idle, or replaced: {report:?}"
        );
        // Only frames captured while the viewer was there were encoded (give or take the one
        // in each encoder's hands as it came and left).
        let v = &viewer(&report, 0).report.eyes;
        let during = [v.left.captured, v.right.captured][e];
        assert!(
            report.encoded[e] <= during + 2,
            "eye {e}: {} encoded, {during} captured while the viewer was there",
            report.encoded[e]
        );
    }
}

#[test]
fn pli_from_a_viewer_makes_an_idr_for_that_eye() {
    let server = Server::start(config());
    let peer = Peer::connect(server.addr);
    peer.wait_for("frames on both eyes", |s| s.frames.iter().all(|&f| f >= 30));
    // Malformed data channel messages are counted and change nothing.
    peer.control.garbage.store(40, Ordering::Relaxed);
    let before = peer.seen.lock().unwrap().keyframes;
    peer.control.pli.store(2, Ordering::Relaxed); // the right eye
    peer.wait_for("an IDR on the right eye", |s| s.keyframes[1] > before[1]);
    peer.wait_for("30 markers per eye matched by the streamer", |s| {
        s.acknowledged.iter().all(|&m| m >= 30)
    });
    let seen = peer.leave(server.addr);
    let report = server.finish();
    let v = viewer(&report, 0);
    assert!(v.webrtc.keyframe_requests[1] >= 1, "{:?}", v.webrtc);
    assert_eq!(v.webrtc.malformed_messages, 40, "{:?}", v.webrtc);
    assert_eq!(seen.plis, [0, 1], "only the PLI this test sent");
    assert_eq!(seen.gaps, [0, 0], "no loss on loopback");
    assert!(v.ended.contains("DELETE"), "{}", v.ended);
    // The markers came back and were matched to the frames sent.
    for e in [&v.report.eyes.left, &v.report.eyes.right] {
        assert!(e.decoded >= 30 && e.unmatched_markers == 0, "{e:?}");
    }
}

#[test]
fn lost_packets_are_retransmitted_after_nacks() {
    let server = Server::start(config());
    let peer = Peer::connect(server.addr);
    peer.wait_for("the first frames", |s| s.frames.iter().all(|&f| f >= 5));
    // One media datagram in 20 lost (5 %, both eyes).
    peer.control.drop_every.store(20, Ordering::Relaxed);
    let start = peer.frames();
    peer.wait_for("150 more frames per eye", |s| {
        s.frames.iter().zip(start).all(|(&f, s0)| f >= s0 + 150)
    });
    let dropped = peer.control.dropped.load(Ordering::Relaxed);
    let seen = peer.leave(server.addr);
    let report = server.finish();
    let v = viewer(&report, 0);
    assert!(dropped >= 20, "the test lost {dropped} datagrams");
    let nacks = v.webrtc.nacks[0] + v.webrtc.nacks[1];
    assert!(
        nacks > 0,
        "the viewer's NACKs reached the streamer: {:?}",
        v.webrtc
    );
    // Retransmission repaired the losses: frames arrived whole, in order, without the
    // keyframe requests a broken chain would need.
    let frames = seen.frames[0] + seen.frames[1];
    let gaps = seen.gaps[0] + seen.gaps[1];
    eprintln!("lost {dropped} datagrams, {nacks} NACKs, {frames} frames, {gaps} with a gap, PLIs {:?}, keyframe requests {:?}", seen.plis, v.webrtc.keyframe_requests);
    assert!(
        gaps * 50 <= frames,
        "{gaps} of {frames} frames came with a gap ({dropped} datagrams lost)"
    );
}

#[test]
fn a_lossy_link_lowers_the_encoders_bitrate() {
    let server = Server::start(config()); // 1 Mbit/s per eye, floor 0.2
    let peer = Peer::connect(server.addr);
    peer.wait_for("frames and a first stats message", |s| {
        s.frames.iter().all(|&f| f >= 10) && !s.targets.is_empty()
    });
    // One media datagram in 4 lost: GCC's loss-based controller backs off.
    peer.control.drop_every.store(4, Ordering::Relaxed);
    peer.wait_for("a lower target bitrate", |s| {
        s.targets.last().is_some_and(|t| t[0] < 0.9 && t[1] < 0.9)
    });
    let seen = peer.leave(server.addr);
    let _ = server.finish();
    let last = seen.targets.last().unwrap();
    eprintln!("estimates {:?}, targets {:?}", seen.estimates, seen.targets);
    assert!(
        last[0] >= 0.2 && last[1] >= 0.2,
        "never below the floor: {last:?}"
    );
    assert_eq!(last[0], last[1], "both eyes share the link");
}

#[test]
fn a_stalled_viewer_does_not_hold_up_another_and_recovers() {
    let server = Server::start(config());
    let a = Peer::connect(server.addr);
    let b = Peer::connect(server.addr);
    for p in [&a, &b] {
        p.wait_for("frames on both eyes", |s| s.frames.iter().all(|&f| f >= 10));
    }
    // B stops reading for 60 frame intervals; A keeps receiving meanwhile.
    b.control.stall.store(true, Ordering::Relaxed);
    let a0 = a.frames();
    a.wait_for("60 frames per eye while B stalls", |s| {
        s.frames.iter().zip(a0).all(|(&f, s0)| f >= s0 + 60)
    });
    // B recovers: frames again, and where the stall lost some (its socket buffer overflowed:
    // a gap), a keyframe after the gap. A stall the socket buffer absorbed (small frames at a
    // low start rate, as under emulation) loses nothing and needs none.
    let (b0, g0) = {
        let s = b.seen.lock().unwrap();
        (s.keyframes, s.gaps)
    };
    b.control.stall.store(false, Ordering::Relaxed);
    let bf = b.frames();
    b.wait_for("B's frames again, after a keyframe if it lost any", |s| {
        (0..2).all(|e| {
            let lost = s.gaps[e] > g0[e];
            s.frames[e] >= bf[e] + 30 && (!lost || s.keyframes[e] > b0[e])
        })
    });
    let seen_a = a.leave(server.addr);
    let _ = b.leave(server.addr);
    let report = server.finish();
    assert_eq!(report.viewers.len(), 2);
    assert_eq!(seen_a.gaps, [0, 0], "A lost nothing while B stalled");
    let va = viewer(&report, 0);
    assert_eq!(va.webrtc.queue_overflows, 0, "{:?}", va.webrtc);
}

#[test]
fn whep_errors_over_https() {
    let server = Server::start(config());
    let (status, _, body) = https(server.addr, "POST", "/whep", "this is not SDP");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad offer"), "{body}");
    let (status, _, _) = https(server.addr, "DELETE", "/whep/1-0000000000000000", "");
    assert_eq!(status, 404);
    let (status, head, _) = https(server.addr, "OPTIONS", "/whep", "");
    assert_eq!(status, 204);
    assert!(head.contains("accept-post: application/sdp"), "{head}");
    let report = server.finish();
    assert!(report.viewers.is_empty());
}

/// One streamer, two outputs from the same encoders: a headless headset over QUIC and a
/// WebRTC viewer both decode both eyes, each eye's pixel code on its own track.
#[test]
fn one_streamer_serves_the_headset_and_a_webrtc_viewer_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let identity = binoc_net::Identity::generate().unwrap();
    let headset = headset_core::Shared::new(None, None);
    let client = rt.block_on(async {
        headset_core::Client::bind(
            "127.0.0.1:0".parse().unwrap(),
            &identity,
            headset.clone(),
            Arc::new(headset_core::Headless),
        )
        .unwrap()
    });
    let headset_addr = client.local_addr().unwrap();
    let client_task = rt.spawn(client.run());

    let mut cfg = config();
    cfg.transport.kinds = vec![TransportKind::Quic, TransportKind::Webrtc];
    cfg.transport.peer_fingerprint = Some(identity.fingerprint());
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let session = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        rt.spawn(async move {
            let shared = session::Shared::new(&cfg);
            let quic =
                QuicOutput::connect(&cfg, headset_addr, shared.feedback.clone(), false, None)
                    .await
                    .expect("the headset answers");
            let webrtc = WebrtcOutput::start(&cfg, shared.feedback.clone())
                .await
                .expect("listening");
            addr_tx.send(webrtc.local_addr()).unwrap();
            let outputs: Vec<Box<dyn StreamOutput>> = vec![Box::new(quic), Box::new(webrtc)];
            session::run(&cfg, &shared, outputs, None, stop).await
        })
    };
    let web_addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("listening");
    let peer = Peer::connect_with(web_addr, true);
    // Until the streamer has matched 30 of the viewer's markers per eye (markers still in
    // flight at DELETE are not counted).
    peer.wait_for("30 decoded pictures per eye, their markers matched", |s| {
        (0..2).all(|e| s.decoded[e] >= 30 && s.codes[e].len() >= 30 && s.acknowledged[e] >= 30)
    });
    // And until the headset has decoded 30 per eye.
    let t0 = Instant::now();
    while !{
        let r = headset.report();
        r.eyes.left.counts.decoded >= 30 && r.eyes.right.counts.decoded >= 30
    } {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{:?}",
            headset.report()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = peer.leave(web_addr);
    stop.store(true, Ordering::Relaxed);
    let report = rt.block_on(session).unwrap().expect("the session");
    headset.finish();
    rt.block_on(client_task).unwrap().unwrap();

    // The browser: each track shows its own eye's camera, frame numbers only advance.
    for (i, eye) in Eye::BOTH.iter().enumerate() {
        let codes = &seen.codes[i];
        assert!(codes.iter().all(|(e, _)| e == eye), "track {i}: {codes:?}");
        assert!(
            codes.windows(2).all(|w| w[0].1 < w[1].1),
            "track {i} went back"
        );
    }
    let [OutputReport::Quic(quic), OutputReport::Webrtc(web)] = report.outputs.as_slice() else {
        panic!("two outputs, in order: {report:?}");
    };
    // The headset, as it counted, and as the streamer's markers say.
    let client = headset.report();
    let connection = &quic.connections[0];
    for (name, c, s) in [
        ("left", &client.eyes.left, &connection.eyes.left),
        ("right", &client.eyes.right, &connection.eyes.right),
    ] {
        assert!(
            c.counts.decoded >= 30,
            "{name}: headset decoded {}",
            c.counts.decoded
        );
        assert_eq!(c.counts.wrong_eye, 0, "{name}");
        assert_eq!(c.counts.code_mismatch, 0, "{name}");
        assert!(
            s.decoded >= 30 && s.wrong_eye == 0 && s.unmatched_markers == 0,
            "{name}: {s:?}"
        );
    }
    // The viewer's markers carried the codes it read: matched, right eye, right frame.
    let v = viewer(web, 0);
    for (name, e) in [
        ("left", &v.report.eyes.left),
        ("right", &v.report.eyes.right),
    ] {
        assert!(e.decoded >= 30, "{name}: {e:?}");
        assert_eq!(
            (e.wrong_eye, e.code_mismatch, e.unmatched_markers),
            (0, 0, 0),
            "{name}: {e:?}"
        );
    }
    // One pair of encoders fed both: the same captures on both sides.
    assert_eq!(connection.eyes.left.captured, web.captured[0]);
    assert_eq!(connection.eyes.right.captured, web.captured[1]);
    assert!(quic.connection_lost.is_none(), "{:?}", quic.connection_lost);
}

/// `pi-streamer --transport webrtc` on every interface with no token configured (so it makes
/// an invitation), as a child process: the child, the address to reach it on (127.0.0.1), the
/// invitation's token, and the lines it printed up to and with the QR code.
fn invited_streamer(
    dir: &std::path::Path,
) -> (std::process::Child, SocketAddr, String, Vec<String>) {
    use std::io::BufRead;
    let mut child = command(env!("CARGO_BIN_EXE_pi-streamer"))
        .args([
            "--transport",
            "webrtc",
            "--listen",
            "0.0.0.0:0",
            "--size",
            "320x240",
        ])
        .arg("--state-dir")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = loop {
        let line = lines
            .next()
            .expect("the streamer printed an invitation")
            .unwrap();
        printed.push(line.clone());
        if let Some(u) = line.trim().strip_prefix("https://") {
            break u.to_string();
        }
    };
    printed.extend(lines.by_ref().take(8).map(|l| l.unwrap()));
    let (host_port, token) = url
        .split_once("/?token=")
        .expect("the URL carries the token");
    let port: u16 = host_port.rsplit(':').next().unwrap().parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (child, addr, token.to_string(), printed)
}

/// Browsers by invitation: listening on every interface with no token configured, the
/// streamer prints a viewer URL with a fresh token (and its QR code); a request without it,
/// or with a token of an earlier run, is refused with words saying which, before the offer is
/// read; the printed token gets the offer looked at; a session cannot be deleted without it.
/// (An expired invitation: `invite::tests`, with the time passed in.)
#[test]
fn off_loopback_viewers_need_the_printed_invitation() {
    let dir = std::env::temp_dir().join(format!("binoc-invite-{}", std::process::id()));
    let (mut child, addr, token, printed) = invited_streamer(&dir);
    // The QR code follows the URL.
    assert!(
        printed.iter().any(|l| l.contains('█') || l.contains('▀')),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains("invitation, valid until")),
        "{printed:?}"
    );
    assert_eq!(token.len(), 32);
    let token = token.as_str();

    let (status, _, body) = https(addr, "POST", "/whep", "v=0");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("needs an invitation"), "{body}");
    let stale = "0123456789abcdef0123456789abcdef";
    let (status, _, body) = https_auth(addr, "POST", "/whep", "v=0", stale);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("stale"), "{body}");
    // The printed token: the offer is read (and this one is refused as an offer).
    let (status, _, body) = https_auth(addr, "POST", "/whep", "v=0", token);
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = https_auth(addr, "DELETE", "/whep/1-0123456789abcdef", "", stale);
    assert_eq!(status, 401);
    // The page itself needs no token (it reads it from its URL).
    assert_eq!(https(addr, "GET", "/", "").0, 200);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The drip test's 20 client threads and its server process starve a server beside them under
/// emulation (the aarch64 leg): the stranger test's connection over the cap then went unclosed
/// for its 5 s. The two take turns.
fn apart_from_the_drip() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Issue 15's drip attack: 20 clients (20 addresses, under the per-address cap) each send an
/// invited offer's 2,000-byte body one byte per TLS record. Each connection is answered or
/// cut at the body deadline, and the server's memory grows by less than 10 MB (it grew ~3.8 KB
/// per byte sent before).
#[test]
fn a_body_dripped_one_byte_per_tls_record_costs_bounded_memory() {
    let _alone = apart_from_the_drip();
    // The server in its own process, so only its memory is measured (the other tests of this
    // binary run beside this one).
    let dir = std::env::temp_dir().join(format!("binoc-drip-{}", std::process::id()));
    let (mut child, addr, token, _) = invited_streamer(&dir);
    let pid = child.id();
    let auth = Arc::new(format!("Authorization: Bearer {token}\r\n"));
    // 20 clients on 20 addresses, each dripping `bytes` of a 2,000-byte body.
    let drip = |bytes: usize| -> Vec<(usize, String)> {
        let clients: Vec<_> = (0..20u8)
            .map(|i| {
                let auth = auth.clone();
                std::thread::spawn(move || {
                    let from = std::net::IpAddr::from([127, 0, 1, 2 + i]);
                    let mut tls = tls_to(Some(from), addr, None);
                    write!(
                        tls,
                        "POST /whep HTTP/1.1\r\nHost: localhost\r\n{auth}\
                         Content-Type: application/sdp\r\nContent-Length: 2000\r\n\r\n"
                    )
                    .unwrap();
                    let mut sent = 0;
                    for _ in 0..bytes {
                        // One write, one flush: one TLS record per byte.
                        if tls.write_all(b"a").and_then(|()| tls.flush()).is_err() {
                            break; // cut by the server (its deadline)
                        }
                        sent += 1;
                        std::thread::sleep(Duration::from_micros(500));
                    }
                    if sent < 2000 {
                        let _ = tls.sock.shutdown(std::net::Shutdown::Write);
                    }
                    (sent, status_of(&mut tls))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    };
    // A first, short round: threads, their allocator arenas and TLS state exist afterwards, so
    // what the second round adds is what the server keeps per byte.
    drip(50);
    let before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let answers = drip(2000);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let after = peak.load(Ordering::Relaxed);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("drip: RSS {before} → peak {after} KiB; (bytes sent, status): {answers:?}");
    for (sent, status) in &answers {
        // The whole body arrived (a bad offer: 400), or it was cut at the deadline (408).
        assert!(
            status.contains("400") || status.contains("408") || *sent < 2000,
            "{sent} {status}"
        );
    }
    assert!(after < before + 10 * 1024, "RSS {before} → {after} KiB");
}
