//! The HTTPS server: TLS (rustls) + HTTP/1.1 (hyper), moving bytes to and from [`super::whep`].
//!
//! A secure context is required by WebXR, so plain HTTP is not served: a plain `http://`
//! request on the port gets a redirect to `https://` (and a page saying so). Without a
//! configured certificate a self-signed one is made once for `localhost`, `binoc.local` and
//! the listening address, and kept in the state directory (`webrtc-identity.pem`), so the
//! browser that trusted it is not asked again at the next start; its SHA-256 fingerprint is
//! logged so it can be checked when the browser asks.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::hub::{Hub, HubSessions};
use super::invite::{self, Access, Invitation};
use super::whep::{self, MAX_BODY_BYTES};
use crate::config::{StreamerConfig, WebrtcConfig};

/// How long a request's body may take to arrive (after its headers, which have their own 10 s).
const BODY_DEADLINE: Duration = Duration::from_secs(5);
/// Connections at once, and from one address: beyond them a new connection is closed at once,
/// so no client can hold the server's memory or starve the others.
pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 8;

/// Counts open connections, overall and per source address; a [`Slot`] is one.
#[derive(Default)]
struct Connections {
    per_source: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

struct Slot {
    table: Arc<Connections>,
    source: IpAddr,
}

impl Connections {
    fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut m = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = m.values().sum();
        let mine = m.entry(source).or_insert(0);
        if total >= MAX_CONNECTIONS || *mine >= MAX_CONNECTIONS_PER_SOURCE {
            if *mine == 0 {
                m.remove(&source);
            }
            return None;
        }
        *mine += 1;
        Some(Slot {
            table: self.clone(),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self
            .table
            .per_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}

pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    hub: Arc<Hub>,
    access: Arc<Mutex<Access>>,
}

/// The address to put in a viewer URL for a server bound to `addr`: the address itself, or,
/// bound to every interface, the one this machine reaches its network from.
fn reachable_ip(addr: SocketAddr) -> IpAddr {
    if !addr.ip().is_unspecified() {
        return addr.ip();
    }
    // Connecting a UDP socket sends nothing; it only picks the route (and so the address).
    let probe = |target: &str| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect(target).ok()?;
        s.local_addr().ok().map(|a| a.ip())
    };
    probe("192.0.2.1:9")
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Prints the invitation: the viewer URL with its token, and the URL as a QR code (stdout, for
/// the person at the terminal; the log says only that there is one).
fn announce(addr: SocketAddr, invitation: &Invitation) {
    use std::io::Write;
    let host = match reachable_ip(addr) {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("https://{host}:{}/?token={}", addr.port(), invitation.token);
    let until = binoc_net::os_clock::utc_text(invitation.expires_unix_s);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "viewer URL (an invitation, valid until {until}; anyone with it can watch):\n  {url}\n{}",
        invite::invitation_text(&url)
    );
    let _ = out.flush();
    tracing::info!(
        "viewers need an invitation: its URL and QR code are on stdout (valid until {until})"
    );
}

/// The file the self-signed HTTPS identity is kept in, inside the state directory.
pub const IDENTITY_FILE: &str = "webrtc-identity.pem";

fn tls_config(
    cfg: &WebrtcConfig,
    listen_ip: IpAddr,
    state_dir: Option<&std::path::Path>,
) -> Result<rustls::ServerConfig> {
    let (chain, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .with_context(|| format!("reading the certificate {}", c.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing the certificate {}", c.display()))?;
            if chain.is_empty() {
                anyhow::bail!("{}: no certificate in the file", c.display());
            }
            let key = PrivateKeyDer::from_pem_file(k)
                .with_context(|| format!("reading the private key {}", k.display()))?;
            (chain, key)
        }
        _ => {
            let mut names = vec!["localhost".to_string(), "binoc.local".to_string()];
            if !listen_ip.is_unspecified() {
                names.push(listen_ip.to_string());
            }
            names.push("127.0.0.1".into());
            let kept = state_dir.map(|dir| {
                let path = dir.join(IDENTITY_FILE);
                binoc_net::Identity::load_or_create_for(&path, &names)
                    .map(|id| (id, format!("kept in {}", path.display())))
            });
            let (id, kept) = match kept {
                Some(Ok(k)) => k,
                // A state directory that cannot be written (a read-only home) costs the
                // browser a question at the next start, not the stream.
                Some(Err(e)) => (
                    binoc_net::Identity::generate_for(&names)?,
                    format!("made for this run only: {e:#}"),
                ),
                None => (
                    binoc_net::Identity::generate_for(&names)?,
                    "made for this run only (no state directory)".to_string(),
                ),
            };
            tracing::info!(
                "self-signed HTTPS certificate ({kept}), SHA-256 {}",
                id.fingerprint()
            );
            (vec![id.cert], id.key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("certificate and key do not match")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

impl Server {
    pub async fn bind(config: &StreamerConfig, hub: Arc<Hub>) -> Result<Self> {
        let cfg = &config.transport.webrtc;
        let addr: SocketAddr = cfg
            .listen
            .parse()
            .with_context(|| format!("listen address `{}`", cfg.listen))?;
        let tls = tls_config(cfg, addr.ip(), config.state_dir.as_deref())?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let access = Access::for_listen(
            addr.ip(),
            cfg.token.as_deref(),
            binoc_net::os_clock::unix_s(),
            invite::fresh_token,
        );
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            hub,
            access: Arc::new(Mutex::new(access)),
        })
    }

    /// Who may open a session now.
    fn access(&self) -> Access {
        self.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts connections until aborted; one task per connection. Prints the invitation, if
    /// viewers need one, and a new one whenever it expires.
    pub async fn run(self) {
        let access = self.access.clone();
        let connections = Arc::new(Connections::default());
        let addr = self.listener.local_addr().ok();
        if let (Some(addr), Some(i)) = (addr, self.access().invitation()) {
            announce(addr, i);
        }
        // The invitation's renewal runs in this loop (not a task of its own), so it ends with
        // the server.
        let mut renew = tokio::time::interval(Duration::from_secs(30));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = renew.tick() => {
                    let renewed = access
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .renew(binoc_net::os_clock::unix_s(), invite::fresh_token);
                    if let (Some(addr), Some(i)) = (addr, renewed) {
                        announce(addr, &i);
                    }
                    continue;
                }
            };
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let local_ip = match tcp.local_addr() {
                Ok(a) => a.ip(),
                Err(_) => continue,
            };
            let Some(slot) = connections.admit(peer.ip()) else {
                tracing::debug!(%peer, "too many connections: closed");
                continue; // dropping `tcp` closes it
            };
            let (acceptor, hub, access) = (self.acceptor.clone(), self.hub.clone(), access.clone());
            tokio::spawn(async move {
                let _slot = slot; // held for the connection's life
                                  // A TLS connection opens with a handshake record (0x16); anything else is a
                                  // browser speaking plain HTTP to this port: tell it where to go.
                let mut first = [0u8; 1];
                match tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut first)).await {
                    Ok(Ok(1)) if first[0] != 0x16 => {
                        redirect_plain_http(tcp, peer).await;
                        return;
                    }
                    Ok(Ok(1)) => {}
                    _ => return, // closed, failed, or silent for 10 s
                }
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let service = service_fn(move |req| {
                    let hub = hub.clone();
                    let access = access.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            respond(req, &hub, &access, local_ip, peer.ip()).await,
                        )
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, "HTTP connection: {e}");
                }
            });
        }
    }
}

/// Answers plain HTTP on the HTTPS port with a redirect to the same place over `https://`
/// (and a short page saying so, for clients that do not follow it), then closes.
async fn redirect_plain_http(tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let service = service_fn(|req: hyper::Request<Incoming>| async move {
        Ok::<_, std::convert::Infallible>(plain_http_answer(
            req.headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok()),
            req.uri().path_and_query().map_or("/", |p| p.as_str()),
        ))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .keep_alive(false)
        .serve_connection(TokioIo::new(tcp), service);
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), conn).await {
        tracing::debug!(%peer, "plain HTTP: {e}");
    }
}

/// The answer to a plain-HTTP request for `path` on `host` (the request's Host header, used
/// only when it is a well-formed authority).
fn plain_http_answer(host: Option<&str>, path: &str) -> hyper::Response<Full<Bytes>> {
    let target = host
        .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok())
        .and_then(|a| {
            hyper::Uri::builder()
                .scheme("https")
                .authority(a)
                .path_and_query(path)
                .build()
                .ok()
        });
    let page = |link: &str| {
        format!(
            "<!doctype html><meta charset=utf-8><title>binoc: use https</title>\n\
             <p>This is binoc's viewer, served over HTTPS only (WebXR needs a secure page): \
             {link}</p>\n"
        )
    };
    let mut b = hyper::Response::builder()
        .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(hyper::header::CONNECTION, "close");
    let body = match &target {
        Some(t) => {
            b = b
                .status(hyper::StatusCode::MOVED_PERMANENTLY)
                .header(hyper::header::LOCATION, t.to_string());
            let t = html_escape(&t.to_string());
            page(&format!("<a href=\"{t}\">{t}</a>"))
        }
        None => {
            b = b.status(hyper::StatusCode::BAD_REQUEST);
            page("open it with <code>https://</code> in front of the address")
        }
    };
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// `s` safe inside HTML text and double-quoted attributes.
fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The request body, copied out chunk by chunk as it arrives, at most `MAX_BODY_BYTES + 1`
/// bytes (one more is enough for WHEP to answer 413). Copied, not collected: each chunk hyper
/// hands over is a view into a larger read buffer, and keeping a one-byte view (a body sent one
/// byte per TLS record) kept ~3.8 KB alive per byte.
async fn read_body(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = (MAX_BODY_BYTES + 1).saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() > MAX_BODY_BYTES {
                break;
            }
        }
    }
    Ok(out)
}

async fn respond(
    req: hyper::Request<Incoming>,
    hub: &Arc<Hub>,
    access: &Access,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> hyper::Response<Full<Bytes>> {
    let now_unix_s = binoc_net::os_clock::unix_s();
    let (parts, body) = req.into_parts();
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (auth, ctype) = (
        header(hyper::header::AUTHORIZATION),
        header(hyper::header::CONTENT_TYPE),
    );
    // The token is checked before a byte of the body is read; an authorized body has a
    // deadline and a size limit (one byte over it is enough for WHEP to answer 413).
    let body = if whep::wants_body(
        parts.method.as_str(),
        parts.uri.path(),
        auth.as_deref(),
        access,
        now_unix_s,
    ) {
        match tokio::time::timeout(BODY_DEADLINE, read_body(body)).await {
            Ok(Ok(b)) => Bytes::from(b),
            Ok(Err(_)) => Bytes::from(vec![0u8; MAX_BODY_BYTES + 1]),
            Err(_) => {
                let mut r = hyper::Response::new(Full::new(Bytes::from_static(
                    b"the request body did not arrive in time\n",
                )));
                *r.status_mut() = hyper::StatusCode::REQUEST_TIMEOUT;
                return r;
            }
        }
    } else {
        Bytes::new()
    };
    let request = whep::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        authorization: auth.as_deref(),
        content_type: ctype.as_deref(),
        body: &body,
        local_ip,
        peer_ip,
        now_unix_s,
    };
    let r = whep::handle(&request, access, &mut HubSessions(hub.clone()));
    tracing::debug!(method = %parts.method, path = parts.uri.path(), status = r.status, "https");
    let mut out = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        out = out.header(*k, v);
    }
    let body = if parts.method == hyper::Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(r.body)
    };
    out.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn plain_http_is_sent_to_https_at_the_same_place() {
        let r = plain_http_answer(Some("pi.local:8443"), "/?token=abc");
        assert_eq!(r.status(), 301);
        assert_eq!(
            r.headers()[hyper::header::LOCATION],
            "https://pi.local:8443/?token=abc"
        );
        // What the path carries is escaped in the page.
        let r = plain_http_answer(Some("pi.local"), "/\"><script>");
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r.into_body().collect())
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("\"><script>"), "{body}");
        // A Host header that is not an address gets a page, not a redirect built from it.
        for host in [None, Some("evil.example/x"), Some("a b")] {
            let r = plain_http_answer(host, "/");
            assert_eq!(r.status(), 400, "{host:?}");
            assert!(r.headers().get(hyper::header::LOCATION).is_none());
        }
    }

    #[test]
    fn loads_a_configured_certificate_and_refuses_bad_ones() {
        let dir = std::env::temp_dir().join(format!("binoc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["pi.local".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        let cert = write(&dir, "cert.pem", &a.cert.pem());
        let key = write(&dir, "key.pem", &a.signing_key.serialize_pem());
        let other_key = write(&dir, "other.pem", &b.signing_key.serialize_pem());
        let empty = write(&dir, "empty.pem", "");
        let ip = "127.0.0.1".parse().unwrap();
        let cfg = |c: &std::path::Path, k: &std::path::Path| WebrtcConfig {
            tls_cert: Some(c.into()),
            tls_key: Some(k.into()),
            ..WebrtcConfig::default()
        };
        assert!(tls_config(&cfg(&cert, &key), ip, None).is_ok());
        // Self-signed when none is configured: for this run only, or kept in the state
        // directory and the same at the next start.
        assert!(tls_config(&WebrtcConfig::default(), ip, None).is_ok());
        let state = dir.join("state");
        assert!(tls_config(&WebrtcConfig::default(), ip, Some(&state)).is_ok());
        let kept = std::fs::read(state.join(IDENTITY_FILE)).unwrap();
        assert!(tls_config(&WebrtcConfig::default(), ip, Some(&state)).is_ok());
        assert_eq!(std::fs::read(state.join(IDENTITY_FILE)).unwrap(), kept);
        let e = |c: &std::path::Path, k: &std::path::Path| {
            format!("{:#}", tls_config(&cfg(c, k), ip, None).unwrap_err())
        };
        assert!(
            e(&cert, &other_key).contains("do not match"),
            "{}",
            e(&cert, &other_key)
        );
        assert!(
            e(&empty, &key).contains("no certificate"),
            "{}",
            e(&empty, &key)
        );
        assert!(e(&dir.join("missing.pem"), &key).contains("missing.pem"));
        assert!(
            e(&cert, &empty).contains("private key"),
            "{}",
            e(&cert, &empty)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
