//! The explorer under egui_kittest with the wgpu renderer (lavapipe on machines without a GPU):
//! a snapshot of both views on the embedded dataset, and interactions driven through
//! accessibility labels and pointer events with pixel checks.
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use crate::common;

use cellscope::model::hub::Hub;
use cellscope::ui::app::{CellscopeApp, ColorBy};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness() -> Harness<'static, CellscopeApp> {
    harness_for(cellscope::ui::default_dataset())
}

fn harness_for(path: std::path::PathBuf) -> Harness<'static, CellscopeApp> {
    harness_with_hub(path, Hub::from_env())
}

fn harness_with_hub(path: std::path::PathBuf, hub: Hub) -> Harness<'static, CellscopeApp> {
    let rs = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        Default::default(),
    );
    let format = rs.target_format;
    let renderer = egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs);
    let ctx = egui::Context::default();
    let app = CellscopeApp::with_hub(&ctx, Some(path), hub);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 820.0))
        .renderer(renderer)
        .build_ui_state(
            move |ui, app: &mut CellscopeApp| app.frame(ui, Some(format)),
            app,
        );
    // Wait for the worker: open + pipeline (tests run in parallel on few cores: be patient).
    wait_until(&mut h, 180, |h| h.state().analyzed());
    assert!(h.state().analyzed(), "pipeline did not finish");
    settle(&mut h);
    h
}

/// Steps the harness until the colouring and the metrics asked for have arrived from the
/// worker's views thread (at most 60 s), then a few frames more to draw them.
fn settle(h: &mut Harness<'static, CellscopeApp>) {
    h.run_steps(2);
    wait_until(h, 60, |h| !h.state().views_pending());
    h.run_steps(3);
}

/// Steps the harness until `done` holds or `seconds` pass (the worker runs in the background).
fn wait_until(
    h: &mut Harness<'static, CellscopeApp>,
    seconds: u64,
    mut done: impl FnMut(&mut Harness<'static, CellscopeApp>) -> bool,
) {
    let t0 = std::time::Instant::now();
    while !done(h) && t0.elapsed().as_secs() < seconds {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Scrolls the mouse wheel (zoom in) with the pointer at `at`, then lets the smooth scroll
/// finish.
fn wheel_zoom(h: &mut Harness<'static, CellscopeApp>, at: egui::Pos2) {
    h.hover_at(at);
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 240.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Default::default(),
    });
    h.run_steps(12);
}

/// Pixels within a small distance of `c` inside `rect` (points).
fn count_color(img: &image::RgbaImage, rect: egui::Rect, c: egui::Color32, ppp: f32) -> usize {
    let mut n = 0;
    let (x0, y0) = ((rect.min.x * ppp) as u32, (rect.min.y * ppp) as u32);
    let (x1, y1) = (
        ((rect.max.x * ppp) as u32).min(img.width()),
        ((rect.max.y * ppp) as u32).min(img.height()),
    );
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y).0;
            let d = (p[0] as i32 - c.r() as i32).abs()
                + (p[1] as i32 - c.g() as i32).abs()
                + (p[2] as i32 - c.b() as i32).abs();
            if d <= 12 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn snapshot_of_both_views_on_the_default_dataset() {
    let mut h = harness();
    h.snapshot("explorer_default");
    let img = h.render().expect("render");
    let (emb, _, _) = h.state().view_geometry(0).expect("embedding view");
    let (spa, _, _) = h.state().view_geometry(1).expect("spatial view");
    // Both views show coloured points (not blank): count pixels of the first legend colour.
    let first = h.state().legend_items()[0].color;
    assert!(
        count_color(&img, emb, first, 1.0) > 50,
        "embedding view shows points"
    );
    assert!(
        count_color(&img, spa, first, 1.0) > 50,
        "spatial view shows points"
    );
}

#[test]
fn legend_click_hides_a_category() {
    let mut h = harness();
    h.state_mut().set_color_by(ColorBy::Obs("cluster".into()));
    settle(&mut h);
    let item = h.state().legend_items()[0].clone();
    let (spa, _, _) = h.state().view_geometry(1).unwrap();
    let before = count_color(&h.render().unwrap(), spa, item.color, 1.0);
    assert!(
        before > 100,
        "category {} visible before ({before} px)",
        item.name
    );
    // Hovering a cell of that category shows its tooltip; once hidden, it does not.
    let (rect, cam, pos) = {
        let (r, c, p) = h.state().view_geometry(1).unwrap();
        (r, c, p.to_vec())
    };
    let cluster = h
        .state()
        .data()
        .unwrap()
        .obs
        .column("cluster")
        .unwrap()
        .clone();
    let i = (0..pos.len())
        .find(|&i| cluster.value_string(i) == item.name)
        .unwrap();
    let at = cam.to_screen(rect, [pos[i][0] as f64, pos[i][1] as f64]);
    h.hover_at(at);
    h.run_steps(2);
    assert!(
        h.query_by_label_contains(&format!("cluster: {}", item.name))
            .is_some(),
        "tooltip for a visible cell"
    );
    h.get_by_label(&format!("{}  ({})", item.name, item.count))
        .click();
    h.run_steps(3);
    h.hover_at(at);
    h.run_steps(2);
    assert!(
        h.query_by_label_contains(&format!("cluster: {}", item.name))
            .is_none(),
        "no tooltip for a hidden cell"
    );
    let after = count_color(&h.render().unwrap(), spa, item.color, 1.0);
    println!("category {} pixels: {before} -> {after}", item.name);
    assert!(
        after * 20 < before,
        "hidden category still drawn ({after} px)"
    );
}

#[test]
fn box_selection_selects_and_highlights_in_the_other_view() {
    let mut h = harness();
    let (rect, cam, pos) = {
        let (r, c, p) = h.state().view_geometry(1).unwrap();
        (r, c, p.to_vec())
    };
    let a = rect.center() - egui::vec2(120.0, 100.0);
    let b = rect.center() + egui::vec2(60.0, 80.0);
    let sel = egui::Rect::from_two_pos(a, b);
    let expected = pos
        .iter()
        .filter(|p| sel.contains(cam.to_screen(rect, [p[0] as f64, p[1] as f64])))
        .count();
    assert!(expected > 10);
    let before = h.render().unwrap();
    let shift = egui::Modifiers::SHIFT;
    h.event_modifiers(egui::Event::PointerMoved(a), shift);
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: a,
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: shift,
        },
        shift,
    );
    h.run_steps(2);
    for t in 1..=10 {
        let p = a + (b - a) * (t as f32 / 10.0);
        h.event_modifiers(egui::Event::PointerMoved(p), shift);
        h.step();
    }
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: b,
            button: egui::PointerButton::Primary,
            pressed: false,
            modifiers: shift,
        },
        shift,
    );
    h.run_steps(2);
    let got = h.state().n_selected();
    println!("box selection: {got} cells (expected {expected})");
    assert!(
        got.abs_diff(expected) <= 2,
        "selected {got}, expected {expected}"
    );
    // In the embedding view, selected cells keep their colour and the others are dimmed: look at
    // the pixel under each cell's centre.
    let after = h.render().unwrap();
    let palette: Vec<egui::Color32> = h.state().legend_items().iter().map(|l| l.color).collect();
    let (erect, ecam, epos) = h.state().view_geometry(0).unwrap();
    let sel = h.state().selection().to_vec();
    let mut full = [0usize; 2];
    let mut total = [0usize; 2];
    for (i, p) in epos.iter().enumerate() {
        let s = ecam.to_screen(erect, [p[0] as f64, p[1] as f64]);
        let px = after.get_pixel(s.x as u32, s.y as u32).0;
        let is_palette = palette.iter().any(|c| {
            (px[0] as i32 - c.r() as i32).abs()
                + (px[1] as i32 - c.g() as i32).abs()
                + (px[2] as i32 - c.b() as i32).abs()
                <= 12
        });
        let k = usize::from(sel[i]);
        total[k] += 1;
        full[k] += usize::from(is_palette);
    }
    let (f_sel, f_other) = (
        full[1] as f64 / total[1] as f64,
        full[0] as f64 / total[0] as f64,
    );
    println!(
        "embedding view: {:.2} of selected and {:.2} of other cells in full colour",
        f_sel, f_other
    );
    assert!(
        f_sel > 0.9 && f_other < 0.5,
        "selection not highlighted in the embedding view"
    );
    let changed = before
        .pixels()
        .zip(after.pixels())
        .filter(|(x, y)| x != y)
        .count();
    assert!(changed > 1000);
    let _count_label = h.get_by_label(&format!("selected: {got}"));
}

#[test]
fn colouring_by_a_gene_changes_the_picture() {
    let mut h = harness();
    let before = h.render().unwrap();
    let gene = "KRT14".to_string();
    h.state_mut().set_color_by(ColorBy::Gene(gene));
    settle(&mut h);
    let after = h.render().unwrap();
    let (spa, _, _) = h.state().view_geometry(1).unwrap();
    let diff = before
        .pixels()
        .zip(after.pixels())
        .filter(|(a, b)| a != b)
        .count();
    println!("pixels changed by colouring by KRT14: {diff}");
    assert!(diff > 5000);
    // viridis' bright end appears for the highest expressers
    assert!(
        count_color(&after, spa, egui::Color32::from_rgb(0xfd, 0xe7, 0x25), 1.0) > 0
            || count_color(&after, spa, egui::Color32::from_rgb(0xb5, 0xde, 0x2b), 1.0) > 0
    );
}

#[test]
fn he_image_underlay_is_drawn_under_the_spatial_view() {
    // her2st_B4.h5ad has obsm['spatial'] in the pixel frame of her2st_B4_HE.jpg beside it.
    let mut h = harness_for(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/her2st_B4.h5ad"),
    );
    wait_until(&mut h, 180, |h| h.state_mut().underlay_opacity().is_some());
    assert!(
        h.state_mut().underlay_opacity().is_some(),
        "H&E image loaded"
    );
    let (spa, _, _) = h.state().view_geometry(1).unwrap();
    let mut shots = Vec::new();
    for opacity in [0.0f32, 1.0] {
        *h.state_mut().underlay_opacity().unwrap() = opacity;
        h.run_steps(3);
        shots.push(h.render().unwrap());
    }
    let (x0, y0, x1, y1) = (
        spa.min.x as u32,
        spa.min.y as u32,
        spa.max.x as u32,
        spa.max.y as u32,
    );
    let mut changed = 0;
    let mut pinkish = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let (a, b) = (shots[0].get_pixel(x, y).0, shots[1].get_pixel(x, y).0);
            if a != b {
                changed += 1;
            }
            // H&E stain: red above blue above green
            if b[0] > b[2] && b[2] > b[1] && b[0] > 120 {
                pinkish += 1;
            }
        }
    }
    let area = ((x1 - x0) * (y1 - y0)) as f64;
    println!(
        "underlay: {:.2} of the spatial view changed, {:.2} H&E-coloured",
        changed as f64 / area,
        pinkish as f64 / area
    );
    assert!(changed as f64 > 0.3 * area, "image not drawn");
    assert!(
        pinkish as f64 > 0.1 * area,
        "image does not look like an H&E stain"
    );
}

/// A MERSCOPE folder: its DAPI mosaic comes up under the cells, another stain is chosen from
/// the Data panel's list; a Xenium folder: outlines are read and drawn over the spatial view
/// (the picture changes when they are dropped).
#[test]
fn instrument_folders_bring_mosaics_to_choose_and_outlines() {
    let vendor = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/vendor");
    let mut h = harness_for(vendor.join("merscope_cellbound"));
    wait_until(&mut h, 120, |h| h.state().underlay_path().is_some());
    let name = |h: &Harness<'static, CellscopeApp>| {
        h.state()
            .underlay_path()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
    };
    assert_eq!(
        name(&h).as_deref(),
        Some("mosaic_DAPI_z1.tif"),
        "DAPI first"
    );
    h.get_by_label("stain").click();
    h.run_steps(3);
    h.get_by_label("PolyT z2").click();
    wait_until(&mut h, 60, |h| {
        name(h).as_deref() == Some("mosaic_PolyT_z2.tif")
    });
    assert_eq!(
        name(&h).as_deref(),
        Some("mosaic_PolyT_z2.tif"),
        "the chosen stain"
    );
    // A 16-bit mosaic has contrast limits; new ones decode the image again, the stain kept.
    h.get_by_label("white");
    let narrow = cellscope::pipeline::jobs::open::Contrast {
        low: 0.01,
        high: 0.6,
    };
    assert_ne!(h.state().underlay_contrast(), Some(narrow));
    h.state_mut().set_contrast(narrow);
    wait_until(&mut h, 60, |h| {
        h.state().underlay_contrast() == Some(narrow)
    });
    assert_eq!(name(&h).as_deref(), Some("mosaic_PolyT_z2.tif"));

    let mut h = harness_for(vendor.join("xenium_sfe"));
    wait_until(&mut h, 60, |h| h.state().n_outlined().is_some());
    assert_eq!(h.state().n_outlined(), Some(526));
    h.run_steps(3);
    let (spa, _, _) = h.state().view_geometry(1).expect("spatial view");
    let with = h.render().expect("render");
    // Filled, the cells' insides are tinted too.
    h.get_by_label("fill cell outlines").click();
    h.run_steps(3);
    let filled = h.render().expect("render");
    let tinted = (spa.min.y as u32..spa.max.y as u32)
        .flat_map(|y| (spa.min.x as u32..spa.max.x as u32).map(move |x| (x, y)))
        .filter(|&(x, y)| with.get_pixel(x, y) != filled.get_pixel(x, y))
        .count();
    let area = spa.width() * spa.height();
    println!(
        "filling changed {:.3} of the spatial view",
        tinted as f32 / area
    );
    assert!(tinted as f32 > 0.05 * area, "outlines filled");
    h.get_by_label("fill cell outlines").click();
    h.run_steps(3);
    h.state_mut().drop_outlines();
    h.run_steps(3);
    let without = h.render().expect("render");
    let changed = (spa.min.y as u32..spa.max.y as u32)
        .flat_map(|y| (spa.min.x as u32..spa.max.x as u32).map(move |x| (x, y)))
        .filter(|&(x, y)| with.get_pixel(x, y) != without.get_pixel(x, y))
        .count();
    println!(
        "outlines changed {:.3} of the spatial view",
        changed as f32 / area
    );
    assert!(
        changed as f32 > 0.02 * area,
        "outlines drawn over the spatial view"
    );
}

#[test]
fn confusion_matrix_cell_selects_those_cells_and_agreement_colouring() {
    let mut h = harness();
    let truth: Vec<String> = {
        let c = h.state().data().unwrap().obs.column("cluster").unwrap();
        (0..c.len()).map(|i| c.value_string(i)).collect()
    };
    let leiden = h.state().leiden().unwrap().to_vec();
    // The heatmap lists truth classes as legends do, numbers by value (rows), against Leiden
    // clusters (columns).
    let mut names = truth.clone();
    names.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    names.dedup();
    assert!(names[1] == "2" && names[9] == "10", "{names:?}");
    let count = |r: usize, c: u32| {
        (0..truth.len())
            .filter(|&i| truth[i] == names[r] && leiden[i] == c)
            .count()
    };
    // the largest cell of the contingency table
    let (row, col) = (0..names.len())
        .flat_map(|r| (0..=*leiden.iter().max().unwrap()).map(move |c| (r, c)))
        .max_by_key(|&(r, c)| count(r, c))
        .unwrap();
    let expected = count(row, col);
    let rect = h.get_by_label("confusion matrix").rect();
    let k = (leiden.iter().max().unwrap() + 1) as f32;
    let cell = (220.0 / k).clamp(4.0, 18.0);
    let at = egui::pos2(
        rect.left() + 90.0 + cell * (col as f32 + 0.5),
        rect.top() + cell * (row as f32 + 0.5),
    );
    h.event(egui::Event::PointerMoved(at));
    h.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(3);
    println!(
        "confusion cell ({}, {col}): {} selected, {expected} expected",
        names[row],
        h.state().n_selected()
    );
    assert!(expected > 0);
    assert_eq!(h.state().n_selected(), expected);

    h.state_mut()
        .set_color_by(ColorBy::Agreement("cluster".into(), "cluster".into()));
    settle(&mut h);
    let legend: Vec<(String, usize)> = h
        .state()
        .legend_items()
        .iter()
        .map(|l| (l.name.clone(), l.count))
        .collect();
    assert_eq!(legend, vec![("match".to_string(), truth.len())]);
}

#[test]
fn model_panel_loads_a_checkpoint_embeds_and_reruns_the_pipeline() {
    let mut h = harness();
    let ckpt = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models/random_mask.ckpt");
    h.state_mut().load_model(ckpt);
    wait_until(&mut h, 180, |h| h.state().model_info().is_some());
    let m = h.state().model_info().cloned().expect("model loaded");
    let (summary, device, n_genes) = (m.summary, m.device, m.n_genes);
    println!("model: {summary}; {n_genes} genes; {device}");
    assert!(
        summary.to_lowercase().contains("mae") || summary.to_lowercase().contains("mask"),
        "{summary}"
    );
    h.state_mut().embed();
    wait_until(&mut h, 180, |h| {
        h.state().analyzed() && h.state().representation_name().contains("model embedding")
    });
    assert!(
        h.state().representation_name().contains("model embedding"),
        "pipeline re-ran on the embedding: {}",
        h.state().representation_name()
    );
    settle(&mut h);
    let _ = h.get_by_label("Embed");
}

/// The model panel's hub row against a local stand-in for the HuggingFace hub: Fetch downloads
/// the selected model (RandomMask) and its gene list into the cache and loads them; a model the
/// hub does not have is reported in the window with its address, and the loaded model stays.
#[test]
fn model_panel_fetches_a_model_from_the_hub() {
    let (endpoint, log, _) = common::serve_hub();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub {
        endpoint,
        cache: cache.path().to_path_buf(),
        token: None,
        offline: false,
    };
    let mut h = harness_with_hub(cellscope::ui::default_dataset(), hub.clone());
    h.get_by_label("Fetch").click();
    wait_until(&mut h, 180, |h| h.state().model_info().is_some());
    let m = h.state().model_info().cloned().expect("model loaded");
    let (summary, n_genes) = (m.summary, m.n_genes);
    let want = cellscope::model::load_model(
        &common::fixture("models/random_mask.ckpt"),
        Some(&common::fixture("models/var.parquet")),
    )
    .unwrap();
    assert_eq!(summary, want.weights.to_string());
    assert_eq!(n_genes, want.genes.len(), "gene list from var.parquet");
    let file = cellscope::model::hub::HubFile::parse(
        "hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        std::fs::read(hub.cached_path(&file)).unwrap(),
        std::fs::read(common::fixture("models/random_mask.ckpt")).unwrap(),
        "the checkpoint is in the cache"
    );
    let asked: Vec<String> = log.lock().unwrap().iter().map(|r| r.path.clone()).collect();
    assert!(
        asked.iter().any(|p| p.ends_with("/var.parquet")),
        "{asked:?}"
    );
    // GPMask is in the picker but not on this hub: a 404 naming the address.
    h.state_mut()
        .load_model("hf://TillR/sc_pretrained/Pretrained Models/GPMask.ckpt".into());
    wait_until(&mut h, 60, |h| {
        h.query_by_label_contains("error:").is_some()
    });
    assert!(
        h.query_by_label_contains("GPMask.ckpt: the hub answered HTTP 404")
            .is_some(),
        "the error names the address and the status"
    );
    assert_eq!(
        h.state().model_info().map(|m| &m.summary),
        Some(&summary),
        "the loaded model is kept"
    );
}

/// Fetch against a hub that never answers: the status line says the hub is being asked, and
/// Cancel stops the wait at once, with nothing loaded and the window usable.
#[test]
fn model_panel_cancels_a_silent_hub() {
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub {
        endpoint: common::serve_silent_hub(),
        cache: cache.path().to_path_buf(),
        token: None,
        offline: false,
    };
    let mut h = harness_with_hub(cellscope::ui::default_dataset(), hub);
    wait_until(&mut h, 120, |h| h.state().analyzed() && !h.state().busy());
    h.get_by_label("Fetch").click();
    let asking =
        "asking the hub for hf://TillR/sc_pretrained@main/Pretrained Models/RandomMask.ckpt";
    wait_until(&mut h, 20, |h| h.query_by_label_contains(asking).is_some());
    assert!(
        h.query_by_label_contains(asking).is_some(),
        "status while waiting"
    );
    let t = std::time::Instant::now();
    h.get_by_label("Cancel").click();
    assert!(h.state().busy(), "waiting for the hub");
    wait_until(&mut h, 20, |h| h.query_by_label("cancelled").is_some());
    assert!(
        h.query_by_label("cancelled").is_some(),
        "status after Cancel"
    );
    assert!(!h.state().busy(), "the wait ended");
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "at once: {:?}",
        t.elapsed()
    );
    assert!(h.state().model_info().is_none(), "nothing loaded");
}

#[test]
fn lasso_selection_selects_the_cells_inside_the_polygon() {
    let mut h = harness();
    let (rect, cam, pos) = {
        let (r, c, p) = h.state().view_geometry(1).unwrap();
        (r, c, p.to_vec())
    };
    let c = rect.center();
    let path: Vec<egui::Pos2> = (0..=24)
        .map(|t| {
            // a five-pointed star, concave
            let a = t as f32 / 24.0 * std::f32::consts::TAU;
            let r = if t % 2 == 0 { 170.0 } else { 70.0 };
            c + egui::vec2(a.cos() * r, a.sin() * r)
        })
        .collect();
    let m = egui::Modifiers::COMMAND;
    h.event_modifiers(egui::Event::PointerMoved(path[0]), m);
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: path[0],
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: m,
        },
        m,
    );
    h.step();
    for p in &path[1..] {
        h.event_modifiers(egui::Event::PointerMoved(*p), m);
        h.step();
    }
    let end = *path.last().unwrap();
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: end,
            button: egui::PointerButton::Primary,
            pressed: false,
            modifiers: m,
        },
        m,
    );
    h.run_steps(3);
    // The polygon the view recorded starts at the press origin and follows the pointer.
    let expected = pos
        .iter()
        .filter(|p| {
            cellscope::ui::view::point_in_polygon(
                cam.to_screen(rect, [p[0] as f64, p[1] as f64]),
                &path,
            )
        })
        .count();
    let got = h.state().n_selected();
    println!("lasso: {got} selected, {expected} inside the star");
    assert!(expected > 20);
    assert!(
        got.abs_diff(expected) <= expected / 20 + 2,
        "lasso selected {got}, expected {expected}"
    );
}

#[test]
fn label_transfer_colours_by_predicted_type_and_confidence() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let mut h = harness_for(data.join("hypothalamus_merfish_query.h5ad"));
    h.state_mut()
        .set_reference(data.join("hypothalamus_scrna_ref.h5ad"), "cell_type");
    h.state_mut().transfer();
    wait_until(&mut h, 180, |h| h.state().prediction().is_some());
    let (pred, conf) = h.state().prediction().cloned().expect("labels transferred");
    assert_eq!(pred.len(), 750);
    assert!(conf.iter().all(|c| (0.2..=1.0).contains(c)));
    settle(&mut h);
    let legend: Vec<String> = h
        .state()
        .legend_items()
        .iter()
        .map(|l| l.name.clone())
        .collect();
    println!("predicted types: {legend:?}");
    let reference_types = [
        "Ambiguous",
        "Astrocytes",
        "Endothelial",
        "Ependymal",
        "Excitatory",
        "Fibroblast",
        "Immature oligodendrocyte",
        "Inhibitory",
        "Macrophage",
        "Mature oligodendrocyte",
        "Microglia",
        "Mural",
        "Newly formed oligodendrocyte",
        "Unstable",
    ];
    assert!(
        legend.len() >= 3 && legend.iter().all(|l| reference_types.contains(&l.as_str())),
        "{legend:?}"
    );
    let plain = h.render().unwrap();
    h.state_mut()
        .set_color_by(ColorBy::Predicted { fade: true });
    settle(&mut h);
    let faded = h.render().unwrap();
    let diff = plain
        .pixels()
        .zip(faded.pixels())
        .filter(|(a, b)| a != b)
        .count();
    let low = conf.iter().filter(|&&c| c < 1.0).count();
    println!("{low} cells below full confidence; {diff} pixels changed by fading");
    assert!(low > 0 && diff > 1000);
}

#[test]
fn opening_a_file_shows_its_summary_and_remembers_it() {
    let mut h = harness();
    assert!(
        h.state().summary().contains("621"),
        "summary of the default dataset: {}",
        h.state().summary()
    );
    assert!(
        h.state().recent().is_empty(),
        "the embedded default is not a recent file"
    );
    let a1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/her2st_A1.h5ad");
    h.state_mut().open(a1.clone());
    wait_until(&mut h, 180, |h| h.state().summary().contains("346"));
    println!("{}", h.state().summary());
    assert!(
        h.state().summary().contains("346"),
        "summary of her2st_A1 names its 346 spots"
    );
    assert_eq!(h.state().recent(), [a1]);
    // A missing file is reported in the window and nothing is lost.
    h.state_mut().open("/nonexistent/x.h5ad".into());
    wait_until(&mut h, 30, |h| {
        h.query_by_label_contains("error:").is_some()
    });
    assert!(
        h.query_by_label_contains("/nonexistent/x.h5ad").is_some(),
        "error shown in the window"
    );
    assert!(
        h.state().summary().contains("346"),
        "the open dataset is kept"
    );
}

#[test]
fn training_panel_pretrains_with_live_curves_then_finetunes() {
    use cellscope::model::train::{EventKind, TrainLayers, TrainOptions};
    let mut h = harness();
    // The section is lower in the side panel: scroll to it, unfold it, scroll to its button.
    h.get_by_label("Training").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Training").click();
    settle(&mut h);
    h.get_by_label("Pre-train").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Pre-train").click();
    wait_until(&mut h, 240, |h| h.state().training().summary.is_some());
    let t = h.state().training();
    let epochs = t
        .history
        .iter()
        .filter(|e| e.kind == EventKind::Epoch)
        .count();
    let steps = t
        .history
        .iter()
        .filter(|e| e.kind == EventKind::Step)
        .count();
    println!(
        "pre-training: {epochs} epochs, {steps} steps; {:?}",
        t.summary
    );
    assert_eq!(epochs, 20, "every epoch reached the panel");
    assert!(steps >= 20);
    let first = t
        .history
        .iter()
        .find(|e| e.kind == EventKind::Epoch)
        .expect("epoch");
    let last = t
        .history
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Epoch)
        .expect("epoch");
    assert!(
        last.train_loss < first.train_loss,
        "loss fell: {} -> {}",
        first.train_loss,
        last.train_loss
    );
    let m = h
        .state()
        .model_info()
        .cloned()
        .expect("the trained model is loaded");
    let (summary, n_genes) = (m.summary, m.n_genes);
    assert!(
        summary.contains("masked autoencoder") && n_genes == 3000,
        "{summary}"
    );
    settle(&mut h);
    let img = h.render().expect("render");
    let _ = img.save(std::env::temp_dir().join("cellscope_training_panel.png"));

    h.state_mut().finetune(
        cellscope::pipeline::jobs::train::FinetuneJob {
            label_key: "cluster".into(),
            genes: None,
            layers: TrainLayers::All,
            opts: TrainOptions {
                epochs: 15,
                ..TrainOptions::finetune_default()
            },
            backend: cellscope::model::BackendChoice::Cpu,
            split_seed: 42,
        },
        true,
    );
    wait_until(&mut h, 240, |h| {
        h.state()
            .training()
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("macro-F1"))
    });
    let t = h.state().training();
    assert!(
        t.history.iter().any(|e| e.val_macro_f1.is_some()),
        "validation macro-F1 reached the panel"
    );
    assert!(
        t.history.iter().all(|e| e.epochs == 15),
        "the fine-tuning curves start afresh"
    );
    let (pred, conf) = h
        .state()
        .prediction()
        .cloned()
        .expect("predictions for every cell");
    assert_eq!(pred.len(), 621);
    assert!(conf.iter().all(|&c| c > 0.0 && c <= 1.0));
    settle(&mut h);
    let _ = h.get_by_label("Save model…");
    // The metrics dashboard scores the predictions against the ground-truth column.
    assert!(
        h.query_by_label_contains("predicted vs cluster").is_some(),
        "macro/micro F1 of the predictions shown"
    );
    let _ = h
        .render()
        .map(|img| img.save(std::env::temp_dir().join("cellscope_finetuned.png")));
}

#[test]
fn session_reopens_the_same_view_and_figures_use_the_screen_colours() {
    use cellscope::ui::app::ColorBy;
    let mut h = harness();
    h.state_mut().set_color_by(ColorBy::Obs("cluster".into()));
    settle(&mut h);
    let items = h.state().legend_items().to_vec();
    let hidden = items[0].clone();
    h.get_by_label(&format!("{}  ({})", hidden.name, hidden.count))
        .click();
    settle(&mut h);
    h.state_mut().select_cells(&[0, 5, 9, 100, 200]);
    h.state_mut().annotate_selection("edge");
    h.state_mut().select_cells(&[3, 4]);
    // Zoom the spatial view at its centre.
    let (rect, _, _) = h.state().view_geometry(1).unwrap();
    wheel_zoom(&mut h, rect.center());
    let before = h.state().session().expect("session");
    assert!(before.cameras.iter().all(Option::is_some));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.json");
    h.state().save_session(&path).expect("save");

    // A figure of the spatial view: the screen colours, the hidden category left out.
    let fig = dir.path().join("spatial.png");
    h.state_mut().export_figure(fig.clone());
    wait_until(&mut h, 60, |_| fig.exists());
    let img = image::open(&fig).expect("figure").to_rgb8();
    let count = |c: egui::Color32| {
        img.pixels()
            .filter(|p| p.0 == [c.r(), c.g(), c.b()])
            .count()
    };
    println!(
        "figure: shown {} px, hidden {} px",
        count(items[1].color),
        count(hidden.color)
    );
    assert!(
        count(items[1].color) > 500,
        "a shown category in its screen colour"
    );
    assert_eq!(count(hidden.color), 0, "the hidden category is not drawn");

    let mut h2 = harness();
    let fitted = h2.state().session().expect("session").cameras;
    assert_ne!(
        fitted[1], before.cameras[1],
        "the spatial view was zoomed before saving"
    );
    h2.state_mut().open_session(&path).expect("open session");
    wait_until(&mut h2, 180, |h| {
        h.state()
            .session()
            .is_some_and(|s| s.annotations == before.annotations && s.selection == before.selection)
    });
    settle(&mut h2);
    let after = h2.state().session().expect("session");
    assert_eq!(after.color_by, before.color_by);
    assert_eq!(after.hidden, before.hidden);
    assert_eq!(after.selection, vec![3, 4]);
    assert_eq!(after.annotations, before.annotations);
    assert_eq!(after.cameras, before.cameras, "cameras restored");
    assert_eq!(after.params, before.params);
    assert_eq!(after.data, before.data);
    assert_eq!(after.model, before.model);
    assert_eq!(h2.state().n_selected(), 2);
    assert_eq!(
        after.provenance["cellscope_version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn a_vs_b_of_two_models_counts_disagreements_and_syncs_cameras() {
    use cellscope::pipeline::jobs::compare::SideSource;
    // Model B: a small random-mask autoencoder trained here on the default dataset.
    let dir = tempfile::tempdir().expect("tempdir");
    let adata = cellscope::data::open(&cellscope::ui::default_dataset()).expect("read");
    let (tx, _rx) = crossbeam_channel::bounded(1 << 14);
    let trained = cellscope::pipeline::jobs::train::run_pretrain(
        &adata,
        &cellscope::pipeline::jobs::train::PretrainJob {
            objective: cellscope::model::train::ObjectiveKind::RandomMask,
            gmt: None,
            generic: Default::default(),
            genes: None,
            opts: cellscope::model::train::TrainOptions {
                epochs: 3,
                batch_size: 128,
                hidden: vec![64, 32],
                ..cellscope::model::train::TrainOptions::pretrain_default()
            },
            backend: cellscope::model::BackendChoice::Cpu,
        },
        &tx,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("train B");
    let b_path = dir.path().join("model_b");
    cellscope::model::save_model(&trained.model, &b_path).expect("save B");

    let mut h = harness();
    h.state_mut().compare(
        SideSource::Model(cellscope::ui::default_model()),
        SideSource::Model(b_path),
        None,
    );
    wait_until(&mut h, 240, |h| h.state().comparison().is_some());
    settle(&mut h);
    let c = h.state().comparison().expect("comparison");
    assert!(h.state().showing_comparison());
    // Independently: the two Leiden columns, each B cluster mapped to the A cluster it overlaps
    // most, cells counted where they differ.
    let (a, b) = (&c.sides[0].analysis.leiden, &c.sides[1].analysis.leiden);
    let (ka, kb) = (
        *a.iter().max().unwrap() as usize + 1,
        *b.iter().max().unwrap() as usize + 1,
    );
    let mut overlap = vec![vec![0usize; ka]; kb];
    for (&x, &y) in a.iter().zip(b) {
        overlap[y as usize][x as usize] += 1;
    }
    let best: Vec<u32> = overlap
        .iter()
        .map(|row| {
            let m = *row.iter().max().unwrap();
            // ties: the smallest A label as a string (the comparison sorts class names)
            (0..ka)
                .filter(|&k| row[k] == m)
                .min_by_key(|k| k.to_string())
                .unwrap() as u32
        })
        .collect();
    let independent = a
        .iter()
        .zip(b)
        .filter(|&(&x, &y)| best[y as usize] != x)
        .count();
    println!(
        "A vs B: {} of {} cells disagree ({} A clusters, {} B clusters)",
        c.n_disagree(),
        a.len(),
        ka,
        kb
    );
    assert_eq!(c.n_disagree(), independent);
    assert!(
        independent > 0 && independent < a.len(),
        "two different models"
    );

    // The disagreement map draws mismatches in red.
    let (rect, _, _) = h.state().comparison_view_geometry(2).expect("third view");
    let img = h.render().unwrap();
    let _ = img.save(std::env::temp_dir().join("cellscope_a_vs_b.png"));
    let red = count_color(&img, rect, egui::Color32::from_rgb(0xd6, 0x27, 0x28), 1.0);
    assert!(red > 200, "mismatches drawn ({red} px)");
    // Zooming one view moves all three (synchronised cameras).
    let (r0, cam0, _) = h.state().comparison_view_geometry(0).expect("view A");
    wheel_zoom(&mut h, r0.center());
    let cams = h.state().comparison_cameras();
    assert_eq!(cams.len(), 3);
    assert_ne!(cams[0], Some(cam0), "view A zoomed");
    assert!(
        cams.iter().all(|c| *c == cams[0]),
        "cameras synchronised: {cams:?}"
    );
}

#[test]
fn hostile_files_and_a_panicking_job_leave_the_window_working() {
    let mut h = harness();
    assert!(h.state().summary().contains("621"));
    let dir = tempfile::tempdir().unwrap();
    let good = common::shared_data().join("hypothalamus_scrna_ref.h5ad");
    let bytes = std::fs::read(&good).unwrap();
    // Every truncation of a valid file, and two malformed ones: an error at the bottom, the
    // dataset kept.
    let mut files: Vec<std::path::PathBuf> = crate::hostile_corpus::mutants(&bytes, 1)
        .into_iter()
        .filter(|(name, _)| name.starts_with("trunc"))
        .map(|(name, b)| {
            let p = dir.path().join(format!("hyp_{name}.h5ad"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect();
    files.push(common::fixture("bad/missing_obs.h5ad"));
    files.push(common::fixture("bad/indptr_not_monotonic.h5ad"));
    for p in &files {
        let n = h.state().errors().len();
        h.state_mut().open(p.clone());
        wait_until(&mut h, 60, |h| h.state().errors().len() > n);
        let name = p.file_name().unwrap().to_str().unwrap();
        let last = h.state().errors().last().cloned().unwrap_or_default();
        assert!(last.contains(name), "{name}: {last}");
        assert!(
            h.state().summary().contains("621"),
            "the open dataset is kept"
        );
    }
    // Damaged session files: refused or opened, never a crash.
    let session = dir.path().join("view.cellscope.json");
    h.state().save_session(&session).unwrap();
    let bytes = std::fs::read(&session).unwrap();
    for (name, b) in crate::hostile_corpus::mutants(&bytes, 7) {
        let p = dir.path().join(format!("session_{name}.json"));
        std::fs::write(&p, b).unwrap();
        let _ = h.state_mut().open_session(&p);
        h.run_steps(2);
    }
    // A job that panics: its error is shown, the worker goes on.
    let n = h.state().errors().len();
    h.state().inject_panic();
    wait_until(&mut h, 30, |h| h.state().errors().len() > n);
    let last = h.state().errors().last().cloned().unwrap_or_default();
    assert!(
        last.contains("internal error") && last.contains("injected panic"),
        "{last}"
    );
    h.state_mut().open(good);
    wait_until(&mut h, 60, |h| h.state().summary().contains("1308"));
    assert!(
        h.state().summary().contains("1308"),
        "the worker still opens files"
    );
}

#[test]
fn training_panel_pretrains_gp_to_tf_with_a_gmt_file_chosen_there() {
    use cellscope::model::train::EventKind;
    // Programmes: blocks of 50 of the section's genes, each named after its first gene as
    // MSigDB C3 TFT names a factor's targets.
    let adata = cellscope::data::open(&cellscope::ui::default_dataset()).expect("default data");
    let genes = cellscope::data::genes::dataset_genes(&adata);
    let dir = tempfile::tempdir().expect("tempdir");
    let gmt = dir.path().join("factors.gmt");
    let text: String = genes
        .symbols
        .chunks(50)
        .map(|c| format!("{}_TARGET_GENES\tx\t{}\n", c[0], c.join("\t")))
        .collect();
    std::fs::write(&gmt, text).expect("write gmt");

    let mut h = harness();
    h.get_by_label("Training").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Training").click();
    settle(&mut h);
    h.get_by_label("objective").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("objective").click();
    h.run_steps(3);
    h.get_by_label("gp-to-tf").click();
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("programmes: no GMT file")
            .is_some(),
        "the panel asks for a GMT file"
    );
    h.get_by_label("Pre-train").click();
    h.run_steps(5);
    assert!(
        h.state().training().summary.is_none() && !h.state().busy(),
        "Pre-train is disabled without a GMT file"
    );
    // What the file dialog does when the user picks the file.
    *h.state().training().gmt_dialog_slot().lock().expect("slot") = Some(gmt);
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("programmes: factors.gmt")
            .is_some()
    );
    h.get_by_label("Pre-train").click();
    wait_until(&mut h, 240, |h| h.state().training().summary.is_some());
    let t = h.state().training();
    let epochs: Vec<f64> = t
        .history
        .iter()
        .filter(|e| e.kind == EventKind::Epoch)
        .map(|e| e.train_loss)
        .collect();
    println!("gp-to-tf in the window: {epochs:?}; {:?}", t.summary);
    assert_eq!(epochs.len(), 20, "{:?}", t.summary);
    assert!(epochs[19] < epochs[0], "loss fell: {epochs:?}");
    let m = h
        .state()
        .model_info()
        .cloned()
        .expect("the trained model is loaded");
    assert!(m.summary.contains("masked autoencoder"), "{}", m.summary);
    settle(&mut h);
    let _ = h
        .render()
        .map(|img| img.save(std::env::temp_dir().join("cellscope_training_gp_to_tf.png")));
}

#[test]
fn the_window_colours_by_an_imputed_gene() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("hyp_imputed.h5ad");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("impute")
        .arg("--reference")
        .arg(data.join("merfish_hypothalamus_animal1.h5ad"))
        .arg("--query")
        .arg(data.join("hypothalamus_scrna_ref.h5ad"))
        .args(["--genes", "Mbp", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut h = harness_for(out);
    settle(&mut h);
    let before = h.render().expect("render");
    h.state_mut().set_color_by(ColorBy::Gene("Mbp".into()));
    settle(&mut h);
    let after = h.render().expect("render");
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    let diff = before
        .pixels()
        .zip(after.pixels())
        .filter(|(a, b)| a != b)
        .count();
    println!("pixels changed by colouring by imputed Mbp: {diff}");
    assert!(
        diff > 2000,
        "the imputed gene coloured the cells ({diff} pixels)"
    );
    let _ = after.save(std::env::temp_dir().join("cellscope_imputed_gene.png"));
}

/// Writes a grey 16-bit OME-TIFF whose full-resolution image is `levels[0]` and whose SubIFDs
/// hold the others (uncompressed strips), with `xml` as its ImageDescription.
fn write_pyramid(path: &std::path::Path, levels: &[(u32, u32, Vec<u16>)], xml: &str) {
    use tiff::encoder::{TiffEncoder, colortype::Gray16};
    use tiff::tags::Tag;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = TiffEncoder::new(file).unwrap();
    let mut subs = Vec::new();
    for (w, h, px) in &levels[1..] {
        let mut d = enc.extra_directory().unwrap();
        let at = d.write_data(&px[..]).unwrap() as u32;
        d.write_tag(Tag::NewSubfileType, 1u32).unwrap();
        d.write_tag(Tag::ImageWidth, *w).unwrap();
        d.write_tag(Tag::ImageLength, *h).unwrap();
        d.write_tag(Tag::BitsPerSample, 16u16).unwrap();
        d.write_tag(Tag::Compression, 1u16).unwrap();
        d.write_tag(Tag::PhotometricInterpretation, 1u16).unwrap();
        d.write_tag(Tag::SamplesPerPixel, 1u16).unwrap();
        d.write_tag(Tag::RowsPerStrip, *h).unwrap();
        d.write_tag(Tag::StripOffsets, at).unwrap();
        d.write_tag(Tag::StripByteCounts, w * h * 2).unwrap();
        subs.push(d.finish_with_offsets().unwrap().offset);
    }
    let (w, h, px) = &levels[0];
    let mut img = enc.new_image::<Gray16>(*w, *h).unwrap();
    img.encoder().write_tag(Tag::ImageDescription, xml).unwrap();
    img.encoder().write_tag(Tag::SubIfd, &subs[..]).unwrap();
    img.write_data(px).unwrap();
}

/// A Xenium folder whose morphology image is larger than one texture: zoomed in on the cells,
/// the window under the view is read from the full-resolution level and drawn over the coarse
/// texture (the DAPI-like blobs sit on the real cells' centroids).
#[test]
fn zooming_into_a_morphology_pyramid_reads_its_full_resolution() {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/vendor/xenium_sfe");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["cell_feature_matrix.h5", "cells.parquet"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let cells = cellscope::data::open(tmp.path()).unwrap();
    // 0.3 µm per pixel over 0..1,500 µm: 5,000 pixels, more than one 4,096 texture.
    let (dpp, side) = (0.3, 5000u32);
    let mut full = vec![300u16; (side * side) as usize];
    for c in cells.obsm["spatial"].rows() {
        let (cx, cy) = (c[0] / dpp, c[1] / dpp);
        for y in (cy as i64 - 12).max(0)..(cy as i64 + 12).min(i64::from(side)) {
            for x in (cx as i64 - 12).max(0)..(cx as i64 + 12).min(i64::from(side)) {
                let r2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                let v = 300.0 + 8000.0 * (-r2 / 18.0).exp();
                let p = &mut full[(y as u32 * side + x as u32) as usize];
                *p = (*p).max(v as u16);
            }
        }
    }
    let half: Vec<u16> = (0..side / 2)
        .flat_map(|y| (0..side / 2).map(move |x| (x, y)))
        .map(|(x, y)| full[(2 * y * side + 2 * x) as usize])
        .collect();
    let xml = format!(
        r#"<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" Type="uint16" SizeX="{side}" SizeY="{side}" PhysicalSizeX="{dpp}" PhysicalSizeY="{dpp}"><Channel ID="Channel:0:0" Name="DAPI"/></Pixels></Image></OME>"#
    );
    let levels = [(side, side, full), (side / 2, side / 2, half)];
    write_pyramid(&tmp.path().join("morphology_focus.ome.tif"), &levels, &xml);

    let mut h = harness_for(tmp.path().to_path_buf());
    wait_until(&mut h, 60, |h| h.state().underlay_path().is_some());
    assert_eq!(
        h.state().underlay_detail_level(),
        None,
        "the whole cells fit the texture"
    );
    // Zoom in on a cell until a screen pixel is under 0.3 µm (the texture's is 0.6 µm).
    let (_, _, pos) = h.state().view_geometry(1).expect("spatial view");
    let cell = pos[0];
    for _ in 0..10 {
        let (spa, cam, _) = h.state().view_geometry(1).expect("spatial view");
        if cam.units_per_point < 0.3 {
            break;
        }
        let at = cam.to_screen(spa, [f64::from(cell[0]), f64::from(cell[1])]);
        wheel_zoom(&mut h, if spa.contains(at) { at } else { spa.center() });
    }
    let (_, cam, _) = h.state().view_geometry(1).expect("spatial view");
    assert!(
        cam.units_per_point < 0.3,
        "zoomed in: {} µm a point",
        cam.units_per_point
    );
    wait_until(&mut h, 60, |h| h.state().underlay_detail_level().is_some());
    assert_eq!(
        h.state().underlay_detail_level(),
        Some(0),
        "full resolution under the view"
    );
}

/// The Benchmark section: batch and label columns chosen in its menus, two methods left on,
/// the run ends in a results table; clicking a method's name shows its UMAP as the embedding
/// view (title and positions change), and the picture is saved for a look.
#[test]
fn benchmark_panel_scores_methods_and_shows_a_methods_umap() {
    let mut h = harness_for(common::shared_data().join("pbmc68k_reduced.h5ad"));
    h.get_by_label("Benchmark (scSSL-Bench)").scroll_to_me();
    h.run_steps(20);
    h.get_by_label("Benchmark (scSSL-Bench)").click();
    settle(&mut h);
    for (menu, choice) in [("batch column", "phase"), ("label column", "bulk_labels")] {
        h.get_by_label(menu).scroll_to_me();
        h.run_steps(20);
        h.get_by_label(menu).click();
        h.run_steps(3);
        h.get_by_label(choice).click();
        h.run_steps(3);
    }
    for off in ["random-mask", "barlow-twins", "byol", "vicreg"] {
        h.get_by_label(off).click();
        h.run_steps(1);
    }
    h.get_by_label("Run benchmark").scroll_to_me();
    h.run_steps(20);
    h.get_by_label("Run benchmark").click();
    wait_until(&mut h, 240, |h| h.state().benchmark().result.is_some());
    let r = h
        .state()
        .benchmark()
        .result
        .clone()
        .expect("benchmark results");
    let names: Vec<&str> = r.rows.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["pca", "simclr"]);
    assert!(r.rows.iter().all(|m| (0.0..=1.0).contains(&m.scores.total)));
    settle(&mut h);
    let before = h
        .state()
        .embedding_positions()
        .expect("embedding view")
        .to_vec();
    // The results window's row (the checkbox of the same name comes first).
    let _ = h
        .render()
        .map(|img| img.save(std::env::temp_dir().join("cellscope_bench_table.png")));
    h.get_all_by_label("simclr").last().expect("row").click();
    settle(&mut h);
    let titles = h.state().view_titles();
    assert!(
        titles.iter().any(|t| t.contains("UMAP of simclr")),
        "{titles:?}"
    );
    let after = h.state().embedding_positions().expect("embedding view");
    assert_eq!(after.len(), before.len());
    assert_ne!(after, &before[..], "the view shows the method's UMAP");
    assert_eq!(after[0], [r.rows[1].umap[(0, 0)], r.rows[1].umap[(0, 1)]]);
    let _ = h
        .render()
        .map(|img| img.save(std::env::temp_dir().join("cellscope_benchmark_panel.png")));
}

/// SimCLR in the Training panel: choosing it brings the encoder and augmentation rows; an
/// unreadable augmentation disables Pre-train and says why; with one that reads, the run
/// shows its epochs and loads a SimCLR model (the bench's encoder, BatchNorms folded).
#[test]
fn training_panel_pretrains_simclr_with_the_bench_augmentations() {
    use cellscope::model::train::EventKind;
    let mut h = harness();
    h.get_by_label("Training").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Training").click();
    settle(&mut h);
    h.get_by_label("objective").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("objective").click();
    h.run_steps(3);
    h.get_by_label("simclr").click();
    h.run_steps(3);
    let _ = h.get_by_label("encoder");
    let augment = h.get_by_label("augment");
    augment.focus();
    augment.type_text(",blur:0.1");
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("expected comma-separated")
            .is_some(),
        "the panel says why the augmentation does not read"
    );
    h.get_by_label("Pre-train").click();
    h.run_steps(5);
    assert!(!h.state().busy(), "Pre-train is disabled");
    h.get_by_label("augment").focus();
    h.run_steps(1);
    for _ in 0..",blur:0.1".len() {
        h.key_press(egui::Key::Backspace);
    }
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("expected comma-separated")
            .is_none()
    );
    h.get_by_label("Pre-train").click();
    wait_until(&mut h, 240, |h| h.state().training().summary.is_some());
    let t = h.state().training();
    let epochs = t
        .history
        .iter()
        .filter(|e| e.kind == EventKind::Epoch)
        .count();
    assert_eq!(epochs, 20, "{:?}", t.summary);
    let m = h
        .state()
        .model_info()
        .cloned()
        .expect("the trained model is loaded");
    assert!(m.summary.contains("SimCLR"), "{}", m.summary);
}

#[test]
fn pipeline_panel_finds_domains_by_graphst_and_a_vs_b_compares_two_methods() {
    use cellscope::pipeline::jobs::compare::SideSource;
    use cellscope::pipeline::jobs::domains::{DomainInput, DomainMethod, GraphDomainParams};
    let mut h = harness();
    let banksy = h
        .state()
        .domains()
        .expect("BANKSY domains of the first run")
        .to_vec();
    // Choose GraphST on the PCA in the pipeline panel, with its epochs, and run.
    h.get_by_label("domains method").click();
    h.run_steps(3);
    h.get_all_by_label("GraphST")
        .last()
        .expect("GraphST item")
        .click();
    h.run_steps(3);
    h.get_by_label("domains input").click();
    h.run_steps(3);
    h.get_all_by_label("PCA").last().expect("PCA item").click();
    h.run_steps(3);
    h.get_by_label("Run").click();
    h.run_steps(3);
    assert!(!h.state().analyzed(), "a new run started");
    let mut saw_epochs = false;
    wait_until(&mut h, 240, |h| {
        saw_epochs |= h.state().status().contains("epoch");
        h.state().analyzed()
    });
    settle(&mut h);
    assert!(saw_epochs, "training epochs reported in the status line");
    let img = h.render().unwrap();
    let _ = img.save(std::env::temp_dir().join("cellscope_graphst_domains.png"));
    let graphst = h.state().domains().expect("GraphST domains").to_vec();
    let n_domains = |d: &[u32]| d.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(n_domains(&graphst), 7);
    assert_ne!(graphst, banksy, "another method, other domains");

    // A vs B of two domain methods on the same representation.
    let graph = GraphDomainParams {
        method: DomainMethod::Graphst,
        input: DomainInput::Pca,
        epochs: Some(30),
        ..GraphDomainParams::default()
    };
    h.state_mut()
        .compare(SideSource::Pca, SideSource::Pca, Some([None, Some(graph)]));
    wait_until(&mut h, 240, |h| h.state().comparison().is_some());
    settle(&mut h);
    let c = h.state().comparison().expect("comparison");
    assert!(c.sides[0].name.contains("BANKSY"), "{}", c.sides[0].name);
    assert!(c.sides[1].name.contains("GraphST"), "{}", c.sides[1].name);
    let a: Vec<String> = c.sides[0]
        .analysis
        .domains
        .as_ref()
        .unwrap()
        .0
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(c.a_labels, a, "the domains are what is compared");
    assert!(
        c.n_disagree() < c.disagree.len(),
        "the mapped domains agree somewhere"
    );
}

#[test]
fn spots_at_physical_size_as_outlines_let_the_he_show() {
    let mut h = harness_for(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/her2st_B4.h5ad"),
    );
    wait_until(&mut h, 180, |h| h.state_mut().underlay_opacity().is_some());
    let (spa, _, _) = h.state().view_geometry(1).expect("spatial view");
    // Share of the spatial view showing the H&E as it is without spots.
    let he_share = |img: &image::RgbaImage, bare: &image::RgbaImage| {
        let mut same = 0;
        for y in spa.min.y as u32..spa.max.y as u32 {
            for x in spa.min.x as u32..spa.max.x as u32 {
                same += usize::from(img.get_pixel(x, y) == bare.get_pixel(x, y));
            }
        }
        same as f64 / (spa.width() * spa.height()) as f64
    };
    let discs = h.render().expect("render");
    // The checkbox is enabled once the spot spacing is known (the hover index, built in the
    // background).
    wait_until(&mut h, 60, |h| {
        h.get_by_label("spots at physical size").click();
        h.run_steps(2);
        h.state().spot_style().is_some_and(|s| s.diameter.is_some())
    });
    let d = h
        .state()
        .spot_style()
        .and_then(|s| s.diameter)
        .expect("diameter");
    // B4's spots lie about 270 px apart in the image (ST arrays: 200 µm): half of that.
    assert!((100.0..200.0).contains(&d), "diameter {d} px");
    h.get_by_label("outlines").click();
    h.run_steps(3);
    assert!(h.state().spot_style().is_some_and(|s| s.outline));
    let rings = h.render().expect("render");
    let _ = rings.save(std::env::temp_dir().join("cellscope_spot_outlines.png"));
    h.state_mut().set_spot_opacity(0.0);
    h.run_steps(3);
    let bare = h.render().expect("render");
    let (before, after) = (he_share(&discs, &bare), he_share(&rings, &bare));
    println!("spatial view showing the bare H&E: discs {before:.2}, outlined spots {after:.2}");
    assert!(
        after > before + 0.05,
        "outlines at physical size show more tissue"
    );
    assert!(after < 0.999, "the outlines are drawn");
}
