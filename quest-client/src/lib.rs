//! # quest-client
//!
//! The headset app: the Bevy/OpenXR shell ([`app`], cargo feature `app`) on top of the receive
//! core in the `headset-core` crate, which presents decoded pictures through
//! `headset_core::PictureSink`. Without the `app` feature this library is empty and the
//! binary is the headless client (`--headless`); [`print_pairing_codes`] serves both.

#[cfg(feature = "app")]
pub mod app;

use std::sync::Arc;

use headset_core::Shared;

/// Prints each pairing code as it is drawn (`pairing code: NNNNNN`, on stdout for scripts), in
/// every mode (the app also shows it in the HUD). Call within a tokio runtime.
pub fn print_pairing_codes(shared: &Arc<Shared>) {
    let mut codes = shared.pairing_code.subscribe();
    codes.mark_changed();
    tokio::spawn(async move {
        while codes.changed().await.is_ok() {
            let code = codes.borrow_and_update().clone();
            match code {
                Some(c) => {
                    use std::io::Write;
                    println!("pairing code: {c}");
                    let _ = std::io::stdout().flush();
                }
                None => tracing::info!("pairing window closed"),
            }
        }
    });
}
