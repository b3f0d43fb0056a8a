//! Zero copy on the Quest: each eye's video reaches the compositor as its own OpenXR quad layer
//! (`XrCompositionLayerQuad`, `eyeVisibility` LEFT or RIGHT) whose swapchain is an Android
//! surface (XR_KHR_android_surface_swapchain) that the eye's MediaCodec decoder renders into.
//! From decoder to compositor there is no copy and no conversion by the app, and the compositor
//! samples the picture once, reprojected with the newest head pose.
//!
//! ```text
//! decoder thread: stream starts ──Mailbox::surface──▶ SurfaceSwapchains::create
//!                 (xrCreateSwapchainAndroidSurfaceKHR → Surface → NativeWindow → MediaCodec)
//!                 each picture: MediaCodec renders it ──Mailbox::rendered──▶ marker slot
//! render world:   upload.rs completes the marker with the frame's predicted display time;
//!                 end_frame asks EyeQuadLayer (one per eye) for its layer
//! ```
//!
//! Layer order: the two quads first, then bevy_mod_openxr's projection layer (the Bevy scene:
//! the HUD, and the picture of an eye still on the copy path), which is blended over them with
//! source alpha — the scene clears to transparent. An eye's Bevy quad hides while its picture is
//! in a surface ([`Route::Surface`]).
//!
//! Placement (head- or world-locked, distance, width from the client config) is the same as
//! the Bevy quads' (`eyes.rs`): pure functions here, unit-tested on every platform. The
//! swapchains, spaces and layer submission are Android-only: desktop runtimes have no Android
//! surfaces. CI type-checks and lints them for `aarch64-linux-android`; they have not run on a
//! headset yet.
#![cfg_attr(not(target_os = "android"), allow(dead_code))]

use bevy::prelude::*;
use openxr::sys;

use super::config::{Layer, Placement};

/// The quad's centre and orientation in its space, and its size in metres. Head-locked: in the
/// VIEW space, `distance_m` straight ahead. World-locked: in the app's reference space, ahead
/// of `anchor` (the head's pose when the stream first showed, yaw only; `eyes.rs`); `None`
/// until the anchor is known.
pub fn quad_placement(
    layer: &Layer,
    anchor: Option<Transform>,
    aspect: f32,
) -> Option<(sys::Posef, sys::Extent2Df)> {
    let ahead = Transform::from_xyz(0.0, 0.0, -layer.distance_m);
    let pose = match layer.placement {
        Placement::Head => ahead,
        Placement::World => anchor?.mul_transform(ahead),
    };
    let aspect = if aspect.is_finite() && aspect > 0.0 {
        aspect
    } else {
        16.0 / 9.0
    };
    Some((
        to_posef(&pose),
        sys::Extent2Df {
            width: layer.width_m,
            height: layer.width_m / aspect,
        },
    ))
}

/// A Bevy transform's translation and rotation as an OpenXR pose (both right-handed, Y up,
/// metres; the scale is dropped).
pub fn to_posef(t: &Transform) -> sys::Posef {
    let (q, p) = (t.rotation.normalize(), t.translation);
    sys::Posef {
        orientation: sys::Quaternionf {
            x: q.x,
            y: q.y,
            z: q.z,
            w: q.w,
        },
        position: sys::Vector3f {
            x: p.x,
            y: p.y,
            z: p.z,
        },
    }
}

#[cfg(target_os = "android")]
pub use android::QuadLayersPlugin;

#[cfg(target_os = "android")]
mod android {
    use std::ptr;
    use std::sync::{Arc, Mutex};

    use anyhow::{bail, Context, Result};
    use bevy::prelude::*;
    use bevy::render::RenderApp;
    use bevy_mod_openxr::layer_builder::{CompositionLayer, LayerProvider};
    use bevy_mod_openxr::resources::{OxrInstance, OxrRenderLayers, OxrSwapchain};
    use bevy_mod_openxr::session::OxrSession;
    use bevy_mod_openxr::spaces::OxrSpaceExt as _;
    use bevy_mod_xr::spaces::XrPrimaryReferenceSpace;
    use openxr::sys::{self, pfn, Handle as _};
    use shared_proto::Eye;

    use super::super::config::{Layer, Placement};
    use super::super::eyes::{EyeQuad, Scene};
    use super::super::mailbox::{lock, Mailbox, Route, SurfaceFactory};
    use super::quad_placement;
    use headset_core::decode::Surface;

    /// Installs the quad layers and, once the session runs, the surface factory. The XR mode
    /// enables XR_KHR_android_surface_swapchain on Android; a runtime without it keeps every
    /// eye on the copy path.
    pub struct QuadLayersPlugin {
        pub layer: Layer,
        pub mailbox: Arc<Mailbox>,
    }

    #[derive(Clone, Copy)]
    struct EyeSwapchain {
        handle: sys::Swapchain,
        width: u16,
        height: u16,
    }

    /// What the decoder threads (through the factory), the main world and the render world's
    /// layer providers share.
    struct QuadState {
        layer: Layer,
        mailbox: Arc<Mailbox>,
        eyes: [Mutex<Option<EyeSwapchain>>; 2],
        /// Replaced swapchains, with how many frames have begun since: destroyed once no frame
        /// being submitted can still name them.
        retired: Mutex<Vec<(sys::Swapchain, u8)>>,
        destroy: Mutex<Option<pfn::DestroySwapchain>>,
        /// The VIEW space (head-locked quads), made with the session.
        view_space: Mutex<Option<openxr::Space>>,
        /// World-locked quads: the anchor the Bevy scene fixed (`Scene::anchor`).
        anchor: Mutex<Option<Transform>>,
    }

    impl QuadState {
        fn install(&self, eye: Eye, swapchain: EyeSwapchain) {
            if let Some(old) = lock(&self.eyes[eye.index()]).replace(swapchain) {
                lock(&self.retired).push((old.handle, 0));
            }
        }

        /// Once per frame: destroys the swapchains retired two frames ago or earlier.
        fn collect_retired(&self) {
            let destroy = *lock(&self.destroy);
            lock(&self.retired).retain_mut(|(handle, frames)| {
                *frames = frames.saturating_add(1);
                if *frames < 2 {
                    return true;
                }
                if let Some(destroy) = destroy {
                    // SAFETY: the handle came from xrCreateSwapchainAndroidSurfaceKHR on this
                    // session, no layer has named it for a frame, and it is destroyed once.
                    unsafe { destroy(*handle) };
                }
                false
            });
        }

        /// The session ended: its swapchains and spaces went with it.
        fn forget_session(&self) {
            for eye in &self.eyes {
                *lock(eye) = None;
            }
            lock(&self.retired).clear();
            *lock(&self.view_space) = None;
            *lock(&self.destroy) = None;
        }
    }

    #[derive(Resource, Clone)]
    struct Quads(Arc<QuadState>);

    impl Plugin for QuadLayersPlugin {
        fn build(&self, app: &mut App) {
            let state = Arc::new(QuadState {
                layer: self.layer,
                mailbox: self.mailbox.clone(),
                eyes: Default::default(),
                retired: Mutex::new(Vec::new()),
                destroy: Mutex::new(None),
                view_space: Mutex::new(None),
                anchor: Mutex::new(None),
            });
            // Transparent where the scene draws nothing: the quads below show through.
            app.insert_resource(ClearColor(Color::NONE))
                .insert_resource(Quads(state))
                .add_systems(Update, (follow_session, hide_surface_eyes));
        }

        fn finish(&self, app: &mut App) {
            let state = app.world().resource::<Quads>().0.clone();
            let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
                return;
            };
            let Some(mut layers) = render_app.world_mut().get_resource_mut::<OxrRenderLayers>()
            else {
                tracing::warn!("no OpenXR render layers: the pictures stay on the copy path");
                return;
            };
            // Below the projection layer, which blends over them.
            for (i, eye) in Eye::BOTH.into_iter().enumerate() {
                layers.0.insert(
                    i,
                    Box::new(EyeQuadLayer {
                        eye,
                        state: state.clone(),
                    }),
                );
            }
        }
    }

    /// Installs the surface factory when a session starts and removes it when it ends; keeps
    /// the world-locked anchor in step with the Bevy scene's.
    fn follow_session(
        session: Option<Res<OxrSession>>,
        instance: Option<Res<OxrInstance>>,
        quads: Res<Quads>,
        scene: Res<Scene>,
        mut installed: Local<bool>,
    ) {
        let state = &quads.0;
        *lock(&state.anchor) = scene.anchor;
        match (session, instance, *installed) {
            (Some(session), Some(instance), false) => {
                *installed = true;
                let Some(ext) = instance.exts().khr_android_surface_swapchain else {
                    tracing::info!(
                        "the OpenXR runtime has no XR_KHR_android_surface_swapchain: pictures \
                         are copied into the eye textures"
                    );
                    return;
                };
                // openxr's own call (bevy_mod_openxr's wraps the space for Bevy's transforms).
                let xr: &openxr::Session<openxr::AnyGraphics> = &session;
                match xr.create_reference_space(
                    openxr::ReferenceSpaceType::VIEW,
                    openxr::Posef::IDENTITY,
                ) {
                    Ok(space) => *lock(&state.view_space) = Some(space),
                    Err(e) => {
                        tracing::warn!("no VIEW space ({e}): pictures are copied instead");
                        return;
                    }
                }
                *lock(&state.destroy) = Some(instance.fp().destroy_swapchain);
                let factory = SurfaceSwapchains {
                    session: xr.clone(),
                    create: ext.create_swapchain_android_surface,
                    state: state.clone(),
                };
                state.mailbox.set_surface_factory(Some(Arc::new(factory)));
                tracing::info!("zero copy: each eye decodes into its own quad layer's surface");
            }
            (None, _, true) => {
                *installed = false;
                state.mailbox.set_surface_factory(None);
                state.forget_session();
            }
            _ => {}
        }
    }

    /// An eye whose picture is in its quad layer's surface hides its Bevy quad (the copy path's).
    fn hide_surface_eyes(quads: Res<Quads>, mut eyes: Query<(&EyeQuad, &mut Visibility)>) {
        for (eye, mut visibility) in &mut eyes {
            let want = if quads.0.mailbox.route(eye.0) == Route::Surface {
                Visibility::Hidden
            } else {
                Visibility::Inherited
            };
            if *visibility != want {
                *visibility = want;
            }
        }
    }

    /// Makes each eye's Android-surface swapchain when its stream starts (on that eye's decoder
    /// thread).
    struct SurfaceSwapchains {
        session: openxr::Session<openxr::AnyGraphics>,
        create: pfn::CreateSwapchainAndroidSurfaceKHR,
        state: Arc<QuadState>,
    }

    impl SurfaceFactory for SurfaceSwapchains {
        fn create(&self, eye: Eye, width: u16, height: u16) -> Result<Surface> {
            let ctx = ndk_context::android_context();
            // SAFETY: android-activity put the process's JavaVM into the NDK context.
            let vm = unsafe { jni::JavaVM::from_raw(ctx.vm().cast()) }
                .context("no Java VM in the Android context")?;
            // The decoder thread stays attached until it ends (jni detaches it then).
            let env = vm
                .attach_current_thread_permanently()
                .context("attaching the decoder thread to the Java VM")?;
            // An Android-surface swapchain takes its format and usage from the producer
            // (MediaCodec); the size is a hint the producer may change.
            let info = sys::SwapchainCreateInfo {
                ty: sys::SwapchainCreateInfo::TYPE,
                next: ptr::null(),
                create_flags: sys::SwapchainCreateFlags::EMPTY,
                usage_flags: sys::SwapchainUsageFlags::SAMPLED,
                format: 0,
                sample_count: 1,
                width: width.into(),
                height: height.into(),
                face_count: 1,
                array_size: 1,
                mip_count: 1,
            };
            let mut handle = sys::Swapchain::NULL;
            let mut surface: sys::platform::jobject = ptr::null_mut();
            // SAFETY: a live session of the instance the function was loaded from; the
            // out-pointers are valid; this thread is attached to the VM (the surface is a JNI
            // reference valid on it).
            let result =
                unsafe { (self.create)(self.session.as_raw(), &info, &mut handle, &mut surface) };
            if result != sys::Result::SUCCESS {
                bail!("xrCreateSwapchainAndroidSurfaceKHR failed: {result:?}");
            }
            // SAFETY: `env` is this thread's JNIEnv and `surface` the android.view.Surface the
            // runtime just returned; the NativeWindow holds its own reference.
            let window = unsafe { Surface::from_surface(env.get_raw().cast(), surface.cast()) };
            let Some(window) = window else {
                // SAFETY: made above, named by no layer yet.
                unsafe { (self.session.instance().fp().destroy_swapchain)(handle) };
                bail!("the swapchain's Surface has no native window");
            };
            tracing::info!(%eye, width, height, "decoding into the eye's quad-layer surface");
            self.state.install(
                eye,
                EyeSwapchain {
                    handle,
                    width,
                    height,
                },
            );
            Ok(window)
        }
    }

    /// One eye's quad layer, asked for by bevy_mod_openxr's `end_frame` (render world).
    struct EyeQuadLayer {
        eye: Eye,
        state: Arc<QuadState>,
    }

    impl LayerProvider for EyeQuadLayer {
        fn get<'a>(&'a self, world: &'a World) -> Option<Box<dyn CompositionLayer<'a> + 'a>> {
            let state = &self.state;
            if self.eye == Eye::Left {
                state.collect_retired();
            }
            if state.mailbox.route(self.eye) != Route::Surface {
                return None;
            }
            let swapchain = (*lock(&state.eyes[self.eye.index()]))?;
            let aspect = f32::from(swapchain.width) / f32::from(swapchain.height.max(1));
            let (pose, size) = quad_placement(&state.layer, *lock(&state.anchor), aspect)?;
            let space = match state.layer.placement {
                Placement::Head => lock(&state.view_space).as_ref()?.as_raw(),
                Placement::World => world
                    .get_resource::<XrPrimaryReferenceSpace>()?
                    .as_raw_openxr_space(),
            };
            let eye_visibility = match self.eye {
                Eye::Left => sys::EyeVisibility::LEFT,
                Eye::Right => sys::EyeVisibility::RIGHT,
            };
            Some(Box::new(QuadLayer(sys::CompositionLayerQuad {
                ty: sys::CompositionLayerQuad::TYPE,
                next: ptr::null(),
                layer_flags: sys::CompositionLayerFlags::EMPTY,
                space,
                eye_visibility,
                sub_image: sys::SwapchainSubImage {
                    swapchain: swapchain.handle,
                    image_rect: sys::Rect2Di {
                        offset: sys::Offset2Di { x: 0, y: 0 },
                        extent: sys::Extent2Di {
                            width: swapchain.width.into(),
                            height: swapchain.height.into(),
                        },
                    },
                    image_array_index: 0,
                },
                pose,
                size,
            })))
        }
    }

    struct QuadLayer(sys::CompositionLayerQuad);

    // SAFETY: the header is the start of a repr(C) XrCompositionLayerQuad, a composition layer
    // struct of the OpenXR specification; its swapchain is not an `OxrSwapchain` (no graphics
    // API to check: the producer is a Surface).
    unsafe impl<'a> CompositionLayer<'a> for QuadLayer {
        fn swapchain(&self) -> Option<&'a OxrSwapchain> {
            None
        }

        fn header(&self) -> &sys::CompositionLayerBaseHeader {
            // SAFETY: XrCompositionLayerQuad begins with XrCompositionLayerBaseHeader's fields
            // (type, next, layerFlags, space), both repr(C).
            unsafe { &*(&self.0 as *const sys::CompositionLayerQuad).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(placement: Placement) -> Layer {
        Layer {
            placement,
            distance_m: 1.5,
            width_m: 2.0,
            zero_copy: true,
        }
    }

    #[test]
    fn head_locked_quad_is_straight_ahead_in_view_space() {
        let (pose, size) = quad_placement(&layer(Placement::Head), None, 16.0 / 9.0).unwrap();
        assert_eq!(
            (pose.position.x, pose.position.y, pose.position.z),
            (0.0, 0.0, -1.5)
        );
        assert_eq!(pose.orientation.w, 1.0);
        assert_eq!(size.width, 2.0);
        assert!((size.height - 1.125).abs() < 1e-6);
    }

    #[test]
    fn world_locked_quad_waits_for_the_anchor_then_sits_ahead_of_it() {
        let l = layer(Placement::World);
        assert!(quad_placement(&l, None, 1.0).is_none());
        // Standing at (1, 1.6, 0), facing +X (yaw −90°): the quad is 1.5 m along +X.
        let anchor = Transform::from_xyz(1.0, 1.6, 0.0).looking_to(Vec3::X, Vec3::Y);
        let (pose, size) = quad_placement(&l, Some(anchor), 2.0).unwrap();
        let p = pose.position;
        assert!((p.x - 2.5).abs() < 1e-5 && (p.y - 1.6).abs() < 1e-5 && p.z.abs() < 1e-5);
        // The quad faces the viewer: its +Z (normal) points back along −X.
        let q = pose.orientation;
        let normal = Quat::from_xyzw(q.x, q.y, q.z, q.w) * Vec3::Z;
        assert!((normal - Vec3::NEG_X).length() < 1e-5, "{normal}");
        assert_eq!((size.width, size.height), (2.0, 1.0));
    }

    #[test]
    fn a_degenerate_aspect_falls_back_to_16_9() {
        for aspect in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let (_, size) = quad_placement(&layer(Placement::Head), None, aspect).unwrap();
            assert!((size.height - 1.125).abs() < 1e-6, "{aspect}");
        }
    }

    #[test]
    fn poses_carry_rotation_and_translation_but_not_scale() {
        let t = Transform::from_xyz(1.0, 2.0, 3.0)
            .with_rotation(Quat::from_rotation_y(0.5))
            .with_scale(Vec3::splat(4.0));
        let p = to_posef(&t);
        let q = Quat::from_rotation_y(0.5);
        assert_eq!((p.position.x, p.position.y, p.position.z), (1.0, 2.0, 3.0));
        assert!((p.orientation.y - q.y).abs() < 1e-6 && (p.orientation.w - q.w).abs() < 1e-6);
    }
}
