// A decoded picture on its eye's quad, straight from its YUV planes: BT.601 limited range
// (what the encoders write) to R'G'B', then to linear light for the sRGB render target.
// `luma_of_rgba` (yuv.rs) inverts it for grey, to read the pixel code back from a view.
#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var plane_y: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var plane_sampler: sampler;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var plane_u: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(3) var plane_v: texture_2d<f32>;

// sRGB → linear, exact (a cheap polynomial fit was up to 5 code values off in the shadows).
fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fragment(mesh: VertexOutput) -> @location(0) vec4<f32> {
    let y = (textureSample(plane_y, plane_sampler, mesh.uv).r * 255.0 - 16.0) * (255.0 / 219.0);
    let u = (textureSample(plane_u, plane_sampler, mesh.uv).r * 255.0 - 128.0) * (255.0 / 224.0);
    let v = (textureSample(plane_v, plane_sampler, mesh.uv).r * 255.0 - 128.0) * (255.0 / 224.0);
    let rgb = vec3<f32>(
        y + 1.402 * v,
        y - 0.344136 * u - 0.714136 * v,
        y + 1.772 * u,
    ) / 255.0;
    return vec4<f32>(to_linear(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0))), 1.0);
}
