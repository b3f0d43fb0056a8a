//! QUIC endpoints: the headset listens (QUIC server), the streamer dials (QUIC client). Both
//! use the same transport settings, tuned for video in datagrams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::congestion::Congestion;
use crate::identity::{check_fingerprint, fingerprint, Identity};
use crate::pinning::{pinned_tls_client, provider, ClientCertificate};
use crate::trust::HeadsetTrust;

/// ALPN of binoc's video sessions over QUIC.
pub const ALPN: &[u8] = b"binoc/1";
pub use shared_proto::rules::pairing::PAIR_ALPN;
/// The name the headset's certificate is issued for.
pub const SERVER_NAME: &str = "binoc-headset";

/// Transport settings tuned for video in datagrams: generous datagram buffers on receive, a
/// small one on send (a backed-up sender must drop, not queue), fast loss detection.
pub fn transport_config(congestion: Congestion) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(Duration::from_secs(3).try_into().expect("3 s fits")));
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    t.datagram_receive_buffer_size(Some(8 * 1024 * 1024));
    t.datagram_send_buffer_size(512 * 1024);
    t.congestion_controller_factory(congestion.factory());
    t.initial_rtt(Duration::from_millis(5));
    t
}

/// A UDP socket with a large receive buffer: a video frame arrives as a burst of datagrams,
/// and the kernel's default (208 KiB) overflows while the receiver is busy decoding.
pub fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // The kernel caps this at net.core.rmem_max; ask for more than we need and take what comes.
    let _ = s.set_recv_buffer_size(8 * 1024 * 1024);
    let _ = s.set_send_buffer_size(4 * 1024 * 1024);
    s.bind(&addr.into())
        .with_context(|| format!("binding UDP {addr}"))?;
    Ok(s.into())
}

/// The headset's listening endpoint: video (`binoc/1`) and pairing
/// ([`shared_proto::rules::pairing::PAIR_ALPN`]) connections, each streamer asked for its
/// certificate ([`peer_fingerprint`] tells it once the handshake is done).
pub fn server_endpoint(addr: SocketAddr, identity: &Identity) -> Result<quinn::Endpoint> {
    let provider = provider();
    let clients = Arc::new(ClientCertificate {
        provider: provider.clone(),
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec(), PAIR_ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // The headset sends only control messages; its window never matters for the video.
    cfg.transport_config(Arc::new(transport_config(Congestion::default())));
    let socket = udp_socket(addr)?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(cfg),
        socket,
        runtime,
    )?)
}

/// The streamer's dialing endpoint for video: it sends only to a headset `trust` admits, shows
/// `identity` (its certificate, which a pairing headset checks), and `congestion` limits what
/// the video datagrams may have in flight.
pub fn client_endpoint(
    trust: HeadsetTrust,
    identity: Option<&Identity>,
    congestion: Congestion,
) -> Result<quinn::Endpoint> {
    client_endpoint_for(ALPN, trust, identity, congestion)
}

/// [`client_endpoint`] speaking `alpn` (video, or pairing).
pub fn client_endpoint_for(
    alpn: &[u8],
    trust: HeadsetTrust,
    identity: Option<&Identity>,
    congestion: Congestion,
) -> Result<quinn::Endpoint> {
    if let HeadsetTrust::Pinned(pins) = &trust {
        for p in pins {
            check_fingerprint(p).context("peer fingerprint")?;
        }
    }
    let mut tls = pinned_tls_client(trust, identity)?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config(congestion)));
    let bind: SocketAddr = "[::]:0".parse().expect("valid");
    let socket = udp_socket(bind).or_else(|_| udp_socket("0.0.0.0:0".parse().expect("valid")))?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    let mut ep = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// The fingerprint of the certificate the peer of `conn` showed, if it showed one.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| fingerprint(c))
}

/// The application close code and reason the peer closed `conn` with, if it closed it so
/// (`shared_proto::rules::pairing::close` says what the codes mean).
pub fn closed_by_peer(conn: &quinn::Connection) -> Option<(u32, String)> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => Some((
            c.error_code.into_inner() as u32,
            String::from_utf8_lossy(&c.reason).into_owned(),
        )),
        _ => None,
    }
}

/// The ALPN `conn` agreed on.
pub fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}
