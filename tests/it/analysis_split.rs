//! The reusability study's 70/15/15 split: the same cells in the same sets, in the same order,
//! as scikit-learn's `train_test_split` calls (fixture from
//! `tests/fixtures/analysis/make_split_reference.py`).

use cellscope::analysis::split::{numpy_permutation, split_70_15_15};

#[test]
fn the_split_puts_the_same_cells_in_the_same_sets_as_scikit_learn() {
    let text = std::fs::read_to_string("tests/fixtures/analysis/split_reference.json").unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ints = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let n = c["n"].as_u64().unwrap() as usize;
        let seed = c["seed"].as_u64().unwrap() as u32;
        let (train, val, test) = split_70_15_15(n, seed);
        assert_eq!(test, ints(&c["test"]), "test set, n = {n}, seed {seed}");
        assert_eq!(val, ints(&c["val"]), "validation set, n = {n}, seed {seed}");
        assert_eq!(train, ints(&c["train"]), "train set, n = {n}, seed {seed}");
    }
}

#[test]
fn the_permutation_is_a_permutation_and_depends_on_the_seed() {
    let p = numpy_permutation(1000, 42);
    let mut s = p.clone();
    s.sort_unstable();
    assert_eq!(s, (0..1000).collect::<Vec<_>>());
    assert_ne!(p, numpy_permutation(1000, 43));
}
