//! Where decoded pictures go: the [`PictureSink`] a display implements, and the
//! [`PendingMarker`] each picture carries until the display knows when it was shown.

use std::sync::Arc;

use shared_proto::wire::{FrameMarker, ToStreamer};
use shared_proto::Eye;
use tokio::sync::mpsc;

use crate::decode::{self, DecodedView};
use crate::session::Outgoing;
use crate::stats::Shared;

/// What the client displays a decoded picture with. The headless core only reads the pixel
/// code; the XR and desktop shells hand the picture to their eye layer here.
pub trait PictureSink: Send + Sync {
    /// Called on the eye's decoder thread for every decoded picture. The sink completes the
    /// frame's `marker` once it knows when the picture went to the display and when it was (or
    /// will be) displayed; a marker dropped uncompleted reports the picture as never shown
    /// (a newer one replaced it first).
    fn present(&self, eye: Eye, picture: &DecodedView<'_>, marker: PendingMarker);

    /// Called on the eye's decoder thread when a stream of `width`x`height` starts: a surface
    /// to decode into instead of handing pictures to [`PictureSink::present`] (zero copy: the
    /// Quest's OpenXR Android-surface swapchains). `None` (the default): pictures come through
    /// `present`.
    fn surface(&self, _eye: Eye, _width: u16, _height: u16) -> Option<decode::Surface> {
        None
    }

    /// Changes whenever the surfaces [`PictureSink::surface`] would give change (the Quest: an
    /// XR session began or ended). A decoder opened under another generation is reopened, so a
    /// stream that started before the session renders into its surface from the next IDR, and
    /// none keeps rendering into a surface whose session is gone.
    fn surface_generation(&self) -> u64 {
        0
    }

    /// With a surface: the picture of `marker` was rendered into it at `rendered_ns`. The sink
    /// completes the marker once it knows the display time.
    fn rendered(&self, _eye: Eye, rendered_ns: u64, marker: PendingMarker) {
        marker.complete(Some(rendered_ns), None);
    }
}

/// The headless sink: nothing is displayed; markers go back at once.
pub struct Headless;

impl PictureSink for Headless {
    fn present(&self, _eye: Eye, _picture: &DecodedView<'_>, marker: PendingMarker) {
        marker.complete(None, None);
    }
}

/// A decoded frame's timestamp marker, waiting for the display path to fill in when the picture
/// was uploaded and displayed. Completing it (or dropping it) sends it to the streamer and
/// records the client's own display-side statistics.
pub struct PendingMarker {
    pub(crate) marker: Option<FrameMarker>,
    pub(crate) capture_ns: u64,
    pub(crate) out: mpsc::Sender<Outgoing>,
    pub(crate) shared: Arc<Shared>,
}

impl PendingMarker {
    pub fn eye(&self) -> Eye {
        self.marker.as_ref().map_or(Eye::Left, |m| m.eye)
    }

    /// The frame number the streamer announced for this picture.
    pub fn frame_no(&self) -> u64 {
        self.marker.as_ref().map_or(0, |m| m.frame_no)
    }

    /// The picture went to the display path at `presented_ns` and is displayed at
    /// `display_ns` (both on this client's monotonic clock).
    pub fn complete(mut self, presented_ns: Option<u64>, display_ns: Option<u64>) {
        self.send(presented_ns, display_ns);
    }

    fn send(&mut self, presented_ns: Option<u64>, display_ns: Option<u64>) {
        let Some(mut m) = self.marker.take() else {
            return;
        };
        m.presented_ns = presented_ns;
        m.display_ns = display_ns;
        {
            let clock = self.shared.clock();
            let mut s = self.shared.eye(m.eye);
            if let Some(p) = presented_ns {
                s.upload.push(p as i64 - m.decoded_ns as i64);
                if let Some(d) = display_ns {
                    s.counts.shown += 1;
                    s.display.push(d as i64 - p as i64);
                    if let Some(c) = clock {
                        s.glass_to_glass
                            .push(c.client_to_streamer(d) as i64 - self.capture_ns as i64);
                    }
                }
            }
        }
        let _ = self.out.try_send(Outgoing::Msg(ToStreamer::Marker(m)));
    }
}

/// Markers made by [`PendingMarker::for_test`], as they were sent back.
pub struct SentMarkers(mpsc::Receiver<Outgoing>);

impl SentMarkers {
    /// The markers sent so far, in order.
    pub fn drain(&mut self) -> Vec<FrameMarker> {
        std::iter::from_fn(|| self.0.try_recv().ok())
            .filter_map(|o| match o {
                Outgoing::Msg(ToStreamer::Marker(m)) => Some(m),
                _ => None,
            })
            .collect()
    }
}

impl PendingMarker {
    /// A marker for frame `frame_no` of `eye`, recorded in `shared` once completed, its sent
    /// form readable from [`SentMarkers`]: for tests of display paths (no session needed).
    pub fn for_test(eye: Eye, frame_no: u64, shared: &Arc<Shared>) -> (Self, SentMarkers) {
        let (out, rx) = mpsc::channel(16);
        let marker = PendingMarker {
            marker: Some(FrameMarker {
                eye,
                seq: frame_no as u32,
                frame_no,
                pixel_code: None,
                first_byte_ns: 1,
                last_byte_ns: 2,
                decoded_ns: 3,
                presented_ns: None,
                display_ns: None,
            }),
            capture_ns: 0,
            out,
            shared: shared.clone(),
        };
        (marker, SentMarkers(rx))
    }
}

impl Drop for PendingMarker {
    fn drop(&mut self) {
        if let Some(m) = &self.marker {
            self.shared.eye(m.eye).counts.superseded += 1;
            self.send(None, None);
        }
    }
}
