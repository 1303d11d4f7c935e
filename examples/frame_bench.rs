//! Frame-time benchmark of the point renderer and of the UI while a job runs.
//!
//! ```text
//! cargo run --release --example frame_bench -- 100000 1000000 10000000
//! cargo run --release --example frame_bench -- --job ../shared/data/merfish_hypothalamus_animal1.h5ad
//! cargo run --release --example frame_bench -- --direct 1000000 10000000
//! cargo run --release --example frame_bench -- --gene 1000000
//! ```
//!
//! Panning: one view of N generated points (40 Gaussian blobs), the camera moved every frame;
//! each frame is laid out, tessellated, drawn with wgpu (lavapipe without a GPU) and read back
//! (egui_kittest's renderer; the read-back of 1400 x 820 pixels is included, so these are upper
//! bounds). `--job`: the explorer opens a dataset and runs the pipeline on the worker while the
//! UI keeps drawing; reports the median and 95th percentile of the UI frame (egui pass, no GPU).
//! `--gene N`: a generated dataset of N cells is opened and coloured by a gene; reports how long
//! the colouring takes (what a frame took when it ran on the UI thread) and the UI frame times
//! while the worker's views thread computes it.
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use std::sync::Arc;
use std::time::Instant;

use cellscope::analysis::Rng;
use cellscope::render::points::{PointData, pack};
use cellscope::ui::app::CellscopeApp;
use cellscope::ui::view::PointView;
use egui_kittest::Harness;

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// N points in 40 Gaussian blobs, coloured by blob.
fn blobs(n: usize) -> PointData {
    let mut rng = Rng::new(1);
    let centres: Vec<[f32; 2]> = (0..40)
        .map(|_| [(rng.normal() * 10.0) as f32, (rng.normal() * 10.0) as f32])
        .collect();
    let positions: Vec<[f32; 2]> = (0..n)
        .map(|i| {
            let c = centres[i % 40];
            [c[0] + rng.normal() as f32, c[1] + rng.normal() as f32]
        })
        .collect();
    let pal = cellscope::render::colors::categorical(20, None);
    PointData {
        positions: Arc::new(positions),
        colors: Arc::new((0..n).map(|i| pack(pal[i % 20])).collect()),
        order: Arc::new((0..n as u32).collect()),
        selected: Arc::new(vec![0u32; n.div_ceil(32)]),
        generation: 1,
    }
}

fn pan(n: usize) {
    let data = blobs(n);
    let rs = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        Default::default(),
    );
    let format = rs.target_format;
    let adapter = rs.adapter.get_info();
    let mut view = PointView::new(7, "bench", Vec::new(), false, None);
    view.positions = data.positions.clone();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 820.0))
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
        .build_ui(move |ui| {
            let rect = ui.max_rect();
            if let Some(c) = view.camera.as_mut() {
                c.pan(egui::vec2(3.0, 1.0));
            }
            view.show(ui, rect, &data, false, Some(format), Default::default());
        });
    let _ = h.render(); // first frame uploads the buffers
    let mut times = Vec::new();
    for _ in 0..if n >= 5_000_000 { 5 } else { 20 } {
        let t = Instant::now();
        h.step();
        let _ = h.render().expect("render");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let med = pct(&mut times.clone(), 0.5);
    println!(
        "{n:>10} points: median {med:8.1} ms/frame, p95 {:8.1} ms ({} {:?})",
        pct(&mut times, 0.95),
        adapter.name,
        adapter.device_type
    );
}

/// The point renderer alone (no egui pass, no read-back): N points drawn into a 1400 x 820
/// texture with the camera panned every frame, waiting for the GPU without a timeout (lavapipe
/// needs about 10 s per frame at 10 M points, beyond egui_kittest's 10 s poll limit).
fn direct(n: usize) {
    use cellscope::render::points::{PointsCallback, ViewUniform};
    use eframe::egui_wgpu::{CallbackResources, CallbackTrait, ScreenDescriptor};
    let data = blobs(n);
    let rs = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        Default::default(),
    );
    let (device, queue, format) = (&rs.device, &rs.queue, rs.target_format);
    let (w, h) = (1400u32, 820u32);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench target"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let screen = ScreenDescriptor {
        size_in_pixels: [w, h],
        pixels_per_point: 1.0,
    };
    let mut resources = CallbackResources::default();
    let mut uniform = ViewUniform {
        center: [0.0, 0.0],
        scale: [2.0 / 60.0, 2.0 / 60.0 * w as f32 / h as f32],
        viewport: [w as f32, h as f32],
        point_size: 1.5,
        dim_unselected: 0.0,
        opacity: 1.0,
        outline: 0.0,
        pad: [0.0; 2],
    };
    let mut times = Vec::new();
    for frame in 0..4 {
        uniform.center[0] += 0.05;
        let cb = PointsCallback {
            view_id: 7,
            data: data.clone(),
            uniform,
            format,
        };
        let t = Instant::now();
        let mut encoder = device.create_command_encoder(&Default::default());
        let _ = cb.prepare(device, queue, &screen, &mut encoder, &mut resources);
        {
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("bench points"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &view,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::WHITE),
                            store: wgpu::StoreOp::Store,
                        },
                        depth_slice: None,
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            let rect = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(w as f32, h as f32));
            cb.paint(
                egui::PaintCallbackInfo {
                    viewport: rect,
                    clip_rect: rect,
                    pixels_per_point: 1.0,
                    screen_size_px: [w, h],
                },
                &mut pass,
                &resources,
            );
        }
        queue.submit(Some(encoder.finish()));
        device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .expect("GPU finished");
        if frame > 0 {
            // the first frame uploads the buffers
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let info = rs.adapter.get_info();
    println!(
        "{n:>10} points, renderer only: median {:8.1} ms/frame ({} {:?})",
        pct(&mut times, 0.5),
        info.name,
        info.device_type
    );
}

fn job(path: &str) {
    let ctx = egui::Context::default();
    let app = CellscopeApp::new(&ctx, Some(path.into()));
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 820.0))
        .build_ui_state(|ui, app: &mut CellscopeApp| app.frame(ui, None), app);
    let mut times = Vec::new();
    let t0 = Instant::now();
    while !h.state().analyzed() && t0.elapsed().as_secs() < 600 {
        let t = Instant::now();
        h.step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(std::time::Duration::from_millis(8));
    }
    let n = times.len();
    println!(
        "UI frames while opening {path} and running the pipeline ({:.1} s): {n} frames, median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        t0.elapsed().as_secs_f64(),
        pct(&mut times.clone(), 0.5),
        pct(&mut times.clone(), 0.95),
        pct(&mut times, 1.0)
    );
}

/// A generated dataset of `n` cells x 200 genes (about 20 counts per cell, 10 clusters, spatial
/// coordinates on a grid), written to `dir` with cellscope's writer.
fn generated_h5ad(n: usize, dir: &std::path::Path) -> std::path::PathBuf {
    use cellscope::data::{AnnData, Column, CsrMatrix, DataFrame, Matrix, MatrixEncoding};
    let genes = 200;
    let mut rng = Rng::new(7);
    let mut indptr = vec![0u64];
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let mut row: Vec<u32> = (0..20).map(|_| rng.below(genes) as u32).collect();
        row.sort_unstable();
        row.dedup();
        for j in row {
            indices.push(j);
            data.push(1.0 + rng.below(5) as f32);
        }
        indptr.push(indices.len() as u64);
    }
    let nnz = indices.len() as u64;
    let x = CsrMatrix {
        n_rows: n,
        n_cols: genes,
        indptr,
        indices,
        data,
    };
    let side = (n as f64).sqrt().ceil() as usize;
    let spatial = ndarray::Array2::from_shape_fn((n, 2), |(i, k)| {
        if k == 0 {
            (i % side) as f64
        } else {
            (i / side) as f64
        }
    });
    let clusters: Vec<String> = (0..n).map(|i| format!("c{}", i % 10)).collect();
    let adata = AnnData {
        source: dir.join("generated.h5ad"),
        obs: DataFrame {
            index: (0..n).map(|i| format!("cell{i}")).collect(),
            columns: vec![("cluster".into(), Column::categorical_from_labels(&clusters))],
        },
        var: DataFrame {
            index: (0..genes).map(|g| format!("G{g}")).collect(),
            columns: Vec::new(),
        },
        x: Matrix::Csr(x),
        x_loaded: true,
        x_info: cellscope::data::MatrixInfo {
            path: "X".into(),
            encoding: MatrixEncoding::Csr,
            dtype: "float32".into(),
            shape: (n, genes),
            stored: nnz,
        },
        obsm: [("spatial".to_string(), spatial)].into_iter().collect(),
        layers: Vec::new(),
        raw: None,
        uns_colors: Default::default(),
        imputed_genes: Vec::new(),
        spatial_units: None,
    };
    let out = dir.join(format!("cells_{n}.h5ad"));
    cellscope::data::write::write_h5ad(&adata, &Default::default(), &out).unwrap();
    out
}

/// Colouring a dataset of `n` cells by a gene: the computation alone (what a frame took when
/// it ran on the UI thread), then the window's frames while the views thread computes it.
fn gene(n: usize) {
    use cellscope::pipeline::jobs::coloring::{ColorBy, ColorInputs, color};
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let path = generated_h5ad(n, dir.path());
    println!("generated {n} cells in {:.1} s", t.elapsed().as_secs_f64());
    let data = Arc::new(cellscope::data::open(&path).unwrap());
    let inputs = ColorInputs {
        data,
        analysis: None,
        prediction: None,
    };
    let by = ColorBy::Gene("G7".into());
    let mut blocking: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let c = color(&by, &inputs);
            assert_eq!(c.colors.len(), n);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let ctx = egui::Context::default();
    let mut app = CellscopeApp::new(&ctx, None);
    app.auto_analyze = false;
    app.open(path);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 820.0))
        .build_ui_state(|ui, app: &mut CellscopeApp| app.frame(ui, None), app);
    let t0 = Instant::now();
    while (h.state().data().is_none() || h.state().views_pending()) && t0.elapsed().as_secs() < 300
    {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(8));
    }
    h.run_steps(3);
    let mut rounds = Vec::new();
    for g in ["G7", "G11", "G42"] {
        h.state_mut().set_color_by(ColorBy::Gene(g.into()));
        let (mut times, t0) = (Vec::new(), Instant::now());
        loop {
            let t = Instant::now();
            h.step();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if !h.state().views_pending() || t0.elapsed().as_secs() > 120 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(8));
        }
        let arrived = t0.elapsed().as_secs_f64() * 1e3;
        // The frame that takes the colouring rebuilds the draw buffers (order, selection bits).
        let take = times.pop().unwrap_or(0.0);
        rounds.push((arrived, times, take));
    }
    println!(
        "{n} cells: colouring by a gene takes {:.0} ms (median of 3): a frozen frame when it ran on the UI thread",
        pct(&mut blocking, 0.5)
    );
    for (arrived, mut times, take) in rounds {
        println!(
            "  off the UI thread: colouring shown after {arrived:.0} ms; {} frames meanwhile, median {:.2} ms, max {:.2} ms; the frame taking it (buffers rebuilt) {take:.1} ms",
            times.len(),
            if times.is_empty() {
                0.0
            } else {
                pct(&mut times.clone(), 0.5)
            },
            if times.is_empty() {
                0.0
            } else {
                pct(&mut times, 1.0)
            },
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--direct") {
        for a in &args[1..] {
            direct(a.parse().expect("N"));
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--gene") {
        gene(args.get(1).map_or(1_000_000, |a| a.parse().expect("N")));
        return;
    }
    if args.first().map(String::as_str) == Some("--job") {
        job(args
            .get(1)
            .map(String::as_str)
            .unwrap_or("../shared/data/merfish_hypothalamus_animal1.h5ad"));
        return;
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        args.iter().map(|a| a.parse().expect("N")).collect()
    };
    for n in sizes {
        pan(n);
    }
}
