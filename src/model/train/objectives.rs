//! Self-supervised objectives with the paper's settings, and the gene programmes the masking
//! objectives hide (from a GMT file, [`crate::data::gene_sets`]).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Gene programmes (MSigDB-style GMT), as indices into a model's genes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programmes {
    /// Programme names.
    pub names: Vec<String>,
    /// Gene indices (into the model's genes) per programme, non-empty, ascending.
    pub genes: Vec<Vec<u32>>,
    /// Per programme, the model gene of the transcription factor its name starts with
    /// (`ATF1_TARGET_GENES` -> ATF1, MSigDB C3 TFT naming), when the model has it.
    pub regulators: Vec<Option<u32>>,
    /// The GMT file.
    pub source: String,
}

impl Programmes {
    /// Reads a GMT file (`name<TAB>description<TAB>gene1<TAB>gene2...` per line) and matches
    /// its genes to `genes` by upper-case symbol (SSL_MODELS.md). Programmes with no matched
    /// gene are dropped.
    ///
    /// # Errors
    /// [`TrainError::Data`]: unreadable file, a line with fewer than three fields;
    /// [`TrainError::Gmt`]: no programme matching any gene.
    pub fn read_gmt(path: &std::path::Path, genes: &GeneList) -> Result<Self, TrainError> {
        let sets = crate::data::gene_sets::read_gmt(path)?;
        let index: std::collections::HashMap<String, u32> = genes
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_uppercase(), i as u32))
            .collect();
        let (mut names, mut matched, mut regulators) = (Vec::new(), Vec::new(), Vec::new());
        for set in sets {
            let mut g: Vec<u32> = set
                .genes
                .iter()
                .filter_map(|s| index.get(&s.to_uppercase()).copied())
                .collect();
            g.sort_unstable();
            g.dedup();
            if !g.is_empty() {
                let tf = set
                    .name
                    .split('_')
                    .next()
                    .unwrap_or_default()
                    .to_uppercase();
                regulators.push(index.get(&tf).copied());
                names.push(set.name);
                matched.push(g);
            }
        }
        if matched.is_empty() {
            return Err(TrainError::Gmt {
                file: path.display().to_string(),
                message: format!(
                    "no programme shares a gene symbol with the model's {} genes",
                    genes.len()
                ),
            });
        }
        Ok(Programmes {
            names,
            genes: matched,
            regulators,
            source: path.display().to_string(),
        })
    }

    /// The programmes whose transcription factor is one of the model's genes (what gp_to_tf
    /// trains on).
    ///
    /// # Errors
    /// [`TrainError::Gmt`] when no programme name starts with a model gene's symbol.
    pub fn with_regulators(&self) -> Result<Self, TrainError> {
        let keep: Vec<usize> = (0..self.genes.len())
            .filter(|&i| self.regulators[i].is_some())
            .collect();
        if keep.is_empty() {
            return Err(TrainError::Gmt {
                file: self.source.clone(),
                message: "gp-to-tf needs transcription-factor programmes named \
                          <FACTOR>_TARGET_GENES (MSigDB C3 TFT) whose factor is one of the \
                          model's genes; none is"
                    .into(),
            });
        }
        Ok(Programmes {
            names: keep.iter().map(|&i| self.names[i].clone()).collect(),
            genes: keep.iter().map(|&i| self.genes[i].clone()).collect(),
            regulators: keep.iter().map(|&i| self.regulators[i]).collect(),
            source: self.source.clone(),
        })
    }
}

/// A self-supervised objective.
#[derive(Debug, Clone)]
pub enum Objective {
    /// Each entry masked with probability `rate`; visible input scaled by `1/(1-rate)`.
    RandomMask {
        /// Masking rate (0.5).
        rate: f64,
    },
    /// `floor(n_programmes * rate)` whole programmes hidden in the whole batch (genes in
    /// several programmes are hidden when any of them is), [`gp_mask`].
    GpMask {
        /// The programmes.
        programmes: Programmes,
        /// Fraction of the programmes hidden (0.5).
        rate: f64,
    },
    /// One programme, the same for the batch, is all the encoder sees; every other gene is
    /// reconstructed ([`isolated_mask`]).
    Isolated {
        /// The programmes.
        programmes: Programmes,
    },
    /// One transcription factor's target programme per cell as input, the loss on every other
    /// output ([`gp_to_tf_mask`]).
    GpToTf {
        /// Programmes with their factor ([`Programmes::with_regulators`]).
        programmes: Programmes,
    },
    /// Barlow Twins on two augmented views.
    BarlowTwins {
        /// Off-diagonal weight (0.0051).
        lambda: f64,
        /// Projector widths after the embedding (`[256, 256, 512, 512]`).
        projector: Vec<usize>,
    },
    /// BYOL with an EMA target.
    Byol {
        /// EMA decay (0.99).
        tau: f64,
        /// Projector / predictor hidden width (4096).
        hidden: usize,
        /// Projection width (256).
        out: usize,
    },
    /// SimCLR (NT-Xent) on two augmented views, scSSL-Bench's way.
    Simclr {
        /// The NT-Xent temperature (0.5).
        temperature: f64,
        /// The common settings of the generic objectives.
        generic: Generic,
    },
    /// VICReg on two augmented views, scSSL-Bench's way.
    Vicreg {
        /// Term weights (5, 5, 1).
        weights: VicregWeights,
        /// The common settings of the generic objectives.
        generic: Generic,
    },
}

/// What SimCLR and VICReg share: the encoder trained, the projection width and the views'
/// augmentations.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Generic {
    /// The bench's encoder or the ssl_in_scg backbone.
    pub encoder: crate::model::bench::EncoderKind,
    /// Projection head width (256).
    pub head_width: usize,
    /// The views' augmentations (masking keeping half the genes).
    pub augment: Augmentations,
}

impl Default for Generic {
    fn default() -> Self {
        Generic {
            encoder: crate::model::bench::EncoderKind::Bench,
            head_width: 256,
            augment: Augmentations::default(),
        }
    }
}

/// Which self-supervised objective, without its settings (what a user picks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ObjectiveKind {
    /// Masked autoencoder, random masking.
    RandomMask,
    /// Masked autoencoder, gene-programme masking (needs a GMT file).
    GpMask,
    /// Masked autoencoder, isolated masking: one programme kept (needs a GMT file).
    Isolated,
    /// Masked autoencoder from a transcription factor's programme to the rest (needs a GMT
    /// file of factor target sets, MSigDB C3 TFT).
    GpToTf,
    /// Barlow Twins.
    BarlowTwins,
    /// BYOL.
    Byol,
    /// SimCLR (scSSL-Bench).
    Simclr,
    /// VICReg (scSSL-Bench).
    Vicreg,
}

impl ObjectiveKind {
    /// Every objective, in the order menus list them.
    pub const ALL: [ObjectiveKind; 8] = [
        ObjectiveKind::RandomMask,
        ObjectiveKind::GpMask,
        ObjectiveKind::Isolated,
        ObjectiveKind::GpToTf,
        ObjectiveKind::BarlowTwins,
        ObjectiveKind::Byol,
        ObjectiveKind::Simclr,
        ObjectiveKind::Vicreg,
    ];

    /// The objective's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::RandomMask => "random-mask",
            ObjectiveKind::GpMask => "gp-mask",
            ObjectiveKind::Isolated => "isolated",
            ObjectiveKind::GpToTf => "gp-to-tf",
            ObjectiveKind::BarlowTwins => "barlow-twins",
            ObjectiveKind::Byol => "byol",
            ObjectiveKind::Simclr => "simclr",
            ObjectiveKind::Vicreg => "vicreg",
        }
    }

    /// Whether the objective needs gene programmes (a GMT file).
    pub fn needs_programmes(self) -> bool {
        matches!(
            self,
            ObjectiveKind::GpMask | ObjectiveKind::Isolated | ObjectiveKind::GpToTf
        )
    }

    /// Whether the objective trains a masked autoencoder (which has a reconstruction to
    /// evaluate).
    pub fn is_masked(self) -> bool {
        !matches!(
            self,
            ObjectiveKind::BarlowTwins
                | ObjectiveKind::Byol
                | ObjectiveKind::Simclr
                | ObjectiveKind::Vicreg
        )
    }

    /// Whether this is one of scSSL-Bench's generic objectives (SimCLR, VICReg), which train
    /// the bench's encoder on augmented views.
    pub fn is_generic(self) -> bool {
        matches!(self, ObjectiveKind::Simclr | ObjectiveKind::Vicreg)
    }

    /// The recipe's learning rate and weight decay: AdamW 1e-3 / 0.01 for the masked
    /// autoencoders (SSL_MODELS.md), 0.01 / 1e-5 for Barlow Twins and BYOL
    /// (`scripts/pretraining/contrastive/{BarlowTwins/BT.sh,BYOL/BYOL.sh}` of ssl_in_scg),
    /// 1e-4 / 1e-6 for SimCLR and VICReg (scSSL-Bench, SEED_METHODS.md).
    pub fn recipe(self) -> (f64, f64) {
        if self.is_masked() {
            (1e-3, 0.01)
        } else if self.is_generic() {
            (1e-4, 1e-6)
        } else {
            (0.01, 1e-5)
        }
    }
}

impl std::fmt::Display for ObjectiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Objective {
    /// Which objective this is.
    pub fn kind(&self) -> ObjectiveKind {
        match self {
            Objective::RandomMask { .. } => ObjectiveKind::RandomMask,
            Objective::GpMask { .. } => ObjectiveKind::GpMask,
            Objective::Isolated { .. } => ObjectiveKind::Isolated,
            Objective::GpToTf { .. } => ObjectiveKind::GpToTf,
            Objective::BarlowTwins { .. } => ObjectiveKind::BarlowTwins,
            Objective::Byol { .. } => ObjectiveKind::Byol,
            Objective::Simclr { .. } => ObjectiveKind::Simclr,
            Objective::Vicreg { .. } => ObjectiveKind::Vicreg,
        }
    }

    /// The objective's command-line name.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The paper's defaults for an objective; gene-programme objectives need `programmes`.
    ///
    /// # Errors
    /// A gene-programme objective without programmes.
    pub fn new(kind: ObjectiveKind, programmes: Option<Programmes>) -> Result<Self, TrainError> {
        let need = |p: Option<Programmes>| {
            p.ok_or_else(|| TrainError::Invalid(format!("--objective {kind} needs --gmt FILE")))
        };
        Ok(match kind {
            ObjectiveKind::RandomMask => Objective::RandomMask { rate: 0.5 },
            ObjectiveKind::GpMask => Objective::GpMask {
                programmes: need(programmes)?,
                rate: 0.5,
            },
            ObjectiveKind::Isolated => Objective::Isolated {
                programmes: need(programmes)?,
            },
            ObjectiveKind::GpToTf => Objective::GpToTf {
                programmes: need(programmes)?.with_regulators()?,
            },
            ObjectiveKind::BarlowTwins => Objective::BarlowTwins {
                lambda: 0.0051,
                projector: vec![256, 256, 512, 512],
            },
            ObjectiveKind::Byol => Objective::Byol {
                tau: 0.99,
                hidden: 4096,
                out: 256,
            },
            ObjectiveKind::Simclr => Objective::Simclr {
                temperature: 0.5,
                generic: Generic::default(),
            },
            ObjectiveKind::Vicreg => Objective::Vicreg {
                weights: VicregWeights::BENCH,
                generic: Generic::default(),
            },
        })
    }

    /// The objective with `generic` settings (SimCLR and VICReg; others are returned as they
    /// are).
    pub fn with_generic(mut self, settings: Generic) -> Self {
        if let Objective::Simclr { generic, .. } | Objective::Vicreg { generic, .. } = &mut self {
            *generic = settings;
        }
        self
    }
}
