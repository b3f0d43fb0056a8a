use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use quest_client::core::{Client, Headless, Shared};
use quest_client::net::Identity;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

/// binoc headset client. Listens for a pi-streamer, receives both eyes over QUIC, decodes them
/// and sends per-frame timestamp markers back.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Run the receive/decode core alone, without a display (prints stats).
    #[arg(long)]
    headless: bool,
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
    /// TLS identity (PEM certificate + key), created on first use so the fingerprint the
    /// streamer pins stays stable. Without it, a fresh identity is made for this run.
    #[arg(long)]
    identity: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if !args.headless {
        bail!("only --headless is available in this build (the XR and desktop shells are not built yet)");
    }
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds, got {d}");
        }
    }
    let identity = match &args.identity {
        Some(p) => Identity::load_or_create(p)?,
        None => Identity::generate()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let shared = Shared::new(args.frames, args.sessions);
        let client = Client::bind(args.listen, &identity, shared.clone(), Arc::new(Headless))?;
        tracing::info!(listen = %client.local_addr()?, fingerprint = %identity.fingerprint(), "listening");
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
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{}", report.to_text()),
    }
    Ok(())
}
