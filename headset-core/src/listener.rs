//! The listening headset: accepts streamers over QUIC, one session at a time.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use binoc_net::Identity;

use crate::session;
use crate::sink::PictureSink;
use crate::stats::Shared;

/// The listening client.
pub struct Client {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
}

impl Client {
    pub fn bind(
        listen: SocketAddr,
        identity: &Identity,
        shared: Arc<Shared>,
        sink: Arc<dyn PictureSink>,
    ) -> Result<Self> {
        let endpoint = binoc_net::server_endpoint(listen, identity)?;
        Ok(Client {
            endpoint,
            shared,
            sink,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts streamers one session at a time (a new streamer replaces the old one) until the
    /// frame target is reached or [`Shared::finish`] is called.
    pub async fn run(self) -> Result<()> {
        let shared = self.shared.clone();
        let mut current: Option<tokio::task::JoinHandle<()>> = None;
        let finished = shared.finished();
        tokio::pin!(finished);
        loop {
            let incoming = tokio::select! {
                i = self.endpoint.accept() => i,
                _ = &mut finished => break,
            };
            let Some(incoming) = incoming else { break };
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%remote, "handshake failed: {e}");
                    continue;
                }
            };
            if let Some(old) = current.take() {
                tracing::info!(%remote, "a new streamer connected: replacing the previous session");
                old.abort();
            }
            let (session_shared, sink) = (self.shared.clone(), self.sink.clone());
            current = Some(tokio::spawn(async move {
                let shared = session_shared;
                shared.sessions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%remote, "streamer connected");
                match session::run(conn.clone(), shared.clone(), sink).await {
                    Ok(reason) => tracing::info!(%remote, "session ended: {reason}"),
                    Err(e) => tracing::warn!(%remote, "session ended: {e:#}"),
                }
                conn.close(0u32.into(), b"bye");
                let ended = shared.sessions_ended.fetch_add(1, Ordering::Relaxed) + 1;
                if shared.session_limit.is_some_and(|n| ended >= n) {
                    shared.finish();
                }
            }));
            if shared.is_finished() {
                break;
            }
        }
        if let Some(s) = current {
            // Let the session flush its last markers, then close.
            let _ = tokio::time::timeout(Duration::from_millis(500), s).await;
        }
        // Closes every connection, also one a streamer completed while this run was ending,
        // and waits (briefly) until the closes are on the wire: a streamer must hear that this
        // headset went, not wait for its idle timeout.
        self.endpoint.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_millis(200), self.endpoint.wait_idle()).await;
        Ok(())
    }
}
