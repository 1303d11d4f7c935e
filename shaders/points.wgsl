// Point-cloud renderer: every point is a screen-aligned quad expanded in the vertex shader from
// vertex_index (6 vertices per point, no vertex buffers), drawn as an anti-aliased disc.
// Positions and colours live in storage buffers; `order` lists the points to draw, back to
// front (selected points last, so they are drawn on top; hidden points are left out).

struct View {
    // data -> clip: clip = (p - center) * scale
    center: vec2<f32>,
    scale: vec2<f32>,
    // viewport size in physical pixels, point diameter in physical pixels
    viewport: vec2<f32>,
    point_size: f32,
    // 1.0 when a selection exists: unselected points are dimmed
    dim_unselected: f32,
    // alpha multiplier of every point (spots over an image), 0..1
    opacity: f32,
    // 1.0: draw each point as a ring (its outline), so what lies under it shows
    outline: f32,
    pad: vec2<f32>,
};

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> positions: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> colors: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> selected: array<u32>;

struct VsOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) color: vec4<f32>,
    // offset from the point's centre in physical pixels, and the disc radius
    @location(1) local: vec2<f32>,
    @location(2) radius: f32,
};

fn corner(i: u32) -> vec2<f32> {
    // two triangles: (-1,-1) (1,-1) (1,1) / (-1,-1) (1,1) (-1,1)
    var c = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0)
    );
    return c[i];
}

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> VsOut {
    let idx = order[vi / 6u];
    let k = corner(vi % 6u);
    let is_sel = (selected[idx / 32u] >> (idx % 32u)) & 1u;
    var radius = view.point_size * 0.5;
    if (is_sel == 1u) {
        radius = radius * 1.5;
    }
    // the quad reaches one pixel beyond the disc for the anti-aliased rim
    let reach = radius + 1.0;
    let center = (positions[idx] - view.center) * view.scale;
    var out: VsOut;
    out.clip = vec4<f32>(center + k * reach / view.viewport * 2.0, 0.0, 1.0);
    out.local = k * reach;
    out.radius = radius;
    let c = colors[idx];
    var rgba = vec4<f32>(
        f32(c & 0xffu), f32((c >> 8u) & 0xffu), f32((c >> 16u) & 0xffu), f32((c >> 24u) & 0xffu)
    ) / 255.0;
    if (view.dim_unselected > 0.5 && is_sel == 0u) {
        rgba = vec4<f32>(mix(rgba.rgb, vec3<f32>(0.8, 0.8, 0.8), 0.75), rgba.a * 0.6);
    }
    out.color = rgba;
    return out;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let d = length(in.local);
    // one-pixel anti-aliased edge
    let coverage = clamp(in.radius + 0.5 - d, 0.0, 1.0);
    if (coverage <= 0.0) {
        discard;
    }
    // a ring: also cut away the inside, leaving an anti-aliased band of width `w`
    var ring = 1.0;
    if (view.outline > 0.5) {
        let w = max(1.5, in.radius * 0.15);
        ring = clamp(d - (in.radius - w) + 0.5, 0.0, 1.0);
        if (ring <= 0.0) {
            discard;
        }
    }
    // premultiplied alpha, as egui's render pass blends
    let a = in.color.a * coverage * ring * view.opacity;
    return vec4<f32>(in.color.rgb * a, a);
}
