//! Pairing over QUIC, both sides: the IO around [`shared_proto::rules::pairing`] (the
//! messages, SPAKE2 and the key confirmation live there). A pairing connection speaks
//! [`PAIR_ALPN`]; the streamer shows its own certificate and accepts whatever certificate the
//! headset shows (that is what the confirmation then binds), and each side stores the other's
//! fingerprint only once both proofs check.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use shared_proto::rules::pairing::{
    close, is_code, Fingerprints, HeadsetPairing, PairDecoder, PairError, PairMsg, Step,
    StreamerPairing, PAIR_ALPN,
};

use crate::endpoint::{client_endpoint_for, closed_by_peer, peer_fingerprint, SERVER_NAME};
use crate::trust::{HeadsetTrust, PairedPeers};
use crate::Identity;

/// How long one pairing may take, end to end.
pub const PAIRING_DEADLINE: Duration = Duration::from_secs(10);

async fn send(stream: &mut quinn::SendStream, msg: &PairMsg) -> Result<()> {
    let mut buf = Vec::new();
    msg.encode(&mut buf);
    stream.write_all(&buf).await.context("pairing stream write")
}

async fn next(
    recv: &mut quinn::RecvStream,
    decoder: &mut PairDecoder,
) -> Result<PairMsg, PairError> {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(m) = decoder.next_message()? {
            return Ok(m);
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n])?,
            Ok(None) | Err(_) => return Err(PairError::Malformed("the stream ended")),
        }
    }
}

/// The words for a pairing connection the headset closed.
fn closed_why(conn: &quinn::Connection) -> Option<String> {
    match closed_by_peer(conn) {
        Some((close::NOT_PAIRING, reason)) => Some(format!(
            "the headset is not pairing ({reason}): start it with `quest-client --pair` and use \
             the code it shows"
        )),
        Some((_, reason)) => Some(reason),
        None => conn.close_reason().map(|e| e.to_string()),
    }
}

/// The streamer's side: pairs with the headset at `peer` using the `code` it shows, stores the
/// headset's fingerprint in `store`, and returns it.
pub async fn pair_with_headset(
    peer: SocketAddr,
    code: &str,
    identity: &Identity,
    store: &PairedPeers,
) -> Result<String> {
    if !is_code(code) {
        bail!("a pairing code is the 6 digits the headset shows, got `{code}`");
    }
    let endpoint = client_endpoint_for(
        PAIR_ALPN,
        HeadsetTrust::Any,
        Some(identity),
        Default::default(),
    )?;
    let run = async {
        let conn = endpoint
            .connect(peer, SERVER_NAME)?
            .await
            .with_context(|| format!("connecting to {peer}"))?;
        let headset = peer_fingerprint(&conn).context("the headset showed no certificate")?;
        let fps = Fingerprints {
            streamer: identity.fingerprint(),
            headset: headset.clone(),
        };
        let outcome = async {
            let (mut tx, mut rx) = conn.open_bi().await?;
            let (mut pairing, first) = StreamerPairing::start(code, fps);
            send(&mut tx, &first).await?;
            let mut decoder = PairDecoder::default();
            loop {
                let msg = match next(&mut rx, &mut decoder).await {
                    Ok(m) => m,
                    Err(e) => match closed_why(&conn) {
                        Some(why) => bail!("{why}"),
                        None => return Err(e.into()),
                    },
                };
                match pairing.on_message(msg)? {
                    Step::Send(m) => send(&mut tx, &m).await?,
                    Step::Paired {
                        peer_fingerprint, ..
                    } => return anyhow::Ok(peer_fingerprint),
                }
            }
        }
        .await;
        match outcome {
            Ok(fp) => {
                store.add(
                    &fp,
                    &format!("headset at {peer}, paired {}", crate::os_clock::utc_now()),
                )?;
                conn.close(close::PAIRED.into(), b"paired");
                Ok(fp)
            }
            Err(e) => {
                conn.close(close::PAIRING_FAILED.into(), b"pairing failed");
                Err(e)
            }
        }
    };
    let result = tokio::time::timeout(PAIRING_DEADLINE, run)
        .await
        .with_context(|| format!("no pairing with {peer} within {PAIRING_DEADLINE:?}"))?;
    let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
    result
}

/// The headset's side of one pairing connection with the code it shows: the streamer's
/// fingerprint if the streamer proved the same code (store it, then close with
/// [`close::PAIRED`]), else why not (count it; close with [`close::PAIRING_FAILED`]). Bounded
/// by [`PAIRING_DEADLINE`].
pub async fn serve_pairing(
    conn: &quinn::Connection,
    code: &str,
    own_fingerprint: &str,
) -> Result<String, PairError> {
    let Some(streamer) = peer_fingerprint(conn) else {
        return Err(PairError::Refused("no certificate shown".into()));
    };
    let fps = Fingerprints {
        streamer,
        headset: own_fingerprint.to_string(),
    };
    let run = async {
        let (mut tx, mut rx) = conn
            .accept_bi()
            .await
            .map_err(|_| PairError::Malformed("no pairing stream"))?;
        let mut pairing = HeadsetPairing::new(code, fps);
        let mut decoder = PairDecoder::default();
        loop {
            let msg = next(&mut rx, &mut decoder).await?;
            match pairing.on_message(msg) {
                Ok(Step::Send(m)) => send(&mut tx, &m)
                    .await
                    .map_err(|_| PairError::Malformed("the stream ended"))?,
                Ok(Step::Paired {
                    send: reply,
                    peer_fingerprint,
                }) => {
                    if let Some(m) = reply {
                        send(&mut tx, &m)
                            .await
                            .map_err(|_| PairError::Malformed("the stream ended"))?;
                    }
                    let _ = tx.finish();
                    // The streamer closes once it has checked our proof and stored us.
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                    return Ok(peer_fingerprint);
                }
                Err(e) => {
                    let _ = send(&mut tx, &PairMsg::Refused(e.to_string())).await;
                    let _ = tx.finish();
                    let _ = tokio::time::timeout(Duration::from_millis(300), tx.stopped()).await;
                    return Err(e);
                }
            }
        }
    };
    tokio::time::timeout(PAIRING_DEADLINE, run)
        .await
        .unwrap_or(Err(PairError::Malformed("not done within the deadline")))
}

/// A fresh pairing code from the OS's randomness.
pub fn new_code() -> String {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut b = [0u8; 4];
        if rng.fill(&mut b).is_ok() {
            if let Some(code) =
                shared_proto::rules::pairing::code_from_random(u32::from_le_bytes(b))
            {
                return code;
            }
        }
    }
}
