//! The framed control stream over a QUIC bidirectional stream, one direction's messages each
//! way: the streamer holds a `ControlWriter<ToHeadset>` and a `ControlReader<ToStreamer>`,
//! the headset the opposite pair.

use std::time::Duration;

use anyhow::{Context, Result};
use shared_proto::wire::{ControlDecoder, Message};

/// Writes control messages on the control stream.
pub struct ControlWriter<M> {
    send: quinn::SendStream,
    buf: Vec<u8>,
    _direction: std::marker::PhantomData<fn(M)>,
}

impl<M: Message> ControlWriter<M> {
    pub fn new(send: quinn::SendStream) -> Self {
        ControlWriter {
            send,
            buf: Vec::with_capacity(256),
            _direction: std::marker::PhantomData,
        }
    }

    pub async fn send(&mut self, msg: &M) -> Result<()> {
        self.buf.clear();
        msg.encode_framed(&mut self.buf);
        self.send
            .write_all(&self.buf)
            .await
            .context("control stream write")?;
        Ok(())
    }

    /// Writes bytes as they are, unframed (for protocol tests and fault injection).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.send.write_all(bytes).await;
    }

    pub async fn finish(mut self) {
        let _ = self.send.finish();
        let _ = tokio::time::timeout(Duration::from_millis(200), self.send.stopped()).await;
    }
}

/// Reads control messages from the control stream.
pub struct ControlReader<M> {
    recv: quinn::RecvStream,
    decoder: ControlDecoder<M>,
    buf: Vec<u8>,
}

impl<M: Message> ControlReader<M> {
    pub fn new(recv: quinn::RecvStream) -> Self {
        ControlReader {
            recv,
            decoder: ControlDecoder::new(),
            buf: vec![0; 16 * 1024],
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream. A malformed message is
    /// an error: framing is lost, so the connection should close.
    pub async fn next(&mut self) -> Result<Option<M>> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            match self
                .recv
                .read(&mut self.buf)
                .await
                .context("control stream read")?
            {
                Some(n) => self.decoder.push(&self.buf[..n]),
                None => return Ok(None),
            }
        }
    }
}
