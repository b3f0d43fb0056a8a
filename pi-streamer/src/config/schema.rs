//! The schema walk: reads the YAML node tree ([`super::yaml`]) into the typed configuration
//! ([`super::model`]), recording every problem with its key and line, then checks across keys
//! (crops against the frame, the eyes as one stereo pair). [`StreamerConfig::validate`]
//! re-checks a configuration changed after loading (the command-line overrides) with the same
//! checks and the same [`limits`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use shared_proto::Eye;

use super::limits::{self, IntLimit, RealLimit};
use super::model::*;
use super::yaml::{Checker, Node, Value};

pub use binoc_schema::ConfigError;

/// The fingerprint rule is binoc-net's (what the endpoint checks when it dials).
fn check_fingerprint(fp: &str) -> Result<(), String> {
    if binoc_net::identity::is_fingerprint(fp) {
        Ok(())
    } else {
        Err(format!(
            "`{fp}` is not a SHA-256 fingerprint (64 hex digits)"
        ))
    }
}

/// The quantisers in order: why not, if they are not (only quantisers within their limits
/// compare).
fn qp_order(s: &EncoderSettings) -> Option<String> {
    let valid =
        limits::QP_MIN.contains(s.qp_min.into()) && limits::QP_MAX.contains(s.qp_max.into());
    (valid && s.qp_min > s.qp_max).then(|| format!("{} is above qp_max {}", s.qp_min, s.qp_max))
}

/// Reads a whole number within `limit` (into a type that holds all of it).
fn int<T: TryFrom<i64>>(limit: IntLimit) -> impl Fn(&mut Checker, &Node, &str) -> Option<T> {
    move |c, n, k| {
        let v = c.int_in(n, k, limit)?;
        Some(T::try_from(v).unwrap_or_else(|_| panic!("{} does not fit its field", limit.key)))
    }
}

/// Reads a number within `limit`.
fn real(limit: RealLimit) -> impl Fn(&mut Checker, &Node, &str) -> Option<f64> {
    move |c, n, k| c.real_in(n, k, limit)
}

const PROFILE_KEYS: &[&str] = &["eyes", "encoder", "transport", "deadlines"];
const EYE_KEYS: &[&str] = &[
    "source",
    "size",
    limits::FPS.key,
    limits::BITRATE_MBPS.key,
    limits::IDR_INTERVAL_FRAMES.key,
    "gop_frames",
    limits::CROP.key,
    limits::OFFSET.key,
    "flip",
    "rotation",
    "pixel_code",
    "camera",
];

fn read_size(c: &mut Checker, n: &Node, k: &str) -> Option<Size> {
    c.parsed(n, k)
}

fn read_eye(
    c: &mut Checker,
    node: &Node,
    path: &str,
    lines: &mut BTreeMap<String, u64>,
) -> EyeConfig {
    let mut e = EyeConfig::default();
    let Some(mut m) = c.map(node, path) else {
        return e;
    };
    lines.insert(path.to_string(), node.line);
    for k in EYE_KEYS {
        lines.insert(m.key(k), m.line_of(k));
    }
    m.set(c, "source", &mut e.source, |c, n, k| c.parsed(n, k));
    m.set(c, "size", &mut e.size, read_size);
    m.set(c, limits::FPS.key, &mut e.fps, real(limits::FPS));
    m.set(
        c,
        limits::BITRATE_MBPS.key,
        &mut e.bitrate_mbps,
        real(limits::BITRATE_MBPS),
    );
    // `gop_frames` is the same setting under the name many camera tools use.
    if m.get("gop_frames").is_some() && m.get("idr_interval_frames").is_some() {
        c.problem(
            m.line_of("gop_frames"),
            &m.key("gop_frames"),
            "gop_frames and idr_interval_frames are the same setting: give one",
        );
    }
    for key in [limits::IDR_INTERVAL_FRAMES.key, "gop_frames"] {
        m.set(
            c,
            key,
            &mut e.idr_interval_frames,
            int(limits::IDR_INTERVAL_FRAMES),
        );
    }
    m.set_opt(c, limits::CROP.key, &mut e.crop, |c, n, k| {
        let mut cm = c.map(n, k)?;
        let mut vals = [None::<u32>; 4];
        for (i, f) in ["x", "y", "width", "height"].iter().enumerate() {
            match cm.get(f) {
                Some(v) => {
                    let key = cm.key(f);
                    vals[i] = int(limits::CROP)(c, v, &key);
                    if let Some(x) = vals[i] {
                        if x % 2 != 0 || (i >= 2 && x == 0) {
                            c.problem(
                                v.line,
                                &key,
                                format!(
                                    "{x} must be even{}",
                                    if i >= 2 { " and non-zero" } else { "" }
                                ),
                            );
                            vals[i] = None;
                        }
                    }
                }
                None => c.problem(
                    n.line,
                    k,
                    format!("missing `{f}` (a crop needs x, y, width, height)"),
                ),
            }
        }
        cm.finish(c, &["x", "y", "width", "height"]);
        let [Some(x), Some(y), Some(width), Some(height)] = vals else {
            return None;
        };
        Some(Crop {
            x,
            y,
            width,
            height,
        })
    });
    m.set(c, limits::OFFSET.key, &mut e.offset, |c, n, k| {
        let mut om = c.map(n, k)?;
        let mut o = Offset::default();
        for (f, slot) in [("x", &mut o.x), ("y", &mut o.y)] {
            om.set(c, f, slot, |c, n, k| {
                let v: i32 = int(limits::OFFSET)(c, n, k)?;
                if v % 2 != 0 {
                    c.problem(n.line, k, format!("{v} must be even (4:2:0 chroma)"));
                    return None;
                }
                Some(v)
            });
        }
        om.finish(c, &["x", "y"]);
        Some(o)
    });
    m.set(c, "flip", &mut e.flip, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("none", Flip::None),
                ("horizontal", Flip::Horizontal),
                ("vertical", Flip::Vertical),
                ("both", Flip::Both),
            ],
        )
    });
    let mut rotation = Flip::None;
    m.set(c, "rotation", &mut rotation, |c, n, k| {
        c.choice(n, k, &[("0", Flip::None), ("180", Flip::Both)])
    });
    e.flip = e.flip.then(rotation);
    m.set(c, "pixel_code", &mut e.pixel_code, |c, n, k| {
        c.choice(
            n,
            k,
            &[("auto", None), ("true", Some(true)), ("false", Some(false))],
        )
    });
    m.set(c, "camera", &mut e.camera, read_camera);
    m.finish(c, EYE_KEYS);
    e
}

fn read_camera(c: &mut Checker, n: &Node, k: &str) -> Option<CameraSettings> {
    let mut m = c.map(n, k)?;
    let mut s = CameraSettings::default();
    m.set_opt(c, "sensor_mode", &mut s.sensor_mode, read_size);
    m.set_opt(c, "capture_size", &mut s.capture_size, read_size);
    m.set(c, "format", &mut s.format, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", CaptureFormat::Auto),
                ("yuyv", CaptureFormat::Yuyv),
                ("mjpeg", CaptureFormat::Mjpeg),
                ("nv12", CaptureFormat::Nv12),
            ],
        )
    });
    m.set(c, limits::BUFFERS.key, &mut s.buffers, int(limits::BUFFERS));
    m.set_opt(
        c,
        limits::EXPOSURE_US.key,
        &mut s.exposure_us,
        int(limits::EXPOSURE_US),
    );
    m.set_opt(
        c,
        limits::ANALOGUE_GAIN.key,
        &mut s.analogue_gain,
        real(limits::ANALOGUE_GAIN),
    );
    m.set(c, "awb", &mut s.awb, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", AwbMode::Auto),
                ("incandescent", AwbMode::Incandescent),
                ("tungsten", AwbMode::Tungsten),
                ("fluorescent", AwbMode::Fluorescent),
                ("indoor", AwbMode::Indoor),
                ("daylight", AwbMode::Daylight),
                ("cloudy", AwbMode::Cloudy),
                ("off", AwbMode::Off),
            ],
        )
    });
    m.set_opt(
        c,
        limits::COLOUR_GAIN.key,
        &mut s.colour_gains,
        |c, n, k| {
            let Value::Seq(items) = &n.value else {
                c.problem(
                    n.line,
                    k,
                    format!("expected [red, blue], found {}", n.value.kind()),
                );
                return None;
            };
            if items.len() != 2 {
                c.problem(
                    n.line,
                    k,
                    format!("expected two gains [red, blue], found {}", items.len()),
                );
                return None;
            }
            let r = c.real_in(&items[0], k, limits::COLOUR_GAIN);
            let b = c.real_in(&items[1], k, limits::COLOUR_GAIN);
            Some([r?, b?])
        },
    );
    if s.awb == AwbMode::Off && s.colour_gains.is_none() {
        c.problem(
            m.line_of("awb"),
            &m.key("awb"),
            "`off` needs colour_gains: [red, blue]",
        );
    }
    m.finish(
        c,
        &[
            "sensor_mode",
            "capture_size",
            "format",
            limits::BUFFERS.key,
            limits::EXPOSURE_US.key,
            limits::ANALOGUE_GAIN.key,
            "awb",
            limits::COLOUR_GAIN.key,
        ],
    );
    Some(s)
}

fn read_encoder(c: &mut Checker, n: &Node, k: &str) -> Option<EncoderSettings> {
    let mut m = c.map(n, k)?;
    let mut s = EncoderSettings::default();
    m.set(c, "kind", &mut s.kind, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", EncoderKind::Auto),
                ("openh264", EncoderKind::Openh264),
                ("x264", EncoderKind::X264),
                ("v4l2m2m", EncoderKind::V4l2m2m),
            ],
        )
    });
    m.set(c, limits::THREADS.key, &mut s.threads, int(limits::THREADS));
    m.set(c, "complexity", &mut s.complexity, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("low", Complexity::Low),
                ("medium", Complexity::Medium),
                ("high", Complexity::High),
            ],
        )
    });
    m.set(c, "preset", &mut s.preset, |c, n, k| {
        const PRESETS: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
        ];
        let p = c.string(n, k)?;
        if !PRESETS.contains(&p) {
            c.problem(
                n.line,
                k,
                format!(
                    "unknown x264 preset `{p}` (expected one of: {})",
                    PRESETS.join(", ")
                ),
            );
            return None;
        }
        Some(p.to_string())
    });
    m.set(c, limits::QP_MIN.key, &mut s.qp_min, int(limits::QP_MIN));
    m.set(c, limits::QP_MAX.key, &mut s.qp_max, int(limits::QP_MAX));
    m.set_opt(
        c,
        limits::SLICE_BYTES.key,
        &mut s.slice_bytes,
        int(limits::SLICE_BYTES),
    );
    let mut slices = None;
    m.set_opt(c, limits::SLICES.key, &mut slices, int(limits::SLICES));
    m.set(c, "refresh", &mut s.refresh, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("intra", RefreshMode::Intra),
                ("keyframe", RefreshMode::Keyframe),
            ],
        )
    });
    m.set(c, "sps_pps", &mut s.sps_pps, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("every_idr", SpsPpsMode::EveryIdr),
                ("first_only", SpsPpsMode::FirstOnly),
            ],
        )
    });
    m.set(c, "device", &mut s.device, |c, n, k| {
        c.string(n, k).map(str::to_string)
    });
    // slice_bytes alone means whole frames cut by size.
    s.slices = slices.unwrap_or(if s.slice_bytes.is_some() { 1 } else { s.slices });
    if let (Some(_), true) = (s.slice_bytes, s.slices > 1) {
        let k = limits::SLICES.key;
        c.problem(
            m.line_of(k),
            &m.key(k),
            "contradicts slice_bytes: slices cut each frame into that many row slices sent as \
             they are encoded; slice_bytes cuts by size and sends whole frames (set slices: 1 \
             to use slice_bytes)",
        );
    }
    if let Some(why) = qp_order(&s) {
        let qp_min = limits::QP_MIN.key;
        c.problem(m.line_of(qp_min), &m.key(qp_min), why);
    }
    m.finish(
        c,
        &[
            "kind",
            limits::THREADS.key,
            "complexity",
            "preset",
            limits::QP_MIN.key,
            limits::QP_MAX.key,
            limits::SLICE_BYTES.key,
            limits::SLICES.key,
            "refresh",
            "sps_pps",
            "device",
        ],
    );
    Some(s)
}

pub(super) fn read_profile(c: &mut Checker, node: &Node, path: &str) -> StreamerConfig {
    let mut cfg = StreamerConfig::default();
    let Some(mut m) = c.map(node, path) else {
        return cfg;
    };
    let mut lines = BTreeMap::new();
    if let Some(eyes) = m.get("eyes") {
        let epath = m.key("eyes");
        if let Some(mut em) = c.map(eyes, &epath) {
            for eye in Eye::BOTH {
                if let Some(n) = em.get(&eye.to_string()) {
                    *cfg.eyes.get_mut(eye) = read_eye(c, n, &em.key(&eye.to_string()), &mut lines);
                }
            }
            em.finish(c, &["left", "right"]);
        }
    }
    let ekey = m.key("encoder");
    lines.insert(ekey, m.line_of("encoder"));
    m.set(c, "encoder", &mut cfg.encoder, read_encoder);
    m.set(c, "transport", &mut cfg.transport, read_transport);
    m.set(c, "deadlines", &mut cfg.deadlines, |c, n, k| {
        let mut d = Deadlines::default();
        let mut dm = c.map(n, k)?;
        dm.set(
            c,
            limits::MAX_LATENCY_MS.key,
            &mut d.max_latency_ms,
            real(limits::MAX_LATENCY_MS),
        );
        dm.set(
            c,
            limits::MIN_IDR_INTERVAL_MS.key,
            &mut d.min_idr_interval_ms,
            real(limits::MIN_IDR_INTERVAL_MS),
        );
        dm.finish(
            c,
            &[limits::MAX_LATENCY_MS.key, limits::MIN_IDR_INTERVAL_MS.key],
        );
        Some(d)
    });
    m.finish(c, PROFILE_KEYS);
    cfg.lines = lines;
    cross_checks(c, &cfg, path);
    cfg
}

fn read_transport(c: &mut Checker, n: &Node, k: &str) -> Option<TransportConfig> {
    let mut t = TransportConfig::default();
    let mut tm = c.map(n, k)?;
    tm.set_opt(c, "peer", &mut t.peer, |c, n, k| {
        c.string(n, k).map(str::to_string)
    });
    tm.set(
        c,
        limits::PACING_MBPS.key,
        &mut t.pacing_mbps,
        real(limits::PACING_MBPS),
    );
    tm.set(
        c,
        limits::MAX_DATAGRAM_BYTES.key,
        &mut t.max_datagram_bytes,
        int(limits::MAX_DATAGRAM_BYTES),
    );
    tm.set_opt(c, "peer_fingerprint", &mut t.peer_fingerprint, |c, n, k| {
        let fp = c.string(n, k)?;
        if let Err(why) = check_fingerprint(fp) {
            c.problem(n.line, k, why);
            return None;
        }
        Some(fp.to_string())
    });
    tm.set(c, "congestion", &mut t.congestion, |c, n, k| {
        c.choice(n, k, &binoc_net::congestion::Congestion::ALL)
    });
    tm.set(c, "fec", &mut t.fec, |c, n, k| c.parsed(n, k));
    tm.set(c, "kind", &mut t.kinds, read_transport_kinds);
    tm.set(c, "webrtc", &mut t.webrtc, read_webrtc);
    tm.finish(
        c,
        &[
            "peer",
            limits::PACING_MBPS.key,
            limits::MAX_DATAGRAM_BYTES.key,
            "congestion",
            "fec",
            "peer_fingerprint",
            "kind",
            "webrtc",
        ],
    );
    Some(t)
}

/// `transport.kind`: one name, or a list of names (each at most once).
fn read_transport_kinds(c: &mut Checker, n: &Node, k: &str) -> Option<Vec<TransportKind>> {
    let names = TransportKind::ALL.map(|t| (t.name(), t));
    let items = match &n.value {
        Value::Seq(items) => items.as_slice(),
        _ => std::slice::from_ref(n),
    };
    let (mut kinds, mut lines) = (Vec::new(), Vec::new());
    let mut ok = true;
    for item in items {
        match c.choice(item, k, &names) {
            Some(t) => {
                kinds.push(t);
                lines.push(item.line);
            }
            None => ok = false,
        }
    }
    for (i, why) in limits::transport_kinds(&kinds) {
        // A list emptied by unknown names has its problems reported already.
        if i.is_none() && !ok {
            continue;
        }
        c.problem(i.map_or(n.line, |i| lines[i]), k, why);
        ok = false;
    }
    ok.then_some(kinds)
}

fn read_webrtc(c: &mut Checker, n: &Node, k: &str) -> Option<WebrtcConfig> {
    let mut w = WebrtcConfig::default();
    let mut m = c.map(n, k)?;
    m.set(c, "listen", &mut w.listen, |c, n, k| {
        let s = c.string(n, k)?;
        if s.parse::<std::net::SocketAddr>().is_err() {
            c.problem(
                n.line,
                k,
                format!("`{s}` is not ADDR:PORT (e.g. 0.0.0.0:8443)"),
            );
            return None;
        }
        Some(s.to_string())
    });
    m.set(
        c,
        limits::MIN_BITRATE_MBPS.key,
        &mut w.min_bitrate_mbps,
        real(limits::MIN_BITRATE_MBPS),
    );
    m.set_opt(c, "tls_cert", &mut w.tls_cert, |c, n, k| {
        c.string(n, k).map(PathBuf::from)
    });
    m.set_opt(c, "tls_key", &mut w.tls_key, |c, n, k| {
        c.string(n, k).map(PathBuf::from)
    });
    m.set_opt(c, "udp_ports", &mut w.udp_ports, |c, n, k| c.parsed(n, k));
    m.set_opt(c, "announce_ip", &mut w.announce_ip, |c, n, k| {
        let s = c.string(n, k)?;
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                c.problem(
                    n.line,
                    k,
                    format!("`{s}` is not an IP address viewers can send to (e.g. 192.168.1.20)"),
                );
                None
            }
        }
    });
    m.set_opt(c, "token", &mut w.token, |c, n, k| {
        let t = c.string(n, k)?;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            c.problem(n.line, k, "a token is printable ASCII without spaces");
            return None;
        }
        Some(t.to_string())
    });
    m.set(
        c,
        limits::MAX_VIEWERS.key,
        &mut w.max_viewers,
        int(limits::MAX_VIEWERS),
    );
    let line = m.line_of("tls_key").max(m.line_of("tls_cert"));
    m.finish(
        c,
        &[
            "listen",
            limits::MIN_BITRATE_MBPS.key,
            "tls_cert",
            "tls_key",
            "token",
            limits::MAX_VIEWERS.key,
            "udp_ports",
            "announce_ip",
        ],
    );
    if w.tls_cert.is_some() != w.tls_key.is_some() {
        c.problem(
            line,
            k,
            "tls_cert and tls_key go together (or neither, for a self-signed certificate)",
        );
    }
    Some(w)
}

/// Checks across keys (crop against the frame, the eyes as one stereo pair).
fn cross_checks(c: &mut Checker, cfg: &StreamerConfig, path: &str) {
    let line = |k: &str| cfg.lines.get(k).copied().unwrap_or(0);
    let prefix = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    for eye in Eye::BOTH {
        let e = cfg.eyes.get(eye);
        let ek = prefix(&format!("eyes.{eye}"));
        if let (Some(crop), Some(frame)) = (e.effective_crop(), e.source_size()) {
            let shifted = e.offset != Offset::default();
            let raw = e.crop.expect("effective crop comes from crop");
            let bad_offset =
                (raw.x as i64 + e.offset.x as i64) < 0 || (raw.y as i64 + e.offset.y as i64) < 0;
            if bad_offset
                || crop.x + crop.width > frame.width
                || crop.y + crop.height > frame.height
            {
                c.problem(
                    line(&format!("{ek}.crop")),
                    &format!("{ek}.crop"),
                    format!(
                        "{}x{}+{}+{}{} lies outside the {} source frame",
                        raw.width,
                        raw.height,
                        raw.x,
                        raw.y,
                        if shifted {
                            format!(" shifted by offset ({}, {})", e.offset.x, e.offset.y)
                        } else {
                            String::new()
                        },
                        frame
                    ),
                );
            }
        }
        if e.crop.is_none() && e.offset != Offset::default() {
            c.problem(
                line(&format!("{ek}.offset")),
                &format!("{ek}.offset"),
                "an offset shifts the crop window: give a crop too",
            );
        }
    }
    let (l, r) = (&cfg.eyes.left, &cfg.eyes.right);
    // Only rates within their limit compare (outside it, the limit is the problem).
    if l.fps != r.fps && limits::FPS.contains(l.fps) && limits::FPS.contains(r.fps) {
        let k = prefix("eyes.right.fps");
        c.problem(
            line(&k).max(line(&prefix("eyes.right"))),
            &k,
            format!(
                "{} differs from eyes.left.fps {}: both cameras run as one stereo pair",
                r.fps, l.fps
            ),
        );
    }
}

impl StreamerConfig {
    /// Re-checks a configuration changed after loading (the command-line overrides) with the
    /// checks loading makes: every value against its [`limits`], the quantiser order, the
    /// fingerprint, the transport list, the checks across keys. A value outside its limit is
    /// reported under the flag that overrides it (`--fps`), else under its key; a problem both
    /// eyes share is reported once.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut c = Checker::default();
        recheck_limits(&mut c, self);
        if let Some(why) = qp_order(&self.encoder) {
            c.problem(0, "encoder.qp_min", why);
        }
        if let Some(fp) = &self.transport.peer_fingerprint {
            if let Err(why) = check_fingerprint(fp) {
                c.problem(0, "transport.peer_fingerprint", why);
            }
        }
        for (_, why) in limits::transport_kinds(&self.transport.kinds) {
            c.problem(0, &format!("--{}", limits::TRANSPORT_KIND_FLAG), why);
        }
        cross_checks(&mut c, self, "");
        let mut seen = Vec::new();
        c.problems.retain(|p| {
            let new = !seen.contains(p);
            if new {
                seen.push(p.clone());
            }
            new
        });
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                origin: origin.to_string(),
                problems: c.problems,
            })
        }
    }
}

/// `--flag` when a flag overrides the key, else the key.
fn flagged(flag: Option<&str>, key: &str) -> String {
    flag.map_or_else(|| key.to_string(), |f| format!("--{f}"))
}

fn recheck_int(c: &mut Checker, limit: IntLimit, key: &str, v: impl Into<i64>) {
    if let Err(why) = limit.check(v.into()) {
        c.problem(0, &flagged(limit.flag, key), why);
    }
}

fn recheck_real(c: &mut Checker, limit: RealLimit, key: &str, v: f64) {
    if let Err(why) = limit.check(v) {
        c.problem(0, &flagged(limit.flag, key), why);
    }
}

/// Every value of a typed configuration against its limit (what the walk checked on reading).
fn recheck_limits(c: &mut Checker, cfg: &StreamerConfig) {
    use limits::*;
    for eye in Eye::BOTH {
        let e = cfg.eyes.get(eye);
        let at = |k: &str| format!("eyes.{eye}.{k}");
        recheck_real(c, FPS, &at(FPS.key), e.fps);
        recheck_real(c, BITRATE_MBPS, &at(BITRATE_MBPS.key), e.bitrate_mbps);
        let idr_interval = e.idr_interval_frames;
        recheck_int(
            c,
            IDR_INTERVAL_FRAMES,
            &at(IDR_INTERVAL_FRAMES.key),
            idr_interval,
        );
        if let Some(cr) = e.crop {
            for (f, v) in [
                ("x", cr.x),
                ("y", cr.y),
                ("width", cr.width),
                ("height", cr.height),
            ] {
                recheck_int(c, CROP, &at(&format!("{}.{f}", CROP.key)), v);
            }
        }
        for (f, v) in [("x", e.offset.x), ("y", e.offset.y)] {
            recheck_int(c, OFFSET, &at(&format!("{}.{f}", OFFSET.key)), v);
        }
        let cam = &e.camera;
        let at = |k: &str| format!("eyes.{eye}.camera.{k}");
        recheck_int(c, BUFFERS, &at(BUFFERS.key), cam.buffers);
        if let Some(x) = cam.exposure_us {
            recheck_int(c, EXPOSURE_US, &at(EXPOSURE_US.key), x);
        }
        if let Some(g) = cam.analogue_gain {
            recheck_real(c, ANALOGUE_GAIN, &at(ANALOGUE_GAIN.key), g);
        }
        for g in cam.colour_gains.into_iter().flatten() {
            recheck_real(c, COLOUR_GAIN, &at(COLOUR_GAIN.key), g);
        }
    }
    let s = &cfg.encoder;
    let at = |k: &str| format!("encoder.{k}");
    recheck_int(c, THREADS, &at(THREADS.key), s.threads);
    recheck_int(c, QP_MIN, &at(QP_MIN.key), s.qp_min);
    recheck_int(c, QP_MAX, &at(QP_MAX.key), s.qp_max);
    if let Some(b) = s.slice_bytes {
        recheck_int(c, SLICE_BYTES, &at(SLICE_BYTES.key), b);
    }
    recheck_int(c, SLICES, &at(SLICES.key), s.slices);
    let t = &cfg.transport;
    let at = |k: &str| format!("transport.{k}");
    recheck_real(c, PACING_MBPS, &at(PACING_MBPS.key), t.pacing_mbps);
    let max_datagram = t.max_datagram_bytes;
    recheck_int(
        c,
        MAX_DATAGRAM_BYTES,
        &at(MAX_DATAGRAM_BYTES.key),
        max_datagram,
    );
    let w = &t.webrtc;
    let at = |k: &str| format!("transport.webrtc.{k}");
    let min_bitrate = w.min_bitrate_mbps;
    recheck_real(c, MIN_BITRATE_MBPS, &at(MIN_BITRATE_MBPS.key), min_bitrate);
    recheck_int(c, MAX_VIEWERS, &at(MAX_VIEWERS.key), w.max_viewers);
    let d = &cfg.deadlines;
    let at = |k: &str| format!("deadlines.{k}");
    recheck_real(c, MAX_LATENCY_MS, &at(MAX_LATENCY_MS.key), d.max_latency_ms);
    let min_idr = d.min_idr_interval_ms;
    recheck_real(
        c,
        MIN_IDR_INTERVAL_MS,
        &at(MIN_IDR_INTERVAL_MS.key),
        min_idr,
    );
}
