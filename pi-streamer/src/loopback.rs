//! `pi-streamer loopback`: the streamer and the headset's receive core (headless) in one
//! process, talking real QUIC over 127.0.0.1 with a pinned certificate.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use binoc_net::Identity;
use headset_core::decode::SoftwareDecoder;
use headset_core::{Client, ClientReport, Headless, Shared};

use crate::config::StreamerConfig;
use crate::report::Report;
use crate::session::{stream_to_with, Live};
use crate::timeline::Timeline;

pub struct LoopbackResult {
    pub report: Report,
    /// The client's own view (its counters and its capture→decoded estimate).
    pub client: ClientReport,
}

pub async fn run(cfg: &StreamerConfig, frames: u64) -> Result<LoopbackResult> {
    run_with_timeline(cfg, frames, None, SoftwareDecoder::default()).await
}

/// [`run`], writing every decoded frame's stages to `timeline` (`--timeline`'s CSV) if given,
/// the headset decoding with `decoder`.
pub async fn run_with_timeline(
    cfg: &StreamerConfig,
    frames: u64,
    timeline: Option<&Path>,
    decoder: SoftwareDecoder,
) -> Result<LoopbackResult> {
    let timeline = match timeline {
        Some(p) => Some(Arc::new(Timeline::create(
            p,
            binoc_net::os_clock::monotonic_ns(),
        )?)),
        None => None,
    };
    let run_state = crate::session::Shared::with_live(cfg, Arc::new(Live::with_timeline(timeline)));
    let identity = Identity::generate()?;
    let mut cfg = cfg.clone();
    cfg.transport.peer_fingerprint = Some(identity.fingerprint());
    let shared = Shared::new(None, None);
    shared.set_software_decoder(decoder)?;
    let client = Client::bind(
        "127.0.0.1:0".parse()?,
        &identity,
        shared.clone(),
        Arc::new(Headless),
    )?;
    let addr = client.local_addr()?;
    let client_task = tokio::spawn(client.run());
    let outcome = stream_to_with(
        &cfg,
        &run_state,
        addr,
        Some(frames),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    shared.finish();
    client_task.await??;
    let outcome = outcome?;
    if let Some(why) = outcome.connection_lost {
        bail!("the loopback connection was lost: {why}");
    }
    Ok(LoopbackResult {
        report: outcome.report,
        client: shared.report(),
    })
}
