//! Xenium morphology images (OME-TIFF): a synthetic pyramid in the instrument's layout
//! (tiled, JPEG-2000, SubIFD levels, one file per stain) read level by level and window by
//! window against what tifffile with OpenJPEG reads
//! (`tests/fixtures/vendor/make_morphology_fixture.py`), placed in the micron frame so its
//! nuclei land where the script put them; the real cropped image in `../shared` read, and
//! refused for placement because it carries no pixel size.

use std::path::{Path, PathBuf};

use cellscope::data::ometiff::OmeTiff;
use cellscope::data::vendor::xenium;
use cellscope::pipeline::jobs::Handle;
use cellscope::pipeline::jobs::open::{Contrast, ImageRequest, Opened, load_image};
use serde_json::Value;

use super::common::{fixture, shared_data};

fn reference() -> Value {
    let text =
        std::fs::read_to_string(fixture("vendor/morphology_fixture.json")).expect("reference");
    serde_json::from_str(&text).expect("json")
}

fn focus_dir() -> PathBuf {
    fixture("vendor/morphology_fixture/morphology_focus")
}

/// The window's open job on `dir`.
fn open_folder(dir: &Path) -> Result<Opened, cellscope::pipeline::jobs::JobError> {
    let mut report = |_| {};
    cellscope::pipeline::jobs::open::open(dir, &mut Handle::quiet(&mut report))
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("unsigned")
}

/// A Xenium folder in a temporary directory: the real subset's matrix and cell table, with
/// `extra` files or folders copied in.
fn xenium_folder(extra: &[&Path]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = shared_data().join("vendor/xenium_sfe");
    for f in ["cell_feature_matrix.h5", "cells.parquet"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).expect("copy");
    }
    for e in extra {
        let to = tmp.path().join(e.file_name().expect("name"));
        if e.is_dir() {
            std::fs::create_dir(&to).expect("dir");
            for f in std::fs::read_dir(e).expect("list") {
                let f = f.expect("entry").path();
                std::fs::copy(&f, to.join(f.file_name().expect("name"))).expect("copy");
            }
        } else {
            std::fs::copy(e, &to).expect("copy");
        }
    }
    tmp
}

/// Every level of both stains, whole and as a window: shape, sum, pixels, window sum equal to
/// tifffile's; pixel size and channel names from the OME-XML.
#[test]
fn morphology_pyramid_levels_and_windows_match_tifffile() {
    let r = reference();
    for f in r["files"].as_array().expect("files") {
        let path = focus_dir().join(f["file"].as_str().expect("file"));
        let t = OmeTiff::open(&path).expect("open");
        assert_eq!(t.channel.as_deref(), f["channel"].as_str());
        let px = r["pixel_um"].as_f64().expect("pixel");
        assert_eq!(t.pixel_size_um, Some([px, px]));
        let levels = f["levels"].as_array().expect("levels");
        assert_eq!(t.levels.len(), levels.len(), "{}: levels", path.display());
        for (i, (l, want)) in t.levels.iter().zip(levels).enumerate() {
            let shape = [u(&want["shape"][1]) as u32, u(&want["shape"][0]) as u32];
            assert_eq!([l.width, l.height], shape, "level {i}: size");
            let all = t.read_region(i, [0, 0, l.width, l.height]).expect("level");
            let sum: u64 = all.iter().map(|&v| u64::from(v)).sum();
            assert_eq!(sum, u(&want["sum"]), "level {i}: sum of pixels");
            for p in want["pixels"].as_array().expect("pixels") {
                let (x, y) = (u(&p[0]) as u32, u(&p[1]) as u32);
                let got = all[(y * l.width + x) as usize];
                assert_eq!(u64::from(got), u(&p[2]), "level {i}: pixel {x},{y}");
            }
            let w: Vec<u32> = (0..4).map(|k| u(&want["region"][k]) as u32).collect();
            let window = t.read_region(i, [w[0], w[1], w[2], w[3]]).expect("window");
            let wsum: u64 = window.iter().map(|&v| u64::from(v)).sum();
            assert_eq!(wsum, u(&want["region_sum"]), "level {i}: window sum");
        }
        assert!(
            t.read_region(0, [600, 400, 100, 10]).is_err(),
            "a window outside is refused"
        );
        assert!(
            t.read_region(7, [0, 0, 1, 1]).is_err(),
            "a level that is not there"
        );
    }
}

/// Opened as a Xenium folder, the stains are offered DAPI first, placed at 0.2125 µm per pixel
/// from the micron origin, and the decoded underlay is brightest where the nuclei are.
#[test]
fn morphology_nuclei_land_at_their_microns() {
    let dir = xenium_folder(&[&focus_dir()]);
    let images = xenium::morphology(dir.path()).expect("morphology");
    let names: Vec<&str> = images.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["DAPI", "ATP1A1/CD45/E-Cadherin"]);
    assert!(
        images
            .iter()
            .all(|m| m.microns_per_pixel == 0.2125 && m.origin == [0.0, 0.0])
    );
    let opened = open_folder(dir.path()).expect("open the folder");
    assert_eq!(opened.images.len(), 2);
    let line = "image DAPI: morphology_focus/morphology_focus_0000.ome.tif, 640 x 448 px, \
                3 level(s), 0.2125 µm/px";
    assert!(
        opened.summary.contains(line),
        "inspect lists the images:\n{}",
        opened.summary
    );
    let (path, placement) = opened.image.expect("a default image");
    assert!(
        path.ends_with("morphology_focus_0000.ome.tif"),
        "DAPI by default"
    );
    let under = load_image(&ImageRequest::new(path, placement)).expect("decode");
    assert!(
        under.grey_range.is_some(),
        "16-bit grey gets contrast limits"
    );
    let p = under.placement;
    let img = &under.image;
    let at = |um: [f64; 2]| {
        let x = ((um[0] - p.origin[0]) / p.data_per_pixel) as u32;
        let y = ((um[1] - p.origin[1]) / p.data_per_pixel) as u32;
        img.get_pixel(x, y)[0]
    };
    let nuclei = reference()["nuclei_um"].as_array().expect("nuclei").clone();
    for n in &nuclei {
        let um = [n[0].as_f64().expect("x"), n[1].as_f64().expect("y")];
        assert!(at(um) >= 250, "a nucleus at {um:?} µm is white: {}", at(um));
        assert!(at([um[0] + 6.0, um[1]]) < 150, "6 µm beside it is dim");
    }
}

/// Contrast limits move what is black and white: a narrower range makes more of the image
/// white.
#[test]
fn contrast_limits_change_the_stretch() {
    let path = focus_dir().join("morphology_focus_0000.ome.tif");
    let placement = cellscope::pipeline::jobs::open::Placement::scale(0.2125);
    let white = |c: Contrast| {
        let r = ImageRequest {
            contrast: c,
            ..ImageRequest::new(path.clone(), placement)
        };
        let img = load_image(&r).expect("decode").image;
        img.as_raw().chunks(4).filter(|p| p[0] == 255).count()
    };
    let wide = white(Contrast::default());
    let narrow = white(Contrast {
        low: 0.005,
        high: 0.5,
    });
    assert!(
        narrow > 10 * wide,
        "half the pixels white: {narrow} vs {wide}"
    );
}

/// The real subset's image: read as tifffile reads it, but not placed, because neither its
/// OME-XML nor the folder gives a pixel size; with the run's `experiment.xenium` beside it, it
/// is placed by that pixel size.
#[test]
fn real_morphology_without_a_pixel_size_is_not_placed() {
    let real = shared_data().join("vendor/xenium_sfe/morphology_focus.ome.tif");
    let t = OmeTiff::open(&real).expect("open");
    let r = &reference()["real_focus"];
    assert_eq!((t.levels.len(), t.pixel_size_um), (1, None));
    let l = &t.levels[0];
    assert_eq!(
        [l.height, l.width],
        [u(&r["shape"][0]) as u32, u(&r["shape"][1]) as u32]
    );
    let px = t.read_region(0, [0, 0, l.width, l.height]).expect("read");
    assert_eq!(px.iter().map(|&v| u64::from(v)).sum::<u64>(), u(&r["sum"]));
    assert_eq!(
        u64::from(px[20 * l.width as usize + 10]),
        u(&r["pixel_10_20"])
    );

    let dir = xenium_folder(&[&real]);
    let e = xenium::morphology(dir.path())
        .expect_err("no pixel size")
        .to_string();
    assert!(
        e.contains("morphology_focus.ome.tif") && e.contains("pixel size"),
        "{e}"
    );
    let opened = open_folder(dir.path()).expect("the cells open all the same");
    assert!(
        opened.summary.contains("image: not placed"),
        "{}",
        opened.summary
    );
    assert!(opened.image.is_none());

    let run = shared_data().join("vendor/xenium_experiment_file/experiment.xenium");
    let dir = xenium_folder(&[&real, &run]);
    let images = xenium::morphology(dir.path()).expect("placed by experiment.xenium");
    assert_eq!(images[0].microns_per_pixel, 0.2125);
}

/// A truncated pyramid: the levels whose tiles are gone are refused naming the file and the
/// chunk, and nothing panics.
#[test]
fn truncated_morphology_is_refused_naming_the_chunk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = focus_dir().join("morphology_focus_0000.ome.tif");
    let bytes = std::fs::read(&src).expect("read");
    let cut = tmp.path().join("cut.ome.tif");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
    match OmeTiff::open(&cut) {
        Err(e) => assert!(e.to_string().contains("cut.ome.tif"), "{e}"),
        Ok(t) => {
            let l = &t.levels[0];
            let e = t
                .read_region(0, [0, 0, l.width, l.height])
                .expect_err("tiles past the end")
                .to_string();
            assert!(e.contains("cut.ome.tif") && e.contains("chunk"), "{e}");
        }
    }
    let e = OmeTiff::open(&tmp.path().join("none.ome.tif")).expect_err("missing");
    assert!(e.to_string().contains("none.ome.tif"));
}

/// A zoomed-in window is read at the finest level whose pixels fit, placed on the micron grid
/// of that level, stretched like the whole image; a window no finer than the whole image's
/// texture is not read.
#[test]
fn detail_windows_read_the_finest_level_that_fits() {
    use cellscope::pipeline::jobs::detail::{DetailRequest, load_detail};
    use cellscope::pipeline::jobs::open::{Placement, grey_range};
    let path = focus_dir().join("morphology_focus_0000.ome.tif");
    let image = ImageRequest::new(path.clone(), Placement::scale(0.2125));
    let whole = OmeTiff::open(&path).expect("open");
    let l0 = &whole.levels[0];
    let px = whole
        .read_region(0, [0, 0, l0.width, l0.height])
        .expect("read");
    let g = image::ImageBuffer::from_raw(l0.width, l0.height, px).expect("image");
    let range = grey_range(&g, Contrast::default());
    let nucleus = &reference()["nuclei_um"][0];
    let (nx, ny) = (
        nucleus[0].as_f64().expect("x"),
        nucleus[1].as_f64().expect("y"),
    );
    let window = [nx - 15.0, ny - 15.0, nx + 15.0, ny + 15.0];
    let ask = |max_side: u32, coarsest: f64| {
        let r = DetailRequest {
            image: image.clone(),
            window,
            max_side,
            grey_range: range,
        };
        load_detail(&r, coarsest).expect("read a window")
    };
    // 30 µm at 0.2125 µm per pixel is 142 pixels: level 0 fits 1,000.
    let d = ask(1000, 1.0).expect("a finer window");
    assert_eq!(d.level, 0);
    assert_eq!(d.placement.data_per_pixel, 0.2125);
    let (ox, oy) = (d.placement.origin[0], d.placement.origin[1]);
    assert!(
        ox <= window[0] && ox > window[0] - 0.2125,
        "on the pixel grid: {ox}"
    );
    // The saturated pixels (the nucleus's top) centre on the nucleus.
    let white: Vec<(f64, f64)> = d
        .image
        .enumerate_pixels()
        .filter(|(_, _, p)| p[0] == 255)
        .map(|(x, y, _)| {
            (
                ox + (f64::from(x) + 0.5) * 0.2125,
                oy + (f64::from(y) + 0.5) * 0.2125,
            )
        })
        .collect();
    let n = white.len() as f64;
    let centre = (
        white.iter().map(|p| p.0).sum::<f64>() / n,
        white.iter().map(|p| p.1).sum::<f64>() / n,
    );
    assert!(
        n > 0.0 && (centre.0 - nx).abs() < 0.5 && (centre.1 - ny).abs() < 0.5,
        "the nucleus at {nx},{ny} µm is where the window is white: {centre:?}"
    );
    // 50 pixels a side: level 2 (0.85 µm per pixel, 36 pixels) is the finest that fits.
    let d = ask(50, 1.0).expect("a coarser window");
    assert_eq!((d.level, d.placement.data_per_pixel), (2, 0.85));
    // No level finer than the texture's 0.8 µm per pixel fits 50 pixels: nothing is read.
    assert!(ask(50, 0.8).is_none());
}

/// Hostile images: random bytes named .ome.tif are refused naming the file; a single-level
/// image far larger than a texture is refused for display instead of being decoded whole.
#[test]
fn hostile_images_are_refused_not_decoded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let noise = tmp.path().join("noise.ome.tif");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&noise, bytes).expect("write");
    let e = OmeTiff::open(&noise).expect_err("not a TIFF").to_string();
    assert!(e.contains("noise.ome.tif"), "{e}");
    let placement = cellscope::pipeline::jobs::open::Placement::scale(1.0);
    assert!(load_image(&ImageRequest::new(noise, placement)).is_err());

    let wide = tmp.path().join("wide.ome.tif");
    let file = std::io::BufWriter::new(std::fs::File::create(&wide).expect("create"));
    let mut enc = tiff::encoder::TiffEncoder::new(file).expect("encoder");
    let px = vec![7u16; 20_000];
    enc.write_image::<tiff::encoder::colortype::Gray16>(20_000, 1, &px)
        .expect("write");
    drop(enc);
    let t = OmeTiff::open(&wide).expect("a valid TIFF");
    assert_eq!(
        t.read_region(0, [0, 0, 10, 1]).expect("a window"),
        vec![7u16; 10]
    );
    let e = load_image(&ImageRequest::new(wide, placement)).expect_err("too large to show whole");
    assert!(e.to_string().contains("pyramid level"), "{e}");
}
