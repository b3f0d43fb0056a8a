//! Who a device trusts: the peers it paired with, one certificate fingerprint per line in a
//! file of its state directory (`paired-streamers` on the headset, `paired-headsets` on the
//! streamer), and its own identity beside them.
//!
//! The file is read on every connection (a few lines), so a pairing made by another process,
//! or a line removed by hand to unpair, counts from the next connection on. It is rewritten
//! whole (written aside, then renamed), owner-only.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::identity::{is_fingerprint, Identity};

/// The headset's identity file in its state directory.
pub const HEADSET_IDENTITY: &str = "headset-identity.pem";
/// The streamer's identity file (its client certificate on QUIC) in its state directory.
pub const STREAMER_IDENTITY: &str = "streamer-identity.pem";
/// The headset's list of paired streamers.
pub const PAIRED_STREAMERS: &str = "paired-streamers";
/// The streamer's list of paired headsets.
pub const PAIRED_HEADSETS: &str = "paired-headsets";
/// The name the streamer's certificate is issued for.
pub const STREAMER_NAME: &str = "binoc-streamer";

/// The peers a device has paired with, kept in one file.
#[derive(Debug, Clone)]
pub struct PairedPeers {
    path: PathBuf,
}

impl PairedPeers {
    /// The list at `dir/file` (which need not exist yet: nothing paired).
    pub fn in_dir(dir: &Path, file: &str) -> Self {
        PairedPeers {
            path: dir.join(file),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The paired fingerprints (lowercase). A missing file is an empty list; a line that is
    /// not a fingerprint is skipped with a warning (it can never match).
    pub fn load(&self) -> Result<Vec<String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let fp = line.split('#').next().unwrap_or("").trim();
            if fp.is_empty() {
                continue;
            }
            if is_fingerprint(fp) {
                out.push(fp.to_ascii_lowercase());
            } else {
                tracing::warn!(
                    "{}:{}: not a fingerprint (64 hex digits), skipped",
                    self.path.display(),
                    i + 1
                );
            }
        }
        Ok(out)
    }

    /// Whether `fp` is paired (an unreadable list pairs nothing, with a warning).
    pub fn contains(&self, fp: &str) -> bool {
        match self.load() {
            Ok(list) => list.iter().any(|p| p.eq_ignore_ascii_case(fp)),
            Err(e) => {
                tracing::warn!("{e:#}: no peer is trusted");
                false
            }
        }
    }

    /// Adds `fp` (with a comment saying when and where), keeping the others.
    pub fn add(&self, fp: &str, note: &str) -> Result<()> {
        let fp = fp.to_ascii_lowercase();
        let old = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        if self.load()?.contains(&fp) {
            return Ok(());
        }
        let mut text = if old.is_empty() {
            "# binoc: the peers paired with this device, one certificate fingerprint per line.\n\
             # Delete a line to unpair.\n"
                .to_string()
        } else {
            old
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let note: String = note.chars().filter(|c| !c.is_control()).take(200).collect();
        text.push_str(&format!("{fp}  # {note}\n"));
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::identity::replace_private(&self.path, text.as_bytes())
    }
}

/// Who the headset lets stream to it.
#[derive(Debug, Clone, Default)]
pub enum StreamerAccess {
    /// Any streamer (pairing off: a closed network, a test).
    #[default]
    Any,
    /// Only the paired ones.
    Paired(PairedPeers),
}

impl StreamerAccess {
    /// `Ok` if a streamer showing the certificate `fp` (`None`: none) may stream, else why not.
    pub fn admits(&self, fp: Option<&str>) -> Result<(), String> {
        match (self, fp) {
            (StreamerAccess::Any, _) => Ok(()),
            (StreamerAccess::Paired(_), None) => Err(
                "this headset accepts paired streamers only, and this one showed no certificate \
                 (an older pi-streamer?)"
                    .into(),
            ),
            (StreamerAccess::Paired(p), Some(fp)) if p.contains(fp) => Ok(()),
            (StreamerAccess::Paired(_), Some(fp)) => Err(format!(
                "streamer {} is not paired with this headset: pair it once (quest-client --pair \
                 shows a code; then pi-streamer pair HOST:PORT CODE)",
                &fp[..fp.len().min(16)]
            )),
        }
    }
}

/// Which headsets the streamer sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadsetTrust {
    /// Any headset, its fingerprint logged (pairing off).
    Any,
    /// Only a headset whose certificate has one of these fingerprints.
    Pinned(Vec<String>),
}

/// The device's identity in `dir/file`, created on first use (0600); with no state directory,
/// or one that cannot be written, a fresh one for this run (with a warning: the other side will
/// not recognise it next time).
pub fn identity_in(dir: Option<&Path>, file: &str, name: &str) -> Result<Identity> {
    if let Some(dir) = dir {
        match Identity::load_or_create_for(&dir.join(file), &[name.to_string()]) {
            Ok(id) => return Ok(id),
            Err(e) => tracing::warn!(
                "{e:#}: using an identity for this run only (a paired peer will not know it)"
            ),
        }
    }
    Identity::generate_for(&[name.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_peers_are_added_once_kept_owner_only_and_bad_lines_skipped() {
        let dir = std::env::temp_dir().join(format!("binoc-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = PairedPeers::in_dir(&dir, PAIRED_STREAMERS);
        assert!(p.load().unwrap().is_empty());
        let a = "AB".repeat(32);
        p.add(&a, "paired 2026-12-06 from 10.0.0.2:5000\n# injected")
            .unwrap();
        p.add(&a, "again").unwrap();
        p.add(&"cd".repeat(32), "second").unwrap();
        assert_eq!(p.load().unwrap(), vec!["ab".repeat(32), "cd".repeat(32)]);
        assert!(p.contains(&a) && !p.contains(&"ef".repeat(32)));
        let text = std::fs::read_to_string(p.path()).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("injected")).count(), 1);
        std::fs::write(p.path(), format!("{text}not-a-fingerprint\n")).unwrap();
        assert_eq!(p.load().unwrap().len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            p.add(&"ef".repeat(32), "third").unwrap();
            let mode = std::fs::metadata(p.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let access = StreamerAccess::Paired(p.clone());
        assert!(access.admits(Some(&"cd".repeat(32))).is_ok());
        assert!(access.admits(Some(&"12".repeat(32))).is_err());
        assert!(access.admits(None).is_err());
        assert!(StreamerAccess::Any.admits(None).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
