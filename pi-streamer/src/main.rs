use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pi_streamer::config::{
    self, ConfigFile, EncoderKind, Size, SourceSpec, StreamerConfig, TransportKind,
};
use pi_streamer::output::quic::{self, QuicOutput};
use pi_streamer::output::webrtc::WebrtcOutput;
use pi_streamer::output::{Output, OutputReport};
use pi_streamer::report::Report;
use pi_streamer::session;
use shared_proto::Eye;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormat {
    Text,
    Json,
}

/// binoc streamer: captures both cameras, encodes each eye as its own H.264 stream and sends
/// them to the headset over QUIC, to browsers over WebRTC, or both.
///
/// `pi-streamer --peer HOST:PORT` dials a listening quest-client (QUIC).
/// `pi-streamer --transport webrtc --listen 0.0.0.0:8443` serves the WebXR viewer page at
/// https://ADDR/ and WHEP at https://ADDR/whep (both eyes as two tracks).
/// `pi-streamer --transport quic,webrtc --peer HOST:PORT --listen ADDR` does both from the
/// same encoders.
/// `pi-streamer loopback` runs streamer and a headless client in one process and prints the
/// latency table.
#[derive(Debug, Parser)]
// `about` and `long_about` both come from the doc comment above (its first paragraph, and
// all of it), so `-h` and `--help` say the same thing.
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream to a headless quest-client inside this process over 127.0.0.1 and print the
    /// latency table (per eye, and per stage).
    Loopback(Box<LoopbackArgs>),
    /// A bad network on a desk: relay UDP (QUIC or WebRTC) between the streamer and the
    /// headset, losing, delaying, reordering, duplicating and rate-limiting datagrams, seeded
    /// so a run can be repeated. Point the streamer's --peer at --listen.
    Impair(ImpairArgs),
    /// Pair with a headset once, by the code it shows (`quest-client --pair` prints it; the
    /// Quest app shows it in the HUD while nothing is paired). Both sides keep the other's
    /// certificate: afterwards `pi-streamer --peer HOST:PORT` streams to it, and to no other.
    Pair {
        /// The headset's HOST:PORT (its QUIC port, 7878 by default).
        peer: String,
        /// The 6-digit code the headset shows.
        code: String,
        /// Where this streamer's identity and its paired headsets are kept
        /// [default: $STATE_DIRECTORY, else $XDG_STATE_HOME/binoc, else ~/.local/state/binoc].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// The cameras this machine has (libcamera and V4L2), with their formats, sizes and
    /// rates, and the `source:` value for each.
    ListCameras,
    /// Validate a configuration or camera-profiles file: print the resolved profile, or every
    /// problem (one per line, with key and line) and exit non-zero.
    CheckConfig {
        /// The YAML file (default: the embedded config/streamer.yaml).
        path: Option<PathBuf>,
        /// In a profiles file, the profile to print (default: the file's `default`).
        #[arg(long)]
        profile: Option<String>,
    },
}

#[derive(Debug, Args, Clone)]
struct ImpairArgs {
    /// ADDR:PORT the streamer sends to.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// HOST:PORT of the headset (or whatever listens behind the relay).
    #[arg(long)]
    forward: String,
    /// Datagrams lost, percent (mean).
    #[arg(long, default_value_t = 0.0)]
    loss_pct: f64,
    /// Mean length of a loss burst in datagrams (1: independent losses; more: Gilbert–Elliott).
    #[arg(long, default_value_t = 1.0)]
    burst: f64,
    /// One-way delay, milliseconds.
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Each datagram's delay varies by ± this, milliseconds (order kept unless --reorder).
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Let jitter reorder datagrams.
    #[arg(long)]
    reorder: bool,
    /// Datagrams delivered twice, percent.
    #[arg(long, default_value_t = 0.0)]
    duplicate_pct: f64,
    /// Link rate, Mbit/s (default: unlimited).
    #[arg(long)]
    rate_mbps: Option<f64>,
    /// The rate limiter's queue, milliseconds of waiting at most.
    #[arg(long, default_value_t = 50.0)]
    queue_ms: f64,
    /// The rate cap starts this many seconds after the first datagram (before: unlimited).
    #[arg(long, requires = "rate_mbps", default_value_t = 0.0)]
    rate_from_s: f64,
    /// The rate cap lifts this many seconds after the first datagram (a link that recovers).
    #[arg(long, requires = "rate_mbps")]
    rate_until_s: Option<f64>,
    /// A blackout: START_S,LENGTH_MS (everything lost from START_S seconds after the first
    /// datagram, for LENGTH_MS).
    #[arg(long, value_parser = parse_blackout)]
    blackout: Option<(f64, f64)>,
    /// Impair only the way to the headset (default: both ways, each with its own randomness).
    #[arg(long)]
    one_way: bool,
    /// Seed of the randomness: the same seed, the same losses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds (default: at Ctrl-C), printing what happened.
    #[arg(long)]
    duration_s: Option<f64>,
}

fn parse_blackout(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected START_S,LENGTH_MS, got `{s}`"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("`{v}` is not a non-negative number"))
    };
    Ok((n(a)?, n(b)?))
}

/// `pi-streamer impair`: relays until Ctrl-C or --duration-s, then prints both directions'
/// counters (JSON).
fn impair(args: &ImpairArgs) -> Result<()> {
    use pi_streamer::impair::{Impairment, Relay};
    for (flag, v) in [
        ("--delay-ms", args.delay_ms),
        ("--jitter-ms", args.jitter_ms),
        ("--queue-ms", args.queue_ms),
        ("--loss-pct", args.loss_pct),
        ("--duplicate-pct", args.duplicate_pct),
        ("--rate-from-s", args.rate_from_s),
        ("--rate-until-s", args.rate_until_s.unwrap_or(0.0)),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            bail!("{flag} {v}: must be a non-negative number");
        }
    }
    let ms = |v: f64| (v * 1e6).round() as u64;
    let to_headset = Impairment {
        loss: args.loss_pct / 100.0,
        burst: args.burst,
        delay_ns: ms(args.delay_ms),
        jitter_ns: ms(args.jitter_ms),
        reorder: args.reorder,
        duplicate: args.duplicate_pct / 100.0,
        rate_bps: args.rate_mbps.map(|r| r * 1e6),
        queue_ns: ms(args.queue_ms),
        rate_window: (
            ms(args.rate_from_s * 1e3),
            args.rate_until_s.map(|s| ms(s * 1e3)),
        ),
        blackout: args.blackout.map(|(at, len)| (ms(at * 1e3), ms(len))),
        seed: args.seed,
    };
    let to_streamer = if args.one_way {
        Impairment::default()
    } else {
        Impairment {
            seed: args.seed.wrapping_add(1),
            ..to_headset.clone()
        }
    };
    let rt = runtime()?;
    let counters = rt.block_on(async {
        let forward = quic::resolve(&args.forward).await?;
        let relay = Relay::start(args.listen, forward, to_headset, to_streamer).await?;
        tracing::info!(listen = %relay.listen, %forward, "relaying");
        let stop = stop_on_ctrl_c();
        let t0 = std::time::Instant::now();
        let mut last_log = t0;
        while !stop.load(Ordering::Relaxed)
            && args
                .duration_s
                .is_none_or(|d| t0.elapsed().as_secs_f64() < d)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if last_log.elapsed() >= Duration::from_secs(5) {
                last_log = std::time::Instant::now();
                let [a, b] = relay.counters();
                tracing::info!(
                    "to headset: {} in, {} out, lost {}+{}+{} (random+blackout+queue); to streamer: {} in, {} out",
                    a.entered, a.delivered, a.lost_random, a.lost_blackout, a.lost_queue, b.entered, b.delivered
                );
            }
        }
        anyhow::Ok(relay.counters())
    })?;
    let [to_headset, to_streamer] = counters;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "to_headset": to_headset,
            "to_streamer": to_streamer,
        }))?
    );
    Ok(())
}

/// `loopback`: the pipeline's arguments, and where to write the timeline.
#[derive(Debug, Args, Clone)]
struct LoopbackArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Write every decoded frame's stages to this CSV file as its marker arrives (one row per
    /// frame: for plots of latency over time, scripts/plot-timeline.sh).
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// The headset's software decoder: openh264 or libavcodec (FFmpeg's; in builds with the
    /// `libavcodec` feature, on by default, and then the default decoder).
    #[arg(long, value_parser = headset_core::decode::SoftwareDecoder::NAMES)]
    decoder: Option<String>,
}

/// What the pipeline runs: configuration, source, encoder and its overrides, and the report.
#[derive(Debug, Args, Clone)]
struct PipelineArgs {
    /// YAML configuration: one profile (like config/streamer.yaml, the embedded default) or
    /// named profiles (like config/camera_profiles.yaml, with --profile).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The profile to run from a profiles file (default: the file's `default`).
    #[arg(long, requires = "config")]
    profile: Option<String>,
    /// Stop after this many frames per eye (loopback default: 600). A bounded run encodes
    /// every frame; without it the encoders idle while nobody receives.
    #[arg(long)]
    frames: Option<u64>,
    /// Frames per second for both eyes (eyes.*.fps).
    #[arg(long = config::limits::FPS.long())]
    fps: Option<f64>,
    /// Encoded size for both eyes, WIDTHxHEIGHT.
    #[arg(long)]
    size: Option<Size>,
    /// Source for both eyes: `test`, `y4m:LEFT.y4m,RIGHT.y4m`, or `y4m-sbs:FILE.y4m` (one
    /// side-by-side file split in two).
    #[arg(long)]
    source: Option<String>,
    /// Target bitrate per eye, Mbit/s (eyes.*.bitrate_mbps).
    #[arg(long = config::limits::BITRATE_MBPS.long())]
    bitrate_mbps: Option<f64>,
    /// Drop frames not on the wire this long after capture (deadlines.max_latency_ms).
    #[arg(long = config::limits::MAX_LATENCY_MS.long())]
    max_latency_ms: Option<f64>,
    /// Cut frames into slices of at most this many bytes (encoder.slice_bytes).
    #[arg(long = config::limits::SLICE_BYTES.long())]
    slice_bytes: Option<u32>,
    /// Row slices per frame, each sent as soon as it is encoded and decoded as soon as it
    /// arrives (encoder.slices; 1: whole frames; x264 only).
    #[arg(long = config::limits::SLICES.long(), value_parser = clap::value_parser!(u8).range(1..=32))]
    slices: Option<u8>,
    /// Stream one eye alone (left or right): one-eye measurements.
    #[arg(long, value_parser = ["left", "right"])]
    only_eye: Option<String>,
    /// How the picture is refreshed: intra (periodic intra refresh, an IDR only on request) or
    /// keyframe (an IDR every eyes.*.idr_interval_frames) (encoder.refresh).
    #[arg(long, value_parser = ["intra", "keyframe"])]
    refresh: Option<String>,
    /// Lowest quantiser the encoder may use (encoder.qp_min).
    #[arg(long = config::limits::QP_MIN.long())]
    qp_min: Option<u8>,
    /// Highest quantiser the encoder may use (encoder.qp_max).
    #[arg(long = config::limits::QP_MAX.long())]
    qp_max: Option<u8>,
    /// Encoder: auto, openh264, x264 or v4l2m2m (encoder.kind).
    #[arg(long, value_parser = ["auto", "openh264", "x264", "v4l2m2m"])]
    encoder: Option<String>,
    /// Draw the eye + frame number code over the top band of both eyes, read back by the
    /// receiver to catch a wrong eye or a stale frame: auto (on for test/y4m sources, off
    /// over a camera's picture), true or false (eyes.*.pixel_code).
    #[arg(long, value_parser = ["auto", "true", "false"])]
    pixel_code: Option<String>,
    /// Forward error correction of the QUIC video datagrams: adaptive (parity sized to the loss
    /// the headset measures, none on a clean link), off, or a fixed overhead in percent of each
    /// frame's fragments, e.g. 25 (transport.fec).
    #[arg(long, value_parser = shared_proto::rules::fec::FecMode::parse)]
    fec: Option<shared_proto::rules::fec::FecMode>,
    /// Final report format.
    #[arg(long, value_enum, default_value = "text")]
    report: ReportFormat,
}

/// Where the frames go (not for `loopback`, which makes its own headset).
#[derive(Debug, Args, Clone)]
struct OutputArgs {
    /// HOST:PORT of a listening quest-client (overrides transport.peer).
    #[arg(long)]
    peer: Option<String>,
    /// The outputs to run, comma-separated: quic (the native headset app, dialled with --peer),
    /// webrtc (serve browsers and WebXR over WHEP), or both: quic,webrtc (overrides
    /// transport.kind).
    #[arg(
        long = config::limits::TRANSPORT_KIND_FLAG,
        value_delimiter = ',',
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(TransportKind::NAMES),
            |s| s.parse::<TransportKind>().expect("a listed transport"),
        ),
    )]
    transport: Option<Vec<TransportKind>>,
    /// WebRTC: the HTTPS ADDR:PORT to serve the viewer page and WHEP on
    /// (transport.webrtc.listen; port 0 picks a free one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// SHA-256 fingerprint of the headset certificate to pin (instead of the paired
    /// headsets).
    #[arg(long)]
    peer_fingerprint: Option<String>,
    /// Pairing off: send to any headset, its certificate unchecked (a network you trust, a
    /// test). By default the streamer sends only to headsets it paired with
    /// (`pi-streamer pair`), and the headset accepts only paired streamers.
    #[arg(long, conflicts_with = "peer_fingerprint")]
    unpaired: bool,
    /// Serve the live counters in the Prometheus text format at http://ADDR/metrics (every
    /// receiver's report so far, the encoders' counters and bitrate targets).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Write every decoded frame's latency, stage by stage, to FILE as it comes back (CSV, one
    /// row per frame and receiver: for plots of latency over time, scripts/plot-timeline.sh).
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Where what must survive a restart is kept: this streamer's identity and the headsets it
    /// paired with (QUIC), the browsers' HTTPS certificate (WebRTC)
    /// [default: $STATE_DIRECTORY, else $XDG_STATE_HOME/binoc, else ~/.local/state/binoc].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    outputs: OutputArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

fn parse_sources(s: &str) -> Result<[SourceSpec; 2]> {
    if s == "test" {
        return Ok([SourceSpec::Test, SourceSpec::Test]);
    }
    if let Some(p) = s.strip_prefix("y4m-sbs:") {
        return Ok(Eye::BOTH.map(|e| SourceSpec::Y4m {
            path: p.into(),
            half: Some(e),
        }));
    }
    if let Some(rest) = s.strip_prefix("y4m:") {
        let (l, r) = rest
            .split_once(',')
            .context("y4m source needs two files: y4m:LEFT.y4m,RIGHT.y4m (or y4m-sbs:FILE)")?;
        return Ok([
            SourceSpec::Y4m {
                path: l.into(),
                half: None,
            },
            SourceSpec::Y4m {
                path: r.into(),
                half: None,
            },
        ]);
    }
    bail!("unknown --source `{s}`: expected `test`, `y4m:LEFT.y4m,RIGHT.y4m` or `y4m-sbs:FILE.y4m`")
}

fn load_config(args: &PipelineArgs, outputs: Option<&OutputArgs>) -> Result<StreamerConfig> {
    let mut cfg = match &args.config {
        Some(p) => {
            ConfigFile::load(p)?.select(args.profile.as_deref(), &p.display().to_string())?
        }
        None => StreamerConfig::embedded(),
    };
    let sources = args.source.as_deref().map(parse_sources).transpose()?;
    for (i, eye) in Eye::BOTH.into_iter().enumerate() {
        let e = cfg.eyes.get_mut(eye);
        if let Some(f) = args.fps {
            e.fps = f;
        }
        if let Some(s) = args.size {
            e.size = s;
        }
        if let Some(s) = &sources {
            e.source = s[i].clone();
        }
        if let Some(b) = args.bitrate_mbps {
            e.bitrate_mbps = b;
        }
    }
    if let Some(m) = args.max_latency_ms {
        cfg.deadlines.max_latency_ms = m;
    }
    if let Some(o) = outputs {
        if let Some(p) = &o.peer {
            cfg.transport.peer = Some(p.clone());
        }
        if let Some(kinds) = &o.transport {
            cfg.transport.kinds = kinds.clone();
        }
        if let Some(l) = o.listen {
            cfg.transport.webrtc.listen = l.to_string();
        }
        if let Some(f) = &o.peer_fingerprint {
            cfg.transport.peer_fingerprint = Some(f.clone());
        }
        cfg.transport.unpaired = o.unpaired;
        cfg.state_dir = o
            .state_dir
            .clone()
            .or_else(binoc_net::identity::default_state_dir);
    }
    if let Some(p) = &args.pixel_code {
        for eye in Eye::BOTH {
            cfg.eyes.get_mut(eye).pixel_code = match p.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
        }
    }
    match (args.slice_bytes, args.slices) {
        (Some(_), Some(n)) if n > 1 => bail!(
            "--slice-bytes and --slices {n} contradict each other: --slices sends each row \
             slice as it is encoded, --slice-bytes cuts whole frames by size (use --slices 1)"
        ),
        (Some(b), n) => {
            cfg.encoder.slice_bytes = Some(b);
            cfg.encoder.slices = n.unwrap_or(1);
        }
        (None, Some(n)) => {
            cfg.encoder.slices = n;
            if n > 1 {
                cfg.encoder.slice_bytes = None;
            }
        }
        (None, None) => {}
    }
    cfg.only_eye = match args.only_eye.as_deref() {
        Some("left") => Some(Eye::Left),
        Some("right") => Some(Eye::Right),
        _ => None,
    };
    if let Some(r) = &args.refresh {
        cfg.encoder.refresh = match r.as_str() {
            "keyframe" => config::RefreshMode::Keyframe,
            _ => config::RefreshMode::Intra,
        };
    }
    if let Some(q) = args.qp_min {
        cfg.encoder.qp_min = q;
    }
    if let Some(q) = args.qp_max {
        cfg.encoder.qp_max = q;
    }
    if let Some(k) = &args.encoder {
        cfg.encoder.kind = match k.as_str() {
            "openh264" => EncoderKind::Openh264,
            "x264" => EncoderKind::X264,
            "v4l2m2m" => EncoderKind::V4l2m2m,
            _ => EncoderKind::Auto,
        };
    }
    if let Some(f) = args.fec {
        cfg.transport.fec = f;
    }
    // The overrides pass the checks the file's keys did, with the same limits
    // (config::limits): `--fps 500` is refused as `fps: 500` is.
    cfg.validate("command line")?;
    Ok(cfg)
}

fn print_report(report: &Report, format: ReportFormat) -> Result<()> {
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        ReportFormat::Text => print!("{}", report.to_text()),
    }
    Ok(())
}

/// A flag set by Ctrl-C (call inside the runtime).
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupted: stopping");
        s.store(true, Ordering::Relaxed);
    });
    stop
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(binoc_net::sched::runtime_builder().build()?)
}

fn main() {
    pi_streamer::mark_launch();
    let cli = Cli::try_parse().unwrap_or_else(|e| explain(e).exit());
    binoc_net::logging::init();
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// clap's parse error, with the reason an output flag does not go with `loopback` (it makes its
/// own headset on 127.0.0.1) instead of a bare "unexpected argument".
fn explain(e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let in_loopback = std::env::args().nth(1).as_deref() == Some("loopback");
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) if e.kind() == ErrorKind::UnknownArgument => a.clone(),
        _ => return e,
    };
    let outputs = <OutputArgs as Args>::augment_args(clap::Command::new("outputs"));
    let is_output_flag = outputs.get_arguments().any(|a| {
        a.get_long()
            .is_some_and(|l| arg.split('=').next() == Some(format!("--{l}").as_str()))
    });
    if !(in_loopback && is_output_flag) {
        return e;
    }
    let flag = arg.split('=').next().unwrap_or(&arg).to_string();
    <Cli as clap::CommandFactory>::command().error(
        ErrorKind::ArgumentConflict,
        format!(
            "loopback streams to its own headset on 127.0.0.1 over QUIC: {flag} does not apply (run `pi-streamer {flag} …` without `loopback`)"
        ),
    )
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::CheckConfig { path, profile }) => {
            let (file, origin) = match &path {
                Some(p) => (ConfigFile::load(p), p.display().to_string()),
                None => (
                    ConfigFile::from_yaml(
                        config::EMBEDDED_DEFAULT,
                        "embedded config/streamer.yaml",
                    ),
                    "embedded config/streamer.yaml".to_string(),
                ),
            };
            let file = match file {
                Ok(f) => f,
                Err(e) => {
                    // One problem per line on stderr, then a count.
                    eprintln!("{e}");
                    bail!("{}: {} problem(s)", e.origin, e.problems.len());
                }
            };
            if let ConfigFile::Profiles(p) = &file {
                println!(
                    "# {origin}: {} profiles, all valid: {}",
                    p.profiles.len(),
                    p.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            let name = match (&file, &profile) {
                (ConfigFile::Profiles(p), None) => Some(p.default.clone()),
                (_, n) => n.clone(),
            };
            let cfg = file.select(profile.as_deref(), &origin)?;
            let unsupported = cfg.unsupported_here();
            if !unsupported.is_empty() {
                for (key, line, why) in &unsupported {
                    eprintln!("{origin}:{line}: `{key}`: {why}");
                }
                bail!("{origin}: {} problem(s) for this build", unsupported.len());
            }
            let (kind, why) = pi_streamer::encode::resolve(&cfg.encoder);
            if let Some(n) = name {
                println!("# profile: {n}");
            }
            println!(
                "# encoder here: {} ({why})",
                pi_streamer::encode::kind_name(kind)
            );
            print!("{}", cfg.to_yaml_redacted());
            Ok(())
        }
        Some(Command::Impair(args)) => impair(&args),
        Some(Command::Pair {
            peer,
            code,
            state_dir,
        }) => {
            let dir = state_dir
                .or_else(binoc_net::identity::default_state_dir)
                .context("no state directory to keep the pairing in: give --state-dir DIR")?;
            let fp = runtime()?.block_on(quic::pairing::pair(&peer, &code, &dir))?;
            println!(
                "paired with the headset at {peer} (certificate {fp}); kept in {}",
                dir.join(binoc_net::trust::PAIRED_HEADSETS).display()
            );
            Ok(())
        }
        #[cfg(target_os = "linux")]
        Some(Command::ListCameras) => {
            print!("{}", pi_streamer::source::list::describe());
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        Some(Command::ListCameras) => bail!("list-cameras needs Linux (libcamera, V4L2)"),
        Some(Command::Loopback(args)) => {
            let cfg = load_config(&args.pipeline, None)?;
            let frames = args.pipeline.frames.unwrap_or(600);
            if frames == 0 {
                bail!("--frames must be at least 1");
            }
            let decoder: headset_core::decode::SoftwareDecoder = match &args.decoder {
                Some(d) => d.parse()?,
                None => Default::default(),
            };
            decoder.check_available()?;
            let result = runtime()?.block_on(pi_streamer::loopback::run_with_timeline(
                &cfg,
                frames,
                args.timeline.as_deref(),
                decoder,
            ))?;
            print_report(&result.report, args.pipeline.report)
        }
        None => run(cli.run),
    }
}

/// `pi-streamer [--peer HOST:PORT] [--transport quic,webrtc --listen ADDR]`: stream to every
/// configured output until interrupted (or `--frames`). The headset is dialled until it
/// answers, and again whenever it goes away, while the other outputs go on.
fn run(args: RunArgs) -> Result<()> {
    let cfg = load_config(&args.pipeline, Some(&args.outputs))?;
    let (args, outputs) = (args.pipeline, args.outputs);
    let peer = match (cfg.transport.has(TransportKind::Quic), &cfg.transport.peer) {
        (true, Some(p)) => Some(p.clone()),
        (true, None) => bail!(
            "no peer: give --peer HOST:PORT (or transport.peer in the config), or run `pi-streamer loopback`"
        ),
        (false, _) => None,
    };
    if peer.is_some() {
        // Nothing paired (and no pin, pairing on): say how to pair before dialing anyone.
        quic::pairing::headset_trust(&cfg)?;
    }
    let format = args.report;
    let printed = Arc::new(AtomicUsize::new(0));
    let rt = runtime()?;
    let report = rt.block_on(async {
        let stop = stop_on_ctrl_c();
        let timeline = match &outputs.timeline {
            Some(path) => Some(Arc::new(pi_streamer::timeline::Timeline::create(
                path,
                binoc_net::os_clock::monotonic_ns(),
            )?)),
            None => None,
        };
        let live = Arc::new(session::Live::with_timeline(timeline));
        let _metrics = match outputs.metrics {
            Some(addr) => {
                let live = live.clone();
                Some(
                    binoc_net::metrics::serve(
                        addr,
                        "binoc_streamer",
                        Arc::new(move || live.collect()),
                    )
                    .await?,
                )
            }
            None => None,
        };
        // A source that fails (a camera unplugged, a file ended early) ends the session; run
        // mode starts a new one after 1 s.
        loop {
            let shared = session::Shared::with_live(&cfg, live.clone());
            let mut outputs: Vec<Box<dyn Output>> = Vec::new();
            for kind in &cfg.transport.kinds {
                match kind {
                    TransportKind::Quic => {
                        let peer = peer.as_deref().expect("checked above");
                        let Some(quic) = dial(&cfg, peer, &shared, &stop, format, &printed).await?
                        else {
                            return Ok(None); // interrupted before a headset answered
                        };
                        outputs.push(Box::new(quic));
                    }
                    TransportKind::Webrtc => {
                        outputs.push(Box::new(
                            WebrtcOutput::start(&cfg, shared.feedback.clone()).await?,
                        ));
                    }
                }
            }
            match session::run(&cfg, &shared, outputs, args.frames, stop.clone()).await {
                Ok(r) => return anyhow::Ok(Some(r)),
                Err(e) if stop.load(Ordering::Relaxed) => return Err(e),
                Err(e) => {
                    tracing::warn!("session ended: {e:#}; starting again in 1 s");
                    printed.store(0, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })?;
    let Some(report) = report else {
        return Ok(());
    };
    if let [only] = report.outputs.as_slice() {
        match only {
            // As each connection ended: the reports not printed yet.
            OutputReport::Quic(q) => {
                for r in q.connections.iter().skip(printed.load(Ordering::Relaxed)) {
                    print_report(r, format)?;
                }
            }
            OutputReport::Webrtc(w) => match format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(w)?),
                ReportFormat::Text => print!("{}", w.to_text()),
            },
        }
        return Ok(());
    }
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{}", report.to_text()),
    }
    Ok(())
}

/// Dials the headset every second until it answers (`None` if interrupted first; an error if
/// it refuses this streamer as not paired). The output reconnects on its own later; each
/// connection lost meanwhile is reported as it ends.
async fn dial(
    cfg: &StreamerConfig,
    peer: &str,
    shared: &session::Shared,
    stop: &AtomicBool,
    format: ReportFormat,
    printed: &Arc<AtomicUsize>,
) -> Result<Option<QuicOutput>> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let attempt = async {
            let addr = quic::resolve(peer).await?;
            let printed = printed.clone();
            let on_report: quic::OnConnectionReport = Box::new(move |r| {
                if let Err(e) = print_report(r, format) {
                    tracing::warn!("printing the report: {e:#}");
                }
                printed.fetch_add(1, Ordering::Relaxed);
            });
            QuicOutput::connect(cfg, addr, shared.feedback.clone(), true, Some(on_report)).await
        };
        match attempt.await {
            Ok(q) => return Ok(Some(q)),
            // The headset does not know this streamer: retrying will not change that.
            Err(e) if e.downcast_ref::<quic::pairing::NotPaired>().is_some() => return Err(e),
            Err(e) => {
                tracing::warn!("{e:#}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
