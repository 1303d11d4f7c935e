//! Augmentations and masks: negative-binomial noise with dropout (the contrastive views) and
//! gene-programme masks.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Negative-binomial resampling and dropout of a log-normalised batch (the Barlow Twins / BYOL
/// augmentation): each non-zero `x` is replaced by `log1p(NB(mean = expm1(x), dispersion
/// theta))`, sampled as a Gamma-Poisson mixture, then each entry is zeroed with probability
/// `drop`. Zeros stay zero. Row-major `[rows, genes]` in place.
pub fn augment(values: &mut [f32], genes: usize, theta: f64, drop: f64, rng_seed: u64) {
    values
        .par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(rng_seed, r as u64, 0x4e42);
            for v in row.iter_mut().filter(|v| **v != 0.0) {
                if rng.uniform() < drop {
                    *v = 0.0;
                    continue;
                }
                let mu = f64::from(*v).exp_m1();
                let lambda = gamma(&mut rng, theta) * mu / theta;
                *v = (poisson(&mut rng, lambda) as f64).ln_1p() as f32;
            }
        });
}

/// Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 by the `U^(1/shape)` boost.
pub(super) fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * rng.uniform().max(1e-300).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform();
        if u.max(1e-300).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Poisson(lambda): inversion for lambda < 30, else the normal approximation rounded (an
/// augmentation, not an estimator).
pub(super) fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let (mut k, mut p, mut s) = (0u64, (-lambda).exp(), 0.0);
        s += p;
        let u = rng.uniform();
        while u > s && k < 1000 {
            k += 1;
            p *= lambda / k as f64;
            s += p;
        }
        k
    } else {
        (lambda + lambda.sqrt() * rng.normal()).round().max(0.0) as u64
    }
}

/// Keep masks for the programme objectives, row-major `[rows, genes]` (1 = visible).
pub(super) fn programme_keep(
    rows: usize,
    genes: usize,
    programmes: &Programmes,
    isolated: bool,
    rate: f64,
    seed: u64,
) -> Vec<f32> {
    let mut keep = vec![if isolated { 0f32 } else { 1f32 }; rows * genes];
    keep.par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(seed, r as u64, 0x6770);
            if isolated {
                let p = rng.below(programmes.genes.len());
                for &g in &programmes.genes[p] {
                    row[g as usize] = 1.0;
                }
            } else {
                for set in &programmes.genes {
                    if rng.uniform() < rate {
                        for &g in set {
                            row[g as usize] = 0.0;
                        }
                    }
                }
            }
        });
    keep
}
