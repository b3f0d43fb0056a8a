//! Whatever a peer sends, the client neither panics nor grows: malformed datagrams are
//! rejected and counted, a broken control stream ends only that session, and the client keeps
//! accepting new ones.

use std::sync::Arc;
use std::time::Duration;

use binoc_net::{self as net, Identity};
use headset_core::{Client, Headless, Shared};
use shared_proto::fragment::{fragment_frame, OutgoingFrame};
use shared_proto::wire::{
    FragmentHeader, FrameTiming, ShardKind, StreamInfo, ToHeadset, ToStreamer, VERSION,
};

type ControlWriter = net::ControlWriter<ToHeadset>;
type ControlReader = net::ControlReader<ToStreamer>;
use shared_proto::Eye;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
}

async fn hello(conn: &quinn::Connection) -> (ControlWriter, ControlReader) {
    let (send, recv) = conn.open_bi().await.unwrap();
    let (mut w, mut r) = (ControlWriter::new(send), ControlReader::new(recv));
    let streams = vec![StreamInfo {
        eye: Eye::Left,
        width: 320,
        height: 240,
        fps_milli: 30_000,
        pixel_code: true,
    }];
    w.send(&ToHeadset::Hello {
        min_version: VERSION,
        max_version: VERSION,
        streams,
    })
    .await
    .unwrap();
    assert_eq!(
        r.next().await.unwrap(),
        Some(ToStreamer::HelloAck { version: VERSION })
    );
    (w, r)
}

async fn ping(w: &mut ControlWriter, r: &mut ControlReader, id: u32) {
    w.send(&ToHeadset::Ping { id, t0: 1 }).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), r.next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(ToStreamer::Pong { id: got, .. }) if got == id => return,
            Some(_) => continue,
            None => panic!("control stream closed"),
        }
    }
}

/// A headless client listening on a free loopback port.
fn start_client() -> (
    Identity,
    Arc<Shared>,
    std::net::SocketAddr,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let identity = Identity::generate().unwrap();
    let shared = Shared::new(None, None);
    let client = Client::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity,
        shared.clone(),
        Arc::new(Headless),
    )
    .unwrap();
    let addr = client.local_addr().unwrap();
    let server = tokio::spawn(client.run());
    (identity, shared, addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_rejected_counted_and_survived() {
    let (identity, shared, addr, server) = start_client();
    // One streamer identity for every session here: a new connection replaces its own.
    let me = Identity::generate().unwrap();
    let ep = net::client_endpoint(
        net::HeadsetTrust::Pinned(vec![identity.fingerprint()]),
        Some(&me),
        Default::default(),
    )
    .unwrap();

    // Session 1: garbage datagrams of every kind, then the session must still answer pings.
    let conn = ep.connect(addr, net::SERVER_NAME).unwrap().await.unwrap();
    let (mut w, mut r) = hello(&conn).await;
    let max = conn.max_datagram_size().unwrap();
    let mut rng = Lcg(7);
    let mut sent_garbage = 0u64;
    // Send in small batches and let each leave the send buffer before the next: a burst of
    // hundreds of datagrams loses most of them on a loaded loopback (the real streamer paces too).
    let idle_space = conn.datagram_send_buffer_space();
    let mut in_batch = 0;
    let mut send = async |d: Vec<u8>| {
        conn.send_datagram(d.into()).unwrap();
        in_batch += 1;
        if in_batch == 16 {
            in_batch = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while conn.datagram_send_buffer_space() < idle_space
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    for i in 0..300 {
        let len = (rng.next() as usize % max).max(1);
        let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 && d.len() > 4 {
            // Right magic, so the parser goes further before it rejects.
            d[0] = 0xB1;
            d[1] = 0x0C;
            d[2] = VERSION;
            d[3] = 1;
        }
        send(d).await;
        sent_garbage += 1;
    }
    let good = FragmentHeader::data(Eye::Left, true, 0, 1, 0, 100);
    let mut hostile = Vec::new();
    for h in [
        FragmentHeader {
            frame_len: u32::MAX,
            ..good
        }, // absurd length
        FragmentHeader {
            count: u16::MAX,
            index: 5,
            frame_len: 4_000_000,
            ..good
        }, // absurd count
        FragmentHeader {
            index: 3,
            count: 2,
            ..good
        }, // index past count
        FragmentHeader {
            kind: ShardKind::Parity,
            parity: 1,
            ..good
        }, // parity of a frame whose data never comes (garbage shard: the frame is lost)
    ] {
        let mut d = Vec::new();
        h.write(&mut d);
        d.extend_from_slice(&[0u8; 100]);
        hostile.push(d);
    }
    let mut wrong_version = Vec::new();
    good.write(&mut wrong_version);
    wrong_version[2] = VERSION + 1;
    wrong_version.extend_from_slice(&[0u8; 100]);
    hostile.push(wrong_version);
    // A real frame's fragments, truncated.
    let bits = vec![0x42u8; 5000];
    let frame = OutgoingFrame {
        eye: Eye::Right,
        seq: 0,
        keyframe: true,
        timing: FrameTiming::default(),
        bitstream: &bits,
    };
    fragment_frame(&frame, 1200, |mut d| {
        d.truncate(d.len() - 7);
        hostile.push(d);
    })
    .unwrap();
    for d in hostile {
        send(d).await;
        sent_garbage += 1;
    }
    ping(&mut w, &mut r, 1).await;
    // The pong is answered by the control task while the datagram loop may still be working
    // through its queue, and QUIC delivers datagrams unreliably even on loopback: wait (bounded)
    // until more than half of them have been counted, then check the count.
    let count = || {
        shared
            .malformed_datagrams
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count() <= sent_garbage / 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ping(&mut w, &mut r, 2).await;
    let malformed = count();
    assert!(
        malformed > sent_garbage / 2,
        "malformed {malformed} of {sent_garbage} sent"
    );
    assert!(malformed <= sent_garbage);
    let report = shared.report();
    assert_eq!(
        report.eyes.left.counts.decoded + report.eyes.right.counts.decoded,
        0,
        "garbage never decodes"
    );

    // A control message with an absurd length ends the session (framing is lost)...
    w.send_raw(&u32::MAX.to_be_bytes()).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    assert!(
        closed.is_ok(),
        "the client closes a session whose control framing is broken"
    );
    drop(r);

    // ...and accepts the next one.
    let conn2 = ep.connect(addr, net::SERVER_NAME).unwrap().await.unwrap();
    let (mut w2, mut r2) = hello(&conn2).await;
    ping(&mut w2, &mut r2, 3).await;
    conn2.close(0u32.into(), b"done");

    // A wrong version is refused with a reason.
    let conn3 = ep.connect(addr, net::SERVER_NAME).unwrap().await.unwrap();
    let (send, recv) = conn3.open_bi().await.unwrap();
    let (mut w3, mut r3) = (ControlWriter::new(send), ControlReader::new(recv));
    w3.send(&ToHeadset::Hello {
        min_version: 9,
        max_version: 12,
        streams: vec![],
    })
    .await
    .unwrap();
    match r3.next().await.unwrap() {
        Some(ToStreamer::Reject { reason }) => assert!(reason.contains("version"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    conn3.close(0u32.into(), b"done");

    // Garbage bytes as the first control message: the session ends, the client lives on.
    let conn4 = ep.connect(addr, net::SERVER_NAME).unwrap().await.unwrap();
    let (mut send, _recv) = conn4.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn4.closed()).await;
    assert!(
        closed.is_ok(),
        "the client closes a session whose control stream is garbage"
    );

    let conn5 = ep.connect(addr, net::SERVER_NAME).unwrap().await.unwrap();
    let (mut w5, mut r5) = hello(&conn5).await;
    ping(&mut w5, &mut r5, 5).await;
    conn5.close(0u32.into(), b"done");

    shared.finish();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_certificate_pin_is_refused() {
    let (_identity, shared, addr, server) = start_client();
    let other = Identity::generate().unwrap().fingerprint();
    let ep = net::client_endpoint(
        net::HeadsetTrust::Pinned(vec![other]),
        None,
        Default::default(),
    )
    .unwrap();
    let res = ep.connect(addr, net::SERVER_NAME).unwrap().await;
    assert!(
        res.is_err(),
        "a streamer pinning another fingerprint must not connect"
    );
    assert!(net::client_endpoint(
        net::HeadsetTrust::Pinned(vec!["not-hex".into()]),
        None,
        Default::default()
    )
    .is_err());
    shared.finish();
    server.await.unwrap().unwrap();
}
