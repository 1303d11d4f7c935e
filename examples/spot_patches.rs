//! Writes the spot patches cellscope cuts from a slide image as a numpy `.npy` array
//! (`uint8`, `[n, size, size, 3]`), so a Python reference (tests/fixtures/vision/
//! make_encoder_reference.py) runs on exactly the pixels cellscope decoded: JPEG decoders
//! differ by a fraction of a level (zune-jpeg here, libjpeg-turbo in PIL: mean 0.27 on HER2+
//! B4), enough to move features by 1e-3.
//!
//!     cargo run --release --example spot_patches -- IMAGE SPOTS.h5ad N SIZE OUT.npy

use std::io::Write;
use std::path::PathBuf;

use cellscope::data::slide::{SlideImage, spot_patches};

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        a.len() == 5,
        "usage: spot_patches IMAGE SPOTS.h5ad N SIZE OUT.npy"
    );
    let (n, size): (usize, u32) = (a[2].parse()?, a[3].parse()?);
    let spots = cellscope::data::open(&PathBuf::from(&a[1]))?;
    let sp = spots
        .obsm
        .get("spatial")
        .ok_or_else(|| anyhow::anyhow!("{}: no obsm['spatial']", a[1]))?;
    let centres: Vec<[f64; 2]> = (0..n.min(sp.nrows()))
        .map(|i| [sp[[i, 0]], sp[[i, 1]]])
        .collect();
    let slide = SlideImage::open(&PathBuf::from(&a[0]))?;
    let patches = spot_patches(&slide, &centres, size)?;
    let header = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {size}, {size}, 3), }}",
        patches.len()
    );
    // .npy v1: magic, version, header length, header padded with spaces to 64 bytes, newline.
    let pad = 64 - (10 + header.len() + 1) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad % 64));
    let mut f = std::fs::File::create(&a[4])?;
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for p in &patches {
        f.write_all(p.as_raw())?;
    }
    Ok(())
}
