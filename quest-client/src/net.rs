//! QUIC plumbing shared by the headset (the QUIC server: it listens) and the streamer (the
//! QUIC client: it dials with `--peer`): TLS identities, certificate pinning, transport tuning
//! for low-latency datagrams, and the framed control stream.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use shared_proto::wire::{Control, ControlDecoder};

/// ALPN of binoc protocol version 1 over QUIC.
pub const ALPN: &[u8] = b"binoc/1";
/// The name the headset's certificate is issued for.
pub const SERVER_NAME: &str = "binoc-headset";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lowercase hex SHA-256 of a DER certificate: what users compare and pin.
pub fn fingerprint(cert: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The headset's TLS identity.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A fresh self-signed identity (lost at exit).
    pub fn generate() -> Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])?;
        Ok(Identity {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        })
    }

    /// Loads the identity from a PEM file (certificate + key), creating it if absent, so the
    /// fingerprint stays the same across restarts and can be pinned.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            let cert = CertificateDer::from_pem_file(path)
                .with_context(|| format!("certificate in {}", path.display()))?;
            let key = PrivateKeyDer::from_pem_file(path)
                .with_context(|| format!("private key in {}", path.display()))?;
            return Ok(Identity { cert, key });
        }
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(
            path,
            format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        Ok(Identity {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// Transport settings tuned for video in datagrams: generous datagram buffers on receive, a
/// small one on send (a backed-up sender must drop, not queue), fast loss detection.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(Duration::from_secs(3).try_into().expect("3 s fits")));
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    t.datagram_receive_buffer_size(Some(8 * 1024 * 1024));
    t.datagram_send_buffer_size(512 * 1024);
    let mut cc = quinn::congestion::CubicConfig::default();
    cc.initial_window(1024 * 1024);
    t.congestion_controller_factory(Arc::new(cc));
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

/// The headset's listening endpoint.
pub fn server_endpoint(addr: SocketAddr, identity: &Identity) -> Result<quinn::Endpoint> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config()));
    let socket = udp_socket(addr)?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(cfg),
        socket,
        runtime,
    )?)
}

/// Verifies the headset's certificate by its pinned SHA-256 fingerprint (or, with no pin,
/// accepts it and logs the fingerprint so the user can pin it). Signatures are always checked.
#[derive(Debug)]
struct PinnedCert {
    pin: Option<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        match &self.pin {
            Some(pin) if !pin.eq_ignore_ascii_case(&fp) => {
                tracing::error!(expected = %pin, got = %fp, "headset certificate does not match the pinned fingerprint");
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
            Some(_) => tracing::debug!(fingerprint = %fp, "headset certificate matches the pin"),
            None => tracing::warn!(
                fingerprint = %fp,
                "no peer_fingerprint pinned: accepting the headset's certificate (set transport.peer_fingerprint to pin it)"
            ),
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS 1.3 client configuration that trusts a peer's self-signed certificate by its pinned
/// SHA-256 fingerprint, or, with no pin, by first use (logged). Signatures are always checked.
pub fn pinned_tls_client(pin: Option<String>) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedCert {
        pin,
        provider: provider.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The streamer's dialing endpoint, pinning the headset's fingerprint when given.
pub fn client_endpoint(pin: Option<String>) -> Result<quinn::Endpoint> {
    if let Some(p) = &pin {
        if p.len() != 64 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("peer fingerprint must be 64 hex digits (SHA-256), got `{p}`");
        }
    }
    let mut tls = pinned_tls_client(pin)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config()));
    let bind: SocketAddr = "[::]:0".parse().expect("valid");
    let socket = udp_socket(bind).or_else(|_| udp_socket("0.0.0.0:0".parse().expect("valid")))?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    let mut ep = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// Writes control messages on the control stream.
pub struct ControlWriter {
    send: quinn::SendStream,
    buf: Vec<u8>,
}

impl ControlWriter {
    pub fn new(send: quinn::SendStream) -> Self {
        ControlWriter {
            send,
            buf: Vec::with_capacity(256),
        }
    }

    pub async fn send(&mut self, msg: &Control) -> Result<()> {
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
pub struct ControlReader {
    recv: quinn::RecvStream,
    decoder: ControlDecoder,
    buf: Vec<u8>,
}

impl ControlReader {
    pub fn new(recv: quinn::RecvStream) -> Self {
        ControlReader {
            recv,
            decoder: ControlDecoder::new(),
            buf: vec![0; 16 * 1024],
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream. A malformed message is
    /// an error: framing is lost, so the connection should close.
    pub async fn next(&mut self) -> Result<Option<Control>> {
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
