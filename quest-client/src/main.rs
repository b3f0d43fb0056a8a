use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use binoc_net::Identity;
use clap::{Parser, ValueEnum};
use headset_core::{Access, Client, ClientReport, Headless, Shared};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlacementArg {
    /// The picture follows the head.
    Head,
    /// The picture stays where the head looked at start.
    World,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|n| (16..=8192).contains(n))
            .ok_or_else(|| format!("{v:?} is not a size in 16..=8192"))
    };
    Ok((parse(w)?, parse(h)?))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

/// binoc headset client. Listens for a pi-streamer, receives both eyes over QUIC, decodes them,
/// shows each eye's stream to that eye only and sends per-frame timestamp markers back.
///
/// Without a mode flag it runs in XR (OpenXR: the headset, or a desktop runtime such as
/// Monado). The XR, --desktop and --offscreen modes need a build with `--features app`.
#[derive(Debug, Parser)]
// `about` and `long_about` from the doc comment above, so `-h` and `--help` agree.
#[command(version, after_help = MODES_IN_THIS_BUILD)]
struct Args {
    /// Run the receive/decode core alone, without a display (prints stats).
    #[arg(long, conflicts_with_all = ["desktop", "offscreen"])]
    headless: bool,
    /// A window with both eyes side by side and the HUD (H toggles it).
    #[arg(long, conflicts_with = "offscreen")]
    desktop: bool,
    /// No display: render each eye's view into an image and read it back (CI, lavapipe).
    #[arg(long)]
    offscreen: bool,
    /// Client configuration (layer placement, size, distance; HUD). Default: built-in values,
    /// as in config/quest-client.yaml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override the config's layer placement.
    #[arg(long, value_enum)]
    placement: Option<PlacementArg>,
    /// Start with the HUD hidden.
    #[arg(long)]
    no_hud: bool,
    /// Each eye's view in --desktop (the window is twice as wide) and --offscreen, WIDTHxHEIGHT.
    #[arg(long, default_value = "960x540", value_parser = parse_size)]
    view_size: (u32, u32),
    /// --offscreen: write each eye's rendered view as DIR/left.png and DIR/right.png.
    #[arg(long, requires = "offscreen")]
    dump: Option<PathBuf>,
    /// --desktop: save a PNG of the window 12.5 s after both eyes first show (the HUD graph
    /// then holds 12 s).
    #[arg(long, requires = "desktop")]
    screenshot: Option<PathBuf>,
    /// Log the frame time and each render pass's CPU and GPU time (timestamp queries) every
    /// 2 s: where the display side's time goes.
    #[arg(long)]
    render_diagnostics: bool,
    /// Address to listen on (UDP).
    #[arg(long, default_value = "0.0.0.0:7878")]
    listen: SocketAddr,
    /// Exit after this many frames per eye (decoded or dropped).
    #[arg(long)]
    frames: Option<u64>,
    /// Exit after this many streamer sessions have ended (e.g. 1: serve one run, then report).
    #[arg(long)]
    sessions: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// How to print the final report.
    #[arg(long, value_enum, default_value = "text")]
    report: ReportFormat,
    /// Where the headset keeps its identity (`headset-identity.pem`, created on first run,
    /// owner-only) and the streamers it paired with (`paired-streamers`). Default:
    /// $STATE_DIRECTORY, else $XDG_STATE_HOME/binoc, else ~/.local/state/binoc.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Pair a streamer: print `pairing code: NNNNNN` (and show it in the HUD), and accept the
    /// first streamer that proves it (`pi-streamer pair HOST:PORT NNNNNN`). The window also
    /// opens by itself while no streamer is paired. Three wrong tries withdraw a code.
    #[arg(long, conflicts_with = "unpaired")]
    pair: bool,
    /// Accept any streamer, paired or not (a closed network, a test). By default only paired
    /// streamers may stream to this headset.
    #[arg(long)]
    unpaired: bool,
    /// TLS identity file (PEM certificate + key) instead of the state directory's, created on
    /// first use.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Serve the live counters (per eye: received, decoded, lost, repaired, latency…) in the
    /// Prometheus text format at http://ADDR/metrics (headless mode).
    #[arg(long, value_name = "ADDR:PORT", requires = "headless")]
    metrics: Option<SocketAddr>,
}

/// What `--help` says this build can run.
#[cfg(feature = "app")]
const MODES_IN_THIS_BUILD: &str =
    "Modes in this build: XR (the default), --desktop, --offscreen, --headless.";
#[cfg(not(feature = "app"))]
const MODES_IN_THIS_BUILD: &str = "Modes in this build: --headless only. XR, --desktop and \
     --offscreen need the app shell: cargo build --release -p quest-client --features app";

/// A user's error is one line (`error: …`, every cause joined), never a backtrace, whatever
/// `RUST_BACKTRACE` says.
fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    // clap counts a flag that is off as present for `requires`: say it here, at parse time.
    let usage = |msg: &str| {
        <Args as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    };
    if args.dump.is_some() && !args.offscreen {
        usage("--dump writes the --offscreen views; it needs --offscreen");
    }
    if args.screenshot.is_some() && !args.desktop {
        usage("--screenshot saves the --desktop window; it needs --desktop");
    }
    binoc_net::logging::init();
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds, got {d}");
        }
    }
    let state_dir = args
        .state_dir
        .clone()
        .or_else(binoc_net::identity::default_state_dir);
    let identity = match &args.identity {
        Some(p) => Identity::load_or_create(p)?,
        None => binoc_net::trust::identity_in(
            state_dir.as_deref(),
            binoc_net::trust::HEADSET_IDENTITY,
            binoc_net::SERVER_NAME,
        )?,
    };
    let access = if args.unpaired {
        Access::default()
    } else {
        let dir = state_dir.as_deref().context(
            "no state directory for the paired streamers: give --state-dir DIR (or --unpaired)",
        )?;
        Access::paired_in(dir, args.pair)?
    };
    if !args.headless {
        let report = run_app(&args, identity, access)?;
        return print_report(&args, &report);
    }
    let rt = binoc_net::sched::runtime_builder().build()?;
    let report = rt.block_on(async {
        let shared = Shared::new(args.frames, args.sessions);
        let client = Client::bind(args.listen, &identity, shared.clone(), Arc::new(Headless))?
            .with_access(access);
        tracing::info!(listen = %client.local_addr()?, fingerprint = %identity.fingerprint(), "listening");
        quest_client::print_pairing_codes(&shared);
        let _metrics = match args.metrics {
            Some(addr) => {
                let live = shared.clone();
                let collect: binoc_net::metrics::Collect = Arc::new(move || {
                    serde_json::to_value(live.report())
                        .map(|v| vec![(Vec::new(), v)])
                        .unwrap_or_default()
                });
                Some(binoc_net::metrics::serve(addr, "binoc_headset", collect).await?)
            }
            None => None,
        };
        let stopper = shared.clone();
        let duration = args.duration;
        tokio::spawn(async move {
            let sleep = async {
                match duration {
                    Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            }
            stopper.finish();
        });
        client.run().await?;
        anyhow::Ok(shared.report())
    })?;
    print_report(&args, &report)
}

fn print_report(args: &Args, report: &ClientReport) -> Result<()> {
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        ReportFormat::Text => print!("{}", report.to_text()),
    }
    Ok(())
}

#[cfg(feature = "app")]
fn run_app(args: &Args, identity: Identity, access: Access) -> Result<ClientReport> {
    use quest_client::app::{self, ClientConfig, Mode, Placement};
    let mut config = match &args.config {
        Some(p) => ClientConfig::load(p)?,
        None => ClientConfig::default(),
    };
    if let Some(p) = args.placement {
        config.layer.placement = match p {
            PlacementArg::Head => Placement::Head,
            PlacementArg::World => Placement::World,
        };
    }
    if args.no_hud {
        config.hud.visible = false;
    }
    let mode = if args.desktop {
        Mode::Desktop
    } else if args.offscreen {
        Mode::Offscreen {
            dump: args.dump.clone(),
        }
    } else {
        Mode::Xr
    };
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir)?;
    }
    let outcome = app::run(app::AppOptions {
        mode,
        listen: args.listen,
        identity,
        access,
        config,
        frames: args.frames,
        sessions: args.sessions,
        duration: args.duration,
        view_size: args.view_size,
        screenshot: args.screenshot.clone(),
        render_diagnostics: args.render_diagnostics,
        on_listening: None,
    })?;
    if let Some(views) = outcome.views {
        let log = views.log();
        for eye in shared_proto::Eye::BOTH {
            let codes = &log.codes[eye.index()];
            let readable = codes.iter().flatten().count();
            let wrong = codes.iter().flatten().filter(|(e, _)| *e != eye).count();
            eprintln!(
                "{eye} view: {} frames rendered, {readable} with a readable code, {wrong} showing the other eye",
                codes.len()
            );
        }
    }
    Ok(outcome.report)
}

#[cfg(not(feature = "app"))]
fn run_app(args: &Args, _identity: Identity, _access: Access) -> Result<ClientReport> {
    let mode = if args.desktop {
        "--desktop"
    } else if args.offscreen {
        "--offscreen"
    } else {
        "XR mode"
    };
    bail!(
        "{mode} needs the app shell: build with `cargo build --release -p quest-client --features app` \
         (this build has only --headless)"
    )
}
