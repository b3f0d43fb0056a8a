//! One output's frame queue: bounded, and when full it drops its own oldest frame (the newest
//! is the one a live picture wants). Each output has its own, so a slow one loses frames from
//! its own queue and the others never wait for it.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::pipeline::EncodedFrame;

pub struct FrameQueue {
    tx: Sender<Arc<EncodedFrame>>,
    /// The producer's handle on the oldest end, to make room.
    oldest: Receiver<Arc<EncodedFrame>>,
}

impl FrameQueue {
    /// A queue of `capacity` frames and its consumer end.
    pub fn new(capacity: usize) -> (Self, Receiver<Arc<EncodedFrame>>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        (
            FrameQueue {
                tx,
                oldest: rx.clone(),
            },
            rx,
        )
    }

    /// Queues `frame`; the frame dropped to make room, if any. Never blocks, also when the
    /// consumer is gone (the queue then fills and keeps only the newest frames; outputs say
    /// they ended through [`super::Output::ended`]).
    pub fn push(&self, mut frame: Arc<EncodedFrame>) -> Option<Arc<EncodedFrame>> {
        let mut dropped = None;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return dropped,
                Err(TrySendError::Full(f)) => {
                    frame = f;
                    // The consumer may take one meanwhile; then the retry simply succeeds.
                    if let Ok(old) = self.oldest.try_recv() {
                        dropped = Some(old);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::Eye;

    use super::*;

    fn frame(seq: u32) -> Arc<EncodedFrame> {
        Arc::new(EncodedFrame {
            eye: Eye::Left,
            seq,
            keyframe: false,
            timing: Default::default(),
            data: vec![],
        })
    }

    #[test]
    fn a_full_queue_drops_its_oldest_frame() {
        let (q, rx) = FrameQueue::new(2);
        assert!(q.push(frame(0)).is_none());
        assert!(q.push(frame(1)).is_none());
        assert_eq!(q.push(frame(2)).map(|f| f.seq), Some(0));
        let got: Vec<u32> = rx.try_iter().map(|f| f.seq).collect();
        assert_eq!(got, [1, 2], "the newest frames, in order");
    }

    #[test]
    fn a_gone_consumer_never_blocks_the_producer() {
        let (q, rx) = FrameQueue::new(2);
        drop(rx);
        let dropped = (0..10).filter(|&s| q.push(frame(s)).is_some()).count();
        assert_eq!(dropped, 8, "only the newest two stay");
    }
}
