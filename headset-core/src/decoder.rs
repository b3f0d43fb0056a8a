//! One eye's decoder thread: keeps the reference chain ([`ReferenceChain`]: a gap or a decode
//! error waits for an IDR and asks for one), decodes (slice by slice where the decoder can:
//! each slice the moment it arrives), reads each picture's pixel code, and hands the picture
//! with its marker to the display ([`PictureSink`]). A picture with a missing slice is never
//! shown: the gap makes the chain wait for an IDR.

use std::sync::Arc;

use binoc_net::os_clock::monotonic_ns;
use shared_proto::fragment::CompletedFrame;
use shared_proto::rules::refchain::ReferenceChain;
use shared_proto::rules::refresh::{RefreshGate, RefreshState};
use shared_proto::rules::slices::PictureTracker;
use shared_proto::wire::{frame_ns, FrameMarker, KeyframeReason, StreamInfo, ToStreamer};
use shared_proto::{pixel_code, Eye};
use tokio::sync::mpsc;

use crate::decode;
use crate::session::Outgoing;
use crate::sink::{PendingMarker, PictureSink};
use crate::stats::Shared;

/// Keyframe requests are repeated at most this often while the decoder waits for one.
const KEYFRAME_RETRY_NS: u64 = 100_000_000;

/// Whether a lost reference can wait for the stream's next intra-refresh sweep instead of a
/// keyframe: the decoder conceals, it has a picture to conceal from, sweeps are periodic and
/// the wait is within their patience.
fn repairable(
    gate: &RefreshGate,
    dec: &dyn decode::VideoDecoder,
    decoded_any: bool,
    now: u64,
) -> bool {
    decoded_any && dec.conceals() && gate.can_wait(now)
}

/// Whether this eye's pictures are being repaired by intra refresh now.
fn repairing(gate: &RefreshGate, dec: &dyn decode::VideoDecoder) -> bool {
    !matches!(gate.state(), RefreshState::Clean) && dec.conceals() && gate.periodic()
}

/// The time between two frames of the eye's stream (one not announced: 60 fps).
pub(crate) fn frame_interval(stream: Option<StreamInfo>) -> u64 {
    stream.map_or(frame_ns(60_000), |s| s.frame_ns())
}

/// Runs until `frames` ends (the session drops the queue's sending end). `stream`: the eye's
/// stream as the streamer announced it (its size; whether its frames carry the pixel code).
pub(crate) fn run(
    eye: Eye,
    stream: Option<StreamInfo>,
    frames: impl IntoIterator<Item = CompletedFrame>,
    out: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
) {
    let size = stream.map(|s| (s.width, s.height));
    // Frames without the pixel code (a real camera's picture) are not read for one.
    let coded = stream.is_some_and(|s| s.pixel_code);
    // The decoder, opened for the sink's current surface generation.
    let open = || -> Option<(Box<dyn decode::VideoDecoder>, u64)> {
        let generation = sink.surface_generation();
        let software = shared.software_decoder();
        let decoder = match size.and_then(|(w, h)| sink.surface(eye, w, h)) {
            Some(surface) => decode::open_for_stream(size, Some(surface), software).or_else(|e| {
                tracing::warn!(%eye, "cannot decode into the surface, copying instead: {e:#}");
                decode::open_for_stream(size, None, software)
            }),
            None => decode::open_for_stream(size, None, software),
        };
        match decoder {
            Ok(mut d) => {
                tracing::info!(%eye, decoder = d.name(), "decoder opened");
                if let Some((w, h)) = size {
                    let t = std::time::Instant::now();
                    match d.warm_up(w, h) {
                        Ok(()) => tracing::debug!(%eye, took = ?t.elapsed(), "decoder warmed up"),
                        // Only the first picture is slower for it.
                        Err(e) => tracing::debug!(%eye, "no decoder warm-up: {e:#}"),
                    }
                }
                Some((d, generation))
            }
            Err(e) => {
                tracing::error!(%eye, "cannot create decoder: {e:#}");
                None
            }
        }
    };
    let Some((mut dec, mut generation)) = open() else {
        return;
    };
    // Into a surface the picture is never on the CPU: its pixel code cannot be read (the
    // streamer counts those markers as unreadable; the code path is checked on the other path).
    let mut to_surface = dec.renders_to_surface();
    let mut chain = ReferenceChain::new(KEYFRAME_RETRY_NS);
    let mut last_code: Option<u32> = None;
    let mut pictures = PictureTracker::new();
    let (mut idr_start, mut prev_seq): (Option<u32>, Option<u32>) = (None, None);
    let mut joined: Vec<u8> = Vec::new();
    // Recovery by intra refresh (streams whose sweeps are periodic, decoders that conceal).
    let mut gate = RefreshGate::new(frame_interval(stream));
    let mut decoded_any = false;
    // A loss was seen since the last IDR (openh264's concealment flag stays on until then).
    let mut lossy_since_idr = false;
    let request = |reason: Option<KeyframeReason>| {
        if let Some(reason) = reason {
            shared.eye(eye).counts.keyframe_requests += 1;
            let _ = out.try_send(Outgoing::Msg(ToStreamer::KeyframeRequest { eye, reason }));
        }
    };
    for frame in frames {
        if sink.surface_generation() != generation {
            // The display's surfaces changed: start a decoder on the new one (the old one goes
            // first, releasing its surface). It needs an IDR, like any decoder that starts.
            drop(dec);
            tracing::info!(%eye, "the display's surfaces changed: reopening the decoder");
            let Some(reopened) = open() else {
                return;
            };
            (dec, generation) = reopened;
            to_surface = dec.renders_to_surface();
            chain.restart();
            last_code = None;
            decoded_any = false;
        }
        // The chain runs per unit (slice): any gap waits for the first slice of an IDR. Loss
        // is counted per picture.
        let slice = frame.timing.slice;
        let lost = pictures.on_unit(frame.seq, slice);
        if lost > 0 {
            shared.eye(eye).counts.lost += u64::from(lost);
            tracing::debug!(%eye, lost, to = frame.seq, "sequence gap: reference lost");
        }
        // An IDR picture's later slices are keyframe units only if its first slice was one the
        // chain took and nothing is missing since.
        let start = frame.seq.wrapping_sub(u32::from(slice.index));
        let key_unit = frame.keyframe
            && (slice.is_first()
                || (idr_start == Some(start) && prev_seq == Some(frame.seq.wrapping_sub(1))));
        prev_seq = Some(frame.seq);
        let now = monotonic_ns();
        if lost > 0 {
            gate.on_loss(now);
            lossy_since_idr = true;
        }
        let mut verdict = chain.on_frame(frame.seq, key_unit, now);
        idr_start = (key_unit && verdict.usable).then_some(start);
        if !verdict.usable && repairable(&gate, &*dec, decoded_any, now) {
            // The stream refreshes itself: decode on (the decoder conceals what it lacks) and
            // show nothing until a sweep has repaired the picture; no keyframe for now.
            verdict.usable = true;
            verdict.request = None;
        }
        shared.set_repairing(eye, repairing(&gate, &*dec));
        if !verdict.usable {
            if slice.is_last() {
                shared.eye(eye).counts.skipped_until_idr += 1;
            }
            request(verdict.request);
            shared.check_target();
            continue;
        }
        // A decoder that takes whole pictures only gets the slices joined.
        if slice.is_first() {
            joined.clear();
            gate.on_picture(frame.keyframe && key_unit, slice.recovery);
        }
        let unit: &[u8] = if dec.takes_slices() || slice.count == 1 {
            &frame.bitstream
        } else {
            joined.extend_from_slice(&frame.bitstream);
            if !slice.is_last() {
                continue;
            }
            &joined
        };
        // (pixel code, decoded at) of the picture, if one came out. The marker goes to the
        // sink, which completes it when the picture is uploaded and displayed.
        let mut picture: Option<(Option<(Eye, u32)>, u64)> = None;
        // Whether the picture is shown: not while it (or the other eye's) is being repaired.
        let mut hidden = false;
        let conceals = dec.conceals();
        let new_marker = |code: Option<(Eye, u32)>, decoded_ns: u64| PendingMarker {
            marker: Some(FrameMarker {
                eye,
                seq: frame.seq,
                frame_no: frame.timing.frame_no,
                pixel_code: code,
                first_byte_ns: frame.first_byte_ns,
                last_byte_ns: frame.last_byte_ns,
                decoded_ns,
                presented_ns: None,
                display_ns: None,
            }),
            capture_ns: frame.timing.capture_ns,
            out: out.clone(),
            shared: shared.clone(),
        };
        let result = if to_surface {
            // The picture is rendered into the surface when decoding returns: decoded and
            // handed to the display at the same moment.
            dec.decode_to_surface(unit).inspect(|&rendered| {
                if rendered {
                    let now = monotonic_ns();
                    sink.rendered(eye, now, new_marker(None, now));
                    picture = Some((None, now));
                }
            })
        } else {
            dec.decode(unit, &mut |p| {
                if !slice.is_last() {
                    // An earlier, damaged picture finished late by this slice (concealed):
                    // never shown, not this frame's picture.
                    return;
                }
                let decoded_ns = monotonic_ns();
                let clean = gate.on_decoded();
                // Both eyes hold while either is repaired by a sweep (an eye waiting for an
                // IDR decodes nothing meanwhile; the other goes on).
                shared.set_repairing(eye, !clean && conceals && gate.periodic());
                hidden = !clean || shared.any_repairing();
                let code = coded
                    .then(|| pixel_code::read(p.y, p.y_stride, p.width, p.height))
                    .flatten();
                if !hidden {
                    sink.present(eye, p, new_marker(code, decoded_ns));
                }
                picture = Some((code, decoded_ns));
            })
        };
        let (code, decoded_ns) = match (result, picture) {
            (Ok(_), Some(p)) => p,
            // A slice before the last: its picture comes with the last one.
            (Ok(_), None) if !slice.is_last() => continue,
            (result, _) => {
                // An error, or no picture for a complete access unit: the stream is broken
                // for us until the next IDR.
                match result {
                    Err(e) => tracing::debug!(%eye, seq = frame.seq, "decode error: {e}"),
                    Ok(_) => {
                        tracing::debug!(%eye, seq = frame.seq, "no picture from a whole access unit")
                    }
                }
                shared.eye(eye).counts.decode_errors += 1;
                let now = monotonic_ns();
                gate.on_loss(now);
                lossy_since_idr = true;
                let r = chain.on_unusable(KeyframeReason::DecodeError, now);
                if !repairable(&gate, &*dec, decoded_any, now) {
                    request(r);
                }
                shared.check_target();
                continue;
            }
        };
        chain.on_decoded();
        decoded_any = true;
        if frame.keyframe && slice.is_last() {
            lossy_since_idr = false;
        }
        // openh264 flags every picture after a loss as concealed until the next IDR (it cannot
        // tell that a sweep repaired it), so the flag means something only before any loss.
        if dec.last_concealed() && !hidden && !lossy_since_idr {
            // Concealed without a loss seen first (a damaged bitstream): later pictures wait
            // for a repair, or a keyframe.
            let now = monotonic_ns();
            gate.on_loss(now);
            if !repairable(&gate, &*dec, decoded_any, now) {
                request(chain.on_unusable(KeyframeReason::DecodeError, now));
            }
        }
        {
            let clock = shared.clock();
            let mut s = shared.eye(eye);
            s.counts.decoded += 1;
            s.counts.hidden += u64::from(hidden);
            s.freezes.on_picture(monotonic_ns());
            if frame.keyframe {
                s.counts.keyframes += 1;
            }
            match code {
                // A hidden picture is damaged: its code is no verdict on the stream.
                _ if hidden => {}
                None if to_surface || !coded => {}
                None => s.counts.unreadable_code += 1,
                Some((code_eye, n)) => {
                    if code_eye != eye {
                        s.counts.wrong_eye += 1;
                    }
                    if n != (frame.timing.frame_no as u32) & pixel_code::FRAME_MASK {
                        s.counts.code_mismatch += 1;
                    }
                    // Not newer than the previous picture (24-bit wrapping comparison).
                    let step = n.wrapping_sub(last_code.unwrap_or(n.wrapping_sub(1)))
                        & pixel_code::FRAME_MASK;
                    if step == 0 || step > pixel_code::FRAME_MASK / 2 {
                        s.counts.repeated += 1;
                    }
                    last_code = Some(n);
                }
            }
            s.decode.push(decoded_ns as i64 - frame.last_byte_ns as i64);
            if let Some(c) = clock {
                let decoded_streamer = c.client_to_streamer(decoded_ns);
                s.latency
                    .push(decoded_streamer as i64 - frame.timing.capture_ns as i64);
            }
        }
        shared.check_target();
    }
}

#[cfg(all(test, not(target_os = "android")))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use openh264::encoder::{Encoder, FrameType};
    use openh264::formats::YUVBuffer;

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use crate::decode::DecodedView;

    use super::*;

    /// A sink whose surfaces change when the test says so; it has none to give (desktops), so
    /// it counts how often a decoder asked for one.
    #[derive(Default)]
    struct ChangingSurfaces {
        generation: AtomicU64,
        asked: AtomicUsize,
        presented: AtomicUsize,
    }

    impl PictureSink for ChangingSurfaces {
        fn present(&self, _: Eye, _: &DecodedView<'_>, marker: PendingMarker) {
            self.presented.fetch_add(1, Ordering::Relaxed);
            marker.complete(None, None);
        }
        fn surface(&self, _: Eye, _: u16, _: u16) -> Option<decode::Surface> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            None
        }
        fn surface_generation(&self) -> u64 {
            self.generation.load(Ordering::Relaxed)
        }
    }

    fn encoded(n: usize) -> Vec<(Vec<u8>, bool)> {
        let mut enc = Encoder::new().unwrap();
        (0..n)
            .map(|i| {
                // Something that changes, so P-frames carry data.
                let yuv = YUVBuffer::from_vec(vec![(i * 20) as u8; 64 * 64 * 3 / 2], 64, 64);
                let bs = enc.encode(&yuv).unwrap();
                let key = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
                (bs.to_vec(), key)
            })
            .collect()
    }

    fn completed(seq: u32, (bitstream, keyframe): &(Vec<u8>, bool)) -> CompletedFrame {
        crate::testing::unit(seq, bitstream.clone(), *keyframe)
    }

    fn keyframe_requests(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<KeyframeReason> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|o| match o {
                Outgoing::Msg(ToStreamer::KeyframeRequest { reason, .. }) => Some(reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_decoder_reopens_when_the_surfaces_change_and_resumes_at_the_next_idr() {
        let frames = encoded(3);
        assert!(frames[0].1 && !frames[1].1 && !frames[2].1, "IDR, P, P");
        let sink = Arc::new(ChangingSurfaces::default());
        let shared = Shared::new(None, None);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (out, mut out_rx) = mpsc::channel(64);
        let thread = {
            let (sink, shared) = (sink.clone(), shared.clone());
            let stream = StreamInfo {
                eye: Eye::Left,
                width: 64,
                height: 64,
                fps_milli: 30_000,
                pixel_code: false,
            };
            std::thread::spawn(move || run(Eye::Left, Some(stream), rx, out, shared, sink))
        };
        let feed = |seq: u32, frame: &(Vec<u8>, bool)| {
            tx.send(completed(seq, frame)).unwrap();
            // One at a time: the generation must change between two given frames. (The
            // deadline only keeps a broken decoder from hanging the test.)
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let handled = {
                    let s = shared.eye(Eye::Left);
                    s.counts.decoded + s.counts.skipped_until_idr + s.counts.decode_errors
                };
                if handled > u64::from(seq) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "frame {seq} never handled"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        feed(0, &frames[0]);
        feed(1, &frames[1]);
        assert_eq!(sink.asked.load(Ordering::Relaxed), 1);
        // An XR session began: the decoder asks for the new surface before the next frame and
        // cannot use that P-frame (a new decoder has no reference): it asks for an IDR.
        sink.generation.store(1, Ordering::Relaxed);
        feed(2, &frames[2]);
        assert_eq!(sink.asked.load(Ordering::Relaxed), 2);
        feed(3, &frames[0]);
        drop(tx);
        thread.join().unwrap();

        let s = shared.eye(Eye::Left);
        assert_eq!(
            (
                s.counts.decoded,
                s.counts.skipped_until_idr,
                s.counts.lost,
                s.counts.decode_errors
            ),
            (3, 1, 0, 0)
        );
        drop(s);
        assert_eq!(sink.presented.load(Ordering::Relaxed), 3);
        assert_eq!(keyframe_requests(&mut out_rx), vec![KeyframeReason::Start]);
    }
}
