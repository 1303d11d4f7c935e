//! cellscope's own model format, and loading any supported model with its gene list.
//!
//! A cellscope model is a folder holding everything needed to rebuild and run it:
//! - `config.json`: format name and version, model kind, activation, layer widths, class names,
//!   preprocessing (`normalize_total` target, `log1p`);
//! - `weights.safetensors`: the tensors, keyed as the PyTorch family they come from
//!   (`encoder.N.*`, `backbone.N.*`, `inner_model.N.*`, `classifier.N.*`), `[out, in]` weights;
//! - `genes.csv`: the input genes in order (`feature_id`, `feature_name`);
//! - `provenance.json`: training data, objective, seed, cellscope version, date, and the SHA-256
//!   of `weights.safetensors`.
//!
//! The folder is written to a temporary sibling and renamed into place when complete.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::data::genes::GeneList;
use crate::model::checkpoint::{
    Activation, Dense, ModelError, ModelKind, ModelWeights, load_checkpoint, model_from_state_dict,
    read_state_dict,
};
use crate::model::embed::Preprocessing;

/// Format name written in `config.json`.
pub const FORMAT: &str = "cellscope-model";
/// Current format version.
pub const VERSION: u32 = 1;

/// `config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Model family.
    pub kind: ModelKind,
    /// Hidden activation.
    pub activation: Activation,
    /// Backbone widths, e.g. `[19331, 512, 512, 256, 256, 64]`.
    pub widths: Vec<usize>,
    /// Class names of a classifier head, in output order.
    pub class_names: Option<Vec<String>>,
    /// Preprocessing the model expects.
    pub preprocessing: Preprocessing,
}

/// `provenance.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// Where the weights came from (an imported checkpoint path, or the training data).
    pub source: String,
    /// Training objective (e.g. "random-mask"), when trained in cellscope.
    pub objective: Option<String>,
    /// Training seed.
    pub seed: Option<u64>,
    /// Hyper-parameters, free form.
    pub hyper_parameters: Option<serde_json::Value>,
    /// cellscope version that wrote the folder.
    pub cellscope_version: String,
    /// When it was written (seconds since the Unix epoch, UTC).
    pub written_unix_secs: u64,
    /// SHA-256 of `weights.safetensors`, hex.
    pub weights_sha256: String,
}

/// A model ready to use: weights, input genes, preprocessing, names and provenance.
#[derive(Debug, Clone)]
pub struct Model {
    /// Weights.
    pub weights: ModelWeights,
    /// Input genes in order (`len == weights.n_genes()`).
    pub genes: GeneList,
    /// Preprocessing the model expects.
    pub preprocessing: Preprocessing,
    /// Class names of a classifier, in output order.
    pub class_names: Option<Vec<String>>,
    /// Provenance (for imported checkpoints: the source path and its SHA-256).
    pub provenance: Provenance,
    /// The file or folder it was loaded from.
    pub path: PathBuf,
}

/// SHA-256 of a file, hex.
///
/// # Errors
/// The file cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of `bytes` (two characters per byte), as `sha256sum` prints digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Loads a model: a cellscope folder, or a checkpoint file (`.ckpt`, `.pt`, `.pth`,
/// `.safetensors`) with its gene list (`genes`, else `genes.csv` / `genes.tsv` / `var.csv` /
/// `var.parquet` beside the checkpoint).
///
/// # Errors
/// [`ModelError`]: unreadable or unknown checkpoint; no gene list; a gene list whose length
/// differs from the first layer's input width.
pub fn load_model(path: &Path, genes: Option<&Path>) -> Result<Model, ModelError> {
    if path.is_dir() {
        return load_folder(path, genes);
    }
    let (weights, sd) = load_checkpoint(path)?;
    let genes_path = match genes {
        Some(g) => g.to_path_buf(),
        None => ["genes.csv", "genes.tsv", "var.csv", "var.parquet"]
            .iter()
            .map(|n| path.with_file_name(n))
            .find(|p| p.is_file())
            .ok_or_else(|| ModelError::Genes {
                file: path.to_path_buf(),
                message: "no gene list: pass --genes (CSV/TSV with feature_id and/or feature_name, or one gene per line), or put genes.csv beside the checkpoint".into(),
            })?,
    };
    let gene_list = read_genes(&genes_path, weights.n_genes())?;
    let hyper = sd
        .hyper_parameters
        .as_ref()
        .map(|h| serde_json::Value::String(format!("{h:?}")));
    Ok(Model {
        genes: gene_list,
        preprocessing: Preprocessing::default(),
        class_names: weights
            .head
            .as_ref()
            .map(|h| (0..h.n_out).map(|i| format!("class_{i}")).collect()),
        provenance: Provenance {
            source: format!("{} ({})", path.display(), sd.format),
            hyper_parameters: hyper,
            cellscope_version: env!("CARGO_PKG_VERSION").into(),
            written_unix_secs: 0,
            weights_sha256: sha256_file(path).unwrap_or_default(),
            ..Provenance::default()
        },
        weights,
        path: path.to_path_buf(),
    })
}

fn read_genes(path: &Path, n_genes: usize) -> Result<GeneList, ModelError> {
    let list = GeneList::read_csv(path)?;
    if list.len() != n_genes {
        return Err(ModelError::Genes {
            file: path.to_path_buf(),
            message: format!(
                "the gene list has {} genes but the model's first layer takes {n_genes} inputs",
                list.len()
            ),
        });
    }
    Ok(list)
}

fn load_folder(dir: &Path, genes: Option<&Path>) -> Result<Model, ModelError> {
    let cfg_path = dir.join("config.json");
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| ModelError::Read {
            file: p.to_path_buf(),
            message: e.to_string(),
        })
    };
    let config: ModelConfig =
        serde_json::from_str(&read(&cfg_path)?).map_err(|e| ModelError::Read {
            file: cfg_path.clone(),
            message: format!("not a cellscope model config: {e}"),
        })?;
    if config.format != FORMAT || config.version > VERSION {
        return Err(ModelError::Read {
            file: cfg_path,
            message: format!(
                "format {:?} version {} is not {FORMAT:?} <= {VERSION}",
                config.format, config.version
            ),
        });
    }
    let weights_path = dir.join("weights.safetensors");
    let sd = read_state_dict(&weights_path)?;
    let mut weights = model_from_state_dict(&sd, &weights_path)?;
    weights.kind = config.kind;
    weights.activation = config.activation;
    if weights.widths() != config.widths {
        return Err(ModelError::Layout {
            file: weights_path,
            message: format!(
                "weights have widths {:?}, config.json says {:?}",
                weights.widths(),
                config.widths
            ),
        });
    }
    check_config(&config, &weights, &cfg_path)?;
    let genes_path = genes.map_or_else(|| dir.join("genes.csv"), Path::to_path_buf);
    let gene_list = read_genes(&genes_path, weights.n_genes())?;
    let provenance: Provenance = std::fs::read_to_string(dir.join("provenance.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(Model {
        weights,
        genes: gene_list,
        preprocessing: config.preprocessing,
        class_names: config.class_names,
        provenance,
        path: dir.to_path_buf(),
    })
}

/// The parts of `config.json` the weights do not check: one class name per output of the
/// classifier head, and a positive, finite `target_sum`.
fn check_config(config: &ModelConfig, w: &ModelWeights, file: &Path) -> Result<(), ModelError> {
    let bad = |message: String| ModelError::Read {
        file: file.to_path_buf(),
        message,
    };
    match (&config.class_names, &w.head) {
        (Some(names), Some(head)) if names.len() != head.n_out => {
            return Err(bad(format!(
                "class_names lists {} classes but the classifier head has {} outputs",
                names.len(),
                head.n_out
            )));
        }
        (Some(_), None) => {
            return Err(bad(
                "class_names given but the model has no classifier head".into(),
            ));
        }
        _ => {}
    }
    if let Some(t) = config.preprocessing.target_sum
        && !(t.is_finite() && t > 0.0)
    {
        return Err(bad(format!(
            "preprocessing.target_sum is {t}; it must be a positive number of counts per cell \
             (scanpy's normalize_total target_sum) or null for the median"
        )));
    }
    Ok(())
}

fn prefix_of(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::MaskedAutoencoder => "encoder.",
        ModelKind::BarlowTwins | ModelKind::Simclr | ModelKind::Vicreg => "backbone.",
        ModelKind::Byol => "inner_model.",
        ModelKind::Classifier => "classifier.",
        ModelKind::Backbone => "",
    }
}

/// Saves `model` as a cellscope folder at `dir` (which must not exist yet), atomically.
///
/// # Errors
/// [`ModelError::Read`] (naming the path) for I/O failures or an existing target.
pub fn save_model(model: &Model, dir: &Path) -> Result<(), ModelError> {
    let io = |p: &Path, e: &dyn std::fmt::Display| ModelError::Read {
        file: p.to_path_buf(),
        message: e.to_string(),
    };
    if dir.exists() {
        return Err(io(
            dir,
            &"already exists; choose a new folder for the model",
        ));
    }
    let tmp = crate::data::part::dir(dir, ".model.part").map_err(|e| io(dir, &e))?;
    let w = &model.weights;
    let prefix = prefix_of(w.kind);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, d: &Dense| {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        tensors.push((
            format!("{name}.weight"),
            vec![d.n_out, d.n_in],
            bytes(&d.weight),
        ));
        tensors.push((format!("{name}.bias"), vec![d.n_out], bytes(&d.bias)));
    };
    let n_back = w.backbone.len();
    for (k, d) in w.backbone.iter().enumerate() {
        push(format!("{prefix}{}", 3 * k), d);
    }
    if let Some(h) = &w.head {
        push(format!("{prefix}{}", 3 * n_back), h);
    }
    for (k, d) in w.decoder.iter().enumerate() {
        push(format!("decoder.0.{}", 3 * k), d);
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| io(dir, &e))
        })
        .collect::<Result<_, _>>()?;
    let weights_path = tmp.path().join("weights.safetensors");
    safetensors::serialize_to_file(views, None, &weights_path)
        .map_err(|e| io(&weights_path, &e))?;
    let config = ModelConfig {
        format: FORMAT.into(),
        version: VERSION,
        kind: w.kind,
        activation: w.activation,
        widths: w.widths(),
        class_names: model.class_names.clone(),
        preprocessing: model.preprocessing,
    };
    let write_json = |name: &str, v: &dyn erased::Json| -> Result<(), ModelError> {
        let p = tmp.path().join(name);
        std::fs::write(&p, v.json()).map_err(|e| io(&p, &e))
    };
    write_json("config.json", &config)?;
    let mut genes = String::from("feature_id,feature_name\n");
    for (i, s) in model.genes.symbols.iter().enumerate() {
        let id = model.genes.ids.as_ref().map_or("", |ids| ids[i].as_str());
        genes.push_str(&format!("{id},{s}\n"));
    }
    let gp = tmp.path().join("genes.csv");
    std::fs::write(&gp, genes).map_err(|e| io(&gp, &e))?;
    let provenance = Provenance {
        cellscope_version: env!("CARGO_PKG_VERSION").into(),
        written_unix_secs: now_secs(),
        weights_sha256: sha256_file(&weights_path).map_err(|e| io(&weights_path, &e))?,
        ..model.provenance.clone()
    };
    write_json("provenance.json", &provenance)?;
    crate::data::part::persist_dir(tmp, dir).map_err(|e| io(dir, &e))
}

mod erased {
    /// Pretty JSON of any serialisable value (object-safe helper).
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}
