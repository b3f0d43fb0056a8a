//! The hand-over between the decoder threads and the frame loop: one slot per eye holding the
//! newest decoded picture (as three YUV planes, converted to RGB by the GPU). A newer picture
//! replaces an unshown older one (its marker then reports it as superseded), so the display can
//! never show an older frame after a newer one, and nothing queues.
//!
//! Zero copy (the Quest): once the XR shell has installed a [`SurfaceFactory`], each eye's
//! decoder renders into a surface the factory makes (an OpenXR swapchain's, shown by the eye's
//! quad layer) and only the picture's marker comes through here, newest wins likewise.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use shared_proto::Eye;

use super::yuv::{self, Planes};
use headset_core::decode::{DecodedView, Surface};
use headset_core::{PendingMarker, PictureSink};

/// Makes the surface an eye's decoder renders into. Called on that eye's decoder thread when a
/// stream starts; an error falls back to handing pictures over (one copy into the eye texture).
pub trait SurfaceFactory: Send + Sync {
    fn create(&self, eye: Eye, width: u16, height: u16) -> anyhow::Result<Surface>;
}

/// Where an eye's pictures go (`Mailbox::route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Route {
    /// Handed over as planes and uploaded into the eye's textures (every platform).
    Planes = 0,
    /// Rendered into a surface, none yet.
    SurfaceEmpty = 1,
    /// Rendered into a surface that holds a picture.
    Surface = 2,
}

pub struct Picture {
    pub planes: Planes,
    pub marker: PendingMarker,
}

#[derive(Default)]
pub struct Mailbox {
    slots: [Mutex<Option<Picture>>; 2],
    /// Buffers back from the upload, reused by the decoder threads (no allocation per frame).
    spare: [Mutex<Vec<Planes>>; 2],
    /// The newest picture's size per eye, `width << 32 | height` (0: none yet).
    sizes: [AtomicU64; 2],
    /// Pictures handed over, per eye.
    delivered: [AtomicU64; 2],
    /// Markers of pictures rendered into a surface, with when: the newest per eye.
    rendered: [Mutex<Option<(PendingMarker, u64)>>; 2],
    surfaces: Mutex<Option<Arc<dyn SurfaceFactory>>>,
    /// `Route` per eye, as its `u8`.
    routes: [AtomicU8; 2],
    /// Bumped by every `set_surface_factory` (`PictureSink::surface_generation`).
    surface_generation: AtomicU64,
}

impl Mailbox {
    /// Takes the newest picture of `eye`, if a new one arrived since the last take.
    pub fn take(&self, eye: Eye) -> Option<Picture> {
        lock(&self.slots[eye.index()]).take()
    }

    /// Returns a picture the display could not use yet (e.g. its texture is being resized),
    /// unless a newer one arrived meanwhile.
    pub fn put_back(&self, eye: Eye, picture: Picture) {
        let mut slot = lock(&self.slots[eye.index()]);
        if slot.is_none() {
            *slot = Some(picture);
        }
    }

    /// Gives an uploaded picture's buffers back for reuse.
    pub fn recycle(&self, eye: Eye, buffer: Planes) {
        let mut spare = lock(&self.spare[eye.index()]);
        if spare.len() < 2 {
            spare.push(buffer);
        }
    }

    /// Size of the newest picture of `eye`.
    pub fn size(&self, eye: Eye) -> Option<(u32, u32)> {
        let s = self.sizes[eye.index()].load(Ordering::Relaxed);
        (s != 0).then_some(((s >> 32) as u32, s as u32))
    }

    pub fn delivered(&self, eye: Eye) -> u64 {
        self.delivered[eye.index()].load(Ordering::Relaxed)
    }

    /// From now on, streams that start decode into surfaces from `factory` (None: stop).
    /// Running decoders reopen on their next frame.
    pub fn set_surface_factory(&self, factory: Option<Arc<dyn SurfaceFactory>>) {
        *lock(&self.surfaces) = factory;
        self.surface_generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Where `eye`'s pictures currently go.
    pub fn route(&self, eye: Eye) -> Route {
        match self.routes[eye.index()].load(Ordering::Relaxed) {
            0 => Route::Planes,
            1 => Route::SurfaceEmpty,
            _ => Route::Surface,
        }
    }

    fn set_route(&self, eye: Eye, route: Route) {
        self.routes[eye.index()].store(route as u8, Ordering::Relaxed);
    }

    fn set_size(&self, eye: Eye, width: u32, height: u32) {
        self.sizes[eye.index()].store(
            u64::from(width) << 32 | u64::from(height),
            Ordering::Relaxed,
        );
    }

    /// Takes the marker of the newest picture rendered into `eye`'s surface since the last
    /// take, with when it was rendered.
    pub fn take_rendered(&self, eye: Eye) -> Option<(PendingMarker, u64)> {
        lock(&self.rendered[eye.index()]).take()
    }
}

impl PictureSink for Mailbox {
    fn present(&self, eye: Eye, picture: &DecodedView<'_>, marker: PendingMarker) {
        let mut planes = lock(&self.spare[eye.index()]).pop().unwrap_or_default();
        yuv::to_planes(picture, &mut planes);
        self.set_size(eye, planes.width, planes.height);
        let new = Picture { planes, marker };
        // The replaced picture (if any) is dropped outside the lock: its marker goes out as
        // "not shown" and its buffer back to the spares.
        let old = lock(&self.slots[eye.index()]).replace(new);
        self.delivered[eye.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(old) = old {
            self.recycle(eye, old.planes);
        }
        self.set_route(eye, Route::Planes);
    }

    fn surface(&self, eye: Eye, width: u16, height: u16) -> Option<Surface> {
        let factory = lock(&self.surfaces).clone()?;
        match factory.create(eye, width, height) {
            Ok(surface) => {
                self.set_size(eye, width.into(), height.into());
                self.set_route(eye, Route::SurfaceEmpty);
                Some(surface)
            }
            Err(e) => {
                tracing::warn!(%eye, "no surface to decode into, copying pictures instead: {e:#}");
                None
            }
        }
    }

    fn surface_generation(&self) -> u64 {
        self.surface_generation.load(Ordering::Relaxed)
    }

    fn rendered(&self, eye: Eye, rendered_ns: u64, marker: PendingMarker) {
        // The one replaced (if any) was overwritten in the surface before a frame showed it.
        let old = lock(&self.rendered[eye.index()]).replace((marker, rendered_ns));
        self.set_route(eye, Route::Surface);
        self.delivered[eye.index()].fetch_add(1, Ordering::Relaxed);
        drop(old);
    }
}

/// Locks `m`, taking over a lock whose holder panicked (the data here stays consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use headset_core::Shared;

    struct Failing;

    impl SurfaceFactory for Failing {
        fn create(&self, _: Eye, _: u16, _: u16) -> anyhow::Result<Surface> {
            anyhow::bail!("no surface here")
        }
    }

    #[test]
    fn without_a_working_factory_pictures_are_handed_over() {
        let mailbox = Mailbox::default();
        assert!(mailbox.surface(Eye::Left, 640, 360).is_none());
        mailbox.set_surface_factory(Some(Arc::new(Failing)));
        assert!(mailbox.surface(Eye::Left, 640, 360).is_none());
        assert_eq!(mailbox.route(Eye::Left), Route::Planes);
        assert_eq!(mailbox.size(Eye::Left), None);
    }

    #[test]
    fn rendered_pictures_keep_only_the_newest_marker_per_eye() {
        let shared = Shared::new(None, None);
        let mailbox = Mailbox::default();
        let (first, mut first_sent) = PendingMarker::for_test(Eye::Right, 1, &shared);
        let (second, mut second_sent) = PendingMarker::for_test(Eye::Right, 2, &shared);
        mailbox.rendered(Eye::Right, 100, first);
        assert_eq!(mailbox.route(Eye::Right), Route::Surface);
        assert_eq!(mailbox.route(Eye::Left), Route::Planes);
        mailbox.rendered(Eye::Right, 200, second);
        // Frame 1 was overwritten in the surface before any frame showed it: sent as not shown.
        let sent = first_sent.drain();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].frame_no, sent[0].presented_ns), (1, None));
        assert_eq!(shared.report().eyes.right.counts.superseded, 1);

        let (marker, rendered_ns) = mailbox.take_rendered(Eye::Right).unwrap();
        assert_eq!((marker.frame_no(), rendered_ns), (2, 200));
        assert!(mailbox.take_rendered(Eye::Right).is_none());
        assert!(mailbox.take_rendered(Eye::Left).is_none());
        marker.complete(Some(rendered_ns), Some(250));
        let sent = second_sent.drain();
        assert_eq!(
            (sent[0].presented_ns, sent[0].display_ns),
            (Some(200), Some(250))
        );
        assert_eq!(mailbox.delivered(Eye::Right), 2);
    }
}
