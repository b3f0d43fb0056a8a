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

/// Handshakes in progress at once (more are refused), and how long one may take.
const MAX_HANDSHAKES: usize = 16;
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

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
        // The session now, and its connection (closed when a new one replaces it).
        let mut current: Option<(tokio::task::JoinHandle<()>, quinn::Connection)> = None;
        let finished = shared.finished();
        tokio::pin!(finished);
        // Handshakes run on their own, at most MAX_HANDSHAKES at once and each within
        // HANDSHAKE_DEADLINE: a half-open one cannot hold up the next streamer.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<quinn::Connection>(4);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        loop {
            let conn = tokio::select! {
                i = self.endpoint.accept() => {
                    let Some(incoming) = i else { break };
                    let remote = incoming.remote_address();
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        tracing::debug!(%remote, "too many handshakes at once: refused");
                        incoming.refuse();
                        continue;
                    };
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        match tokio::time::timeout(HANDSHAKE_DEADLINE, incoming).await {
                            Ok(Ok(c)) => {
                                let _ = done.send(c).await;
                            }
                            Ok(Err(e)) => tracing::warn!(%remote, "handshake failed: {e}"),
                            Err(_) => tracing::warn!(%remote, "handshake not done within {HANDSHAKE_DEADLINE:?}"),
                        }
                    });
                    continue;
                }
                Some(c) = done_rx.recv() => c,
                _ = &mut finished => break,
            };
            let remote = conn.remote_address();
            if let Some((old, old_conn)) = current.take() {
                tracing::info!(%remote, "a new streamer connected: replacing the previous session");
                old.abort();
                // Closed, not left to its tasks: the old streamer hears it and stops sending.
                old_conn.close(0u32.into(), b"replaced by another streamer");
            }
            let (session_shared, sink) = (self.shared.clone(), self.sink.clone());
            let session_conn = conn.clone();
            current = Some((
                tokio::spawn(async move {
                    let (shared, conn) = (session_shared, session_conn);
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
                }),
                conn,
            ));
            if shared.is_finished() {
                break;
            }
        }
        if let Some((s, _)) = current {
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
