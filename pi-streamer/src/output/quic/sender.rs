//! The QUIC sender: a blocking thread that takes this output's units (whole pictures, or slices
//! the moment the encoder wrote them), drops those past their deadline, fragments, paces
//! ([`Pacer`]) and sends them as datagrams. Its own thread, so it can
//! pace with sub-millisecond precision (tokio timers tick in milliseconds) and check every
//! frame's deadline before and while it goes out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use binoc_net::os_clock::monotonic_ns;
use bytes::Bytes;
use shared_proto::fragment::{fragment_frame_with_parity, OutgoingFrame};
use shared_proto::rules::ledger::FrameKey;
use shared_proto::rules::pacer::Pacer;
use shared_proto::rules::retransmit::SentFrames;

use crate::config::StreamerConfig;
use crate::output::{Feedback, OutputState};
use crate::pipeline::EncodedFrame;

/// Why the sender stopped.
#[derive(Debug)]
pub enum SenderEnd {
    /// The stream is over and every queued frame went out.
    Drained,
    /// The connection is gone.
    ConnectionLost(String),
}

fn sleep_precise(ns: u64) {
    if ns == 0 {
        return;
    }
    let until = monotonic_ns() + ns;
    if ns > 200_000 {
        std::thread::sleep(Duration::from_nanos(ns - 100_000));
    }
    while monotonic_ns() < until {
        std::thread::yield_now();
    }
}

/// Sends frames from `rx` on `conn` until `closing` is set and the queue is empty, or the
/// connection is lost.
pub fn run(
    cfg: &StreamerConfig,
    conn: &quinn::Connection,
    rx: &crossbeam_channel::Receiver<Arc<EncodedFrame>>,
    closing: &AtomicBool,
    state: &OutputState,
    feedback: &Feedback,
    sent: &Mutex<SentFrames<Bytes>>,
) -> SenderEnd {
    let deadline_ns = (cfg.deadlines.max_latency_ms * 1e6) as u64;
    let mut pacer = Pacer::new(cfg.transport.pacing_mbps, 16 * 1024);
    let mut datagrams: Vec<Vec<u8>> = Vec::with_capacity(256);
    loop {
        let f = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(f) => f,
            Err(_) if closing.load(Ordering::Relaxed) && rx.is_empty() => {
                return SenderEnd::Drained
            }
            Err(_) => {
                if let Some(why) = conn.close_reason() {
                    return SenderEnd::ConnectionLost(why.to_string());
                }
                continue;
            }
        };
        if let Some(why) = conn.close_reason() {
            return SenderEnd::ConnectionLost(why.to_string());
        }
        let max_datagram = match conn.max_datagram_size() {
            Some(m) => m.min(cfg.transport.max_datagram_bytes as usize),
            None => return SenderEnd::ConnectionLost("peer does not accept datagrams".into()),
        };
        let now = monotonic_ns();
        if now.saturating_sub(f.timing.capture_ns) > deadline_ns {
            state.eye(f.eye).dropped_deadline += 1;
            feedback.request_keyframe(f.eye);
            tracing::debug!(eye = %f.eye, seq = f.seq, "frame past its deadline before sending: dropped");
            continue;
        }
        let mut timing = f.timing;
        timing.send_ns = now;
        datagrams.clear();
        let out = OutgoingFrame {
            eye: f.eye,
            seq: f.seq,
            keyframe: f.keyframe,
            timing,
            bitstream: &f.data,
        };
        // Parity as this receiver's measured loss asks (none on a clean link).
        let fec = state.eye(f.eye).fec.clone();
        let shape = match fragment_frame_with_parity(
            &out,
            max_datagram,
            |k| fec.parity_for(k),
            |d| datagrams.push(d),
        ) {
            Ok(shape) => shape,
            Err(e) => {
                tracing::error!(eye = %f.eye, "cannot fragment frame of {} bytes: {e}", f.data.len());
                feedback.request_keyframe(f.eye);
                continue;
            }
        };
        // A picture's marker names its last unit: only that one is booked for it.
        let key = FrameKey::Seq(f.seq);
        let booked = timing.slice.is_last();
        {
            let mut c = state.eye(f.eye);
            if booked {
                c.book_sending(key, timing);
            }
            c.data_datagrams += u64::from(shape.data);
            c.parity_sent += u64::from(shape.parity);
            c.parity_bytes += datagrams[usize::from(shape.data)..]
                .iter()
                .map(|d| d.len() as u64)
                .sum::<u64>();
        }
        let mut abandoned = false;
        let frame: Vec<Bytes> = datagrams.drain(..).map(Bytes::from).collect();
        for d in &frame {
            let t = monotonic_ns();
            if t.saturating_sub(timing.capture_ns) > deadline_ns {
                abandoned = true;
                break;
            }
            sleep_precise(pacer.delay(t, d.len()));
            // Wait for room in quinn's datagram queue rather than let it drop older datagrams
            // (which may belong to this very frame).
            while conn.datagram_send_buffer_space() < d.len() {
                if let Some(why) = conn.close_reason() {
                    return SenderEnd::ConnectionLost(why.to_string());
                }
                if monotonic_ns().saturating_sub(timing.capture_ns) > deadline_ns {
                    abandoned = true;
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            if abandoned {
                break;
            }
            if let Err(e) = conn.send_datagram(d.clone()) {
                return SenderEnd::ConnectionLost(e.to_string());
            }
        }
        if abandoned {
            // The rest of the frame would arrive too late: the client loses it and the next
            // frame of this eye is an IDR.
            let mut c = state.eye(f.eye);
            if booked {
                c.ledger.unbook(key);
            }
            c.dropped_deadline += 1;
            drop(c);
            feedback.request_keyframe(f.eye);
            continue;
        }
        state
            .eye(f.eye)
            .record_sent(&timing, f.data.len(), monotonic_ns());
        // Kept for selective retransmission (its data fragments: parity is not asked for).
        let mut data = frame;
        data.truncate(usize::from(shape.data));
        sent.lock()
            .unwrap_or_else(|p| p.into_inner())
            .keep(f.eye, f.seq, timing.capture_ns, data);
    }
}
