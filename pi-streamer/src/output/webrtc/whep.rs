//! WHEP (RFC 9725) request handling, without sockets: a request in, a response out. The HTTPS
//! layer ([`super::https`]) only moves bytes; the viewer registry behind [`Sessions`] creates
//! and ends the WebRTC sessions.
//!
//! * `POST /whep` (`application/sdp` offer) → `201 Created`, `Location: /whep/<id>`, the
//!   `application/sdp` answer (ICE-lite, all candidates in the answer, so no trickle).
//! * `DELETE /whep/<id>` ends the session; `PATCH` (trickle ICE) answers 405.
//! * `OPTIONS /whep` → 204 with `Accept-Post: application/sdp`; CORS headers on every answer,
//!   so players served from another origin work.
//! * `GET /` and `GET /viewer.js`: the WebXR viewer page.
//!
//! Who may open a session is [`super::invite::Access`]: with a token (configured, or the
//! invitation made when listening off loopback) every WHEP request needs
//! `Authorization: Bearer <token>` (401 and `WWW-Authenticate: Bearer` otherwise, with words
//! for a missing, wrong or expired one; compared in constant time), and a session can be
//! deleted only with the token that created it.

use std::net::IpAddr;

use super::invite::{Access, Check};

/// The viewer page and its script, served at `/` and `/viewer.js`.
pub const PAGE_HTML: &str = include_str!("../../../../assets/web/index.html");
pub const PAGE_JS: &str = include_str!("../../../../assets/web/viewer.js");

/// Largest request body accepted (an SDP offer is a few kilobytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The local address the viewer reached us on: the host candidate's address.
    pub local_ip: IpAddr,
    /// The address the request came from (viewer slots are capped per address).
    pub peer_ip: IpAddr,
    /// Now, in seconds since the Unix epoch (invitations expire).
    pub now_unix_s: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response {
            status,
            headers: vec![
                ("access-control-allow-origin", "*".into()),
                (
                    "access-control-expose-headers",
                    "Location, Accept-Post".into(),
                ),
            ],
            body: Vec::new(),
        }
    }
    fn text(status: u16, msg: impl Into<String>) -> Self {
        let mut r = Response::new(status);
        let mut body = msg.into();
        body.push('\n');
        r.body = body.into_bytes();
        r.header("content-type", "text/plain; charset=utf-8")
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a session could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// The offer is not usable (unparsable, no video to receive): 400.
    BadOffer(String),
    /// Too many viewers: 503.
    Full(u32),
    /// Our side failed (e.g. no UDP port): 500.
    Internal(String),
}

/// The viewer registry, as WHEP needs it.
pub trait Sessions {
    /// Accepts an offer for `owner` (the token that authorized it); returns the session id and
    /// the SDP answer.
    fn create(
        &mut self,
        offer: &str,
        local_ip: IpAddr,
        peer_ip: IpAddr,
        owner: &str,
    ) -> Result<(String, String), CreateError>;
    /// Ends a session of `owner`; false if it has none with that id.
    fn delete(&mut self, id: &str, owner: &str) -> bool;
}

/// Whether a request's body is read at all: only an authorized offer's (`POST` or `PATCH` on
/// `/whep…`). Everything else is answered without it, so an unauthenticated client cannot
/// make the server hold a body (checked before a byte of it is read).
pub fn wants_body(
    method: &str,
    path: &str,
    authorization: Option<&str>,
    access: &Access,
    now_unix_s: u64,
) -> bool {
    let path = path.split('?').next().unwrap_or("");
    matches!(method, "POST" | "PATCH")
        && path.starts_with("/whep")
        && matches!(access.check(authorization, now_unix_s), Check::Granted(_))
}

/// A session id: what `create` returned, URL-safe characters only.
fn session_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/whep/")?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then_some(id)
}

pub fn handle(req: &Request, access: &Access, sessions: &mut dyn Sessions) -> Response {
    let path = req.path.split('?').next().unwrap_or("");
    let check = access.check(req.authorization, req.now_unix_s);
    match (req.method, path) {
        ("GET" | "HEAD", "/" | "/index.html") => {
            let mut r = Response::new(200).header("content-type", "text/html; charset=utf-8");
            r.body = PAGE_HTML.as_bytes().to_vec();
            r
        }
        ("GET" | "HEAD", "/viewer.js") => {
            let mut r = Response::new(200).header("content-type", "text/javascript; charset=utf-8");
            r.body = PAGE_JS.as_bytes().to_vec();
            r
        }
        ("GET" | "HEAD", "/favicon.ico") => Response::new(204),
        ("OPTIONS", _) if path.starts_with("/whep") => Response::new(204)
            .header("accept-post", "application/sdp")
            .header("allow", "OPTIONS, POST, DELETE, PATCH")
            .header(
                "access-control-allow-methods",
                "OPTIONS, POST, DELETE, PATCH",
            )
            .header(
                "access-control-allow-headers",
                "Authorization, Content-Type, If-Match",
            ),
        _ if path.starts_with("/whep") && !matches!(check, Check::Granted(_)) => {
            Response::text(401, check.refusal())
                .header("www-authenticate", "Bearer realm=\"binoc\"")
        }
        ("POST", "/whep") => {
            let ct = req.content_type.unwrap_or("");
            if !ct
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
            {
                return Response::text(
                    415,
                    format!("expected Content-Type application/sdp, got `{ct}`"),
                )
                .header("accept-post", "application/sdp");
            }
            if req.body.len() > MAX_BODY_BYTES {
                return Response::text(413, format!("offer longer than {MAX_BODY_BYTES} bytes"));
            }
            let Ok(offer) = std::str::from_utf8(req.body) else {
                return Response::text(400, "the offer is not UTF-8");
            };
            let Check::Granted(owner) = &check else {
                unreachable!("refused above")
            };
            match sessions.create(offer, req.local_ip, req.peer_ip, owner) {
                Ok((id, answer)) => {
                    let mut r = Response::new(201)
                        .header("content-type", "application/sdp")
                        .header("location", format!("/whep/{id}"))
                        .header("etag", format!("\"{id}\""));
                    r.body = answer.into_bytes();
                    r
                }
                Err(CreateError::BadOffer(why)) => Response::text(400, format!("bad offer: {why}")),
                Err(CreateError::Full(n)) => {
                    Response::text(503, format!("{n} viewers already: try again later"))
                        .header("retry-after", "5")
                }
                Err(CreateError::Internal(why)) => Response::text(500, why),
            }
        }
        ("POST", _) => Response::text(405, "POST goes to /whep").header("allow", "OPTIONS"),
        ("DELETE", p) => match (session_id(p), &check) {
            (Some(id), Check::Granted(owner)) if sessions.delete(id, owner) => Response::new(200),
            _ => Response::text(404, "no such session"),
        },
        ("PATCH", p) if session_id(p).is_some() => Response::text(
            405,
            "trickle ICE is not supported: the answer carries every candidate (ICE lite)",
        )
        .header("allow", "DELETE"),
        (_, p) if p == "/whep" || session_id(p).is_some() => {
            Response::text(405, "method not allowed").header("allow", "OPTIONS, POST, DELETE")
        }
        _ => Response::text(404, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &Access = &Access::Open;

    #[derive(Default)]
    struct Fake {
        created: Vec<String>,
        fail: Option<u8>,
    }

    impl Sessions for Fake {
        fn create(
            &mut self,
            offer: &str,
            _: IpAddr,
            _: IpAddr,
            owner: &str,
        ) -> Result<(String, String), CreateError> {
            match self.fail {
                Some(0) => Err(CreateError::BadOffer("no video".into())),
                Some(1) => Err(CreateError::Full(4)),
                _ => {
                    let id = format!("s{}", self.created.len());
                    self.created.push(format!("{owner}/{id}"));
                    Ok((id, format!("answer to {offer}")))
                }
            }
        }
        fn delete(&mut self, id: &str, owner: &str) -> bool {
            let n = self.created.len();
            let mine = format!("{owner}/");
            self.created
                .retain(|c| !(c.ends_with(&format!("/{id}")) && c.starts_with(&mine)));
            n != self.created.len()
        }
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        auth: Option<&'a str>,
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            authorization: auth,
            content_type: Some("application/sdp"),
            body,
            local_ip: "127.0.0.1".parse().unwrap(),
            peer_ip: "127.0.0.1".parse().unwrap(),
            now_unix_s: 0,
        }
    }

    #[test]
    fn post_creates_and_delete_ends() {
        let mut s = Fake::default();
        let r = handle(&req("POST", "/whep", None, b"v=0"), OPEN, &mut s);
        assert_eq!(r.status, 201);
        assert_eq!(r.get("Location"), Some("/whep/s0"));
        assert_eq!(r.get("content-type"), Some("application/sdp"));
        assert_eq!(r.body, b"answer to v=0");
        assert_eq!(
            r.get("access-control-expose-headers"),
            Some("Location, Accept-Post")
        );
        assert_eq!(
            handle(&req("DELETE", "/whep/s0", None, b""), OPEN, &mut s).status,
            200
        );
        assert_eq!(
            handle(&req("DELETE", "/whep/s0", None, b""), OPEN, &mut s).status,
            404
        );
        assert_eq!(
            handle(&req("DELETE", "/whep/../x", None, b""), OPEN, &mut s).status,
            404
        );
    }

    #[test]
    fn only_an_authorized_offer_has_its_body_read() {
        let t = &Access::Fixed("s3cret".into());
        assert!(wants_body("POST", "/whep", Some("Bearer s3cret"), t, 0));
        assert!(wants_body(
            "PATCH",
            "/whep/1-ab",
            Some("Bearer s3cret"),
            t,
            0
        ));
        assert!(!wants_body("POST", "/whep", None, t, 0));
        assert!(!wants_body("POST", "/whep", Some("Bearer wrong"), t, 0));
        assert!(!wants_body("GET", "/", None, t, 0));
        assert!(!wants_body(
            "DELETE",
            "/whep/1-ab",
            Some("Bearer s3cret"),
            t,
            0
        ));
        assert!(!wants_body("POST", "/elsewhere", None, OPEN, 0));
        assert!(
            wants_body("POST", "/whep?x=1", None, OPEN, 0),
            "no token configured"
        );
    }

    #[test]
    fn token_is_required_when_configured() {
        let mut s = Fake::default();
        let t = &Access::Fixed("sekrit".into());
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Basic sekrit"),
            Some("Bearer"),
        ] {
            let r = handle(&req("POST", "/whep", auth, b"v=0"), t, &mut s);
            assert_eq!(r.status, 401, "{auth:?}");
            assert_eq!(r.get("www-authenticate"), Some("Bearer realm=\"binoc\""));
        }
        assert!(s.created.is_empty());
        let r = handle(
            &req("POST", "/whep", Some("bearer  sekrit "), b"v=0"),
            t,
            &mut s,
        );
        assert_eq!(r.status, 201);
        assert_eq!(
            handle(&req("DELETE", "/whep/s0", None, b""), t, &mut s).status,
            401
        );
        assert_eq!(
            handle(
                &req("DELETE", "/whep/s0", Some("Bearer sekrit"), b""),
                t,
                &mut s
            )
            .status,
            200
        );
        // A session is bound to the token that made it: after the token changed (a new
        // invitation), the new token cannot end the old session.
        let r = handle(
            &req("POST", "/whep", Some("Bearer sekrit"), b"v=0"),
            t,
            &mut s,
        );
        assert_eq!(r.status, 201);
        let t2 = &Access::Fixed("other".into());
        assert_eq!(
            handle(
                &req("DELETE", "/whep/s0", Some("Bearer other"), b""),
                t2,
                &mut s
            )
            .status,
            404
        );
        assert_eq!(s.created.len(), 1);
        // The page and CORS preflight need no token.
        assert_eq!(handle(&req("GET", "/", None, b""), t, &mut s).status, 200);
        assert_eq!(
            handle(&req("OPTIONS", "/whep", None, b""), t, &mut s).status,
            204
        );
    }

    #[test]
    fn bad_requests_get_clear_statuses() {
        let mut s = Fake::default();
        let mut r = req("POST", "/whep", None, b"v=0");
        r.content_type = Some("application/json");
        assert_eq!(handle(&r, OPEN, &mut s).status, 415);
        assert_eq!(
            handle(&req("POST", "/whep", None, &[0xff, 0xfe]), OPEN, &mut s).status,
            400
        );
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            handle(&req("POST", "/whep", None, &big), OPEN, &mut s).status,
            413
        );
        assert_eq!(
            handle(&req("GET", "/whep", None, b""), OPEN, &mut s).status,
            405
        );
        assert_eq!(
            handle(&req("PATCH", "/whep/s9", None, b""), OPEN, &mut s).status,
            405
        );
        assert_eq!(
            handle(&req("POST", "/elsewhere", None, b""), OPEN, &mut s).status,
            405
        );
        assert_eq!(
            handle(&req("GET", "/nope", None, b""), OPEN, &mut s).status,
            404
        );
        s.fail = Some(0);
        let r = handle(&req("POST", "/whep", None, b"v=0"), OPEN, &mut s);
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("no video"));
        s.fail = Some(1);
        let r = handle(&req("POST", "/whep", None, b"v=0"), OPEN, &mut s);
        assert_eq!((r.status, r.get("retry-after")), (503, Some("5")));
        let r = handle(&req("OPTIONS", "/whep", None, b""), OPEN, &mut s);
        assert_eq!(r.get("accept-post"), Some("application/sdp"));
    }

    #[test]
    fn serves_the_page() {
        let mut s = Fake::default();
        let r = handle(&req("GET", "/?debug=1", None, b""), OPEN, &mut s);
        assert!(r.get("content-type").unwrap().starts_with("text/html"));
        assert!(String::from_utf8_lossy(&r.body).contains("viewer.js"));
        let r = handle(&req("GET", "/viewer.js", None, b""), OPEN, &mut s);
        assert!(r
            .get("content-type")
            .unwrap()
            .starts_with("text/javascript"));
    }
}
