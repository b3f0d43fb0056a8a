//! The Quest APK's native library. NativeActivity loads `libbinoc_quest.so` and calls
//! [`android_main`], which runs the headset app in XR mode: it listens for the streamer on UDP
//! 7878, decodes each eye with MediaCodec and shows it to that eye only.
//!
//! Files in the app's internal storage (`/data/data/org.binoc.quest/files/`, `adb push`-able
//! with `run-as`): `identity.pem` — the headset's certificate, created on first start and kept
//! so a paired streamer recognises it; `paired-streamers` — the streamers it paired with (while
//! it is empty, the HUD shows a pairing code: `pi-streamer pair HEADSET:7878 CODE`; delete it
//! to pair again); `quest-client.yaml` — the
//! client configuration (layer placement, size, distance; HUD), if present.
//!
//! Only compiled for Android: elsewhere this crate is empty (the desktop app is the
//! `quest-client` binary). Type-checked and linted by `scripts/android-check.sh`.
#![cfg(target_os = "android")]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bevy::android::android_activity::AndroidApp;
use binoc_net::Identity;
use quest_client::app::{self, AppOptions, ClientConfig, Mode};

/// Where the headset listens for the streamer (`pi-streamer --peer HEADSET:7878`).
const LISTEN: &str = "0.0.0.0:7878";

/// # Safety
/// Called once by NativeActivity's glue (android-activity) on its main thread.
#[unsafe(no_mangle)]
fn android_main(android_app: AndroidApp) {
    let files = android_app.internal_data_path();
    // Bevy's windowing and the OpenXR loader find the activity here.
    let _ = bevy::android::ANDROID_APP.set(android_app);
    if let Err(e) = run(files) {
        tracing::error!("binoc: {e:#}");
    }
}

fn run(files: Option<PathBuf>) -> Result<()> {
    let dir = files.context("the app has no internal data directory")?;
    let identity = Identity::load_or_create(&dir.join("identity.pem"))?;
    let config = load_config(&dir.join("quest-client.yaml"))?;
    // Only paired streamers; while none is (the first start) the HUD shows a pairing code.
    let access = headset_core::Access::paired_in(&dir, false)?;
    let outcome = app::run(AppOptions {
        mode: Mode::Xr,
        listen: LISTEN.parse()?,
        identity,
        access,
        config,
        frames: None,
        sessions: None,
        duration: None,
        // Only the flat modes use it; XR views take the headset's resolution.
        view_size: (960, 540),
        screenshot: None,
        render_diagnostics: false,
        on_listening: None,
    })?;
    tracing::info!("{}", outcome.report.to_text());
    Ok(())
}

fn load_config(path: &Path) -> Result<ClientConfig> {
    if path.exists() {
        ClientConfig::load(path)
    } else {
        Ok(ClientConfig::default())
    }
}
