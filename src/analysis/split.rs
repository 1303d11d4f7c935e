//! The 70/15/15 split of the reusability study, made exactly as its Python code makes it:
//! scikit-learn's `train_test_split(idx, test_size=0.15, random_state=42)`, then
//! `train_test_split(rest, test_size=0.1765, random_state=42)` for the validation part
//! (SEED_METHODS.md, "Splits"). The same cells land in the same sets as in Python
//! (`tests/it/analysis_split.rs` against indices written by `tests/fixtures/analysis/make_split_reference.py`).
//!
//! scikit-learn's `ShuffleSplit` draws `RandomState(seed).permutation(n)`; numpy's legacy
//! `RandomState` is MT19937 seeded with `init_genrand(seed)` and its `shuffle` is a
//! Fisher-Yates pass from the end whose index `j` in `0..=i` is drawn by masked rejection
//! (`random_interval` in numpy's `distributions.c`). MT19937 itself comes from `rand_mt`.

use rand_mt::Mt;

/// numpy's `RandomState(seed).permutation(n)`.
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = Mt::new(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = random_interval(&mut mt, i as u64) as usize;
        p.swap(i, j);
    }
    p
}

/// numpy's `random_interval(max)`: a uniform integer in `0..=max` by masked rejection.
fn random_interval(mt: &mut Mt, max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut mask = max;
    for s in [1, 2, 4, 8, 16, 32] {
        mask |= mask >> s;
    }
    loop {
        let v = if max <= u64::from(u32::MAX) {
            u64::from(mt.next_u32()) & mask
        } else {
            mt.next_u64() & mask
        };
        if v <= max {
            return v;
        }
    }
}

/// scikit-learn's `train_test_split(items, test_size=test_size, random_state=seed)` with a
/// float `test_size`: `n_test = ceil(test_size * n)`, the test part the first `n_test` of the
/// permutation, the train part the rest, both in permutation order. Returns `(train, test)`.
pub fn train_test_split<T: Copy>(items: &[T], test_size: f64, seed: u32) -> (Vec<T>, Vec<T>) {
    let n = items.len();
    let n_test = ((test_size * n as f64).ceil() as usize).min(n);
    let perm = numpy_permutation(n, seed);
    let test = perm[..n_test].iter().map(|&i| items[i]).collect();
    let train = perm[n_test..].iter().map(|&i| items[i]).collect();
    (train, test)
}

/// The reusability study's split of `n` cells: `(train, validation, test)` row indices, each
/// in the order scikit-learn returns them (test 15 % of all cells, validation 17.65 % of the
/// rest, so about 70/15/15). `seed` is the `random_state` of both calls (42 in the study).
pub fn split_70_15_15(n: usize, seed: u32) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let idx: Vec<usize> = (0..n).collect();
    let (rest, test) = train_test_split(&idx, 0.15, seed);
    let (train, val) = train_test_split(&rest, 0.1765, seed);
    (train, val, test)
}
