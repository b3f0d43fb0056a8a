//! The listening headset: accepts streamers over QUIC, one session at a time; with pairing
//! on, only streamers it paired with, and pairs new ones by a short code while its pairing
//! window is open.
//!
//! After each TLS handshake the streamer's certificate decides, before any video byte:
//! a pairing connection ([`binoc_net::PAIR_ALPN`]) runs the pairing (one at a time, if the
//! window is open); a video connection from a streamer [`StreamerAccess`] does not admit is
//! closed with [`close::NOT_PAIRED`] and words saying how to pair; an admitted one starts a
//! session, or replaces its own older session, or is refused with [`close::BUSY`] while
//! another streamer streams ([`pairing::admit`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use binoc_net::{Identity, PairedPeers, StreamerAccess};
use shared_proto::rules::pairing::{self, close, Admission, CodeAttempts};

use crate::session;
use crate::sink::PictureSink;
use crate::stats::Shared;

/// Handshakes in progress at once (more are refused), and how long one may take.
const MAX_HANDSHAKES: usize = 16;
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// The open pairing window: where pairings go, the code and its tries, one pairing at a time.
type PairingWindow = (
    PairedPeers,
    Arc<Mutex<Option<CodeAttempts>>>,
    Arc<tokio::sync::Semaphore>,
);

/// The listening client.
pub struct Client {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
    fingerprint: String,
    access: Access,
    window: Option<PairingWindow>,
}

/// Who may stream to the headset, and whether it pairs new streamers.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub streamers: StreamerAccess,
    /// With a list here, the pairing window is open: a code is drawn (published in
    /// [`Shared::pairing_code`]) and the first streamer that proves it is added to the list;
    /// then the window closes. A code is withdrawn after
    /// [`pairing::MAX_FAILURES_PER_CODE`] wrong tries and a new one drawn.
    pub pairing: Option<PairedPeers>,
}

impl Access {
    /// The usual headset: only the streamers paired in `dir`'s list; the pairing window open
    /// when `pair` asks for it, or when none is paired yet (the first start).
    pub fn paired_in(dir: &std::path::Path, pair: bool) -> Result<Access> {
        let list = PairedPeers::in_dir(dir, binoc_net::trust::PAIRED_STREAMERS);
        let first_start = list.load()?.is_empty();
        Ok(Access {
            streamers: StreamerAccess::Paired(list.clone()),
            pairing: (pair || first_start).then_some(list),
        })
    }
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
            fingerprint: identity.fingerprint(),
            access: Access::default(),
            window: None,
        })
    }

    /// Who may stream, and whether to pair (default: any streamer, no pairing, as for the
    /// in-process self-test).
    pub fn with_access(mut self, access: Access) -> Self {
        // The pairing window opens now: its code is published before the first connection.
        self.window = access.pairing.clone().map(|store| {
            let attempts = CodeAttempts::new(binoc_net::pairing::new_code());
            self.shared
                .pairing_code
                .send_replace(Some(attempts.code().to_string()));
            (
                store,
                Arc::new(Mutex::new(Some(attempts))),
                Arc::new(tokio::sync::Semaphore::new(1)),
            )
        });
        self.access = access;
        self
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts streamers one session at a time (a new streamer replaces the old one) until the
    /// frame target is reached or [`Shared::finish`] is called.
    pub async fn run(self) -> Result<()> {
        let shared = self.shared.clone();
        // The session now: its task, its connection (closed when its streamer connects again)
        // and its streamer's fingerprint.
        let mut current: Option<(
            tokio::task::JoinHandle<()>,
            quinn::Connection,
            Option<String>,
        )> = None;
        let finished = shared.finished();
        tokio::pin!(finished);
        // Handshakes run on their own, at most MAX_HANDSHAKES at once and each within
        // HANDSHAKE_DEADLINE: a half-open one cannot hold up the next streamer.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<quinn::Connection>(4);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let mut last_warned: Option<std::time::Instant> = None;
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
                            // Debug, not warn: a stranger's flood of them must not flood the log.
                            Ok(Err(e)) => tracing::debug!(%remote, "handshake failed: {e}"),
                            Err(_) => tracing::debug!(%remote, "handshake not done within {HANDSHAKE_DEADLINE:?}"),
                        }
                    });
                    continue;
                }
                Some(c) = done_rx.recv() => c,
                _ = &mut finished => break,
            };
            let remote = conn.remote_address();
            let streamer = binoc_net::peer_fingerprint(&conn);
            if binoc_net::alpn(&conn).as_deref() == Some(binoc_net::PAIR_ALPN) {
                self.pair(&conn);
                continue;
            }
            if let Err(why) = self.access.streamers.admits(streamer.as_deref()) {
                // One warning per 10 s at most (a stranger can repeat this), the rest at debug.
                if last_warned
                    .is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(10))
                {
                    last_warned = Some(std::time::Instant::now());
                    tracing::warn!(%remote, "refused: {why}");
                } else {
                    tracing::debug!(%remote, "refused: {why}");
                }
                shared.streamers_refused.fetch_add(1, Ordering::Relaxed);
                conn.close(close::NOT_PAIRED.into(), why.as_bytes());
                continue;
            }
            if current
                .as_ref()
                .is_some_and(|(task, _, _)| task.is_finished())
            {
                current = None;
            }
            match pairing::admit(
                current.as_ref().map(|(_, _, fp)| fp.as_deref()),
                streamer.as_deref(),
            ) {
                Admission::Start => {}
                Admission::Replace => {
                    let (old, old_conn, _) = current.take().expect("a session to replace");
                    tracing::info!(%remote, "the streamer connected again: replacing its previous session");
                    old.abort();
                    // Closed, not left to its tasks: the old connection's streamer hears it.
                    old_conn.close(
                        close::REPLACED.into(),
                        b"replaced by a new connection of the same streamer",
                    );
                }
                Admission::Busy => {
                    tracing::info!(%remote, "refused: another streamer is streaming to this headset");
                    shared.streamers_refused.fetch_add(1, Ordering::Relaxed);
                    conn.close(
                        close::BUSY.into(),
                        b"another streamer is streaming to this headset",
                    );
                    continue;
                }
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
                    conn.close(close::NORMAL.into(), b"bye");
                    let ended = shared.sessions_ended.fetch_add(1, Ordering::Relaxed) + 1;
                    if shared.session_limit.is_some_and(|n| ended >= n) {
                        shared.finish();
                    }
                }),
                conn,
                streamer,
            ));
            if shared.is_finished() {
                break;
            }
        }
        if let Some((s, _, _)) = current {
            // Let the session flush its last markers, then close.
            let _ = tokio::time::timeout(Duration::from_millis(500), s).await;
        }
        // Closes every connection, also one a streamer completed while this run was ending,
        // and waits (briefly) until the closes are on the wire: a streamer must hear that this
        // headset went, not wait for its idle timeout.
        self.endpoint.close(close::NORMAL.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_millis(200), self.endpoint.wait_idle()).await;
        Ok(())
    }

    /// A pairing connection: run it if the window is open and no other pairing runs, else
    /// close it saying why. Runs on its own task (bounded by the pairing deadline).
    fn pair(&self, conn: &quinn::Connection) {
        let remote = conn.remote_address();
        let Some((store, attempts, one_at_a_time)) = &self.window else {
            conn.close(close::NOT_PAIRING.into(), b"this headset is not pairing");
            return;
        };
        let code = match attempts.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(a) => a.code().to_string(),
            None => {
                conn.close(
                    close::NOT_PAIRING.into(),
                    b"this headset has paired and is not pairing now",
                );
                return;
            }
        };
        let Ok(permit) = one_at_a_time.clone().try_acquire_owned() else {
            conn.close(
                close::PAIRING_FAILED.into(),
                b"another pairing is in progress: try again",
            );
            return;
        };
        let (conn, store, attempts) = (conn.clone(), store.clone(), attempts.clone());
        let (own, shared) = (self.fingerprint.clone(), self.shared.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match binoc_net::pairing::serve_pairing(&conn, &code, &own).await {
                Ok(streamer) => {
                    let note = format!(
                        "streamer at {remote}, paired {}",
                        binoc_net::os_clock::utc_now()
                    );
                    match store.add(&streamer, &note) {
                        Ok(()) => {
                            tracing::info!(%remote, fingerprint = %streamer, "paired a streamer");
                            *attempts.lock().unwrap_or_else(|p| p.into_inner()) = None;
                            shared.pairing_code.send_replace(None);
                        }
                        Err(e) => tracing::error!("storing the pairing: {e:#}"),
                    }
                    conn.close(close::PAIRED.into(), b"paired");
                }
                Err(e) => {
                    tracing::warn!(%remote, "pairing failed: {e}");
                    let mut guard = attempts.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(a) = guard.as_mut() {
                        if a.failed() {
                            a.replace(binoc_net::pairing::new_code());
                            tracing::warn!(
                                "{} wrong tries: a new pairing code",
                                pairing::MAX_FAILURES_PER_CODE
                            );
                            shared.pairing_code.send_replace(Some(a.code().to_string()));
                        }
                    }
                    conn.close(close::PAIRING_FAILED.into(), e.to_string().as_bytes());
                }
            }
        });
    }
}
