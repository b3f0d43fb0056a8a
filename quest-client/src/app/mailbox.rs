//! The hand-over between the decoder threads and the frame loop: one slot per eye holding the
//! newest decoded picture (as three YUV planes, converted to RGB by the GPU). A newer picture replaces an unshown older one (its marker
//! then reports it as superseded), so the display can never show an older frame after a newer
//! one, and nothing queues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use shared_proto::Eye;

use super::yuv::{self, Planes};
use crate::core::{PendingMarker, PictureSink};
use crate::decode::DecodedView;

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
}

impl PictureSink for Mailbox {
    fn present(&self, eye: Eye, picture: &DecodedView<'_>, marker: PendingMarker) {
        let mut planes = lock(&self.spare[eye.index()]).pop().unwrap_or_default();
        yuv::to_planes(picture, &mut planes);
        let (width, height) = (planes.width, planes.height);
        self.sizes[eye.index()].store(
            u64::from(width) << 32 | u64::from(height),
            Ordering::Relaxed,
        );
        let new = Picture { planes, marker };
        // The replaced picture (if any) is dropped outside the lock: its marker goes out as
        // "not shown" and its buffer back to the spares.
        let old = lock(&self.slots[eye.index()]).replace(new);
        self.delivered[eye.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(old) = old {
            self.recycle(eye, old.planes);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
