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
        Self::generate_for(&[SERVER_NAME.to_string()])
    }

    /// A fresh self-signed identity for `names` (lost at exit).
    pub fn generate_for(names: &[String]) -> Result<Self> {
        let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
        Ok(Identity {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        })
    }

    /// Loads the identity from a PEM file (certificate + key), creating it if absent, so the
    /// fingerprint stays the same across restarts and can be pinned.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        Self::load_or_create_for(path, &[SERVER_NAME.to_string()])
    }

    /// [`Identity::load_or_create`] for a certificate valid for `names` (DNS names or IP
    /// addresses) when it is created. The file is written owner-only (0600), complete or not
    /// at all (written aside, then renamed), so a concurrent reader never sees half of it.
    pub fn load_or_create_for(path: &Path, names: &[String]) -> Result<Self> {
        if !path.exists() {
            let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {} for the identity", dir.display()))?;
            }
            let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
            // Another process may have made one meanwhile: then that one is kept, and read.
            write_private(path, pem.as_bytes())?;
        }
        keep_private(path)?;
        let cert = CertificateDer::from_pem_file(path)
            .with_context(|| format!("certificate in {}", path.display()))?;
        let key = PrivateKeyDer::from_pem_file(path)
            .with_context(|| format!("private key in {}", path.display()))?;
        Ok(Identity { cert, key })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// Writes `bytes` to a temporary file beside `path`, owner-only (0600 on Unix), synced, and
/// hands it to `publish` (which puts it in place); the temporary file is gone afterwards.
fn write_aside(path: &Path, bytes: &[u8], publish: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp); // a leftover of a crashed run
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let written = o
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| publish(&tmp));
    let _ = std::fs::remove_file(&tmp);
    written
}

/// Writes `bytes` to a new file `path`, readable by its owner only (0600 on Unix), whole or
/// not at all: through a temporary file in the same directory, linked into place only if
/// `path` does not exist yet (when it does, another writer won: its file stays, Ok).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_aside(path, bytes, |tmp| match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    })
}

/// Writes `bytes` to `path`, replacing what is there, owner-only (0600), whole or not at all
/// (written aside, then renamed over it).
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_aside(path, bytes, |tmp| {
        std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()))
    })
}

/// An existing key file readable by others (written by an older binoc, or by hand) is made
/// owner-only.
fn keep_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} owner-only", path.display()))?;
        }
    }
    Ok(())
}

/// Where a binoc program keeps what must survive a restart (its identities), when not told:
/// systemd's `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/binoc`, else `~/.local/state/binoc`.
pub fn default_state_dir() -> Option<std::path::PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("STATE_DIRECTORY") {
        // systemd may list several, colon-separated: the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return Some(first.into());
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return Some(std::path::PathBuf::from(d).join("binoc"));
    }
    env("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state/binoc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_identity_is_owner_only_and_the_same_when_loaded_again() {
        let dir = std::env::temp_dir().join(format!("binoc-id-{}", std::process::id()));
        let path = dir.join("sub/id.pem");
        let a =
            Identity::load_or_create_for(&path, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let b = Identity::load_or_create(&path).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // A second writer does not replace the first's file.
        write_private(&path, b"other").unwrap();
        assert_eq!(
            Identity::load_or_create(&path).unwrap().fingerprint(),
            a.fingerprint()
        );
        // A key file others could read is made owner-only when loaded.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            Identity::load_or_create(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
