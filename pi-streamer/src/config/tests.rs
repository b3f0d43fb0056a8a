use shared_proto::Eye;

use super::*;

fn err(yaml: &str) -> String {
    StreamerConfig::from_yaml(yaml, "t.yaml")
        .unwrap_err()
        .to_string()
}

fn problems(yaml: &str) -> Vec<(u64, String)> {
    ConfigFile::from_yaml(yaml, "t.yaml")
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| (p.line, p.key))
        .collect()
}

#[test]
fn embedded_default_is_valid() {
    let c = StreamerConfig::embedded();
    assert_eq!(c.eyes.left.source, SourceSpec::Test);
    assert_eq!(
        c.eyes.right.size,
        Size {
            width: 1280,
            height: 720
        }
    );
}

#[test]
fn shipped_profiles_are_valid() {
    let ConfigFile::Profiles(p) = ConfigFile::from_yaml(SHIPPED_PROFILES, "camera_profiles.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("camera_profiles.yaml holds named profiles")
    };
    assert!(p.profiles.len() >= 3, "{:?}", p.profiles.keys());
    let imx = p.get(Some("imx708-wide-120")).unwrap();
    assert_eq!(imx.eyes.left.source.to_string(), "libcamera:0");
    assert_eq!(imx.eyes.right.source.to_string(), "libcamera:1");
    assert_eq!(
        imx.eyes.left.camera.sensor_mode,
        Some(Size {
            width: 1536,
            height: 864
        })
    );
    assert!(p.get(None).is_ok());
    assert!(p.get(Some("nope")).unwrap_err().contains("imx708-wide-120"));
}

#[test]
fn the_pixel_code_is_off_over_a_real_cameras_picture_unless_asked_for() {
    // The shipped camera profiles draw nothing over the picture.
    let ConfigFile::Profiles(p) =
        ConfigFile::from_yaml(SHIPPED_PROFILES, "camera_profiles.yaml").unwrap()
    else {
        panic!("profiles")
    };
    for (name, prof) in &p.profiles {
        for e in [&prof.eyes.left, &prof.eyes.right] {
            if !matches!(e.source, SourceSpec::Test | SourceSpec::Y4m { .. }) {
                assert!(!e.pixel_code(), "{name}: {} draws the pixel code", e.source);
            }
        }
    }
    // The synthetic source (the embedded default) carries it: it is made for measuring.
    let c = StreamerConfig::embedded();
    assert!(c.eyes.left.pixel_code() && c.eyes.right.pixel_code());
    let read = |v: &str, source: &str| {
        StreamerConfig::from_yaml(
            &format!("eyes:\n  left:\n    source: {source}\n    pixel_code: {v}\n"),
            "t",
        )
        .unwrap()
        .eyes
        .left
        .pixel_code()
    };
    assert!(!read("auto", "v4l2:/dev/video0"));
    assert!(read("true", "v4l2:/dev/video0"));
    assert!(read("auto", "test"));
    assert!(!read("false", "test"));
    let e = err("eyes:\n  left:\n    pixel_code: sometimes\n");
    assert!(
        e.starts_with("t.yaml:3") && e.contains("eyes.left.pixel_code"),
        "{e}"
    );
}

#[test]
fn an_explicitly_empty_mapping_is_all_defaults_an_empty_file_is_refused() {
    let c = StreamerConfig::from_yaml("{}", "t").unwrap();
    assert_eq!(c.eyes.left.fps, 60.0);
    assert_eq!(c.deadlines.max_latency_ms, 50.0);
    assert_eq!(c.encoder.kind, EncoderKind::Auto);
    // An empty file, or comments only, is almost always the wrong file: said, not run.
    for text in ["", "# only a comment\n\n# another\n"] {
        let e = StreamerConfig::from_yaml(text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml") && e.contains("no settings"), "{e}");
    }
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err("eyes:\n  left:\n    fps: 60\n    bitrate_mbs: 4\n");
    assert!(e.starts_with("t.yaml:4"), "{e}");
    assert!(e.contains("eyes.left.bitrate_mbs"), "{e}");
    assert!(e.contains("did you mean `bitrate_mbps`"), "{e}");
}

#[test]
fn bad_values_name_key_and_line() {
    let e = err("eyes:\n  right:\n    bitrate_mbps: -3\n");
    assert!(
        e.starts_with("t.yaml:3") && e.contains("bitrate_mbps"),
        "{e}"
    );
    let e = err("eyes:\n  left:\n    size: 1280by720\n");
    assert!(e.starts_with("t.yaml:3") && e.contains("1280by720"), "{e}");
    let e = err("eyes:\n  left:\n    fps: fast\n");
    assert!(e.starts_with("t.yaml:3") && e.contains("fps"), "{e}");
    let e = err("eyes:\n  left:\n    source: camera0\n");
    assert!(e.starts_with("t.yaml:3") && e.contains("camera0"), "{e}");
    let e = err("transport:\n  peer: null\n  pacing_mbps: 0\n");
    assert!(
        e.starts_with("t.yaml:3") && e.contains("pacing_mbps"),
        "{e}"
    );
    let e = err("transport:\n  peer_fingerprint: abc\n");
    assert!(
        e.starts_with("t.yaml:2") && e.contains("peer_fingerprint"),
        "{e}"
    );
    let e = err("encoder:\n  qp_min: 40\n  qp_max: 20\n");
    assert!(
        e.starts_with("t.yaml:2") && e.contains("encoder.qp_min"),
        "{e}"
    );
    let e = err("encoder:\n  kind: nvenc\n");
    assert!(e.contains("nvenc") && e.contains("x264"), "{e}");
}

#[test]
fn every_problem_is_reported_once_with_key_and_line() {
    let yaml = "\
eyes:
  left:
    source: libcamera:0
    camera:
      sensor_mode: 1536x864
      exposure_time: 8000
    bitrate_mbps: -4
    crop: {x: 1000, y: 0, width: 1280, height: 720}
  right:
    source: libcamera:1
    fps: sixty
encoder:
  qp_max: 70
";
    let got = problems(yaml);
    assert_eq!(
        got,
        vec![
            (6, "eyes.left.camera.exposure_time".to_string()),
            (7, "eyes.left.bitrate_mbps".to_string()),
            (8, "eyes.left.crop".to_string()),
            (11, "eyes.right.fps".to_string()),
            (13, "encoder.qp_max".to_string()),
        ],
        "{}",
        ConfigFile::from_yaml(yaml, "t.yaml").unwrap_err()
    );
}

#[test]
fn crop_outside_frame_is_an_error_with_line() {
    let e = err(
        "eyes:\n  left:\n    size: 640x480\n    crop: {x: 600, y: 0, width: 100, height: 100}\n",
    );
    assert!(
        e.starts_with("t.yaml:4") && e.contains("eyes.left.crop") && e.contains("outside"),
        "{e}"
    );
    // An alignment offset that pushes a valid crop out of the frame is caught too.
    let e = err("eyes:\n  left:\n    size: 640x480\n    crop: {x: 0, y: 0, width: 640, height: 480}\n    offset: {x: 2, y: 0}\n");
    assert!(e.contains("eyes.left.crop") && e.contains("offset"), "{e}");
    let e = err("eyes:\n  left:\n    offset: {x: 3, y: 0}\n");
    assert!(
        e.contains("eyes.left.offset.x") && e.contains("even"),
        "{e}"
    );
}

#[test]
fn offsets_shift_the_crop_and_rotation_folds_into_flip() {
    let c = StreamerConfig::from_yaml(
        "eyes:\n  left:\n    source: v4l2:/dev/video0\n    camera: {capture_size: 1920x1080}\n    crop: {x: 320, y: 180, width: 1280, height: 720}\n    offset: {x: -4, y: 6}\n    flip: horizontal\n    rotation: 180\n",
        "t",
    )
    .unwrap();
    let l = &c.eyes.left;
    assert_eq!(
        l.effective_crop().unwrap(),
        Crop {
            x: 316,
            y: 186,
            width: 1280,
            height: 720
        }
    );
    assert_eq!(l.flip, Flip::Vertical);
}

#[test]
fn mismatched_fps_is_an_error() {
    let e = err("eyes:\n  left:\n    fps: 60\n  right:\n    fps: 30\n");
    assert!(
        e.contains("eyes.right.fps") && e.starts_with("t.yaml:5"),
        "{e}"
    );
}

#[test]
fn awb_off_needs_gains() {
    let e = err("eyes:\n  left:\n    camera:\n      awb: off\n");
    assert!(
        e.contains("eyes.left.camera.awb") && e.contains("colour_gains"),
        "{e}"
    );
    let c = StreamerConfig::from_yaml(
        "eyes:\n  left:\n    camera:\n      awb: off\n      colour_gains: [1.8, 1.5]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.eyes.left.camera.colour_gains, Some([1.8, 1.5]));
}

#[test]
fn profiles_file_problems_are_prefixed_with_the_profile() {
    let got = problems("default: a\nprofiles:\n  a:\n    eyes: {left: {fps: 0}}\n  b:\n    encoder: {kind: x265}\n");
    assert_eq!(
        got,
        vec![
            (4, "profiles.a.eyes.left.fps".to_string()),
            (6, "profiles.b.encoder.kind".to_string())
        ]
    );
    let got = problems("default: c\nprofiles:\n  a: {}\n");
    assert_eq!(got, vec![(1, "default".to_string())]);
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let e = err("eyes:\n  left: [\n");
    assert!(e.starts_with("t.yaml:"), "{e}");
}

#[test]
fn resolved_config_renders_and_reloads() {
    let c = StreamerConfig::from_yaml(SHIPPED_PROFILES, "p").unwrap();
    let text = c.to_yaml();
    let again =
        StreamerConfig::from_yaml(&text, "rendered").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.to_yaml(), text);
}

#[test]
fn source_specs_parse() {
    assert_eq!("test".parse::<SourceSpec>().unwrap(), SourceSpec::Test);
    assert_eq!(
        "y4m:/a/b.y4m#right".parse::<SourceSpec>().unwrap(),
        SourceSpec::Y4m {
            path: "/a/b.y4m".into(),
            half: Some(Eye::Right)
        }
    );
    assert_eq!(
        "libcamera:1".parse::<SourceSpec>().unwrap(),
        SourceSpec::Libcamera { camera: "1".into() }
    );
    assert_eq!(
        "v4l2:/dev/video2".parse::<SourceSpec>().unwrap(),
        SourceSpec::V4l2 {
            device: "/dev/video2".into()
        }
    );
    assert!("y4m:".parse::<SourceSpec>().is_err());
    assert!("v4l2:".parse::<SourceSpec>().is_err());
    assert!("y4m:x#middle".parse::<SourceSpec>().is_err());
    assert!("webcam".parse::<SourceSpec>().is_err());
}

#[test]
fn gop_frames_is_the_idr_interval() {
    let c = StreamerConfig::from_yaml("eyes:\n  left:\n    gop_frames: 120\n", "t").unwrap();
    assert_eq!(c.eyes.left.idr_interval_frames, 120);
    let e = err("eyes:\n  left:\n    gop_frames: 120\n    idr_interval_frames: 60\n");
    assert!(
        e.contains("same setting") && e.starts_with("t.yaml:3"),
        "{e}"
    );
}

#[test]
fn webrtc_section_is_checked_key_by_key() {
    let c = StreamerConfig::from_yaml(
        "transport:\n  kind: webrtc\n  webrtc:\n    listen: 127.0.0.1:9000\n    token: abc\n    max_viewers: 2\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.transport.kinds, [TransportKind::Webrtc]);
    assert_eq!(c.transport.webrtc.listen, "127.0.0.1:9000");
    assert_eq!(c.transport.webrtc.token.as_deref(), Some("abc"));
    // What check-config prints says a token is set, never the token.
    let shown = c.to_yaml_redacted();
    assert!(
        !shown.contains("abc") && shown.contains("not shown: 3 characters"),
        "{shown}"
    );
    assert_eq!(c.transport.webrtc.max_viewers, 2);
    let p = problems(
        "transport:\n  kind: carrier-pigeon\n  webrtc:\n    listen: everywhere\n    tokn: x\n    token: \"two words\"\n    max_viewers: 0\n    tls_cert: cert.pem\n",
    );
    let keys: Vec<&str> = p.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "transport.kind",
            "transport.webrtc.listen",
            "transport.webrtc.tokn",
            "transport.webrtc.token",
            "transport.webrtc.max_viewers",
            "transport.webrtc",
        ],
        "{p:?}"
    );
    assert_eq!(
        p.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 4, 5, 6, 7, 8]
    );
    assert_eq!(p[0].0, 2);
    let e = err("transport:\n  webrtc:\n    tls_key: k.pem\n");
    assert!(e.contains("tls_cert and tls_key go together"), "{e}");
}

#[test]
fn webrtc_media_ports_and_announced_ip() {
    let c = StreamerConfig::from_yaml(
        "transport:\n  webrtc:\n    udp_ports: \"50000-50010\"\n    announce_ip: 192.168.1.20\n",
        "t.yaml",
    )
    .unwrap();
    let w = &c.transport.webrtc;
    assert_eq!(
        w.udp_ports,
        Some(UdpPorts {
            first: 50000,
            last: 50010
        })
    );
    assert_eq!(w.announce_ip, Some("192.168.1.20".parse().unwrap()));
    let one =
        StreamerConfig::from_yaml("transport:\n  webrtc:\n    udp_ports: 8189\n", "t").unwrap();
    assert_eq!(
        one.transport.webrtc.udp_ports,
        Some(UdpPorts {
            first: 8189,
            last: 8189
        })
    );
    for (bad, why) in [
        ("udp_ports: \"9-3\"", "above the last"),
        ("udp_ports: \"0-10\"", "not a UDP port"),
        ("udp_ports: \"1-70000\"", "not a UDP port"),
        (
            "announce_ip: 0.0.0.0",
            "not an IP address viewers can send to",
        ),
        ("announce_ip: pi.local", "not an IP address"),
    ] {
        let e = err(&format!("transport:\n  webrtc:\n    {bad}\n"));
        assert!(e.contains(why) && e.contains("t.yaml:3:"), "{bad}: {e}");
    }
}

#[test]
fn transport_kind_is_one_name_or_a_list() {
    let c = StreamerConfig::from_yaml("transport:\n  kind: [webrtc, quic]\n", "t").unwrap();
    assert_eq!(
        c.transport.kinds,
        [TransportKind::Webrtc, TransportKind::Quic]
    );
    assert!(c.transport.has(TransportKind::Quic) && c.transport.has(TransportKind::Webrtc));
    let c = StreamerConfig::from_yaml("transport:\n  kind:\n    - webrtc\n", "t").unwrap();
    assert_eq!(c.transport.kinds, [TransportKind::Webrtc]);
    assert!(!c.transport.has(TransportKind::Quic));
    let c = StreamerConfig::from_yaml("transport:\n  kind: null\n", "t").unwrap();
    assert_eq!(c.transport.kinds, [TransportKind::Quic]);
    // The list renders and reloads in its order.
    let c = StreamerConfig::from_yaml("transport:\n  kind: [webrtc, quic]\n", "t").unwrap();
    let text = c.to_yaml();
    let again =
        StreamerConfig::from_yaml(&text, "rendered").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.transport.kinds, c.transport.kinds, "{text}");
    assert_eq!(again.to_yaml(), text);
}

#[test]
fn transport_kind_list_refuses_unknown_names_and_duplicates_with_key_and_line() {
    let e = err("transport:\n  kind: [quic, carrier-pigeon]\n");
    assert!(
        e.starts_with("t.yaml:2")
            && e.contains("`transport.kind`")
            && e.contains("carrier-pigeon")
            && e.contains("quic, webrtc"),
        "{e}"
    );
    let yaml =
        "transport:\n  kind:\n    - webrtc\n    - quic\n    - webrtc\n    - tcp\n    - quic\n";
    assert_eq!(
        problems(yaml),
        [
            (5, "transport.kind".to_string()),
            (6, "transport.kind".to_string()),
            (7, "transport.kind".to_string()),
        ]
    );
    let e = err(yaml);
    assert!(
        e.contains("t.yaml:5: `transport.kind`: `webrtc` is listed twice"),
        "{e}"
    );
    assert!(
        e.contains("t.yaml:7: `transport.kind`: `quic` is listed twice"),
        "{e}"
    );
    let e = err("transport:\n  kind: []\n");
    assert!(
        e.starts_with("t.yaml:2") && e.contains("no transport"),
        "{e}"
    );
    // Every entry unknown: one problem each, no extra "no transport".
    assert_eq!(
        problems("transport:\n  kind: [tcp]\n"),
        [(2, "transport.kind".to_string())]
    );
    let e = err("transport:\n  kind: [[quic]]\n");
    assert!(e.contains("expected a word, found a list"), "{e}");
}

/// `yaml` and the override `set` are refused with the same message `why`; the override's
/// problem names `--flag`.
fn same_limit_for_file_and_flag(yaml: &str, flag: &str, set: fn(&mut StreamerConfig), why: String) {
    let from_file = err(yaml);
    assert!(from_file.ends_with(&format!("`: {why}")), "{from_file}");
    let mut cfg = StreamerConfig::embedded();
    set(&mut cfg);
    let from_cli = cfg.validate("command line").unwrap_err().to_string();
    assert_eq!(from_cli, format!("command line: `--{flag}`: {why}"));
}

#[test]
fn overrides_are_refused_by_the_limits_the_file_keys_use() {
    // The same value, from a file and from the command line: the same message, from the one
    // declaration of the range; the command line names its flag (once for both eyes).
    let why = limits::FPS.check(500.0).unwrap_err();
    assert_eq!(why, "500 must be ≥ 1 and ≤ 240");
    let from_file = err("eyes:\n  left:\n    fps: 500\n  right:\n    fps: 500\n");
    assert_eq!(
        from_file,
        format!("t.yaml:3: `eyes.left.fps`: {why}\nt.yaml:5: `eyes.right.fps`: {why}")
    );
    let mut cfg = StreamerConfig::embedded();
    for eye in Eye::BOTH {
        cfg.eyes.get_mut(eye).fps = 500.0;
    }
    let from_cli = cfg.validate("command line").unwrap_err().to_string();
    assert_eq!(from_cli, format!("command line: `--fps`: {why}"));

    same_limit_for_file_and_flag(
        "deadlines:\n  max_latency_ms: 20000\n",
        "max-latency-ms",
        |c| c.deadlines.max_latency_ms = 20_000.0,
        limits::MAX_LATENCY_MS.check(20_000.0).unwrap_err(),
    );
    same_limit_for_file_and_flag(
        "encoder:\n  slice_bytes: 100\n",
        "slice-bytes",
        |c| c.encoder.slice_bytes = Some(100),
        limits::SLICE_BYTES.check(100).unwrap_err(),
    );
    same_limit_for_file_and_flag(
        "encoder:\n  qp_max: 70\n",
        "qp-max",
        |c| c.encoder.qp_max = 70,
        limits::QP_MAX.check(70).unwrap_err(),
    );
    same_limit_for_file_and_flag(
        "eyes:\n  left:\n    bitrate_mbps: 0\n",
        "bitrate-mbps",
        |c| c.eyes.left.bitrate_mbps = 0.0,
        limits::BITRATE_MBPS.check(0.0).unwrap_err(),
    );
    // An out-of-range quantiser is one problem, not also an order problem.
    let mut cfg = StreamerConfig::embedded();
    cfg.encoder.qp_min = 70;
    let e = cfg.validate("command line").unwrap_err().to_string();
    assert_eq!(e, "command line: `--qp-min`: 70 outside 0..51");
    // NaN and infinities never pass.
    let mut cfg = StreamerConfig::embedded();
    cfg.deadlines.max_latency_ms = f64::INFINITY;
    cfg.eyes.right.bitrate_mbps = f64::NAN;
    let e = cfg.validate("command line").unwrap_err();
    assert_eq!(e.problems.len(), 2, "{e}");
    // A valid override passes, and the transport list is checked too.
    let mut cfg = StreamerConfig::embedded();
    cfg.eyes.left.fps = 90.0;
    cfg.eyes.right.fps = 90.0;
    cfg.transport.kinds = vec![TransportKind::Quic, TransportKind::Webrtc];
    cfg.validate("command line").unwrap();
    cfg.transport.kinds = vec![TransportKind::Webrtc, TransportKind::Webrtc];
    let e = cfg.validate("command line").unwrap_err().to_string();
    assert_eq!(e, "command line: `--transport`: `webrtc` is listed twice");
    cfg.transport.kinds.clear();
    let e = cfg.validate("command line").unwrap_err().to_string();
    assert!(e.contains("`--transport`: no transport"), "{e}");
}

#[test]
fn transport_names_are_one_list() {
    for k in TransportKind::ALL {
        assert_eq!(k.name().parse::<TransportKind>().unwrap(), k);
        assert_eq!(k.to_string(), k.name());
    }
    assert_eq!(TransportKind::NAMES, ["quic", "webrtc"]);
    assert!("tcp"
        .parse::<TransportKind>()
        .unwrap_err()
        .contains("quic, webrtc"));
}

#[test]
fn transport_congestion_is_a_choice_with_media_the_default() {
    use binoc_net::congestion::Congestion;
    assert_eq!(
        StreamerConfig::embedded().transport.congestion,
        Congestion::Media
    );
    let cfg = StreamerConfig::from_yaml("transport:\n  congestion: bbr\n", "t.yaml").unwrap();
    assert_eq!(cfg.transport.congestion, Congestion::Bbr);
    let back = StreamerConfig::from_yaml(&cfg.to_yaml(), "again").unwrap();
    assert_eq!(back.transport.congestion, Congestion::Bbr, "round trip");
    let e = err("transport:\n  congestion: reno\n");
    assert!(e.starts_with("t.yaml:2") && e.contains("congestion"), "{e}");
}

#[test]
fn transport_fec_is_adaptive_by_default_off_or_a_fixed_percent() {
    use shared_proto::rules::fec::FecMode;
    assert_eq!(StreamerConfig::embedded().transport.fec, FecMode::Adaptive);
    for (text, mode) in [
        ("off", FecMode::Off),
        ("adaptive", FecMode::Adaptive),
        ("25", FecMode::Fixed { percent: 25 }),
        ("\"10%\"", FecMode::Fixed { percent: 10 }),
    ] {
        let cfg =
            StreamerConfig::from_yaml(&format!("transport:\n  fec: {text}\n"), "t.yaml").unwrap();
        assert_eq!(cfg.transport.fec, mode, "{text}");
        let back = StreamerConfig::from_yaml(&cfg.to_yaml(), "again").unwrap();
        assert_eq!(back.transport.fec, mode, "round trip of {text}");
    }
    for bad in ["0", "150", "lots", "true"] {
        let e = err(&format!("transport:\n  fec: {bad}\n"));
        assert!(e.starts_with("t.yaml:2") && e.contains("fec"), "{bad}: {e}");
    }
}

/// Found by the `config` fuzz target (`pi-streamer/fuzz`): `profiles:` with nothing but
/// comments under it panicked (`unreachable!`); it is "no profiles defined", with its line.
#[test]
fn profiles_with_nothing_under_them_are_a_problem_not_a_panic() {
    for yaml in [
        "default: a\nprofiles:\n  # nothing here yet\n",
        "profiles:\n",
        "profiles: ~\n",
    ] {
        let e = err(yaml);
        assert!(e.contains("no profiles defined"), "{yaml:?}: {e}");
    }
}
