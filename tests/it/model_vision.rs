//! Slide images and image encoders: patches cut from a real H&E JPEG (HER2+ B4) as mclSTExp cuts
//! them (within half a level of PIL's decoding on average), and ResNet (basic and bottleneck) and
//! DenseNet features (both poolings) on those patches against timm on PyTorch with the same random weights
//! (`tests/fixtures/vision/make_encoder_reference.py`), within 1e-4 relative; a tiled TIFF read
//! region by region; tissue detection; bad inputs.

use burn::tensor::Device;
use cellscope::data::slide::{SlideImage, spot_patches};
use cellscope::data::tissue::{otsu_threshold, tissue_grid};
use cellscope::model::nets::tensor_values;
use cellscope::model::vision::builtin::Builtin;
use cellscope::model::vision::{ImageEncoder, Normalization, Pooling, patches_tensor};

use super::common::{fixture, fixture_json, shared_data};

fn b4_patches(n: usize, size: u32) -> Vec<image::RgbImage> {
    let a = cellscope::data::open(&shared_data().join("her2st_B4.h5ad")).expect("read B4");
    let sp = &a.obsm["spatial"];
    let centres: Vec<[f64; 2]> = (0..n).map(|i| [sp[[i, 0]], sp[[i, 1]]]).collect();
    let slide = SlideImage::open(&shared_data().join("her2st_B4_HE.jpg")).expect("open JPEG");
    spot_patches(&slide, &centres, size).expect("patches")
}

#[test]
fn encoders_match_timm_on_real_he_patches() {
    let r = fixture_json("vision/encoder_reference.json");
    let n = r["spots"].as_array().expect("spots").len();
    let patches = b4_patches(n, r["size"].as_u64().expect("size") as u32);
    let sums = |key: &str| -> Vec<u64> {
        let v = r[key].as_array().expect("sums");
        v.iter().map(|v| v.as_u64().expect("sum")).collect()
    };
    let (reference, pil) = (sums("pixel_sums"), sums("pil_pixel_sums"));
    let values = 3.0 * patches[0].width() as f64 * patches[0].height() as f64;
    for (i, p) in patches.iter().enumerate() {
        let sum: u64 = p.as_raw().iter().map(|&v| u64::from(v)).sum();
        assert_eq!(
            sum, reference[i],
            "patch {i}: not the pixels the reference ran on"
        );
        // zune-jpeg and PIL's libjpeg-turbo differ by a fraction of a level on average.
        let mean_diff = (sum as f64 - pil[i] as f64).abs() / values;
        assert!(
            mean_diff < 0.5,
            "patch {i}: mean level difference from PIL {mean_diff}"
        );
    }
    let device = Device::flex();
    let x = patches_tensor(&patches, Normalization::UnitRange, &device);
    let files = [
        (
            "resnet_basic",
            "resnet_basic.safetensors",
            Pooling::PreLogits,
            "features",
        ),
        (
            "resnet_basic",
            "resnet_basic.pth",
            Pooling::Features,
            "features",
        ),
        (
            "resnet_bottleneck",
            "resnet_bottleneck.safetensors",
            Pooling::PreLogits,
            "features",
        ),
        (
            "densenet",
            "densenet.safetensors",
            Pooling::PreLogits,
            "features",
        ),
        (
            "densenet",
            "densenet.safetensors",
            Pooling::Features,
            "features_no_relu",
        ),
    ];
    for (name, file, pooling, key) in files {
        let enc = ImageEncoder::load(&fixture(&format!("vision/{file}")), &device).expect(file);
        let m = &r["models"][name];
        assert_eq!(
            enc.feature_dim() as u64,
            m["dim"].as_u64().expect("dim"),
            "{file}"
        );
        let got = tensor_values(enc.features_with(x.clone(), pooling));
        let want: Vec<f64> = m[key]
            .as_array()
            .expect(key)
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("f"))
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{file}");
        let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs() / scale)
            .fold(0f64, f64::max);
        assert!(
            worst < 1e-4,
            "{file} {key}: worst relative difference {worst:e}"
        );
    }
}

#[test]
fn encoder_of_another_architecture_is_a_clear_error() {
    let device = Device::flex();
    // A ssl_in_scg checkpoint: tensors, but no image network.
    let file = fixture("models/byol.pt");
    if file.exists() {
        let e = ImageEncoder::load(&file, &device).expect_err("not an image encoder");
        assert!(e.to_string().contains("not a ResNet"), "{e}");
    }
    let missing =
        ImageEncoder::load(&fixture("vision/nope.safetensors"), &device).expect_err("missing");
    assert!(
        missing.to_string().contains("nope.safetensors"),
        "{missing}"
    );
}

#[test]
fn tiled_tiff_regions_match_the_pixels_and_pad_outside() {
    // A synthetic 300 x 200 RGB image written as a tiled (64 px), Deflate-compressed TIFF (and
    // BigTIFF) by
    // tests/fixtures/vision/make_tiled_tiff.py: pixel (x, y) = (x % 256, y % 256, (x + y) % 256).
    let slide = SlideImage::open(&fixture("vision/tiled_rgb.tif")).expect("tiled TIFF");
    assert_eq!((slide.width, slide.height), (300, 200));
    assert!(
        slide.levels.len() >= 2,
        "pyramid levels: {:?}",
        slide.levels
    );
    let big = SlideImage::open(&fixture("vision/tiled_rgb_big.tif")).expect("tiled BigTIFF");
    for s in [&slide, &big] {
        let r = s.read_region(250, 150, 80, 70).expect("region");
        for (x, y, p) in r.enumerate_pixels() {
            let (gx, gy) = (250 + x, 150 + y);
            let want = if gx < 300 && gy < 200 {
                [(gx % 256) as u8, (gy % 256) as u8, ((gx + gy) % 256) as u8]
            } else {
                [0, 0, 0]
            };
            assert_eq!(p.0, want, "{}: pixel ({gx}, {gy})", s.path.display());
        }
    }
    let (thumb, scale) = slide.thumbnail(100).expect("thumbnail");
    assert_eq!(thumb.width(), 100);
    assert!((scale - 100.0 / 300.0).abs() < 1e-9);
}

#[test]
fn tissue_grid_covers_the_stained_section_not_the_glass() {
    let slide = SlideImage::open(&shared_data().join("her2st_B4_HE.jpg")).expect("open JPEG");
    let grid = tissue_grid(&slide, 224, 0.5).expect("grid");
    let total = (slide.width / 224) * (slide.height / 224);
    assert!(
        grid.len() > 50 && grid.len() < total as usize,
        "{} of {total}",
        grid.len()
    );
    // The measured spots lie on tissue: most have a grid patch within one patch width.
    let a = cellscope::data::open(&shared_data().join("her2st_B4.h5ad")).expect("read B4");
    let sp = &a.obsm["spatial"];
    let near = (0..a.n_obs())
        .filter(|&i| {
            grid.iter()
                .any(|g| (g[0] - sp[[i, 0]]).abs() <= 224.0 && (g[1] - sp[[i, 1]]).abs() <= 224.0)
        })
        .count();
    assert!(
        near as f64 > 0.9 * a.n_obs() as f64,
        "{near} of {} spots near tissue",
        a.n_obs()
    );
}

#[test]
fn otsu_splits_two_modes() {
    let mut h = [0u64; 256];
    h[40] = 100;
    h[41] = 50;
    h[200] = 80;
    h[210] = 80;
    let t = otsu_threshold(&h);
    assert!((41..200).contains(&t), "{t}");
}

#[test]
fn spots_off_the_image_and_broken_images_are_clear_errors() {
    let slide = SlideImage::open(&shared_data().join("her2st_C2_HE.jpg")).expect("open JPEG");
    let e = spot_patches(&slide, &[[10.0, 10.0], [1e6, 5.0]], 224).expect_err("outside");
    assert!(
        e.to_string().contains("spot 1") && e.to_string().contains("outside"),
        "{e}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = std::fs::read(shared_data().join("her2st_C2_HE.jpg")).expect("read");
    let cut = dir.path().join("truncated.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 50]).expect("write");
    match SlideImage::open(&cut) {
        Err(e) => assert!(e.to_string().contains("truncated.jpg"), "{e}"),
        // Decoders may fill a truncated JPEG's missing rows: then it must still be the size
        // its header says.
        Ok(s) => assert_eq!((s.width, s.height), (slide.width, slide.height)),
    }
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"not an image at all").expect("write");
    let e = SlideImage::open(&text).expect_err("not an image");
    assert!(e.to_string().contains("notes.png"), "{e}");
}

#[test]
fn histology_features_cli_writes_features_and_reuses_the_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    // A copy of a real slide in a writable folder, so the cache lands beside it.
    let image = dir.path().join("C3_HE.jpg");
    std::fs::copy(shared_data().join("her2st_C3_HE.jpg"), &image).expect("copy");
    let spots = shared_data().join("her2st_C3.h5ad");
    let run = |out: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
            .args(["histology", "features", "--image"])
            .arg(&image)
            .arg("--spots")
            .arg(&spots)
            .arg("--encoder")
            .arg(fixture("vision/densenet.safetensors"))
            .args(["--backend", "cpu", "--out"])
            .arg(dir.path().join(out))
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = run("f1.h5ad");
    assert!(!first.contains("from the cache"), "{first}");
    let cache = dir.path().join("C3_HE.jpg.cellscope-features");
    assert_eq!(std::fs::read_dir(&cache).expect("cache folder").count(), 1);
    let second = run("f2.h5ad");
    assert!(second.contains("from the cache"), "{second}");
    let a = cellscope::data::open(&dir.path().join("f1.h5ad")).expect("read f1");
    let b = cellscope::data::open(&dir.path().join("f2.h5ad")).expect("read f2");
    let s = cellscope::data::open(&spots).expect("spots");
    assert_eq!((a.n_obs(), a.n_vars()), (s.n_obs(), 25));
    assert_eq!(a.obs_names(), s.obs_names());
    assert_eq!(a.obsm["spatial"], s.obsm["spatial"]);
    assert_eq!(
        a.x.to_csr().to_dense(),
        b.x.to_csr().to_dense(),
        "cached features differ"
    );
    // Features of the same patches through the library agree with the file's.
    let slide = SlideImage::open(&image).expect("open");
    let c: Vec<[f64; 2]> = (0..3)
        .map(|i| [s.obsm["spatial"][[i, 0]], s.obsm["spatial"][[i, 1]]])
        .collect();
    let p = spot_patches(&slide, &c, 224).expect("patches");
    let device = Device::flex();
    let enc = ImageEncoder::load(&fixture("vision/densenet.safetensors"), &device).expect("enc");
    let x = patches_tensor(&p, Normalization::UnitRange, &device);
    let f = tensor_values(enc.features_with(x, Pooling::Features));
    let x = a.x.to_csr().to_dense();
    for (k, v) in f.iter().enumerate() {
        let (i, j) = (k / 25, k % 25);
        assert!(
            (x[[i, j]] - v).abs() <= 1e-5 * v.abs().max(1.0),
            "({i}, {j})"
        );
    }
}

#[test]
fn histology_features_on_a_tissue_grid_without_spots() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("grid.h5ad");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args([
            "histology",
            "features",
            "--grid",
            "--patch",
            "448",
            "--no-cache",
            "--image",
        ])
        .arg(shared_data().join("her2st_C5_HE.jpg"))
        .arg("--encoder")
        .arg(fixture("vision/resnet_basic.safetensors"))
        .args(["--backend", "cpu", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = cellscope::data::open(&out).expect("read");
    assert!(a.n_obs() > 20, "{} tissue patches", a.n_obs());
    assert_eq!(a.n_vars(), 32);
    assert!(a.obs_names()[0].starts_with("patch_"));
}

#[test]
fn builtin_random_encoders_have_timms_architecture() {
    let r = fixture_json("vision/architectures.json");
    for (name, spec) in [
        ("densenet121", "random:densenet121:3"),
        ("resnet18", "random:resnet18"),
    ] {
        let b = Builtin::parse(spec).expect("built-in").expect("valid");
        let sd = b.state_dict().expect("a network");
        let want = r[name].as_object().expect("keys");
        let got: std::collections::BTreeMap<&str, Vec<u64>> = sd
            .tensors
            .iter()
            .map(|(k, t)| (k.as_str(), t.shape.iter().map(|&d| d as u64).collect()))
            .collect();
        for (k, shape) in want {
            // timm's classifier (`classifier`, `fc`) is not part of the feature extractor.
            if k.starts_with("classifier") || k.starts_with("fc.") {
                continue;
            }
            let shape: Vec<u64> = shape
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().expect("d"))
                .collect();
            assert_eq!(got.get(k.as_str()), Some(&shape), "{name}: {k}");
        }
        let enc = ImageEncoder::from_state_dict(&sd, std::path::Path::new(spec), &Device::flex())
            .expect("loads");
        let dim = if name == "densenet121" { 1024 } else { 512 };
        assert_eq!(enc.feature_dim(), dim, "{name}");
    }
    assert!(
        Builtin::parse("random:vgg16")
            .expect("a built-in name")
            .is_err()
    );
    assert!(Builtin::parse("weights.safetensors").is_none());
}

#[test]
fn colour_texture_statistics_separate_stain_from_glass() {
    use cellscope::model::vision::builtin::colour_texture;
    let glass = image::RgbImage::from_pixel(32, 32, image::Rgb([235, 230, 240]));
    let mut stain = image::RgbImage::from_pixel(32, 32, image::Rgb([120, 60, 160]));
    for x in (0..32).step_by(4) {
        for y in 0..32 {
            stain.put_pixel(x, y, image::Rgb([40, 20, 90]));
        }
    }
    let (g, s) = (colour_texture(&glass), colour_texture(&stain));
    assert!(
        s[6] > 3.0 * g[6],
        "saturation: stain {} vs glass {}",
        s[6],
        g[6]
    );
    assert!(
        g[10] < 1e-6 && s[10] > 0.1,
        "gradient: glass {} vs stain {}",
        g[10],
        s[10]
    );
    assert!(
        (g[0] - 235.0 / 255.0).abs() < 1e-6 && g[1] < 1e-6,
        "flat glass: mean R, sd R"
    );
}

#[test]
fn augmentations_are_seeded_and_keep_what_they_should() {
    use cellscope::data::rng::Rng;
    use cellscope::model::vision::augment::{Augment, colour_jitter, rotate};
    let p = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
    });
    // Identity factors and a zero rotation change nothing.
    assert_eq!(colour_jitter(&p, 1.0, 1.0, 1.0), p);
    assert_eq!(rotate(&p, 0.0), p);
    // A half turn maps (x, y) to (w-1-x, h-1-y).
    let r = rotate(&p, 180.0);
    assert_eq!(r.get_pixel(0, 0), p.get_pixel(39, 29));
    assert_eq!(r.get_pixel(10, 5), p.get_pixel(29, 24));
    // Zero saturation leaves grey; zero contrast leaves the mean grey everywhere.
    let g = colour_jitter(&p, 1.0, 1.0, 0.0);
    assert!(
        g.pixels()
            .all(|q| q.0[0].abs_diff(q.0[1]) <= 1 && q.0[1].abs_diff(q.0[2]) <= 1)
    );
    let flat = colour_jitter(&p, 1.0, 0.0, 1.0);
    assert!(flat.pixels().all(|q| q == flat.get_pixel(0, 0)));
    // Seeded: same seed, same patch; another seed, another patch.
    let a = Augment::default();
    let one = a.apply(&p, &mut Rng::new(7));
    assert_eq!(one, a.apply(&p, &mut Rng::new(7)));
    assert_ne!(one, a.apply(&p, &mut Rng::new(8)));
}

#[test]
fn simclr_encoder_pretrains_on_tiles_and_serves_as_an_encoder() {
    let dir = tempfile::tempdir().expect("tmp");
    let enc = dir.path().join("ssl.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(["histology", "pretrain-encoder", "--images"])
        .arg(shared_data().join("her2st_C5_HE.jpg"))
        .args([
            "--tile",
            "448",
            "--max-tiles",
            "48",
            "--epochs",
            "2",
            "--batch-size",
            "16",
        ])
        .args(["--backend", "cpu", "--out"])
        .arg(&enc)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("on 48 tiles"), "{text}");
    assert_eq!(cellscope::model::vision::simclr::input_px(&enc), Some(64));
    let e = ImageEncoder::load(&enc, &Device::flex()).expect("a ResNet in timm's layout");
    assert_eq!(e.feature_dim(), 128);
    assert!(
        e.describe().contains("basic blocks [1, 1, 1, 1]"),
        "{}",
        e.describe()
    );
    // Through the feature job (patches downsampled to the encoder's 64 px).
    let out = dir.path().join("f.h5ad");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(["histology", "features", "--no-cache", "--image"])
        .arg(shared_data().join("her2st_C5_HE.jpg"))
        .arg("--spots")
        .arg(shared_data().join("her2st_C5.h5ad"))
        .arg("--encoder")
        .arg(&enc)
        .args(["--backend", "cpu", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x = cellscope::data::open(&out)
        .expect("features")
        .x
        .to_csr()
        .to_dense();
    assert_eq!(x.ncols(), 128);
    let spread: f32 = x
        .columns()
        .into_iter()
        .map(|c| {
            let m = c.mean().unwrap_or(0.0);
            c.iter().map(|v| (v - m).abs()).sum::<f32>()
        })
        .sum();
    assert!(
        x.iter().all(|v| v.is_finite()) && spread > 0.0,
        "features vary across spots"
    );
}
