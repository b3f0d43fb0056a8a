//! Pairing a streamer with a headset by a short code, both sides, and who may stream to a
//! headset afterwards.
//!
//! The headset shows a 6-digit code; the streamer's user types it. The two run SPAKE2 (a
//! password-authenticated key exchange: the maintained `spake2` crate) over a QUIC connection
//! whose ALPN is [`PAIR_ALPN`], keyed by the code, and then each proves it holds the same key by
//! a MAC over **both TLS certificates' fingerprints as that side saw them**. So:
//!
//! * the code is never sent, and one connection tests one guess: an eavesdropper or a
//!   man in the middle learns nothing it could test offline (that is what a PAKE is for);
//! * a man in the middle, who must show each side its own certificate, cannot make the
//!   fingerprints agree, and its pairing fails even if it knew the code;
//! * what each side stores afterwards is the other's certificate fingerprint, pinned on every
//!   later connection (mutual TLS on QUIC).
//!
//! The headset confirms first (it checks the streamer's proof before it sends its own), and
//! [`CodeAttempts`] withdraws a code after [`MAX_FAILURES_PER_CODE`] wrong tries: a stranger
//! has 3 guesses in 10^6 per code shown.
//!
//! The messages are framed `[tag u8][length u16 BE][payload]`, at most [`MAX_PAYLOAD`] bytes,
//! and parsed without trusting the peer ([`PairDecoder`]). The secret scalar of SPAKE2 comes
//! from the operating system's randomness (inside `spake2`); nothing here touches a socket or
//! a clock. [`admit`] is the rule for a streamer that connects while a session runs.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

/// The ALPN of a pairing connection (the video uses `binoc/1`).
pub const PAIR_ALPN: &[u8] = b"binoc-pair/1";
/// Digits of a pairing code.
pub const CODE_DIGITS: usize = 6;
/// Wrong tries before a code is withdrawn (and a new one shown).
pub const MAX_FAILURES_PER_CODE: u32 = 3;
/// Largest payload of a pairing message.
pub const MAX_PAYLOAD: usize = 512;

/// QUIC application close codes the headset gives a streamer it turns away, so the streamer
/// can say why (the close reason carries the words).
pub mod close {
    /// Session over, or the headset is going away.
    pub const NORMAL: u32 = 0;
    /// This streamer connected again: its older connection is closed.
    pub const REPLACED: u32 = 1;
    /// The streamer is not paired with this headset.
    pub const NOT_PAIRED: u32 = 2;
    /// Another (paired) streamer is streaming to this headset.
    pub const BUSY: u32 = 3;
    /// A pairing connection while the headset is not pairing.
    pub const NOT_PAIRING: u32 = 4;
    /// The pairing failed (wrong code, withdrawn code, a broken message).
    pub const PAIRING_FAILED: u32 = 5;
    /// The pairing succeeded: the streamer may now connect for video.
    pub const PAIRED: u32 = 6;
}

const STREAMER_ID: &[u8] = b"binoc streamer";
const HEADSET_ID: &[u8] = b"binoc headset";

/// A pairing code from a uniformly random `u32`, or `None` when `r` falls in the uneven top
/// of the range (draw again): every code is equally likely.
pub fn code_from_random(r: u32) -> Option<String> {
    const SPACE: u32 = 1_000_000;
    let limit = u32::MAX - (u32::MAX % SPACE) - 1;
    (r <= limit).then(|| format!("{:06}", r % SPACE))
}

/// Whether `code` looks like a pairing code (exactly 6 ASCII digits), so a typo is told
/// before a connection is spent on it.
pub fn is_code(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// A pairing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairMsg {
    /// A SPAKE2 message (33 bytes for Ed25519).
    Spake(Vec<u8>),
    /// Key confirmation: HMAC-SHA-256 under the shared key over both fingerprints.
    Confirm(Vec<u8>),
    /// The headset turns the pairing down (wrong code, …), in words for the user.
    Refused(String),
}

impl PairMsg {
    const SPAKE: u8 = 1;
    const CONFIRM: u8 = 2;
    const REFUSED: u8 = 3;

    /// Appends the framed message to `out` (a reason longer than [`MAX_PAYLOAD`] is cut).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (tag, payload): (u8, &[u8]) = match self {
            PairMsg::Spake(m) => (Self::SPAKE, m),
            PairMsg::Confirm(m) => (Self::CONFIRM, m),
            PairMsg::Refused(r) => (Self::REFUSED, r.as_bytes()),
        };
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        out.push(tag);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// Why a pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("a malformed pairing message ({0})")]
    Malformed(&'static str),
    #[error("an unexpected pairing message")]
    Unexpected,
    #[error("wrong pairing code")]
    WrongCode,
    #[error("the headset refused: {0}")]
    Refused(String),
}

/// Reads framed [`PairMsg`]s from a byte stream, holding at most one message's bytes.
#[derive(Debug, Default)]
pub struct PairDecoder {
    buf: Vec<u8>,
}

impl PairDecoder {
    /// Adds received bytes. More than one message's worth waiting is the peer's fault.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), PairError> {
        if self.buf.len() + bytes.len() > 2 * (3 + MAX_PAYLOAD) {
            return Err(PairError::Malformed("too many bytes at once"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<PairMsg>, PairError> {
        if self.buf.len() < 3 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(PairError::Malformed("payload too long"));
        }
        if self.buf.len() < 3 + len {
            return Ok(None);
        }
        let payload = self.buf[3..3 + len].to_vec();
        let tag = self.buf[0];
        self.buf.drain(..3 + len);
        match tag {
            PairMsg::SPAKE => Ok(Some(PairMsg::Spake(payload))),
            PairMsg::CONFIRM => Ok(Some(PairMsg::Confirm(payload))),
            PairMsg::REFUSED => Ok(Some(PairMsg::Refused(
                String::from_utf8_lossy(&payload).into_owned(),
            ))),
            _ => Err(PairError::Malformed("unknown message type")),
        }
    }
}

/// The fingerprints both sides must agree on: the streamer's and the headset's certificates,
/// as each side saw them in the TLS handshake (lowercase hex SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    pub streamer: String,
    pub headset: String,
}

fn confirmation(key: &[u8], label: &[u8], fps: &Fingerprints) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(fps.streamer.to_ascii_lowercase().as_bytes());
    mac.update(b"|");
    mac.update(fps.headset.to_ascii_lowercase().as_bytes());
    mac
}

const STREAMER_CONFIRMS: &[u8] = b"binoc pairing: streamer confirms|";
const HEADSET_CONFIRMS: &[u8] = b"binoc pairing: headset confirms|";

/// What a side does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this, then wait for the peer's next message.
    Send(PairMsg),
    /// Send this (if any); the pairing succeeded: store the peer's fingerprint.
    Paired {
        send: Option<PairMsg>,
        peer_fingerprint: String,
    },
}

/// The streamer's side of a pairing.
pub struct StreamerPairing {
    spake: Option<Spake2<Ed25519Group>>,
    key: Option<Vec<u8>>,
    fps: Fingerprints,
}

impl StreamerPairing {
    /// Starts with the code the user typed; send the returned message first.
    pub fn start(code: &str, fps: Fingerprints) -> (Self, PairMsg) {
        let (spake, msg) = Spake2::<Ed25519Group>::start_a(
            &Password::new(code.as_bytes()),
            &Identity::new(STREAMER_ID),
            &Identity::new(HEADSET_ID),
        );
        let me = StreamerPairing {
            spake: Some(spake),
            key: None,
            fps,
        };
        (me, PairMsg::Spake(msg))
    }

    /// The headset's next message.
    pub fn on_message(&mut self, msg: PairMsg) -> Result<Step, PairError> {
        match msg {
            PairMsg::Refused(r) => Err(PairError::Refused(r)),
            PairMsg::Spake(m) => {
                let spake = self.spake.take().ok_or(PairError::Unexpected)?;
                let key = spake
                    .finish(&m)
                    .map_err(|_| PairError::Malformed("SPAKE2 message"))?;
                let proof = confirmation(&key, STREAMER_CONFIRMS, &self.fps)
                    .finalize()
                    .into_bytes()
                    .to_vec();
                self.key = Some(key);
                Ok(Step::Send(PairMsg::Confirm(proof)))
            }
            PairMsg::Confirm(proof) => {
                let key = self.key.take().ok_or(PairError::Unexpected)?;
                confirmation(&key, HEADSET_CONFIRMS, &self.fps)
                    .verify_slice(&proof)
                    .map_err(|_| PairError::WrongCode)?;
                Ok(Step::Paired {
                    send: None,
                    peer_fingerprint: self.fps.headset.clone(),
                })
            }
        }
    }
}

/// The headset's side of a pairing (one connection: one try).
pub struct HeadsetPairing {
    code: String,
    key: Option<Vec<u8>>,
    fps: Fingerprints,
}

impl HeadsetPairing {
    pub fn new(code: &str, fps: Fingerprints) -> Self {
        HeadsetPairing {
            code: code.to_string(),
            key: None,
            fps,
        }
    }

    /// The streamer's next message. An error means this try failed (tell the streamer with
    /// [`PairMsg::Refused`] and count it with [`CodeAttempts::failed`]).
    pub fn on_message(&mut self, msg: PairMsg) -> Result<Step, PairError> {
        match msg {
            PairMsg::Spake(m) if self.key.is_none() => {
                let (spake, reply) = Spake2::<Ed25519Group>::start_b(
                    &Password::new(self.code.as_bytes()),
                    &Identity::new(STREAMER_ID),
                    &Identity::new(HEADSET_ID),
                );
                let key = spake
                    .finish(&m)
                    .map_err(|_| PairError::Malformed("SPAKE2 message"))?;
                self.key = Some(key);
                Ok(Step::Send(PairMsg::Spake(reply)))
            }
            PairMsg::Confirm(proof) => {
                let key = self.key.take().ok_or(PairError::Unexpected)?;
                // The streamer proves first: a wrong code learns nothing from our proof.
                confirmation(&key, STREAMER_CONFIRMS, &self.fps)
                    .verify_slice(&proof)
                    .map_err(|_| PairError::WrongCode)?;
                let ours = confirmation(&key, HEADSET_CONFIRMS, &self.fps)
                    .finalize()
                    .into_bytes()
                    .to_vec();
                Ok(Step::Paired {
                    send: Some(PairMsg::Confirm(ours)),
                    peer_fingerprint: self.fps.streamer.clone(),
                })
            }
            PairMsg::Refused(_) | PairMsg::Spake(_) => Err(PairError::Unexpected),
        }
    }
}

/// The headset's pairing window: the code shown, wrong tries counted, the code withdrawn
/// (and a new one drawn) after [`MAX_FAILURES_PER_CODE`].
#[derive(Debug, Clone)]
pub struct CodeAttempts {
    code: String,
    failures: u32,
    /// Codes withdrawn so far.
    pub withdrawn: u32,
}

impl CodeAttempts {
    pub fn new(code: String) -> Self {
        CodeAttempts {
            code,
            failures: 0,
            withdrawn: 0,
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Counts a failed try. `true`: the code is withdrawn; call [`CodeAttempts::replace`].
    pub fn failed(&mut self) -> bool {
        self.failures += 1;
        self.failures >= MAX_FAILURES_PER_CODE
    }

    /// A new code after a withdrawal.
    pub fn replace(&mut self, code: String) {
        self.code = code;
        self.failures = 0;
        self.withdrawn += 1;
    }
}

/// What the headset does with a streamer that completed the TLS handshake (and is allowed:
/// paired, or pairing is off) while `current` holds the running session's streamer, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// No session runs (or it ended): start one.
    Start,
    /// The same streamer again (it restarted or lost its connection): close its old session
    /// and start the new one.
    Replace,
    /// Another streamer is streaming: refuse this one ([`close::BUSY`]).
    Busy,
}

/// The rule for a second streamer: only the same identity replaces a running session, so a
/// stranger (or another paired streamer) never takes a headset that is in use. `None` is a
/// streamer that showed no certificate (pairing off): it is its own stranger.
pub fn admit(current: Option<Option<&str>>, new: Option<&str>) -> Admission {
    match current {
        None => Admission::Start,
        Some(Some(cur)) if new.is_some_and(|n| n.eq_ignore_ascii_case(cur)) => Admission::Replace,
        Some(_) => Admission::Busy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps() -> Fingerprints {
        Fingerprints {
            streamer: "aa".repeat(32),
            headset: "bb".repeat(32),
        }
    }

    /// Runs a pairing with the two sides' codes and views; what each side ends with.
    fn pair(
        streamer_code: &str,
        headset_code: &str,
        s_fps: Fingerprints,
        h_fps: Fingerprints,
    ) -> (Result<String, PairError>, Result<String, PairError>) {
        let (mut s, first) = StreamerPairing::start(streamer_code, s_fps);
        let mut h = HeadsetPairing::new(headset_code, h_fps);
        // Every message goes through the framing.
        let wire = |m: PairMsg| {
            let mut b = Vec::new();
            m.encode(&mut b);
            let mut d = PairDecoder::default();
            d.push(&b).unwrap();
            d.next_message().unwrap().unwrap()
        };
        let Step::Send(reply) = h.on_message(wire(first)).unwrap() else {
            panic!("headset answers the first message")
        };
        let Step::Send(proof) = s.on_message(wire(reply)).unwrap() else {
            panic!("streamer proves")
        };
        match h.on_message(wire(proof)) {
            Err(e) => (Err(e.clone()), Err(e)),
            Ok(Step::Paired {
                send: Some(ours),
                peer_fingerprint,
            }) => {
                let streamer = match s.on_message(wire(ours)) {
                    Ok(Step::Paired {
                        peer_fingerprint, ..
                    }) => Ok(peer_fingerprint),
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => Err(e),
                };
                (streamer, Ok(peer_fingerprint))
            }
            Ok(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_same_code_pairs_and_each_side_learns_the_others_fingerprint() {
        let (s, h) = pair("123456", "123456", fps(), fps());
        assert_eq!(s.unwrap(), "bb".repeat(32));
        assert_eq!(h.unwrap(), "aa".repeat(32));
    }

    #[test]
    fn a_wrong_code_fails_at_the_headset_before_it_proves_anything() {
        let (s, h) = pair("123457", "123456", fps(), fps());
        assert_eq!(h, Err(PairError::WrongCode));
        assert!(s.is_err());
    }

    #[test]
    fn a_man_in_the_middle_cannot_make_the_fingerprints_agree_even_with_the_code() {
        // The streamer saw the middle's certificate, not the headset's.
        let mut seen = fps();
        seen.headset = "cc".repeat(32);
        let (s, h) = pair("123456", "123456", seen, fps());
        assert_eq!(h, Err(PairError::WrongCode));
        assert!(s.is_err());
    }

    #[test]
    fn codes_are_six_digits_and_the_uneven_top_of_the_range_is_drawn_again() {
        assert_eq!(code_from_random(0).as_deref(), Some("000000"));
        assert_eq!(code_from_random(1_234_567).as_deref(), Some("234567"));
        assert_eq!(code_from_random(u32::MAX), None);
        assert_eq!(code_from_random(4_293_999_999).as_deref(), Some("999999"));
        assert_eq!(code_from_random(4_294_000_000), None);
        assert!(is_code("012345"));
        assert!(!is_code("12345") && !is_code("1234567") && !is_code("12345a"));
    }

    #[test]
    fn a_code_is_withdrawn_after_three_wrong_tries() {
        let mut a = CodeAttempts::new("111111".into());
        assert!(!a.failed());
        assert!(!a.failed());
        assert!(a.failed());
        a.replace("222222".into());
        assert_eq!((a.code(), a.withdrawn), ("222222", 1));
        assert!(!a.failed());
    }

    #[test]
    fn messages_out_of_order_or_malformed_are_errors_not_panics() {
        let mut h = HeadsetPairing::new("123456", fps());
        assert_eq!(
            h.on_message(PairMsg::Confirm(vec![0; 32])),
            Err(PairError::Unexpected)
        );
        assert_eq!(
            h.on_message(PairMsg::Spake(vec![1, 2, 3])),
            Err(PairError::Malformed("SPAKE2 message"))
        );
        let mut d = PairDecoder::default();
        d.push(&[9, 0, 0]).unwrap();
        assert!(d.next_message().is_err());
        let mut d = PairDecoder::default();
        d.push(&[1, 0xff, 0xff]).unwrap();
        assert!(d.next_message().is_err());
        assert!(PairDecoder::default().push(&[0; 4096]).is_err());
        // A partial message waits.
        let mut d = PairDecoder::default();
        d.push(&[2, 0, 4, 1]).unwrap();
        assert_eq!(d.next_message(), Ok(None));
        d.push(&[2, 3, 4]).unwrap();
        assert_eq!(
            d.next_message(),
            Ok(Some(PairMsg::Confirm(vec![1, 2, 3, 4])))
        );
    }

    #[test]
    fn only_the_same_streamer_replaces_a_running_session() {
        let a = "ab".repeat(32);
        let b = "cd".repeat(32);
        assert_eq!(admit(None, Some(&a)), Admission::Start);
        assert_eq!(admit(None, None), Admission::Start);
        assert_eq!(admit(Some(Some(&a)), Some(&a)), Admission::Replace);
        assert_eq!(
            admit(Some(Some(&a)), Some(&a.to_uppercase())),
            Admission::Replace
        );
        assert_eq!(admit(Some(Some(&a)), Some(&b)), Admission::Busy);
        assert_eq!(admit(Some(Some(&a)), None), Admission::Busy);
        assert_eq!(admit(Some(None), None), Admission::Busy);
        assert_eq!(admit(Some(None), Some(&a)), Admission::Busy);
    }
}
