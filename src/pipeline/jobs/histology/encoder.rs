//! Pre-training the small SimCLR image encoder ([`crate::model::vision::simclr`]) on tiles of
//! the slides themselves: a grid of tiles over each image's detected tissue, downsampled, two
//! augmented views each.

use std::path::PathBuf;

use burn::tensor::Device;

use crate::data::rng::Rng;
use crate::data::slide::{SlideImage, spot_patches};
use crate::data::tissue::tissue_grid;
use crate::model::vision::simclr::{SimClr, SimClrTraining, downsample, pretrain};
use crate::pipeline::jobs::{Handle, JobError, Progress, Step};

/// Parameters of [`pretrain_encoder`].
#[derive(Debug, Clone)]
pub struct EncoderParams {
    /// Slide images.
    pub images: Vec<PathBuf>,
    /// Tile side in full-resolution pixels (224, mclSTExp's patch).
    pub tile: u32,
    /// Minimum tissue fraction of a tile.
    pub min_tissue: f64,
    /// At most this many tiles (a seeded sample when there are more).
    pub max_tiles: usize,
    /// Training recipe.
    pub training: SimClrTraining,
    /// Compute device.
    pub device: Device,
}

/// A pre-trained encoder.
pub struct PretrainedEncoder {
    /// The network.
    pub net: SimClr,
    /// Tiles it was trained on.
    pub tiles: usize,
    /// Last epoch's mean loss.
    pub final_loss: f64,
}

/// Cuts the tiles and pre-trains ([`Step::Open`] per image, [`Progress::Fit`] per epoch).
///
/// # Errors
/// [`JobError::Data`] for unreadable images; [`JobError::Input`] when no tissue is found or
/// there are no images; [`JobError::Train`] / [`JobError::Cancelled`].
pub fn pretrain_encoder(
    p: &EncoderParams,
    h: &mut Handle<'_>,
) -> Result<PretrainedEncoder, JobError> {
    if p.images.is_empty() {
        return Err(JobError::Input("no images to pre-train on".into()));
    }
    let mut tiles = Vec::new();
    for (i, path) in p.images.iter().enumerate() {
        h.check()?;
        h.step(Step::Open, i as f32 / p.images.len() as f32);
        let slide = SlideImage::open(path)?;
        let grid = tissue_grid(&slide, p.tile, p.min_tissue)?;
        for chunk in grid.chunks(64) {
            tiles.extend(spot_patches(&slide, chunk, p.tile)?.iter().map(downsample));
        }
    }
    h.step(Step::Open, 1.0);
    if tiles.len() < 2 {
        return Err(JobError::Input(format!(
            "{} tissue tile(s) of {} px in {} image(s): too few to pre-train on",
            tiles.len(),
            p.tile,
            p.images.len()
        )));
    }
    if tiles.len() > p.max_tiles {
        Rng::new(p.training.seed).shuffle(&mut tiles);
        tiles.truncate(p.max_tiles);
    }
    let cancel = h.cancel_flag().clone();
    let mut final_loss = f64::NAN;
    let mut report = |epoch, epochs, loss| {
        final_loss = loss;
        h.report(Progress::Fit {
            step: Step::Train,
            epoch,
            epochs,
            loss,
        });
    };
    let net =
        pretrain(&tiles, &p.training, &p.device, &cancel, &mut report).map_err(|e| match e {
            crate::model::train::TrainError::Cancelled => JobError::Cancelled,
            e => JobError::Train(e),
        })?;
    Ok(PretrainedEncoder {
        net,
        tiles: tiles.len(),
        final_loss,
    })
}
