//! The streamer's side of pairing: its own identity (its client certificate on QUIC), the
//! headsets it sends to, `pi-streamer pair`, and the words for a headset's refusal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Result};
use binoc_net::trust::{self, HeadsetTrust, PairedPeers};
use binoc_net::Identity;
use shared_proto::rules::pairing::close;

use crate::config::StreamerConfig;

/// How to pair, for error messages.
pub const HOW_TO_PAIR: &str = "pair once: start the headset with `quest-client --pair` (the \
     Quest app shows its code while nothing is paired), then run `pi-streamer pair HOST:PORT \
     CODE` here; or run both with --unpaired on a network you trust";

/// The streamer's identity for `state_dir`, made once per process (and kept in the directory
/// when there is one): every connection of this process shows the same certificate, so a
/// headset recognises its reconnection.
pub fn identity(state_dir: Option<&Path>) -> Result<Arc<Identity>> {
    static IDS: OnceLock<Mutex<HashMap<Option<PathBuf>, Arc<Identity>>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = state_dir.map(Path::to_path_buf);
    if let Some(id) = ids.get(&key) {
        return Ok(id.clone());
    }
    let id = Arc::new(trust::identity_in(
        state_dir,
        trust::STREAMER_IDENTITY,
        trust::STREAMER_NAME,
    )?);
    ids.insert(key, id.clone());
    Ok(id)
}

/// The headsets this configuration sends to: the pinned fingerprint if one is given, else the
/// paired headsets in the state directory (read at every connection), or any with pairing
/// off. No pin and nothing paired is an error that says how to pair.
pub fn headset_trust(cfg: &StreamerConfig) -> Result<HeadsetTrust> {
    if cfg.transport.unpaired {
        return Ok(HeadsetTrust::Any);
    }
    if let Some(fp) = &cfg.transport.peer_fingerprint {
        return Ok(HeadsetTrust::Pinned(vec![fp.clone()]));
    }
    let Some(dir) = &cfg.state_dir else {
        bail!("no state directory to find the paired headsets in (--state-dir DIR): {HOW_TO_PAIR}");
    };
    let paired = PairedPeers::in_dir(dir, trust::PAIRED_HEADSETS).load()?;
    if paired.is_empty() {
        bail!(
            "no headset is paired with this streamer (none in {}): {HOW_TO_PAIR}",
            dir.join(trust::PAIRED_HEADSETS).display()
        );
    }
    Ok(HeadsetTrust::Pinned(paired))
}

/// Why the headset closed `conn`, in words, and whether trying again cannot help (not paired).
pub fn refusal(conn: &quinn::Connection) -> Option<(String, bool)> {
    let (code, reason) = binoc_net::closed_by_peer(conn)?;
    match code {
        close::NOT_PAIRED => Some((format!("the headset refused this streamer: {reason}"), true)),
        close::BUSY => Some((format!("the headset is busy: {reason}"), false)),
        close::REPLACED => Some((
            format!("the headset closed this connection: {reason}"),
            false,
        )),
        _ => None,
    }
}

/// An error that retrying will not mend: the headset does not know this streamer.
#[derive(Debug)]
pub struct NotPaired(pub String);

impl std::fmt::Display for NotPaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for NotPaired {}

/// `pi-streamer pair HOST:PORT CODE`: pairs with the headset showing `code` and stores it in
/// `state_dir`'s list of paired headsets; returns its fingerprint.
pub async fn pair(peer: &str, code: &str, state_dir: &Path) -> Result<String> {
    let addr = super::resolve(peer).await?;
    let me = identity(Some(state_dir))?;
    let store = PairedPeers::in_dir(state_dir, trust::PAIRED_HEADSETS);
    binoc_net::pairing::pair_with_headset(addr, code, &me, &store).await
}
