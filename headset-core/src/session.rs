//! One streamer's session: the handshake, the control stream (pings answered, the clock
//! estimate taken, markers and statistics sent back), the datagram loop that owns the
//! [`Reassembler`], and one decoder thread per eye fed through a queue bounded by
//! [`shared_proto::rules::backlog`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use binoc_net::os_clock::monotonic_ns;
use binoc_net::{ControlReader, ControlWriter};
use shared_proto::clock::ClockEstimate;
use shared_proto::fragment::{CompletedFrame, Reassembler, ReassemblyLimits};
use shared_proto::rules::backlog::{Backlog, BacklogLimits};
use shared_proto::rules::{handshake, retransmit};
use shared_proto::wire::{frame_ns, ToHeadset, ToStreamer};
use shared_proto::Eye;
use tokio::sync::mpsc;

use crate::decoder;
use crate::sink::PictureSink;
use crate::stats::Shared;

/// One eye's decode queue: the sending end, with the backlog it may hold
/// ([`shared_proto::rules::backlog`]); the decoder's end takes units off the same count.
struct DecodeQueue {
    tx: crossbeam_channel::Sender<CompletedFrame>,
    backlog: Arc<Mutex<Backlog>>,
    limits: BacklogLimits,
}

impl DecodeQueue {
    /// The queue for a stream of one picture every `frame_ns`, and its receiving end as the
    /// decoder iterates it.
    fn new(frame_ns: u64) -> (Self, impl Iterator<Item = CompletedFrame> + Send + 'static) {
        let (tx, rx) = crossbeam_channel::unbounded::<CompletedFrame>();
        let backlog = Arc::new(Mutex::new(Backlog::default()));
        let taken = backlog.clone();
        let frames = rx.into_iter().inspect(move |f: &CompletedFrame| {
            lock(&taken).taken(f.bitstream.len(), f.timing.slice.is_first());
        });
        let limits = BacklogLimits::for_frame_interval(frame_ns);
        (
            DecodeQueue {
                tx,
                backlog,
                limits,
            },
            frames,
        )
    }
}

fn lock(b: &Mutex<Backlog>) -> std::sync::MutexGuard<'_, Backlog> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands one unit out of reassembly to its eye's decoder, counting it.
fn deliver(shared: &Shared, queues: &[DecodeQueue], frame: CompletedFrame) {
    let eye = frame.eye;
    {
        let mut s = shared.eye(eye);
        // A picture counts once, at its last slice.
        s.counts.received += u64::from(frame.timing.slice.is_last());
        s.counts.bytes += frame.bitstream.len() as u64;
        s.counts.repaired += u64::from(frame.repaired_fragments > 0);
    }
    // A decoder behind keeps its backlog (it decodes faster than real time); past the
    // backlog's bounds the unit is dropped here, and the decoder sees the sequence gap and
    // asks for an IDR.
    let q = &queues[eye.index()];
    let (len, first) = (frame.bitstream.len(), frame.timing.slice.is_first());
    if !lock(&q.backlog).admit(q.limits, len, first) {
        tracing::debug!(%eye, "decoder too far behind: unit dropped at its queue");
    } else if q.tx.send(frame).is_err() {
        lock(&q.backlog).taken(len, first);
        tracing::debug!(%eye, "the decoder has ended: unit dropped");
    }
}

/// Messages for the control-stream writer task.
pub enum Outgoing {
    Msg(ToStreamer),
    /// A pong, stamped `t2` by the writer right before it is written.
    Pong {
        id: u32,
        t0: u64,
        t1: u64,
    },
}

/// Runs one streamer's session on `conn` until it ends; the reason it ended.
pub(crate) async fn run(
    conn: quinn::Connection,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
) -> Result<String> {
    let (send, recv) = tokio::time::timeout(Duration::from_secs(5), conn.accept_bi())
        .await
        .context("no control stream within 5 s")??;
    let mut writer = ControlWriter::<ToStreamer>::new(send);
    let mut reader = ControlReader::<ToHeadset>::new(recv);
    let first = reader
        .next()
        .await?
        .context("the streamer closed the control stream before Hello")?;
    let streams = match handshake::answer(first) {
        handshake::Answer::Accept {
            version,
            streams,
            reply,
        } => {
            tracing::info!(version, ?streams, "hello");
            writer.send(&reply).await?;
            streams
        }
        handshake::Answer::Refuse { reason, reply } => {
            writer.send(&reply).await?;
            writer.finish().await;
            bail!(reason);
        }
    };

    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(4096);
    let writer_task = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let msg = match m {
                Outgoing::Msg(c) => c,
                Outgoing::Pong { id, t0, t1 } => ToStreamer::Pong {
                    id,
                    t0,
                    t1,
                    t2: monotonic_ns(),
                },
            };
            if let Err(e) = writer.send(&msg).await {
                tracing::debug!("control writer: {e:#}");
                break;
            }
        }
        writer.finish().await;
    });

    // One decoder thread per eye.
    let mut decoders = Vec::new();
    let mut queues = Vec::new();
    for eye in Eye::BOTH {
        let stream = streams[eye.index()];
        let (queue, frames) = DecodeQueue::new(decoder::frame_interval(stream));
        let (shared, out, sink) = (shared.clone(), out_tx.clone(), sink.clone());
        decoders.push(
            std::thread::Builder::new()
                .name(format!("decode-{eye}"))
                .spawn(move || {
                    // Started from a network worker (a short slice): a codec thread takes the
                    // default back (binoc_net::sched::default_slice).
                    binoc_net::sched::default_slice();
                    decoder::run(eye, stream, frames, out, shared, sink)
                })?,
        );
        queues.push(queue);
    }

    let control_out = out_tx.clone();
    let control_shared = shared.clone();
    let mut control_task = tokio::spawn(async move {
        loop {
            let msg = match reader.next().await {
                Ok(Some(m)) => m,
                Ok(None) => return "control stream closed".to_string(),
                Err(e) => return format!("control stream error: {e:#}"),
            };
            let t1 = monotonic_ns();
            match msg {
                ToHeadset::Ping { id, t0 } => {
                    let _ = control_out.try_send(Outgoing::Pong { id, t0, t1 });
                }
                ToHeadset::ClockEstimate(announced) => {
                    control_shared.set_clock(ClockEstimate::from_announced(announced));
                }
                ToHeadset::LinkStatus(l) => control_shared.set_link(l),
                ToHeadset::Bye { reason } => return format!("streamer said bye: {reason}"),
                ToHeadset::Hello { .. } => return "a second Hello: protocol error".to_string(),
            }
        }
    });

    // Units wait for reordered predecessors up to one frame interval of the faster eye.
    let fps_milli = streams
        .iter()
        .flatten()
        .map(|s| s.fps_milli)
        .max()
        .unwrap_or(60_000)
        .max(1_000);
    let mut reassembler = Reassembler::new(ReassemblyLimits {
        reorder_ns: frame_ns(fps_milli),
        ..Default::default()
    });
    // Expiry and retransmission requests: 5 ms granularity (a request goes out 5–10 ms after a
    // frame's last fragment).
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut stats_tick = tokio::time::interval(Duration::from_millis(500));
    let finished = shared.finished();
    tokio::pin!(finished);
    let reason = loop {
        tokio::select! {
            // Datagrams first: after a stall (a busy machine), the fragments waiting in quinn's
            // queue are taken in before the tick can expire their frames as incomplete.
            biased;
            d = conn.read_datagram() => {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => break format!("connection: {e}"),
                };
                let now = monotonic_ns();
                match reassembler.insert_datagram(&d, now) {
                    Ok(ins) => {
                        for &seq in &ins.lost {
                            tracing::debug!(seq, "frame lost in reassembly");
                        }
                        for frame in ins.completed {
                            deliver(&shared, &queues, frame);
                        }
                    }
                    Err(e) => {
                        shared.malformed_datagrams.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("malformed datagram: {e}");
                    }
                }
            }
            _ = tick.tick() => {
                let now = monotonic_ns();
                let expired = reassembler.expire(now);
                for (eye, seq) in expired.lost {
                    tracing::debug!(%eye, seq, "frame expired incomplete");
                }
                for frame in expired.completed {
                    deliver(&shared, &queues, frame);
                }
                // What parity cannot make up is asked for again (the streamer answers if the
                // frame can still be in time).
                for (eye, seq, missing) in reassembler.nacks(now, retransmit::NACK_WAIT_NS) {
                    shared.eye(eye).counts.nacks += 1;
                    let _ = out_tx.try_send(Outgoing::Msg(ToStreamer::Nack { eye, seq, missing }));
                }
            }
            _ = stats_tick.tick() => {
                let malformed = shared.malformed_datagrams.load(Ordering::Relaxed);
                for eye in Eye::BOTH {
                    count_datagrams(&shared, &reassembler, eye);
                    let stats = shared.eye(eye).counts.wire(malformed);
                    let _ = out_tx.try_send(Outgoing::Msg(ToStreamer::Stats { eye, stats }));
                }
            }
            r = &mut control_task => break r.unwrap_or_else(|e| format!("control task: {e}")),
            _ = &mut finished => break "frame target reached".to_string(),
        }
    };
    control_task.abort();
    for eye in Eye::BOTH {
        count_datagrams(&shared, &reassembler, eye);
    }
    drop(queues);
    // The decoders drain what they hold and exit; their last markers go out before the writer
    // finishes the stream.
    let _ = tokio::task::spawn_blocking(move || {
        for d in decoders {
            let _ = d.join();
        }
    })
    .await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer_task).await;
    Ok(reason)
}

/// The reassembler's datagram loss count, into the eye's counters.
fn count_datagrams(shared: &Shared, reassembler: &Reassembler, eye: Eye) {
    let r = reassembler.stats(eye);
    let mut s = shared.eye(eye);
    s.counts.datagrams_expected = r.datagrams_expected;
    s.counts.datagrams_received = r.datagrams_counted;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seq: u32, len: usize) -> CompletedFrame {
        crate::testing::unit(seq, vec![0; len], false)
    }

    /// The session's two queues for 30 fps streams, and the left decoder's end.
    fn queues() -> (
        Arc<Shared>,
        [DecodeQueue; 2],
        impl Iterator<Item = CompletedFrame>,
    ) {
        let (left, frames) = DecodeQueue::new(frame_ns(30_000));
        let (right, _) = DecodeQueue::new(frame_ns(30_000));
        (Shared::new(None, None), [left, right], frames)
    }

    /// A decoder that stops taking pictures for a while (a stall) finds every one of the
    /// first half second waiting when it resumes; the pictures past that are dropped at the
    /// queue (a gap: the decoder will ask for an IDR), and the queue takes pictures again as
    /// the decoder takes them off.
    #[test]
    fn a_stalled_decoder_finds_half_a_second_waiting_and_no_more() {
        let (shared, queues, mut frames) = queues();
        for seq in 0..20 {
            deliver(&shared, &queues, unit(seq, 20_000));
        }
        // 15 pictures at 30 fps are half a second: those wait, in order.
        assert_eq!(queues[0].tx.len(), 15);
        let waiting: Vec<u32> = frames.by_ref().take(15).map(|f| f.seq).collect();
        assert_eq!(waiting, (0..15).collect::<Vec<_>>());
        assert_eq!(shared.eye(Eye::Left).counts.received, 20);
        // Taken by the decoder, they free their room.
        assert_eq!(*lock(&queues[0].backlog), Backlog::default());
        deliver(&shared, &queues, unit(20, 20_000));
        assert_eq!(queues[0].tx.len(), 1);
        assert_eq!(frames.next().map(|f| f.seq), Some(20));
        assert_eq!(*lock(&queues[0].backlog), Backlog::default());
    }

    /// A picture in slices whose first slice found no room: its later slices still join (the
    /// decoder sees the gap at them and asks for an IDR); every unit is counted back off.
    #[test]
    fn slices_of_a_refused_picture_are_counted_as_they_are_taken() {
        let (shared, queues, mut frames) = queues();
        let slice = |seq: u32, index: u8| {
            let mut f = unit(seq, 1_000);
            f.timing.slice = shared_proto::wire::SliceOf {
                index,
                count: 2,
                recovery: 0,
            };
            f
        };
        // 15 pictures' first slices fill the picture count...
        for p in 0..15u32 {
            deliver(&shared, &queues, slice(2 * p, 0));
        }
        // ...so the 16th picture's first slice is refused, its second joins.
        deliver(&shared, &queues, slice(30, 0));
        deliver(&shared, &queues, slice(31, 1));
        assert_eq!(queues[0].tx.len(), 16);
        let seqs: Vec<u32> = frames.by_ref().take(16).map(|f| f.seq).collect();
        assert_eq!(seqs.last(), Some(&31));
        assert_eq!(*lock(&queues[0].backlog), Backlog::default());
    }

    /// A decoder that has ended (its receiving end dropped) holds nothing: what could not be
    /// sent is counted back off.
    #[test]
    fn nothing_is_held_for_a_decoder_that_has_ended() {
        let (shared, queues, frames) = queues();
        drop(frames);
        for seq in 0..40 {
            deliver(&shared, &queues, unit(seq, 20_000));
        }
        assert_eq!(*lock(&queues[0].backlog), Backlog::default());
    }
}
