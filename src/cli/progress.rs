//! Job progress on stderr: one indicatif bar at a time (downloads in bytes, embedding in cells,
//! training in steps with a line per epoch, other steps in percent). When stderr is not a
//! terminal (a log file, CI) the bars hide themselves and epochs print as plain lines.

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::train::{EventKind, TrainEvent};
use crate::pipeline::jobs::{Progress, Step};

/// What the current bar shows.
#[derive(Debug, Clone, PartialEq)]
enum Showing {
    Download(String),
    Embed,
    Train,
    Step(Step),
}

/// The bar of the running job.
#[derive(Default)]
pub struct Bars {
    bar: Option<(Showing, ProgressBar)>,
    last_val: String,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bars {
    /// The bar for `what`, replacing the previous one (finished) when it showed something else.
    fn bar(&mut self, what: Showing, len: u64, template: &str) -> &ProgressBar {
        if self.bar.as_ref().is_none_or(|(w, _)| *w != what) {
            let b = ProgressBar::new(len);
            b.set_style(style(template));
            if let Some((_, old)) = self.bar.replace((what, b)) {
                old.finish_and_clear();
            }
        }
        let (_, b) = self.bar.as_ref().expect("set above");
        b
    }

    /// Shows one progress report.
    pub fn show(&mut self, p: Progress) {
        match p {
            // Nothing yet while the hub is asked (a cached file's freshness check, or the wait
            // for its answer); the download's first call announces the length.
            Progress::Download {
                done: 0,
                total: None,
                ..
            } => {}
            Progress::Download { name, done, total } => {
                let b = self.bar(
                    Showing::Download(name.clone()),
                    total.unwrap_or(0),
                    "{msg}\n{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  [eta {eta}]",
                );
                b.set_message(format!("downloading {name}"));
                b.set_position(done);
            }
            Progress::Embed(e) => {
                let b = self.bar(
                    Showing::Embed,
                    e.total as u64,
                    "{bar:40} {pos}/{len} cells  {msg}  [{elapsed_precise}, eta {eta}]",
                );
                b.set_length(e.total as u64);
                b.set_position(e.done as u64);
                b.set_message(format!("{:.0} cells/s", e.cells_per_sec));
            }
            Progress::Train(e) => self.train(&e),
            Progress::Fit {
                step,
                epoch,
                epochs,
                loss,
            } => {
                let b = self.bar(Showing::Step(step), epochs as u64, "{bar:40} {msg}");
                b.set_length(epochs as u64);
                b.set_message(crate::pipeline::jobs::fit_message(
                    step, epoch, epochs, loss,
                ));
                b.set_position(epoch as u64);
            }
            Progress::Step(s, f) => {
                let b = self.bar(Showing::Step(s), 100, "{bar:40} {msg}");
                b.set_length(100);
                b.set_message(s.name());
                b.set_position((f.clamp(0.0, 1.0) * 100.0) as u64);
            }
        }
    }

    fn train(&mut self, e: &TrainEvent) {
        let steps = (e.epochs * e.steps_per_epoch) as u64;
        let template = "{bar:30} {pos}/{len} steps {elapsed_precise} {msg}";
        let b = self.bar(Showing::Train, steps, template).clone();
        b.set_length(steps);
        b.set_position(e.step as u64);
        if e.kind == EventKind::Epoch {
            self.last_val = match (e.val_loss, e.val_macro_f1) {
                (Some(l), Some(f)) => format!(" val loss {l:.4} val macro-F1 {f:.4}"),
                (Some(l), None) => format!(" val loss {l:.4}"),
                _ => String::new(),
            };
            let line = format!(
                "epoch {:>3}/{}: train loss {:.5}{}, {:.0} cells/s, lr {:.2e}",
                e.epoch + 1,
                e.epochs,
                e.train_loss,
                self.last_val,
                e.cells_per_sec,
                e.lr
            );
            if b.is_hidden() {
                eprintln!("{line}");
            } else {
                b.println(line);
            }
        }
        b.set_message(format!(
            "epoch {}/{} loss {:.4}{} {:.0} cells/s",
            e.epoch + 1,
            e.epochs,
            e.train_loss,
            self.last_val,
            e.cells_per_sec
        ));
    }

    /// Clears the bar at the end of a job.
    pub fn finish(&mut self) {
        if let Some((_, b)) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
