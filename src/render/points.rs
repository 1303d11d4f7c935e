//! GPU point clouds inside egui: an `egui_wgpu` paint callback that draws every point as an
//! anti-aliased disc (shaders/points.wgsl) with one draw call. Positions, colours, draw order and
//! the selection bitset live in storage buffers that are uploaded only when their generation
//! changes; per frame only the small view uniform is written.

use std::collections::HashMap;
use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;

/// The WGSL source of the point shader.
pub const SHADER: &str = include_str!("../../shaders/points.wgsl");

/// CPU-side data of one point cloud, shared with the paint callback by `Arc`.
#[derive(Debug, Clone, Default)]
pub struct PointData {
    /// Positions in data units, one `[x, y]` per point.
    pub positions: Arc<Vec<[f32; 2]>>,
    /// Colours as packed RGBA8 (`r | g << 8 | b << 16 | a << 24`), one per point.
    pub colors: Arc<Vec<u32>>,
    /// Points to draw, back to front (hidden points omitted, selected last).
    pub order: Arc<Vec<u32>>,
    /// Selection bitset, `ceil(n / 32)` words (at least one).
    pub selected: Arc<Vec<u32>>,
    /// Changes whenever any of the above changes (triggers an upload).
    pub generation: u64,
}

/// The view transform and style for one frame.
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct ViewUniform {
    /// Data coordinates at the centre of the view.
    pub center: [f32; 2],
    /// Data → clip scale per axis (negative y flips).
    pub scale: [f32; 2],
    /// Viewport size in physical pixels.
    pub viewport: [f32; 2],
    /// Point diameter in physical pixels.
    pub point_size: f32,
    /// 1 when unselected points are dimmed.
    pub dim_unselected: f32,
    /// Alpha multiplier of every point, 0..1.
    pub opacity: f32,
    /// 1 to draw points as rings (outlines).
    pub outline: f32,
    /// Padding to the shader's 16-byte layout.
    pub pad: [f32; 2],
}

/// The paint callback for one view.
pub struct PointsCallback {
    /// Which view (each has its own GPU buffers).
    pub view_id: u64,
    /// The points.
    pub data: PointData,
    /// This frame's transform.
    pub uniform: ViewUniform,
    /// Render target format (from eframe's render state).
    pub format: wgpu::TextureFormat,
}

struct ViewBuffers {
    generation: u64,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    n_draw: u32,
}

struct PointRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    views: HashMap<u64, ViewBuffers>,
}

impl PointRenderer {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cellscope points"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let storage = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: true },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("cellscope points"),
            entries: &[
                // The fragment stage reads the opacity and the outline flag.
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1),
                storage(2),
                storage(3),
                storage(4),
            ],
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cellscope points"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("cellscope points"),
            layout: Some(&pl),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: Default::default(),
            },
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: Default::default(),
            }),
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            multiview_mask: None,
            cache: None,
        });
        PointRenderer {
            pipeline,
            layout,
            views: HashMap::new(),
        }
    }

    fn upload(
        &self,
        device: &wgpu::Device,
        data: &PointData,
        uniform: &ViewUniform,
    ) -> ViewBuffers {
        let mk = |label: &str, bytes: &[u8], usage| {
            // wgpu rejects empty buffers: keep at least one element.
            let pad = [0u8; 8];
            let contents = if bytes.is_empty() { &pad[..] } else { bytes };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let uni = mk(
            "view",
            bytemuck::bytes_of(uniform),
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let pos = mk(
            "positions",
            bytemuck::cast_slice(data.positions.as_slice()),
            wgpu::BufferUsages::STORAGE,
        );
        let col = mk(
            "colors",
            bytemuck::cast_slice(data.colors.as_slice()),
            wgpu::BufferUsages::STORAGE,
        );
        let ord = mk(
            "order",
            bytemuck::cast_slice(data.order.as_slice()),
            wgpu::BufferUsages::STORAGE,
        );
        let sel = mk(
            "selected",
            bytemuck::cast_slice(data.selected.as_slice()),
            wgpu::BufferUsages::STORAGE,
        );
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cellscope points"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uni.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: pos.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: col.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: ord.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: sel.as_entire_binding(),
                },
            ],
        });
        ViewBuffers {
            generation: data.generation,
            uniform: uni,
            bind_group,
            n_draw: data.order.len() as u32,
        }
    }
}

impl CallbackTrait for PointsCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if resources.get::<PointRenderer>().is_none() {
            resources.insert(PointRenderer::new(device, self.format));
        }
        let r: &mut PointRenderer = resources.get_mut().expect("point renderer");
        let stale = r
            .views
            .get(&self.view_id)
            .is_none_or(|v| v.generation != self.data.generation);
        if stale {
            let vb = r.upload(device, &self.data, &self.uniform);
            r.views.insert(self.view_id, vb);
        } else if let Some(v) = r.views.get(&self.view_id) {
            queue.write_buffer(&v.uniform, 0, bytemuck::bytes_of(&self.uniform));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(r) = resources.get::<PointRenderer>() else {
            return;
        };
        let Some(v) = r.views.get(&self.view_id) else {
            return;
        };
        if v.n_draw == 0 {
            return;
        }
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, &v.bind_group, &[]);
        pass.draw(0..v.n_draw * 6, 0..1);
    }
}

/// Wraps a [`PointsCallback`] as an egui paint callback covering `rect`.
pub fn paint_callback(rect: egui::Rect, cb: PointsCallback) -> egui::PaintCallback {
    egui_wgpu::Callback::new_paint_callback(rect, cb)
}

/// Packs an egui colour (premultiplied is not used: straight RGBA) into the shader's RGBA8.
pub fn pack(c: egui::Color32) -> u32 {
    let [r, g, b, a] = c.to_srgba_unmultiplied();
    u32::from(r) | u32::from(g) << 8 | u32::from(b) << 16 | u32::from(a) << 24
}

#[cfg(test)]
mod tests {
    #[test]
    fn shader_validates_with_naga() {
        let module = naga::front::wgsl::parse_str(super::SHADER).expect("WGSL parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("WGSL validates");
    }
}
