//! Streaming inference: row blocks of X -> normalize_total + log1p (as the model was trained)
//! -> alignment to the model's genes (zero fill) -> batches -> [`Engine`] -> embeddings
//! `[n_cells, embedding_dim]`. Memory is bounded by the block and batch sizes plus the output,
//! not by the file. Progress is reported after every batch and a cancel flag is checked between
//! batches.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::Array2;

use crate::data::genes::{Coverage, GeneAlignment, GeneList};
use crate::data::h5ad::H5adReader;
use crate::data::preprocess::{
    InputScale, TargetSum, check_counts, log1p, median, normalize_total, row_totals,
};
use crate::data::{CsrMatrix, DataError};
use crate::model::engine::Engine;

/// The preprocessing a model expects (SSL_MODELS.md: normalise to 1e4 counts, then log1p).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocessing {
    /// `normalize_total` target; `None` = median of the cells' totals (scanpy's default).
    pub target_sum: Option<f64>,
    /// Apply `log1p` after normalising.
    pub log1p: bool,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Self {
            target_sum: Some(1e4),
            log1p: true,
        }
    }
}

/// Progress of an embedding run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedProgress {
    /// Cells embedded so far.
    pub done: usize,
    /// Cells in total.
    pub total: usize,
    /// Throughput so far (cells per second).
    pub cells_per_sec: f64,
}

/// An error while embedding.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The dataset and the model share no genes.
    #[error(
        "{file}: the dataset shares no genes with the model ({n_model} model genes, {n_data} dataset genes); check the gene list and the species (a homolog table maps mouse genes to human)"
    )]
    NoSharedGenes {
        /// The dataset.
        file: String,
        /// Model genes.
        n_model: usize,
        /// Dataset genes.
        n_data: usize,
    },
    /// X holds values that are not counts.
    #[error("{file}: X: {message}")]
    NotCounts {
        /// The dataset.
        file: String,
        /// The first offending value.
        message: String,
    },
    /// The run was cancelled.
    #[error("cancelled after {done} of {total} cells")]
    Cancelled {
        /// Cells done.
        done: usize,
        /// Cells in total.
        total: usize,
    },
}

/// Options of an embedding run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedOptions {
    /// Cells per forward pass.
    pub batch_size: usize,
    /// Rows read from disk at a time (a multiple of the batch is best).
    pub block_rows: usize,
    /// Preprocessing applied to each cell.
    pub preprocessing: Preprocessing,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            block_rows: 16_384,
            preprocessing: Preprocessing::default(),
        }
    }
}

/// The result of an embedding run.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// Embeddings, shape `(n_cells, embedding_dim)`.
    pub values: Array2<f32>,
    /// Gene coverage of the alignment.
    pub coverage: Coverage,
    /// The compute path used, in words.
    pub device: String,
    /// Cells per second over the whole run (reading included).
    pub cells_per_sec: f64,
    /// The normalize_total target used, counts per cell (the median's value when asked).
    pub target_sum: f64,
}

struct Runner<'a> {
    engine: &'a Engine,
    alignment: GeneAlignment,
    opts: EmbedOptions,
    target: TargetSum,
    /// The input's scale, judged on the first block and applied to all.
    scale: Option<InputScale>,
    out: Vec<f32>,
    dim: usize,
    total: usize,
    done: usize,
    start: Instant,
    file: String,
}

impl Runner<'_> {
    /// Preprocesses, aligns and embeds one block of dataset rows.
    fn block(
        &mut self,
        mut x: CsrMatrix,
        on_progress: &mut dyn FnMut(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<(), EmbedError> {
        check_counts(&x).map_err(|message| EmbedError::NotCounts {
            file: self.file.clone(),
            message: format!("{message} (in the block starting at cell {})", self.done),
        })?;
        self.scale
            .get_or_insert_with(|| InputScale::detect(&x))
            .to_counts_like(&mut x);
        normalize_total(&mut x, self.target);
        if self.opts.preprocessing.log1p {
            log1p(&mut x);
        }
        let m = self.alignment.map_matrix(&x);
        let mut r0 = 0;
        while r0 < m.n_rows {
            if cancel.load(Ordering::Relaxed) {
                return Err(EmbedError::Cancelled {
                    done: self.done,
                    total: self.total,
                });
            }
            let r1 = (r0 + self.opts.batch_size).min(m.n_rows);
            let e = self.engine.embed_rows(&m, r0..r1);
            self.out.extend_from_slice(&e);
            self.done += r1 - r0;
            on_progress(EmbedProgress {
                done: self.done,
                total: self.total,
                cells_per_sec: self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9),
            });
            r0 = r1;
        }
        Ok(())
    }

    fn finish(self) -> Embedding {
        let n = self.out.len() / self.dim.max(1);
        Embedding {
            values: Array2::from_shape_vec((n, self.dim), self.out)
                .unwrap_or_else(|_| Array2::zeros((0, self.dim))),
            coverage: self.alignment.coverage(),
            device: self.engine.description().to_string(),
            cells_per_sec: self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9),
            target_sum: match self.target {
                TargetSum::Fixed(t) => t,
                TargetSum::Median => f64::NAN,
            },
        }
    }
}

/// What runs an embedding: the engine, the model's genes and embedding width, the options.
pub struct Embedder<'a> {
    /// The prepared model.
    pub engine: &'a Engine,
    /// The model's input genes, in order.
    pub genes: &'a GeneList,
    /// Embedding width.
    pub dim: usize,
    /// Batch, block and preprocessing options.
    pub opts: EmbedOptions,
    /// Homolog table mapping the dataset's gene symbols to the model's (e.g. mouse to human);
    /// applied before alignment.
    pub homologs: Option<&'a crate::data::genes::Homologs>,
}

impl<'a> Embedder<'a> {
    /// An embedder running `model` on `engine` with the model's preprocessing and default
    /// batch and block sizes, no homolog table.
    pub fn for_model(model: &'a crate::model::format::Model, engine: &'a Engine) -> Self {
        Embedder {
            engine,
            genes: &model.genes,
            dim: model.weights.embedding_dim(),
            homologs: None,
            opts: EmbedOptions {
                preprocessing: model.preprocessing,
                ..EmbedOptions::default()
            },
        }
    }

    /// Embeds every cell of an in-memory AnnData (its X, columns = its var genes).
    ///
    /// # Errors
    /// As [`Self::embed_matrix`].
    pub fn embed_anndata(
        &self,
        a: &crate::data::AnnData,
        on_progress: &mut dyn FnMut(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<Embedding, EmbedError> {
        self.embed_matrix(
            &a.x.to_csr(),
            &crate::data::genes::dataset_genes(a),
            &a.source,
            on_progress,
            cancel,
        )
    }

    fn runner(
        &self,
        data_genes: &GeneList,
        total: usize,
        file: &Path,
    ) -> Result<Runner<'_>, EmbedError> {
        let alignment = GeneAlignment::new(self.genes, data_genes, self.homologs);
        let cov = alignment.coverage();
        if cov.matched == 0 {
            return Err(EmbedError::NoSharedGenes {
                file: file.display().to_string(),
                n_model: cov.n_model,
                n_data: cov.n_data,
            });
        }
        Ok(Runner {
            engine: self.engine,
            alignment,
            opts: self.opts,
            target: TargetSum::Fixed(self.opts.preprocessing.target_sum.unwrap_or(1e4)),
            scale: None,
            out: Vec::with_capacity(total * self.dim),
            dim: self.dim,
            total,
            done: 0,
            start: Instant::now(),
            file: file.display().to_string(),
        })
    }

    /// Embeds every cell of an `.h5ad` file, streaming X in row blocks; when X holds negative
    /// values (scaled data) and the file has `raw`, `raw/X` is embedded instead. Counts,
    /// log-normalised values (`expm1` first) and normalised counts are accepted
    /// ([`InputScale`]). With a median target (`target_sum: None`) the totals are read in a
    /// first pass.
    ///
    /// # Errors
    /// [`EmbedError`]: unreadable data, no shared genes, values that are not counts,
    /// cancellation.
    pub fn embed_h5ad(
        &self,
        path: &Path,
        on_progress: &mut dyn FnMut(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<Embedding, EmbedError> {
        let reader = H5adReader::open(path)?;
        let mut var = reader.read_var()?;
        let mut element = "X".to_string();
        let first = reader.row_blocks("X", self.opts.block_rows)?.next();
        if let Some(first) = first
            && first?.1.data.iter().any(|&v| v < 0.0)
            && let Some(raw) = reader.raw_info()?
        {
            element = raw.x.path;
            var = raw.var;
        }
        let info = reader.matrix_info(&element)?;
        let data_genes = crate::data::genes::genes_of(&var);
        let mut run = self.runner(&data_genes, info.shape.0, path)?;
        if self.opts.preprocessing.target_sum.is_none() {
            let mut totals = Vec::with_capacity(info.shape.0);
            for b in reader.row_blocks(&element, self.opts.block_rows)? {
                let mut b = b?.1;
                run.scale
                    .get_or_insert_with(|| InputScale::detect(&b))
                    .to_counts_like(&mut b);
                totals.extend(row_totals(&b));
            }
            run.target = TargetSum::Fixed(f64::from(median(&totals)));
        }
        for b in reader.row_blocks(&element, self.opts.block_rows)? {
            let (_, block) = b?;
            run.block(block, on_progress, cancel)?;
        }
        Ok(run.finish())
    }

    /// Embeds the cells of an in-memory matrix whose columns are `data_genes`.
    ///
    /// # Errors
    /// As [`Self::embed_h5ad`].
    pub fn embed_matrix(
        &self,
        x: &CsrMatrix,
        data_genes: &GeneList,
        source: &Path,
        on_progress: &mut dyn FnMut(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<Embedding, EmbedError> {
        let mut run = self.runner(data_genes, x.n_rows, source)?;
        if self.opts.preprocessing.target_sum.is_none() {
            let mut c = x.clone();
            run.scale
                .get_or_insert_with(|| InputScale::detect(&c))
                .to_counts_like(&mut c);
            run.target = TargetSum::Fixed(f64::from(median(&row_totals(&c))));
        }
        let mut r0 = 0;
        while r0 < x.n_rows {
            let r1 = (r0 + self.opts.block_rows).min(x.n_rows);
            run.block(x.slice_rows(r0, r1), on_progress, cancel)?;
            r0 = r1;
        }
        Ok(run.finish())
    }
}
