//! TLS identities: a self-signed certificate per device, optionally persisted so its
//! fingerprint stays the same across restarts and can be pinned by the other side.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::endpoint::SERVER_NAME;

/// Lowercase hex SHA-256 of a DER certificate: what users compare and pin.
pub fn fingerprint(cert: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `fp` is a SHA-256 fingerprint as [`fingerprint`] writes it (64 hex digits, either
/// case): the one definition the config, the command line and the endpoints check against.
pub fn is_fingerprint(fp: &str) -> bool {
    fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit())
}

/// `fp` if it is a fingerprint ([`is_fingerprint`]), else an error saying what one looks like.
pub fn check_fingerprint(fp: &str) -> Result<()> {
    if !is_fingerprint(fp) {
        bail!("a fingerprint is 64 hex digits (SHA-256), got `{fp}`");
    }
    Ok(())
}

/// A device's TLS identity (the headset's, as the QUIC server).
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
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} for the identity", dir.display()))?;
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
