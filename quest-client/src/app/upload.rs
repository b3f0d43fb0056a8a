//! The upload, in the render world: just before the frame renders, each eye's newest decoded
//! picture is written into its Y, U and V textures (a `write_texture` each, no main-world
//! copy; the fragment shader converts to RGB); once the
//! frame is displayed, the pictures' markers are completed with the display time. A picture
//! the decoder rendered into its eye's quad-layer surface (zero copy, the Quest) needs no
//! upload: its marker is completed the same way, "uploaded" being when it was rendered.
//!
//! Display time: XR — the frame's predicted display time from `xrWaitFrame`, moved from the
//! runtime's `XrTime` epoch onto `CLOCK_MONOTONIC` (the markers' clock) with
//! XR_KHR_convert_timespec_time (Monado's `XrTime` is not `CLOCK_MONOTONIC`: without the
//! conversion every display time fell before its upload); desktop and
//! offscreen — when the GPU has finished the frame that presented it (the compositor's
//! scan-out adds up to one refresh on top; it is not visible from here).

use std::sync::Arc;

use bevy::prelude::*;
use bevy::render::extract_resource::{ExtractResource, ExtractResourcePlugin};
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{Extent3d, PollType, TexelCopyBufferLayout};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy_mod_openxr::resources::{OxrFrameState, OxrInstance};
use shared_proto::Eye;

use super::eyes::EyeImages;
use super::mailbox::Mailbox;
use super::stream::StreamState;
use binoc_net::os_clock::monotonic_ns;
use headset_core::PendingMarker;

#[derive(Resource, Clone, ExtractResource)]
struct UploadTargets {
    planes: [[Handle<Image>; 3]; 2],
    mailbox: Arc<Mailbox>,
}

/// Pictures uploaded for the frame being rendered, with their upload time.
#[derive(Resource, Default)]
struct InFlight(Vec<(PendingMarker, u64)>);

pub struct UploadPlugin {
    pub xr: bool,
}

#[derive(Resource, Clone, Copy)]
struct XrDisplay(bool);

impl Plugin for UploadPlugin {
    fn build(&self, app: &mut App) {
        // The upload writes into the eyes' current plane textures: named again whenever they
        // are replaced (a stream of another size).
        app.add_plugins(ExtractResourcePlugin::<UploadTargets>::default())
            .add_systems(PostStartup, insert_targets)
            .add_systems(Update, insert_targets.run_if(resource_changed::<EyeImages>));
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .insert_resource(XrDisplay(self.xr))
            .init_resource::<InFlight>()
            .add_systems(
                Render,
                (
                    upload_newest.in_set(RenderSystems::PrepareResources),
                    complete_displayed.in_set(RenderSystems::Cleanup),
                ),
            );
    }
}

fn insert_targets(mut commands: Commands, eyes: Res<EyeImages>, state: Res<StreamState>) {
    commands.insert_resource(UploadTargets {
        planes: eyes.planes.clone(),
        mailbox: state.mailbox.clone(),
    });
}

fn upload_newest(
    targets: Option<Res<UploadTargets>>,
    gpu_images: Res<RenderAssets<GpuImage>>,
    queue: Res<RenderQueue>,
    mut in_flight: ResMut<InFlight>,
) {
    let Some(targets) = targets else { return };
    for eye in Eye::BOTH {
        // Zero copy (the Quest): the decoder already rendered the picture into the eye's quad
        // layer surface; only its marker waits for this frame's display time.
        if let Some(rendered) = targets.mailbox.take_rendered(eye) {
            in_flight.0.push(rendered);
        }
        let Some(picture) = targets.mailbox.take(eye) else {
            continue;
        };
        let p = &picture.planes;
        let (cw, ch) = p.chroma_size();
        let planes = [(&p.y, p.width, p.height), (&p.u, cw, ch), (&p.v, cw, ch)];
        let textures: Option<Vec<&GpuImage>> = targets.planes[eye.index()]
            .iter()
            .zip(&planes)
            .map(|(handle, &(_, w, h))| {
                gpu_images.get(handle).filter(|gpu| {
                    let size = gpu.texture_descriptor.size;
                    (size.width, size.height) == (w, h)
                })
            })
            .collect();
        let Some(textures) = textures else {
            // Not prepared yet, or the main world resizes them on its next update.
            targets.mailbox.put_back(eye, picture);
            continue;
        };
        for (gpu, &(data, w, h)) in textures.iter().zip(&planes) {
            queue.write_texture(
                gpu.texture.as_image_copy(),
                data,
                TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(w),
                    rows_per_image: None,
                },
                Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
        }
        in_flight.0.push((picture.marker, monotonic_ns()));
        targets.mailbox.recycle(eye, picture.planes);
    }
}

fn complete_displayed(
    mut in_flight: ResMut<InFlight>,
    xr: Res<XrDisplay>,
    frame: Option<Res<OxrFrameState>>,
    instance: Option<Res<OxrInstance>>,
    device: Res<RenderDevice>,
) {
    if in_flight.0.is_empty() {
        return;
    }
    let display_ns = match (xr.0, frame) {
        (true, Some(f)) => {
            let predicted = f.predicted_display_time.as_nanos();
            match instance.as_deref().and_then(xr_time_offset_ns) {
                Some(offset) => predicted.saturating_sub(offset).max(0) as u64,
                // No conversion (runtime without the extension): the markers carry no display
                // time rather than a time on the wrong clock.
                None => {
                    for (marker, uploaded_ns) in in_flight.0.drain(..) {
                        marker.complete(Some(uploaded_ns), None);
                    }
                    return;
                }
            }
        }
        _ => {
            // The frame was submitted (and presented) in the render step: wait for the GPU.
            if let Err(e) = device.poll(PollType::wait_indefinitely()) {
                tracing::debug!("GPU poll: {e}");
            }
            monotonic_ns()
        }
    };
    for (marker, uploaded_ns) in in_flight.0.drain(..) {
        marker.complete(Some(uploaded_ns), Some(display_ns.max(uploaded_ns)));
    }
}

/// `XrTime − CLOCK_MONOTONIC` now, in ns, if the runtime converts timespecs
/// (XR_KHR_convert_timespec_time); `None` otherwise.
fn xr_time_offset_ns(instance: &OxrInstance) -> Option<i64> {
    #[cfg(unix)]
    {
        instance.exts().khr_convert_timespec_time.as_ref()?;
        let before = monotonic_ns();
        let xr_now = instance.now().ok()?.as_nanos();
        let after = monotonic_ns();
        Some(xr_now - ((before / 2 + after / 2) as i64))
    }
    #[cfg(not(unix))]
    {
        let _ = instance;
        None
    }
}
