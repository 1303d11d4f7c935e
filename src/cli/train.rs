//! `cellscope pretrain`, `finetune` and `predict`: the training jobs of
//! [`crate::pipeline::train`] with a progress bar fed by the training event channel.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::train::{EventKind, TrainEvent};
use crate::pipeline::train::{Trained, spawn};

/// Consumes training events until the job ends, drawing a progress bar over all steps.
fn follow(rx: &crossbeam_channel::Receiver<TrainEvent>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut last_val = String::new();
    for e in rx {
        bar.set_length((e.epochs * e.steps_per_epoch) as u64);
        bar.set_position(e.step as u64);
        if e.kind == EventKind::Epoch {
            last_val = match (e.val_loss, e.val_macro_f1) {
                (Some(l), Some(f)) => format!(" val loss {l:.4} val macro-F1 {f:.4}"),
                (Some(l), None) => format!(" val loss {l:.4}"),
                _ => String::new(),
            };
            let line = format!(
                "epoch {:>3}/{}: train loss {:.5}{last_val}, {:.0} cells/s, lr {:.2e}",
                e.epoch + 1,
                e.epochs,
                e.train_loss,
                e.cells_per_sec,
                e.lr
            );
            if bar.is_hidden() {
                // Not a terminal (a log file, CI): plain lines.
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        bar.set_message(format!(
            "epoch {}/{} loss {:.4}{last_val} {:.0} cells/s",
            e.epoch + 1,
            e.epochs,
            e.train_loss,
            e.cells_per_sec
        ));
    }
    bar.finish_and_clear();
}

fn check_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{}: already exists; choose a new folder for the model",
            out.display()
        );
    }
    Ok(())
}

fn save_and_report(t: &Trained, out: &Path) -> anyhow::Result<()> {
    crate::model::save_model(&t.model, out)?;
    let o = &t.outcome;
    let last = o.history.last();
    eprintln!(
        "{}: {} on {}; {} epoch(s){}{}{}; kept epoch {}; genes {}",
        out.display(),
        t.model.weights,
        o.device,
        o.history.len(),
        if o.cancelled { ", cancelled" } else { "" },
        if o.early_stopped { ", early stop" } else { "" },
        if o.diverged {
            ", stopped at a non-finite loss"
        } else {
            ""
        },
        o.best_epoch + 1,
        t.coverage
    );
    if let Some(e) = last {
        eprintln!(
            "final train loss {:.5}{}{}, {:.0} cells/s",
            e.train_loss,
            e.val_loss
                .map(|v| format!(", val loss {v:.5}"))
                .unwrap_or_default(),
            e.val_macro_f1
                .map(|v| format!(", val macro-F1 {v:.4}"))
                .unwrap_or_default(),
            e.cells_per_sec
        );
    }
    if let Some((c, _)) = &t.test {
        println!(
            "test (15%): macro-F1 {:.4}, accuracy {:.4}, weighted F1 {:.4}",
            c.macro_f1, c.accuracy, c.weighted_f1
        );
    }
    Ok(())
}

/// `cellscope pretrain`.
///
/// # Errors
/// An existing output; the job's error.
pub fn pretrain(
    data: &Path,
    job: crate::pipeline::train::PretrainJob,
    out: &Path,
) -> anyhow::Result<()> {
    check_out(out)?;
    let adata = crate::data::open(data)?;
    let (handle, rx) = spawn(move |tx| {
        crate::pipeline::train::run_pretrain(&adata, &job, tx, &AtomicBool::new(false))
    });
    follow(&rx);
    let trained = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    save_and_report(&trained, out)
}

/// `cellscope finetune`; also writes the test metrics as JSON when asked.
///
/// # Errors
/// An existing output; the job's error.
pub fn finetune(
    data: &Path,
    model: Option<&Path>,
    job: crate::pipeline::train::FinetuneJob,
    out: &Path,
    metrics_json: Option<&Path>,
) -> anyhow::Result<()> {
    check_out(out)?;
    let adata = crate::data::open(data)?;
    let init = model.map(|m| super::load_model(m, None)).transpose()?;
    let (handle, rx) = spawn(move |tx| {
        crate::pipeline::train::run_finetune(
            &adata,
            &job,
            init.as_ref(),
            tx,
            &AtomicBool::new(false),
        )
    });
    follow(&rx);
    let trained = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    save_and_report(&trained, out)?;
    if let (Some(p), Some((c, names))) = (metrics_json, &trained.test) {
        let per_class: serde_json::Map<String, serde_json::Value> = c
            .classes
            .iter()
            .zip(&c.f1)
            .map(|(&k, &f)| (names[k as usize].clone(), f.into()))
            .collect();
        let v = serde_json::json!({
            "split": "70/15/15 test",
            "macro_f1": c.macro_f1,
            "accuracy": c.accuracy,
            "micro_f1": c.micro_f1,
            "weighted_f1": c.weighted_f1,
            "f1_per_class": per_class,
            "epochs": trained.outcome.history.len(),
            "best_epoch": trained.outcome.best_epoch,
        });
        super::write_json_atomic(p, &v)?;
    }
    Ok(())
}

/// `cellscope predict`: labels and confidences from a fine-tuned model into a new .h5ad
/// (obs `cellscope_prediction`, `cellscope_confidence`; obsm `cellscope_probabilities`), with
/// metrics against `label_key` when given.
///
/// # Errors
/// Unreadable data or model, a model without a head, an output equal to the input.
pub fn predict(
    data: &Path,
    model_path: &Path,
    label_key: Option<&str>,
    label_map: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    use crate::data::write;
    write::check_not_input(data, out)?;
    let model = super::load_model(model_path, None)?;
    let adata = crate::data::open(data)?;
    let (p, cov) = crate::pipeline::train::predict(&model, &adata)?;
    eprintln!("{}: genes {cov}", data.display());
    let names = model.class_names.clone().unwrap_or_default();
    let labels = p.labels(&model);
    if let Some(key) = label_key {
        let truth = super::obs_labels(&adata, key)?;
        let map = label_map
            .map(crate::analysis::transfer::LabelMap::read_csv)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let (c, _, n) = crate::analysis::transfer::score_predictions(
            &labels,
            &truth,
            map.as_ref(),
            &crate::pipeline::analyze::MISSING_LABELS,
        );
        println!(
            "{n} cells scored against obs['{key}']: accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4}",
            c.accuracy, c.macro_f1, c.weighted_f1
        );
    }
    let k = names.len().max(1);
    let probs = ndarray::Array2::from_shape_vec((labels.len(), k), p.probabilities)?;
    let additions = write::Additions {
        obsm: vec![("cellscope_probabilities".into(), probs)],
        obs: vec![
            (
                "cellscope_prediction".into(),
                crate::data::Column::categorical_from_labels(&labels),
            ),
            (
                "cellscope_confidence".into(),
                crate::data::Column::Float(p.confidence.iter().map(|&v| f64::from(v)).collect()),
            ),
        ],
        uns: vec![(
            "cellscope_provenance".into(),
            serde_json::json!({
                "cellscope_version": env!("CARGO_PKG_VERSION"),
                "model": model_path.display().to_string(),
                "model_weights_sha256": model.provenance.weights_sha256,
                "classes": names,
            })
            .to_string(),
        )],
    };
    write::write_h5ad(&adata, &additions, out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
