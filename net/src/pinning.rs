//! Certificate pinning, both ways. The streamer trusts the headset's self-signed certificate
//! by its SHA-256 fingerprint (one of the paired headsets', or one pinned by hand); with pairing
//! off it accepts any certificate and logs its fingerprint. The headset asks every streamer for
//! its certificate ([`ClientCertificate`]): the signature proves the streamer holds the key, and
//! the fingerprint is checked against the paired streamers once the handshake is done, so a
//! refusal can say why (`headset_core::listener`).

use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::fingerprint;
use crate::trust::HeadsetTrust;

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The signature checks both verifiers share: by the crypto provider's algorithms, always.
macro_rules! signatures_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            let algs = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            let algs = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Verifies the headset's certificate by its pinned SHA-256 fingerprints (or, with pairing
/// off, accepts it and logs the fingerprint). Signatures are always checked.
#[derive(Debug)]
struct PinnedCert {
    trust: HeadsetTrust,
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
        match &self.trust {
            HeadsetTrust::Pinned(pins) if !pins.iter().any(|p| p.eq_ignore_ascii_case(&fp)) => {
                tracing::error!(got = %fp, "this headset is not paired with this streamer (its certificate matches no pin): nothing is sent to it");
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
            HeadsetTrust::Pinned(_) => {
                tracing::debug!(fingerprint = %fp, "headset certificate matches a pin")
            }
            // Pairing off, or a pairing connection (whose confirmation binds the certificate).
            HeadsetTrust::Any => {
                tracing::debug!(fingerprint = %fp, "headset certificate accepted unchecked")
            }
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    signatures_by_provider!();
}

/// A TLS 1.3 client configuration that trusts a peer's self-signed certificate by its pinned
/// SHA-256 fingerprints, or, with [`HeadsetTrust::Any`], any certificate (its fingerprint
/// logged), and shows `identity` as its own certificate when given. Signatures are always
/// checked.
pub fn pinned_tls_client(
    trust: HeadsetTrust,
    identity: Option<&crate::Identity>,
) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedCert {
        trust,
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match identity {
        Some(id) => builder.with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    })
}

/// The headset's check of a streamer's certificate during the handshake: asked for, optional
/// (a missing one is refused afterwards with words, not a TLS alert), its signature checked;
/// whom it belongs to is the listener's question, once the handshake is done.
#[derive(Debug)]
pub(crate) struct ClientCertificate {
    pub provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for ClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    signatures_by_provider!();
}
