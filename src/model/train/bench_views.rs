//! scSSL-Bench's augmentations for the generic objectives (SimCLR, VICReg): CLEAR's
//! pipeline as the bench's `data/augmentations.py` has it (SEED_METHODS.md). Each view of a
//! cell starts from the cell and goes through the chosen augmentations in the bench's order
//! (mask, Gaussian noise, inner swap, cross-over), each applied with its own probability and
//! drawn per cell and per view.

use std::str::FromStr;

#[allow(clippy::wildcard_imports)]
use super::*;

/// One augmentation and the probability that it is applied to a view.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Augment {
    /// Keep `int(keep * genes)` genes drawn at random, zero the others (`Mask_Augment`;
    /// `mask_percentage` is the fraction kept).
    Mask {
        /// Fraction of the genes kept (0.5: the bench's recommended masking).
        keep: f64,
        /// Probability of applying it to a view (0.5, `Mask_Augment`'s default).
        prob: f64,
    },
    /// Add `N(0, sigma^2)` to `int(fraction * genes)` genes drawn at random (`Gauss_Augment`).
    Noise {
        /// Fraction of the genes (0.2).
        fraction: f64,
        /// Standard deviation (0.5).
        sigma: f64,
        /// Probability (0.3).
        prob: f64,
    },
    /// Swap `int(genes * fraction / 2)` pairs of genes drawn with replacement
    /// (`InnerSwap_Augment`).
    InnerSwap {
        /// Fraction (0.1).
        fraction: f64,
        /// Probability (0.5).
        prob: f64,
    },
    /// Replace `int(fraction * genes)` genes drawn at random with another cell's values
    /// (`CrossOver_Augment`; the other cell is drawn from the batch, itself a uniform sample
    /// of the data, where the bench draws from the whole matrix).
    CrossOver {
        /// Fraction (0.25).
        fraction: f64,
        /// Probability (0.4).
        prob: f64,
    },
}

impl Augment {
    fn rank(&self) -> u8 {
        match self {
            Augment::Mask { .. } => 0,
            Augment::Noise { .. } => 1,
            Augment::InnerSwap { .. } => 2,
            Augment::CrossOver { .. } => 3,
        }
    }

    fn prob(&self) -> f64 {
        match *self {
            Augment::Mask { prob, .. }
            | Augment::Noise { prob, .. }
            | Augment::InnerSwap { prob, .. }
            | Augment::CrossOver { prob, .. } => prob,
        }
    }
}

/// The augmentations of a generic objective, in the order they are applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augmentations(pub Vec<Augment>);

impl Default for Augmentations {
    /// Masking alone, keeping half the genes: the bench's best augmentation.
    fn default() -> Self {
        Augmentations(vec![Augment::Mask {
            keep: 0.5,
            prob: 0.5,
        }])
    }
}

/// An `--augment` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--augment '{0}': expected comma-separated NAME:FRACTION[@PROBABILITY] with NAME one of \
     mask (fraction kept), noise, swap, crossover and numbers in [0, 1], e.g. mask:0.5,noise:0.2"
)]
pub struct ParseAugmentError(pub String);

impl FromStr for Augmentations {
    type Err = ParseAugmentError;

    /// `mask:0.5,noise:0.2@0.3,swap:0.1,crossover:0.25`: each augmentation once, with the
    /// bench's default probability unless `@P` is given; `none` for no augmentation.
    fn from_str(s: &str) -> Result<Self, ParseAugmentError> {
        let bad = || ParseAugmentError(s.to_string());
        if s.trim() == "none" {
            return Ok(Augmentations(Vec::new()));
        }
        let unit = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
        };
        let mut out: Vec<Augment> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, rest) = part.split_once(':').ok_or_else(bad)?;
            let (frac, prob) = match rest.split_once('@') {
                Some((f, p)) => (unit(f).ok_or_else(bad)?, Some(unit(p).ok_or_else(bad)?)),
                None => (unit(rest).ok_or_else(bad)?, None),
            };
            let a = match name.trim() {
                "mask" => Augment::Mask {
                    keep: frac,
                    prob: prob.unwrap_or(0.5),
                },
                "noise" => Augment::Noise {
                    fraction: frac,
                    sigma: 0.5,
                    prob: prob.unwrap_or(0.3),
                },
                "swap" => Augment::InnerSwap {
                    fraction: frac,
                    prob: prob.unwrap_or(0.5),
                },
                "crossover" => Augment::CrossOver {
                    fraction: frac,
                    prob: prob.unwrap_or(0.4),
                },
                _ => return Err(bad()),
            };
            if out.iter().any(|o| o.rank() == a.rank()) {
                return Err(bad());
            }
            out.push(a);
        }
        if out.is_empty() {
            return Err(bad());
        }
        out.sort_by_key(Augment::rank);
        Ok(Augmentations(out))
    }
}

impl std::fmt::Display for Augmentations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|a| match *a {
                Augment::Mask { keep, prob } => format!("mask:{keep}@{prob}"),
                Augment::Noise { fraction, prob, .. } => format!("noise:{fraction}@{prob}"),
                Augment::InnerSwap { fraction, prob } => format!("swap:{fraction}@{prob}"),
                Augment::CrossOver { fraction, prob } => format!("crossover:{fraction}@{prob}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// `k` distinct gene indices out of `genes`, uniformly (a partial Fisher-Yates shuffle).
fn draw_genes(rng: &mut Rng, genes: usize, k: usize, scratch: &mut Vec<u32>) -> usize {
    scratch.clear();
    scratch.extend(0..genes as u32);
    let k = k.min(genes);
    for i in 0..k {
        let j = i + rng.below(genes - i);
        scratch.swap(i, j);
    }
    k
}

/// Applies `augs` to one view `v` of row `r` (the batch `xv` is the untouched input, for the
/// cross-over partner).
fn augment_row(v: &mut [f32], xv: &[f32], rows: usize, augs: &Augmentations, rng: &mut Rng) {
    let genes = v.len();
    let mut idx = Vec::with_capacity(genes);
    for a in &augs.0 {
        if rng.uniform() >= a.prob() {
            continue;
        }
        match *a {
            Augment::Mask { keep, .. } => {
                let k = draw_genes(rng, genes, (keep * genes as f64) as usize, &mut idx);
                let mut kept = vec![false; genes];
                idx[..k].iter().for_each(|&g| kept[g as usize] = true);
                v.iter_mut()
                    .zip(kept)
                    .filter(|(_, k)| !k)
                    .for_each(|(x, _)| *x = 0.0);
            }
            Augment::Noise {
                fraction, sigma, ..
            } => {
                let k = draw_genes(rng, genes, (fraction * genes as f64) as usize, &mut idx);
                for &g in &idx[..k] {
                    v[g as usize] += (sigma * rng.normal()) as f32;
                }
            }
            Augment::InnerSwap { fraction, .. } => {
                for _ in 0..(genes as f64 * fraction / 2.0) as usize {
                    let (i, j) = (rng.below(genes), rng.below(genes));
                    v.swap(i, j);
                }
            }
            Augment::CrossOver { fraction, .. } => {
                let other = &xv[rng.below(rows) * genes..][..genes];
                let k = draw_genes(rng, genes, (fraction * genes as f64) as usize, &mut idx);
                for &g in &idx[..k] {
                    v[g as usize] = other[g as usize];
                }
            }
        }
    }
}

/// The two views of a batch (row-major `[rows, genes]`) for SimCLR / VICReg: each row of each
/// view augmented independently (a generator per row and view, so the result does not
/// depend on the thread count).
pub fn bench_views(
    xv: &[f32],
    genes: usize,
    augs: &Augmentations,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let rows = xv.len() / genes.max(1);
    let view = |which: u64| {
        let mut v = xv.to_vec();
        v.par_chunks_mut(genes.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let mut rng = Rng::for_item(seed, 2 * r as u64 + which, 0x6276);
                augment_row(row, xv, rows, augs, &mut rng);
            });
        v
    };
    (view(0), view(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_the_bench_augmentations() {
        let a: Augmentations = "crossover:0.25,mask:0.5@0.9,noise:0.2"
            .parse()
            .expect("parse");
        assert_eq!(
            a.0,
            vec![
                Augment::Mask {
                    keep: 0.5,
                    prob: 0.9
                },
                Augment::Noise {
                    fraction: 0.2,
                    sigma: 0.5,
                    prob: 0.3
                },
                Augment::CrossOver {
                    fraction: 0.25,
                    prob: 0.4
                },
            ]
        );
        assert_eq!(a.to_string().parse::<Augmentations>(), Ok(a));
        for bad in [
            "mask",
            "mask:1.5",
            "blur:0.1",
            "mask:0.5,mask:0.2",
            "",
            "mask:0.5@2",
        ] {
            assert!(bad.parse::<Augmentations>().is_err(), "{bad}");
        }
        assert!("none".parse::<Augmentations>().expect("none").0.is_empty());
    }

    /// Masking keeps exactly `int(keep * genes)` genes of a view it is applied to; views
    /// differ between rows and between the two views; the same seed gives the same views.
    #[test]
    fn masking_keeps_the_stated_number_of_genes() {
        let (rows, genes) = (64, 40);
        let xv: Vec<f32> = (0..rows * genes).map(|i| 1.0 + (i % 7) as f32).collect();
        let augs: Augmentations = "mask:0.3@1".parse().expect("parse");
        let (v1, v2) = bench_views(&xv, genes, &augs, 5);
        for v in [&v1, &v2] {
            for row in v.chunks(genes) {
                assert_eq!(row.iter().filter(|&&x| x != 0.0).count(), 12);
            }
        }
        assert_ne!(v1, v2);
        assert_ne!(v1[..genes], v1[genes..2 * genes]);
        assert_eq!(bench_views(&xv, genes, &augs, 5), (v1, v2));
    }

    /// Probability: a view is augmented in about `prob` of the rows; inner swap permutes the
    /// values; cross-over copies values of another row; noise touches `fraction` of genes.
    #[test]
    fn probabilities_and_value_changes_are_as_stated() {
        let (rows, genes) = (2000, 50);
        let xv: Vec<f32> = (0..rows * genes).map(|i| i as f32).collect();
        let augs: Augmentations = "swap:0.2@0.5".parse().expect("parse");
        let (v1, _) = bench_views(&xv, genes, &augs, 1);
        let mut changed = 0;
        for (a, b) in v1.chunks(genes).zip(xv.chunks(genes)) {
            let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
            sa.sort_by(f32::total_cmp);
            sb.sort_by(f32::total_cmp);
            assert_eq!(sa, sb, "a swap only permutes a row");
            changed += usize::from(a != b);
        }
        let frac = changed as f64 / rows as f64;
        assert!((frac - 0.5).abs() < 0.05, "applied to {frac} of the rows");
        let noise: Augmentations = "noise:0.2@1".parse().expect("parse");
        // Small values, so that no noise draw rounds away in f32.
        let small: Vec<f32> = (0..rows * genes).map(|i| (i % 7) as f32).collect();
        let (v1, _) = bench_views(&small, genes, &noise, 2);
        for (a, b) in v1.chunks(genes).zip(small.chunks(genes)) {
            assert_eq!(a.iter().zip(b).filter(|(x, y)| x != y).count(), 10);
        }
        let cross: Augmentations = "crossover:0.5@1".parse().expect("parse");
        let (v1, _) = bench_views(&xv, genes, &cross, 3);
        for (r, a) in v1.chunks(genes).enumerate() {
            for (g, &x) in a.iter().enumerate() {
                // Each value is the row's own or another row's value of the same gene.
                assert_eq!((x as usize) % genes, g, "row {r} gene {g}");
            }
        }
    }
}
