//! The quads' materials: the eye pictures straight from their YUV planes ([`YuvPicture`]:
//! the YUV → RGB conversion in the fragment shader) and the HUD's RGBA ([`RgbaPicture`]).
//! Both are one texture lookup per fragment with no lighting: `StandardMaterial { unlit }`
//! still runs Bevy's PBR fragment shader, which on Mesa's lavapipe took 90 ms per 640x360
//! eye view (docs/performance.md, "The desktop frame loop").

use bevy::asset::uuid_handle;
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;

const YUV_SHADER: Handle<Shader> = uuid_handle!("6f0b3c2e-5d1a-4c57-9a86-2b7e4f1d0c93");
const RGBA_SHADER: Handle<Shader> = uuid_handle!("0d5e8a41-7b2c-4f39-8e61-c3a9d2f47b15");

/// An eye's picture: its Y, U and V planes (R8 textures; U and V at half size).
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct YuvPicture {
    #[texture(0)]
    #[sampler(1)]
    pub y: Handle<Image>,
    #[texture(2)]
    pub u: Handle<Image>,
    #[texture(3)]
    pub v: Handle<Image>,
}

impl Material for YuvPicture {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(YUV_SHADER)
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }
}

/// An RGBA picture, alpha-blended (the HUD over the eye's picture).
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct RgbaPicture {
    #[texture(0)]
    #[sampler(1)]
    pub texture: Handle<Image>,
}

impl Material for RgbaPicture {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(RGBA_SHADER)
    }

    fn alpha_mode(&self) -> AlphaMode {
        AlphaMode::Blend
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }
}

pub struct PicturePlugin;

impl Plugin for PicturePlugin {
    fn build(&self, app: &mut App) {
        let mut shaders = app.world_mut().resource_mut::<Assets<Shader>>();
        for (handle, source, path) in [
            (
                &YUV_SHADER,
                include_str!("yuv_picture.wgsl"),
                "quest_client/yuv_picture.wgsl",
            ),
            (
                &RGBA_SHADER,
                include_str!("rgba_picture.wgsl"),
                "quest_client/rgba_picture.wgsl",
            ),
        ] {
            // Never fails for UUID handles.
            let _ = shaders.insert(handle, Shader::from_wgsl(source, path));
        }
        app.add_plugins((
            MaterialPlugin::<YuvPicture>::default(),
            MaterialPlugin::<RgbaPicture>::default(),
        ));
    }
}
