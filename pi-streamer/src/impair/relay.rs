//! The impairment relay's IO: a UDP relay between the streamer and the headset that passes
//! every datagram through one [`Link`] per direction. The streamer dials the relay's `listen`
//! address; the relay forwards to the headset from a socket of its own and sends the answers
//! back to the streamer that spoke last.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use binoc_net::os_clock::monotonic_ns;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::model::{Impairment, Link, LinkCounters};

/// Datagrams held for later delivery, at most (a longer delay at a higher rate loses the
/// excess, counted as queue loss: the relay's memory stays bounded).
const MAX_HELD: usize = 65_536;

/// Towards the headset (0) or back to the streamer (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    ToHeadset,
    ToStreamer,
}

struct Held {
    at: u64,
    n: u64,
    direction: Direction,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.n) == (o.at, o.n)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(o.at, o.n))
    }
}

struct State {
    links: [Link; 2],
    held: BinaryHeap<Reverse<Held>>,
    next_n: u64,
    streamer: Option<SocketAddr>,
}

/// A running relay.
pub struct Relay {
    pub listen: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Both directions' counters: `[to the headset, to the streamer]`.
pub type Counters = [LinkCounters; 2];

impl Relay {
    /// Listens on `listen` and forwards to `forward`, `to_headset` impairing that direction and
    /// `to_streamer` the way back.
    pub async fn start(
        listen: SocketAddr,
        forward: SocketAddr,
        to_headset: Impairment,
        to_streamer: Impairment,
    ) -> Result<Relay> {
        to_headset.check().map_err(anyhow::Error::msg)?;
        to_streamer.check().map_err(anyhow::Error::msg)?;
        let front = Arc::new(
            UdpSocket::bind(listen)
                .await
                .with_context(|| format!("binding the relay on {listen}"))?,
        );
        let any: SocketAddr = if forward.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let back = Arc::new(UdpSocket::bind(any).await?);
        back.connect(forward).await?;
        let listen = front.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            links: [Link::new(to_headset), Link::new(to_streamer)],
            held: BinaryHeap::new(),
            next_n: 0,
            streamer: None,
        }));
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for direction in [Direction::ToHeadset, Direction::ToStreamer] {
            let (state, wake) = (state.clone(), wake.clone());
            let socket = match direction {
                Direction::ToHeadset => front.clone(),
                Direction::ToStreamer => back.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, from) = match socket.recv_from(&mut buf).await {
                        Ok(r) => r,
                        // ICMP port unreachable and the like: the peer is not up yet.
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            continue;
                        }
                    };
                    let now = monotonic_ns();
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    if direction == Direction::ToHeadset {
                        s.streamer = Some(from);
                    }
                    let times = s.links[direction as usize].enter(now, n);
                    for at in times {
                        if s.held.len() >= MAX_HELD {
                            s.links[direction as usize].counters.lost_queue += 1;
                            s.links[direction as usize].counters.delivered -= 1;
                            continue;
                        }
                        let n_ = s.next_n;
                        s.next_n += 1;
                        s.held.push(Reverse(Held {
                            at,
                            n: n_,
                            direction,
                            bytes: buf[..n].to_vec(),
                        }));
                    }
                    drop(s);
                    wake.notify_one();
                }
            }));
        }
        let sender_state = state.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (due, next) = {
                    let mut s = sender_state.lock().unwrap_or_else(|p| p.into_inner());
                    let now = monotonic_ns();
                    let mut due = Vec::new();
                    while s.held.peek().is_some_and(|h| h.0.at <= now) {
                        let h = s.held.pop().expect("peeked").0;
                        due.push((h.direction, h.bytes, s.streamer));
                    }
                    (due, s.held.peek().map(|h| h.0.at))
                };
                for (direction, bytes, streamer) in due {
                    // A full socket buffer loses the datagram, as a link would.
                    let _ = match direction {
                        Direction::ToHeadset => back.send(&bytes).await,
                        Direction::ToStreamer => match streamer {
                            Some(a) => front.send_to(&bytes, a).await,
                            None => Ok(0),
                        },
                    };
                }
                match next {
                    Some(at) => {
                        let wait = Duration::from_nanos(at.saturating_sub(monotonic_ns()));
                        let _ = tokio::time::timeout(wait, wake.notified()).await;
                    }
                    None => wake.notified().await,
                }
            }
        }));
        Ok(Relay {
            listen,
            state,
            tasks,
        })
    }

    pub fn counters(&self) -> Counters {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        [s.links[0].counters, s.links[1].counters]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
