//! The SDP side of one viewer: the answer to a browser's WHEP offer (ICE lite, H.264 only,
//! TWCC, render-at-once), and which payload type carries each eye.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc, RtcConfig};

use crate::config::UdpPorts;

/// Where a viewer's estimate starts (bit/s, both eyes), at most: as browsers do, a new peer
/// starts low and probes up (str0m's initial probes find a clear link within seconds), rather
/// than start at the configured rate and, on a slower link, overflow its queue into a loss
/// that collapses the estimate (measured: 2×8 Mbit/s into 6 → 0.1 Mbit/s, ~1 in 20 s back).
pub const START_BPS: u64 = 2_500_000;

/// A session accepted by WHEP, not yet running.
pub struct Pending {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    /// The address the viewer was told to send to (the host candidate): the socket's own, or
    /// the announced IP with its port.
    pub candidate: SocketAddr,
    /// The estimate the session starts from ([`START_BPS`] or the configured rate if lower).
    pub start_bps: u64,
}

/// Where viewers' media goes (`transport.webrtc.udp_ports`, `announce_ip`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaAddr {
    pub udp_ports: Option<UdpPorts>,
    pub announce_ip: Option<IpAddr>,
}

/// A UDP socket on `ip`: any free port, or the first free one of `ports`.
fn bind_media(ip: IpAddr, ports: Option<UdpPorts>) -> Result<UdpSocket> {
    let Some(r) = ports else {
        return UdpSocket::bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding a UDP port on {ip}"));
    };
    for port in r.first..=r.last {
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)) {
            return Ok(s);
        }
    }
    bail!(
        "every UDP port of {}-{} on {ip} is taken (transport.webrtc.udp_ports)",
        r.first,
        r.last
    )
}

/// Builds the peer connection for an offer: ICE lite with one host candidate on `local_ip`
/// (or the announced IP), H.264 only, TWCC bandwidth estimation, Chrome's playout-delay
/// extension (asked to be 0, so the browser renders frames as soon as they are decoded).
///
/// A stranger writes the offer: str0m panics on some malformed ones (seen: an `apt=` naming a
/// payload type twice, "Pt locked multiple times"), so a panic here is caught and is a refused
/// offer like any other, never an unwound task or a lost slot.
pub fn accept_offer(
    offer: &str,
    local_ip: IpAddr,
    media: MediaAddr,
    initial_bps: u64,
) -> Result<(Pending, String)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        accept_offer_inner(offer, local_ip, media, initial_bps)
    }))
    .unwrap_or_else(|_| bail!("{NOT_NEGOTIABLE}"))
}

/// What a refused offer that made the SDP stack panic is told.
pub const NOT_NEGOTIABLE: &str = "the offer could not be negotiated";

fn accept_offer_inner(
    offer: &str,
    local_ip: IpAddr,
    media: MediaAddr,
    initial_bps: u64,
) -> Result<(Pending, String)> {
    let offer = SdpOffer::from_sdp_string(offer).context("unparsable SDP")?;
    let start_bps = initial_bps.min(START_BPS);
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_bwe(Some(Bitrate::bps(start_bps)))
        .set_stats_interval(Some(Duration::from_secs(1)))
        .set_extension(6, Extension::PlayoutDelay)
        .build(Instant::now());
    // The estimator probes up to the configured bitrate: without a desired rate str0m never
    // probes, and an estimate that fell (a blackout, a cap that lifted) climbs back only as fast
    // as the media it already allows (measured: stuck at 1.2 Mbit/s after a 6 Mbit/s cap).
    rtc.bwe()
        .set_bitrate(Bitrate::ZERO, Bitrate::bps(initial_bps));
    let socket = bind_media(local_ip, media.udp_ports)?;
    let port = socket.local_addr()?.port();
    let candidate = SocketAddr::new(media.announce_ip.unwrap_or(local_ip), port);
    rtc.add_local_candidate(Candidate::host(candidate, "udp").context("host candidate")?);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .context("offer not acceptable")?;
    let sdp = answer.to_sdp_string();
    if sdp.matches("m=video").count() == 0 {
        bail!("the offer has no video m-line to receive");
    }
    Ok((
        Pending {
            rtc,
            socket,
            candidate,
            start_bps,
        },
        sdp,
    ))
}

/// The payload type to send `mid`'s H.264 with: constrained baseline if offered.
pub fn pick_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let h264: Vec<_> = writer
        .payload_params()
        .filter(|p| {
            let s = p.spec();
            s.codec == Codec::H264 && s.format.packetization_mode == Some(1)
        })
        .map(|p| (p.pt(), p.spec().format.profile_level_id))
        .collect();
    // Constrained baseline is what the encoders make; any packetization-mode-1 H.264 will
    // decode it.
    h264.iter()
        .find(|(_, pl)| matches!(pl, Some(0x42e01f) | Some(0x42001f)))
        .or(h264.first())
        .map(|(pt, _)| *pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer Chromium 156 made (`node tests/browser/view.mjs --offer`): two recvonly video
    /// transceivers and the data channel, as the viewer page and WHEP players send.
    const CHROMIUM_OFFER: &str = include_str!("../../../../tests/data/chromium-offer.sdp");

    /// Offers with one `a=fmtp:` line moved to each other payload type (its parameters
    /// attached to the wrong codec, as a fuzzer's mutation does): some make str0m panic; each
    /// is answered or refused, and the process goes on.
    #[test]
    fn mutated_offers_are_refused_never_a_panic_that_escapes() {
        let lines: Vec<&str> = CHROMIUM_OFFER.lines().collect();
        let pts: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let (mut refused, mut panicked, mut tried) = (0, 0, 0);
        // The panics str0m prints on its way out are expected here.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for (i, line) in lines.iter().enumerate() {
            if panicked >= 5 {
                break; // enough to show they are contained
            }
            let Some(rest) = line.strip_prefix("a=fmtp:") else {
                continue;
            };
            let Some((_, params)) = rest.split_once(' ') else {
                continue;
            };
            for pt in &pts {
                let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                mutated[i] = format!("a=fmtp:{pt} {params}");
                tried += 1;
                match accept_offer(
                    &(mutated.join("\r\n") + "\r\n"),
                    "127.0.0.1".parse().unwrap(),
                    MediaAddr::default(),
                    8_000_000,
                ) {
                    Ok(_) => {}
                    Err(e) if e.to_string() == NOT_NEGOTIABLE => panicked += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        std::panic::set_hook(hook);
        eprintln!("{tried} mutated offers: {panicked} made str0m panic, {refused} refused");
        assert!(
            panicked > 0,
            "none of {tried} mutations reached str0m's panic"
        );
    }

    #[test]
    fn answers_a_chromium_offer_with_two_sendonly_h264_tracks() {
        let (pending, answer) = accept_offer(
            CHROMIUM_OFFER,
            "127.0.0.1".parse().unwrap(),
            MediaAddr::default(),
            16_000_000,
        )
        .unwrap();
        let port = pending.socket.local_addr().unwrap().port();
        let mlines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(mlines.len(), 3, "{answer}");
        assert!(mlines[0].starts_with("m=video") && mlines[1].starts_with("m=video"));
        assert!(mlines[2].starts_with("m=application"), "the data channel");
        assert_eq!(answer.matches("a=sendonly").count(), 2);
        assert!(answer.contains("a=ice-lite"));
        assert!(answer.contains(&format!("127.0.0.1 {port} typ host")));
        assert!(answer.contains("H264/90000"));
        assert!(answer.contains("packetization-mode=1"));
        assert!(answer.contains("playout-delay"), "asks for render-at-once");
        assert!(
            answer.contains("transport-cc"),
            "TWCC feedback for the estimate"
        );
        assert!(answer.contains("nack pli"), "NACK and PLI feedback");
        // The mids of the offer, in its order: left eye, right eye.
        let mids: Vec<&str> = answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=mid:"))
            .collect();
        assert_eq!(mids, ["0", "1", "2"]);
    }

    #[test]
    fn media_goes_to_a_port_of_the_range_and_the_announced_ip() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // A free range of three ports: take the first (held), then the second is given out.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let first = probe.local_addr().unwrap().port();
        drop(probe);
        let ports = Some(UdpPorts {
            first,
            last: first.saturating_add(2),
        });
        let media = MediaAddr {
            udp_ports: ports,
            announce_ip: Some("127.0.0.2".parse().unwrap()),
        };
        let (a, answer) = accept_offer(CHROMIUM_OFFER, ip, media, 1_000_000).unwrap();
        let port = a.socket.local_addr().unwrap().port();
        assert!((first..=first + 2).contains(&port));
        assert_eq!(
            a.candidate,
            SocketAddr::new("127.0.0.2".parse().unwrap(), port)
        );
        assert!(
            answer.contains(&format!("127.0.0.2 {port} typ host")),
            "{answer}"
        );
        assert!(
            !answer.contains("127.0.0.1 "),
            "the local address is not announced"
        );
        let (b, _) = accept_offer(CHROMIUM_OFFER, ip, media, 1_000_000).unwrap();
        assert_ne!(b.socket.local_addr().unwrap().port(), port);
        // A range with every port taken is a clear error.
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let full = MediaAddr {
            udp_ports: Some(UdpPorts { first: p, last: p }),
            announce_ip: None,
        };
        let e = accept_offer(CHROMIUM_OFFER, ip, full, 1).err().unwrap();
        assert!(format!("{e:#}").contains("udp_ports"), "{e:#}");
    }

    #[test]
    fn refuses_offers_it_cannot_serve() {
        let ip = "127.0.0.1".parse().unwrap();
        let e = accept_offer("hello", ip, MediaAddr::default(), 1)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("unparsable SDP"), "{e:#}");
        // Audio only: nothing to send.
        let audio: String = CHROMIUM_OFFER
            .split("m=")
            .enumerate()
            .filter(|(i, part)| *i == 0 || part.starts_with("application"))
            .map(|(i, p)| {
                if i == 0 {
                    p.to_string()
                } else {
                    format!("m={p}")
                }
            })
            .collect();
        let audio = audio.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 2");
        assert!(accept_offer(&audio, ip, MediaAddr::default(), 1).is_err());
    }
}
