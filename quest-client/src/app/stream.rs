//! The network side of the app: the receive/decode core on its own tokio runtime thread,
//! presenting into the [`Mailbox`]; the app exits when the core is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use bevy::prelude::*;

use super::mailbox::Mailbox;
use super::AppOptions;
use headset_core::{Client, ClientReport, Shared};

pub struct Stream {
    pub shared: Arc<Shared>,
    pub mailbox: Arc<Mailbox>,
    pub local_addr: SocketAddr,
    thread: JoinHandle<Result<()>>,
}

impl Stream {
    /// Binds the QUIC endpoint (an error here, e.g. the port is taken, ends the run before a
    /// window opens) and starts serving streamers.
    pub fn start(opts: &AppOptions) -> Result<Stream> {
        let shared = Shared::new(opts.frames, opts.sessions);
        let mailbox = Arc::new(Mailbox::default());
        let rt = binoc_net::sched::runtime_builder()
            .thread_name("net")
            .build()?;
        let client = rt.block_on(async {
            let client =
                Client::bind(opts.listen, &opts.identity, shared.clone(), mailbox.clone())?
                    .with_access(opts.access.clone());
            crate::print_pairing_codes(&shared);
            anyhow::Ok(client)
        })?;
        let local_addr = client.local_addr()?;
        tracing::info!(listen = %local_addr, fingerprint = %opts.identity.fingerprint(), "listening");
        let thread = std::thread::Builder::new()
            .name("net".into())
            .spawn(move || rt.block_on(client.run()))?;
        Ok(Stream {
            shared,
            mailbox,
            local_addr,
            thread,
        })
    }

    /// Ends the network side and returns the client's report.
    pub fn join(self) -> Result<ClientReport> {
        self.shared.finish();
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the network thread panicked"))?
            .context("network")?;
        Ok(self.shared.report())
    }
}

#[derive(Resource, Clone)]
pub struct StreamState {
    pub shared: Arc<Shared>,
    pub mailbox: Arc<Mailbox>,
    duration: Option<f64>,
}

pub struct StreamPlugin {
    pub shared: Arc<Shared>,
    pub mailbox: Arc<Mailbox>,
    pub duration: Option<f64>,
}

impl Plugin for StreamPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(StreamState {
            shared: self.shared.clone(),
            mailbox: self.mailbox.clone(),
            duration: self.duration,
        })
        .add_systems(Last, exit_when_done);
    }
}

fn exit_when_done(
    state: Res<StreamState>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
) {
    if state.duration.is_some_and(|d| time.elapsed_secs_f64() >= d) {
        state.shared.finish();
    }
    if state.shared.is_finished() {
        exit.write(AppExit::Success);
    }
}
