//! Who may open a browser session: the rule, without sockets or clocks (time passed in).
//!
//! * Listening on loopback with no token configured: anyone who can reach it (this machine).
//! * A configured `transport.webrtc.token`: every WHEP request needs it, for as long as it is
//!   configured.
//! * Listening on anything else with no token configured: an **invitation** is made at start, a
//!   random 128-bit token valid for [`INVITE_TTL_S`], printed as the viewer URL and a QR code
//!   (as Jupyter does); a new one is printed when it expires. A token from an earlier run, or an
//!   expired one, is refused (401, with words saying so).
//!
//! A session is bound to the token that created it ([`Check::Granted`] names it): `DELETE`
//! needs the same token, so one viewer cannot end another's session.

use std::net::IpAddr;

/// How long an invitation is valid.
pub const INVITE_TTL_S: u64 = 12 * 3600;

/// An invitation: its token and when it expires (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub token: String,
    pub expires_unix_s: u64,
}

/// Who may open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed (loopback only, unless configured otherwise).
    Open,
    /// A token the user configured (no expiry).
    Fixed(String),
    /// The current invitation.
    Invited(Invitation),
}

/// A request's credential, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Allowed; sessions it creates belong to this owner (the token; empty when open).
    Granted(String),
    Missing,
    Wrong,
    Expired,
}

impl Check {
    /// The words of a refusal's 401.
    pub fn refusal(&self) -> &'static str {
        match self {
            Check::Granted(_) => "",
            Check::Missing => "this stream needs an invitation: open the viewer URL the streamer printed (it carries ?token=)",
            Check::Wrong => "wrong or stale invitation token: ask for the viewer URL the streamer printed this run",
            Check::Expired => "this invitation has expired: ask for the new viewer URL the streamer printed",
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let mut parts = authorization?.trim().splitn(2, ' ');
    let (scheme, cred) = (parts.next()?, parts.next()?);
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| cred.trim())
        .filter(|c| !c.is_empty())
}

impl Access {
    /// The rule for a server listening on `ip` with `token` configured; `fresh` makes an
    /// invitation's token when one is needed.
    pub fn for_listen(
        ip: IpAddr,
        token: Option<&str>,
        now_unix_s: u64,
        fresh: impl FnOnce() -> String,
    ) -> Access {
        match token {
            Some(t) => Access::Fixed(t.to_string()),
            None if ip.is_loopback() => Access::Open,
            None => Access::Invited(Invitation {
                token: fresh(),
                expires_unix_s: now_unix_s + INVITE_TTL_S,
            }),
        }
    }

    /// Judges a request's `Authorization` header at `now_unix_s`.
    pub fn check(&self, authorization: Option<&str>, now_unix_s: u64) -> Check {
        let (token, expires) = match self {
            Access::Open => return Check::Granted(String::new()),
            Access::Fixed(t) => (t.as_str(), None),
            Access::Invited(i) => (i.token.as_str(), Some(i.expires_unix_s)),
        };
        let Some(cred) = bearer(authorization) else {
            return Check::Missing;
        };
        if !constant_time_eq(cred.as_bytes(), token.as_bytes()) {
            return Check::Wrong;
        }
        if expires.is_some_and(|e| now_unix_s >= e) {
            return Check::Expired;
        }
        Check::Granted(token.to_string())
    }

    /// An expired invitation replaced by a fresh one (returned, to print); `None` otherwise.
    pub fn renew(&mut self, now_unix_s: u64, fresh: impl FnOnce() -> String) -> Option<Invitation> {
        match self {
            Access::Invited(i) if now_unix_s >= i.expires_unix_s => {
                *i = Invitation {
                    token: fresh(),
                    expires_unix_s: now_unix_s + INVITE_TTL_S,
                };
                Some(i.clone())
            }
            _ => None,
        }
    }

    /// The current invitation, if sessions need one.
    pub fn invitation(&self) -> Option<&Invitation> {
        match self {
            Access::Invited(i) => Some(i),
            _ => None,
        }
    }
}

/// A fresh invitation token: 128 bits of the system's randomness, hex.
pub fn fresh_token() -> String {
    let mut b = [0u8; 16];
    // No randomness: a token nobody can guess cannot be made, and nobody gets in.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The viewer URL with `token`, and the same as a QR code for a terminal (two rows of modules
/// per line of text).
pub fn invitation_text(url: &str) -> String {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20));
    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn off_loopback_an_invitation_is_needed_by_default() {
        assert_eq!(
            Access::for_listen(LO, None, 0, || unreachable!()),
            Access::Open
        );
        assert_eq!(
            Access::for_listen(LAN, Some("mine"), 0, || unreachable!()),
            Access::Fixed("mine".into())
        );
        let all: IpAddr = "0.0.0.0".parse().unwrap();
        let a = Access::for_listen(all, None, 100, || "abc".into());
        assert_eq!(
            a.invitation(),
            Some(&Invitation {
                token: "abc".into(),
                expires_unix_s: 100 + INVITE_TTL_S
            })
        );
    }

    #[test]
    fn tokens_are_checked_missing_wrong_expired_and_stale_ones_refused() {
        let mut a = Access::for_listen(LAN, None, 1000, || "t1".into());
        assert_eq!(a.check(None, 1000), Check::Missing);
        assert_eq!(a.check(Some("Basic t1"), 1000), Check::Missing);
        assert_eq!(a.check(Some("Bearer"), 1000), Check::Missing);
        assert_eq!(a.check(Some("Bearer t2"), 1000), Check::Wrong);
        assert_eq!(
            a.check(Some("bearer  t1 "), 1000),
            Check::Granted("t1".into())
        );
        let end = 1000 + INVITE_TTL_S;
        assert_eq!(a.check(Some("Bearer t1"), end), Check::Expired);
        assert_eq!(a.renew(end - 1, || unreachable!()), None);
        let renewed = a.renew(end, || "t2".into()).unwrap();
        assert_eq!(renewed.token, "t2");
        // The old invitation is now a stale one.
        assert_eq!(a.check(Some("Bearer t1"), end), Check::Wrong);
        assert_eq!(a.check(Some("Bearer t2"), end), Check::Granted("t2".into()));
        // A configured token does not expire.
        let f = Access::Fixed("k".into());
        assert_eq!(
            f.check(Some("Bearer k"), u64::MAX),
            Check::Granted("k".into())
        );
        assert!(Check::Expired.refusal().contains("expired"));
    }

    #[test]
    fn the_invitation_renders_as_a_qr_code() {
        let t = fresh_token();
        assert_eq!(t.len(), 32);
        assert_ne!(t, fresh_token());
        let qr = invitation_text(&format!("https://192.168.1.20:8443/?token={t}"));
        assert!(qr.lines().count() > 10, "{qr}");
    }
}
