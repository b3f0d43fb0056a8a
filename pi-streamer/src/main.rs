use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pi_streamer::config::{
    self, ConfigFile, EncoderKind, Size, SourceSpec, StreamerConfig, TransportKind,
};
use pi_streamer::report::Report;
use shared_proto::Eye;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormat {
    Text,
    Json,
}

/// binoc streamer: captures both cameras, encodes each eye as its own H.264 stream and sends
/// them to the headset over QUIC, or to browsers over WebRTC.
///
/// `pi-streamer --peer HOST:PORT` dials a listening quest-client (QUIC).
/// `pi-streamer --transport webrtc --listen 0.0.0.0:8443` serves the WebXR viewer page at
/// https://ADDR/ and WHEP at https://ADDR/whep (both eyes as two tracks).
/// `pi-streamer loopback` runs streamer and a headless client in one process and prints the
/// latency table.
#[derive(Debug, Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
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
    Loopback(Box<RunArgs>),
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
struct RunArgs {
    /// HOST:PORT of a listening quest-client (overrides transport.peer).
    #[arg(long)]
    peer: Option<String>,
    /// quic (the native headset app, dialled with --peer) or webrtc (serve browsers and WebXR
    /// over WHEP; overrides transport.kind).
    #[arg(long, value_parser = ["quic", "webrtc"])]
    transport: Option<String>,
    /// WebRTC: the HTTPS ADDR:PORT to serve the viewer page and WHEP on
    /// (transport.webrtc.listen; port 0 picks a free one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// YAML configuration: one profile (like config/streamer.yaml, the embedded default) or
    /// named profiles (like config/camera_profiles.yaml, with --profile).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The profile to run from a profiles file (default: the file's `default`).
    #[arg(long, requires = "config")]
    profile: Option<String>,
    /// Stop after this many frames per eye (loopback default: 600).
    #[arg(long)]
    frames: Option<u64>,
    /// Frames per second for both eyes.
    #[arg(long)]
    fps: Option<f64>,
    /// Encoded size for both eyes, WIDTHxHEIGHT.
    #[arg(long)]
    size: Option<Size>,
    /// Source for both eyes: `test`, `y4m:LEFT.y4m,RIGHT.y4m`, or `y4m-sbs:FILE.y4m` (one
    /// side-by-side file split in two).
    #[arg(long)]
    source: Option<String>,
    /// Target bitrate per eye, Mbit/s.
    #[arg(long)]
    bitrate_mbps: Option<f64>,
    /// Drop frames not on the wire this long after capture.
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Cut frames into slices of at most this many bytes (encoder.slice_bytes).
    #[arg(long)]
    slice_bytes: Option<u32>,
    /// Lowest quantiser the encoder may use, 0..51 (encoder.qp_min).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=51))]
    qp_min: Option<u8>,
    /// Highest quantiser the encoder may use, 0..51 (encoder.qp_max).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=51))]
    qp_max: Option<u8>,
    /// Encoder: auto, openh264, x264 or v4l2m2m (encoder.kind).
    #[arg(long, value_parser = ["auto", "openh264", "x264", "v4l2m2m"])]
    encoder: Option<String>,
    /// SHA-256 fingerprint of the headset certificate to pin.
    #[arg(long)]
    peer_fingerprint: Option<String>,
    /// Final report format.
    #[arg(long, value_enum, default_value = "text")]
    report: ReportFormat,
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

fn load_config(args: &RunArgs) -> Result<StreamerConfig> {
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
            if !(1.0..=240.0).contains(&f) {
                bail!("--fps {f} outside 1..240");
            }
            e.fps = f;
        }
        if let Some(s) = args.size {
            e.size = s;
        }
        if let Some(s) = &sources {
            e.source = s[i].clone();
        }
        if let Some(b) = args.bitrate_mbps {
            if !(b > 0.0 && b <= 200.0) {
                bail!("--bitrate-mbps {b} must be > 0 and ≤ 200");
            }
            e.bitrate_mbps = b;
        }
    }
    if let Some(m) = args.max_latency_ms {
        if !(m > 0.0 && m.is_finite()) {
            bail!("--max-latency-ms must be > 0");
        }
        cfg.deadlines.max_latency_ms = m;
    }
    if let Some(p) = &args.peer {
        cfg.transport.peer = Some(p.clone());
    }
    match args.transport.as_deref() {
        Some("webrtc") => cfg.transport.kind = TransportKind::Webrtc,
        Some(_) => cfg.transport.kind = TransportKind::Quic,
        None => {}
    }
    if let Some(l) = args.listen {
        cfg.transport.webrtc.listen = l.to_string();
    }
    if let Some(s) = args.slice_bytes {
        cfg.encoder.slice_bytes = Some(s);
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
    if let Some(f) = &args.peer_fingerprint {
        cfg.transport.peer_fingerprint = Some(f.clone());
    }
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

/// `pi-streamer --transport webrtc`: serve browsers until interrupted (or `--frames`), then
/// print every viewer's report.
fn serve_webrtc(cfg: &StreamerConfig, args: &RunArgs) -> Result<()> {
    let rt = runtime()?;
    let report = rt.block_on(async {
        let stop = stop_on_ctrl_c();
        pi_streamer::transport::webrtc::serve(cfg, args.frames, stop, |addr| {
            tracing::info!("serving https://{addr}/ (WHEP endpoint https://{addr}/whep)");
        })
        .await
    })?;
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => {
            println!(
                "{} viewer(s) in {:.1} s; captured L {} R {}; CPU {:.2} ms/frame (encode {:.2} ms/frame)",
                report.viewers.len(),
                report.duration_s,
                report.captured[0],
                report.captured[1],
                report.cpu_ms_per_frame,
                report.encode_cpu_ms_per_frame
            );
            for v in &report.viewers {
                println!("\n== viewer {} ({})", v.viewer, v.ended);
                print!("{}", v.report.to_text());
            }
        }
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
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
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
            let (kind, why) = pi_streamer::encode::resolve(&cfg.encoder);
            if let Some(n) = name {
                println!("# profile: {n}");
            }
            println!(
                "# encoder here: {} ({why})",
                pi_streamer::encode::kind_name(kind)
            );
            print!("{}", cfg.to_yaml());
            Ok(())
        }
        Some(Command::Loopback(args)) => {
            let cfg = load_config(&args)?;
            let frames = args.frames.unwrap_or(600);
            if frames == 0 {
                bail!("--frames must be at least 1");
            }
            let result = runtime()?.block_on(pi_streamer::loopback::run(&cfg, frames))?;
            print_report(&result.report, args.report)
        }
        None => run(cli.run),
    }
}

/// `pi-streamer --peer HOST:PORT`: stream until interrupted (or `--frames`), reconnecting
/// when the headset goes away.
fn run(args: RunArgs) -> Result<()> {
    let cfg = load_config(&args)?;
    if cfg.transport.kind == TransportKind::Webrtc {
        return serve_webrtc(&cfg, &args);
    }
    let Some(peer) = cfg.transport.peer.clone() else {
        bail!("no peer: give --peer HOST:PORT (or transport.peer in the config), or run `pi-streamer loopback`");
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let stop = stop_on_ctrl_c();
        loop {
            let addr = match pi_streamer::transport::quic::resolve(&peer).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("{e:#}; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match pi_streamer::stream::stream_to(&cfg, addr, args.frames, stop.clone()).await {
                Ok(outcome) => {
                    print_report(&outcome.report, args.report)?;
                    match outcome.connection_lost {
                        Some(why) if !stop.load(Ordering::Relaxed) => {
                            tracing::warn!("connection lost ({why}): reconnecting");
                        }
                        _ => return Ok(()),
                    }
                }
                Err(e) if stop.load(Ordering::Relaxed) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e:#}; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    })
}
