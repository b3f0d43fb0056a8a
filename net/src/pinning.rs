//! Certificate pinning: the streamer trusts the headset's self-signed certificate by its
//! SHA-256 fingerprint. Without a pin it accepts any certificate and logs its fingerprint so
//! the user can pin it (nothing is stored: every connection is trusted anew).

use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::fingerprint;

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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
/// SHA-256 fingerprint, or, with no pin, any certificate (its fingerprint logged). Signatures
/// are always checked.
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
