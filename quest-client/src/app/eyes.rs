//! The eye layers: each eye's picture is a textured quad on its own render layer, and each
//! eye's camera sees only its layer (plus the HUD's), so the left stream can reach the left
//! eye only. The same scene serves every mode; only the cameras differ:
//! XR — bevy_mod_openxr's two view cameras; desktop — two cameras side by side in a window;
//! offscreen — two cameras rendering into images.

use bevy::asset::RenderAssetUsages;
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{ImageRenderTarget, RenderTarget, Viewport};
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::image::Image;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::view::Msaa;
use bevy::window::PrimaryWindow;
use bevy_mod_xr::camera::XrCamera;
use bevy_mod_xr::session::XrTracker;
use shared_proto::Eye;

use super::config::{Layer, Placement};
use super::hud::{HudQuad, HUD_PIXELS};
use super::picture::YuvPicture;
use super::stream::StreamState;
use super::yuv::chroma_size;
use super::Mode;

/// Render layers: one per eye, one for the HUD (seen by both).
pub const HUD_LAYER: usize = 3;

pub fn eye_layer(eye: Eye) -> usize {
    1 + eye.index()
}

/// What an eye's camera sees: its own picture and the HUD.
pub fn camera_layers(eye: Eye) -> RenderLayers {
    RenderLayers::from_layers(&[eye_layer(eye), HUD_LAYER])
}

#[derive(Component, Clone, Copy)]
pub struct EyeQuad(pub Eye);

#[derive(Component, Clone, Copy)]
pub struct EyeCamera(pub Eye);

/// The eyes' textures (what the decoder's pictures are uploaded into: per eye its Y, U and V
/// planes) and their materials.
#[derive(Resource, Clone)]
pub struct EyeImages {
    pub planes: [[Handle<Image>; 3]; 2],
    pub materials: [Handle<YuvPicture>; 2],
    /// The offscreen views' render targets (offscreen mode only).
    pub views: Option<[Handle<Image>; 2]>,
}

#[derive(Resource, Clone, Copy)]
pub struct Scene {
    pub mode_xr: bool,
    pub layer: Layer,
    pub view_size: (u32, u32),
    /// World-locked placement, fixed on the first head pose.
    pub anchor: Option<Transform>,
}

pub struct EyesPlugin {
    pub mode: Mode,
    pub layer: Layer,
    pub view_size: (u32, u32),
}

impl Plugin for EyesPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Scene {
            mode_xr: self.mode == Mode::Xr,
            layer: self.layer,
            view_size: self.view_size,
            anchor: None,
        })
        .add_systems(Startup, spawn_eye_quads)
        .add_systems(
            PostUpdate,
            (fit_eye_textures, place_quads).before(TransformSystems::Propagate),
        );
        match self.mode {
            Mode::Xr => {
                app.add_systems(PreUpdate, configure_xr_cameras);
            }
            Mode::Desktop => {
                app.add_systems(Startup, spawn_flat_cameras::<false>.after(spawn_eye_quads))
                    .add_systems(PostUpdate, desktop_viewports);
            }
            Mode::Offscreen { .. } => {
                app.add_systems(Startup, spawn_flat_cameras::<true>.after(spawn_eye_quads));
            }
        }
    }
}

/// An eye's plane texture: 8-bit, filled with `fill` (Y 16 and U, V 128: black), written by
/// the upload each frame.
fn plane_texture(width: u32, height: u32, fill: u8) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[fill],
        TextureFormat::R8Unorm,
        RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
    );
    image.texture_descriptor.usage = TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST;
    image
}

/// The Y, U and V plane textures of a `width` x `height` picture.
fn eye_planes(width: u32, height: u32) -> [Image; 3] {
    let (cw, ch) = chroma_size(width, height);
    [
        plane_texture(width, height, 16),
        plane_texture(cw, ch, 128),
        plane_texture(cw, ch, 128),
    ]
}

fn spawn_eye_quads(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<YuvPicture>>,
    scene: Res<Scene>,
) {
    let quad = meshes.add(Rectangle::new(1.0, 1.0));
    let (w, h) = scene.view_size;
    let mut handles = Vec::new();
    let mut mats = Vec::new();
    for eye in Eye::BOTH {
        let planes = eye_planes(w, h).map(|p| images.add(p));
        let material = materials.add(YuvPicture {
            y: planes[0].clone(),
            u: planes[1].clone(),
            v: planes[2].clone(),
        });
        let mut e = commands.spawn((
            EyeQuad(eye),
            Mesh3d(quad.clone()),
            MeshMaterial3d(material.clone()),
            Transform::default(),
            RenderLayers::layer(eye_layer(eye)),
        ));
        if scene.mode_xr {
            e.insert(XrTracker);
        }
        handles.push(planes);
        mats.push(material);
    }
    let planes: [[Handle<Image>; 3]; 2] = handles.try_into().expect("two eyes");
    let materials: [Handle<YuvPicture>; 2] = mats.try_into().expect("two eyes");
    commands.insert_resource(EyeImages {
        planes,
        materials,
        views: None,
    });
}

/// The vertical field of view that shows the whole picture (`aspect` = its width / height) at
/// `distance`, in a view of `view_aspect`.
pub fn fitting_fov(layer: &Layer, aspect: f32, view_aspect: f32) -> f32 {
    let half_w = layer.width_m / 2.0;
    let half_h = half_w / aspect;
    let needed_half_h = half_h.max(half_w / view_aspect);
    2.0 * (needed_half_h / layer.distance_m).atan()
}

/// `own_target`: the camera has its render target to itself (offscreen) and clears it; in a
/// shared window only the first camera clears, so the right half keeps what the left drew.
fn flat_camera(eye: Eye, order: isize, own_target: bool, scene: &Scene) -> impl Bundle {
    let (w, h) = scene.view_size;
    let view_aspect = w as f32 / h as f32;
    (
        EyeCamera(eye),
        Camera3d::default(),
        Camera {
            order,
            clear_color: if own_target || order == 0 {
                ClearColorConfig::Custom(Color::BLACK)
            } else {
                ClearColorConfig::None
            },
            ..default()
        },
        Projection::Perspective(PerspectiveProjection {
            fov: fitting_fov(&scene.layer, view_aspect, view_aspect),
            aspect_ratio: view_aspect,
            ..default()
        }),
        Tonemapping::None,
        Msaa::Off,
        Transform::default(),
        camera_layers(eye),
    )
}

fn spawn_flat_cameras<const OFFSCREEN: bool>(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut eye_images: ResMut<EyeImages>,
    scene: Res<Scene>,
) {
    let (w, h) = scene.view_size;
    let mut views = Vec::new();
    for eye in Eye::BOTH {
        let order = eye.index() as isize;
        let mut cam = commands.spawn(flat_camera(eye, order, OFFSCREEN, &scene));
        if OFFSCREEN {
            let mut target = Image::new_target_texture(w, h, TextureFormat::Rgba8UnormSrgb, None);
            target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
            let handle = images.add(target);
            cam.insert(RenderTarget::Image(ImageRenderTarget::from(handle.clone())));
            views.push(handle);
        }
    }
    if OFFSCREEN {
        eye_images.views = Some(views.try_into().expect("two eyes"));
    }
}

/// Desktop: the left eye in the left half of the window, the right eye in the right half.
fn desktop_viewports(
    windows: Query<&Window, With<PrimaryWindow>>,
    mut cameras: Query<(&EyeCamera, &mut Camera, &mut Projection)>,
    scene: Res<Scene>,
    state: Res<StreamState>,
) {
    let Ok(window) = windows.single() else { return };
    let size = window.physical_size();
    let half = UVec2::new((size.x / 2).max(1), size.y.max(1));
    let view_aspect = half.x as f32 / half.y as f32;
    for (eye, mut camera, mut projection) in &mut cameras {
        let viewport = Viewport {
            physical_position: UVec2::new(half.x * eye.0.index() as u32, 0),
            physical_size: half,
            depth: 0.0..1.0,
        };
        let same = camera.viewport.as_ref().is_some_and(|v| {
            v.physical_position == viewport.physical_position
                && v.physical_size == viewport.physical_size
        });
        if !same {
            camera.viewport = Some(viewport);
        }
        let aspect = stream_aspect(&state, eye.0).unwrap_or(view_aspect);
        let fov = fitting_fov(&scene.layer, aspect, view_aspect);
        if let Projection::Perspective(p) = &mut *projection {
            if (p.fov - fov).abs() > 1e-4 || (p.aspect_ratio - view_aspect).abs() > 1e-4 {
                p.fov = fov;
                p.aspect_ratio = view_aspect;
            }
        }
    }
}

fn stream_aspect(state: &StreamState, eye: Eye) -> Option<f32> {
    state
        .mailbox
        .size(eye)
        .map(|(w, h)| w as f32 / h.max(1) as f32)
}

/// Gives an eye new plane textures of the stream's picture size when it differs, and points
/// its material (and the upload, through [`EyeImages`]) at them.
///
/// New assets, not new contents under the old handles: the material's bind group is made
/// again only once the new textures exist on the GPU. Replacing the images in place let it be
/// rebuilt in the same frame around the old, black ones while the upload wrote the new ones
/// (every stream of another size than the view showed black).
fn fit_eye_textures(
    state: Res<StreamState>,
    mut eye_images: ResMut<EyeImages>,
    mut images: ResMut<Assets<Image>>,
    mut materials: ResMut<Assets<YuvPicture>>,
) {
    for eye in Eye::BOTH {
        let Some((w, h)) = state.mailbox.size(eye) else {
            continue;
        };
        let same = images
            .get(&eye_images.planes[eye.index()][0])
            .is_some_and(|i| i.width() == w && i.height() == h);
        if same {
            continue;
        }
        tracing::info!(%eye, "stream picture {w}x{h}: eye textures resized");
        let planes = eye_planes(w, h).map(|p| images.add(p));
        if let Some(mut m) = materials.get_mut(&eye_images.materials[eye.index()]) {
            m.y = planes[0].clone();
            m.u = planes[1].clone();
            m.v = planes[2].clone();
        }
        let old = std::mem::replace(&mut eye_images.planes[eye.index()], planes);
        for h in old {
            images.remove(&h);
        }
    }
}

/// Places each eye's quad: in front of its camera in the flat modes; in XR in front of the
/// head (head-locked) or where the head looked first (world-locked).
/// The three disjoint sets of transforms `place_quads` reads or writes.
type QuadOnly = (Without<XrCamera>, Without<HudQuad>);
type HudOnly = (With<HudQuad>, Without<XrCamera>, Without<EyeQuad>);
type CameraOnly = (Without<EyeQuad>, Without<HudQuad>);

fn place_quads(
    mut scene: ResMut<Scene>,
    state: Res<StreamState>,
    mut quads: Query<(&EyeQuad, &mut Transform), QuadOnly>,
    mut huds: Query<&mut Transform, HudOnly>,
    xr_cameras: Query<(&XrCamera, &Transform), CameraOnly>,
) {
    let layer = scene.layer;
    let head_pose = if scene.mode_xr {
        let poses: Vec<&Transform> = xr_cameras.iter().map(|(_, t)| t).collect();
        if poses.len() < 2 {
            return;
        }
        Transform {
            translation: (poses[0].translation + poses[1].translation) / 2.0,
            rotation: poses[0].rotation,
            scale: Vec3::ONE,
        }
    } else {
        Transform::default()
    };
    let head = match (scene.mode_xr, layer.placement) {
        (true, Placement::World) => *scene.anchor.get_or_insert_with(|| {
            // Upright, facing where the head looked first (yaw only).
            let fwd = head_pose
                .forward()
                .as_vec3()
                .with_y(0.0)
                .normalize_or(Vec3::NEG_Z);
            Transform::from_translation(head_pose.translation).looking_to(fwd, Vec3::Y)
        }),
        _ => head_pose,
    };
    for (quad, mut t) in &mut quads {
        let aspect = stream_aspect(&state, quad.0).unwrap_or(16.0 / 9.0);
        let local = Transform::from_xyz(0.0, 0.0, -layer.distance_m).with_scale(Vec3::new(
            layer.width_m,
            layer.width_m / aspect,
            1.0,
        ));
        let placed = head.mul_transform(local);
        if *t != placed {
            *t = placed;
        }
    }
    // The HUD: bottom left of the picture, just in front of it, always with the head.
    let aspect = stream_aspect(&state, Eye::Left).unwrap_or(16.0 / 9.0);
    let (qw, qh) = (layer.width_m, layer.width_m / aspect);
    let hud_w = 0.5 * qw;
    let hud_h = hud_w * HUD_PIXELS.1 as f32 / HUD_PIXELS.0 as f32;
    let margin = 0.02 * qw;
    let local = Transform::from_xyz(
        -qw / 2.0 + margin + hud_w / 2.0,
        -qh / 2.0 + margin + hud_h / 2.0,
        -0.98 * layer.distance_m,
    )
    .with_scale(Vec3::new(hud_w * 0.98, hud_h * 0.98, 1.0));
    let placed = head_pose.mul_transform(local);
    for mut t in &mut huds {
        if *t != placed {
            *t = placed;
        }
    }
}

/// XR: bevy_mod_openxr spawns one camera per view; view 0 is the left eye.
fn configure_xr_cameras(
    mut commands: Commands,
    cameras: Query<(Entity, &XrCamera), Without<EyeCamera>>,
) {
    for (entity, cam) in &cameras {
        let eye = if cam.0 == 0 { Eye::Left } else { Eye::Right };
        commands.entity(entity).insert((
            EyeCamera(eye),
            camera_layers(eye),
            Tonemapping::None,
            Msaa::Off,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fitted_view_shows_the_whole_picture() {
        let layer = Layer::default();
        // Same aspect: the picture fills the view exactly (vertical half-angle = atan(h/2/d)).
        let fov = fitting_fov(&layer, 16.0 / 9.0, 16.0 / 9.0);
        let half_h = layer.width_m / 2.0 / (16.0 / 9.0);
        assert!((fov / 2.0 - (half_h / layer.distance_m).atan()).abs() < 1e-6);
        // A 4:3 picture in a 16:9 view: height decides; in a 1:1 view: width decides.
        let tall = fitting_fov(&layer, 4.0 / 3.0, 16.0 / 9.0);
        assert!(tall > fov);
        let square_view = fitting_fov(&layer, 16.0 / 9.0, 1.0);
        assert!((square_view / 2.0 - (1.0f32 / 1.5).atan()).abs() < 1e-6);
    }

    #[test]
    fn each_eye_camera_sees_its_own_picture_and_the_hud_only() {
        for eye in Eye::BOTH {
            let cam = camera_layers(eye);
            assert!(cam.intersects(&RenderLayers::layer(eye_layer(eye))));
            assert!(!cam.intersects(&RenderLayers::layer(eye_layer(eye.other()))));
            assert!(cam.intersects(&RenderLayers::layer(HUD_LAYER)));
        }
    }
}
